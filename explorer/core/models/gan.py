"""DCGAN (Radford et al. 2016) with the training game of Goodfellow et al. (2014).

No encoder: real images reach the latent space only by inversion (optimising
z through :meth:`GAN.decode`, which therefore keeps gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import losses
from . import nets
from .base import (
    MAX_BASE_CHANNELS,
    Capabilities,
    LatentModel,
    ModelConfig,
    NonFiniteLossError,
    adam,
    check_choice,
    check_nonnegative,
    check_positive_int,
)
from .registry import register


def default_base_channels(image_shape: tuple[int, int, int]) -> int:
    """DCGAN's 64 for 64x64 images and up, a lighter 32 for small ones (MNIST, digits)."""
    return 64 if min(image_shape[1:]) >= 64 else 32


@dataclass
class GANConfig(ModelConfig):
    """DCGAN.

    * ``base_channels``: width of the first D layer / last G layer; ``None``
      picks :func:`default_base_channels` for the image size;
    * ``d_steps``: discriminator steps per generator step (k in Goodfellow et al.);
    * ``g_loss``: ``"nonsaturating"`` (``-log D(G(z))``) or ``"minimax"`` (``log(1 - D(G(z)))``);
    * ``label_smoothing``: one-sided smoothing of the real targets (0.1 is common).
    """

    latent_dim: int = 64
    base_channels: int | None = None
    d_steps: int = 1
    g_loss: str = "nonsaturating"
    label_smoothing: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.base_channels is not None:
            check_positive_int("base_channels", self.base_channels, MAX_BASE_CHANNELS)
        check_positive_int("d_steps", self.d_steps, 1000)
        check_choice("g_loss", self.g_loss, losses.G_LOSSES)
        check_nonnegative("label_smoothing", self.label_smoothing)
        if self.label_smoothing >= 0.5:
            raise ValueError(f"label_smoothing must be below 0.5, got {self.label_smoothing!r}")
        if problem := nets.conv_shape_problem(self.image_shape):
            raise ValueError(problem)

    @property
    def channels(self) -> int:
        return self.base_channels or default_base_channels(self.image_shape)


@register
class GAN(LatentModel):
    family = "gan"
    config_cls = GANConfig
    capabilities = Capabilities(has_encoder=False, is_generative=True)
    config: GANConfig

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.generator = nets.DCGANGenerator(config.latent_dim, config.image_shape, config.channels)
        self.discriminator = nets.DCGANDiscriminator(config.image_shape, config.channels)
        self._norm_guard = nets.BufferGuard(self)

    # ---- exploration
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        # tanh output in [-1, 1] -> [0, 1]; not under no_grad so that inversion can optimise z.
        return self.generator(z).add(1.0).mul_(0.5)

    # ---- training
    def configure_optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        # beta1 = 0.5 as in DCGAN: the default 0.9 momentum makes the game oscillate.
        return {
            "generator": adam(self.generator.parameters(), lr, betas=(0.5, 0.999)),
            "discriminator": adam(self.discriminator.parameters(), lr, betas=(0.5, 0.999)),
        }

    def _z(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=like.device, dtype=like.dtype)

    def _d_step(self, real: torch.Tensor, opt: torch.optim.Optimizer, step: int) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # D's step needs no gradient through G
            fake = self.generator(self._z(len(real), real))
        # One D pass over real and fake together would mix their BatchNorm statistics,
        # which lets D tell them apart by batch statistics alone; keep them separate.
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake)
        d_loss = losses.discriminator_loss(real_logits, fake_logits, self.config.label_smoothing)
        self.guarded_step(d_loss, opt, "discriminator loss", step)
        return {"d_loss": d_loss, "real_logits": real_logits, "fake_logits": fake_logits}

    def _g_step(self, n: int, like: torch.Tensor, opt: torch.optim.Optimizer, step: int) -> torch.Tensor:
        # D's weights get no gradient here (only G is stepped): skip computing them.
        with nets.frozen(self.discriminator):
            fake_logits = self.discriminator(self.generator(self._z(n, like)))
            g_loss = losses.generator_loss(fake_logits, self.config.g_loss)
            self.guarded_step(g_loss, opt, "generator loss", step)
        return g_loss

    def train_step(
        self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        real = x * 2.0 - 1.0  # the generator's tanh range
        self._norm_guard.save()
        try:
            for _ in range(self.config.d_steps):
                d = self._d_step(real, optimizers["discriminator"], step)
            g_loss = self._g_step(len(real), real, optimizers["generator"], step)
        except NonFiniteLossError:
            # Parameters are untouched by the failed step; the BatchNorm statistics must be too.
            self._norm_guard.restore()
            raise
        g_loss = g_loss.detach()
        return {
            "loss": g_loss,
            "d_loss": d["d_loss"].detach(),
            "g_loss": g_loss,
            "d_real": torch.sigmoid(d["real_logits"].detach()).mean(),
            "d_fake": torch.sigmoid(d["fake_logits"].detach()).mean(),
        }

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        """D's view of held-out images and of fresh samples. GAN losses are no quality measure,
        but D(x) on test images drifting from D(x) on training images shows D overfitting.

        The samples come from G in eval mode (what the explorer shows). D judges with batch
        statistics, as in training: its running statistics average real-only and fake-only
        batches, so in eval mode it calls nearly everything fake. The statistics that pass
        updates are put back, so evaluate changes no state.
        """
        with nets.eval_mode(self):
            z = self.prior_sample(len(x), generator).to(x.device)
            fake = self.generator(z)
            self._norm_guard.save()
            self.discriminator.train()
            try:
                real_logits = self.discriminator(x * 2.0 - 1.0)
                fake_logits = self.discriminator(fake)
            finally:
                self._norm_guard.restore()
        d_loss = losses.discriminator_loss(real_logits, fake_logits, self.config.label_smoothing)
        g_loss = losses.generator_loss(fake_logits, self.config.g_loss)
        return {
            "loss": float(g_loss),
            "d_loss": float(d_loss),
            "g_loss": float(g_loss),
            "d_real": float(torch.sigmoid(real_logits).mean()),
            "d_fake": float(torch.sigmoid(fake_logits).mean()),
        }

    def extra_metadata(self) -> dict[str, int]:
        return {"base_channels": self.config.channels}
