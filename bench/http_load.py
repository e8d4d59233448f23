"""
B4's load generator: closed-loop HTTP/1.1 keep-alive clients on one asyncio loop, in a process of
its own so that its work never shares an interpreter with the server or the bench.

`python -m bench.http_load` reads a plan (JSON) on stdin and prints its results (JSON) on stdout.
Each endpoint first gets `warmup_s` of untimed load; then `rounds` rounds give every endpoint one
timed slice of `slice_s`, in alternating order (ABCD, DCBA, ...), so that a change in the machine's
load during the run falls on all endpoints alike. A slice opens `connections` fresh connections,
each sending its next request the moment the previous response has been read in full.

The client is a few lines of asyncio streams rather than httpx: on a 2-core machine the client
shares the cores with the server, and httpx's CPU cost per request is of the same order as a
small Django view's, which would compress the gap being measured.

Plan: {"host", "port", "connections", "warmup_s", "slice_s", "rounds", "headers": {name: value},
"keys": [API keys, used in turn, one per request], "endpoints": {name: [paths, used in turn]},
"cpu_pids": [server processes whose CPU time is read at each slice's start and end]}.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import percentile

# A request still unanswered this long after its slice ended counts as an error.
STRAGGLER_TIMEOUT_S = 10.0


class ProtocolError(Exception):
    """A response this client cannot read: the figures would be wrong, so the request is an error."""


@dataclass
class Endpoint:
    name: str
    paths: itertools.cycle
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    body_bytes: int = 0
    slices: list[dict] = field(default_factory=list)
    timing: bool = False

    def note(self, status: int, size: int, elapsed_s: float) -> None:
        if not self.timing:
            return
        self.statuses[status] += 1
        if status == 200:
            self.latencies_ms.append(elapsed_s * 1000)
            self.body_bytes += size

    def fail(self, reason: str) -> None:
        if self.timing:
            self.errors[reason] += 1


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: bytes) -> tuple[int, int, bool]:
        """Send one request, read its whole response; (status, body bytes, connection still usable)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, keep = None, False, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = b"close" not in value.lower()
        if chunked:
            return status, await self._chunked_body(), keep
        if length is None:
            raise ProtocolError("a response with neither Content-Length nor chunked encoding")
        await self.reader.readexactly(length)
        return status, length, keep

    async def _chunked_body(self) -> int:
        size = 0
        while True:
            chunk = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await self.reader.readexactly(chunk + 2)
            size += chunk
            if chunk == 0:
                return size


def cpu_seconds(pids: list[int]) -> float | None:
    """User plus system time of the processes so far; None when one of them is gone."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None
    return total


class Load:
    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self.keys = itertools.cycle(plan["keys"])
        headers = {"Host": plan["host"], "Accept": "application/json", **plan.get("headers", {})}
        self.fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.endpoints = {name: Endpoint(name, itertools.cycle(paths)) for name, paths in plan["endpoints"].items()}
        self.answered = 0  # warm-up included

    def request(self, endpoint: Endpoint) -> bytes:
        # A key per request in turn: each key stays far below the API's per-key rate limit, as
        # many programs with a key each would, and the throttle's history per key stays short.
        head = f"GET {next(endpoint.paths)} HTTP/1.1\r\n{self.fixed_headers}"
        return f"{head}Authorization: Bearer {next(self.keys)}\r\n\r\n".encode()

    async def client(self, endpoint: Endpoint, connection: Connection, deadline: float) -> Connection:
        while time.perf_counter() < deadline:
            request = self.request(endpoint)
            started = time.perf_counter()
            try:
                status, size, keep = await connection.exchange(request)
            except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError) as exc:
                endpoint.fail(type(exc).__name__)
                connection.close()
                connection = await Connection.open(self.plan["host"], self.plan["port"])
                continue
            endpoint.note(status, size, time.perf_counter() - started)
            self.answered += 1
            if not keep:
                connection.close()
                connection = await Connection.open(self.plan["host"], self.plan["port"])
        return connection

    async def slice(self, endpoint: Endpoint, seconds: float, timing: bool) -> None:
        plan = self.plan
        connections = [await Connection.open(plan["host"], plan["port"]) for _ in range(plan["connections"])]
        endpoint.timing = timing
        done_before = len(endpoint.latencies_ms)
        cpu = cpu_seconds(plan.get("cpu_pids", []))
        started = time.perf_counter()
        tasks = [asyncio.ensure_future(self.client(endpoint, c, started + seconds)) for c in connections]
        finished, pending = await asyncio.wait(tasks, timeout=seconds + STRAGGLER_TIMEOUT_S)
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(plan.get("cpu_pids", []))
        for task in pending:
            task.cancel()
            endpoint.fail("unanswered at the end of the slice")
        for connection in connections:
            connection.close()
        for task in finished:
            if task.exception() is not None:  # could not even reconnect
                endpoint.fail(type(task.exception()).__name__)
            else:
                task.result().close()
        endpoint.timing = False
        if timing:
            answered = len(endpoint.latencies_ms) - done_before
            endpoint.slices.append(
                {
                    "seconds": elapsed,
                    "responses": answered,
                    "requests_per_second": answered / elapsed,
                    "server_cpu_s": None if cpu is None or cpu_after is None else cpu_after - cpu,
                }
            )

    async def run(self) -> dict:
        plan = self.plan
        order = list(self.endpoints.values())
        for endpoint in order:
            await self.slice(endpoint, plan["warmup_s"], timing=False)
        clock, cpu = time.perf_counter(), time.process_time()
        for index in range(plan["rounds"]):
            for endpoint in order if index % 2 == 0 else reversed(order):
                await self.slice(endpoint, plan["slice_s"], timing=True)
        return {
            "endpoints": {name: summary(endpoint) for name, endpoint in self.endpoints.items()},
            "timed_s": time.perf_counter() - clock,
            "answered_in_all": self.answered,
            "client_cpu_s": time.process_time() - cpu,
        }


def summary(endpoint: Endpoint) -> dict:
    latencies = sorted(endpoint.latencies_ms)
    seconds = sum(s["seconds"] for s in endpoint.slices)
    ok = len(latencies)
    cpu = [s["server_cpu_s"] for s in endpoint.slices]
    server_cpu = None if None in cpu else sum(cpu)
    figures = {
        "responses_200": ok,
        "errors": sum(endpoint.errors.values()) + sum(n for status, n in endpoint.statuses.items() if status != 200),
        "statuses": {str(status): n for status, n in sorted(endpoint.statuses.items())},
        "error_kinds": dict(endpoint.errors),
        "seconds": seconds,
        "requests_per_second": ok / seconds if seconds else 0.0,
        "slice_requests_per_second": [round(s["requests_per_second"], 1) for s in endpoint.slices],
        "mean_body_bytes": endpoint.body_bytes / ok if ok else None,
        "server_cpu_ms_per_request": server_cpu / ok * 1000 if ok and server_cpu is not None else None,
    }
    if latencies:
        figures.update(
            {
                "p50_ms": percentile(latencies, 50),
                "p90_ms": percentile(latencies, 90),
                "p99_ms": percentile(latencies, 99),
                "max_ms": latencies[-1],
                "mean_ms": sum(latencies) / ok,
            }
        )
    return figures


def main() -> int:
    plan = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:
        results = asyncio.run(Load(plan).run())
    else:
        results = uvloop.run(Load(plan).run())
    sys.stdout.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
