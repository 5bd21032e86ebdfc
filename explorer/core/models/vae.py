"""Variational autoencoder (Kingma & Welling 2014), optionally beta-VAE (Higgins et al. 2017).

The encoder is one network with ``2 * latent_dim`` outputs split into (mu,
logvar): the same function as the PyTorch example's two heads ``fc21``/``fc22``
in one matmul.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from . import losses
from . import nets
from .ae import EncDecConfig, EncDecModel
from .base import Capabilities, check_nonnegative
from .registry import register

# A latent dimension counts as active when it carries at least this many nats (per image).
ACTIVE_KL_NATS = 0.01


@dataclass
class VAEConfig(EncDecConfig):
    """VAE: ``loss = recon + beta * KL``. ``beta = 1`` is the plain VAE (the ELBO).

    ``perceptual > 0`` adds that weight times a feature-matching term (:mod:`.perceptual`, a small net
    trained on the procedural faces) to the reconstruction loss while training; test figures stay plain.
    """

    archs: ClassVar[tuple[str, ...]] = ("mlp", "conv")

    beta: float = 1.0
    perceptual: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_nonnegative("beta", self.beta)
        check_nonnegative("perceptual", self.perceptual)


@register
class VAE(EncDecModel):
    family = "vae"
    config_cls = VAEConfig
    capabilities = Capabilities(has_encoder=True, is_generative=True, has_posterior=True)
    config: VAEConfig

    def __init__(self, config: VAEConfig):
        super().__init__(config, encoder_out=2 * config.latent_dim)

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]

    def _terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(recon, kl_per_dim, mu, raw decoder output) with z drawn by the reparameterisation trick."""
        mu, logvar = self.encode_dist(x)
        if generator is None:
            eps = torch.randn_like(mu)
        else:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        raw = self.decoder(z)
        return self._recon_loss(raw, x), losses.kl_per_dim(mu, logvar), mu, raw

    def train_step(
        self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        # Kept lean on purpose (it bounds training speed): no .item(), no device sync
        # beyond guarded_step's finiteness check, KL computed once per dimension and summed.
        self._norm_guard.save()
        recon, kl_dims, _, raw = self._terms(x)
        kl = kl_dims.sum()
        loss = recon + self.config.beta * kl
        out = {}
        if self.config.perceptual > 0:
            from .perceptual import perceptual_loss

            p = perceptual_loss(self._display(raw), x)
            loss = loss + self.config.perceptual * p
            out["perceptual"] = p.detach()
        self._apply_step(loss, optimizers, step)
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach(), "kl_per_dim": kl_dims.detach(),
                **out}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float | list[float]]:
        """Per-image test figures; ``loss`` is the negative ELBO (beta = 1) with one sampled z."""
        with nets.eval_mode(self):
            recon, kl_dims, mu, _ = self._terms(x, generator)
            kl = kl_dims.sum()
            mse = losses.pixel_mse(self.decode(mu), x)
        return {
            "loss": float(recon + kl),
            "recon": float(recon),
            "kl": float(kl),
            "kl_per_dim": kl_dims.tolist(),
            "active_dims": int((kl_dims > ACTIVE_KL_NATS).sum()),
            "mse": float(mse),
        }
