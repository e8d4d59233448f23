"""Prometheus metrics, optionally behind a bearer token (METRICS_TOKEN)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import REGISTRY

from apps.agents.browser import BrowserPoolCollector

# The browser pool's numbers: this process's pool, and what worker processes published in the
# shared cache (apps/agents/browser.py), one `worker` label each.
if not any(isinstance(c, BrowserPoolCollector) for c in list(REGISTRY._collector_to_names)):
    REGISTRY.register(BrowserPoolCollector())


def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not constant_time_compare(supplied, token):
            response = HttpResponse("metrics need a valid bearer token\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return ExportToDjangoView(request)
