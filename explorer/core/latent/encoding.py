"""Encode a whole dataset into latent vectors, in batches, with progress and cancel."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch

from ..models.base import CapabilityError, LatentModel
from . import Cancelled

__all__ = ["encode_dataset"]


def encode_dataset(
    model: LatentModel,
    images_uint8: np.ndarray,
    batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """Latent codes of ``images_uint8`` (N, C, H, W), as float32 (N, latent_dim).

    Images are uint8 in [0, 255] (float arrays are taken to be in [0, 1] already). Only one batch is
    converted to float at a time, so encoding 70k MNIST images needs ~3 MB of float memory rather than
    ~220 MB. A VAE gives its posterior mean. The model is put in eval mode for the duration (dropout and
    batch-norm statistics must not change the codes) and its previous mode is restored afterwards.

    ``progress(done, total)`` is called after every batch; ``cancel`` is checked before every batch and
    :class:`Cancelled` raised when it is set. Models without an encoder (GANs) raise ``CapabilityError``.
    """
    if not model.capabilities.has_encoder:
        raise CapabilityError(
            f"{model.family.upper() or 'this'} models have no encoder, so a dataset cannot be encoded into their "
            "latent space; explore them from prior samples instead"
        )
    images = np.asarray(images_uint8)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got an array of shape {images.shape}")
    if tuple(images.shape[1:]) != tuple(model.image_shape):
        raise ValueError(
            f"the images are {tuple(images.shape[1:])} (C, H, W) but the model expects {tuple(model.image_shape)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    scale = 1.0 / 255.0 if images.dtype == np.uint8 else None
    if scale is None and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 (0..255) or float (0..1), got {images.dtype}")

    n = len(images)
    out = np.empty((n, model.latent_dim), np.float32)
    device = model.device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("encoding cancelled")
                # Converted on the model's device: the uint8 batch is 4x smaller to move to a GPU.
                x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
                x = x.float().mul_(scale) if scale is not None else x.float()
                z = model.encode(x)
                if z.ndim != 2 or z.shape != (len(x), model.latent_dim):
                    raise ValueError(
                        f"the model's encoder returned shape {tuple(z.shape)}, expected ({len(x)}, {model.latent_dim})"
                    )
                out[start : start + len(x)] = z.float().cpu().numpy()
                if progress is not None:
                    progress(min(start + batch_size, n), n)
    finally:
        model.train(was_training)
    if n == 0 and progress is not None:
        progress(0, 0)
    return out
