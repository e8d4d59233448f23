"""Clients for the REST API: a program with a key (scopes chosen per test) and a browser session."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.test import Client

from apps.users.services import api_key_create
from tests.factories import UserFactory


class ApiClient:
    """`django.test.Client` sending JSON with an API key."""

    def __init__(self, key: str) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, data: dict | None = None, **headers: str):
        return self.client.get(path, data, headers={**self.headers, **headers})

    def post(self, path: str, data: object = None, **headers: str):
        return self.client.post(path, data or {}, content_type="application/json", headers={**self.headers, **headers})

    def patch(self, path: str, data: object, **headers: str):
        return self.client.patch(path, data, content_type="application/json", headers={**self.headers, **headers})

    def put(self, path: str, data: object, **headers: str):
        return self.client.put(path, data, content_type="application/json", headers={**self.headers, **headers})

    def delete(self, path: str, **headers: str):
        return self.client.delete(path, headers={**self.headers, **headers})


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    # Rate counts live in the cache and key on a principal's id, which tests reuse.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def owner():
    return UserFactory(username="owner")


@pytest.fixture
def stranger():
    return UserFactory(username="stranger")


@pytest.fixture
def api(owner) -> ApiClient:
    """A key with every scope."""
    return ApiClient(api_key_create(owner=owner, name="all", scopes=["read", "write", "execute"])[1])


@pytest.fixture
def api_with(owner) -> Callable[..., ApiClient]:
    """`api_with("read")`: a client whose key holds only the given scopes."""

    def make(*scopes: str, user=None) -> ApiClient:
        return ApiClient(api_key_create(owner=user or owner, name="scoped", scopes=list(scopes))[1])

    return make


def error(response) -> dict:
    """The API's one error shape, checked, returned as its inner object."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]
