"""DC-IGN (Kulkarni et al. 2015): a VAE whose latent units are assigned to named factors of the faces.

Training draws its own batches from the procedural faces (the trainer's batch only sets the size): in each
step one assigned factor is chosen at random and the batch shows one person in whom only that factor varies.
The units *not* assigned to that factor (the free units too) are replaced by their batch mean in the forward
pass, so only the factor's own unit can explain the differences between the images; in the backward pass
each of them is pulled towards that mean (a squared-distance penalty on the posterior means, whose gradient
is the difference to the mean, as in the paper). With probability ``1 / (F + 1)`` a step instead draws a
batch in which every assigned factor is held fixed and everything else varies: then the assigned units are
clamped and the free units carry the rest (identity, unassigned attributes).

One departure from the paper: the decoder's gradient still reaches the clamped units *through* the batch
mean (shared equally by every image, so it cannot make them vary within the batch). With the mean detached,
as in the paper, the encoder learned the free units only from the few free batches and the assigned units
only from their own factor's batches. Measured on 16 px RGB faces (MLP, latent 8, 1500 steps, the default
units): with the mean detached, hair colour held 0.55 nats in its own unit and 0.57 in the smiling unit
(MIG 0.00); with the gradient through the mean, 0.93 vs at most 0.38 (invariance weight 1) and 0.99 vs
0.28 (weight 10). Factors must be visible at the image size: at 16 px, smiling, glasses and head turn move a
pixel or two and no model tested (VAE or DC-IGN) captures them (best unit under 0.1 of the factor's entropy).

Train it on the ``faces`` data set of the same image size (its test split is what the trainer evaluates).
``factor_units`` is stored in the config, so checkpoints name the units: :func:`unit_names`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import losses
from .base import LatentModel, check_nonnegative
from .registry import register
from .vae import VAE, VAEConfig

DEFAULT_FACTOR_UNITS: dict[str, int] = {"head_turn": 0, "smiling": 1, "glasses": 2, "hair_colour": 3}


def parse_factor_units(text: str) -> dict[str, int]:
    """``"smiling=0,glasses=1"`` -> ``{"smiling": 0, "glasses": 1}`` (ValueError naming the bad part)."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, unit = part.partition("=")
        if not sep or not name.strip() or not unit.strip().isdigit():
            raise ValueError(f"factor units must look like smiling=0,glasses=1; cannot read {part!r}")
        if name.strip() in out:
            raise ValueError(f"factor {name.strip()!r} is assigned twice")
        out[name.strip()] = int(unit)
    if not out:
        raise ValueError("no factor units given (e.g. smiling=0,glasses=1)")
    return out


