"""
Benchmarks of the execution engine: `python -m bench.run` from the project root (or `make bench`).

B1, orchestration overhead per node: chains of no-op template nodes and a fan-out with a join, run
through the real engine in this process on PostgreSQL, against the same graph shape as a bare
LangGraph StateGraph with no-op nodes; plus the database transactions each run commits.
B2, throughput: thousands of runs of a 3-node workflow started through the service layer and
executed by real `manage.py rundramatiq` worker processes on the Redis broker.
B3, live streaming latency: a node's completion from its commit to WebSocket clients of a
`manage.py serve` (daphne) process, 1 and 100 of them on one run, beside a bare `websockets`
broadcast server fed through Redis; and the memory of an idle socket (bench/b3.py).
B4, REST API throughput: requests per second and p99 of the runs list and of one run with its nodes,
on 10,000 runs served by gunicorn with uvicorn workers in production mode, beside plain Django views
returning the same rows; and the queries of one list request (bench/b4.py).

Everything runs against a throwaway PostgreSQL database and Redis database 13, both cleaned up at
the end (also after a failure), and every wait has a deadline. Prints a table and writes
var/bench/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import urlsplit

import psycopg
import redis
from langgraph.graph import START, StateGraph

from bench import b3, b4
from bench.common import BenchTimeout, percentile, wait_until

BASE_DIR = Path(__file__).resolve().parent.parent
RESULT_PATH = BASE_DIR / "var" / "bench" / "latest.json"
WORKER_LOG_PATH = BASE_DIR / "var" / "bench" / "workers.log"
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

TARGET_MS_PER_NODE = 5.0
TARGET_COMMITS_PER_NODE = 2.0
TARGET_RUNS_PER_SECOND = 150.0
# The whole bench is stopped (and cleaned up) if it runs longer than this; B2 stops waiting for its
# runs early enough to leave CLEANUP_RESERVE_SECONDS for stopping workers and dropping the database,
# and the budgets of B3 and B4 when they run after it.
WATCHDOG_SECONDS = 340 + b3.BUDGET_SECONDS + b4.BUDGET_SECONDS
CLEANUP_RESERVE_SECONDS = 40
CHAINS = (1, 10, 50)
FAN_OUT = 5
HEADLINE_SHAPE = "chain-50"


_started = time.monotonic()


def time_left() -> float:
    """Seconds until the watchdog, less the time cleaning up needs."""
    return WATCHDOG_SECONDS - CLEANUP_RESERVE_SECONDS - (time.monotonic() - _started)


def watchdog_disarm() -> None:
    # Cleaning up has deadlines of its own; the watchdog must not interrupt it halfway.
    signal.alarm(0)


# =============================================================================
# The throwaway environment: database, Redis, settings
# =============================================================================


@dataclass
class Environment:
    database: str
    settings_dir: Path
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        """The admin URL with the bench database in place of its own."""
        return urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{self.database}").geturl()


SETTINGS_MODULE = "switchboard_bench_settings"
SETTINGS_SOURCE = '''"""Switchboard's settings for the bench: a channel-layer prefix of its own."""
from config.settings import *  # noqa: F403

