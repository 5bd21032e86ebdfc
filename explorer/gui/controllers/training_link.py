"""The link from the training panel to the explorer: each epoch's weight snapshot becomes (or updates) an open
model, whose data is re-encoded for its map; the latent-history slider replays earlier epochs' weights."""

from __future__ import annotations

from PySide6.QtCore import QObject

from explorer.core.explore import ExplorerState, OpenModel

from .data import DataController

MAX_HISTORY = 100  # epochs of weights kept for the latent-history slider


class TrainingLink(QObject):
    def __init__(self, state: ExplorerState, data: DataController) -> None:
        super().__init__()
        self.state = state
        self.data = data

    def snapshot(self, snap) -> None:
        """A training run reached an epoch end (CPU weights; the live module is never touched)."""
        entry = next((e for e in self.state.models if e.run_id == snap.run_id), None)
        model = snap.build_model()
        if entry is None:
            meta = snap.metadata()
            meta.setdefault("path", snap.checkpoint or "")
            entry = OpenModel(path=snap.checkpoint or f"training-{snap.run_id}.safetensors", model=model,
                              meta=meta, run_id=snap.run_id)
            entry.history.append(snap)
            self.state.add_model(entry, make_current=self.state.current is None)
        else:
            entry.history.append(snap)
            del entry.history[:-MAX_HISTORY]
            entry.meta = snap.metadata()
            if snap.checkpoint:
                entry.path = snap.checkpoint
            if entry.history_index < 0:  # following the newest epoch (not pinned to an older one)
                self._use_weights(entry, model)
        entry.meta["training_state"] = "final" if snap.final else "training"
        entry.meta["training_epoch"] = snap.epoch
        self.state.historyChanged.emit(entry)
        self.state.modelsChanged.emit()

    def show_epoch(self, entry: OpenModel, index: int) -> None:
        """The history slider moved: show the weights of snapshot ``index`` (the last one follows training)."""
        if not 0 <= index < len(entry.history):
            return
        entry.history_index = -1 if index == len(entry.history) - 1 else index
        self._use_weights(entry, entry.history[index].build_model())
        self.state.historyChanged.emit(entry)

    def _use_weights(self, entry: OpenModel, model) -> None:
        entry.model = model
        # The old latents and maps belong to the old weights: drop them. The current model re-encodes now; any
        # other model when it is next shown (DataController.ensure_encoded on currentChanged).
        entry.latents = None
        entry.projections.clear()
        entry.maps.clear()
        entry.active = None
        entry.status = ""
        if entry is self.state.current:
            self.data.ensure_encoded(entry, force=True)
        self.state.mapChanged.emit(entry)


__all__ = ["MAX_HISTORY", "TrainingLink"]
