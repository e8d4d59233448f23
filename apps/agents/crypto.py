"""
Credential secrets at rest and in flight.

At rest: MultiFernet over the keys in CREDENTIAL_KEYS (the first encrypts, all decrypt), plus a
keyed digest of each secret so that a sync can tell an unchanged secret without decrypting it.
In flight: redaction of the secrets a run resolved from whatever the run writes or streams.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """No configured key decrypts the stored secret (keys rotated away, or data corrupted)."""


# --- keys -------------------------------------------------------------------------------------


@cache
def _key_texts(keys: tuple[str, ...], secret_key: str, production: bool) -> tuple[str, ...]:
    if production:
        return keys
    # Development: a key derived from SECRET_KEY, last, so that secrets saved before
    # CREDENTIAL_KEYS was set stay readable (production requires CREDENTIAL_KEYS).
    derived = hashlib.sha256(f"switchboard-credentials:{secret_key}".encode()).digest()
    return (*keys, base64.urlsafe_b64encode(derived).decode())


@cache
def _fernets(keys: tuple[str, ...]) -> tuple[Fernet, ...]:
    try:
        return tuple(Fernet(key.encode()) for key in keys)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("CREDENTIAL_KEYS must hold url-safe base64 Fernet keys of 32 bytes.") from exc


@cache
def _digest_key(newest: str) -> bytes:
    # Derived from the newest key under a label of its own: a database dump alone cannot test
    # guesses of a short secret against its digest. rotate_credentials recomputes the digests.
    return hashlib.sha256(f"switchboard-credential-digest:{newest}".encode()).digest()


def _configured() -> tuple[str, ...]:
    keys = _key_texts(tuple(settings.CREDENTIAL_KEYS), settings.SECRET_KEY, settings.PRODUCTION)
    if not keys:
        raise ImproperlyConfigured("CREDENTIAL_KEYS must be set when DJANGO_ENV=production.")
    return keys


def fernet() -> MultiFernet:
    return MultiFernet(list(_fernets(_configured())))


def newest_fernet() -> Fernet:
    return _fernets(_configured())[0]


# --- at rest ----------------------------------------------------------------------------------


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("the stored secret cannot be decrypted with the configured CREDENTIAL_KEYS") from exc


def rotate(token: str) -> str:
    """Re-encrypt under the newest key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("the stored secret cannot be decrypted with the configured CREDENTIAL_KEYS") from exc


def is_current(token: str) -> bool:
    """Whether the newest key alone decrypts `token` (then rotating it again would change nothing)."""
    try:
        newest_fernet().decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def digest(plaintext: str) -> str:
    """A keyed hash of a secret (HMAC-SHA256, hex), stored beside it to compare without decrypting."""
    return hmac.new(_digest_key(_configured()[0]), plaintext.encode(), hashlib.sha256).hexdigest()


def digest_matches(plaintext: str, stored: str) -> bool:
    return bool(stored) and hmac.compare_digest(digest(plaintext), stored)


# --- in flight ------------------------------------------------------------------------------
# apps.agents.providers (where `redact` lives) imports the LLM clients: imported on first use,
# so that loading the models does not load LangChain.


def redact_all(text: str, secrets: Iterable[str]) -> str:
    """`text` without any of `secrets` (or fragments of 8+ characters, or masked forms of them)."""
    from apps.agents.providers import redact

    for secret in secrets:
        text = redact(text, secret)
    return text


def redact_value(value: Any, secrets: Iterable[str]) -> Any:
    """A JSON-like value with every string (keys included) redacted of `secrets`."""
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        return value
    return _redacted(value, secrets)


def _redacted(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact_all(value, secrets)
    if isinstance(value, dict):
        return {_redacted(key, secrets): _redacted(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item, secrets) for item in value]
    return value


class StreamRedactor:
    """
    Redacts secrets from text that arrives in pieces (an LLM's streamed reply).

    Redacting each piece on its own would let a secret through a few characters at a time, so
    fragments are looked for across the pieces (the last characters already sent are kept, raw,
    to see a fragment that began in them), and an end of the text that is a piece of a secret
    (4 to 7 characters) waits for the next piece to show whether it grows into a fragment.
    At most the first three characters of a secret can go out before it is recognised; what
    waits when the stream stops is never sent (the node's stored output has the whole text).
    `secrets` is read on every piece: the run's list, which grows as it resolves credentials.
    """

    HOLD_FROM = 4  # shorter ends are sent at once: too common to hold every stream's last letters back

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.pending = ""
        self.sent = ""  # the last characters sent, as they were

    def feed(self, piece: str) -> str:
        secrets = [secret for secret in self.secrets if secret]
        start = len(self.sent)
        text = self.sent + self.pending + piece
        if not secrets:
            cut, spans = len(text), []
        else:
            spans = _fragment_spans(text, secrets)
            cut = max(start, len(text) - _held_back(text, secrets, self.HOLD_FROM))
            for span_start, span_stop in spans:
                if span_start < cut < span_stop:
                    cut = max(start, span_start)  # a fragment reaching into the waiting end may still grow
        shown: list[str] = []
        position = start
        for span_start, span_stop in spans:
            first, last = max(span_start, start), min(span_stop, cut)
            if first < last:
                shown += [text[position:first], REDACTED]
                position = last
        shown.append(text[position:cut])
        self.pending = text[cut:]
        self.sent = text[:cut][-_LONGEST_FRAGMENT:]
        return "".join(shown)


REDACTED = "***"
_LONGEST_FRAGMENT = 8  # providers.MIN_SECRET_FRAGMENT, checked by a test


def _fragment_width(secret: str) -> int:
    return min(_LONGEST_FRAGMENT, len(secret))


def _held_back(text: str, secrets: list[str], hold_from: int) -> int:
    """Length of the longest end of `text` (4 to 7 characters) that is a piece of a secret."""
    for length in range(min(_LONGEST_FRAGMENT - 1, len(text)), 0, -1):
        for secret in secrets:
            width = _fragment_width(secret)
            if min(hold_from, width - 1) <= length <= width - 1 and text[-length:] in secret:
                return length
    return 0


def _fragment_spans(text: str, secrets: list[str]) -> list[tuple[int, int]]:
    """Disjoint spans of `text` covered by fragments of any secret (as `redact` finds them)."""
    windows: list[tuple[int, int]] = []
    for secret in secrets:
        width = _fragment_width(secret)
        fragments = {secret[i : i + width] for i in range(len(secret) - width + 1)}
        windows += [(i, i + width) for i in range(len(text) - width + 1) if text[i : i + width] in fragments]
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((start, stop))
    return merged
