"""A whole exploration in one file: which models were open (by path), how each was being looked at, and
everything the user made (named vectors, keyframes, groups, cursor positions, seeds).

The file is a ``.safetensors``: arrays as tensors, everything else as one JSON document in its metadata.
Nothing in it can run code when loaded. Models are referenced by path and by the sha256 of their bytes, so
a restored session can tell the user when a checkpoint has changed since (its images would differ).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import atomic_write

SESSION_FORMAT = "latent-explorer-session"
SESSION_VERSION = 1
_META_KEY = "latent_explorer_session"


class SessionError(ValueError):
    """A session file is unreadable, malformed or from a newer version. The message names the file."""


@dataclass
class ModelState:
    path: str
    identity: str = ""  # sha256 of the checkpoint when the session was saved
    cursor: np.ndarray | None = None  # the cursor's latent vector
    selected: int = -1
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    vector_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    keyframes: list[tuple[str, np.ndarray]] = field(default_factory=list)
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # "A"/"B" -> point indices
    sample_seed: int = 0


@dataclass
class Session:
    models: list[ModelState] = field(default_factory=list)
    current: int = -1  # index into models of the one shown
    view: dict[str, Any] = field(default_factory=dict)  # projection, dims, colour-by...

    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.numpy import save_file

        tensors: dict[str, np.ndarray] = {}
        doc_models = []
        for m, state in enumerate(self.models):
            prefix = f"m{m}."
            entry: dict[str, Any] = {
                "path": state.path, "identity": state.identity, "selected": int(state.selected),
                "sample_seed": int(state.sample_seed), "has_cursor": state.cursor is not None,
                "vectors": list(state.vectors), "vector_info": state.vector_info,
                "keyframes": [label for label, _ in state.keyframes], "groups": list(state.groups),
            }
            if state.cursor is not None:
                tensors[prefix + "cursor"] = np.asarray(state.cursor, np.float32)
            for i, name in enumerate(state.vectors):
                tensors[f"{prefix}vector.{i}"] = np.asarray(state.vectors[name], np.float32)
            for i, (_, z) in enumerate(state.keyframes):
                tensors[f"{prefix}keyframe.{i}"] = np.asarray(z, np.float32)
            for name, idx in state.groups.items():
                tensors[f"{prefix}group.{name}"] = np.asarray(idx, np.int64)
            doc_models.append(entry)
        doc = {"format": SESSION_FORMAT, "version": SESSION_VERSION, "current": int(self.current),
               "view": self.view, "models": doc_models}
        if not tensors:  # safetensors needs at least one tensor to write a valid header with metadata
            tensors["_empty"] = np.zeros(1, np.float32)
        metadata = {_META_KEY: json.dumps(doc, default=_json_default)}
        return atomic_write(path, lambda tmp: save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                                                        tmp, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Session":
        from safetensors import SafetensorError, safe_open

        name = Path(path).name
        if not Path(path).is_file():
            raise SessionError(f"{path}: no such session file")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise SessionError(f"{name}: not a session file ({exc})") from None
        try:
            doc = json.loads(meta[_META_KEY])
        except (KeyError, ValueError):
            raise SessionError(f"{name}: a .safetensors file, but not a Latent Explorer session") from None
        if doc.get("format") != SESSION_FORMAT:
            raise SessionError(f"{name}: unknown format {doc.get('format')!r}")
        if int(doc.get("version", 0)) > SESSION_VERSION:
            raise SessionError(f"{name}: saved by a newer Latent Explorer (session version {doc.get('version')}); "
                               "update the app to open it")
        try:
            models = []
            for m, entry in enumerate(doc["models"]):
                prefix = f"m{m}."
                state = ModelState(path=str(entry["path"]), identity=str(entry.get("identity", "")),
                                   selected=int(entry.get("selected", -1)),
                                   sample_seed=int(entry.get("sample_seed", 0)))
                if entry.get("has_cursor"):
                    state.cursor = tensors[prefix + "cursor"]
                state.vectors = {n: tensors[f"{prefix}vector.{i}"] for i, n in enumerate(entry.get("vectors", []))}
                state.vector_info = dict(entry.get("vector_info") or {})
                state.keyframes = [(str(label), tensors[f"{prefix}keyframe.{i}"])
                                   for i, label in enumerate(entry.get("keyframes", []))]
                state.groups = {g: tensors[f"{prefix}group.{g}"] for g in entry.get("groups", [])}
                models.append(state)
            return cls(models=models, current=int(doc.get("current", -1)), view=dict(doc.get("view") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionError(f"{name}: damaged session ({type(exc).__name__}: {exc})") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


__all__ = ["ModelState", "Session", "SessionError"]
