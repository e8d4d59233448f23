"""
B3, live streaming latency: from the worker committing a node's completion to a WebSocket client
receiving it, with 1 and with many clients subscribed to the same run, on the platform (a
`manage.py serve` daphne process, the Redis pub/sub channel layer, /ws/executions/<id>/ with an
API key) and on a bare `websockets` broadcast server fed the same events through Redis right
after each commit (bench/ws_baseline.py). Also the memory an idle subscribed socket costs the
daphne process.

The worker is this process: a real engine run (`engine.run_execution`, as B1) of a chain of nodes
that each wait NODE_MS, like a short LLM or HTTP call. The engine's own write functions are
wrapped to note the moment each event's statement committed and, in the baseline's runs, to
publish the event to the baseline's Redis channel at that moment. A second platform path,
"direct", appends node events through `events.node_event` (broadcast on commit, the path of
services called by views) to show the transport without the engine's broadcast coalescing.
The clients run in a process of their own (bench/ws_clients.py) and note receipt times on the
same monotonic clock. Server CPU time per delivered event is reported beside the latencies:
unlike wall time, other work on the machine barely moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.common import BenchTimeout, percentile, wait_until

BASE_DIR = Path(__file__).resolve().parent.parent
LOG_DIR = BASE_DIR / "var" / "bench"

TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
TARGET_IDLE_KIB = 100.0
# What B3 needs on a quiet machine is about a minute; the whole bench's watchdog includes this.
BUDGET_SECONDS = 150
# Longer than the engine's broadcast coalescing window (20 ms), as any LLM or HTTP node is: each
# completion then starts a batch of its own instead of riding on its node.started's batch.
NODE_MS = 25
# The direct path's pace: one commit every 20 ms measures latency, not a queue building up.
DIRECT_INTERVAL_MS = 20
# Idle sockets are counted on top of this many already open, so one-time costs (code paths,
# buffers, the first subscriptions) stay out of the per-socket figure.
IDLE_BASE_SOCKETS = 100
PAUSE_NODE_TYPE = "bench_pause"


@dataclass
class Budget:
    """B3's share of the bench's time: every wait is the smaller of its own limit and what is left."""

    until: float

    def left(self, limit: float) -> float:
        remaining = self.until - time.monotonic()
        if remaining <= 0:
            raise BenchTimeout("B3 ran out of its time budget")
        return min(limit, remaining)


# =============================================================================
# Processes: the platform, the baseline, the subscribers
# =============================================================================


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def service_process(
    argv: list[str], log_path: Path, ready: Callable[[], bool], what: str, timeout: float
) -> Iterator[subprocess.Popen]:
    """A long-running process (its own session: a Ctrl-C reaches the bench, which stops it), once ready."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - the project's own entry points with fixed argv
            argv,
            cwd=BASE_DIR,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def answering() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode} (see {log_path})")
            return ready()

        wait_until(answering, timeout=timeout, what=f"{what} answering", interval=0.1)
        yield process
    finally:
        process_stop(process)


def process_stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it lingers (none of B3's processes starts children of its own)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def platform_server(port: int, timeout: float) -> contextlib.AbstractContextManager[subprocess.Popen]:
    def live() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2, trust_env=False).status_code == 200
        except httpx.TransportError:
            return False

    argv = [sys.executable, "manage.py", "serve", "--port", str(port)]
    return service_process(argv, LOG_DIR / "b3-server.log", live, "the platform server (manage.py serve)", timeout)


def baseline_server(
    port: int, redis_url: str, channel: str, timeout: float
) -> contextlib.AbstractContextManager[subprocess.Popen]:
    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    argv = [sys.executable, "-m", "bench.ws_baseline", "--port", str(port), "--redis-url", redis_url]
    argv += ["--channel", channel]
    return service_process(argv, LOG_DIR / "b3-baseline.log", listening, "the baseline server", timeout)


