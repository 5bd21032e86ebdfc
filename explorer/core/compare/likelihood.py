"""Likelihoods side by side: the VAE's ELBO, the tighter importance-weighted bound, PixelCNN's exact NLL.

All figures are negative log-likelihoods of the test images in nats per image (lower is better) plus the
best of them in bits per dimension (``nll / (C * H * W * ln 2)``):

* ``neg_elbo``: ``E_q[-log p(x|z)] + KL(q(z|x) || p(z))``, an *upper* bound on ``-log p(x)``, averaged over
  ``k`` samples of z (the KL term in closed form);
* ``nll_iwae``: ``-log (1/k) sum_i p(x, z_i) / q(z_i|x)`` (Burda et al. 2016), z_i ~ q(z|x): also an upper
  bound, never looser than ``neg_elbo`` in expectation and tighter as k grows (k = 1 is the ELBO);
* ``nll_exact``: a PixelCNN's ``-log p(x)``, exact.

The decoder's likelihood is the one the VAE trains with: Bernoulli (BCE on the logits). On binary images
(binarised MNIST) that is a proper density of the image and every figure here measures the same thing; on
grey levels a Bernoulli "likelihood" of a grey pixel is not a probability of that image, and a PixelCNN with
Bernoulli output scores the image binarised at 0.5, so compare them on binary data (see :func:`binarized`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.base import ImageData
from ..models.base import LatentModel
from ..progress import ProgressFn, check_cancel, step_progress
from .columns import BCE_EPS, CompareError
from .common import _EvalMode, _float_batch

LOG_2PI = math.log(2.0 * math.pi)
LIKELIHOOD_NAMES = ["neg_elbo", "nll_iwae", "nll_exact", "bits_per_dim"]
MAX_K = 10000


def binarized(data: ImageData, threshold: int = 128) -> ImageData:
    """``data`` with every pixel set to 0 or 255 (>= ``threshold``): fixed binarisation, so the Bernoulli
    likelihoods of the VAE and of a PixelCNN are densities of the same binary images."""
    images = np.where(data.images >= threshold, 255, 0).astype(np.uint8)
    return replace(data, images=images, name=data.name, notes=[*data.notes, f"binarised at {threshold}"])


def _log_px_given_z(model: LatentModel, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | z) per image (Bernoulli), from the decoder's logits where the family exposes them."""
    decoder = getattr(model, "decoder", None)
    cfg = model.config
    if decoder is not None and getattr(cfg, "loss", "bce") == "bce" and not getattr(model, "_raw_output", False):
        logits = decoder(z)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    p = model.decode(z).clamp(BCE_EPS, 1.0 - BCE_EPS)
    return (x * p.log() + (1.0 - x) * (1.0 - p).log()).flatten(1).sum(1)


@torch.no_grad()
def vae_bounds(
    model: LatentModel,
    images: np.ndarray,
    *,
    k: int = 64,
    batch_size: int = 100,
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, float]:
    """``{"neg_elbo", "nll_iwae"}`` in nats/image over ``images`` (uint8 or floats in [0, 1]) with ``k`` samples
    of z per image (the same samples for both figures). Needs a model with a posterior (``encode_dist``)."""
    if not model.capabilities.has_posterior:
        raise CompareError(f"{model.family} models have no posterior q(z|x), so they have no ELBO")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise CompareError(f"k (importance samples) must be an integer from 1 to {MAX_K}, got {k!r}")
    n = len(images)
    if n == 0:
        raise CompareError("no images to score")
    gen = torch.Generator().manual_seed(seed)
    elbo_sum = iwae_sum = 0.0
    per_batch = max(1, batch_size)
    batches = math.ceil(n / per_batch)
    with _EvalMode(model):
        for b, start in enumerate(range(0, n, per_batch)):
            check_cancel(cancel)
            x = _float_batch(images[start:start + per_batch], model.device)
            mu, logvar = model.encode_dist(x)
            mu, logvar = mu.double(), logvar.double()
            std = torch.exp(0.5 * logvar)
            kl = (-0.5 * (1.0 + logvar - mu.square() - logvar.exp())).sum(1)  # (B,)
            log_w = torch.empty(k, len(x), dtype=torch.float64, device=x.device)
            recon = torch.zeros(len(x), dtype=torch.float64, device=x.device)
            for i in range(k):
                eps = torch.randn(mu.shape, generator=gen, dtype=torch.float64).to(x.device)
                z = mu + std * eps
                log_px = _log_px_given_z(model, z.to(x.dtype), x).double()
                log_pz = -0.5 * (z.square() + LOG_2PI).sum(1)
                log_qz = -0.5 * (eps.square() + LOG_2PI + logvar).sum(1)
                log_w[i] = log_px + log_pz - log_qz
                recon -= log_px
            elbo_sum += float((recon / k + kl).sum())
            iwae_sum += float(-(torch.logsumexp(log_w, 0) - math.log(k)).sum())
            step_progress(progress, b + 1, batches, f"importance-weighted bound, batch {b + 1} of {batches}")
    return {"neg_elbo": elbo_sum / n, "nll_iwae": iwae_sum / n}


@torch.no_grad()
def exact_nll(model: LatentModel, images: np.ndarray, *, batch_size: int = 200,
              progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> float:
    """An exact-likelihood model's (PixelCNN's) mean ``-log p(x)`` in nats/image over ``images``."""
    if not getattr(model, "exact_likelihood", False):
        raise CompareError(f"{model.family} models have no exact likelihood")
    n = len(images)
    if n == 0:
        raise CompareError("no images to score")
    total = 0.0
    batches = math.ceil(n / batch_size)
    with _EvalMode(model):
        for b, start in enumerate(range(0, n, batch_size)):
            check_cancel(cancel)
            x = _float_batch(images[start:start + batch_size], model.device)
            total += float(-model.log_prob(x).double().sum())
            step_progress(progress, b + 1, batches, f"exact likelihood, batch {b + 1} of {batches}")
    return total / n


def likelihood_metrics(
    model: LatentModel,
    images: np.ndarray,
    *,
    k: int = 64,
    batch_size: int = 100,
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """The likelihood columns (:data:`LIKELIHOOD_NAMES`) of one model; None where the family has none
    (AE, GAN, PCA). ``bits_per_dim`` is that of the tightest figure (exact, else IWAE)."""
    out: dict[str, Any] = {name: None for name in LIKELIHOOD_NAMES}
    dims = math.prod(model.image_shape)
    if getattr(model, "exact_likelihood", False):
        out["nll_exact"] = exact_nll(model, images, batch_size=batch_size, progress=progress, cancel=cancel)
        out["bits_per_dim"] = out["nll_exact"] / (dims * math.log(2.0))
    elif model.capabilities.has_posterior:
        out.update(vae_bounds(model, images, k=k, batch_size=batch_size, seed=seed, progress=progress,
                              cancel=cancel))
        out["bits_per_dim"] = out["nll_iwae"] / (dims * math.log(2.0))
    out["iwae_k"] = k if out["nll_iwae"] is not None else None
    return out
