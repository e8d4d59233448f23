"""Daphne's development server, plus the embedded worker when no broker is configured."""

from daphne.management.commands.runserver import Command as DaphneRunserverCommand

from config import embedded


class Command(DaphneRunserverCommand):
    def inner_run(self, *args, **options):
        # Runs in the autoreloaded child (or alone with --noreload), never in the watcher.
        embedded.start()
        return super().inner_run(*args, **options)
