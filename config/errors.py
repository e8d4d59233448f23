"""Error views: the API answers in its JSON error shape, pages in HTML."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.template import loader
from django.views import defaults
from django_guid import get_guid

from apps.users.api.errors import error_body

logger = logging.getLogger(__name__)

# The last resort when the 500 page itself fails to render: plain HTML that needs nothing.
FALLBACK_500 = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Server error · Switchboard</title>'
    "</head><body><main><h1>Something went wrong</h1><p>The error was on our side and has been logged. "
    "Please try again in a moment.</p></main></body></html>"
)


def _api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _api(request):
        return _error(404, "not_found", "No such endpoint or object.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _api(request):
        return _error(500, "server_error", "Something went wrong on our side; the request id is in X-Request-ID.")
    # 500.html extends only the page skeleton: no request context, no user, no database; the
    # request id (also in X-Request-ID and on every log line) lets an operator find the error.
    try:
        html = loader.render_to_string("500.html", {"request_id": get_guid()})
    except Exception:
        logger.exception("The 500 page could not be rendered; answered with plain HTML instead.")
        html = FALLBACK_500
    return HttpResponseServerError(html)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _api(request):
        return _error(400, "bad_request", "The request could not be understood.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _api(request):
        return _error(403, "forbidden", "You may not do this.")
    return defaults.permission_denied(request, exception)
