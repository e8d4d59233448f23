"""API keys: shown once, stored hashed, scoped, revocable, expiring, touched at most once a minute."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.users import services
from apps.users.models import ApiKey
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return UserFactory(username="keyholder")


def test_the_full_key_is_returned_once_and_only_its_salted_hash_is_stored(owner):
    api_key, key = services.api_key_create(owner=owner, name="nightly", scopes=["read", "execute"])
    assert key.startswith("sb_")
    assert len(key) == 56
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert key not in {stored.prefix, stored.hashed_key, stored.salt, stored.last_four}
    assert key.startswith(stored.prefix)
    assert key.endswith(stored.last_four)
    assert stored.masked == f"{key[:15]}…{key[-4:]}"
    assert stored.scopes == ["read", "execute"]
    _, other = services.api_key_create(owner=owner, name="other", scopes=["read"])
    assert ApiKey.objects.get(prefix=other[:15]).salt != stored.salt


def test_a_key_authenticates_its_owner_and_a_forged_one_does_not(owner):
    _, key = services.api_key_create(owner=owner, name="k", scopes=["read"])
    assert services.api_key_authenticate(key).owner == owner
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    for attempt in (forged, key[:15], "", "sb_" + "x" * 53, key + "x", f"Bearer {key}"):
        assert services.api_key_authenticate(attempt) is None, attempt


def test_revoked_expired_and_inactive_owners_keys_are_refused(owner):
    revoked, revoked_key = services.api_key_create(owner=owner, name="r", scopes=["read"])
    assert services.api_key_revoke(api_key=revoked) is True
    assert services.api_key_revoke(api_key=revoked) is False
    assert services.api_key_authenticate(revoked_key) is None
    assert ApiKey.objects.get(pk=revoked.pk).revoked_at is not None

    _, expired_key = services.api_key_create(
        owner=owner, name="e", scopes=["read"], expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.api_key_authenticate(expired_key) is None

    _, key = services.api_key_create(owner=owner, name="a", scopes=["read"])
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert services.api_key_authenticate(key) is None


def test_last_used_is_written_at_most_once_a_minute(owner, django_assert_num_queries):
    api_key, key = services.api_key_create(owner=owner, name="k", scopes=["read"])
    with django_assert_num_queries(2):  # the lookup and the first touch
        services.api_key_authenticate(key)
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None
    with django_assert_num_queries(1):  # the lookup only
        services.api_key_authenticate(key)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first - timedelta(minutes=2))
    services.api_key_authenticate(key)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at > first - timedelta(minutes=2)


def test_unknown_scopes_and_blank_names_are_refused_without_a_row(owner):
    with pytest.raises(ValidationError, match="admin"):
        services.api_key_create(owner=owner, name="k", scopes=["read", "admin"])
    with pytest.raises(ValidationError, match="at least one"):
        services.api_key_create(owner=owner, name="k", scopes=[])
    with pytest.raises(ValidationError, match="name"):
        services.api_key_create(owner=owner, name="  ", scopes=["read"])
    assert not ApiKey.objects.exists()


def test_the_command_prints_a_working_key(owner):
    out, err = StringIO(), StringIO()
    call_command("create_api_key", "keyholder", "--name", "cli", "--scopes", "read,execute", stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert services.api_key_authenticate(key).scopes == ["read", "execute"]
    assert key not in err.getvalue()
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_key", "ghost", "--name", "cli")
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_key", "keyholder", "--name", "cli", "--scopes", "read,root")
    assert ApiKey.objects.count() == 1
