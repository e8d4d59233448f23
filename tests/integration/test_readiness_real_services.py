"""`/health/ready` of a real server process against real Redis and RabbitMQ, and when Redis stops."""

from __future__ import annotations

import pytest

from tests.support.services import redis_server_process, serve_process, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_ready_reports_redis_then_turns_503_naming_it_when_redis_stops():
    with (
        redis_server_process() as (redis_url, redis_process),
        serve_process(REDIS_URL=redis_url, DRAMATIQ_BROKER_URL=None) as server,
    ):
        response = server.get("/health/ready")
        body = response.json()
        assert response.status_code == 200, body
        assert body["checks"]["channel_layer"]["backend"] == "RedisPubSubChannelLayer"
        assert body["checks"]["cache"]["backend"] == "RedisCache"
        assert body["checks"]["broker"]["backend"] == "redis"

        redis_process.kill()
        redis_process.wait()

        response = wait_until(
            lambda: (r := server.get("/health/ready")).status_code == 503 and r,
            timeout=30,
            what="readiness to notice Redis is gone",
        )
        body = response.json()
        assert set(body["failed"]) == {"cache", "channel_layer", "broker"}
        assert body["checks"]["database"]["ok"] is True
        assert redis_url not in response.text
        assert server.get("/health/live").status_code == 200


def test_ready_reports_a_rabbitmq_broker(rabbitmq_url, redis_url):
    with serve_process(REDIS_URL=redis_url, DRAMATIQ_BROKER_URL=rabbitmq_url) as server:
        response = server.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["broker"]["backend"] == "rabbitmq"
