"""
`Idempotency-Key` on POSTs that create something: a repeat with the same key and body gets the
first response (status and body) for IDEMPOTENCY_TTL; the same key with another body is 422; a
repeat while the first is still being handled is 409. A 5xx is not kept, so it can be retried.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from apps.users.api.errors import Conflict, Unprocessable
from apps.users.models import IdempotencyRecord
from apps.users.services import IDEMPOTENCY_TTL

HEADER = "Idempotency-Key"


class Replayed(Exception):
    """The request repeats one already answered: `response` is that answer."""

    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass
class Claim:
    record: IdempotencyRecord

    def keep(self, response: Response) -> None:
        if response.status_code >= 500:
            self.record.delete()  # a failure the client may retry with the same key
            return
        IdempotencyRecord.objects.filter(pk=self.record.pk).update(
            status_code=response.status_code, response_body=response.data
        )


def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request._request.body)
    return digest.hexdigest()


def idempotency_claim(request: Request) -> Claim | None:
    """None without the header; a Claim to fill in with the response; raises Replayed or an API error."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255:
        raise Unprocessable(f"{HEADER} must be 1 to 255 characters.", code="invalid_idempotency_key")
    fingerprint = _fingerprint(request)
    IdempotencyRecord.objects.filter(
        owner=request.user, key=key, created_at__lt=timezone.now() - IDEMPOTENCY_TTL
    ).delete()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(owner=request.user, key=key, request_hash=fingerprint)
        return Claim(record)
    except IntegrityError:
        pass
    first = IdempotencyRecord.objects.filter(owner=request.user, key=key).first()
    if first is None:  # expired and removed in between: treat as new
        return idempotency_claim(request)
    if first.request_hash != fingerprint:
        raise Unprocessable(
            f"This {HEADER} was used with a different request; use a new key.", code="idempotency_key_reused"
        )
    if first.status_code is None:
        raise Conflict(f"A request with this {HEADER} is still being handled.", code="idempotency_in_progress")
    raise Replayed(Response(first.response_body, status=first.status_code, headers={"Idempotent-Replayed": "true"}))
