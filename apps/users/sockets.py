"""
Who is on a WebSocket. Programs send an API key in the handshake's `Authorization: Bearer` header;
browsers send their session cookie, and always an `Origin`, which must name an allowed host.
A handshake without `Origin` comes from a program: it is let through, but its cookies are ignored,
so a foreign page can never ride a user's session (cross-site WebSocket hijacking).

The consumers read `scope["auth_error"]`: "missing" (close 4001) or "invalid" (close 4003).
"""

from __future__ import annotations

from typing import Any

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator
from channels.sessions import SessionMiddlewareStack
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from apps.users.services import api_key_authenticate

CLOSE_UNAUTHENTICATED = 4001
CLOSE_FORBIDDEN = 4003


class OriginGate:
    """When the handshake has an `Origin`, it must be an allowed host (else HTTP 403); else pass."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.validator = AllowedHostsOriginValidator(application)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        if any(name == b"origin" for name, _ in scope.get("headers", ())):
            return await self.validator(scope, receive, send)
        return await self.application(scope, receive, send)


class SocketAuthMiddleware(BaseMiddleware):
    """Sets `user`, `api_key` and `auth_error` in the scope (after the session middleware)."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        scope = dict(scope, user=AnonymousUser(), api_key=None, auth_error=None)
        headers = dict(scope.get("headers", ()))
        authorization = headers.get(b"authorization")
        if authorization is not None:
            scheme, _, key = authorization.decode("latin-1").partition(" ")
            api_key = None
            if scheme.lower() == "bearer":
                api_key = await database_sync_to_async(api_key_authenticate)(key.strip())
            if api_key is None:
                scope["auth_error"] = "invalid"
            else:
                scope.update(user=api_key.owner, api_key=api_key)
        elif b"origin" in headers and settings.SESSION_COOKIE_NAME in scope.get("cookies", {}):
            user = await get_user(scope)
            scope["user"] = user
            if not user.is_authenticated:
                scope["auth_error"] = "invalid"  # an expired or logged-out session
        else:
            scope["auth_error"] = "missing"
        return await super().__call__(scope, receive, send)


def SocketStack(inner: Any) -> Any:
    return OriginGate(SessionMiddlewareStack(SocketAuthMiddleware(inner)))


def refusal_code(scope: dict) -> int | None:
    """The close code for a socket whose handshake did not authenticate, else None."""
    error = scope.get("auth_error")
    api_key = scope.get("api_key")
    if error == "invalid" or (api_key is not None and not api_key.has_scope("read")):
        return CLOSE_FORBIDDEN
    if error or not getattr(scope.get("user"), "is_authenticated", False):
        return CLOSE_UNAUTHENTICATED
    return None
