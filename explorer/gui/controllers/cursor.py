"""The drag path: a mouse position on the map becomes pixels on screen, in one direction.

    LatentMapView.cursorDragged(x, y)            view intent (map coordinates)
      -> CursorController.drag_to(x, y)          inverse through the model's *active* projection
      -> ExplorerState.set_cursor(model, z, "map")
      -> CursorController._cursor_changed         submits a DecodeRequest to the latest-wins worker
      -> LatestWinsWorker (decode thread)         OpenModel.decode_uint8(z); stale generations dropped
      -> CursorController.decoded(DecodeResult)  Qt signal, delivered on the GUI thread
      -> ImagePanel.show_array                    the cursor image view

Every other way of moving the cursor (sliders, selecting a datum, a vector's strength, playing a path, a
restored session) enters at ``ExplorerState.set_cursor`` with its own source, and the decode follows the same
road from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.core.explore import ExplorerState, OpenModel

from .tasks import LatestWinsWorker


@dataclass(frozen=True)
class DecodeRequest:
    model: OpenModel
    latent: np.ndarray
    position: tuple[float, float] | None  # where the cursor is on the map, if it has one
    submitted: float  # perf_counter() when asked for


@dataclass(frozen=True)
class DecodeResult:
    request: DecodeRequest
    image: np.ndarray  # (H, W, C) uint8

    @property
    def caption(self) -> str:
        z, pos = self.request.latent, self.request.position
        coords = " ".join(f"{v:+.2f}" for v in z[:8]) + (" …" if len(z) > 8 else "")
        where = f"map ({pos[0]:.2f}, {pos[1]:.2f})\n" if pos is not None else ""
        return f"{where}z = [{coords}]"


def _decode(request: DecodeRequest) -> np.ndarray:
    return request.model.decode_uint8(request.latent)


class CursorController(QObject):
    decoded = Signal(object)  # DecodeResult of the current model's newest cursor
    moved = Signal(float, float)  # where a cursor set by anything but a drag lies on the current map
    cleared = Signal()  # the current model has nothing to show at the cursor
    failed = Signal(str)

    def __init__(self, state: ExplorerState, *, synchronous: bool = False) -> None:
        super().__init__()
        self.state = state
        self.worker = LatestWinsWorker(_decode, synchronous=synchronous, urgent=True)
        self.worker.result.connect(self._delivered)
        self.worker.failed.connect(lambda _gen, msg: self.failed.emit(msg))
        self.decode_times: list[float] = []
        state.cursorChanged.connect(self._cursor_changed)
        state.currentChanged.connect(self._current_changed)

    # ------------------------------------------------------------ intents
    def drag_to(self, x: float, y: float) -> None:
        """The user dragged the map cursor to (x, y): decode what the active projection puts there."""
        entry = self.state.current
        if entry is None or entry.projection is None:
            return
        z = entry.projection.inverse(np.array([[x, y]], np.float32))[0]
        self._position = (float(x), float(y))
        try:
            self.state.set_cursor(entry, z, "map")
        finally:
            self._position = None

    def set_latent(self, z: np.ndarray, source: str = "tool") -> None:
        entry = self.state.current
        if entry is not None:
            self.state.set_cursor(entry, z, source)

    _position: tuple[float, float] | None = None

    # ------------------------------------------------------------ state -> decode
    def _cursor_changed(self, entry: OpenModel, z: np.ndarray, source: str) -> None:
        if entry is not self.state.current:
            return
        # One projection lookup per move, shared by the caption and the map's ring.
        self._decoded_model = entry.model
        pos = self._position if source == "map" else entry.locate(z)
        if source != "map" and pos is not None:
            self.moved.emit(*pos)
        self.worker.submit(DecodeRequest(entry, z, pos, time.perf_counter()))

    def _current_changed(self, entry: OpenModel | None) -> None:
        self.worker.reset_cost()
        if entry is None or entry.cursor_latent is None:
            self.cleared.emit()  # never the previous model's image
            return
        self._decoded_model = entry.model
        self.worker.submit(DecodeRequest(entry, entry.cursor_latent, entry.locate(entry.cursor_latent),
                                         time.perf_counter()))

    def redecode(self) -> None:
        """Decode the cursor again if the model's weights changed under it (a training epoch, the history
        slider); data events that leave the weights alone cost nothing."""
        entry = self.state.current
        if entry is not None and entry.model is self._decoded_model:
            return
        self.worker.reset_cost()
        self._current_changed(entry)

    _decoded_model: object = None

    def _delivered(self, _gen: int, request: DecodeRequest, image: np.ndarray) -> None:
        if request.model is not self.state.current:
            return
        self.decode_times.append(time.perf_counter() - request.submitted)
        del self.decode_times[:-500]
        self.decoded.emit(DecodeResult(request, image))

    def close(self) -> None:
        self.worker.close()


__all__ = ["CursorController", "DecodeRequest", "DecodeResult"]
