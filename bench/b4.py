"""
B4, REST API throughput: requests per second and latency of `GET /api/v1/executions/?page_size=50`
and of one run with its nodes (`GET /api/v1/executions/<id>/`), served by the production web
process (gunicorn with uvicorn workers, production settings) over 10,000 runs and 100,000 node
records on PostgreSQL, beside plain Django views that return the same rows from the same process
(bench/plain_views.py), measured in the same run with the endpoints' time slices interleaved.
Also the database queries of one list request, at two page sizes (they must not grow with it).

The load comes from bench/http_load.py in a process of its own: closed-loop keep-alive
connections, each sending its next request when the previous answer is in. Every non-200 answer
is counted as an error. Server CPU time per request (the gunicorn workers, user + system) is
reported beside the rates: on a shared machine it moves less than wall-clock figures do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import redis

from bench.b3 import Budget, free_port, server_children
from bench.common import BenchTimeout, wait_until

BASE_DIR = Path(__file__).resolve().parent.parent
LOG_PATH = BASE_DIR / "var" / "bench" / "b4-server.log"

TARGET_RATIO = 0.35
TARGET_QUERIES_PER_LIST = 5
# Seeding takes about 20 s, the server's start a few, the load (warm-up + rounds x slice) about 50 s
# at the defaults; the whole bench's watchdog includes this.
BUDGET_SECONDS = 180
EXECUTIONS = 10_000
NODES_PER_RUN = 10
PAGE_SIZE = 50
# Requests take the keys in turn, as many programs holding a key each would: up to about 2,000
# API requests per second each key stays within the API's per-key rate (600/min by default).
API_KEYS = 400
# Detail requests go through this many different runs, the same ones for the API and the plain view.
DETAIL_RUNS = 500
LIST_PATH = f"/api/v1/executions/?page_size={PAGE_SIZE}"
PLAIN_LIST_PATH = f"/plain/executions/?page_size={PAGE_SIZE}"
ENDPOINTS = ("plain-list", "api-list", "plain-detail", "api-detail")
# The production set-up sits behind a TLS-terminating proxy that says so (README, "Deploying").
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
HOST = "127.0.0.1"


@dataclass
class Seeded:
    owner: Any
    keys: list[str]
    execution_ids: list[str]
    seconds: float


# =============================================================================
# Data: one user, one workflow, 10,000 runs of 10 nodes
# =============================================================================

SENTENCE = (
    "the quick brown fox jumps over a lazy dog while the model summarises last quarter's report and a tool "
    "fetches figures from the warehouse before one template joins them into an answer"
)
WORDS = SENTENCE.split()
STATUSES = ("succeeded", "failed", "cancelled", "timed_out", "running")
STATUS_WEIGHTS = (80, 10, 4, 2, 4)
NODE_END = {"failed": "failed", "cancelled": "cancelled", "timed_out": "timed_out"}


def text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))


def chain_graph(templates: int) -> dict:
    """input -> `templates` template nodes -> output: the graph whose runs are seeded."""
    ids = ["in", *(f"t{i}" for i in range(1, templates + 1)), "out"]
    nodes = [{"id": "in", "type": "input", "config": {"name": "x", "schema": {"type": "string"}}}]
    nodes += [{"id": i, "type": "template", "config": {"template": "{{ x }}"}} for i in ids[1:-1]]
    nodes.append({"id": "out", "type": "output", "config": {"name": "result"}})
    for node in nodes:
        node["position"] = {"x": 0, "y": 0}
    edges = [
        {
            "source": source,
            "source_output": "value" if source == "in" else "text",
            "target": target,
            "target_input": "value" if target == "out" else "x",
        }
        for source, target in itertools.pairwise(ids)
    ]
    return {"nodes": nodes, "edges": edges}


def seed(executions: int = EXECUTIONS, nodes_per_run: int = NODES_PER_RUN) -> Seeded:
    """Bulk-inserted runs of mixed statuses (newest first every 37 s back), analysed as production's would be."""
    from django.db import connection
    from django.utils import timezone

    from apps.executions.models import Execution, NodeExecution
    from apps.users.models import User
    from apps.users.services import api_key_create
    from apps.workflows.models import Workflow
    from apps.workflows.services import workflow_publish

    started = time.monotonic()
    owner = User.objects.create_user(username="bench-b4", email="bench-b4@example.com")
    workflow = Workflow.objects.create(owner=owner, name="b4", graph=chain_graph(nodes_per_run - 2))
    version = workflow_publish(workflow=workflow, actor=owner)
    keys = [api_key_create(owner=owner, name=f"bench-{index}", scopes=["read"])[1] for index in range(API_KEYS)]
    node_ids = [node["id"] for node in version.graph["nodes"]]
    node_types = [node["type"] for node in version.graph["nodes"]]
    rng = random.Random(4)  # noqa: S311 - repeatable test data, not secrets
    newest = timezone.now() - timedelta(minutes=1)
    runs, nodes, created = [], [], []
    for index in range(executions):
        created_at = newest - timedelta(seconds=37 * index + rng.random())
        run, run_nodes = seeded_run(rng, created_at, rng.choices(STATUSES, STATUS_WEIGHTS)[0], node_ids, node_types)
        run.owner, run.workflow, run.version = owner, workflow, version
        runs.append(run)
        nodes += run_nodes
        created.append(created_at)
    Execution.objects.bulk_create(runs, batch_size=2000)
    NodeExecution.objects.bulk_create(nodes, batch_size=5000)
    with connection.cursor() as cursor:
        # created_at is auto_now_add, which bulk_create fills with the present: one statement sets the spread.
        cursor.execute(
            f"UPDATE {Execution._meta.db_table} AS e SET created_at = v.created_at "  # noqa: S608 - the model's table
            "FROM unnest(%s::uuid[], %s::timestamptz[]) AS v(id, created_at) WHERE e.id = v.id",
            [[run.id for run in runs], created],
        )
        # As autovacuum would have done long ago on a production table, and not in the middle of the load.
        cursor.execute(f"VACUUM (ANALYZE) {Execution._meta.db_table}, {NodeExecution._meta.db_table}")
    return Seeded(owner, keys, [str(run.id) for run in runs], time.monotonic() - started)


