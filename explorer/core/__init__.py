"""The Qt-free core: models, checkpoints, data, training and latent-space tools.

Scripts and notebooks use::

    from explorer.core import load_model, save_model
    model = load_model("model.safetensors")          # eval mode, on the CPU
    images = model.decode(model.encode(x))
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .checkpoint import CheckpointError, inspect
    from .models import LatentModel, build_model

__all__ = ["CheckpointError", "LatentModel", "build_model", "inspect", "load_model", "save_model"]

# Imported on first use, not with the package: a worker process that only decodes images (the data cache's
# spawn pool) imports explorer.core.data.* and must not pay for torch (8 s for two workers on a loaded machine).
_LAZY = {"CheckpointError": ".checkpoint", "inspect": ".checkpoint", "LatentModel": ".models",
         "build_model": ".models"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LatentModel:
    """Load a Latent Explorer checkpoint; raises CheckpointError with a readable message."""
    from .checkpoint import load

    return load(path, device=device)


def save_model(model: LatentModel, path: str | os.PathLike[str], **metadata: Any):
    """Save a model atomically to a single .safetensors file with its metadata."""
    from .checkpoint import save

    return save(model, path, **metadata)
