"""The circuit breaker in front of browser launches."""

from __future__ import annotations

from django.conf import settings

from apps.agents.browser.errors import BrowserError


class CircuitBreaker:
    """
    Closed: launches are tried. BROWSER_BREAKER_FAILURES launch failures in a row open it; while
    open, launches are refused at once. After BROWSER_BREAKER_COOLDOWN_SECONDS one trial launch
    (half-open) closes it again or reopens it for another cool-down.
    """

    def __init__(self) -> None:
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_running = False
        self.last_error = ""

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def before_launch(self, now: float) -> None:
        if self.opened_at is None:
            return
        cooldown = float(settings.BROWSER_BREAKER_COOLDOWN_SECONDS)
        waited = now - self.opened_at
        if waited < cooldown or self.trial_running:
            retry = max(0.0, cooldown - waited)
            raise BrowserError(
                "browser_unavailable",
                f"the browser is unavailable: {self.failures} launches failed in a row ({self.last_error}); "
                f"the next attempt is in {retry:.0f} s",
                transient=True,
            )
        self.trial_running = True

    def succeeded(self) -> None:
        self.failures, self.opened_at, self.trial_running, self.last_error = 0, None, False, ""

    def failed(self, now: float, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.trial_running or self.failures >= int(settings.BROWSER_BREAKER_FAILURES):
            self.opened_at = now
        self.trial_running = False
