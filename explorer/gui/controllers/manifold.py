"""The decoded manifold on the map: tiles over the visible region, re-decoded in the background when the view
pans or zooms. Latest request wins: a new view cancels the decode in flight, and results for an older view or
another model are dropped. The GUI never waits."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from explorer.core.explore import ExplorerState

from .tasks import TaskRunner

TILE_PX = 40.0  # about this many screen pixels a tile: the tile count follows the zoom


class ManifoldController(QObject):
    ready = Signal(object, object)  # OpenModel, Manifold
    cleared = Signal()
    failed = Signal(str)

    def __init__(self, state: ExplorerState, tasks: TaskRunner) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self.enabled = False
        self.task = None
        self._generation = 0
        state.currentChanged.connect(lambda _e: self.cleared.emit())
        state.mapChanged.connect(lambda e: e is state.current and self.cleared.emit())

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        if not on:
            self._cancel()
            self.cleared.emit()

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def request(self, bounds: tuple[float, float, float, float], view_px: tuple[float, float]) -> None:
        """Decode the manifold over ``bounds`` (the map's visible rectangle, ``view_px`` on screen)."""
        entry = self.state.current
        if not self.enabled or entry is None or entry.projection is None:
            return
        from explorer.core.latent.manifold import decode_manifold, grid_shape

        try:
            rows, cols = grid_shape(bounds, view_px, tile_px=TILE_PX)
        except ValueError:
            return
        self._cancel()
        self._generation += 1
        gen, proj, key, model = self._generation, entry.projection, entry.active, entry.model

        def work(progress, cancel):
            return decode_manifold(model, proj, bounds, rows, cols, progress=progress, cancel=cancel)

        def done(manifold) -> None:
            if gen != self._generation or entry is not self.state.current or entry.active != key:
                return  # a newer view, another model or another map: stale
            self.task = None
            self.ready.emit(entry, manifold)

        def failed(msg: str) -> None:
            if gen == self._generation:
                self.task = None
                self.failed.emit(msg)

        self.task = self.tasks.start(work, on_done=done, on_error=failed)

    def shutdown(self) -> None:
        self._cancel()


__all__ = ["ManifoldController", "TILE_PX"]
