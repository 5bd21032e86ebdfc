"""Projections: the requested map is computed in the background; the active one stays fully usable meanwhile.

A model whose data arrives gets PCA at once (instant, exact inverse) when the requested method is slow, so the
cursor decodes and points pick while t-SNE or UMAP fits. A cancelled or failed fit leaves the active map and
turns the request back to it (the projection box then says what is shown).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from explorer.core.explore import ExplorerState, OpenModel, ProjectionChoice
from explorer.core.latent.isolated import ProjectionProcess
from explorer.core.latent.projection import ProjectionCache, cache_key

from .data import strip_exception
from .tasks import TaskRunner

SLOW_PROJECTIONS = ("tsne", "umap")
ESTIMATE_ABOVE = 200_000  # points: say how long a map will take before starting
WARM_UP_DELAY_MS = 5000
NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP", "dims": "two latent dimensions"}


class ProjectionController(QObject):
    busy = Signal(object, bool)  # message or None, cancellable
    progress = Signal(float, str)
    failed = Signal(str)
    preview = Signal(object, str, object)  # OpenModel, method, (N, 2) positions of a map still forming
    # Options per projection method (tests shorten t-SNE with these).
    options: dict[str, dict[str, Any]] = {}

    def __init__(self, state: ExplorerState, tasks: TaskRunner, *, warm_up: bool = True) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self.projector = ProjectionProcess()
        self.cache = ProjectionCache()
        self.task = None
        self._task_key: tuple[int, str] | None = None
        self._warm_cancel = threading.Event()
        self._warm_scheduled = not warm_up
        state.requestedChanged.connect(lambda _c: self.ensure(self.state.current))
        state.currentChanged.connect(self.ensure)
        state.dataChanged.connect(self._data_changed)

    def request(self, choice: ProjectionChoice) -> None:
        """The user chose a projection (the projection box, a shortcut, a session)."""
        self.state.request_projection(choice)

    def _data_changed(self, entry: OpenModel) -> None:
        if entry is self.state.current:
            self.ensure(entry)

    def ensure(self, entry: OpenModel | None) -> None:
        """Show the requested projection of ``entry``, fitting it in the background if it is not there yet."""
        if entry is None or entry.latents is None:
            return
        choice = self.state.requested
        key = choice.key
        if choice.method == "dims" and max(choice.dim_x, choice.dim_y) >= entry.latent_dim:
            choice = ProjectionChoice("dims", 0, min(1, entry.latent_dim - 1))
            key = choice.key
        if key in entry.projections:
            if entry.active != key:
                self.state.activate(entry, key)
            return
        if self._task_key == (id(entry), key):
            return  # already on its way
        if entry.active is None and choice.method in SLOW_PROJECTIONS:
            self._fit(entry, ProjectionChoice("pca"), quiet=True)  # instant: a usable map while the slow one runs
        self._fit(entry, choice)

    def _fit(self, entry: OpenModel, choice: ProjectionChoice, quiet: bool = False) -> None:
        method, key = choice.method, choice.key
        options = choice.options() if method == "dims" else dict(self.options.get(method, {}))
        slow = method in SLOW_PROJECTIONS
        latents = entry.latents
        if not slow:
            from explorer.core.latent.projection import make_projection

            # PCA and raw dimensions take milliseconds even for 70k points: no thread, no stale state.
            try:
                proj = make_projection(method, **options)
                pos = proj.fit(latents)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self.failed.emit(strip_exception(f"{type(exc).__name__}: {exc}"))
                self.state.cancel_request()
                return
            self.state.add_projection(entry, key, proj, pos)
            self._schedule_warm_up()
            return
        self.cancel()
        self.busy.emit(f"Computing {NAMES.get(method, method)}", True)
        if len(latents) >= ESTIMATE_ABOVE:
            from explorer.core.latent.projection import describe_estimate

            self.state.notify(describe_estimate(method, len(latents), options), 20000)
        projector, cache = self.projector, self.cache
        key_hash = cache_key(entry.identity, entry.dataset_key(), method, options) if entry.identity else None

        def work(progress, cancel):
            if key_hash and cache is not None:
                cached = cache.get(key_hash)
                if cached is not None and cached.embedding.shape[0] == len(latents):
                    return cached, cached.embedding
            # In a child process: these libraries hold the GIL for long stretches, which would freeze the
            # window; and killing the child is the only prompt way to cancel them.
            proj = projector.fit(method, latents, options, progress=lambda f, msg="": progress(f, msg), cancel=cancel,
                                 preview=lambda pos: self.preview.emit(entry, method, pos))
            if key_hash and cache is not None:
                try:
                    cache.put(key_hash, proj)
                except OSError:  # a full or read-only cache folder costs a recomputation, nothing else
                    pass
            return proj, proj.embedding

        def finish() -> None:
            self.task = None
            self._task_key = None
            self.busy.emit(None, False)

        def done(result) -> None:
            finish()
            proj, pos = result
            if entry in self.state.models and entry.latents is latents:
                self.state.add_projection(entry, key, proj, np.asarray(pos, np.float32))

        def failed(msg: str) -> None:
            finish()
            self.state.cancel_request()
            self.failed.emit(strip_exception(msg))

        def cancelled() -> None:
            finish()
            self.state.cancel_request()
            self.state.notify("Projection cancelled; the previous map is still shown", 5000)

        self._task_key = (id(entry), key)
        self.task = self.tasks.start(work, on_done=done, on_error=failed, on_progress=self.progress.emit,
                                     on_cancel=cancelled)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _schedule_warm_up(self) -> None:
        """Compile UMAP's kernels in the projection process soon after the first map appears, so that choosing
        UMAP later takes seconds rather than a minute."""
        if self._warm_scheduled:
            return
        self._warm_scheduled = True

        def warm() -> None:
            try:
                self.projector.warm_up(cancel=self._warm_cancel)
            except Exception:  # noqa: BLE001 - a failed warm-up only means the first UMAP is slower
                pass

        QTimer.singleShot(WARM_UP_DELAY_MS, lambda: threading.Thread(target=warm, name="umap-warm-up",
                                                                     daemon=True).start())

    def shutdown(self) -> None:
        self._warm_cancel.set()
        self.cancel()
        self.projector.kill()  # a fit in the child would otherwise hold up the task pool

    def close(self) -> None:
        self.projector.close()


__all__ = ["ProjectionController", "SLOW_PROJECTIONS"]
