from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.support import services


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # Password hashing at full strength is the slowest thing in the suite and
    # tests nothing; processes the tests start keep the real hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_state(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EGRESS_ALLOW = []  # outbound HTTP is closed to internal addresses unless a test opens it
    cache.clear()  # allauth's rate limits live in the cache
    yield
    cache.clear()


@pytest.fixture
def egress_allow(settings):
    """`egress_allow(server.netloc)` lets the egress module reach that test server (host:port or CIDR)."""

    def allow(*entries: str) -> None:
        settings.EGRESS_ALLOW = [*settings.EGRESS_ALLOW, *entries]

    return allow


@pytest.fixture
def redis_url() -> str:
    return services.require_redis()


@pytest.fixture
def rabbitmq_url() -> str:
    return services.require_rabbitmq()


@pytest.fixture
def server(transactional_db):
    """A real `manage.py serve` process (daphne) on the test database; yields its base URL."""
    with services.serve_process() as process:
        yield process
