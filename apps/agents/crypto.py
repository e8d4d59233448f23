"""Encryption of credential secrets at rest: MultiFernet over the keys in CREDENTIAL_KEYS."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """No configured key decrypts the stored secret (keys rotated away, or data corrupted)."""


@cache
def _fernet(keys: tuple[str, ...], secret_key: str, production: bool) -> MultiFernet:
    if not production:
        # Development: a key derived from SECRET_KEY, last, so that secrets saved before
        # CREDENTIAL_KEYS was set stay readable (production requires CREDENTIAL_KEYS).
        digest = hashlib.sha256(f"switchboard-credentials:{secret_key}".encode()).digest()
        keys = (*keys, base64.urlsafe_b64encode(digest).decode())
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("CREDENTIAL_KEYS must hold url-safe base64 Fernet keys of 32 bytes.") from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.CREDENTIAL_KEYS), settings.SECRET_KEY, settings.PRODUCTION)


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("the stored secret cannot be decrypted with the configured CREDENTIAL_KEYS") from exc


def rotate(token: str) -> str:
    """Re-encrypt under the newest key."""
    return fernet().rotate(token.encode()).decode()
