"""Re-encrypt every stored secret under the newest key in CREDENTIAL_KEYS (run after adding a key)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from apps.agents import crypto
from apps.agents.models import Credential


class Command(BaseCommand):
    help = "Re-encrypt all credential secrets with the first key of CREDENTIAL_KEYS; older keys can then be removed."

    def handle(self, *args, **options) -> None:
        rotated = 0
        for credential in Credential.objects.only("pk", "encrypted_secret").iterator():
            with transaction.atomic():
                # Each row on its own: a failure leaves the others readable under either key.
                Credential.objects.filter(pk=credential.pk).update(
                    encrypted_secret=crypto.rotate(credential.encrypted_secret)
                )
            rotated += 1
        self.stdout.write(self.style.SUCCESS(f"{rotated} credentials re-encrypted under the newest key."))
