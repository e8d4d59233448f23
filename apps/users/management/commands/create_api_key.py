"""Create an API key for a user and print it: the only time the full key is shown."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.users import services
from apps.users.models import User


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it (shown once; only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'nightly report job'.")
        parser.add_argument("--scopes", default="read,write,execute", help="Comma-separated: read, write, execute.")
        parser.add_argument("--description", default="")

    def handle(self, *args, username: str, name: str, scopes: str, description: str, **options) -> None:
        owner = User.objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"No user named {username!r}.")
        try:
            api_key, key = services.api_key_create(
                owner=owner,
                name=name,
                scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
                description=description,
            )
        except ValidationError as error:
            problems = (f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
            raise CommandError("; ".join(problems)) from None
        self.stderr.write(f"Key {api_key.masked} ({', '.join(api_key.scopes)}) for {owner.username}; store it now:")
        self.stdout.write(key)