def seeded_run(rng: random.Random, created_at: Any, status: str, node_ids: list[str], node_types: list[str]) -> tuple:
    """One run (not saved) and its node records; a run that ended early has its later nodes skipped."""
    from apps.executions.models import Execution, NodeExecution

    run = Execution(
        id=uuid4(),
        status=status,
        trigger=rng.choice(("api", "api", "ui")),
        inputs={"x": text(rng, 5, 30)},
        attempt=1,
        time_budget_seconds=3600,
        last_event_seq=2 + 2 * len(node_ids),
        queued_at=created_at + timedelta(milliseconds=2),
        started_at=created_at + timedelta(milliseconds=rng.randint(5, 60)),
    )
    ends_at = len(node_ids) - 1 if status in ("succeeded", "running") else rng.randrange(1, len(node_ids))
    moment, nodes = run.started_at, []
    for index, (node_id, node_type) in enumerate(zip(node_ids, node_types, strict=True)):
        node = NodeExecution(
            execution=run, node_id=node_id, node_type=node_type, started_at=moment, step=index, attempt=1
        )
        if index < ends_at or status == "succeeded":
            node.status = "succeeded"
            node.inputs = {"x": text(rng, 5, 30)}
            node.outputs = {"text": text(rng, 10, 60)}
            node.duration_ms = rng.randint(1, 400)
            node.finished_at = moment + timedelta(milliseconds=node.duration_ms)
            moment = node.finished_at
        elif index == ends_at and status == "running":
            node.status, node.inputs = "running", {"x": text(rng, 5, 30)}
        elif index == ends_at:
            node.status, node.inputs = NODE_END[status], {"x": text(rng, 5, 30)}
            node.error_code, node.error_message = f"node_{status}", f"The node {status.replace('_', ' ')}."
            node.duration_ms = rng.randint(1, 400)
            node.finished_at = moment = moment + timedelta(milliseconds=node.duration_ms)
        else:
            node.status = "skipped"
        nodes.append(node)
    if status != "running":
        run.finished_at = moment + timedelta(milliseconds=rng.randint(1, 10))
    if status == "succeeded":
        run.outputs = {"result": text(rng, 10, 60)}
    elif status != "running":
        run.error_code, run.error_message = f"run_{status}", f"The run {status.replace('_', ' ')} at a node."
    return run, nodes


# =============================================================================
# Queries per request, in this process
# =============================================================================


