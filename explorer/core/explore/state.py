"""What the user is looking at, in one Qt-free object: the explorer state.

:class:`ExplorerState` holds the open models (each an :class:`OpenModel` with its data, latents, projections,
the *active* projection, cursor, selection, hover, vectors, keyframes, groups, dropped images and sample seed),
which model is current, and the projection the user asked for. Every change goes through a method that emits an
:class:`~explorer.core.explore.events.Event`; GUI controllers do the work (encoding, fitting, decoding) and
write results back here, views render what the events say. Nothing here blocks: the heavy work lives in the
controllers.

The one invariant that the first version broke: ``OpenModel.active`` always names a projection that exists in
``OpenModel.projections``. A projection that is still being computed is ``ExplorerState.requested``; the cursor,
hover and picking keep using the active one until the new one is delivered, and a cancel leaves it in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .events import Event

PROJECTION_METHODS = ("pca", "tsne", "umap", "dims")


@dataclass(frozen=True)
class ProjectionChoice:
    """A projection as the user names it: a method, plus the two dimensions for ``dims``."""

    method: str = "pca"
    dim_x: int = 0
    dim_y: int = 1

    @property
    def key(self) -> str:
        return f"dims:{self.dim_x}:{self.dim_y}" if self.method == "dims" else self.method

    @classmethod
    def from_key(cls, key: str) -> "ProjectionChoice":
        if key.startswith("dims:"):
            _, i, j = key.split(":")
            return cls("dims", int(i), int(j))
        return cls(key)

    def options(self) -> dict[str, Any]:
        return {"i": self.dim_x, "j": self.dim_y} if self.method == "dims" else {}


@dataclass
class DroppedImages:
    """Images the user dropped on one model's map: pixels, codes, map positions (per projection), names."""

    images: np.ndarray  # (N, C, H, W) uint8
    latents: np.ndarray  # (N, D) float32
    names: list[str]
    files: list[str]
    positions: dict[str, np.ndarray] = field(default_factory=dict)  # projection key -> (N, 2)


@dataclass
class OpenModel:
    """One opened (or training) model and everything the user did with it."""

    path: str
    model: Any  # LatentModel
    meta: dict[str, Any]
    identity: str = ""  # sha256 of the checkpoint's bytes; "" for a model being trained
    data: Any = None  # ImageData
    latents: np.ndarray | None = None  # (N, D) float32: the data set encoded
    projections: dict[str, Any] = field(default_factory=dict)  # key -> fitted Projection
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (N, 2) positions
    active: str | None = None  # key of the projection shown; always one in ``projections``
    status: str = ""  # why there is no map ("" when there is one, or it is coming)
    cursor_latent: np.ndarray | None = None
    selected: int = -1
    hovered: int = -1
    vectors: Any = None  # NamedVectors, made on first use
    probes: Any = None  # AttributeProbes for data with attributes
    keyframes: list[tuple[str, np.ndarray]] = field(default_factory=list)
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # "A"/"B" -> point indices
    dropped: DroppedImages | None = None
    sample_seed: int = 0
    run_id: str = ""  # set for a model trained in this window
    history: list[Any] = field(default_factory=list)  # ModelSnapshots at epoch ends, oldest first
    history_index: int = -1  # which snapshot's weights are shown (-1: the newest)
    encoding: bool = False  # its data set is being loaded / encoded now
    restore: dict[str, Any] | None = None  # session state to apply once the data is in
    point_values: dict[str, np.ndarray] = field(default_factory=dict)  # per-point numbers to colour by

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    @property
    def has_map(self) -> bool:
        return self.active is not None and self.active in self.projections

    @property
    def projection(self) -> Any:
        return self.projections.get(self.active) if self.active else None

    @property
    def positions(self) -> np.ndarray | None:
        return self.maps.get(self.active) if self.active else None

    def summary(self) -> str:
        meta = self.meta
        cfg = meta.get("config", {}) or {}
        arch = cfg.get("arch") if isinstance(cfg, dict) else None
        family = str(meta.get("family", self.model.family)).upper() + (f" ({arch})" if arch else "")
        hist = meta.get("history") or {}
        final = (hist.get("final_metrics") or {}) if isinstance(hist, dict) else {}
        bits = [family, f"latent {self.model.latent_dim}", f"data: {meta.get('dataset') or 'unknown'}"]
        if isinstance(hist, dict) and hist.get("epochs"):
            bits.append(f"{hist['epochs']} epochs")
        if isinstance(final.get("test_loss"), (int, float)):
            bits.append(f"test loss {final['test_loss']:.1f}")
        return " · ".join(bits)

    def dataset_key(self) -> str:
        """The data set as encoded here (name, shape, size): part of a cached map's key."""
        shape = "x".join(str(v) for v in self.model.image_shape)
        n = len(self.data) if self.data is not None else 0
        return f"{self.meta.get('dataset')}:{shape}:{n}"

    # ------------------------------------------------------------ pixels (run on worker threads)
    def decode_batch_uint8(self, z: np.ndarray) -> np.ndarray:
        """(N, D) latents -> (N, H, W, C) uint8."""
        import torch

        from ..imaging import to_hwc

        with torch.inference_mode():
            x = self.model.decode(torch.from_numpy(np.ascontiguousarray(z, np.float32)).to(self.model.device))
        return to_hwc(x.clamp(0, 1))

    def decode_uint8(self, z: np.ndarray) -> np.ndarray:
        """One latent vector -> (H, W, C) uint8."""
        return self.decode_batch_uint8(np.asarray(z, np.float32).reshape(1, -1))[0]

    def reconstruct_uint8(self, index: int) -> np.ndarray | None:
        if self.data is None or not self.model.capabilities.has_encoder:
            return None
        import torch

        from ..imaging import to_hwc

        x = torch.from_numpy(self.data.images[index:index + 1].astype(np.float32) / 255.0).to(self.model.device)
        with torch.inference_mode():
            out = self.model.decode(self.model.encode(x))[0]
        return to_hwc(out.clamp(0, 1))

    # ------------------------------------------------------------ map positions
    def locate(self, z: np.ndarray, key: str | None = None) -> tuple[float, float] | None:
        """Map position of one latent vector under the projection ``key`` (default: the active one)."""
        proj = self.projections.get(key or self.active) if (key or self.active) else None
        if proj is None:
            return None
        p = proj.locate(np.asarray(z, np.float32).reshape(1, -1))[0]
        return float(p[0]), float(p[1])

    def locate_many(self, latents: np.ndarray) -> np.ndarray | None:
        proj = self.projection
        if proj is None:
            return None
        return np.asarray(proj.locate(np.asarray(latents, np.float32)), np.float64)

    def dropped_positions(self) -> np.ndarray | None:
        """Where the dropped images sit on the active map (placed on first ask for a new projection)."""
        if self.dropped is None or not self.has_map:
            return None
        pos = self.dropped.positions.get(self.active)
        if pos is None:
            pos = np.asarray(self.projection.locate(self.dropped.latents), np.float32)
            self.dropped.positions[self.active] = pos
        return pos


