"""Checks shared by the API's serializers and the pages' forms."""

from __future__ import annotations

from typing import Any


def holds_nul(value: Any) -> bool:
    """
    True when a key or string anywhere in `value` (JSON-like data) holds U+0000, which
    PostgreSQL's jsonb cannot store (a server error otherwise).
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, str) and "\x00" in item:
            return True
    return False
