"""One progress / cancel protocol for every long task in the core.

Every long-running core function takes the same two keyword arguments::

    def fit(..., progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> ...

``progress(fraction, message)`` is called with a fraction in [0, 1] and a short human-readable message;
``cancel`` is a ``threading.Event`` the caller sets from any thread, and the task then raises :class:`Cancelled`
at its next check. Callers that count steps use :func:`step_progress` to turn ``(done, total)`` into a fraction.
GUI controllers wrap these in Qt signals; the CLI wraps them in tqdm bars; tests pass plain lists.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

ProgressFn = Callable[[float, str], None]


class Cancelled(Exception):
    """A long-running step stopped because its cancel event was set."""


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise :class:`Cancelled` when ``cancel`` is set (a no-op for ``None``)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()


def report(progress: ProgressFn | None, fraction: float, message: str = "") -> None:
    """Call ``progress`` (if any) with ``fraction`` clamped into [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def step_progress(progress: ProgressFn | None, done: int, total: int, message: str = "") -> None:
    """Report ``done`` of ``total`` steps as a fraction."""
    report(progress, done / total if total > 0 else 1.0, message)


class Throttle:
    """Forward progress at most every ``interval_s`` seconds (and always the final 1.0)."""

    def __init__(self, progress: ProgressFn | None, interval_s: float = 0.1) -> None:
        self._progress = progress
        self._interval = interval_s
        self._last = 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last >= self._interval:
            self._last = now
            report(self._progress, fraction, message)


__all__ = ["Cancelled", "ProgressFn", "Throttle", "check_cancel", "report", "step_progress"]
