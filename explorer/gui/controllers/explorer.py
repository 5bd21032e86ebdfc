"""The explorer controller: owns the state, the task runner and every controller, and is what tool panels get
instead of the window (no view holds the window).

Panels call intents on it (``set_cursor_latent``, ``select_datum``, ``decode_many``, ``run_io``, ``notify``,
``overlays.set_path``...) and listen to the state's events; the window only wires views to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.core.explore import ExplorerState, OpenModel

from .cursor import CursorController
from .data import DataController, strip_exception
from .datum import DatumController
from .manifold import ManifoldController
from .dropped import DroppedImagesController
from .projection import ProjectionController
from .samples import SamplesController
from .tasks import TaskRunner
from .training_link import TrainingLink

DECODE_CHUNK = 64


class Overlays(QObject):
    """Map overlays that tools draw (vector arrows, an interpolation path) and the lasso they ask for."""

    arrowsChanged = Signal(object)  # [(x0, y0, x1, y1, label, highlighted)]
    pathChanged = Signal(object, object)  # points (M, 2) or None, keyframe points or None
    lassoRequested = Signal()
    lassoFinished = Signal(object)  # indices

    def set_arrows(self, arrows) -> None:
        self.arrowsChanged.emit(list(arrows))

    def set_path(self, points, keyframes=None) -> None:
        self.pathChanged.emit(points, keyframes)

    def start_lasso(self) -> None:
        self.lassoRequested.emit()


class ExplorerController(QObject):
    busy = Signal(object, bool)  # message or None, cancellable
    progress = Signal(float, str)
    error = Signal(str, str)  # title, message

    def __init__(self, *, synchronous: bool = False, warm_up: bool = True) -> None:
        super().__init__()
        self.state = ExplorerState()
        self.tasks = TaskRunner(synchronous=synchronous)
        self.overlays = Overlays()
        self.data = DataController(self.state, self.tasks)
        self.projections = ProjectionController(self.state, self.tasks, warm_up=warm_up)
        self.cursor = CursorController(self.state, synchronous=synchronous)
        self.datum = DatumController(self.state, synchronous=synchronous)
        self.samples = SamplesController(self.state, self.tasks)
        self.dropped = DroppedImagesController(self.state, self.tasks, self.projections.projector)
        self.training = TrainingLink(self.state, self.data)
        self.manifold = ManifoldController(self.state, self.tasks)
        self.checkpoint_dir: Callable[[], str] = lambda: "."
        self._tracked: set = set()  # tasks started by run_tracked that have not reported yet
        self.samples.progress.connect(self.progress.emit)
        for source in (self.data, self.projections, self.dropped):
            source.busy.connect(self.busy.emit)
            source.progress.connect(self.progress.emit)
        self.data.openFailed.connect(lambda path, msg: self.error.emit("Cannot open model", msg))
        self.projections.failed.connect(lambda msg: self.error.emit("Projection failed", msg))
        self.dropped.failed.connect(lambda msg: self.error.emit("Cannot add images", msg))
        self.state.mapChanged.connect(self._map_changed)
        self.state.dataChanged.connect(self._data_changed)
        self.state.currentChanged.connect(self._current_changed)

    # ------------------------------------------------------------ defaults when a model is shown
    def _current_changed(self, entry: OpenModel | None) -> None:
        from explorer.core.models.pixelcnn import has_latent_space

        if entry is not None and not has_latent_space(entry.model):
            return  # PixelCNN: no latent space to put a cursor in (its samples are on the Prior samples tab)
        if entry is not None and not entry.model.capabilities.has_encoder and entry.cursor_latent is None:
            self.state.set_cursor(entry, np.zeros(entry.latent_dim, np.float32), "tool")

    def _data_changed(self, entry: OpenModel) -> None:
        if entry is self.state.current and entry.data is not None and entry.cursor_latent is not None:
            self.cursor.redecode()  # new weights under the same cursor

    def _map_changed(self, entry: OpenModel) -> None:
        if entry is not self.state.current or not entry.has_map:
            return
        if entry.cursor_latent is None:
            # Start on a real test image: the first thing shown is a datum and its reconstruction.
            self.datum.select(entry.data.n_train if entry.data.n_test else 0)

    # ------------------------------------------------------------ what tool panels use
    @property
    def current(self) -> OpenModel | None:
        return self.state.current

    @property
    def entries(self) -> list[OpenModel]:
        return self.state.models

    def open_model(self, path: str) -> bool:
        return self.data.open_model(path)

    def dataset_for(self, entry: OpenModel):
        return self.data.dataset_for(entry)

    def select_datum(self, idx: int) -> None:
        self.datum.select(idx)

    def selected_index(self) -> int:
        entry = self.state.current
        return entry.selected if entry is not None else -1

    def set_cursor_latent(self, z: np.ndarray, user: bool = True) -> None:
        """Put the cursor on a latent vector. ``user=False`` for moves made by a tool (applying a vector,
        playing a path) that keeps its own reference point."""
        self.cursor.set_latent(z, "user" if user else "tool")

    def locate_many(self, latents: np.ndarray) -> np.ndarray | None:
        entry = self.state.current
        return entry.locate_many(latents) if entry is not None else None

    def notify(self, text: str, timeout_ms: int = 5000) -> None:
        self.state.notify(text, timeout_ms)

    def decode_many(self, entry: OpenModel, latents: np.ndarray, on_done, error_label=None) -> None:
        """Decode (N, D) latents to (N, H, W, C) uint8 in the background, in chunks."""
        z = np.asarray(latents, np.float32)

        def work(progress, cancel):
            chunks = []
            for i in range(0, len(z), DECODE_CHUNK):
                chunks.append(entry.decode_batch_uint8(z[i:i + DECODE_CHUNK]))
                progress(min(1.0, (i + DECODE_CHUNK) / len(z)), "decoding")
            return np.concatenate(chunks)

        def failed(msg: str) -> None:
            text = strip_exception(msg)
            if error_label is not None:
                error_label.setText(text)
            self.notify(f"decoding failed: {text}", 8000)

        self.tasks.start(work, on_done=on_done, on_error=failed)

    def run_io(self, fn: Callable[[], Any], message: str, error_label=None, on_done=None) -> None:
        """Run a file operation off the GUI thread; report success in the status bar, errors in the label."""

        def done(result) -> None:
            self.notify(message, 5000)
            if error_label is not None:
                error_label.setText("")
            if on_done is not None:
                on_done(result)

        def failed(msg: str) -> None:
            text = strip_exception(msg)
            if error_label is not None:
                error_label.setText(text)
            self.notify(text, 8000)

        self.tasks.start(lambda progress, cancel: fn(), on_done=done, on_error=failed)

    def run_tracked(self, message: str, fn: Callable[[Callable[[float, str], None], Any], Any], *,
                    on_done: Callable[[Any], None] | None = None, on_error: Callable[[str], None] | None = None,
                    on_cancel: Callable[[], None] | None = None,
                    on_progress: Callable[[float, str], None] | None = None):
        """Run ``fn(progress, cancel)`` in the background with its message, progress and Cancel in the status bar.

        Long panel jobs (metrics, manifolds, pretraining) used to send their progress to a status bar that was not
        showing, or that showed another job's Cancel, which then did not stop them."""
        held: list = []

        def end(callback):
            def run(*args) -> None:
                self._tracked.difference_update(held)
                self.busy.emit(None, False)
                if callback is not None:
                    callback(*args)
            return run

        def hold(task) -> None:
            held.append(task)
            self._tracked.add(task)

        def progress(fraction: float, text: str) -> None:
            self.progress.emit(fraction, text)
            if on_progress is not None:
                on_progress(fraction, text)

        self.busy.emit(message, True)
        return self.tasks.start(fn, on_done=end(on_done), on_error=end(on_error), on_progress=progress,
                                on_cancel=end(on_cancel), before=hold)

    def cancel(self) -> None:
        """The status bar's Cancel: stops the cancellable work in flight."""
        self.projections.cancel()
        self.dropped.cancel()
        self.data.cancel()
        for task in list(self._tracked):
            task.cancel()

    def unwire(self) -> None:
        """Disconnect every listener of the controllers and the state, and forget the window's callbacks.

        Qt holds the Python slots connected to a signal strongly and outside the garbage collector's view, so a
        closed window whose lambdas stay connected to a live controller would never be freed."""
        import warnings

        from PySide6.QtCore import SignalInstance

        from explorer.core.explore import Event

        sources = [self, self.data, self.projections, self.cursor, self.datum, self.samples, self.dropped,
                   self.training, self.manifold, self.overlays, self.cursor.worker, self.datum.worker]
        for obj in sources:
            for name in dir(type(obj)):
                if name.startswith("__"):
                    continue
                try:
                    sig = getattr(obj, name)
                except (AttributeError, RuntimeError):
                    continue
                if isinstance(sig, SignalInstance):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # "failed to disconnect": none were
                        try:
                            sig.disconnect()
                        except (RuntimeError, TypeError):
                            pass
        for value in vars(self.state).values():
            if isinstance(value, Event):
                value.disconnect()
        self.data.confirm_trust = lambda *_: False
        self.data.confirm_data = lambda *_: False
        self.data.on_loaded.clear()
        self.checkpoint_dir = lambda: "."

    def shutdown(self) -> None:
        self.manifold.shutdown()
        self.projections.shutdown()
        self.dropped.cancel()
        self.data.cancel()
        self.cursor.close()
        self.datum.close()
        self.tasks.shutdown()
        self.projections.close()


__all__ = ["ExplorerController", "Overlays"]
