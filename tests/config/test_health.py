"""Liveness and readiness probes."""

from __future__ import annotations

import dramatiq
import pytest
from channels.layers import channel_layers
from django.conf import settings
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from config import embedded
from tests.support.services import free_port


@pytest.fixture
def worker_started(transactional_db):
    """Start the embedded worker when this run is on the embedded default (a real broker needs none)."""
    started = embedded.start()
    yield
    if started:
        embedded.stop()


@pytest.fixture
def fresh_channel_layers():
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def test_live_answers_while_the_process_serves(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_every_dependency(client, worker_started):
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["failed"] == []
    assert set(body["checks"]) == {"database", "cache", "channel_layer", "broker"}
    assert body["checks"]["database"]["backend"] == (
        "sqlite" if "sqlite" in settings.DATABASES["default"]["ENGINE"] else "postgresql"
    )
    assert body["checks"]["broker"]["backend"] == ("embedded" if settings.EMBEDDED_WORKER else "redis")


def test_ready_is_503_when_the_embedded_worker_is_not_running(client, db):
    assert not embedded.is_running()
    previous = dramatiq.get_broker()
    dramatiq.set_broker(StubBroker())  # the embedded default's broker, whatever this run uses
    try:
        response = client.get("/health/ready")
    finally:
        dramatiq.set_broker(previous)
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert "embedded worker is not running" in response.json()["checks"]["broker"]["error"]


def test_ready_is_503_naming_an_unreachable_channel_layer(client, worker_started, settings, fresh_channel_layers):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [closed]}}
    }
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 503
    assert "channel_layer" in body["failed"]
    assert str(closed) not in str(body)


def test_ready_is_503_naming_an_unreachable_broker(client, db, settings):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    previous = dramatiq.get_broker()
    dramatiq.set_broker(RedisBroker(url=closed))
    settings.DRAMATIQ_BROKER = {**settings.DRAMATIQ_BROKER, "OPTIONS": {"url": closed}}
    try:
        response = client.get("/health/ready")
    finally:
        dramatiq.set_broker(previous)
    assert response.status_code == 503
    assert "broker" in response.json()["failed"]
    assert response.json()["checks"]["broker"]["error"] == "ConnectionError: unreachable or refused"


def test_ready_is_not_cached(client, worker_started):
    response = client.get("/health/ready")
    assert "no-store" in response["Cache-Control"]
