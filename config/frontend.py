"""
The front-end packages (package.json, installed into node_modules by `npm ci`) as static files.

`NodePackagesFinder` serves the folders named in `settings.NPM_STATIC` (URL prefix -> folder), so
`{% static "vendor/htmx/htmx.min.js" %}` works in development (whitenoise uses the finders) and
`collectstatic` copies them for production. Nothing from npm is copied into the repository.

When a folder is missing (npm not run yet) the pages still render, without what it holds (see
`apps.users.templatetags.ui.vendor_script`), and the system check `frontend.W001` says what to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import FileSystemFinder
from django.core.checks import CheckMessage
from django.core.checks import Warning as CheckWarning
from django.core.files.storage import FileSystemStorage


class NodePackagesFinder(FileSystemFinder):
    """A `FileSystemFinder` over `settings.NPM_STATIC` instead of `STATICFILES_DIRS`."""

    def __init__(self, app_names: object = None, *args: object, **kwargs: object) -> None:
        # Not FileSystemFinder.__init__: that one reads STATICFILES_DIRS.
        self.locations: list[tuple[str, str]] = []
        self.storages: dict[str, FileSystemStorage] = {}
        for prefix, folder in settings.NPM_STATIC.items():
            root = str(folder)
            self.locations.append((prefix, root))
            storage = FileSystemStorage(location=root)
            storage.prefix = prefix
            self.storages[root] = storage

    def check(self, **kwargs: object) -> list[CheckMessage]:
        return [
            CheckWarning(
                f"The front-end package folder {root} is missing, so pages are served without "
                f"the files under static/{prefix}/ (unstyled or without partial updates).",
                hint="Run `npm ci` in the project folder (`make run` and `make test` do it for you).",
                id="frontend.W001",
            )
            for prefix, root in self.missing()
        ]

    def missing(self) -> Iterator[tuple[str, str]]:
        return ((prefix, root) for prefix, root in self.locations if not Path(root).is_dir())
