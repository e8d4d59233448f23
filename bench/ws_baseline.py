"""
The baseline of benchmark B3: a bare broadcast server, `websockets` and redis-py's asyncio pub/sub.

`python -m bench.ws_baseline --port P --redis-url URL --channel NAME`: every message published to
the Redis channel goes, unchanged, to every connected client; a client first gets
`{"type": "hello"}`, once it is on the list. No authentication, no database, no per-client
cursor: the floor the platform's path (channel layer, consumer, run stream) is compared with.
It listens only once it is subscribed, so an open port means it is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import redis.asyncio
from websockets.asyncio.server import ServerConnection, broadcast, serve

HELLO = json.dumps({"type": "hello"})


async def relay(port: int, redis_url: str, channel: str) -> None:
    clients: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        clients.add(connection)
        try:
            await connection.send(HELLO)
            await connection.wait_closed()
        finally:
            clients.discard(connection)

    # No read timeout: a quiet channel is normal (redis-py 8 would close it after 5 s, STACK-NOTES).
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=None, socket_connect_timeout=5)
    async with client, client.pubsub() as pubsub:
        await pubsub.subscribe(channel)
        # No compression, as the bench's clients ask for none from either server.
        async with serve(handler, "127.0.0.1", port, compression=None):
            async for message in pubsub.listen():
                if message["type"] == "message":
                    # Sent as text, like the platform's JSON; a client too slow to keep up is skipped.
                    broadcast(clients, message["data"], text=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_baseline", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", required=True)
    args = parser.parse_args()
    asyncio.run(relay(args.port, args.redis_url, args.channel))


if __name__ == "__main__":
    main()