@dataclass
class DCIGNConfig(VAEConfig):
    """A conv VAE plus the DC-IGN training mode. ``factor_units``: face attribute -> latent unit."""

    arch: str = "conv"
    factor_units: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_FACTOR_UNITS))
    invariance_weight: float = 10.0  # pull of the clamped units to their batch mean (gradient W * (z - mean); paper: 1)
    free_batches: bool = True  # also draw batches where the assigned factors are fixed and the rest varies
    seed: int = 0  # seed of the drawn batches (step k of seed s always shows the same faces)

    def validate(self) -> None:
        super().validate()
        from ..data.faces import ATTRIBUTE_NAMES

        if not isinstance(self.factor_units, dict) or not self.factor_units:
            raise ValueError(f"factor_units must map face attributes to latent units, got {self.factor_units!r}")
        seen: dict[int, str] = {}
        for name, unit in self.factor_units.items():
            if name not in ATTRIBUTE_NAMES:
                raise ValueError(f"unknown face attribute {name!r} in factor_units; known: "
                                 f"{', '.join(ATTRIBUTE_NAMES)}")
            if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < self.latent_dim:
                raise ValueError(f"factor_units: {name} -> unit {unit!r} is not a unit of a {self.latent_dim}-d "
                                 f"latent (0 to {self.latent_dim - 1})")
            if unit in seen:
                raise ValueError(f"factor_units: unit {unit} is assigned to both {seen[unit]} and {name}")
            seen[unit] = name
        check_nonnegative("invariance_weight", self.invariance_weight)
        if not isinstance(self.free_batches, bool):
            raise ValueError(f"free_batches must be true or false, got {self.free_batches!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        _, h, w = self.image_shape
        if h != w:
            raise ValueError(f"DC-IGN draws square faces; image_shape {list(self.image_shape)} is not square")


@register
class DCIGN(VAE):
    family = "dcign"
    config_cls = DCIGNConfig
    config: DCIGNConfig

    def __init__(self, config: DCIGNConfig):
        super().__init__(config)
        self._factors = list(config.factor_units)

    def draw_batch(self, size: int, step: int, device: torch.device | str | None = None
                   ) -> tuple[torch.Tensor, str | None]:
        """The faces of one training step and the factor that varies in them (None: the free batch)."""
        from ..data.face_batches import varying_batch

        c, s, _ = self.image_shape
        rng = np.random.default_rng([self.config.seed, step])
        n_kinds = len(self._factors) + (1 if self.config.free_batches else 0)
        kind = int(rng.integers(0, n_kinds))
        factor = self._factors[kind] if kind < len(self._factors) else None
        x, _ = varying_batch(factor, size, s, int(rng.integers(0, 1 << 62)), channels=c,
                             fixed=tuple(self._factors), device=device)
        return x, factor

    def clamp_mask(self, factor: str | None) -> torch.Tensor:
        """(D,) bool: True for the units replaced by their batch mean when ``factor`` varies."""
        mask = torch.ones(self.latent_dim, dtype=torch.bool)
        if factor is None:
            mask[:] = False
            mask[list(self.config.factor_units.values())] = True
        else:
            mask[self.config.factor_units[factor]] = False
        return mask

    def dcign_loss(self, x: torch.Tensor, factor: str | None) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode_dist(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        clamp = self.clamp_mask(factor).to(x.device)
        mean = z.mean(0, keepdim=True)
        # Forward: clamped units are the batch mean (the decoder's gradient reaches them only through it) ...
        z_used = torch.where(clamp, mean, z)
        recon = self._recon_loss(self.decoder(z_used), x)
        kl_dims = losses.kl_per_dim(mu, logvar)
        kl = kl_dims.sum()
        # ... backward: they are pulled towards it (gradient = difference to the mean).
        mu_mean = mu.mean(0, keepdim=True)
        invariance = 0.5 * ((mu - mu_mean).square() * clamp).sum(1).mean()
        loss = recon + self.config.beta * kl + self.config.invariance_weight * invariance
        return {"loss": loss, "recon": recon, "kl": kl, "invariance": invariance, "kl_per_dim": kl_dims}

    def train_step(
        self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        self._norm_guard.save()
        batch, factor = self.draw_batch(len(x), step, x.device)
        out = self.dcign_loss(batch, factor)
        self._apply_step(out["loss"], optimizers, step)
        return {k: v.detach() for k, v in out.items()}

    def extra_metadata(self) -> dict[str, Any]:
        return {"unit_names": {str(u): name for name, u in self.config.factor_units.items()}}


def unit_names(model: LatentModel) -> dict[int, str]:
    """Latent unit -> factor name for models with named units (DC-IGN), from the config or, for a checkpoint
    of a family that does not carry them in its config, from its metadata. Empty for other models."""
    units = getattr(model.config, "factor_units", None)
    if isinstance(units, dict):
        return {int(u): str(name) for name, u in units.items()}
    extra = ((getattr(model, "metadata", None) or {}).get("extra") or {}).get("unit_names") or {}
    out: dict[int, str] = {}
    if isinstance(extra, dict):
        for unit, name in extra.items():
            if str(unit).isdigit() and isinstance(name, str) and int(unit) < model.latent_dim:
                out[int(unit)] = name
    return out
