"""
Who makes an HTTP request: an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`) or,
when no key is sent, the browser's session. The REST API's authentication class and the plain
async views (the SSE stream) both read keys here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest

from apps.users.models import ApiKey
from apps.users.services import api_key_authenticate


def api_key_from_headers(request: HttpRequest) -> str | None:
    """The key a request sends, or None; a non-Bearer `Authorization` scheme is not a key."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    return request.headers.get("X-API-Key", "").strip() or None


@dataclass(frozen=True)
class Principal:
    user: Any = None
    api_key: ApiKey | None = None
    error: str | None = None  # "not_authenticated", "invalid_api_key" or "missing_scope"
    message: str = ""


async def request_principal(request: HttpRequest, *, scope: str) -> Principal:
    """The key's owner (the key must hold `scope`), else the session's user, else an error."""
    key = api_key_from_headers(request)
    if key is not None:
        api_key = await sync_to_async(api_key_authenticate)(key)
        if api_key is None:
            return Principal(error="invalid_api_key", message="The API key is not valid (unknown, revoked or expired).")
        if not api_key.has_scope(scope):
            return Principal(error="missing_scope", message=f"The API key lacks the '{scope}' scope.")
        return Principal(user=api_key.owner, api_key=api_key)
    user = await request.auser()
    if not user.is_authenticated:
        message = "Sign in, or send an API key as 'Authorization: Bearer <key>'."
        return Principal(error="not_authenticated", message=message)
    return Principal(user=user)
