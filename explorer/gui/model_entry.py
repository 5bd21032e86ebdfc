"""What the window knows about one opened model: weights, data, latents, projections."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.core.data.base import ImageData
from explorer.core.models.base import LatentModel


@dataclass
class ModelEntry:
    path: str
    model: LatentModel
    meta: dict[str, Any]
    data: ImageData | None = None
    latents: np.ndarray | None = None  # (N, D) float32, the dataset encoded
    projections: dict[str, Any] = field(default_factory=dict)  # key -> fitted Projection
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (N, 2) positions
    status: str = ""
    identity: str = ""  # sha256 of the checkpoint file (see main_window.file_identity); "" if unknown
    cursor_latent: np.ndarray | None = None
    vectors: Any = None  # NamedVectors for arithmetic, made on first use
    probes: Any = None  # AttributeProbes, when the dataset has attributes
    keyframes: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (label, latent) for paths
    dropped: Any = None  # (images, latents, map positions, vector names) of images the user dropped
    restore: dict[str, Any] | None = None  # session state still to show once the map is drawn
    run_id: str = ""  # set for a model that is being (or was) trained in this window
    history: list[Any] = field(default_factory=list)  # ModelSnapshots at epoch ends, oldest first

    @property
    def name(self) -> str:
        return Path(self.path).name

    def summary(self) -> str:
        meta = self.meta
        cfg = meta.get("config", {})
        arch = cfg.get("arch")
        family = meta.get("family", self.model.family).upper() + (f" ({arch})" if arch else "")
        hist = meta.get("history") or {}
        final = hist.get("final_metrics") or {}
        bits = [family, f"latent {self.model.latent_dim}", f"data: {meta.get('dataset') or 'unknown'}"]
        if hist.get("epochs"):
            bits.append(f"{hist['epochs']} epochs")
        if "test_loss" in final:
            bits.append(f"test loss {final['test_loss']:.1f}")
        return " · ".join(bits)

    def dataset_key(self) -> str:
        """The dataset as encoded here (name, shape, size): part of a cached map's key."""
        shape = "x".join(str(v) for v in self.model.image_shape)
        n = len(self.data) if self.data is not None else 0
        return f"{self.meta.get('dataset')}:{shape}:{n}"

    def decode_uint8(self, z: np.ndarray) -> np.ndarray:
        """One latent vector -> (H, W, C) uint8. Called on the decode worker thread."""
        with torch.inference_mode():
            x = self.model.decode(torch.from_numpy(np.asarray(z, np.float32).reshape(1, -1)))
        arr = x[0].mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()
        return np.ascontiguousarray(arr.transpose(1, 2, 0))

    def decode_batch_uint8(self, z: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = self.model.decode(torch.from_numpy(np.asarray(z, np.float32)))
        return x.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()

    def reconstruct_uint8(self, index: int) -> np.ndarray | None:
        if self.data is None or not self.model.capabilities.has_encoder:
            return None
        x = torch.from_numpy(self.data.images[index : index + 1].astype(np.float32) / 255.0)
        with torch.inference_mode():
            z = self.model.encode(x)
            out = self.model.decode(z)[0]
        return np.ascontiguousarray((out.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy().transpose(1, 2, 0))

    def locate(self, z: np.ndarray, key: str) -> tuple[float, float] | None:
        """Map position of a latent vector under the projection ``key``."""
        proj = self.projections.get(key)
        if proj is None:
            return None
        p = proj.locate(np.asarray(z, np.float32).reshape(1, -1))[0]
        return float(p[0]), float(p[1])