class ExplorerState:
    """The open models, the current one, and the projection the user asked for; with change events.

    Events (all emitted on the thread that made the change, which in the app is the GUI thread):

    ``modelsChanged()``, ``currentChanged(model | None)``, ``dataChanged(model)`` (data/latents arrived or were
    dropped), ``mapChanged(model)`` (the active projection or its positions changed), ``requestedChanged(choice)``,
    ``cursorChanged(model, z, source)`` (source: "map", "sliders", "tool", "select", "restore"),
    ``selectionChanged(model, index)``, ``hoverChanged(model, index)``, ``vectorsChanged(model)``,
    ``keyframesChanged(model)``, ``groupsChanged(model)``, ``droppedChanged(model)``, ``samplesChanged(model)``,
    ``historyChanged(model)``, ``message(text, timeout_ms)``.
    """

    def __init__(self) -> None:
        self.models: list[OpenModel] = []
        self.current: OpenModel | None = None
        self.requested = ProjectionChoice()
        self.colour_by: str = "label"
        for name in ("modelsChanged", "currentChanged", "dataChanged", "mapChanged", "requestedChanged",
                     "cursorChanged", "selectionChanged", "hoverChanged", "vectorsChanged", "keyframesChanged",
                     "groupsChanged", "droppedChanged", "samplesChanged", "historyChanged", "colourChanged",
                     "message"):
            setattr(self, name, Event(name))

    # ------------------------------------------------------------ models
    def find(self, path: str) -> OpenModel | None:
        key = _path_key(path)
        return next((m for m in self.models if not m.run_id and _path_key(m.path) == key), None)

    def add_model(self, entry: OpenModel, *, make_current: bool = True) -> OpenModel:
        """Add an opened model; a file that is already open is not added twice (the open one is returned)."""
        if not entry.run_id:
            existing = self.find(entry.path)
            if existing is not None:
                if make_current:
                    self.set_current(existing)
                return existing
        self.models.append(entry)
        self.modelsChanged.emit()
        if make_current or self.current is None:
            self.set_current(entry)
        return entry

    def remove_model(self, entry: OpenModel) -> None:
        if entry not in self.models:
            return
        row = self.models.index(entry)
        self.models.remove(entry)
        self.modelsChanged.emit()
        if entry is self.current:
            self.set_current(self.models[min(row, len(self.models) - 1)] if self.models else None)

    def set_current(self, entry: OpenModel | None) -> None:
        if entry is not None and entry not in self.models:
            raise ValueError(f"{entry.name} is not open")
        if entry is self.current:
            return
        self.current = entry
        if entry is not None and entry.has_map and entry.active != self.requested.key:
            # The new model has no map of the requested kind yet: it shows what it has until it comes.
            pass
        self.currentChanged.emit(entry)

    # ------------------------------------------------------------ data and maps
    def set_data(self, entry: OpenModel, data: Any, latents: np.ndarray | None) -> None:
        entry.data, entry.latents, entry.encoding = data, latents, False
        entry.status = ""
        entry.projections.clear()
        entry.maps.clear()
        entry.point_values.clear()
        entry.active = None
        if entry.selected >= (len(data) if data is not None else 0):
            entry.selected = -1
        entry.hovered = -1
        self.dataChanged.emit(entry)
        self.mapChanged.emit(entry)

    def set_status(self, entry: OpenModel, status: str) -> None:
        entry.status, entry.encoding = status, False
        self.dataChanged.emit(entry)

    def request_projection(self, choice: ProjectionChoice) -> None:
        """The user chose a projection. It becomes active per model when it exists there."""
        if choice == self.requested:
            return
        self.requested = choice
        self.requestedChanged.emit(choice)
        for entry in self.models:
            if choice.key in entry.projections and entry.active != choice.key:
                self.activate(entry, choice.key)

    def add_projection(self, entry: OpenModel, key: str, projection: Any, positions: np.ndarray) -> None:
        """A fitted projection arrived. It is shown if it is the requested one (or the model shows none)."""
        entry.projections[key] = projection
        entry.maps[key] = np.asarray(positions, np.float32)
        if key == self.requested.key or entry.active is None:
            self.activate(entry, key)

    def activate(self, entry: OpenModel, key: str) -> None:
        if key not in entry.projections:
            raise KeyError(f"no {key} projection of {entry.name} yet")
        entry.active = key
        entry.hovered = -1
        self.mapChanged.emit(entry)

    def cancel_request(self) -> None:
        """A requested projection was cancelled or failed: the request falls back to what is shown."""
        entry = self.current
        if entry is not None and entry.active is not None and entry.active != self.requested.key:
            self.requested = ProjectionChoice.from_key(entry.active)
            self.requestedChanged.emit(self.requested)

    # ------------------------------------------------------------ cursor, selection, hover
    def set_cursor(self, entry: OpenModel, z: np.ndarray, source: str = "tool") -> None:
        z = np.asarray(z, np.float32).reshape(-1).copy()
        if z.shape != (entry.latent_dim,):
            raise ValueError(f"a cursor of {z.size} values for a {entry.latent_dim}-d latent space")
        entry.cursor_latent = z
        self.cursorChanged.emit(entry, z, source)

    def select(self, entry: OpenModel, index: int) -> None:
        n = len(entry.data) if entry.data is not None else 0
        index = int(index) if 0 <= int(index) < n else -1
        entry.selected = index
        self.selectionChanged.emit(entry, index)

    def hover(self, entry: OpenModel, index: int) -> None:
        if entry.hovered != index:
            entry.hovered = int(index)
            self.hoverChanged.emit(entry, int(index))

    # ------------------------------------------------------------ what the user made
    def set_groups(self, entry: OpenModel, name: str, indices: np.ndarray | None) -> None:
        if indices is None or len(indices) == 0:
            entry.groups.pop(name, None)
        else:
            entry.groups[name] = np.asarray(indices, np.int64)
        self.groupsChanged.emit(entry)

    def set_keyframes(self, entry: OpenModel, keyframes: list[tuple[str, np.ndarray]]) -> None:
        entry.keyframes = [(str(label), np.asarray(z, np.float32)) for label, z in keyframes]
        self.keyframesChanged.emit(entry)

    def vectors_edited(self, entry: OpenModel) -> None:
        self.vectorsChanged.emit(entry)

    def set_dropped(self, entry: OpenModel, dropped: DroppedImages | None) -> None:
        entry.dropped = dropped
        self.droppedChanged.emit(entry)

    def set_sample_seed(self, entry: OpenModel, seed: int) -> None:
        entry.sample_seed = int(seed)
        self.samplesChanged.emit(entry)

    def set_colour_by(self, name: str) -> None:
        if name != self.colour_by:
            self.colour_by = name
            self.colourChanged.emit(name)

    def notify(self, text: str, timeout_ms: int = 5000) -> None:
        self.message.emit(text, timeout_ms)


def _path_key(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)


__all__ = ["DroppedImages", "ExplorerState", "OpenModel", "PROJECTION_METHODS", "ProjectionChoice"]
