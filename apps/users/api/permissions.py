"""Scopes: reading needs `read`, changing needs `write`, starting or stopping runs needs `execute`."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.users.models import ApiKey


def required_scope(request: Request, view: object) -> str:
    """A view's `action_scopes` (action -> scope) wins; else `read` for safe methods, `write` otherwise."""
    scope = getattr(view, "action_scopes", {}).get(getattr(view, "action", None))
    if scope:
        return scope
    return ApiKey.Scope.READ if request.method in SAFE_METHODS else ApiKey.Scope.WRITE


class HasScope(BasePermission):
    """Sessions may do all their user may; a key only what its scopes allow (403 naming the scope)."""

    code = "missing_scope"

    def has_permission(self, request: Request, view: object) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        scope = required_scope(request, view)
        if request.auth.has_scope(scope):
            return True
        self.message = f"The API key lacks the '{scope}' scope."
        return False
