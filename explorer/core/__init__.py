"""The Qt-free core: models, checkpoints, data, training and latent-space tools.

Scripts and notebooks use::

    from explorer.core import load_model, save_model
    model = load_model("model.safetensors")          # eval mode, on the CPU
    images = model.decode(model.encode(x))
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .checkpoint import CheckpointError, inspect
from .models import LatentModel, build_model

__all__ = ["CheckpointError", "LatentModel", "build_model", "inspect", "load_model", "save_model"]


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LatentModel:
    """Load a Latent Explorer checkpoint; raises CheckpointError with a readable message."""
    from .checkpoint import load

    return load(path, device=device)


def save_model(model: LatentModel, path: str | os.PathLike[str], **metadata: Any):
    """Save a model atomically to a single .safetensors file with its metadata."""
    from .checkpoint import save

    return save(model, path, **metadata)
