"""Loss functions shared by the model families.

Conventions: reconstruction losses are *summed over pixels and averaged over
the batch* (for BCE that is nats per image, the unit the VAE literature and the
PyTorch VAE example report). Decoders hand over logits / raw outputs, never
probabilities: ``binary_cross_entropy_with_logits`` is both numerically stable
and one fused kernel instead of a sigmoid plus a log.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RECON_LOSSES: tuple[str, ...] = ("bce", "mse")
G_LOSSES: tuple[str, ...] = ("nonsaturating", "minimax")


# ------------------------------------------------------------ reconstruction
def bce_with_logits_sum(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood: sum over pixels, mean over the batch."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def sse(pred: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors over pixels, mean over the batch."""
    return F.mse_loss(pred, x, reduction="sum") / x.shape[0]


def reconstruction(kind: str, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reconstruction loss of decoder logits against images in [0, 1].

    ``"mse"`` compares ``sigmoid(logits)`` (the decoded image) with ``x``;
    callers whose decoder output is already in image space (the linear AE)
    use :func:`sse` directly.
    """
    if kind == "bce":
        return bce_with_logits_sum(logits, x)
    if kind == "mse":
        return sse(torch.sigmoid(logits), x)
    raise ValueError(f"unknown reconstruction loss {kind!r}; choose one of {', '.join(RECON_LOSSES)}")


def pixel_mse(pred: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error per pixel: a family-independent reconstruction figure."""
    return F.mse_loss(pred, x, reduction="mean")


# ------------------------------------------------------------ KL divergence
def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, averaged over the batch: shape (D,).

    Summing the result gives :func:`kl_divergence`, so a caller that wants both
    computes this once and sums it.
    """
    return -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).mean(0)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed-form KL to the standard normal prior, summed over dimensions, mean over the batch."""
    return kl_per_dim(mu, logvar).sum()


# ------------------------------------------------------------ GAN
def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Binary cross-entropy of D on real (target ``1 - label_smoothing``) and fake (target 0) logits.

    One-sided label smoothing (Salimans et al. 2016) only softens the real
    targets; smoothing the fake ones would reward D for being unsure about fakes.
    """
    real_target = torch.full_like(real_logits, 1.0 - label_smoothing)
    real = F.binary_cross_entropy_with_logits(real_logits, real_target)
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """Generator loss on D's logits for generated images.

    * ``"nonsaturating"``: ``-log D(G(z))`` (Goodfellow et al. 2014, the one used
      in practice: strong gradients while D still rejects the fakes).
    * ``"minimax"``: ``log(1 - D(G(z)))``, the original game value; its gradient
      vanishes exactly when G is bad, kept for demonstrations.
    """
    if kind == "nonsaturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "minimax":
        # log(1 - sigmoid(l)) = -softplus(l), stable for large logits.
        return -F.softplus(fake_logits).mean()
    raise ValueError(f"unknown generator loss {kind!r}; choose one of {', '.join(G_LOSSES)}")
