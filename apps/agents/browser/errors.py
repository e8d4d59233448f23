"""What browser actions raise, and the timeout every action gets."""

from __future__ import annotations

from django.conf import settings


class BrowserError(Exception):
    """A browser action failed; `code` is machine-readable and the message names the step."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


def first_line(exc: BaseException) -> str:
    text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    # Playwright prefixes its API name ("Locator.click: ..."): the step already says what ran.
    return line.split(": ", 1)[1] if ": " in line and line.split(": ", 1)[0].count(".") == 1 else line


def action_limit(timeout: float | None) -> float:
    """An action's timeout: the caller's if lower, never above BROWSER_ACTION_TIMEOUT_SECONDS."""
    ceiling = float(settings.BROWSER_ACTION_TIMEOUT_SECONDS)
    return min(float(timeout), ceiling) if timeout else ceiling
