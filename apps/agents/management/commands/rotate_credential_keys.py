"""The former name of `rotate_credentials`, kept so that existing scripts and runbooks work."""

from __future__ import annotations

from apps.agents.management.commands.rotate_credentials import Command as RotateCredentials


class Command(RotateCredentials):
    help = "Alias of rotate_credentials. " + RotateCredentials.help
