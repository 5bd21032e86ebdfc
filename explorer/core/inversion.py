"""GAN inversion: find the latent codes whose decoded images reconstruct given images.

A GAN (or any model without an encoder) cannot *encode* an image, but its decoder is differentiable, so a
code can be found by optimisation: minimise ``mean((decode(z) - x)^2) + prior_weight * mean(z^2)`` over z
with Adam. The loss surface is not convex, so every image gets several random starts (``restarts``), run side
by side in one batch, and keeps the code that reconstructs it best at any step. The prior term keeps z near
the region the generator was trained on (N(0, I)); without it the optimiser can wander to large codes that fit
the pixels but sit off the map.

::

    from explorer.core.inversion import invert, images_to_latents

    result = invert(model, images_uint8, steps=300, restarts=4, progress=cb, cancel=event)
    result.z          # (N, latent_dim) float32
    result.errors     # (N,) per-image pixel MSE of decode(z) against the image, in [0, 1] units

    z, errors, how = images_to_latents(model, images_uint8)   # encode when it can, invert otherwise

Only ``decode`` is needed, so it works for every family (a VAE can be inverted too, e.g. to check its encoder).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .latent import Cancelled
from .models.base import LatentModel
from .models.nets import eval_mode, frozen

__all__ = ["InversionResult", "images_to_latents", "invert", "mean_image_baseline"]

ProgressFn = Callable[[int, int], None]


@dataclass
class InversionResult:
    z: np.ndarray  # (N, latent_dim) float32: the best code found for each image
    errors: np.ndarray  # (N,) float32: pixel MSE of decode(z) against the target, values in [0, 1]
    steps: int  # optimisation steps run per batch
    restarts: int  # random starts per image
    seconds: float

    def info(self) -> dict[str, Any]:
        return {
            "images": len(self.z),
            "mean_error": float(self.errors.mean()) if len(self.errors) else None,
            "max_error": float(self.errors.max()) if len(self.errors) else None,
            "steps": self.steps,
            "restarts": self.restarts,
            "seconds": round(self.seconds, 3),
        }


def _as_float_images(images: Any, model: LatentModel) -> torch.Tensor:
    """uint8 (0..255) or float (0..1) images, numpy or torch, (N, C, H, W) -> float32 tensor on the CPU."""
    if isinstance(images, torch.Tensor):
        x = images.detach().cpu()
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    else:
        arr = np.asarray(images)
        if arr.dtype == np.uint8:
            x = torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)
        elif np.issubdtype(arr.dtype, np.floating):
            x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        else:
            raise ValueError(f"images must be uint8 (0..255) or float (0..1), got {arr.dtype}")
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    if tuple(x.shape[1:]) != tuple(model.image_shape):
        raise ValueError(
            f"the images are {tuple(x.shape[1:])} (C, H, W) but the model expects {tuple(model.image_shape)}"
        )
    return x


def mean_image_baseline(images: Any) -> float:
    """Pixel MSE of predicting every image by the mean image: the error a model that ignores its input makes.

    Reconstruction errors mean something only next to this number (it is the data's per-pixel variance).
    """
    x = images.float() if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images, np.float32))
    if len(x) == 0:
        return float("nan")
    return float(((x - x.mean(0, keepdim=True)) ** 2).mean())


def invert(
    model: LatentModel,
    images: Any,
    *,
    steps: int = 300,
    restarts: int = 4,
    batch_size: int = 64,
    lr: float = 0.05,
    prior_weight: float = 1e-3,
    seed: int = 0,
    init: np.ndarray | torch.Tensor | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> InversionResult:
    """Optimise one latent code per image so that ``model.decode(z)`` reconstructs it.

    images: (N, C, H, W) uint8 (0..255) or float (0..1), numpy or torch, of the model's image shape.
    steps: Adam steps per batch. The learning rate decays from ``lr`` to ``lr / 20`` on a cosine: large early
        steps find the basin, small late ones settle in it.
    restarts: random starting codes per image, optimised together in one batch; the best one is kept.
    batch_size: images per optimisation batch (each holds ``batch_size * restarts`` codes).
    prior_weight: weight of ``mean(z^2)`` (the N(0, I) prior's negative log-density up to constants, per
        dimension) against the per-pixel MSE.
    init: optional (N, latent_dim) starting codes (e.g. an encoder's guess); they replace the first restart.
    progress(done, total): called at most ~10 times a second and at the end, in optimisation steps over all
        batches (total = batches * steps).
    cancel: checked before every step; :class:`explorer.core.latent.Cancelled` is raised when it is set.

    The model is put in eval mode (batch-norm running statistics, no dropout: the images the explorer shows)
    and its parameters are frozen for the duration, so no weight gradients are computed; both are restored.
    """
    for name, value in (("steps", steps), ("restarts", restarts), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if not prior_weight >= 0:
        raise ValueError(f"prior_weight must be >= 0, got {prior_weight!r}")
    x_all = _as_float_images(images, model)
    n, d = len(x_all), model.latent_dim
    if init is not None:
        init_t = torch.as_tensor(np.asarray(init, dtype=np.float32) if not isinstance(init, torch.Tensor) else init)
        init_t = init_t.detach().float().cpu()
        if tuple(init_t.shape) != (n, d):
            raise ValueError(f"init must have shape ({n}, {d}), got {tuple(init_t.shape)}")
    device = model.device
    gen = torch.Generator().manual_seed(int(seed))
    z_out = np.zeros((n, d), np.float32)
    err_out = np.zeros(n, np.float32)
    n_batches = (n + batch_size - 1) // batch_size
    total = n_batches * steps
    t0 = time.perf_counter()
    last_report = 0.0
    done = 0

    with eval_mode(model), frozen(model), torch.enable_grad():
        for b, start in enumerate(range(0, n, batch_size)):
            x = x_all[start:start + batch_size].to(device)
            m = len(x)
            # Codes laid out restart-major: row r * m + i is restart r of image i.
            z0 = torch.randn(restarts * m, d, generator=gen)
            if init is not None:
                z0[:m] = init_t[start:start + m]
            z = z0.to(device).requires_grad_(True)
            target = x.repeat(restarts, 1, 1, 1)
            opt = torch.optim.Adam([z], lr=lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 20)
            best_err = torch.full((restarts * m,), float("inf"), device=device)
            best_z = z.detach().clone()
            for _ in range(steps):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("inversion cancelled")
                recon = model.decode(z)
                per_image = (recon - target).pow(2).flatten(1).mean(1)
                loss = per_image.sum() + prior_weight * z.pow(2).mean(1).sum()
                with torch.no_grad():
                    # per_image belongs to the codes *before* this step: keep the best seen so far.
                    err = torch.nan_to_num(per_image.detach(), nan=float("inf"))
                    better = err < best_err
                    best_err = torch.where(better, err, best_err)
                    best_z[better] = z.detach()[better]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                done += 1
                now = time.perf_counter()
                if progress is not None and now - last_report >= 0.1:
                    last_report = now
                    progress(done, total)
            with torch.no_grad():  # the codes after the last step were never scored
                err = torch.nan_to_num((model.decode(z) - target).pow(2).flatten(1).mean(1), nan=float("inf"))
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best_z[better] = z.detach()[better]
            errs = best_err.view(restarts, m)
            pick = errs.argmin(0)
            rows = pick * m + torch.arange(m, device=device)
            z_out[start:start + m] = best_z[rows].float().cpu().numpy()
            err_out[start:start + m] = errs.min(0).values.float().cpu().numpy()
    if progress is not None:
        progress(total, total)
    return InversionResult(z_out, err_out, steps, restarts, time.perf_counter() - t0)


def images_to_latents(
    model: LatentModel,
    images: Any,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **invert_options: Any,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Latent codes for dropped images: ``(z, errors, method)``.

    Models with an encoder encode (``method == "encode"``, ``errors`` None: encoding is one pass);
    the others are inverted (``method == "invert"``, ``errors`` the per-image reconstruction MSE, which the GUI
    can show as "how well the model can draw this image"). ``invert_options`` go to :func:`invert`.
    """
    if model.capabilities.has_encoder:
        from .latent.encoding import encode_dataset

        arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        z = encode_dataset(model, arr, progress=progress, cancel=cancel)
        return z, None, "encode"
    result = invert(model, images, progress=progress, cancel=cancel, **invert_options)
    return result.z, result.errors, "invert"
