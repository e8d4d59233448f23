"""
Real services and processes for the tests.

A test that needs PostgreSQL, Redis or RabbitMQ asks for it here: when the
service is missing the test is skipped on a laptop and fails under CI (CI set),
so a green CI run always means the service was exercised.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_TEST_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
# Variables the tests decide per process; anything else passes through.
PROCESS_VARIABLES = ("DATABASE_URL", "REDIS_URL", "DRAMATIQ_BROKER_URL", "DJANGO_ENV", "SECRET_KEY", "ALLOWED_HOSTS")


def missing_service(name: str, reason: str) -> None:
    message = f"{name} is not reachable ({reason})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must provide it", pytrace=False)
    pytest.skip(message)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _require(name: str, variable: str, default_url: str, default_port: int) -> str:
    url = os.environ.get(variable, default_url)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    if not _reachable(host, port):
        missing_service(name, f"{host}:{port} from {variable}")
    return url


def require_redis() -> str:
    return _require("Redis", "TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL, 6379)


def require_rabbitmq() -> str:
    return _require("RabbitMQ", "TEST_RABBITMQ_URL", DEFAULT_TEST_RABBITMQ_URL, 5672)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    condition: Callable[[], object], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or condition}")
        time.sleep(interval)


def test_database_url() -> str:
    """The URL of the database the tests are using, for processes the tests start."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = quote(settings["USER"] or "", safe="")
    password = quote(settings["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    return f"postgres://{credentials}{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


test_database_url.__test__ = False  # not a test, despite the name


def process_env(**overrides: str | None) -> dict[str, str]:
    """The environment for a child process: the test database, plus overrides (None removes)."""
    env = {key: value for key, value in os.environ.items() if key not in PROCESS_VARIABLES}
    for key in PROCESS_VARIABLES:
        if key in os.environ:
            env[key] = os.environ[key]
    env["DATABASE_URL"] = test_database_url()
    env["SWITCHBOARD_IGNORE_DOTENV"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env if env is not None else process_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=15, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def serve_process(**env_overrides: str | None) -> Iterator[ServerProcess]:
    port = free_port()
    env = process_env(**env_overrides)
    log_dir = Path(tempfile.mkdtemp(prefix="switchboard-serve-"))
    log_path = log_dir / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, env=env)

    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n{server.log()}")
        try:
            return httpx.get(f"{server.url}/health/live", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answering, timeout=30, what="the server to answer /health/live")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(log_dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server_process() -> Iterator[tuple[str, subprocess.Popen]]:
    """A throwaway redis-server on a free port, for tests that stop Redis on purpose."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server", "binary not installed")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="switchboard-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _reachable("127.0.0.1", port), timeout=10, what="redis-server to listen")
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def closing_connections(function: Callable, *args: object, **kwargs: object) -> Callable[[], object]:
    """A thread target that closes its own database connections when done (PostgreSQL counts them)."""
    from django.db import connections

    def target() -> object:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return target


@contextlib.contextmanager
def worker_process(**env: str | None) -> Iterator[subprocess.Popen]:
    """A real `manage.py rundramatiq` process (one process, two threads) on the test database."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"],
        cwd=BASE_DIR,
        env=process_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        print(output)  # shown by pytest when the test fails
