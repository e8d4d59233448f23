"""
Re-encrypt every stored secret under the newest key in CREDENTIAL_KEYS (run after adding a key
in front). Once it reports no unreadable credentials, older keys can be removed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.agents import services


class Command(BaseCommand):
    help = (
        "Re-encrypt all credential secrets with the first key of CREDENTIAL_KEYS, in batches; "
        "older keys can be removed once no credential is reported unreadable. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")

    def handle(self, *args, batch_size: int, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        report = services.credentials_rotate(batch_size=batch_size)
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.rotated} credentials re-encrypted under the newest key; "
                f"{report.current} already were; {len(report.unreadable)} unreadable."
            )
        )
        if report.unreadable:
            for pk in report.unreadable:
                self.stderr.write(f"credential {pk}: no configured key decrypts it; left as it is")
            # Non-zero exit: a script must not remove the old key now.
            raise CommandError(
                f"{len(report.unreadable)} credentials could not be decrypted (ids "
                f"{', '.join(map(str, report.unreadable))}); keep the keys that encrypted them."
            )
