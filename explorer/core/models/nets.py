"""Reusable network blocks: MLP / linear / conv encoders and decoders, DCGAN nets.

AE/VAE decoders return *logits* (raw values for the linear AE); the families
turn them into images in [0, 1]. Keeping the sigmoid out of the decoder lets
the losses use the fused, stable ``*_with_logits`` forms. The DCGAN generator
ends in ``tanh`` as in the paper, so it returns images in [-1, 1].

Conv geometry: every strided (de)convolution uses kernel 4, stride 2, padding 1,
which exactly halves (doubles) an even size. We halve while the size is even
and larger than 4, so 28 -> 14 -> 7, 64 -> 32 -> 16 -> 8 -> 4, 32 -> 16 -> 8 -> 4
and 8 -> 4; channels double at each halving, starting from ``base_channels``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

ARCHS: tuple[str, ...] = ("mlp", "conv", "linear")


# ------------------------------------------------------------ geometry
def _halvings(size: int) -> int:
    n = 0
    while size % 2 == 0 and size > 4:
        size //= 2
        n += 1
    return n


@dataclass(frozen=True)
class ConvPlan:
    """Shape bookkeeping shared by the conv encoder/decoder and the DCGAN nets."""

    image_shape: tuple[int, int, int]
    base_channels: int

    @property
    def n_layers(self) -> int:
        # Both sides must stay even at every halving, so the smaller count wins.
        _, h, w = self.image_shape
        return min(_halvings(h), _halvings(w))

    @property
    def channels(self) -> list[int]:
        """Feature channels after each strided conv: base, 2*base, 4*base, ..."""
        return [self.base_channels * 2**i for i in range(self.n_layers)]

    @property
    def bottom_size(self) -> tuple[int, int]:
        _, h, w = self.image_shape
        f = 2**self.n_layers
        return h // f, w // f

    @property
    def bottom_features(self) -> int:
        h, w = self.bottom_size
        return self.channels[-1] * h * w


def conv_shape_problem(image_shape: Sequence[int]) -> str | None:
    """Why a conv net cannot handle this image shape, or None when it can."""
    _, h, w = image_shape
    if min(_halvings(h), _halvings(w)) < 1:
        return (
            f"conv models need even image sides of at least 8 (e.g. 8, 28, 32, 64), got {h}x{w}; "
            "use the mlp architecture or resize the images"
        )
    return None


def _activation(kind: str) -> nn.Module:
    # In-place is safe here: the layer before each activation (Linear, Conv,
    # BatchNorm) does not need its own output for the backward pass.
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.2, inplace=True)
    raise ValueError(f"unknown activation {kind!r}")


# ------------------------------------------------------------ MLP / linear
def mlp_encoder(image_shape: Sequence[int], out_dim: int, hidden: Sequence[int] = (400,)) -> nn.Sequential:
    """Flatten -> [Linear -> ReLU]* -> Linear(out_dim). ``hidden=()`` gives a purely linear map."""
    sizes = [math.prod(image_shape), *hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), _activation("relu")]
    layers.append(nn.Linear(sizes[-1], out_dim))
    return nn.Sequential(*layers)


def mlp_decoder(latent_dim: int, image_shape: Sequence[int], hidden: Sequence[int] = (400,)) -> nn.Sequential:
    """Mirror of :func:`mlp_encoder`: Linear -> [ReLU -> Linear]* -> raw (B, C, H, W)."""
    sizes = [latent_dim, *reversed(tuple(hidden))]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), _activation("relu")]
    layers += [nn.Linear(sizes[-1], math.prod(image_shape)), nn.Unflatten(1, tuple(image_shape))]
    return nn.Sequential(*layers)


# ------------------------------------------------------------ conv
def conv_encoder(
    image_shape: Sequence[int],
    out_dim: int,
    base_channels: int = 32,
    batchnorm: bool = False,
    activation: str = "relu",
) -> nn.Sequential:
    """Strided convs (k4 s2 p1) halving the size, channels doubling, then a Linear to ``out_dim``."""
    plan = ConvPlan(tuple(image_shape), base_channels)  # type: ignore[arg-type]
    layers: list[nn.Module] = []
    c_in = image_shape[0]
    for i, c_out in enumerate(plan.channels):
        # No BatchNorm on the first layer (as in DCGAN): it would normalise away the input statistics.
        use_bn = batchnorm and i > 0
        layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not use_bn))
        if use_bn:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(_activation(activation))
        c_in = c_out
    layers += [nn.Flatten(), nn.Linear(plan.bottom_features, out_dim)]
    return nn.Sequential(*layers)


def conv_decoder(
    latent_dim: int,
    image_shape: Sequence[int],
    base_channels: int = 32,
    batchnorm: bool = False,
    activation: str = "relu",
) -> nn.Sequential:
    """Mirror of :func:`conv_encoder`: Linear -> reshape -> ConvTranspose (k4 s2 p1) up to the image -> logits."""
    plan = ConvPlan(tuple(image_shape), base_channels)  # type: ignore[arg-type]
    chans = list(reversed(plan.channels))  # deepest first
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, plan.bottom_features),
        _activation(activation),
        nn.Unflatten(1, (chans[0], *plan.bottom_size)),
    ]
    outs = [*chans[1:], image_shape[0]]
    for i, (c_in, c_out) in enumerate(zip(chans, outs)):
        last = i == len(outs) - 1
        use_bn = batchnorm and not last
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not use_bn))
        if not last:
            if use_bn:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


def build_encoder(
    arch: str,
    image_shape: Sequence[int],
    out_dim: int,
    hidden: Sequence[int] = (400,),
    base_channels: int = 32,
    batchnorm: bool = False,
) -> nn.Sequential:
    if arch == "mlp":
        return mlp_encoder(image_shape, out_dim, hidden)
    if arch == "linear":
        return mlp_encoder(image_shape, out_dim, ())
    if arch == "conv":
        return conv_encoder(image_shape, out_dim, base_channels, batchnorm)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def build_decoder(
    arch: str,
    latent_dim: int,
    image_shape: Sequence[int],
    hidden: Sequence[int] = (400,),
    base_channels: int = 32,
    batchnorm: bool = False,
) -> nn.Sequential:
    if arch == "mlp":
        return mlp_decoder(latent_dim, image_shape, hidden)
    if arch == "linear":
        return mlp_decoder(latent_dim, image_shape, ())
    if arch == "conv":
        return conv_decoder(latent_dim, image_shape, base_channels, batchnorm)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")


# ------------------------------------------------------------ DCGAN
class DCGANGenerator(nn.Sequential):
    """z (B, nz) -> image (B, C, H, W) in [-1, 1] (Radford et al. 2016).

    The first layer is a ConvTranspose whose kernel covers the whole bottom
    feature map (4x4 for 64x64, 7x7 for 28x28): the "project and reshape" step.
    Then k4 s2 p1 deconvolutions double the size with BatchNorm + ReLU, and
    the last one maps to the image channels followed by tanh.
    """

    def __init__(self, latent_dim: int, image_shape: Sequence[int], base_channels: int):
        plan = ConvPlan(tuple(image_shape), base_channels)  # type: ignore[arg-type]
        chans = list(reversed(plan.channels))
        layers: list[nn.Module] = [
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, chans[0], plan.bottom_size, 1, 0, bias=False),
            nn.BatchNorm2d(chans[0]),
            _activation("relu"),
        ]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), _activation("relu")]
        layers += [nn.ConvTranspose2d(chans[-1], image_shape[0], 4, 2, 1, bias=False), nn.Tanh()]
        super().__init__(*layers)
        dcgan_init(self)


class DCGANDiscriminator(nn.Sequential):
    """Image in [-1, 1] (B, C, H, W) -> one logit per image (B,).

    Strided convs with LeakyReLU(0.2), BatchNorm on all but the first, and a
    final conv whose kernel covers the bottom feature map.
    """

    def __init__(self, image_shape: Sequence[int], base_channels: int):
        plan = ConvPlan(tuple(image_shape), base_channels)  # type: ignore[arg-type]
        layers: list[nn.Module] = []
        c_in = image_shape[0]
        for i, c_out in enumerate(plan.channels):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(_activation("leaky_relu"))
            c_in = c_out
        layers += [nn.Conv2d(c_in, 1, plan.bottom_size, 1, 0, bias=False), nn.Flatten(0)]
        super().__init__(*layers)
        dcgan_init(self)


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: conv weights N(0, 0.02), BatchNorm gamma N(1, 0.02), beta 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ------------------------------------------------------------ helpers
@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Temporarily switch to eval mode (BatchNorm running stats), restoring the previous mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` inside the block (gradients still flow *through* it)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class BufferGuard:
    """Keeps the BatchNorm running statistics of a module safe from a poisoned batch.

    A NaN batch corrupts the running mean/var in the *forward* pass, before the
    loss can be checked, and a trainer that only checks the parameters would
    keep a model whose eval-mode outputs are all NaN. ``save()`` copies the
    buffers into preallocated tensors (one foreach copy, no allocation);
    ``restore()`` puts them back. For modules without BatchNorm both are no-ops.
    """

    def __init__(self, module: nn.Module):
        # Hold the BatchNorm modules, not their tensors: ``model.to(device)`` replaces buffer objects.
        self.norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.backup: list[torch.Tensor] = []

    def _buffers(self) -> list[torch.Tensor]:
        return [b for m in self.norms for b in m.buffers(recurse=False)]

    def save(self) -> None:
        if not self.norms:
            return
        current = self._buffers()
        if len(self.backup) != len(current) or self.backup[0].device != current[0].device:
            self.backup = [b.detach().clone() for b in current]
        else:
            torch._foreach_copy_(self.backup, current)

    def restore(self) -> None:
        if self.norms and self.backup:
            with torch.no_grad():
                torch._foreach_copy_(self._buffers(), self.backup)
