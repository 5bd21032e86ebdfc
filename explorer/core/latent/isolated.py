"""Fit slow projections (t-SNE, UMAP) in a child process.

Why a process and not a thread: numba (UMAP) and parts of openTSNE hold the GIL for tens to hundreds of
milliseconds at a time, so a fit on a worker thread still freezes the GUI thread now and then (measured:
85-170 ms, up to 0.5 s while numba compiles). A child process has its own GIL, and cancelling is exact:
the child is killed, whatever library call it is in.

The child is long-lived: numba compiles UMAP's kernels once per process (40-75 s), so a second UMAP in the
same child is "warm". :meth:`ProjectionProcess.warm_up` compiles them ahead of time. Killing the child on
cancel loses that warmth; the next request starts a new one.

Wire format, both ways, is JSON headers plus raw bytes (an ``.npz`` for arrays, loaded with
``allow_pickle=False``): nothing is unpickled, even from our own child.
"""

from __future__ import annotations

import io
import json
import math
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import Cancelled
from .projection import PreviewFn, Projection, make_projection
from .projection.estimate import UMAP_COMPILE_SECONDS

ProgressFn = Callable[[float, str], None]
POLL_S = 0.05
NICENESS = 10  # well below the GUI: a fit using every idle core must not make dragging stutter
KEEP_FITTED = 8  # maps the child keeps for transform(): t-SNE / UMAP models of 70k points are ~100 MB each


class ProjectionProcessError(RuntimeError):
    """The child process failed (the message names the projection and the reason) or died."""


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npz_arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


_SEND_LOCK = threading.Lock()  # the child reports from two threads (the fit and its progress creep)


def _send(conn: Any, header: dict[str, Any], payload: bytes = b"") -> None:
    with _SEND_LOCK:  # a header and its payload must not be split by another message
        conn.send_bytes(json.dumps(header).encode("utf-8"))
        if header.get("payload"):
            conn.send_bytes(payload)


def _exit_with_parent() -> None:
    """Exit as soon as the parent process is gone, however it went.

    The pipe's EOF ends the request loop only between requests; a parent killed (or crashed) during a
    minute of numba compiling or a 70k-point fit would otherwise leave this child burning CPU until the
    fit ends. The parent's sentinel works on every platform, unlike watching ``getppid()``.
    """
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=watch, name="latent-explorer-parent-watch", daemon=True).start()


def _child_main(conn: Any) -> None:
    """The child's loop: one request at a time until the pipe closes."""
    try:
        os.nice(NICENESS)
    except (AttributeError, OSError):  # not on this platform, or not allowed: run at normal priority
        pass
    _exit_with_parent()
    from ..threads import configure_child

    n_threads = configure_child("projection-child")  # niced above: every core it finds idle; before numba loads
    fitted: dict[str, Projection] = {}  # token -> fitted projection, kept for transform requests
    while True:
        try:
            header = json.loads(conn.recv_bytes().decode("utf-8"))
        except (EOFError, OSError):
            return
        kind = header.get("kind")
        try:
            if kind == "warm_up":
                from .projection import UMAPProjection

                seconds = UMAPProjection.warm_up()
                _send(conn, {"kind": "done", "seconds": seconds})
            elif kind == "fit":
                latents = _npz_arrays(conn.recv_bytes())["latents"]
                options = dict(header.get("options", {}))
                if header["method"] == "tsne" and not options.get("n_jobs"):
                    options["n_jobs"] = n_threads  # openTSNE would take every core
                proj = make_projection(header["method"], **options)

                def progress(fraction: float, message: str = "") -> None:
                    _send(conn, {"kind": "progress", "fraction": float(fraction), "message": message})

                def preview(embedding: np.ndarray) -> None:
                    _send(conn, {"kind": "preview", "payload": True}, _npz_bytes({"embedding": embedding}))

                proj.fit(latents, progress=progress, preview=preview if header.get("preview") else None)
                if header.get("inverse", True) and not proj.exact_inverse:
                    progress(0.97, "learning the inverse map")
                    proj.fit_inverse()
                token = str(header.get("token", ""))
                if token:
                    fitted[token] = proj
                    while len(fitted) > KEEP_FITTED:  # oldest first: dicts keep insertion order
                        fitted.pop(next(iter(fitted)))
                _send(conn, {"kind": "result", "payload": True}, _npz_bytes(proj.state_dict()))
            elif kind == "transform":
                latents = _npz_arrays(conn.recv_bytes())["latents"]
                proj = fitted.get(str(header.get("token")))
                if proj is None:
                    _send(conn, {"kind": "error", "message": "that map is no longer held by the projection process"})
                else:
                    pos = np.asarray(proj.transform(latents), np.float32)
                    _send(conn, {"kind": "result", "payload": True}, _npz_bytes({"positions": pos}))
            else:
                _send(conn, {"kind": "error", "message": f"unknown request {kind!r}"})
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it there
            _send(conn, {"kind": "error", "message": f"{type(exc).__name__}: {exc}"})