class Subscribers:
    """A bench/ws_clients.py process: `count` clients of `url`, its JSON lines read by a thread."""

    def __init__(self, url: str, count: int, authorization: str, terminal: str, timeout: float) -> None:
        self.count = count
        env = {**os.environ, "BENCH_WS_AUTHORIZATION": authorization}
        argv = [sys.executable, "-m", "bench.ws_clients", "--url", url, "--clients", str(count)]
        argv += ["--terminal", terminal, "--connect-timeout", f"{timeout:.0f}", "--timeout", f"{timeout:.0f}"]
        with (LOG_DIR / "b3-clients.log").open("a") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own module with fixed argv
                argv, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name="b3-subscribers", daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _line(self, timeout: float, what: str) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchTimeout(f"{self.count} subscribers: {what} did not happen within {timeout:g} s") from None
        if line is None:
            code = self.process.wait(timeout=10)
            raise RuntimeError(f"the subscribers exited with {code} before {what} (see {LOG_DIR / 'b3-clients.log'})")
        return json.loads(line)

    def subscribed(self, timeout: float) -> float:
        """Seconds until every client had its first message; RuntimeError if any failed."""
        line = self._line(timeout, "subscribing")
        if line["subscribed"] != self.count:
            raise RuntimeError(f"{line['subscribed']} of {self.count} subscribers connected: {line['errors']}")
        return line["connect_s"]

    def received(self, timeout: float) -> dict:
        """What each client received, once every one has the run's end (or gave up)."""
        return self._line(timeout, "the run's end at every client")


@contextlib.contextmanager
def subscribers(url: str, count: int, authorization: str, terminal: str, timeout: float) -> Iterator[Subscribers]:
    clients = Subscribers(url, count, authorization, terminal, timeout)
    try:
        yield clients
    finally:
        process_stop(clients.process)


# =============================================================================
# The worker's side: a run of paused nodes, commit times noted
# =============================================================================


async def _pause(context: Any, config: dict, inputs: dict) -> Any:
    from apps.workflows.nodes import NodeResult

    await asyncio.sleep(config["ms"] / 1000)
    return NodeResult(outputs={"value": inputs.get("value")})


def pause_node_register() -> None:
    """A node type of this process only (the worker): waits, like a call to a model, then passes its value on."""
    from apps.workflows.nodes import REGISTRY, NodeType, register
    from apps.workflows.nodes.base import object_schema

    if PAUSE_NODE_TYPE in REGISTRY:
        return
    register(
        NodeType(
            type=PAUSE_NODE_TYPE,
            description="Bench only: waits `ms` milliseconds, then passes its value on.",
            category="bench",
            config_schema={
                "type": "object",
                "properties": {"ms": {"type": "number", "minimum": 0, "maximum": 1000}},
                "required": ["ms"],
            },
            inputs_schema=object_schema({"value": {}}, ["value"]),
            outputs_schema=object_schema({"value": {}}),
            cost={"basis": "none"},
            run=_pause,
        )
    )


def pause_chain(nodes: int) -> dict:
    """input -> `nodes` pause nodes -> output, as a workflow graph."""
    pauses = [f"p{i}" for i in range(1, nodes + 1)]
    graph_nodes = [{"id": "in", "type": "input", "config": {"name": "x", "schema": {"type": "string"}}}]
    graph_nodes += [{"id": p, "type": PAUSE_NODE_TYPE, "config": {"ms": NODE_MS}} for p in pauses]
    graph_nodes.append({"id": "out", "type": "output", "config": {"name": "result"}})
    for node in graph_nodes:
        node["position"] = {"x": 0, "y": 0}
    path = ["in", *pauses, "out"]
    edges = [
        {"source": s, "source_output": "value", "target": t, "target_input": "value"}
        for s, t in itertools.pairwise(path)
    ]
    return {"nodes": graph_nodes, "edges": edges}


class Stamps:
    """Commit times of one run's events by seq (perf_counter, system-wide); with `bare`, the baseline's feed too."""

    def __init__(self, bare: redis.Redis | None, channel: str) -> None:
        self.bare = bare
        self.channel = channel
        self.committed: dict[int, tuple[float, str]] = {}

    def note(self, event: Any) -> None:
        from apps.executions.broadcast import event_message

        self.committed[event.seq] = (time.perf_counter(), event.type)
        if self.bare is not None:
            # The message the platform's consumer sends, published the moment its row committed.
            # Only in the baseline's runs: elsewhere this round trip would delay the engine's own broadcast.
            self.bare.publish(self.channel, json.dumps({"type": "event", **event_message(event)}, default=str))

    def of(self, kind: str) -> dict[int, float]:
        return {seq: at for seq, (at, type_) in self.committed.items() if type_ == kind}


