"""Credential secrets: encrypted at rest, never shown, rotated with the keys."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from apps.agents import crypto
from apps.agents.models import Credential
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-live-very-secret-value-0123456789"


@pytest.fixture
def stored():
    credential = Credential(owner=UserFactory(username="o"), name="main", kind="openai")
    credential.set_secret(SECRET)
    credential.save()
    return credential


def test_the_secret_is_encrypted_in_the_database(stored):
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_secret, secret_hint FROM agents_credential WHERE id = %s", [stored.pk])
        encrypted, hint = cursor.fetchone()
    assert SECRET not in encrypted
    assert hint == "…6789"
    assert Credential.objects.get(pk=stored.pk).reveal_secret() == SECRET


def test_the_secret_never_appears_in_its_text_forms(stored):
    assert SECRET not in str(stored)
    assert SECRET not in repr(stored)


def test_rotating_keys_keeps_old_secrets_readable(stored, settings):
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIAL_KEYS = [old_key]
    stored.set_secret(SECRET)
    stored.save()
    settings.CREDENTIAL_KEYS = [new_key, old_key]
    assert stored.reveal_secret() == SECRET
    rotated = crypto.rotate(stored.encrypted_secret)
    settings.CREDENTIAL_KEYS = [new_key]
    assert crypto.decrypt(rotated) == SECRET
    with pytest.raises(crypto.SecretUnreadable, match="CREDENTIAL_KEYS"):
        stored.reveal_secret()


def test_the_rotation_command_re_encrypts_every_secret(stored, settings):
    from io import StringIO

    from django.core.management import call_command

    new_key = Fernet.generate_key().decode()
    settings.CREDENTIAL_KEYS = [new_key, *settings.CREDENTIAL_KEYS]
    out = StringIO()
    call_command("rotate_credential_keys", stdout=out)
    assert "1 credentials re-encrypted" in out.getvalue()
    settings.CREDENTIAL_KEYS = [new_key]
    settings.PRODUCTION = True  # only the new key now
    assert Credential.objects.get(pk=stored.pk).reveal_secret() == SECRET