class ProjectionProcess:
    """One child process serving projection fits, started on first use. Thread-safe: requests queue up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self.warm = False
        self._generation = 0  # which child: tokens of a killed child's maps are void
        self._count = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _ensure(self) -> None:
        if self.alive:
            return
        self._discard()
        ctx = mp.get_context("spawn")  # fork would copy Qt's and torch's threads into a broken child
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_child_main, args=(child,), name="latent-explorer-projection", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn, self.warm = proc, parent, False
        self._generation += 1

    def _discard(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self.warm = False
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
                if proc.is_alive():
                    proc.kill()
            proc.join(2.0)

    def _receive(self, cancel: threading.Event | None, progress: ProgressFn | None,
                 label: str, preview: PreviewFn | None = None) -> tuple[dict[str, Any], bytes]:
        while True:
            if cancel is not None and cancel.is_set():
                self._discard()  # the only way to stop numba or FFTW mid-call
                raise Cancelled()
            try:
                ready = self._conn.poll(POLL_S)
            except (EOFError, OSError):
                ready = True  # recv below reports the broken pipe
            if not ready:
                if not self._proc.is_alive():
                    code = self._proc.exitcode
                    self._discard()
                    raise ProjectionProcessError(f"{label}: the projection process stopped (exit code {code}); "
                                                 "it may have run out of memory")
                continue
            try:
                header = json.loads(self._conn.recv_bytes().decode("utf-8"))
                payload = self._conn.recv_bytes() if header.get("payload") else b""
            except (EOFError, OSError) as exc:
                code = self._proc.exitcode if self._proc is not None else None
                self._discard()
                raise ProjectionProcessError(f"{label}: the projection process stopped (exit code {code})") from exc
            kind = header.get("kind")
            if kind == "progress":
                if progress is not None:
                    progress(header["fraction"], header.get("message", ""))
                continue
            if kind == "preview":
                if preview is not None:
                    preview(_npz_arrays(payload)["embedding"])
                continue
            if kind == "error":
                raise ProjectionProcessError(f"{label}: {header.get('message')}")
            return header, payload

    def _acquire(self, cancel: threading.Event | None, progress: ProgressFn | None) -> float:
        """Take the child (a warm-up or another fit may hold it) while honouring ``cancel``.

        While waiting, the bar moves (up to 30%, at the pace of numba's compile, the usual reason to wait) and
        says for how long; returns the fraction shown, so the fit's own progress can continue from there."""
        t0 = time.perf_counter()
        shown, last = 0.0, -math.inf
        while not self._lock.acquire(timeout=POLL_S):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            t = time.perf_counter() - t0
            if progress is not None and t - last >= 0.25:
                last = t
                shown = 0.3 * (1.0 - math.exp(-t / UMAP_COMPILE_SECONDS))
                progress(shown, f"waiting for the projection process (compiling UMAP kernels, first time only): "
                                f"{t:.0f} s")
        return shown

    def warm_up(self, cancel: threading.Event | None = None) -> float:
        """Compile UMAP's numba kernels in the child (once per child); returns seconds spent."""
        self._acquire(cancel, None)
        try:
            self._ensure()
            if self.warm:
                return 0.0
            _send(self._conn, {"kind": "warm_up"})
            header, _ = self._receive(cancel, None, "UMAP warm-up")
            self.warm = True
            return float(header.get("seconds", 0.0))
        finally:
            self._lock.release()

    def fit(self, method: str, latents: np.ndarray, options: dict[str, Any] | None = None, *,
            progress: ProgressFn | None = None, cancel: threading.Event | None = None,
            inverse: bool = True, preview: PreviewFn | None = None) -> Projection:
        """Fit ``make_projection(method, **options)`` on ``latents`` in the child (plus its learned inverse
        unless ``inverse=False``) and return the fitted projection, rebuilt here from its state.

        ``preview(positions)`` receives the partial maps the method streams while it optimises (t-SNE: about
        every 0.4 s, (N, 2) float32), on the thread that called ``fit``: a GUI can draw the map forming."""
        z = np.ascontiguousarray(latents, np.float32)
        options = dict(options or {})
        make_projection(method, **options)  # bad options fail here, with the usual message
        t0 = time.perf_counter()
        waited = self._acquire(cancel, progress)
        if waited > 0 and progress is not None:
            outer = progress

            def progress(fraction: float, message: str = "") -> None:  # the rest of the bar, after the wait
                outer(waited + (1.0 - waited) * fraction, message)
        try:
            self._ensure()
            self._count += 1
            token = f"{self._generation}:{self._count}"
            try:
                _send(self._conn, {"kind": "fit", "method": method, "options": options, "inverse": inverse,
                                   "token": token, "preview": preview is not None})
                self._conn.send_bytes(_npz_bytes({"latents": z}))
            except (BrokenPipeError, OSError) as exc:
                self._discard()
                raise ProjectionProcessError(f"{method}: could not reach the projection process ({exc})") from exc
            _, payload = self._receive(cancel, progress, method, preview)
            if method == "umap":
                self.warm = True
        finally:
            self._lock.release()
        proj = Projection.from_state(_npz_arrays(payload))
        proj.info["wall_seconds"] = round(time.perf_counter() - t0, 3)
        proj.info["process_token"] = token
        return proj

    def can_transform(self, proj: Projection) -> bool:
        """Whether the child still holds ``proj``'s fitted library model (same child, not evicted
        as far as we know)."""
        token = str(proj.info.get("process_token", ""))
        return self.alive and token.split(":")[0] == str(self._generation)

    def transform(self, proj: Projection, latents: np.ndarray, *, cancel: threading.Event | None = None) -> np.ndarray:
        """Place new latents on a map fitted here with the library's own transform (openTSNE's
        optimisation, UMAP's), run in the child. ProjectionProcessError when the child no longer has it."""
        if not self.can_transform(proj):
            raise ProjectionProcessError(f"{proj.method}: the projection process no longer holds this map")
        z = np.ascontiguousarray(latents, np.float32)
        self._acquire(cancel, None)
        try:
            _send(self._conn, {"kind": "transform", "token": proj.info["process_token"]})
            self._conn.send_bytes(_npz_bytes({"latents": z}))
            _, payload = self._receive(cancel, None, proj.method)
        finally:
            self._lock.release()
        return _npz_arrays(payload)["positions"]

    def close(self) -> None:
        with self._lock:
            self._discard()

    def kill(self) -> None:
        """Stop the child now, even from another thread while a request is waiting (that request gets
        ``ProjectionProcessError``)."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()


__all__ = ["ProjectionProcess", "ProjectionProcessError"]
