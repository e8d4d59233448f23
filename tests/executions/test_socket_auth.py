"""Socket handshakes: session cookie with an allowed Origin, or an API key; refused before any data otherwise."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from apps.executions import engine, services
from apps.users.models import ApiKey
from config.asgi import application
from tests.factories import UserFactory
from tests.support.sockets import (
    bearer,
    close_shared_thread_connections,
    connect,
    flow,
    receive_until_closed,
    session_cookie,
)

__all__ = ["close_shared_thread_connections"]  # an autouse fixture, imported to apply here

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def finished_run():
    def create():
        owner = UserFactory(username="owner")
        execution = services.execution_run(version=flow(owner), inputs={"t": "go"}, owner=owner)
        engine.run_execution(execution.pk)
        return owner, execution, list(execution.events.values_list("seq", flat=True))

    return await sync_to_async(create)()


async def test_a_program_reads_a_run_with_its_api_key_and_no_origin(finished_run):
    owner, execution, stored = finished_run
    key = await sync_to_async(bearer)(owner)
    messages, code = await receive_until_closed(await connect(f"/ws/executions/{execution.pk}/", key, origin=False))
    assert (code, [m["seq"] for m in messages]) == (1000, stored)


@pytest.mark.parametrize("path", ["/ws/executions/{id}/", "/ws/"])
async def test_forged_revoked_and_unscoped_keys_close_4003_before_any_data(finished_run, path):
    owner, execution, _ = finished_run
    path = path.format(id=execution.pk)

    def keys():
        good = bearer(owner)[1].decode()
        revoked = bearer(owner)
        ApiKey.objects.filter(prefix=revoked[1].decode()[7:22]).update(status=ApiKey.Status.REVOKED)
        return [
            (b"authorization", (good[:-4] + "zzzz").encode()),
            (b"authorization", b"Bearer sb_not-a-key"),
            (b"authorization", b"Basic b3duZXI6cGFzc3dvcmQ="),
            revoked,
            bearer(owner, scopes=("execute",)),
        ]

    for header in await sync_to_async(keys)():
        messages, code = await receive_until_closed(await connect(path, header, origin=False))
        assert (messages, code) == ([], 4003), header


@pytest.mark.parametrize("path", ["/ws/executions/{id}/", "/ws/"])
async def test_the_cookie_of_a_logged_out_session_closes_4003(finished_run, path):
    owner, execution, _ = finished_run

    def logged_out_cookie():
        client = Client()
        client.force_login(owner)
        value = client.cookies[settings.SESSION_COOKIE_NAME].value
        client.logout()
        return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={value}".encode())

    cookie = await sync_to_async(logged_out_cookie)()
    messages, code = await receive_until_closed(await connect(path.format(id=execution.pk), cookie))
    assert (messages, code) == ([], 4003)


async def test_a_session_cookie_without_origin_is_ignored_and_closes_4001(finished_run):
    owner, execution, _ = finished_run
    cookie = await sync_to_async(session_cookie)(owner)
    for path in (f"/ws/executions/{execution.pk}/", "/ws/"):
        messages, code = await receive_until_closed(await connect(path, cookie, origin=False))
        assert (messages, code) == ([], 4001), path


async def test_a_key_in_the_query_string_is_not_a_credential(finished_run):
    owner, execution, _ = finished_run
    key = (await sync_to_async(bearer)(owner))[1].decode().removeprefix("Bearer ")
    messages, code = await receive_until_closed(
        await connect(f"/ws/executions/{execution.pk}/?token={key}&api_key={key}", origin=False)
    )
    assert (messages, code) == ([], 4001)


@pytest.mark.parametrize("origin", [b"http://evil.example", b"null", b"http://testserver.evil.example"])
async def test_a_foreign_origin_is_refused_at_the_handshake_even_with_a_valid_session(finished_run, origin):
    owner, execution, _ = finished_run
    cookie = await sync_to_async(session_cookie)(owner)
    for path in (f"/ws/executions/{execution.pk}/", "/ws/"):
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", origin), cookie])
        connected, _ = await communicator.connect()
        assert connected is False, path  # the server answers the handshake with HTTP 403
