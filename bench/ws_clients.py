"""
The subscribers of benchmark B3: N WebSocket clients in one process, each noting when every event arrives.

`python -m bench.ws_clients --url URL --clients N --terminal succeeded,failed,...`, with the
`Authorization` header, if any, in BENCH_WS_AUTHORIZATION (not on the command line). Prints one
JSON line once every client has its first message (the platform's stored events, the baseline's
hello: proof that it is subscribed), then one with what each client received, once each saw the
run's final status or its socket closed, or `--timeout` seconds passed.

Receipt times are `time.perf_counter()`: CLOCK_MONOTONIC on Linux, one clock for every process
on the machine, so the bench compares them with the commit times it noted in its own process.
A process of their own keeps the clients off the producer's GIL: neither delays the other's clock reading.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Handshakes in flight at once: enough to subscribe hundreds in a second or two, few enough for
# the server's listen backlog (a refused SYN is retried only after a second).
CONNECTING_AT_ONCE = 50


class Subscriber:
    """One client: its receipt times per seq, how its socket ended, and any error."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.times: list[float] = []
        self.close_code: int | None = None
        self.error: str | None = None
        self.subscribed = asyncio.get_running_loop().create_future()

    async def run(self, url: str, headers: dict, gate: asyncio.Semaphore, terminal: frozenset) -> None:
        connection = None
        try:
            async with gate:
                # No compression and no proxy: the same plain frames from both servers, straight to them.
                connection = await connect(url, additional_headers=headers, compression=None, proxy=None, max_size=None)
            async with connection:
                await self._receive(connection, terminal)
        except ConnectionClosed:
            pass  # the code says how
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if connection is not None:
                self.close_code = connection.close_code
            if not self.subscribed.done():
                self.subscribed.set_result(False)

    async def _receive(self, connection: ClientConnection, terminal: frozenset) -> None:
        while True:
            text = await connection.recv()
            received = time.perf_counter()  # first: parsing is the client's time, not the server's
            if not self.subscribed.done():
                self.subscribed.set_result(True)
            message = json.loads(text)
            if message.get("type") != "event":
                continue
            self.seqs.append(message["seq"])
            self.times.append(received)
            if message["event_type"] == "execution.status" and message["payload"].get("status") in terminal:
                return  # the platform closes now too; the baseline's clients leave on their own

    def report(self) -> dict:
        return {"seqs": self.seqs, "times": self.times, "close_code": self.close_code, "error": self.error}


def say(line: dict) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def subscribe_all(args: argparse.Namespace) -> None:
    headers = {}
    if authorization := os.environ.get("BENCH_WS_AUTHORIZATION"):
        headers["Authorization"] = authorization
    terminal = frozenset(args.terminal.split(","))
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    subscribers = [Subscriber() for _ in range(args.clients)]
    started = time.perf_counter()
    tasks = [asyncio.create_task(s.run(args.url, headers, gate, terminal)) for s in subscribers]
    try:
        async with asyncio.timeout(args.connect_timeout):
            outcomes = await asyncio.gather(*(s.subscribed for s in subscribers))
    except TimeoutError:
        outcomes = [s.subscribed.done() and s.subscribed.result() for s in subscribers]
    errors = sorted({s.error for s in subscribers if s.error})
    say({"subscribed": sum(outcomes), "connect_s": time.perf_counter() - started, "errors": errors[:5]})
    cpu = time.process_time()
    _, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    # The clients' own CPU time while receiving: how much of the latency could be theirs.
    cpu = time.process_time() - cpu
    say({"clients": [s.report() for s in subscribers], "timed_out": len(pending), "cpu_s": cpu})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_clients", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--terminal", required=True, help="final run statuses, comma-separated")
    parser.add_argument("--connect-timeout", type=float, default=30)
    parser.add_argument("--timeout", type=float, default=60, help="seconds after subscribing until clients give up")
    asyncio.run(subscribe_all(parser.parse_args()))


if __name__ == "__main__":
    main()
