"""Requests per minute per API key, or per user for sessions; counted in the cache (Redis when configured)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from apps.users.models import ApiKey


class PrincipalThrottle(SimpleRateThrottle):
    scope = "principal"

    @property
    def THROTTLE_RATES(self) -> dict[str, str | None]:
        # DRF freezes the rates into a class attribute at import; read them at each request, so a
        # settings change (override_settings, pytest's `settings`) applies and is undone with it.
        return api_settings.DEFAULT_THROTTLE_RATES

    def get_cache_key(self, request: Request, view: object) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
