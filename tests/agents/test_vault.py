"""The vault: key rotation, the audit trail, revocation in runs, and secrets kept out of what runs produce."""

from __future__ import annotations

import asyncio
import itertools
import json
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.agents import crypto, services
from apps.agents.models import Agent, Credential, CredentialEvent
from apps.executions import engine
from apps.executions import services as runs
from apps.executions.broadcast import execution_group
from tests.factories import UserFactory, published
from tests.support.http_server import Answer, ScriptedHTTPServer
from tests.support.services import closing_connections

SECRET = "sk-live-very-secret-value-0123456789"


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def keys(settings):
    """An explicit old key in CREDENTIAL_KEYS, and a new one to rotate to."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIAL_KEYS = [old]
    return old, new


def stored(owner, name: str = "main", secret: str = SECRET, kind: str = "openai", **fields) -> Credential:
    return services.credential_create(owner=owner, name=name, kind=kind, secret=secret, actor=owner, **fields)


def rotate(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("rotate_credentials", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- rotation ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rotation_re_encrypts_every_secret_so_the_old_key_can_go(owner, keys, settings):
    old, new = keys
    secrets = {stored(owner, name=f"c{i}", secret=f"{SECRET}-{i}").pk: f"{SECRET}-{i}" for i in range(5)}
    settings.CREDENTIAL_KEYS = [new, old]
    out, err = rotate("--batch-size", "2")
    assert "5 credentials re-encrypted under the newest key; 0 already were; 0 unreadable." in out
    assert err == ""
    settings.CREDENTIAL_KEYS = [new]  # the old key is gone
    for credential in Credential.objects.all():
        assert credential.reveal_secret() == secrets[credential.pk]
        assert crypto.digest_matches(secrets[credential.pk], credential.secret_digest)
    rotations = CredentialEvent.objects.filter(action="rotate")
    assert sorted(rotations.values_list("credential_id", flat=True)) == sorted(secrets)
    assert set(rotations.values_list("actor", flat=True)) == {None}


@pytest.mark.django_db
def test_a_second_rotation_changes_nothing(owner, keys, settings):
    old, new = keys
    for i in range(3):
        stored(owner, name=f"c{i}")
    settings.CREDENTIAL_KEYS = [new, old]
    rotate()
    before = list(Credential.objects.order_by("pk").values_list("encrypted_secret", "secret_digest", "updated_at"))
    events = CredentialEvent.objects.count()
    out, _ = rotate()
    assert "0 credentials re-encrypted under the newest key; 3 already were; 0 unreadable." in out
    assert list(Credential.objects.order_by("pk").values_list("encrypted_secret", "secret_digest", "updated_at")) == (
        before
    )
    assert CredentialEvent.objects.count() == events


@pytest.mark.django_db
def test_a_credential_no_key_decrypts_is_named_by_its_id_and_the_others_still_rotate(owner, keys, settings):
    old, new = keys
    readable = [stored(owner, name=f"ok{i}") for i in range(3)]
    lost = stored(owner, name="lost", secret="sk-lost-secret-value-abcdefgh")
    foreign = Fernet(Fernet.generate_key()).encrypt(b"sk-lost-secret-value-abcdefgh").decode()
    Credential.objects.filter(pk=lost.pk).update(encrypted_secret=foreign)
    settings.CREDENTIAL_KEYS = [new, old]
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match=rf"1 credentials could not be decrypted \(ids {lost.pk}\)"):
        call_command("rotate_credentials", "--batch-size", "1", stdout=out, stderr=err)
    assert "3 credentials re-encrypted under the newest key; 0 already were; 1 unreadable." in out.getvalue()
    assert f"credential {lost.pk}: no configured key decrypts it" in err.getvalue()
    assert "sk-lost" not in out.getvalue() + err.getvalue()
    assert Credential.objects.get(pk=lost.pk).encrypted_secret == foreign  # kept, for the key that made it
    settings.CREDENTIAL_KEYS = [new]
    assert [Credential.objects.get(pk=c.pk).reveal_secret() for c in readable] == [SECRET] * 3


@pytest.mark.django_db
def test_the_former_command_name_still_rotates(owner, keys, settings):
    old, new = keys
    credential = stored(owner)
    settings.CREDENTIAL_KEYS = [new, old]
    out = StringIO()
    call_command("rotate_credential_keys", stdout=out)
    assert "1 credentials re-encrypted" in out.getvalue()
    settings.CREDENTIAL_KEYS = [new]
    assert Credential.objects.get(pk=credential.pk).reveal_secret() == SECRET


@pytest.mark.django_db
def test_a_batch_size_below_one_is_refused_and_changes_nothing(owner, keys, settings):
    credential = stored(owner)
    settings.CREDENTIAL_KEYS = [keys[1], keys[0]]
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        rotate("--batch-size", "0")
    assert Credential.objects.get(pk=credential.pk).encrypted_secret == credential.encrypted_secret


def test_the_digest_depends_on_the_key_not_only_on_the_secret(settings):
    settings.CREDENTIAL_KEYS = [Fernet.generate_key().decode()]
    first = crypto.digest(SECRET)
    settings.CREDENTIAL_KEYS = [Fernet.generate_key().decode()]
    assert crypto.digest(SECRET) != first
    assert SECRET not in first


# --- the trail -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_revoke_and_delete_leave_a_trail_that_outlives_the_credential(owner):
    credential = stored(owner)
    pk = credential.pk
    assert services.credential_revoke(credential=credential, actor=owner) is True
    assert services.credential_revoke(credential=credential, actor=owner) is False  # already: no second event
    services.credential_delete(credential=credential, actor=owner)
    trail = list(
        CredentialEvent.objects.order_by("pk").values_list(
            "action", "credential_id", "credential_pk", "credential_name"
        )
    )
    assert trail == [("create", None, pk, "main"), ("revoke", None, pk, "main"), ("delete", None, pk, "main")]
    assert set(CredentialEvent.objects.values_list("actor", flat=True)) == {owner.pk}
    assert SECRET not in str(list(CredentialEvent.objects.values()))


@pytest.mark.django_db
def test_a_refused_create_writes_no_event(owner):
    stored(owner)
    with pytest.raises(ValidationError):
        stored(owner)  # the name is taken
    with pytest.raises(ValidationError):
        stored(owner, name="other", kind="openai_compatible")  # no base_url
    assert list(CredentialEvent.objects.values_list("action", flat=True)) == ["create"]


@pytest.mark.django_db
def test_revoke_all_revokes_only_the_owners_live_credentials(owner):
    stranger = UserFactory(username="stranger")
    mine = [stored(owner, name=f"c{i}") for i in range(3)]
    services.credential_revoke(credential=mine[0], actor=owner)
    theirs = stored(stranger, name="theirs")
    assert services.credentials_revoke_all(owner=owner, actor=owner) == 2
    assert all(Credential.objects.get(pk=c.pk).is_revoked for c in mine)
    assert not Credential.objects.get(pk=theirs.pk).is_revoked
    assert CredentialEvent.objects.filter(action="revoke").count() == 3
    assert services.credentials_revoke_all(owner=owner, actor=owner) == 0


# --- runs ----------------------------------------------------------------------------------------


@pytest.fixture
def http_server():
    server = ScriptedHTTPServer()
    yield server
    server.close()


def http_flow(owner, url: str, credential_id: int):
    node = ("h", "http_request", {"url": url + "?q={{ x }}", "credential": credential_id})
    return published(
        owner,
        [("in", "input", {"name": "t"}), node, ("out", "output", {"name": "o"})],
        [("in", "value", "h", "x"), ("h", "status", "out", "value")],
    )


def run(owner, version, inputs: dict | None = None):
    execution = runs.execution_run(version=version, inputs=inputs or {"t": "go"}, owner=owner)
    engine.run_execution(execution.pk)
    execution.refresh_from_db()
    return execution


@pytest.mark.django_db
def test_each_resolution_records_one_use_with_its_run_and_node_in_one_insert(
    owner, http_server, egress_allow, settings
):
    egress_allow("127.0.0.1")
    http_server.route("/ping", Answer(200, {"ok": True}))
    credential = stored(owner, name="api", kind="http_header", header_name="X-Token")
    version = http_flow(owner, f"{http_server.url}/ping", credential.pk)
    with CaptureQueriesContext(connection) as queries:
        execution = run(owner, version)
    assert execution.status == "succeeded", execution.error_message
    assert http_server.requests[0]["headers"]["X-Token"] == SECRET
    use = CredentialEvent.objects.get(action="use")
    assert (use.credential_id, use.owner_id, use.actor_id) == (credential.pk, owner.pk, None)
    assert (use.execution_id, use.node_id) == (execution.pk, "h")
    vault_writes = [q["sql"] for q in queries if "agents_credential" in q["sql"] and "INSERT" in q["sql"].upper()]
    assert len(vault_writes) == 1


@pytest.mark.django_db
def test_a_run_using_a_revoked_credential_fails_its_node_with_credential_revoked(owner, http_server, egress_allow):
    egress_allow("127.0.0.1")
    http_server.route("/ping", Answer(200, {"ok": True}))
    credential = stored(owner, name="api", kind="http_header", header_name="X-Token")
    version = http_flow(owner, f"{http_server.url}/ping", credential.pk)
    services.credential_revoke(credential=credential, actor=owner)
    execution = run(owner, version)
    assert (execution.status, execution.error_code) == ("failed", "credential_revoked")
    node = execution.node_executions.get(node_id="h")
    assert (node.status, node.error_code) == ("failed", "credential_revoked")
    assert "revoked" in node.error_message
    assert http_server.requests == []  # the secret never left
    assert not CredentialEvent.objects.filter(action="use").exists()


@pytest.mark.django_db(transaction=True)
def test_tool_traffic_logs_and_streamed_text_never_carry_a_secret_the_run_resolved(owner):
    credential = stored(owner, name="model-key")
    agent = Agent.objects.create(
        owner=owner,
        name="leaky",
        provider="scripted",
        model="scripted-1",
        credential=credential,
        tools=["calculator"],
        parameters={
            # A model that knows the key (the test plays it): it sends it to a tool, then says it.
            "replies": [
                {"text": "", "tool_calls": [{"name": "calculator", "args": {"expression": f"1 + 1 # {SECRET}"}}]},
                f"The key is {SECRET}, done.",
            ],
            "chunk_size": 3,
        },
    )
    version = published(
        owner,
        [("in", "input", {"name": "t"}), ("a", "agent", {"agent": agent.pk, "prompt": "{{ x }}"})],
        [("in", "value", "a", "x")],
    )
    layer = get_channel_layer()
    execution = runs.execution_create(version=version, inputs={"t": "go"}, owner=owner)

    async def scenario() -> list[dict]:
        channel = await layer.new_channel()
        await layer.group_add(execution_group(execution.pk), channel)
        await asyncio.to_thread(closing_connections(runs.execution_start, execution=execution))
        await asyncio.to_thread(closing_connections(engine.run_execution, execution.pk))
        received = []
        async with asyncio.timeout(10):
            while not any(
                e["event_type"] == "execution.status" and e["payload"]["status"] in ("succeeded", "failed")
                for m in received
                if m["type"] == "execution.events"
                for e in m["events"]
            ):
                received.append(await layer.receive(channel))
        return received

    messages = async_to_sync(scenario)()
    streamed = "".join(m["text"] for m in messages if m["type"] == "execution.delta")
    # At most the first three characters of a secret go out before it is recognised.
    assert streamed.startswith("The key is ")
    assert streamed.endswith("***, done.")
    assert len(streamed) <= len("The key is sk-***, done.")
    logs = list(execution.events.filter(type="node.log").values_list("payload", flat=True))
    assert [log["message"] for log in logs] == ["calls tool calculator", "tool calculator answered"]
    live_logs = [
        e for m in messages if m["type"] == "execution.events" for e in m["events"] if e["event_type"] == "node.log"
    ]
    assert len(live_logs) == 2
    shown = json.dumps(logs) + json.dumps(live_logs) + streamed
    for fragment in (SECRET, SECRET[:8], SECRET[-8:], SECRET[10:18]):
        assert fragment not in shown


# --- redaction of streamed text ------------------------------------------------------------------


def fed(redactor: crypto.StreamRedactor, pieces: list[str]) -> str:
    return "".join(redactor.feed(piece) for piece in pieces)


def pieces_of(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    before=st.text(alphabet="ab -sk0123", max_size=30),
    after=st.text(alphabet="ab -sk0123", max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=25),
)
def test_a_secret_streamed_in_any_pieces_never_shows_a_fragment(before, after, cuts):
    text = f"{before}{SECRET}{after}"
    shown = fed(crypto.StreamRedactor([SECRET]), pieces_of(text, cuts))
    windows = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)}
    assert not any(shown[i : i + 8] in windows for i in range(len(shown) - 7)), shown


@hypothesis_settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="xyz .,!?", max_size=80), cuts=st.lists(st.integers(0, 100), max_size=20))
def test_text_without_secrets_passes_through_whole(text, cuts):
    assert fed(crypto.StreamRedactor([SECRET]), pieces_of(text, cuts)) == text
    assert fed(crypto.StreamRedactor([]), pieces_of(text, cuts)) == text


def test_only_an_end_of_four_to_seven_characters_of_a_secret_waits_for_the_next_piece():
    redactor = crypto.StreamRedactor([SECRET])
    assert redactor.feed("a river") == "a river"  # "ver" is in the secret, but three letters are common
    assert redactor.feed(" of sk-liv") == " of "  # "sk-liv" could become the secret
    assert redactor.feed("ely day") == "sk-lively day"  # it did not
    assert redactor.feed(" sk-live-v") == " "
    assert redactor.pending == "sk-live-v"
    assert redactor.feed("ery") == ""  # the fragment may still grow
    assert redactor.feed("!") == "***!"


def test_the_stream_fragment_length_is_the_one_redaction_uses():
    from apps.agents.providers import MIN_SECRET_FRAGMENT

    assert crypto._LONGEST_FRAGMENT == MIN_SECRET_FRAGMENT


def test_a_secret_resolved_mid_stream_is_redacted_from_then_on():
    secrets: list[str] = []
    redactor = crypto.StreamRedactor(secrets)
    assert redactor.feed("before ") == "before "
    secrets.append(SECRET)
    shown = fed(redactor, [SECRET[:5], SECRET[5:20], SECRET[20:], " after"])
    assert shown == "*** after"


def test_values_are_redacted_in_keys_and_nested_strings():
    value = {"headers": {"X-Key": SECRET, SECRET: ["a", f"Bearer {SECRET}"]}, "n": 3, "none": None}
    assert crypto.redact_value(value, [SECRET]) == {
        "headers": {"X-Key": "***", "***": ["a", "Bearer ***"]},
        "n": 3,
        "none": None,
    }
    assert crypto.redact_value(value, []) is value


# --- the admin -----------------------------------------------------------------------------------


@pytest.fixture
def operator(client, db):
    from django.contrib.auth.models import Group

    user = UserFactory(username="ops", is_staff=True)
    user.groups.add(Group.objects.get(name="Operators"))
    client.force_login(user)
    return user


@pytest.mark.django_db
def test_operators_read_the_trail_filter_it_and_cannot_change_it(client, operator, owner):
    other = UserFactory(username="other")
    credential = stored(owner, name="key-of-owner")
    stored(other, name="key-of-other")
    services.credential_revoke(credential=credential, actor=owner)

    def listed(**query: object) -> set[str]:
        page = client.get("/admin/agents/credentialevent/", query)
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
        return {name for name in ("key-of-owner", "key-of-other") if name in page.content.decode()}

    assert listed() == {"key-of-owner", "key-of-other"}
    assert listed(action__exact="revoke") == {"key-of-owner"}
    assert listed(owner__id__exact=other.pk) == {"key-of-other"}
    assert listed(q="key-of-other") == {"key-of-other"}
    assert listed(q="not-a-uuid") == set()
    event = CredentialEvent.objects.first()
    assert client.get(f"/admin/agents/credentialevent/{event.pk}/change/").status_code == 200  # a read-only view
    assert client.post(f"/admin/agents/credentialevent/{event.pk}/delete/").status_code == 403
    assert client.get("/admin/agents/credentialevent/add/").status_code == 403
    assert CredentialEvent.objects.count() == 3


@pytest.mark.django_db
def test_the_trail_changelist_uses_a_fixed_number_of_queries(client, owner):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/admin/agents/credentialevent/").status_code == 200
        return len(queries)

    stored(owner, name="first")
    baseline = count()
    for index in range(5):
        services.credential_revoke(credential=stored(UserFactory(), name=f"c{index}"), actor=owner)
    assert count() == baseline


@pytest.mark.django_db
def test_admin_revoke_and_delete_go_through_the_vault_and_leave_events(client, owner):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    first, second = stored(owner, name="first"), stored(owner, name="second")
    response = client.post(
        "/admin/agents/credential/", {"action": "revoke", "_selected_action": [str(first.pk), str(second.pk)]}
    )
    assert response.status_code == 302
    assert all(Credential.objects.get(pk=c.pk).is_revoked for c in (first, second))
    response = client.post(f"/admin/agents/credential/{first.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Credential.objects.filter(pk=first.pk).exists()
    actions = list(CredentialEvent.objects.filter(actor=root).order_by("pk").values_list("action", "credential_pk"))
    assert actions == [("revoke", first.pk), ("revoke", second.pk), ("delete", first.pk)]


@pytest.mark.django_db
def test_an_operator_edit_of_a_credential_is_an_update_event_naming_the_fields(client, owner):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    credential = stored(owner, name="before")
    form = {"name": "after", "base_url": "", "header_name": ""}
    response = client.post(f"/admin/agents/credential/{credential.pk}/change/", form)
    assert response.status_code == 302
    assert Credential.objects.get(pk=credential.pk).name == "after"
    assert Credential.objects.get(pk=credential.pk).reveal_secret() == SECRET
    update = CredentialEvent.objects.get(action="update")
    assert (update.actor, update.changed_fields) == (root, ["name"])


@pytest.mark.django_db
def test_an_operator_edit_breaking_a_rule_is_shown_on_its_field_and_saves_nothing(client, owner):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    credential = stored(owner, name="first")
    stored(owner, name="second")
    path = f"/admin/agents/credential/{credential.pk}/change/"
    for form, field in (
        ({"name": "first", "base_url": "", "header_name": "X-Key"}, "header_name"),
        ({"name": "second", "base_url": "", "header_name": ""}, "name"),
    ):
        response = client.post(path, form)
        assert response.status_code == 200
        assert field in response.context["adminform"].form.errors
    assert Credential.objects.get(pk=credential.pk).name == "first"
    assert not CredentialEvent.objects.filter(action="update").exists()
