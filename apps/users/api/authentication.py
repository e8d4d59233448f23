"""DRF authentication by API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.users.authentication import api_key_from_headers
from apps.users.models import ApiKey, User
from apps.users.services import api_key_authenticate


class ApiKeyAuthentication(BaseAuthentication):
    """`request.user` is the key's owner and `request.auth` the ApiKey; a bad key is 401, never anonymous."""

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        key = api_key_from_headers(request._request)
        if key is None:
            return None
        api_key = api_key_authenticate(key)
        if api_key is None:
            raise exceptions.AuthenticationFailed(
                "The API key is not valid (unknown, revoked or expired).", code="invalid_api_key"
            )
        return api_key.owner, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer sb_…`."}
