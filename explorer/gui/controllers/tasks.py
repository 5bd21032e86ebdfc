"""Background work for the GUI: live decoding and one-off tasks.

Two patterns:

* :class:`LatestWinsWorker` - one long-lived thread that serves a stream of
  requests (decode this latent vector) where only the newest matters. Each
  request gets a generation number; a request that arrives while another is
  being served replaces any waiting one, and results older than the newest
  request are dropped, so the cursor never lags behind the mouse.
* :class:`TaskRunner` - runs a function once in a thread pool (encoding a
  dataset, fitting a projection) and reports progress, result or error
  through Qt signals that arrive on the GUI thread.

Both have a synchronous mode so tests can run them deterministically.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, QTimer, Signal

from explorer.core.latent import Cancelled as CoreCancelled


GIL_SWITCH_INTERVAL_S = 0.0005
# While the cursor's decode runs on its thread. Not always: the GUI thread's own inline work and the other
# threads then hand the GIL round five times as often for nothing (28 px drags: p95 4.5-6.6 ms -> 10 ms).
SERVING_SWITCH_INTERVAL_S = 0.0001
INLINE_BELOW_S = 0.002


# The core's exception: a task stopped by its cancel event, whether the core or this module noticed.
Cancelled = CoreCancelled


class LatestWinsWorker(QObject):
    """Serve ``fn(request)`` on a worker thread, newest request first, stale results dropped."""

    result = Signal(int, object, object)  # generation, request, result
    failed = Signal(int, str)
    _served = Signal(int, object, object)  # from whichever thread served it; _deliver orders them

    def __init__(self, fn: Callable[[Any], Any], *, synchronous: bool = False, name: str = "decode",
                 urgent: bool = False) -> None:
        super().__init__()
        self._urgent = urgent  # its results are waited for (the cursor): take the GIL back quickly while serving
        self._fn = fn
        self._sync = synchronous
        self._cond = threading.Condition()
        self._pending: tuple[int, Any] | None = None
        self._generation = 0
        self._closed = False
        self._busy = False
        self._cost_s = float("inf")  # unknown until measured on the worker
        self._thread: threading.Thread | None = None
        self._delivered = 0  # newest generation shown so far
        # A result served on the thread arrives queued; one served inline arrives at once. Without ordering
        # them, a queued older result could land after a newer inline one and the image would jump back.
        self._served.connect(self._deliver)
        if not synchronous:
            # The GUI thread runs Python (slots, pyqtgraph painting) right after submitting, and the decode needs
            # the GIL back after every torch op: with the default 5 ms switch interval a 3 ms conv decode took
            # 60 ms beside a busy Python thread, 10 ms at 0.5 ms, 5-6 ms at 0.1 ms (see _loop).
            if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
                sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
            self._thread = threading.Thread(target=self._loop, name=f"latent-explorer-{name}", daemon=True)
            self._thread.start()

    @property
    def generation(self) -> int:
        return self._generation

    def set_function(self, fn: Callable[[Any], Any]) -> None:
        with self._cond:
            self._fn = fn

    def submit(self, request: Any) -> int:
        with self._cond:
            self._generation += 1
            gen = self._generation
            # A request that costs less than a millisecond or two is cheaper to serve right here
            # than to hand to the thread: the hand-off and the queued result would wait behind
            # the GUI's own painting. Slow requests always go to the thread.
            inline = self._sync or (self._cost_s < INLINE_BELOW_S and self._pending is None and not self._busy)
            if inline:
                fn = self._fn
            else:
                self._pending = (gen, request)
                self._cond.notify()
                return gen
        self._serve(fn, gen, request)
        return gen

    def _serve(self, fn: Callable[[Any], Any], gen: int, request: Any) -> None:
        t0 = time.perf_counter()
        try:
            out = fn(request)
        except Exception as exc:  # report, keep serving
            self.failed.emit(gen, f"{type(exc).__name__}: {exc}")
            return
        cost = time.perf_counter() - t0
        # Running estimate, quick to react to a switch to a slower model.
        if cost > self._cost_s or self._cost_s == float("inf"):
            self._cost_s = cost
        else:
            self._cost_s = 0.8 * self._cost_s + 0.2 * cost
        if gen == self._generation:  # a newer request makes this one stale
            self._served.emit(gen, request, out)

    def _deliver(self, gen: int, request: Any, out: Any) -> None:
        if gen <= self._delivered:
            return  # an older request's result, overtaken by a newer one already shown
        self._delivered = gen
        self.result.emit(gen, request, out)

    def reset_cost(self) -> None:
        """Forget the cost estimate (e.g. the function now serves another model)."""
        self._cost_s = float("inf")

    def _loop(self) -> None:
        from explorer.core.threads import apply

        apply("decode")  # this thread's share of the thread budget, before its first torch call
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                gen, request = self._pending  # type: ignore[misc]
                self._pending = None
                fn = self._fn
                self._busy = True
            base = sys.getswitchinterval()
            if self._urgent:
                sys.setswitchinterval(min(base, SERVING_SWITCH_INTERVAL_S))
            try:
                self._serve(fn, gen, request)
            finally:
                if self._urgent:
                    sys.setswitchinterval(base)
                self._busy = False

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _TaskSignals(QObject):
    progress = Signal(float, str)  # fraction 0..1, message
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def disconnect_all(self) -> None:
        import warnings

        if not shiboken6.isValid(self):
            return
        for sig in (self.progress, self.finished, self.failed, self.cancelled):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                try:
                    sig.disconnect()
                except (RuntimeError, TypeError):
                    pass


class Task(QRunnable):
    """One background job. ``fn(progress, cancel)`` gets a progress callback and a cancel event."""

    def __init__(self, fn: Callable[[Callable[[float, str], None], threading.Event], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = _TaskSignals()
        self.cancel_event = threading.Event()
        self.setAutoDelete(False)  # the runner keeps it until its signals have been delivered

    def cancel(self) -> None:
        self.cancel_event.set()

    def _progress(self, fraction: float, message: str = "") -> None:
        if self.cancel_event.is_set():
            raise Cancelled()
        self.signals.progress.emit(float(fraction), message)

    def run(self) -> None:
        from explorer.core.threads import apply

        apply("task")  # pool threads are reused: set the budget's share at the start of every task
        try:
            self._run()
        except RuntimeError as exc:
            # The window (and with it these signals' QObject) was destroyed while the task ran: nobody is
            # left to tell, which is fine. Anything else is a real error and propagates.
            if "deleted" not in str(exc):
                raise

    def _run(self) -> None:
        try:
            out = self.fn(self._progress, self.cancel_event)
        except Cancelled:
            self.signals.cancelled.emit()
            return
        except Exception as exc:
            if self.cancel_event.is_set():
                self.signals.cancelled.emit()
                return
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.signals.failed.emit(detail)
            return
        if self.cancel_event.is_set():
            self.signals.cancelled.emit()
        else:
            self.signals.finished.emit(out)


_POOL: QThreadPool | None = None


def _task_pool(max_threads: int) -> QThreadPool:
    """The process's pool for background tasks, owned by the application object.

    Not one pool per window: a pool that Python owns is destroyed when its window is garbage-collected,
    and ``~QThreadPool`` waits for its threads while the collecting thread holds the GIL. A pool thread
    that has just finished a task needs the GIL to release the task's Python wrapper, so that wait never
    ends (seen as a hung test run). A pool parented to the application lives until the application does.
    """
    global _POOL
    if _POOL is None or not shiboken6.isValid(_POOL):  # none yet, or its application has been destroyed
        _POOL = QThreadPool(QCoreApplication.instance())
        _POOL.setMaxThreadCount(max_threads)
    elif max_threads > _POOL.maxThreadCount():
        _POOL.setMaxThreadCount(max_threads)
    return _POOL


class TaskRunner(QObject):
    """Starts :class:`Task` objects on the application's task pool (or inline when synchronous)."""

    def __init__(self, *, synchronous: bool = False, max_threads: int = 2) -> None:
        super().__init__()
        self._sync = synchronous
        self._pool = _task_pool(max_threads)
        self._live: set[Task] = set()

    def start(
        self,
        fn: Callable[[Callable[[float, str], None], threading.Event], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
        before: Callable[[Task], None] | None = None,
    ) -> Task:
        """Run ``fn(progress, cancel)`` off the GUI thread (inline when synchronous). ``before`` gets the task
        before it runs, so whoever must be able to cancel it holds it even when it runs inline."""
        task = Task(fn)
        self._live.add(task)
        if before is not None:
            before(task)

        def release(*_: Any) -> None:
            self._live.discard(task)
            # Qt holds the connected callbacks strongly, beyond the garbage collector's sight, and they hold
            # what the task worked on (a model, its data): let go of them once the task has reported.
            QTimer.singleShot(0, task.signals.disconnect_all) if not self._sync else task.signals.disconnect_all()

        if on_progress:
            task.signals.progress.connect(on_progress)
        if on_done:
            task.signals.finished.connect(on_done)
        if on_error:
            task.signals.failed.connect(on_error)
        if on_cancel:
            task.signals.cancelled.connect(on_cancel)
        for sig in (task.signals.finished, task.signals.failed, task.signals.cancelled):
            sig.connect(release)
        if self._sync:
            task.run()
        else:
            self._pool.start(task)
        return task

    def active(self) -> int:
        return len(self._live)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        for task in list(self._live):
            task.cancel()
        self._pool.waitForDone(timeout_ms)
