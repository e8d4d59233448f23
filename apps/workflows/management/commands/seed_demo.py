"""Seed the demo agents and workflows for a user (the demo operator by default)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.users.models import User
from apps.workflows.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo agents and workflows (offline, scripted provider) for a user; safe to run again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="operator")

    def handle(self, *args, username: str, **options) -> None:
        owner = User.objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"no user {username!r}; create it first (make run creates 'operator')")
        for workflow in demo_seed(owner=owner):
            self.stdout.write(f"workflow {workflow.pk}: {workflow.name} (v{workflow.latest_version_number})")
