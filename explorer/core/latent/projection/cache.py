"""Fitted maps on disk: ``cache_key`` names one, ``ProjectionCache`` stores it as plain arrays (no pickle)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .base import STATE_FORMAT, Projection, _json_default
from .registry import PROJECTIONS

log = logging.getLogger(__name__)


def cache_key(model_identity: str, dataset_name: str, method: str, options: Mapping[str, Any] | None = None) -> str:
    """sha256 (hex) naming one cached map. ``model_identity`` must change whenever the weights do (e.g. a
    hash of the checkpoint file). Execution-only options (``n_jobs``...) are left out: they do not change the
    map. The state format is hashed too, so a format change invalidates old entries."""
    cls = PROJECTIONS.get(method)
    skip = cls.execution_options if cls is not None else frozenset({"n_jobs"})
    opts = {k: v for k, v in (options or {}).items() if k not in skip}
    doc = json.dumps(
        {"format": STATE_FORMAT, "model": model_identity, "dataset": dataset_name, "method": method, "options": opts},
        sort_keys=True,
        default=_json_default,
    )
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    """$LATENT_EXPLORER_CACHE, else $XDG_CACHE_HOME/latent-explorer/projections (~/.cache/...)."""
    env = os.environ.get("LATENT_EXPLORER_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "latent-explorer" / "projections"


class ProjectionCache:
    """Fitted projections on disk, one ``<key>.npz`` per map (arrays + JSON, loaded with allow_pickle=False).

    Writes are atomic (temporary file + ``os.replace``), so a crash or a second process never leaves a
    half-written entry under the real name. An unreadable or malformed entry is a miss (and is deleted), never
    an error: the map is simply recomputed.
    """

    _KEY = re.compile(r"^[0-9a-f]{16,128}$")

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        if not isinstance(key, str) or not self._KEY.match(key):
            raise ValueError(f"cache keys are hex digests (see cache_key), got {key!r}")
        return self.folder / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> Projection | None:
        """The cached projection, or None (missing, unreadable or malformed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                state = {name: npz[name] for name in npz.files}
            return Projection.from_state(state)
        except Exception as exc:  # noqa: BLE001 - any unreadable entry is a miss; the map is recomputed
            log.warning("projection cache: ignoring unreadable %s (%s: %s)", path.name, type(exc).__name__, exc)
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def put(self, key: str, projection: Projection) -> Path:
        """Store a fitted projection (for t-SNE/UMAP call it after ``fit_inverse`` to keep the inverse)."""
        from ...checkpoint import atomic_write  # imported here: checkpoint pulls in torch and safetensors

        state = projection.state_dict()

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **state)

        return atomic_write(self.path(key), write)

    def remove(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass
