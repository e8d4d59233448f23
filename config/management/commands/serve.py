"""`manage.py serve`: the one-process platform (daphne plus, on the embedded default, the worker)."""

from __future__ import annotations

from daphne.cli import CommandLineInterface
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from config import embedded


class Command(BaseCommand):
    help = (
        "Serve HTTP and WebSockets with daphne. On the embedded default (no broker URL) the "
        "Dramatiq worker threads and the scheduler run inside this process too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (default 8000).")
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="Trust X-Forwarded-For/Proto from a reverse proxy in front of this server.",
        )

    def handle(self, *args, host: str, port: int, proxy_headers: bool, **options) -> None:
        if not 0 < port < 65536:
            self.stderr.write(f"--port must be between 1 and 65535, not {port}.")
            raise SystemExit(2)
        if embedded.start():
            self.stdout.write(
                f"Embedded worker: {settings.EMBEDDED_WORKER_THREADS} threads and the scheduler in this process."
            )
        else:
            self.stdout.write(
                "Broker configured: run workers with `manage.py rundramatiq` and one `manage.py crontab`."
            )
        self.stdout.write(f"Switchboard on http://{host}:{port}/")
        argv = ["--bind", host, "--port", str(port), "--access-log", "-"]
        if proxy_headers:
            argv.append("--proxy-headers")
        CommandLineInterface().run([*argv, settings.ASGI_APPLICATION.replace(".application", ":application")])
