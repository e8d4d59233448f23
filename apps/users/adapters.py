from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from apps.users import services
from apps.users.models import LoginAttempt


class AccountAdapter(DefaultAccountAdapter):
    """allauth's adapter, recording every password sign-in attempt (site and admin alike)."""

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            self._record(request, credentials, LoginAttempt.Outcome.RATE_LIMITED)
            raise

    def authenticate(self, request: HttpRequest, **credentials: Any):
        user = super().authenticate(request, **credentials)
        outcome = LoginAttempt.Outcome.SUCCEEDED if user is not None else LoginAttempt.Outcome.FAILED
        self._record(request, credentials, outcome, user=user)
        return user

    def _record(self, request: HttpRequest, credentials: dict, outcome: str, user=None) -> None:
        try:
            ip_address = self.get_client_ip(request)
        except PermissionDenied:
            ip_address = None
        services.login_attempt_record(
            request=request,
            identifier=credentials.get("email") or credentials.get("username") or "",
            outcome=outcome,
            user=user,
            ip_address=ip_address,
        )
