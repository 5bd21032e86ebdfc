"""Deterministic autoencoders: plain, denoising, sparse, and the linear AE (the PCA twin).

Shared with the VAE (``vae.py``): the encoder/decoder config fields
(:class:`EncDecConfig`) and the decoder-side helpers (:class:`EncDecModel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from . import losses
from . import nets
from .base import (
    MAX_BASE_CHANNELS,
    MAX_HIDDEN_LAYERS,
    MAX_LAYER_WIDTH,
    Capabilities,
    LatentModel,
    ModelConfig,
    NonFiniteLossError,
    check_choice,
    check_nonnegative,
    check_positive_int,
)
from .base import _short_repr
from .registry import register


@dataclass
class EncDecConfig(ModelConfig):
    """Network fields shared by the AE and VAE configs.

    ``hidden`` applies to ``arch="mlp"`` (the default ``(400,)`` with a
    20-d latent is the classic 784-400-20-400-784 model); ``base_channels`` and
    ``batchnorm`` apply to ``arch="conv"``; ``"linear"`` has no hidden layer and
    no nonlinearity.
    """

    archs: ClassVar[tuple[str, ...]] = nets.ARCHS  # the architectures this family accepts

    arch: str = "mlp"
    hidden: tuple[int, ...] = (400,)
    base_channels: int = 32
    batchnorm: bool = False
    loss: str = "bce"

    def __post_init__(self) -> None:
        # JSON (and the CLI) hand over lists; the config stays hashable/comparable as a tuple.
        if isinstance(self.hidden, list):
            self.hidden = tuple(self.hidden)

    def validate(self) -> None:
        super().validate()
        check_choice("arch", self.arch, self.archs)
        check_choice("loss", self.loss, losses.RECON_LOSSES)
        if not isinstance(self.hidden, tuple):
            raise ValueError(f"hidden must be a list of layer sizes, got {_short_repr(self.hidden)}")
        if len(self.hidden) > MAX_HIDDEN_LAYERS:
            raise ValueError(f"hidden has {len(self.hidden)} layers, at most {MAX_HIDDEN_LAYERS} are allowed")
        for size in self.hidden:
            check_positive_int("each hidden layer size", size, MAX_LAYER_WIDTH)
        check_positive_int("base_channels", self.base_channels, MAX_BASE_CHANNELS)
        if not isinstance(self.batchnorm, bool):
            raise ValueError(f"batchnorm must be true or false, got {self.batchnorm!r}")
        if self.arch == "conv" and (problem := nets.conv_shape_problem(self.image_shape)):
            raise ValueError(problem)


class EncDecModel(LatentModel):
    """An encoder network and a decoder network producing logits (or raw values for the linear AE)."""

    config: EncDecConfig

    def __init__(self, config: EncDecConfig, encoder_out: int):
        super().__init__(config)
        c = config
        self.encoder = nets.build_encoder(c.arch, c.image_shape, encoder_out, c.hidden, c.base_channels, c.batchnorm)
        self.decoder = nets.build_decoder(c.arch, c.latent_dim, c.image_shape, c.hidden, c.base_channels, c.batchnorm)
        self._norm_guard = nets.BufferGuard(self)
        # A linear AE trained with MSE must be a purely linear map for its optimum to be
        # PCA: no sigmoid in the loss, and the output is only clamped for display.
        self._raw_output = c.arch == "linear" and c.loss == "mse"

    def _recon_loss(self, raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self._raw_output:
            return losses.sse(raw, x)
        return losses.reconstruction(self.config.loss, raw, x)

    def _display(self, raw: torch.Tensor) -> torch.Tensor:
        """Decoder output -> image in [0, 1]."""
        return raw.clamp(0.0, 1.0) if self._raw_output else torch.sigmoid(raw)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._display(self.decoder(z))

    def _apply_step(
        self, loss: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], step: int
    ) -> None:
        """guarded_step, plus putting BatchNorm statistics back if the batch was poisoned."""
        try:
            self.guarded_step(loss, optimizers["model"], "loss", step)
        except NonFiniteLossError:
            self._norm_guard.restore()
            raise


@dataclass
class AEConfig(EncDecConfig):
    """Autoencoder.

    * ``denoising_std > 0``: denoising AE, trained on ``clamp(x + N(0, std^2), 0, 1)``
      to reconstruct the clean ``x``;
    * ``masking_prob > 0``: masking noise instead of / as well as Gaussian noise
      (each input pixel is zeroed with this probability);
    * ``sparsity_l1 > 0``: sparse AE, adds ``sparsity_l1 * |z|_1`` (per image) to the loss.
    """

    denoising_std: float = 0.0
    masking_prob: float = 0.0
    sparsity_l1: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_nonnegative("denoising_std", self.denoising_std)
        check_nonnegative("sparsity_l1", self.sparsity_l1)
        check_nonnegative("masking_prob", self.masking_prob)
        if self.masking_prob >= 1:
            raise ValueError(f"masking_prob must be below 1, got {self.masking_prob!r}")


@register
class AE(EncDecModel):
    family = "ae"
    config_cls = AEConfig
    # Codes of a plain AE follow no known distribution, so N(0, I) samples are not meaningful.
    capabilities = Capabilities(has_encoder=True, is_generative=False)
    config: AEConfig

    def __init__(self, config: AEConfig):
        super().__init__(config, encoder_out=config.latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The denoising AE's input corruption (identity when neither noise is configured)."""
        c = self.config
        if c.denoising_std > 0:
            x = (x + c.denoising_std * torch.randn_like(x)).clamp_(0.0, 1.0)
        if c.masking_prob > 0:
            x = x * (torch.rand_like(x) >= c.masking_prob)
        return x

    def _losses(self, x_in: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Loss terms (per image) and the raw decoder output."""
        z = self.encoder(x_in)
        raw = self.decoder(z)
        recon = self._recon_loss(raw, target)
        out = {"loss": recon, "recon": recon}
        if self.config.sparsity_l1 > 0:
            l1 = z.abs().sum(1).mean()
            out["l1"] = l1
            out["loss"] = recon + self.config.sparsity_l1 * l1
        return out, raw

    def train_step(
        self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        self._norm_guard.save()
        out, _ = self._losses(self.corrupt(x), x)
        self._apply_step(out["loss"], optimizers, step)
        return {k: v.detach() for k, v in out.items()}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        # Evaluated on clean inputs: the figure a user compares across models.
        with nets.eval_mode(self):
            out, raw = self._losses(x, x)
            metrics = {k: float(v) for k, v in out.items()}
            metrics["mse"] = float(losses.pixel_mse(self._display(raw), x))
        return metrics