def endpoints_present(key: str) -> None:
    """RuntimeError unless the runs API answers a list and a detail request (it may not be written yet)."""
    from django.test import Client

    client = Client()
    listed = client.get("/api/v1/executions/?page_size=1", HTTP_AUTHORIZATION=f"Bearer {key}")
    if listed.status_code != 200 or "results" not in listed.json():
        raise RuntimeError(f"GET /api/v1/executions/ answered {listed.status_code}: is the runs API in place?")
    run_id = listed.json()["results"][0]["id"]
    detail = client.get(f"/api/v1/executions/{run_id}/", HTTP_AUTHORIZATION=f"Bearer {key}")
    if detail.status_code != 200 or "nodes" not in detail.json():
        raise RuntimeError(f"GET /api/v1/executions/<id>/ answered {detail.status_code} or without `nodes`")


def queries_of(path: str, key: str, urlconf: str | None = None) -> list[str]:
    """The SQL one warm GET of `path` runs (a first GET first, so per-key bookkeeping is done)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    client = Client()
    with override_settings(ROOT_URLCONF=urlconf) if urlconf else contextlib.nullcontext():
        client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code} in this process")
    return [query["sql"] for query in captured.captured_queries]


def query_counts(seeded: Seeded) -> dict:
    key, run_id = seeded.keys[0], seeded.execution_ids[0]
    by_size = {size: queries_of(f"/api/v1/executions/?page_size={size}", key) for size in (10, PAGE_SIZE)}
    return {
        "queries_per_list_by_page_size": {str(size): len(sql) for size, sql in by_size.items()},
        "queries_per_detail": len(queries_of(f"/api/v1/executions/{run_id}/", key)),
        "plain_queries_per_list": len(queries_of(PLAIN_LIST_PATH, key, "bench.urls")),
        "plain_queries_per_detail": len(queries_of(f"/plain/executions/{run_id}/", key, "bench.urls")),
        # What they are, shortened: where a count grows, this says which statement.
        "list_queries": [" ".join(sql.split())[:160] for sql in by_size[PAGE_SIZE]],
    }


# =============================================================================
# The production web process
# =============================================================================


def server_argv(port: int, workers: int) -> list[str]:
    """README, "Processes": the web process with several ASGI workers per machine."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "config.asgi:application",
        "-k",
        "uvicorn_worker.UvicornWorker",
        "-w",
        str(workers),
        "-b",
        f"{HOST}:{port}",
        "--graceful-timeout",
        "5",
    ]


def production_variables(conn_max_age: int) -> dict[str, str]:
    """
    What DJANGO_ENV=production refuses to start without (README, "Deploying"), throwaway values.

    The database connections are the project's default, one pool per process (DATABASE_POOL).
    `conn_max_age >= 0` turns the pool off and keeps per-thread connections that long instead:
    Django runs each ASGI request's sync code in a thread of its own, so such a connection is
    never reused; at 60 s, 16 client connections drove PostgreSQL (max_connections 100) to "too
    many clients" within seconds, which is why the pool became the default.
    """
    from cryptography.fernet import Fernet

    variables = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": HOST,
        "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
        "SECURE_PROXY_SSL_HEADER": "true",
        "LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
    }
    if conn_max_age >= 0:
        variables.update(DATABASE_POOL="false", DATABASE_CONN_MAX_AGE=str(conn_max_age))
    return variables


def production_server_missing() -> str | None:
    for module in ("gunicorn", "uvicorn", "uvicorn_worker"):
        if importlib.util.find_spec(module) is None:
            return f"B4 needs the production web server ({module} is missing): pip install -r requirements/prod.txt"
    return None


@contextlib.contextmanager
def production_server(port: int, workers: int, conn_max_age: int, timeout: float) -> Iterator[subprocess.Popen]:
    """gunicorn with uvicorn workers in a session of its own, once every worker is up and it answers."""
    LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
    with LOG_PATH.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - the documented web process with a fixed argv
            server_argv(port, workers),
            cwd=BASE_DIR,
            env={**os.environ, **production_variables(conn_max_age)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode} (see {LOG_PATH})")
            if len(server_children(process.pid)) < workers:
                return False
            try:
                response = httpx.get(
                    f"http://{HOST}:{port}/health/live", headers=PROXY_HEADERS, timeout=2, trust_env=False
                )
            except httpx.TransportError:
                return False
            return response.status_code == 200

        wait_until(ready, timeout=timeout, what="gunicorn answering with every worker up", interval=0.1)
        yield process
    finally:
        server_stop(process)


