"""Create the demo operator for `make run` and print its login (development only)."""

from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.users import services


class Command(BaseCommand):
    help = "Create or refresh the demo operator (a superuser) and print its login. Refused in production."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="operator")
        parser.add_argument("--email", default="operator@example.com")

    def handle(self, *args, username: str, email: str, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("ensure_demo_operator is for development; create operators with createsuperuser.")
        credentials_file = settings.VAR_DIR / "demo-operator.json"
        password = None
        if credentials_file.is_file():
            stored = json.loads(credentials_file.read_text())
            if stored.get("username") == username:
                password = stored.get("password")
        password = password or secrets.token_urlsafe(12)
        user, created = services.demo_operator_ensure(username=username, email=email, password=password)
        settings.VAR_DIR.mkdir(exist_ok=True)
        credentials_file.write_text(json.dumps({"username": username, "password": password}))
        credentials_file.chmod(0o600)
        verb = "Created" if created else "Ready"
        self.stdout.write(self.style.SUCCESS(f"{verb}: demo operator '{user.username}', password '{password}'"))
