"""Helpers for WebSocket tests through the real ASGI application (channels' WebsocketCommunicator)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from apps.users.services import api_key_create
from config.asgi import application
from tests.factories import published, scripted

ORIGIN = (b"origin", b"http://testserver")


def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


def bearer(user, scopes: tuple[str, ...] = ("read",)) -> tuple[bytes, bytes]:
    _, key = api_key_create(owner=user, name="socket test", scopes=list(scopes))
    return (b"authorization", f"Bearer {key}".encode())


def flow(owner, name: str = "flow"):
    """input -> slow streaming scripted llm -> output, published."""
    node = ("l", "llm", {**scripted("streamed words here", chunk_size=6, delay_ms=50), "prompt": "{{ x }}"})
    return published(
        owner,
        [("in", "input", {"name": "t"}), node, ("o", "output", {"name": "o"})],
        [("in", "value", "l", "x"), ("l", "text", "o", "value")],
        name=name,
    )


async def connect(path: str, *headers: tuple[bytes, bytes], origin: bool = True) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, *headers] if origin else list(headers))
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive_until_closed(communicator: WebsocketCommunicator) -> tuple[list[dict], int]:
    messages = []
    while True:
        output = await communicator.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            return messages, output.get("code", 1000)
        messages.append(json.loads(output["text"]))


@pytest.fixture(autouse=True)
async def close_shared_thread_connections():
    # sync_to_async work from these tests and the consumers runs in one shared thread whose
    # connection PostgreSQL would otherwise still count when the test database is dropped.
    yield
    await sync_to_async(connections.close_all)()
