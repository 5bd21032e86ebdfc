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

from .bounded import BoundsError, is_regular_file, load_json, safetensors_header_size
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
        try:
            metadata = {_META_KEY: json.dumps(doc, default=_json_default, allow_nan=False)}
        except (TypeError, ValueError) as exc:
            raise SessionError(f"cannot save the session to {Path(path).name}: {exc}") from None
        return atomic_write(path, lambda tmp: save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                                                        tmp, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Session":
        """Read a session file. Only the tensors the document refers to are read, each checked for shape,
        dtype and size first; every problem raises :class:`SessionError` naming the file."""
        from safetensors import safe_open

        name = Path(path).name
        if not Path(path).exists():
            raise SessionError(f"{path}: no such session file")
        if not is_regular_file(path):
            raise SessionError(f"{name}: not a session file (a folder, FIFO or device, not a regular file)")
        try:
            safetensors_header_size(path)
        except BoundsError as exc:
            raise SessionError(f"{name}: not a session file ({exc})") from None
        except OSError as exc:
            raise SessionError(f"{name}: cannot read ({exc.strerror or exc})") from None
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if _META_KEY not in meta:
                    raise SessionError(f"{name}: a .safetensors file, but not a Latent Explorer session")
                try:
                    doc = load_json(meta[_META_KEY])
                except BoundsError as exc:
                    raise SessionError(f"{name}: damaged session ({exc})") from None
                return _from_document(doc, _TensorReader(f, name), name)
        except SessionError:
            raise
        except RecursionError:
            raise SessionError(f"{name}: damaged session (nested too deeply)") from None
        except MemoryError:
            raise SessionError(f"{name}: not enough memory to read the session") from None
        except Exception as exc:  # safetensors' own error type for a malformed file, OSError, ...
            raise SessionError(f"{name}: not a session file ({type(exc).__name__}: {str(exc)[:200]})") from None


# Sessions hold latent vectors (one value per latent dimension), point indices and a few settings.
MAX_MODELS = 64
MAX_ITEMS = 10_000  # vectors / keyframes / groups per model
MAX_VECTOR_SIZE = 65_536  # = the models' MAX_LATENT_DIM
MAX_GROUP_SIZE = 10_000_000  # point indices in one group
MAX_TOTAL_BYTES = 512 * 1024 * 1024  # all tensors read from one session
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed accepts up to 2**64 - 1; rerolls add 1
MAX_DIM = 65_535
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
_INT_DTYPES = {"I8", "U8", "I16", "I32", "I64"}


class _TensorReader:
    """Reads named tensors on demand, checking shape and dtype from the header before any data is read."""

    def __init__(self, handle: Any, name: str):
        self.handle = handle
        self.name = name
        self.keys = set(handle.keys())
        self.total = 0

    def get(self, key: str, kind: str, max_size: int) -> np.ndarray:
        if key not in self.keys:
            raise SessionError(f"{self.name}: damaged session (tensor {key!r} is missing)")
        sl = self.handle.get_slice(key)
        shape = [int(v) for v in sl.get_shape()]
        dtype = str(sl.get_dtype())
        if len(shape) != 1:
            raise SessionError(f"{self.name}: damaged session ({key!r} has shape {tuple(shape)}, expected a "
                               "1-D array)")
        if shape[0] > max_size:
            raise SessionError(f"{self.name}: {key!r} has {shape[0]} values, more than the {max_size} a "
                               "session may hold")
        allowed = _FLOAT_DTYPES if kind == "float" else _INT_DTYPES
        if dtype not in allowed:
            raise SessionError(f"{self.name}: damaged session ({key!r} has dtype {dtype}, expected "
                               f"{'a float' if kind == 'float' else 'an integer'} array)")
        self.total += shape[0] * 8
        if self.total > MAX_TOTAL_BYTES:
            raise SessionError(f"{self.name}: the session refers to more than {MAX_TOTAL_BYTES // 2**20} MB of "
                               "arrays")
        arr = self.handle.get_tensor(key)
        if kind == "float":
            arr = np.asarray(arr, np.float32)
            if not np.all(np.isfinite(arr)):
                raise SessionError(f"{self.name}: {key!r} contains NaN or infinite values")
            return arr
        arr = np.asarray(arr, np.int64)
        if arr.size and arr.min() < 0:
            raise SessionError(f"{self.name}: {key!r} holds negative point indices")
        return arr


def _bad(name: str, what: str, value: Any) -> SessionError:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return SessionError(f"{name}: damaged session ({what}, got {text})")


def _int(name: str, what: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(name, f"{what} must be an integer from {low} to {high}", value)
    return value


def _names(name: str, what: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(name, f"{what} must be a list of names", value)
    if len(value) > MAX_ITEMS:
        raise SessionError(f"{name}: damaged session ({what} lists {len(value)} items, at most {MAX_ITEMS})")
    return value


def _check_view(view: Any, name: str) -> dict[str, Any]:
    """The view settings the window restores: a bad value is an error here, not a restore that opens
    nothing. Keys this version does not know are kept as they are (a newer explorer state may add some)."""
    if view is None:
        return {}
    if not isinstance(view, dict):
        raise _bad(name, "view must be a JSON object", view)
    for key in ("projection", "colour_by"):
        if view.get(key) is not None and not isinstance(view[key], str):
            raise _bad(name, f"view {key!r} must be a name", view[key])
    for key in ("dim_x", "dim_y"):
        if key in view:
            _int(name, f"view {key!r}", view[key], 0, MAX_DIM)
    return dict(view)


def _from_document(doc: Any, tensors: _TensorReader, name: str) -> Session:
    if not isinstance(doc, dict):
        raise _bad(name, "the document must be a JSON object", type(doc).__name__)
    if doc.get("format") != SESSION_FORMAT:
        raise SessionError(f"{name}: unknown format {str(doc.get('format'))[:60]!r}")
    version = doc.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise _bad(name, "version must be an integer", version)
    if version > SESSION_VERSION:
        raise SessionError(f"{name}: saved by a newer Latent Explorer (session version {version}); "
                           "update the app to open it")
    entries = doc.get("models")
    if not isinstance(entries, list):
        raise _bad(name, "models must be a list", entries)
    if len(entries) > MAX_MODELS:
        raise SessionError(f"{name}: damaged session ({len(entries)} models, at most {MAX_MODELS})")
    models = []
    for m, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _bad(name, f"model {m} must be a JSON object", entry)
        prefix = f"m{m}."
        if not isinstance(entry.get("path"), str) or not entry["path"]:
            raise _bad(name, f"model {m} needs the checkpoint's path", entry.get("path"))
        identity = entry.get("identity", "")
        if not isinstance(identity, str):
            raise _bad(name, f"model {m} identity must be text", identity)
        state = ModelState(path=entry["path"], identity=identity,
                           selected=_int(name, f"model {m} selected", entry.get("selected", -1), -1, 2**62),
                           sample_seed=_int(name, f"model {m} sample_seed", entry.get("sample_seed", 0), 0,
                                            MAX_SEED))
        has_cursor = entry.get("has_cursor", False)
        if not isinstance(has_cursor, bool):
            raise _bad(name, f"model {m} has_cursor must be true or false", has_cursor)
        if has_cursor:
            state.cursor = tensors.get(prefix + "cursor", "float", MAX_VECTOR_SIZE)
        vectors = _names(name, f"model {m} vectors", entry.get("vectors", []))
        state.vectors = {n: tensors.get(f"{prefix}vector.{i}", "float", MAX_VECTOR_SIZE)
                         for i, n in enumerate(vectors)}
        info = entry.get("vector_info") or {}
        if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
            raise _bad(name, f"model {m} vector_info must map names to JSON objects", info)
        state.vector_info = {str(k): dict(v) for k, v in info.items()}
        labels = _names(name, f"model {m} keyframes", entry.get("keyframes", []))
        state.keyframes = [(label, tensors.get(f"{prefix}keyframe.{i}", "float", MAX_VECTOR_SIZE))
                           for i, label in enumerate(labels)]
        groups = _names(name, f"model {m} groups", entry.get("groups", []))
        state.groups = {g: tensors.get(f"{prefix}group.{g}", "int", MAX_GROUP_SIZE) for g in groups}
        models.append(state)
    current = _int(name, "current", doc.get("current", -1), -1, max(len(models) - 1, -1))
    return Session(models=models, current=current, view=_check_view(doc.get("view"), name))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


__all__ = ["ModelState", "Session", "SessionError"]
