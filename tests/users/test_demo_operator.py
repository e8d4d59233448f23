"""`manage.py ensure_demo_operator`: the login `make run` prints."""

from __future__ import annotations

import json

import pytest
from allauth.account.models import EmailAddress
from django.core.management import CommandError, call_command

from apps.users.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def run_command() -> str:
    from io import StringIO

    out = StringIO()
    call_command("ensure_demo_operator", stdout=out)
    return out.getvalue()


def test_it_creates_a_superuser_with_a_verified_email_and_prints_the_login(client, var_dir):
    output = run_command()
    stored = json.loads((var_dir / "demo-operator.json").read_text())
    assert f"password '{stored['password']}'" in output
    user = User.objects.get(username="operator")
    assert user.is_superuser
    assert user.is_staff
    assert EmailAddress.objects.get(user=user).verified
    assert client.login(username="operator", password=stored["password"])


def test_running_it_again_keeps_the_same_login(var_dir):
    first = run_command()
    second = run_command()
    assert first.split("password")[1] == second.split("password")[1]
    assert User.objects.filter(username="operator").count() == 1


def test_it_is_refused_in_production(var_dir, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="for development"):
        run_command()
    assert not User.objects.filter(username="operator").exists()