def server_stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM to the master (it stops its workers), then SIGKILL to the session this bench started."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def same_rows(port: int, seeded: Seeded) -> dict:
    """The API and the plain views answer with the same runs and nodes, before any of it is timed."""
    headers = {**PROXY_HEADERS, "Authorization": f"Bearer {seeded.keys[0]}"}
    with httpx.Client(base_url=f"http://{HOST}:{port}", headers=headers, timeout=10, trust_env=False) as client:
        api, plain = client.get(LIST_PATH), client.get(PLAIN_LIST_PATH)
        run_id = seeded.execution_ids[0]
        api_one, plain_one = client.get(f"/api/v1/executions/{run_id}/"), client.get(f"/plain/executions/{run_id}/")
    for response in (api, plain, api_one, plain_one):
        if response.status_code != 200:
            raise RuntimeError(f"GET {response.url.path} answered {response.status_code} (see {LOG_PATH})")
    api_ids = [row["id"] for row in api.json()["results"]]
    if len(api_ids) != PAGE_SIZE or api_ids != [row["id"] for row in plain.json()["results"]]:
        raise RuntimeError("the API list and the plain view answer with different runs")
    api_nodes = [node["node_id"] for node in api_one.json()["nodes"]]
    if len(api_nodes) != NODES_PER_RUN or api_nodes != [node["node_id"] for node in plain_one.json()["nodes"]]:
        raise RuntimeError("the API detail and the plain view answer with different nodes")
    return {
        "api_list_fields": sorted(api.json()["results"][0]),
        "plain_list_fields": sorted(plain.json()["results"][0]),
    }


# =============================================================================
# Load
# =============================================================================


@dataclass
class LoadConfig:
    connections: int
    warmup_s: float
    slice_s: float
    rounds: int

    def expected_s(self) -> float:
        return len(ENDPOINTS) * (self.warmup_s + self.slice_s * self.rounds)


def load_plan(port: int, seeded: Seeded, config: LoadConfig, cpu_pids: list[int]) -> dict:
    runs = random.Random(4).sample(seeded.execution_ids, DETAIL_RUNS)  # noqa: S311 - not secrets
    return {
        "host": HOST,
        "port": port,
        "connections": config.connections,
        "warmup_s": config.warmup_s,
        "slice_s": config.slice_s,
        "rounds": config.rounds,
        "headers": PROXY_HEADERS,
        "keys": seeded.keys,
        "endpoints": {
            "plain-list": [PLAIN_LIST_PATH],
            "api-list": [LIST_PATH],
            "plain-detail": [f"/plain/executions/{run}/" for run in runs],
            "api-detail": [f"/api/v1/executions/{run}/" for run in runs],
        },
        "cpu_pids": cpu_pids,
    }


