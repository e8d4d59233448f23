"""The project's URLs plus views that fail on purpose, for the error page tests."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a page")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("internal reason, not for the page")


urlpatterns = [
    path("broken/", broken),
    path("forbidden/", forbidden),
    path("api/v1/broken/", broken),
    path("api/v1/forbidden/", forbidden),
    *urlpatterns,
]
