"""Hovered and selected data: the original image and its reconstruction, computed off the GUI thread.

Hovering runs the model once per point under the pointer; on a big model that would stall every mouse move,
so reconstructions go through a latest-wins worker like the cursor's decodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.core.explore import ExplorerState, OpenModel
from explorer.core.imaging import to_hwc

from .tasks import LatestWinsWorker


@dataclass(frozen=True)
class DatumView:
    model: OpenModel
    index: int
    hover: bool
    original: np.ndarray  # (H, W, C) uint8
    caption: str
    reconstruction: np.ndarray | None
    recon_caption: str


def datum_caption(entry: OpenModel, idx: int) -> str:
    data = entry.data
    label = int(data.labels[idx])
    name = data.label_names[label] if 0 <= label < len(data.label_names) else "?"
    split = "train" if idx < data.n_train else "test"
    return f"#{idx} · {split} · label {name}"


def _reconstruct(request: tuple[OpenModel, int, bool]) -> DatumView:
    entry, idx, hover = request
    original = to_hwc(entry.data.images[idx])
    recon = entry.reconstruct_uint8(idx)
    rcap = ""
    if recon is not None:
        err = float(np.mean((recon.astype(np.float32) - original.astype(np.float32)) ** 2)) / 255**2
        rcap = f"pixel MSE {err:.4f}"
    prefix = "hovered " if hover else "selected "
    return DatumView(entry, idx, hover, original, prefix + datum_caption(entry, idx), recon, rcap)


class DatumController(QObject):
    shown = Signal(object)  # DatumView
    cleared = Signal()

    def __init__(self, state: ExplorerState, *, synchronous: bool = False) -> None:
        super().__init__()
        self.state = state
        self.worker = LatestWinsWorker(_reconstruct, synchronous=synchronous, name="reconstruct")
        self.worker.result.connect(self._delivered)
        state.hoverChanged.connect(self._hover_changed)
        state.selectionChanged.connect(self._selection_changed)
        state.currentChanged.connect(self._current_changed)

    def select(self, idx: int) -> None:
        """The user picked datum ``idx`` (a click on the map, a table row): select it, move the cursor there."""
        entry = self.state.current
        if entry is None or entry.data is None or not 0 <= idx < len(entry.data):
            return
        self.state.select(entry, idx)
        if entry.latents is not None:
            self.state.set_cursor(entry, entry.latents[idx], "select")

    def _hover_changed(self, entry: OpenModel, idx: int) -> None:
        if entry is not self.state.current or entry.data is None:
            return
        if idx >= 0:
            self.worker.submit((entry, idx, True))
        elif entry.selected >= 0:
            self.worker.submit((entry, entry.selected, False))

    def _selection_changed(self, entry: OpenModel, idx: int) -> None:
        if entry is not self.state.current:
            return
        if idx >= 0 and entry.data is not None:
            self.worker.submit((entry, idx, False))
        else:
            self.cleared.emit()

    def _current_changed(self, entry: OpenModel | None) -> None:
        self.worker.reset_cost()
        if entry is not None and entry.data is not None and entry.selected >= 0:
            self.worker.submit((entry, entry.selected, False))
        else:
            self.cleared.emit()

    def _delivered(self, _gen: int, _request, view: DatumView) -> None:
        if view.model is self.state.current:
            self.shown.emit(view)

    def close(self) -> None:
        self.worker.close()


__all__ = ["DatumController", "DatumView", "datum_caption"]