@contextlib.contextmanager
def commits_noted(stamps: Stamps) -> Iterator[None]:
    """
    The engine's writes (records.py: one autocommitted statement each, so their return is their
    commit) wrapped to note the commit time of the event each returns. The engine and services
    call them through the module, so this reaches the real worker path unchanged.
    """
    from apps.executions import records

    names = ("run_claimed", "node_started", "node_finished", "run_finished")
    originals = {name: getattr(records, name) for name in names}

    def noted(original: Callable) -> Callable:
        @functools.wraps(original)
        def write(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            event = result[1] if isinstance(result, tuple) else result  # node_started: (record id, event)
            if event is not None:
                stamps.note(event)
            return result

        return write

    for name, original in originals.items():
        setattr(records, name, noted(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(records, name, original)


def engine_run(execution: Any, stamps: Stamps) -> None:
    """The run, start to end, through the engine in this thread, as a worker runs it."""
    from apps.executions import engine

    with commits_noted(stamps):
        status = engine.run_execution(execution.pk)
    if status != "succeeded":
        raise RuntimeError(f"B3's run {execution.pk} ended {status!r}")


def direct_run(execution: Any, stamps: Stamps, nodes: int) -> None:
    """
    Node completions appended one per transaction by `events.node_event`, broadcast on commit
    (no coalescing): the transport alone. Paced DIRECT_INTERVAL_MS apart on a fixed schedule,
    so a slow commit does not shift the rest and clients never see a backlog.
    """
    from django.db import transaction

    from apps.executions import events, services

    worker = "bench-b3-direct"
    execution = services.execution_claim(execution_id=execution.pk, worker_id=worker)
    _, payload = events.node_finished_payload(
        node_type=PAUSE_NODE_TYPE,
        attempt=1,
        status="succeeded",
        outputs={"value": "hello"},
        usage={},
        error=None,
        duration_ms=NODE_MS,
    )
    first = time.monotonic()
    for index in range(nodes):
        time.sleep(max(0.0, first + index * DIRECT_INTERVAL_MS / 1000 - time.monotonic()))
        with transaction.atomic():
            event = events.node_event(
                execution, kind="node.completed", node_id=f"p{index + 1}", payload=payload, lease=worker
            )
        stamps.note(event)  # on_commit only queued the broadcast on the sender loop
    services.execution_finish(execution=execution, worker_id=worker, status="succeeded")


# =============================================================================
# Measuring
# =============================================================================


@dataclass
class Servers:
    """Where the platform and the baseline listen, and their processes (for memory and CPU time)."""

    platform_port: int
    platform_pid: int
    baseline_port: int
    baseline_pid: int
    bare: redis.Redis  # this process's client for the baseline's feed
    channel: str


@dataclass
class Setup:
    owner: Any
    version: Any
    authorization: str
    terminal: str
    servers: Servers
    budget: Budget
    nodes: int

    def run_url(self, execution: Any) -> str:
        return f"ws://127.0.0.1:{self.servers.platform_port}/ws/executions/{execution.pk}/"

    def new_run(self) -> Any:
        from apps.executions.services import execution_run

        return execution_run(version=self.version, inputs={"x": "hello"}, owner=self.owner)


def setup_create(servers: Servers, budget: Budget, nodes: int) -> Setup:
    from apps.executions.models import Execution
    from apps.users.models import User
    from apps.users.services import api_key_create
    from apps.workflows.models import Workflow
    from apps.workflows.services import workflow_publish

    pause_node_register()
    owner = User.objects.get_or_create(username="bench-b3", defaults={"email": "bench-b3@example.com"})[0]
    _, key = api_key_create(owner=owner, name="bench", scopes=["read"])
    workflow = Workflow.objects.create(owner=owner, name="b3", graph=pause_chain(nodes))
    version = workflow_publish(workflow=workflow, actor=owner)
    terminal = ",".join(sorted(str(status) for status in Execution.TERMINAL))
    return Setup(owner, version, f"Bearer {key}", terminal, servers, budget, nodes)


def latency_phase(setup: Setup, path: str, count: int) -> dict:
    """One run watched by `count` clients of the platform or the baseline; its figures."""
    from apps.executions.models import Execution

    servers = setup.servers
    execution = setup.new_run()
    stamps = Stamps(servers.bare if path == "baseline" else None, servers.channel)
    if path == "baseline":
        url, server_pid = f"ws://127.0.0.1:{servers.baseline_port}/", servers.baseline_pid
    else:
        url, server_pid = setup.run_url(execution), servers.platform_pid
    with subscribers(url, count, setup.authorization, setup.terminal, setup.budget.left(90)) as clients:
        connect_s = clients.subscribed(setup.budget.left(60))
        cpu = cpu_seconds(server_pid)
        if path == "direct":
            direct_run(execution, stamps, setup.nodes)
        else:
            engine_run(execution, stamps)
        received = clients.received(setup.budget.left(60))
        cpu = cpu_seconds(server_pid) - cpu
    last_seq = Execution.objects.values_list("last_event_seq", flat=True).get(pk=execution.pk)
    # The platform replays what committed before a client joined; the baseline only relays what follows.
    expected = sorted(stamps.committed) if path == "baseline" else list(range(1, last_seq + 1))
    figures = phase_figures(received, stamps.of("node.completed"), expected)
    deliveries = sum(len(client["seqs"]) for client in received["clients"])
    figures.update({"path": path, "subscribers": count, "connect_s": connect_s, "deliveries": deliveries})
    # CPU time, not wall time: what each event sent to each client costs, whatever else runs on the
    # machine (with one client, mostly the server's fixed cost per message and its idle work).
    figures["server_cpu_s"], figures["clients_cpu_s"] = cpu, received["cpu_s"]
    figures["server_cpu_us_per_delivery"] = cpu / deliveries * 1e6 if deliveries else None
    figures["clients_cpu_us_per_delivery"] = received["cpu_s"] / deliveries * 1e6 if deliveries else None
    return figures


def cpu_seconds(pid: int) -> float:
    """User plus system time of a process so far (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase_figures(received: dict, committed: dict[int, float], expected: list[int]) -> dict:
    samples: list[float] = []
    slowest: dict[int, float] = {}
    gaps = Counter()
    for client in received["clients"]:
        seqs = client["seqs"]
        first_receipt = dict(reversed(list(zip(seqs, client["times"], strict=True))))
        for seq, at in committed.items():
            if seq in first_receipt:
                latency = (first_receipt[seq] - at) * 1000
                samples.append(latency)
                slowest[seq] = max(slowest.get(seq, 0.0), latency)
        gaps.update(client_gaps(seqs, expected))
    samples.sort()
    return {
        "events_measured": len(committed),
        "samples": len(samples),
        "p50_ms": percentile(samples, 50) if samples else None,
        "p90_ms": percentile(samples, 90) if samples else None,
        "p99_ms": percentile(samples, 99) if samples else None,
        "max_ms": samples[-1] if samples else None,
        # The time until every subscriber had an event: what fan-out costs the last one served.
        "slowest_client_p50_ms": statistics.median(slowest.values()) if slowest else None,
        "gaps": sum(gaps.values()),
        "gap_kinds": dict(gaps),
        "close_codes": dict(Counter(str(c["close_code"]) for c in received["clients"])),
        "client_errors": sorted({c["error"] for c in received["clients"] if c["error"]})[:5],
        "clients_timed_out": received["timed_out"],
    }


def client_gaps(seqs: list[int], expected: list[int]) -> Counter:
    """What a client got wrong: events missing, unexpected, repeated or out of order."""
    seen, wanted = set(seqs), set(expected)
    return Counter(
        missing=len(wanted - seen),
        unexpected=len(seen - wanted),
        duplicated=len(seqs) - len(seen),
        out_of_order=sum(1 for a, b in itertools.pairwise(seqs) if b < a),
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def settled_rss_kib(pid: int, timeout: float) -> int:
    """VmRSS once two readings a quarter second apart agree within 64 KiB (the server done allocating)."""
    readings = [rss_kib(pid)]

    def settled() -> bool:
        readings.append(rss_kib(pid))
        return abs(readings[-1] - readings[-2]) <= 64

    wait_until(settled, timeout=timeout, what="the server's memory settling", interval=0.25)
    return readings[-1]


def idle_phase(setup: Setup, server_pid: int, count: int) -> dict:
    """Per-socket memory of `count` idle subscribers of a running, quiet run, over IDLE_BASE_SOCKETS already open."""
    from apps.executions import services
    from apps.executions.models import Execution

    execution = setup.new_run()
    worker = "bench-b3-idle"
    execution = services.execution_claim(execution_id=execution.pk, worker_id=worker)
    url = setup.run_url(execution)
    args = (setup.authorization, setup.terminal, setup.budget.left(90))
    with subscribers(url, IDLE_BASE_SOCKETS, *args) as base:
        base_connect_s = base.subscribed(setup.budget.left(60))
        before = settled_rss_kib(server_pid, setup.budget.left(10))
        with subscribers(url, count, *args) as idle:
            connect_s = idle.subscribed(setup.budget.left(60))
            after = settled_rss_kib(server_pid, setup.budget.left(10))
            # The run's end closes every socket from the server's side.
            services.execution_finish(execution=execution, worker_id=worker, status="succeeded")
            idle_received = idle.received(setup.budget.left(60))
        base_received = base.received(setup.budget.left(60))
    expected = list(range(1, Execution.objects.values_list("last_event_seq", flat=True).get(pk=execution.pk) + 1))
    gaps = Counter()
    for client in [*idle_received["clients"], *base_received["clients"]]:
        gaps.update(client_gaps(client["seqs"], expected))
    return {
        "connection_kib": (after - before) / count,
        "sockets": count,
        "open_before": IDLE_BASE_SOCKETS,
        "server_rss_kib_before": before,
        "server_rss_kib_after": after,
        "connect_s": connect_s,
        "base_connect_s": base_connect_s,
        "gaps": sum(gaps.values()),
        "gap_kinds": dict(gaps),
    }


def server_children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def b3(*, redis_url: str, nodes: int, subscribers_max: int, idle_sockets: int, budget_s: float) -> dict:
    budget = Budget(time.monotonic() + budget_s)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / "b3-clients.log").unlink(missing_ok=True)
    platform_port = free_port()
    baseline_port = next(port for port in iter(free_port, None) if port != platform_port)
    channel = f"switchboard-bench-{os.getpid()}-b3-baseline"
    bare = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
    try:
        with (
            platform_server(platform_port, budget.left(60)) as server,
            baseline_server(baseline_port, redis_url, channel, budget.left(30)) as baseline,
        ):
            servers = Servers(platform_port, server.pid, baseline_port, baseline.pid, bare, channel)
            setup = setup_create(servers, budget, nodes)
            # First, on a fresh server: memory freed by earlier sockets would hide the cost of new ones.
            print(f"  B3 idle: {idle_sockets} sockets over {IDLE_BASE_SOCKETS} open ...", flush=True)
            idle = idle_phase(setup, server.pid, idle_sockets)
            phases = {}
            for count in dict.fromkeys((1, subscribers_max)):
                for path in ("engine", "direct", "baseline"):
                    phases[f"{path}-{count}"] = figures = latency_phase(setup, path, count)
                    print(
                        f"  B3 {path} x{count}: p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                        f"gaps {figures['gaps']}",
                        flush=True,
                    )
            processes = {
                "server_pid_children": server_children(server.pid),
                "server_alive_at_end": server.poll() is None,
                "baseline_alive_at_end": baseline.poll() is None,
            }
    finally:
        bare.close()
    processes["server_log_tracebacks"] = (LOG_DIR / "b3-server.log").read_text(errors="replace").count("Traceback")
    return b3_summary(phases, idle, processes, nodes, subscribers_max)


def b3_summary(phases: dict, idle: dict, processes: dict, nodes: int, count: int) -> dict:
    def figure(path: str, subscribers: int, name: str) -> float | None:
        return phases[f"{path}-{subscribers}"][name]

    platform_gaps = sum(p["gaps"] for p in phases.values() if p["path"] != "baseline") + idle["gaps"]
    return {
        "p50_ms": figure("engine", count, "p50_ms"),
        "p99_ms": figure("engine", count, "p99_ms"),
        "gaps": platform_gaps,
        "idle_connection_kib": idle["connection_kib"],
        "baseline_p50_ms": figure("baseline", count, "p50_ms"),
        "baseline_p99_ms": figure("baseline", count, "p99_ms"),
        "subscribers": count,
        "p50_ms_1_subscriber": figure("engine", 1, "p50_ms"),
        "p99_ms_1_subscriber": figure("engine", 1, "p99_ms"),
        "baseline_p50_ms_1_subscriber": figure("baseline", 1, "p50_ms"),
        "baseline_p99_ms_1_subscriber": figure("baseline", 1, "p99_ms"),
        "direct_p50_ms": figure("direct", count, "p50_ms"),
        "direct_p99_ms": figure("direct", count, "p99_ms"),
        "direct_p50_ms_1_subscriber": figure("direct", 1, "p50_ms"),
        "direct_p99_ms_1_subscriber": figure("direct", 1, "p99_ms"),
        "baseline_gaps": sum(p["gaps"] for p in phases.values() if p["path"] == "baseline"),
        "server_cpu_us_per_delivery": figure("engine", count, "server_cpu_us_per_delivery"),
        "direct_server_cpu_us_per_delivery": figure("direct", count, "server_cpu_us_per_delivery"),
        "baseline_server_cpu_us_per_delivery": figure("baseline", count, "server_cpu_us_per_delivery"),
        "target_p50_ms": TARGET_P50_MS,
        "target_p99_ms": TARGET_P99_MS,
        "target_idle_connection_kib": TARGET_IDLE_KIB,
        "p50_target_met": figure("engine", count, "p50_ms") <= TARGET_P50_MS,
        "p99_target_met": figure("engine", count, "p99_ms") <= TARGET_P99_MS,
        "gaps_target_met": platform_gaps == 0,
        "idle_target_met": idle["connection_kib"] <= TARGET_IDLE_KIB,
        "p50_ms_means": "receipt at a WebSocket client minus the commit of a node.completed event, over every "
        "client and node of one engine run (the worker path, broadcast coalescing included); clients and "
        "producer on the same machine, one monotonic clock",
        "direct_means": "the same from events.node_event committed one per transaction, broadcast on commit "
        "(no coalescing): the transport alone",
        "baseline_means": "the same events published to a Redis channel right after each commit, relayed by "
        "bench/ws_baseline.py (websockets + redis-py pub/sub) to the same clients",
        "gaps_means": "events a platform client missed, got twice, got out of order or should not have got, "
        "over every platform socket of B3 (the idle ones included)",
        "idle_connection_kib_means": "daphne's VmRSS growth per socket when opening idle subscribers of a "
        "running, quiet run on top of some already open",
        "server_cpu_us_per_delivery_means": "the server process's CPU time (user + system, all threads) while a run "
        "streamed, per event a client received: once it times the clients exceeds the time between events, the "
        "server falls behind and latency grows with every event",
        "nodes_per_run": nodes,
        "node_ms": NODE_MS,
        "direct_interval_ms": DIRECT_INTERVAL_MS,
        "idle": idle,
        "processes": processes,
        "phases": phases,
    }


# =============================================================================
# Report
# =============================================================================


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def b3_table(b3: dict) -> list[str]:
    count = b3["subscribers"]
    lines = [
        f"B3  live streaming latency  (node.completed commit -> WebSocket receipt; runs of {b3['nodes_per_run']} "
        f"nodes of {b3['node_ms']} ms, direct: one event per {b3['direct_interval_ms']} ms; daphne + Redis pub/sub "
        "vs bare websockets)",
        f"{'path':<22}{'clients':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'slowest p50':>13}{'gaps':>6}"
        f"{'CPU us/event: server':>22}{'clients':>9}",
    ]
    names = {"engine": "platform, engine", "direct": "platform, direct", "baseline": "bare websockets"}
    for phase in b3["phases"].values():
        lines.append(
            f"{names[phase['path']]:<22}{phase['subscribers']:>8}{phase['p50_ms']:>9.1f}{phase['p90_ms']:>9.1f}"
            f"{phase['p99_ms']:>9.1f}{phase['max_ms']:>9.1f}{phase['slowest_client_p50_ms']:>13.1f}{phase['gaps']:>6}"
            f"{phase['server_cpu_us_per_delivery']:>22.0f}{phase['clients_cpu_us_per_delivery']:>9.0f}"
        )
    idle = b3["idle"]
    lines += [
        "",
        f"{'B3 (' + str(count) + ' clients, engine)':<26}{'measured':>10}{'target':>10}   verdict",
        f"{'p50 ms':<26}{b3['p50_ms']:>10.1f}{'<= ' + str(TARGET_P50_MS):>10}   {verdict(b3['p50_target_met'])}"
        f"  (baseline {b3['baseline_p50_ms']:.1f}, direct {b3['direct_p50_ms']:.1f})",
        f"{'p99 ms':<26}{b3['p99_ms']:>10.1f}{'<= ' + str(TARGET_P99_MS):>10}   {verdict(b3['p99_target_met'])}"
        f"  (baseline {b3['baseline_p99_ms']:.1f}, direct {b3['direct_p99_ms']:.1f})",
        f"{'gaps':<26}{b3['gaps']:>10}{'0':>10}   {verdict(b3['gaps_target_met'])}",
        f"{'idle connection KiB':<26}{b3['idle_connection_kib']:>10.1f}{'<= ' + str(TARGET_IDLE_KIB):>10}"
        f"   {verdict(b3['idle_target_met'])}  ({idle['sockets']} sockets over {idle['open_before']})",
        f"{'server CPU us per client':<26}{b3['server_cpu_us_per_delivery']:>10.0f}{'':>10}   per event delivered"
        f"  (baseline {b3['baseline_server_cpu_us_per_delivery']:.0f}, direct "
        f"{b3['direct_server_cpu_us_per_delivery']:.0f})",
    ]
    return lines
