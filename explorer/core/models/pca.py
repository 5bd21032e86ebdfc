"""PCA as a latent model: the linear baseline every autoencoder is compared with.

Fitted in closed form. With ``whiten=True`` (the default) each code is divided
by the standard deviation of its component, so codes of the training data have
unit variance and decoding N(0, I) samples gives plausible images (PCA is then
the maximum-likelihood probabilistic PCA in the zero-noise limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import losses
from .base import Capabilities, LatentModel, ModelConfig
from .registry import register

# Components whose standard deviation is below this are treated as absent
# (rank-deficient data); whitening by them would blow codes up.
_MIN_SCALE = 1e-6


@dataclass
class PCAConfig(ModelConfig):
    whiten: bool = True

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.whiten, bool):
            raise ValueError(f"whiten must be true or false, got {self.whiten!r}")
        n_pixels = math.prod(self.image_shape)
        if self.latent_dim > n_pixels:
            raise ValueError(f"latent_dim {self.latent_dim} exceeds the {n_pixels} pixels of a {self.image_shape} image")


@register
class PCA(LatentModel):
    family = "pca"
    config_cls = PCAConfig
    capabilities = Capabilities(has_encoder=True, is_generative=True, trainable=False, closed_form=True)
    config: PCAConfig

    mean: torch.Tensor
    components: torch.Tensor
    scale: torch.Tensor

    def __init__(self, config: PCAConfig):
        super().__init__(config)
        n_pixels = math.prod(config.image_shape)
        # Registered (persistent) at their final shapes so a checkpoint loads into a fresh model.
        self.register_buffer("mean", torch.zeros(n_pixels))
        self.register_buffer("components", torch.zeros(config.latent_dim, n_pixels))
        # Ones, not zeros: an unfitted model must not divide by zero when it encodes.
        self.register_buffer("scale", torch.ones(config.latent_dim))

    # ---- fitting
    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> dict[str, float | list[float]]:
        """Principal components of the flattened images ``x`` (N, C, H, W) in [0, 1]."""
        flat = x.reshape(len(x), -1).to(self.mean.device, torch.float32)
        n, p = flat.shape
        if n < 2:
            raise ValueError("PCA needs at least 2 images to fit")
        mean = flat.mean(0)
        variances, components = _principal_axes(flat - mean)  # descending, (p',), (p', p)
        k = self.latent_dim
        total = float(variances.sum())
        kept = variances[:k]
        self.mean.copy_(mean)
        self.components.zero_()
        self.components[: len(kept)].copy_(components[:k])
        self.scale.fill_(1.0)
        self.scale[: len(kept)].copy_(kept.sqrt().clamp_min(_MIN_SCALE))
        # The residual variance is exactly the discarded eigenvalues, so the training
        # reconstruction error needs no second pass over the data.
        residual = max(total - float(kept.sum()), 0.0)
        return {
            "explained_variance_ratio": (kept / total if total > 0 else torch.zeros_like(kept)).tolist(),
            "explained_variance_total": float(kept.sum()) / total if total > 0 else 0.0,
            "recon_mse": residual * (n - 1) / n / p,
        }

    # ---- exploration
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.reshape(len(x), -1) - self.mean) @ self.components.T
        return z / self.scale if self.config.whiten else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        flat = self._decode_flat(z)
        return flat.clamp(0.0, 1.0).reshape(len(z), *self.image_shape)

    def _decode_flat(self, z: torch.Tensor) -> torch.Tensor:
        if self.config.whiten:
            z = z * self.scale
        return torch.addmm(self.mean, z, self.components)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        # Unwhitened codes have the component variances; draw them at that scale.
        z = super().prior_sample(n, generator)
        return z if self.config.whiten else z * self.scale.to(z.device)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        recon = self.reconstruct(x)
        sse = float(losses.sse(recon, x))
        return {"loss": sse, "recon": sse, "mse": float(losses.pixel_mse(recon, x))}


def _principal_axes(centred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(variances, unit axes as rows), largest first, with a deterministic sign.

    Tall data (many more images than pixels, e.g. 70k x 784) goes through the
    p x p covariance: one matmul plus a small symmetric eigendecomposition,
    well under a second, where an SVD of the whole matrix takes several. The
    eigendecomposition runs in float64 so small components stay accurate.
    """
    n, p = centred.shape
    if n >= 2 * p:
        cov = (centred.T @ centred).double() / (n - 1)
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        variances = evals.flip(0).clamp_min(0.0)
        axes = evecs.flip(1).T
    else:
        _, s, vh = torch.linalg.svd(centred.double(), full_matrices=False)
        variances = s.square() / (n - 1)
        axes = vh
    # Same convention as scikit-learn: the largest-magnitude loading of each axis is positive.
    idx = axes.abs().argmax(1, keepdim=True)
    signs = torch.sign(axes.gather(1, idx))
    signs[signs == 0] = 1.0
    return variances.float(), (axes * signs).float()