# Redis pub/sub ignores database numbers: keep the bench's broadcasts away from anyone's dev server.
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = {prefix!r}  # noqa: F405
'''


def environment_create() -> Environment:
    pid = os.getpid()
    settings_dir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    (settings_dir / f"{SETTINGS_MODULE}.py").write_text(SETTINGS_SOURCE.format(prefix=f"switchboard-bench-{pid}"))
    env = Environment(database=f"switchboard_bench_{pid}", settings_dir=settings_dir)
    env.variables = {
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings_dir), str(BASE_DIR), os.environ.get("PYTHONPATH")])),
        "SWITCHBOARD_IGNORE_DOTENV": "1",
        "DJANGO_ENV": "development",
        # As in production: no query log kept in memory, no per-run info lines in the figures.
        "DEBUG": "false",
        "LOG_LEVEL": "warning",
        "DATABASE_URL": env.database_url,
        "REDIS_URL": REDIS_URL,
        # A stuck run ends at its budget instead of holding the bench.
        "EXECUTION_TIME_BUDGET_SECONDS": "120",
    }
    return env


def environment_apply(env: Environment) -> None:
    """Variables for this process (before Django reads its settings) and the workers it starts."""
    os.environ.update(env.variables)
    os.environ.pop("DRAMATIQ_BROKER_URL", None)  # the broker is REDIS_URL, db 13
    sys.path.insert(0, str(env.settings_dir))


def admin_execute(sql: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def redis_flush() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def migrate() -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=BASE_DIR,
        env=os.environ.copy(),
        check=True,
        timeout=180,
    )


@contextlib.contextmanager
def throwaway_environment() -> Iterator[Environment]:
    env = environment_create()
    try:
        environment_apply(env)
        redis_flush()
        admin_execute(f'CREATE DATABASE "{env.database}"')
        migrate()
        yield env
    finally:
        watchdog_disarm()
        _close_django_connections()
        with contextlib.suppress(Exception):
            admin_execute(f'DROP DATABASE IF EXISTS "{env.database}" WITH (FORCE)')
        with contextlib.suppress(Exception):
            redis_flush()
        shutil.rmtree(env.settings_dir, ignore_errors=True)


def _close_django_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


# =============================================================================
# Graph shapes: the same shape as a workflow graph and as a bare LangGraph
# =============================================================================


@dataclass
class Shape:
    """A graph shape: node ids with their workflow type and config, and (source, output, target, input) edges."""

    name: str
    nodes: list[tuple[str, str, dict]]
    edges: list[tuple[str, str, str, str]]

    def workflow_graph(self) -> dict:
        return {
            "nodes": [{"id": i, "type": t, "config": c, "position": {"x": 0, "y": 0}} for i, t, c in self.nodes],
            "edges": [
                {"source": s, "source_output": so, "target": t, "target_input": ti} for s, so, t, ti in self.edges
            ],
        }


INPUT = ("in", "input", {"name": "x", "schema": {"type": "string"}})
PASS_ON = {"template": "{{ x }}"}


def chain(length: int) -> Shape:
    """input -> `length` template nodes passing the value along -> output."""
    templates = [f"t{i}" for i in range(1, length + 1)]
    nodes = [INPUT, *[(t, "template", PASS_ON) for t in templates], ("out", "output", {"name": "result"})]
    path = ["in", *templates, "out"]
    edges = [
        (source, "value" if source == "in" else "text", target, "value" if target == "out" else "x")
        for source, target in itertools.pairwise(path)
    ]
    return Shape(f"chain-{length}", nodes, edges)


def fan_out(width: int) -> Shape:
    """input -> `width` parallel template nodes -> one template joining their outputs -> output."""
    branches = [f"f{i}" for i in range(1, width + 1)]
    names = [chr(ord("a") + i) for i in range(width)]
    join = {"template": "".join("{{ " + name + " }}" for name in names)}
    nodes = [INPUT, *[(b, "template", PASS_ON) for b in branches], ("join", "template", join)]
    nodes.append(("out", "output", {"name": "result"}))
    edges = [("in", "value", b, "x") for b in branches]
    edges += [(b, "text", "join", name) for b, name in zip(branches, names, strict=True)]
    edges.append(("join", "text", "out", "value"))
    return Shape(f"fanout-{width}", nodes, edges)


def _merge(left: dict | None, right: dict | None) -> dict:
    return {**(left or {}), **(right or {})}


class BareState(TypedDict, total=False):
    values: Annotated[dict, _merge]


async def _noop(state: BareState) -> None:
    return None


def bare_langgraph(shape: Shape) -> Any:
    """The shape as a StateGraph of no-op async nodes, static edges, no Django."""
    builder = StateGraph(BareState)
    for node_id, _, _ in shape.nodes:
        builder.add_node(node_id, _noop)
    builder.add_edge(START, shape.nodes[0][0])
    for source, target in dict.fromkeys((s, t) for s, _, t, _ in shape.edges):
        builder.add_edge(source, target)
    return builder.compile()


# =============================================================================
# B1: orchestration overhead per node, in-process
# =============================================================================


class TransactionCounter:
    """
    Client-side count of what one connection does: statements, committed atomic blocks, and
    statements outside any atomic block (each its own transaction under autocommit).
    """

    # Anywhere in the statement: a data-modifying CTE (WITH ... INSERT ...) writes too.
    WRITES = re.compile(r"\bINSERT\s+INTO\b|\bUPDATE\s+\S+\s+SET\b|\bDELETE\s+FROM\b", re.IGNORECASE)

    def __init__(self) -> None:
        self.statements = self.atomic_commits = self.autocommit_statements = self.autocommit_writes = 0

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        self.statements += 1
        if not context["connection"].in_atomic_block:
            self.autocommit_statements += 1
            self.autocommit_writes += bool(self.WRITES.search(sql))
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def installed(self, connection: Any) -> Iterator[TransactionCounter]:
        # Atomic blocks end in connection.commit(), which no execute wrapper sees.
        original = connection.commit

        def commit() -> None:
            self.atomic_commits += 1
            original()

        connection.commit = commit
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            del connection.commit

    def snapshot(self) -> dict[str, int]:
        return {
            "statements": self.statements,
            "atomic_commits": self.atomic_commits,
            "autocommit_statements": self.autocommit_statements,
            "autocommit_writes": self.autocommit_writes,
        }


class ServerCommits:
    """`pg_stat_database.xact_commit` of the bench database, read from another database's connection."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.monitor = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)

    def read(self) -> int:
        from django.db import connection

        # Backends report their statistics lazily; this makes the engine's connection report them
        # before it answers, so the figure read next is complete (this statement counts as one).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        row = self.monitor.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.database,)
        ).fetchone()
        return int(row[0])

    def idle_baseline(self, samples: int = 5) -> int:
        deltas = []
        for _ in range(samples):
            before = self.read()
            deltas.append(self.read() - before)
        return min(deltas)

    def close(self) -> None:
        self.monitor.close()


def bench_owner() -> Any:
    from apps.users.models import User

    return User.objects.create_user(username="bench", email="bench@example.com")


def publish(owner: Any, shape: Shape, name: str) -> Any:
    from apps.workflows.models import Workflow
    from apps.workflows.services import workflow_publish

    workflow = Workflow.objects.create(owner=owner, name=name, graph=shape.workflow_graph())
    return workflow_publish(workflow=workflow, actor=owner)


def engine_once(version: Any, owner: Any) -> tuple[float, float, float]:
    """One run through the service layer and the engine in this thread; (create ms, run ms, CPU ms)."""
    from apps.executions import engine
    from apps.executions.services import execution_run

    cpu = time.process_time()
    started = time.perf_counter()
    execution = execution_run(version=version, inputs={"x": "hello"}, owner=owner)
    created = time.perf_counter()
    status = engine.run_execution(execution.pk)
    finished = time.perf_counter()
    if status != "succeeded":
        raise RuntimeError(f"bench run {execution.pk} of {version} ended {status!r}")
    return (created - started) * 1000, (finished - created) * 1000, (time.process_time() - cpu) * 1000


def engine_series(shape: Shape, owner: Any, runs: int, warmups: int, commits: ServerCommits, baseline: int) -> dict:
    from django.db import connection

    version = publish(owner, shape, shape.name)
    for _ in range(warmups):
        engine_once(version, owner)
    create_ms, run_ms, cpu_ms, server_commits, client = [], [], [], [], []
    for _ in range(runs):
        before = commits.read()
        with TransactionCounter().installed(connection) as counter:
            created, ran, cpu = engine_once(version, owner)
        server_commits.append(commits.read() - before - baseline)
        create_ms.append(created)
        run_ms.append(ran)
        cpu_ms.append(cpu)
        client.append(counter.snapshot())
    return {
        "create_ms": statistics.median(create_ms),
        "run_ms": statistics.median(run_ms),
        "engine_ms": statistics.median(c + r for c, r in zip(create_ms, run_ms, strict=True)),
        "engine_ms_min": min(c + r for c, r in zip(create_ms, run_ms, strict=True)),
        # This process's CPU time (every thread): steadier than wall time when other work shares the cores.
        "engine_cpu_ms": statistics.median(cpu_ms),
        "commits_per_run": statistics.median(server_commits),
        "client": {key: statistics.median(sample[key] for sample in client) for key in client[0]},
    }


def bare_series(shape: Shape, runs: int, warmups: int) -> dict:
    graph = bare_langgraph(shape)
    timings = []
    with asyncio_runner() as runner:
        for index in range(warmups + runs):
            started = time.perf_counter()
            runner.run(graph.ainvoke({"values": {}}))
            if index >= warmups:
                timings.append((time.perf_counter() - started) * 1000)
    return {"bare_ms": statistics.median(timings), "bare_ms_min": min(timings)}


@contextlib.contextmanager
def asyncio_runner() -> Iterator[Any]:
    import asyncio

    runner = asyncio.Runner()
    try:
        yield runner
    finally:
        runner.close()


def b1(env: Environment, runs: int, warmups: int) -> dict:
    shapes = [*(chain(length) for length in CHAINS), fan_out(FAN_OUT)]
    owner = bench_owner()
    commits = ServerCommits(env.database)
    try:
        baseline = commits.idle_baseline()
        results = {}
        for shape in shapes:
            figures = {"nodes": len(shape.nodes), **engine_series(shape, owner, runs, warmups, commits, baseline)}
            figures.update(bare_series(shape, runs, warmups))
            results[shape.name] = per_node(figures)
            print(f"  B1 {shape.name}: {results[shape.name]['engine_ms']:.1f} ms per run", flush=True)
    finally:
        commits.close()
    return b1_summary(results, runs, warmups, baseline)


def per_node(figures: dict) -> dict:
    nodes = figures["nodes"]
    figures["overhead_ms_per_node"] = (figures["engine_ms"] - figures["bare_ms"]) / nodes
    figures["commits_per_node"] = figures["commits_per_run"] / nodes
    client = figures["client"]
    # Transactions that wrote: committed atomic blocks plus lone INSERT/UPDATE/DELETE statements.
    figures["write_commits_per_node"] = (client["atomic_commits"] + client["autocommit_writes"]) / nodes
    figures["statements_per_node"] = client["statements"] / nodes
    return figures


def b1_summary(shapes: dict, runs: int, warmups: int, baseline: int) -> dict:
    headline = shapes[HEADLINE_SHAPE]
    longest, shorter = shapes[f"chain-{CHAINS[-1]}"], shapes[f"chain-{CHAINS[-2]}"]
    extra_nodes = longest["nodes"] - shorter["nodes"]
    return {
        "overhead_ms_per_node": headline["overhead_ms_per_node"],
        "commits_per_node": headline["commits_per_node"],
        "write_commits_per_node": headline["write_commits_per_node"],
        "headline_shape": HEADLINE_SHAPE,
        "worst_overhead_ms_per_node": max(s["overhead_ms_per_node"] for s in shapes.values()),
        "worst_commits_per_node": max(s["commits_per_node"] for s in shapes.values()),
        # What one more node costs, free of the per-run work (create, claim, finish).
        "marginal_ms_per_node": (
            (longest["engine_ms"] - longest["bare_ms"]) - (shorter["engine_ms"] - shorter["bare_ms"])
        )
        / extra_nodes,
        "marginal_commits_per_node": (longest["commits_per_run"] - shorter["commits_per_run"]) / extra_nodes,
        "target_ms_per_node": TARGET_MS_PER_NODE,
        "target_commits_per_node": TARGET_COMMITS_PER_NODE,
        "ms_target_met_all_shapes": all(s["overhead_ms_per_node"] <= TARGET_MS_PER_NODE for s in shapes.values()),
        "commits_target_met_all_shapes": all(s["commits_per_node"] <= TARGET_COMMITS_PER_NODE for s in shapes.values()),
        "nodes_counted": "every node the engine executes: the input and output nodes count, so chain-N has N+2 nodes",
        "engine_ms_means": "execution_run (create + queue) plus engine.run_execution, in this thread, median",
        "commits_mean": "pg_stat_database.xact_commit of the bench database per run (every committed transaction, "
        "read-only ones included), idle baseline subtracted, median",
        "runs_per_shape": runs,
        "warmups_per_shape": warmups,
        "idle_baseline_commits": baseline,
        "shapes": shapes,
    }


# =============================================================================
# B2: runs per second through real worker processes
# =============================================================================


@dataclass
class WorkerConfig:
    processes: int
    threads: int

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "manage.py",
            "rundramatiq",
            "--processes",
            str(self.processes),
            "--threads",
            str(self.threads),
            # Idle workers stop at once; this only bounds a stop while runs are still in flight.
            "--worker-shutdown-timeout",
            "15000",
        ]


@contextlib.contextmanager
def worker_processes(config: WorkerConfig) -> Iterator[subprocess.Popen]:
    WORKER_LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
    with WORKER_LOG_PATH.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - the project's own manage.py with a fixed argv
            config.argv(),
            cwd=BASE_DIR,
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
            # A process group of its own: the worker processes it forks can be killed with it.
            start_new_session=True,
        )
        try:
            yield process
        finally:
            watchdog_disarm()
            workers_stop(process)


def workers_stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (Dramatiq's clean stop), then SIGKILL to the group this bench started if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"  workers did not stop within {timeout:g} s: killing process group {process.pid}", flush=True)
    # A parent killed or crashed can leave its forked worker processes behind.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def start_runs(version: Any, owner: Any, count: int, producers: int, timeout: float) -> tuple[float, float]:
    """`count` runs created and started by `producers` threads as fast as they go; wall time of first and last."""
    from django.db import connections

    from apps.executions.services import execution_run

    errors: list[BaseException] = []

    def produce(share: int) -> None:
        try:
            for _ in range(share):
                execution_run(version=version, inputs={"x": "hello"}, owner=owner)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's connection only

    shares = [count // producers + (index < count % producers) for index in range(producers)]
    threads = [threading.Thread(target=produce, args=(share,), daemon=True) for share in shares]
    first = time.time()
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise BenchTimeout(f"starting {count} runs took longer than {timeout:g} s")
    if errors:
        raise errors[0]
    return first, time.time()


def wait_terminal(workflow: Any, count: int, timeout: float) -> bool:
    """Polls until `count` runs of `workflow` are terminal; False when the deadline passed first."""
    from apps.executions.models import Execution

    runs = Execution.objects.filter(workflow=workflow, status__in=Execution.TERMINAL)
    try:
        wait_until(lambda: runs.count() >= count, timeout=timeout, what="the runs' end", interval=0.2)
    except BenchTimeout:
        return False
    return True


def run_outcome(workflow: Any, count: int) -> dict:
    from django.db.models import Count

    from apps.executions.models import Execution, NodeExecution

    runs = Execution.objects.filter(workflow=workflow).order_by()
    statuses = {row["status"]: row["n"] for row in runs.values("status").annotate(n=Count("pk"))}
    nodes = NodeExecution.objects.filter(execution__workflow=workflow).order_by()
    succeeded_twice = (
        nodes.filter(status=NodeExecution.Status.SUCCEEDED)
        .values("execution_id", "node_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values_list("execution_id", flat=True)
    )
    retried = nodes.filter(attempt__gt=1).values_list("execution_id", flat=True)
    redelivered = runs.filter(attempt__gt=1).values_list("pk", flat=True)
    return {
        "statuses": statuses,
        "lost": count - statuses.get(Execution.Status.SUCCEEDED, 0),
        "duplicated": len(set(succeeded_twice) | set(retried) | set(redelivered)),
        "node_records": nodes.count(),
    }


def run_timeline(workflow: Any, first_send: float) -> dict:
    from django.db.models import Max

    from apps.executions.models import Execution

    runs = Execution.objects.filter(workflow=workflow, finished_at__isnull=False).order_by()
    last = runs.aggregate(last=Max("finished_at"))["last"]
    latencies = sorted(
        (finished - queued).total_seconds() * 1000 for queued, finished in runs.values_list("queued_at", "finished_at")
    )
    if last is None:
        return {"elapsed_s": None}
    return {
        "elapsed_s": last.timestamp() - first_send,
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p95": percentile(latencies, 95),
        "latency_ms_max": latencies[-1],
    }


def b2(count: int, workers: WorkerConfig, producers: int, deadline: float, reserve: float = 0.0) -> dict:
    import dramatiq

    owner = bench_owner_b2()
    warmup_version, version = publish(owner, chain(1), "b2-warmup"), publish(owner, chain(1), "b2")
    dramatiq.get_broker().flush_all()  # B1's messages, which nobody consumed
    with worker_processes(workers) as process:
        ready_s, warmups = workers_warm_up(warmup_version, owner, workers)
        # Counted from the first send, and never into the time the cleanup (or a later benchmark) needs.
        deadline = max(5.0, min(deadline, time_left() - reserve))
        first_send, last_send = start_runs(version, owner, count, producers, timeout=deadline)
        finished = wait_terminal(version.workflow, count, timeout=max(1.0, deadline - (time.time() - first_send)))
        waited = time.time() - first_send
        alive = process.poll() is None
    figures = {
        "runs": count,
        "all_terminal_by_deadline": finished,
        "deadline_s": round(deadline, 1),
        "workers": {"command": " ".join(workers.argv()[1:]), **workers.__dict__, "alive_at_end": alive},
        "producer_threads": producers,
        "start_s": last_send - first_send,
        "start_rate_per_second": count / (last_send - first_send),
        "warmup_runs": warmups,
        "workers_ready_s": ready_s,
    }
    return b2_summary(version.workflow, first_send, waited, figures)


def workers_warm_up(version: Any, owner: Any, workers: WorkerConfig) -> tuple[float, int]:
    """Readiness: a warm-up batch finishes, so the timed runs start on booted, warm workers."""
    warmups = 2 * workers.processes * workers.threads
    booted = time.monotonic()
    start_runs(version, owner, warmups, 1, timeout=60)
    if not wait_terminal(version.workflow, warmups, timeout=90):
        raise BenchTimeout(f"the workers did not finish {warmups} warm-up runs (see {WORKER_LOG_PATH})")
    return time.monotonic() - booted, warmups


def b2_summary(workflow: Any, first_send: float, waited: float, figures: dict) -> dict:
    count = figures["runs"]
    outcome = run_outcome(workflow, count)
    timeline = run_timeline(workflow, first_send)
    # Unfinished runs: the rate of those that did finish within the time waited.
    elapsed = timeline["elapsed_s"] if figures["all_terminal_by_deadline"] else waited
    succeeded = count - outcome["lost"]
    rate = succeeded / elapsed if elapsed else 0.0
    return {
        "runs_per_second": rate,
        "lost": outcome["lost"],
        "duplicated": outcome["duplicated"],
        "target_runs_per_second": TARGET_RUNS_PER_SECOND,
        "runs_per_second_target_met": rate >= TARGET_RUNS_PER_SECOND,
        "runs_per_second_means": "runs succeeded / seconds from the first execution_run call to the last finished_at",
        **figures,
        "drain_after_last_start_s": elapsed - figures["start_s"] if elapsed else None,
        "statuses": outcome["statuses"],
        "node_records": outcome["node_records"],
        **timeline,
    }


def bench_owner_b2() -> Any:
    from apps.users.models import User

    return User.objects.get_or_create(username="bench-b2", defaults={"email": "bench-b2@example.com"})[0]


# =============================================================================
# Report
# =============================================================================


def machine_info() -> dict:
    from importlib.metadata import version

    cpu = next(
        (line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")), ""
    )
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        # Other work on the same cores moves every figure here: the load says how busy the machine was.
        "load_average_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "synchronous_commit": sync_commit,
        "redis": redis.Redis.from_url(REDIS_URL, socket_timeout=5).info("server")["redis_version"],
        "django": version("django"),
        "langgraph": version("langgraph"),
        "dramatiq": version("dramatiq"),
        "git_commit": _git_commit(),
    }


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - read-only, git from PATH
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def b1_table(b1: dict) -> list[str]:
    lines = [
        f"B1  orchestration overhead per node  ({b1['runs_per_shape']} runs per shape after "
        f"{b1['warmups_per_shape']} warm-ups, medians; nodes include input and output)",
        f"{'shape':<10}{'nodes':>6}{'engine ms':>11}{'create':>8}{'run':>8}{'cpu':>8}{'bare ms':>9}"
        f"{'ovh ms/node':>13}{'commits/run':>13}{'commits/node':>14}{'writes/node':>13}{'stmts/node':>12}",
    ]
    for name, s in b1["shapes"].items():
        lines.append(
            f"{name:<10}{s['nodes']:>6}{s['engine_ms']:>11.1f}{s['create_ms']:>8.1f}{s['run_ms']:>8.1f}"
            f"{s['engine_cpu_ms']:>8.1f}"
            f"{s['bare_ms']:>9.2f}{s['overhead_ms_per_node']:>13.2f}{s['commits_per_run']:>13.1f}"
            f"{s['commits_per_node']:>14.2f}{s['write_commits_per_node']:>13.2f}{s['statements_per_node']:>12.1f}"
        )
    ms_ok = b1["overhead_ms_per_node"] <= TARGET_MS_PER_NODE
    commits_ok = b1["commits_per_node"] <= TARGET_COMMITS_PER_NODE
    lines += [
        "",
        f"{'B1 (' + b1['headline_shape'] + ')':<26}{'measured':>10}{'target':>10}   verdict   (all shapes)",
        f"{'overhead ms per node':<26}{b1['overhead_ms_per_node']:>10.2f}{'<= ' + str(TARGET_MS_PER_NODE):>10}"
        f"   {verdict(ms_ok):<9} ({verdict(b1['ms_target_met_all_shapes'])}, worst "
        f"{b1['worst_overhead_ms_per_node']:.2f})",
        f"{'commits per node':<26}{b1['commits_per_node']:>10.2f}{'<= ' + str(TARGET_COMMITS_PER_NODE):>10}"
        f"   {verdict(commits_ok):<9} ({verdict(b1['commits_target_met_all_shapes'])}, worst "
        f"{b1['worst_commits_per_node']:.2f})",
        f"{'marginal node (50 vs 10)':<26}{b1['marginal_ms_per_node']:>10.2f} ms, "
        f"{b1['marginal_commits_per_node']:.2f} commits",
    ]
    return lines


def b2_table(b2: dict) -> list[str]:
    workers = b2["workers"]
    return [
        f"B2  throughput  ({b2['runs']} runs of input -> template -> output; rundramatiq --processes "
        f"{workers['processes']} --threads {workers['threads']}; {b2['producer_threads']} producer threads)",
        f"{'':<26}{'measured':>10}{'target':>10}   verdict",
        f"{'runs per second':<26}{b2['runs_per_second']:>10.1f}{'>= ' + str(TARGET_RUNS_PER_SECOND):>10}"
        f"   {verdict(b2['runs_per_second_target_met'])}",
        f"{'lost':<26}{b2['lost']:>10}{'0':>10}   {verdict(b2['lost'] == 0)}",
        f"{'duplicated':<26}{b2['duplicated']:>10}{'0':>10}   {verdict(b2['duplicated'] == 0)}",
        f"{'started per second':<26}{b2['start_rate_per_second']:>10.1f}   (execution_run, beside the workers)",
        f"{'latency p50 / p95 ms':<26}{b2.get('latency_ms_p50', 0):>10.0f} / {b2.get('latency_ms_p95', 0):.0f}"
        "   (queued -> finished)",
    ]


def report(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"Switchboard engine bench  {meta['timestamp']}  {meta['cpus']} CPUs ({meta['cpu']}), "
        f"PostgreSQL {meta['postgresql']}, LangGraph {meta['langgraph']}, commit {meta['git_commit']}",
        f"load average (1 min) {meta['load_average_at_start'][0]:.1f} at start, "
        f"{meta.get('load_average_at_end', [0.0])[0]:.1f} at end: other work on these cores moves every figure",
        "",
    ]
    if "B1" in results:
        lines += [*b1_table(results["B1"]), ""]
    if "B2" in results:
        lines += [*b2_table(results["B2"]), ""]
    if "B3" in results:
        lines += [*b3.b3_table(results["B3"]), ""]
    if "B4" in results:
        lines += [*b4.b4_table(results["B4"]), ""]
    if "error" in results:
        lines.append(f"ERROR: {results['error']}")
    return "\n".join(lines)


def write_results(results: dict) -> None:
    RESULT_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULT_PATH.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")


# =============================================================================
# Main
# =============================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--only", choices=("B1", "B2", "B3", "B4"), help="run one benchmark only")
    parser.add_argument("--runs", type=int, default=20, help="B1: timed runs per shape (default 20)")
    parser.add_argument("--warmups", type=int, default=2, help="B1: untimed runs per shape first (default 2)")
    parser.add_argument("--b2-runs", type=int, default=2000, help="B2: runs to start (default 2000)")
    parser.add_argument("--processes", type=int, default=2, help="B2: worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="B2: threads per worker process (default 4)")
    parser.add_argument("--producers", type=int, default=2, help="B2: threads starting runs (default 2)")
    parser.add_argument(
        "--b2-deadline", type=float, default=240, help="B2: seconds from the first send until unfinished runs are lost"
    )
    parser.add_argument(
        "--b3-nodes", type=int, default=200, help="B3: nodes per run, each completion measured (default 200)"
    )
    parser.add_argument(
        "--b3-subscribers", type=int, default=100, help="B3: clients on one run, beside the 1-client runs (default 100)"
    )
    parser.add_argument(
        "--b3-idle-sockets", type=int, default=400, help="B3: idle sockets whose memory is measured (default 400)"
    )
    parser.add_argument("--b4-workers", type=int, default=2, help="B4: gunicorn worker processes (default 2)")
    parser.add_argument(
        "--b4-connections", type=int, default=16, help="B4: concurrent keep-alive connections (default 16)"
    )
    parser.add_argument(
        "--b4-rounds", type=int, default=5, help="B4: timed slices per endpoint, interleaved (default 5)"
    )
    parser.add_argument("--b4-slice", type=float, default=2.0, help="B4: seconds per timed slice (default 2)")
    parser.add_argument(
        "--b4-conn-max-age",
        type=int,
        default=-1,
        help="B4: N >= 0 turns the connection pool off and sets DATABASE_CONN_MAX_AGE=N (default: the pool)",
    )
    parser.add_argument(
        "--b4-warmup", type=float, default=2.0, help="B4: untimed seconds per endpoint first (default 2)"
    )
    return parser.parse_args(argv)


def _raise_timeout(signum: int, frame: Any) -> None:
    raise BenchTimeout(f"the bench ran longer than {WATCHDOG_SECONDS} s")


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanup


def run(args: argparse.Namespace, results: dict) -> None:
    with throwaway_environment() as env:
        import django

        django.setup()
        if args.only in (None, "B1"):
            print("B1: engine vs bare LangGraph ...", flush=True)
            results["B1"] = b1(env, args.runs, args.warmups)
        if args.only in (None, "B2"):
            workers = WorkerConfig(args.processes, args.threads)
            print(f"B2: {args.b2_runs} runs on {' '.join(workers.argv()[2:])} ...", flush=True)
            reserve = b3.BUDGET_SECONDS + b4.BUDGET_SECONDS if args.only is None else 0.0
            results["B2"] = b2(args.b2_runs, workers, args.producers, args.b2_deadline, reserve)
        if args.only in (None, "B3"):
            print(f"B3: streaming latency, 1 and {args.b3_subscribers} subscribers ...", flush=True)
            results["B3"] = b3.b3(
                redis_url=REDIS_URL,
                nodes=args.b3_nodes,
                subscribers_max=args.b3_subscribers,
                idle_sockets=args.b3_idle_sockets,
                budget_s=min(b3.BUDGET_SECONDS, time_left() - (b4.BUDGET_SECONDS if args.only is None else 0.0)),
            )
        if args.only in (None, "B4"):
            config = b4.LoadConfig(args.b4_connections, args.b4_warmup, args.b4_slice, args.b4_rounds)
            print(f"B4: REST API throughput, {args.b4_workers} gunicorn workers ...", flush=True)
            results["B4"] = b4.b4(
                redis_url=REDIS_URL,
                workers=args.b4_workers,
                conn_max_age=args.b4_conn_max_age,
                config=config,
                budget_s=min(b4.BUDGET_SECONDS, time_left()),
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.alarm(WATCHDOG_SECONDS)
    results: dict[str, Any] = {"meta": machine_info()}
    try:
        run(args, results)
    except BaseException as exc:  # a signal or the watchdog too: the partial results say why they stop
        results["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        signal.alarm(0)
        results["meta"]["load_average_at_end"] = os.getloadavg()
        results["meta"]["duration_s"] = round(time.monotonic() - _started, 1)
        write_results(results)
        print("\n" + report(results) + f"\nwritten to {RESULT_PATH.relative_to(BASE_DIR)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
