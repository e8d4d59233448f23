"""
Liveness and readiness probes.

`/health/live` answers as long as the process serves requests. `/health/ready`
checks every dependency a request or a run needs (database, cache, channel
layer, broker) with short timeouts, and answers 503 naming what failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import dramatiq
import pika
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from config import embedded

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3


class CheckFailed(Exception):
    """A dependency answered, but not as it should."""


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_cache() -> str:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=10)
    if cache.get(key) != "ok":
        raise CheckFailed("the cache did not return what was written")
    cache.delete(key)
    return settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    receive = asyncio.ensure_future(layer.receive(channel))
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    try:
        # Pub/sub delivers only to a subscriber that is already listening, and
        # the subscription is confirmed asynchronously: publish until it lands.
        while not receive.done():
            if time.monotonic() > deadline:
                raise TimeoutError
            await layer.send(channel, {"type": "health.ping"})
            await asyncio.wait({receive}, timeout=0.2)
        message = receive.result()
    finally:
        receive.cancel()
    if message.get("type") != "health.ping":
        raise CheckFailed("the channel layer returned another message")


def check_channel_layer() -> str:
    async_to_sync(_channel_layer_round_trip)()
    return type(get_channel_layer()).__name__


def check_broker() -> str:
    broker = dramatiq.get_broker()
    options = settings.DRAMATIQ_BROKER.get("OPTIONS", {})
    if isinstance(broker, StubBroker):
        if not embedded.is_running():
            raise CheckFailed("the embedded worker is not running in this process")
        return "embedded"
    if isinstance(broker, RedisBroker):
        client = redis.Redis.from_url(
            options["url"], socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()
        return "redis"
    if isinstance(broker, RabbitmqBroker):
        parameters = pika.URLParameters(options["url"])
        parameters.socket_timeout = CHECK_TIMEOUT_SECONDS
        parameters.blocked_connection_timeout = CHECK_TIMEOUT_SECONDS
        parameters.connection_attempts = 1
        pika.BlockingConnection(parameters).close()
        return "rabbitmq"
    raise CheckFailed(f"unknown broker {type(broker).__name__}")


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "cache": check_cache,
    "channel_layer": check_channel_layer,
    "broker": check_broker,
}


def run_checks() -> tuple[bool, dict[str, dict]]:
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            detail = check()
        except Exception as exc:
            # The reason names the failing part; connection strings stay out of it.
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = {"ok": False, "error": _describe(exc)}
        else:
            results[name] = {"ok": True, "backend": detail}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    return all(result["ok"] for result in results.values()), results


def _describe(exc: Exception) -> str:
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: unreachable or refused"


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    ok, checks = run_checks()
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "ok" if ok else "unavailable", "failed": failed, "checks": checks}
    return JsonResponse(body, status=200 if ok else 503)
