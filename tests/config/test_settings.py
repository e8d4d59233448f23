"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.services import BASE_DIR

PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k" * 20 + "9f2c7a1e5b8d4f6a0c3e7b9d1f5a8c2e6b0d4f7a9c1e3b5d",
    "ALLOWED_HOSTS": "switchboard.example.com",
    "DATABASE_URL": "postgres://switchboard:pw@db.internal:5432/switchboard",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "SECURE_PROXY_SSL_HEADER": "true",
    "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example.com:587",
    "CREDENTIAL_KEYS": "j4_XfscxeLXRbxcbKoNy4EVSLrEmfcE96cwzPfhxJbA=",
}

SNAPSHOT = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]),
    "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "broker": settings.DRAMATIQ_BROKER["BROKER"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "embedded_worker": settings.EMBEDDED_WORKER,
    "debug": settings.DEBUG,
}))
"""


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_IGNORE_DOTENV": "1", "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def snapshot(**env: str) -> dict:
    result = run(["-c", f"import django; django.setup()\n{SNAPSHOT}"], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_runs_embedded_with_no_variables():
    got = snapshot()
    assert got["engine"] == "django.db.backends.sqlite3"
    assert got["name"] == str(BASE_DIR / "var" / "switchboard.sqlite3")
    assert got["channel_layer"] == "channels.layers.InMemoryChannelLayer"
    assert got["broker"] == "dramatiq.brokers.stub.StubBroker"
    assert got["cache"].endswith("LocMemCache")
    assert got["embedded_worker"] is True
    assert got["debug"] is True


def test_it_uses_postgres_and_redis_when_configured():
    got = snapshot(DATABASE_URL="postgres://u:p@127.0.0.1:5432/sb", REDIS_URL="redis://127.0.0.1:6379/3")
    assert got["engine"] == "django.db.backends.postgresql"
    assert got["channel_layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert got["broker"] == "dramatiq.brokers.redis.RedisBroker"
    assert got["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert got["embedded_worker"] is False


def test_a_rabbitmq_broker_url_wins_over_redis_for_dramatiq():
    got = snapshot(REDIS_URL="redis://127.0.0.1:6379/3", DRAMATIQ_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/")
    assert got["broker"] == "dramatiq.brokers.rabbitmq.RabbitmqBroker"
    assert got["channel_layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://root:hunter2secret@db/switchboard"),
        ("DATABASE_URL", "postgres://u:hunter2secret@db:notaport/x"),
        ("REDIS_URL", "http://hunter2secret@cache:6379"),
        ("DRAMATIQ_BROKER_URL", "kafka://hunter2secret@broker"),
        ("DJANGO_ENV", "staging"),
        ("LOG_FORMAT", "xml"),
        ("EMBEDDED_WORKER_THREADS", "many"),
    ],
)
def test_a_malformed_variable_stops_start_up_naming_it(variable, value):
    result = run(["manage.py", "check"], {variable: value})
    assert result.returncode != 0
    assert variable in result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CREDENTIAL_KEYS"])
def test_production_refuses_to_start_without_a_required_variable(missing):
    env = {key: value for key, value in PRODUCTION.items() if key != missing}
    result = run(["manage.py", "check"], env)
    assert result.returncode == 2
    assert f"Configuration error: {missing}" in result.stderr


def test_production_refuses_a_short_secret_key():
    result = run(["manage.py", "check"], {**PRODUCTION, "SECRET_KEY": "short"})
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_debug_and_optional_email_verification():
    assert "DEBUG" in run(["manage.py", "check"], {**PRODUCTION, "DEBUG": "true"}).stderr
    result = run(["manage.py", "check"], {**PRODUCTION, "ACCOUNT_EMAIL_VERIFICATION": "optional"})
    assert "ACCOUNT_EMAIL_VERIFICATION" in result.stderr


def test_check_deploy_is_clean_with_the_documented_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_logs_are_json_and_development_logs_plain():
    code = "import django; django.setup(); from django.conf import settings; print(settings.LOG_FORMAT)"
    assert run(["-c", code], PRODUCTION).stdout.strip() == "json"
    assert run(["-c", code], {}).stdout.strip() == "plain"