def load_run(plan: dict, timeout: float) -> dict:
    """bench/http_load.py with `plan`; its results, or BenchTimeout (the client is stopped either way)."""
    argv = [sys.executable, "-m", "bench.http_load"]
    client = subprocess.Popen(  # noqa: S603 - our own module with a fixed argv
        argv, cwd=BASE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = client.communicate(json.dumps(plan), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchTimeout(f"the load client did not finish within {timeout:.0f} s") from None
    finally:
        if client.poll() is None:  # the deadline, the watchdog or a signal: no load outlives the bench
            client.kill()
            client.communicate(timeout=10)
    if client.returncode != 0:
        raise RuntimeError(f"the load client exited with {client.returncode}: {err.strip()[-2000:]}")
    return json.loads(out)


def db_sessions() -> int:
    """Connections ever opened to the bench database (pg_stat_database.sessions)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def redis_connections(redis_url: str) -> int:
    """Connections the Redis server ever accepted (all its clients: others' count too, usually few)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return int(client.info("stats")["total_connections_received"]) - 1  # less this one
    finally:
        client.close()


def settled_db_sessions(timeout: float) -> int:
    """The count once backends that ended have reported (twice the same reading a quarter second apart)."""
    readings = [db_sessions()]

    def settled() -> bool:
        readings.append(db_sessions())
        return readings[-1] == readings[-2]

    wait_until(settled, timeout=timeout, what="the database's session count settling", interval=0.25)
    return readings[-1]


# =============================================================================
# B4
# =============================================================================


def b4(*, redis_url: str, workers: int, conn_max_age: int, config: LoadConfig, budget_s: float) -> dict:
    budget = Budget(time.monotonic() + budget_s)
    missing = production_server_missing()
    if missing:
        raise RuntimeError(missing)
    print(f"  B4 seeding {EXECUTIONS} runs and {EXECUTIONS * NODES_PER_RUN} node records ...", flush=True)
    seeded = seed()
    endpoints_present(seeded.keys[0])
    queries = query_counts(seeded)
    port = free_port()
    sessions_before = settled_db_sessions(budget.left(10))
    redis_before = redis_connections(redis_url)
    with production_server(port, workers, conn_max_age, budget.left(60)) as server:
        fields = same_rows(port, seeded)
        worker_pids = server_children(server.pid)
        print(
            f"  B4 load: {config.connections} connections, {config.rounds} x {config.slice_s:g} s per endpoint ...",
            flush=True,
        )
        load = load_run(load_plan(port, seeded, config, worker_pids), budget.left(config.expected_s() + 60))
        alive = server.poll() is None and server_children(server.pid) == worker_pids
    opened = {
        "db": settled_db_sessions(budget.left(15)) - sessions_before,
        "redis": redis_connections(redis_url) - redis_before,
    }
    tracebacks = LOG_PATH.read_text(errors="replace").count("Traceback")
    server_info = {
        "command": " ".join(server_argv(port, workers)[2:]),
        "settings": "DJANGO_ENV=production (bench.settings: the project's settings plus the plain views' URLs)",
        "workers": workers,
        "database_conn_max_age": conn_max_age,
        "workers_unchanged_at_end": alive,
        "log_tracebacks": tracebacks,
    }
    return b4_summary(load, queries, seeded, config, server_info, fields, opened)


def b4_summary(
    load: dict, queries: dict, seeded: Seeded, config: LoadConfig, server: dict, fields: dict, opened: dict
) -> dict:
    endpoints = load["endpoints"]
    api, plain = endpoints["api-list"], endpoints["plain-list"]
    api_one, plain_one = endpoints["api-detail"], endpoints["plain-detail"]
    by_size = queries["queries_per_list_by_page_size"]
    list_queries = by_size[str(PAGE_SIZE)]
    ratio = api["requests_per_second"] / plain["requests_per_second"]
    detail_ratio = api_one["requests_per_second"] / plain_one["requests_per_second"]
    errors = sum(e["errors"] for e in endpoints.values())
    requests = load["answered_in_all"]
    return {
        "requests_per_second": api["requests_per_second"],
        "p99_ms": api["p99_ms"],
        "ratio_to_plain_view": ratio,
        "queries_per_list": list_queries,
        "queries_per_list_by_page_size": by_size,
        "detail_requests_per_second": api_one["requests_per_second"],
        "detail_p99_ms": api_one["p99_ms"],
        "detail_ratio_to_plain_view": detail_ratio,
        "queries_per_detail": queries["queries_per_detail"],
        "plain_list_requests_per_second": plain["requests_per_second"],
        "plain_list_p99_ms": plain["p99_ms"],
        "plain_detail_requests_per_second": plain_one["requests_per_second"],
        "plain_detail_p99_ms": plain_one["p99_ms"],
        "plain_queries_per_list": queries["plain_queries_per_list"],
        "plain_queries_per_detail": queries["plain_queries_per_detail"],
        "errors": errors,
        "target_ratio": TARGET_RATIO,
        "target_queries_per_list": TARGET_QUERIES_PER_LIST,
        "ratio_target_met": ratio >= TARGET_RATIO,
        "detail_ratio_target_met": detail_ratio >= TARGET_RATIO,
        "queries_target_met": len(set(by_size.values())) == 1 and list_queries <= TARGET_QUERIES_PER_LIST,
        "errors_target_met": errors == 0,
        # Over every request the server answered, warm-up included.
        "db_connections_opened_per_request": opened["db"] / requests if requests else None,
        "redis_connections_opened_per_request": opened["redis"] / requests if requests else None,
        "requests_per_second_means": f"200 answers to GET {LIST_PATH} per second of the timed slices, "
        f"{config.connections} keep-alive connections each sending its next request when the answer is in",
        "ratio_means": "the API's requests per second over the plain view's (bench/plain_views.py: same rows, "
        "fields, key lookup, ownership scope and middleware; no DRF), same server, slices interleaved",
        "queries_means": "SQL statements of one warm list request in-process (Django test client, "
        "CaptureQueriesContext), key lookup included; at page_size 10 and 50",
        "db_connections_opened_per_request_means": "pg_stat_database.sessions of the bench database over the "
        "server's life, per request it answered (warm-up included)",
        "redis_connections_opened_per_request_means": "the Redis server's total_connections_received over the "
        "server's life, per request answered: any other client of that Redis server counts too",
        "server_cpu_ms_per_request_means": "the gunicorn workers' CPU time (user + system) during the timed "
        "slices, per 200 answer; PostgreSQL's and Redis's work not included",
        "server": server,
        "load": {**config.__dict__, "api_keys": API_KEYS, "detail_runs": DETAIL_RUNS, **load},
        "seed": {
            "executions": len(seeded.execution_ids),
            "node_executions": len(seeded.execution_ids) * NODES_PER_RUN,
            "seconds": round(seeded.seconds, 1),
        },
        "fields": fields,
        "list_queries": queries["list_queries"],
    }


# =============================================================================
# Report
# =============================================================================


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def b4_table(b4: dict) -> list[str]:
    load, seed_ = b4["load"], b4["seed"]
    names = {
        "api-list": f"API list (page_size={PAGE_SIZE})",
        "plain-list": "plain view list",
        "api-detail": f"API detail ({NODES_PER_RUN} nodes)",
        "plain-detail": "plain view detail",
    }
    lines = [
        f"B4  REST API throughput  ({b4['server']['command']}, production settings; {seed_['executions']:,} runs, "
        f"{seed_['node_executions']:,} node records; {load['connections']} connections, {load['rounds']} x "
        f"{load['slice_s']:g} s per endpoint, interleaved)",
        f"{'endpoint':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU ms/req':>12}{'KiB':>7}"
        f"{'errors':>8}   per slice req/s",
    ]
    for name in ("api-list", "plain-list", "api-detail", "plain-detail"):
        e = load["endpoints"][name]
        cpu = e["server_cpu_ms_per_request"]
        lines.append(
            f"{names[name]:<26}{e['requests_per_second']:>8.0f}{e.get('p50_ms', 0):>9.1f}{e.get('p99_ms', 0):>9.1f}"
            f"{e.get('max_ms', 0):>9.1f}{'' if cpu is None else f'{cpu:.2f}':>12}"
            f"{(e['mean_body_bytes'] or 0) / 1024:>7.1f}{e['errors']:>8}   "
            f"{', '.join(f'{rate:.0f}' for rate in e['slice_requests_per_second'])}"
        )
    by_size = b4["queries_per_list_by_page_size"]
    lines += [
        "",
        f"{'B4 (list, page_size=' + str(PAGE_SIZE) + ')':<26}{'measured':>10}{'target':>10}   verdict",
        f"{'ratio to plain view':<26}{b4['ratio_to_plain_view']:>10.2f}{'>= ' + str(TARGET_RATIO):>10}"
        f"   {verdict(b4['ratio_target_met']):<9} (detail {b4['detail_ratio_to_plain_view']:.2f}: "
        f"{verdict(b4['detail_ratio_target_met'])})",
        f"{'queries per list':<26}{b4['queries_per_list']:>10}{'<= ' + str(TARGET_QUERIES_PER_LIST):>10}"
        f"   {verdict(b4['queries_target_met']):<9} (page_size "
        f"{', '.join(f'{size}: {n}' for size, n in by_size.items())}; detail {b4['queries_per_detail']}; plain "
        f"{b4['plain_queries_per_list']} / {b4['plain_queries_per_detail']})",
        f"{'errors (non-200)':<26}{b4['errors']:>10}{'0':>10}   {verdict(b4['errors_target_met'])}",
        f"{'requests per second':<26}{b4['requests_per_second']:>10.0f}{'':>10}   p99 {b4['p99_ms']:.1f} ms",
        f"{'connections / request':<26}{b4['db_connections_opened_per_request']:>10.2f}{'':>10}   "
        f"PostgreSQL; Redis {b4['redis_connections_opened_per_request']:.2f} (opened by the server, warm-up included)",
    ]
    return lines
