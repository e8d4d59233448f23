"""Django makes a cache object per request under ASGI; they must share one Redis pool per process."""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache

SHARED = {"OPTIONS": {"pool_class": "config.cache.SharedConnectionPool"}}


def test_cache_objects_share_one_redis_pool(redis_url):
    first, second = RedisCache(redis_url, SHARED), RedisCache(redis_url, SHARED)
    first.set("switchboard-test-shared-pool", 1)
    assert second.get("switchboard-test-shared-pool") == 1
    assert first._cache.get_client().connection_pool is second._cache.get_client().connection_pool
    # What Django does without it: a pool, and new connections, per cache object.
    plain, other = RedisCache(redis_url, {}), RedisCache(redis_url, {})
    assert plain._cache.get_client().connection_pool is not other._cache.get_client().connection_pool
    first.delete("switchboard-test-shared-pool")


def test_the_configured_cache_uses_the_shared_pool(settings):
    cache = settings.CACHES["default"]
    if cache["BACKEND"].endswith("RedisCache"):
        assert cache["OPTIONS"]["pool_class"] == "config.cache.SharedConnectionPool"
    else:
        assert cache["BACKEND"].endswith("LocMemCache")
