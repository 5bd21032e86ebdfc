"""PixelCNN (van den Oord et al. 2016): an exact, tractable density as the yardstick for the VAE's bound.

``p(x) = prod_i p(x_i | x_<i)`` over the pixels in raster order. A 7x7 masked convolution of type A (the
centre pixel hidden) is followed by residual layers of 3x3 type-B masked convolutions (the centre visible:
it only holds features of *earlier* pixels by then), either plain (ReLU) or gated (``tanh(a) * sigmoid(b)``
as in the Gated PixelCNN, without its vertical/horizontal stacks, so the receptive field keeps the blind
spot of the original masked convolutions). Two 1x1 convolutions turn the features into per-pixel
distribution parameters.

The colour channels of one pixel are predicted *independently* given all earlier pixels (no R -> G -> B
ordering inside a pixel): the density is still exact, only a little weaker for colour images, and sampling
takes H * W network passes instead of 3 * H * W.

Outputs (``output``):

* ``bernoulli``: binary images; inputs are binarised at 0.5 (the identity for binarised data), so the
  negative log-likelihood is that of the binarised image, the figure the VAE's BCE bound is comparable with;
* ``softmax256``: a 256-way categorical per channel for 8-bit images;
* ``logistic``: a mixture of ``n_mixtures`` discretised logistics per channel (Salimans et al. 2017), far
  fewer outputs than 256-way.

The family has no latent space. ``latent_dim`` is a placeholder fixed at 1 (checkpoints and the trainer's
sample grid expect a positive size); ``decode(z)`` ignores the values of z except as a seed and draws one
image per row pixel by pixel, so the same z gives the same image. :func:`sample_images` does the same with
progress and cancel for the GUI.
"""

from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..progress import ProgressFn, check_cancel, step_progress
from .base import Capabilities, LatentModel, ModelConfig, check_choice, check_positive_int
from .registry import register

OUTPUTS: tuple[str, ...] = ("bernoulli", "softmax256", "logistic")
LN2 = math.log(2.0)
_LOG_SCALE_MIN = -7.0


@dataclass
class PixelCNNConfig(ModelConfig):
    latent_dim: int = 1  # placeholder: the family has no latent space (see module doc)
    channels: int = 64
    n_layers: int = 6  # residual type-B layers after the type-A input layer
    first_kernel: int = 7
    kernel: int = 3
    gated: bool = True
    output: str = "bernoulli"
    n_mixtures: int = 5  # logistic output only

    def validate(self) -> None:
        if self.latent_dim != 1:
            raise ValueError(f"pixelcnn models have no latent space; latent_dim must be 1 (a placeholder), "
                             f"got {self.latent_dim!r}")
        super().validate()
        check_positive_int("channels", self.channels, 4096)
        check_positive_int("n_layers", self.n_layers, 64)
        for name in ("first_kernel", "kernel"):
            value = getattr(self, name)
            check_positive_int(name, value, 31)
            if value % 2 == 0:
                raise ValueError(f"{name} must be odd (a masked convolution needs a centre pixel), got {value}")
        if not isinstance(self.gated, bool):
            raise ValueError(f"gated must be true or false, got {self.gated!r}")
        check_choice("output", self.output, OUTPUTS)
        check_positive_int("n_mixtures", self.n_mixtures, 64)


class MaskedConv2d(nn.Conv2d):
    """A 'same' convolution that sees only pixels before the centre in raster order (type A), or those and
    the centre itself (type B). The mask is a non-persistent buffer: it follows from the config."""

    def __init__(self, c_in: int, c_out: int, kernel: int, mask_type: str):
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        c = kernel // 2
        mask = torch.ones(c_out, c_in, kernel, kernel)
        mask[:, :, c, c + (1 if mask_type == "B" else 0):] = 0
        mask[:, :, c + 1:] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


class _Residual(nn.Module):
    def __init__(self, channels: int, kernel: int, gated: bool):
        super().__init__()
        self.gated = gated
        self.conv = MaskedConv2d(channels, 2 * channels if gated else channels, kernel, "B")
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.gated:
            a, b = self.conv(h).chunk(2, dim=1)
            y = torch.tanh(a) * torch.sigmoid(b)
        else:
            y = F.relu(self.conv(F.relu(h)))
        return h + self.out(y)


@register
class PixelCNN(LatentModel):
    family = "pixelcnn"
    config_cls = PixelCNNConfig
    capabilities = Capabilities(has_encoder=False, is_generative=True, has_posterior=False)
    # Facts the GUI and the compare code ask about (no latent map or sliders; decode is slow and sequential).
    has_latent_space: ClassVar[bool] = False
    autoregressive: ClassVar[bool] = True
    exact_likelihood: ClassVar[bool] = True
    config: PixelCNNConfig

    def __init__(self, config: PixelCNNConfig):
        super().__init__(config)
        c = config
        n_ch = c.image_shape[0]
        self.params_per_channel = {"bernoulli": 1, "softmax256": 256, "logistic": 3 * c.n_mixtures}[c.output]
        self.input = MaskedConv2d(n_ch, c.channels, c.first_kernel, "A")
        self.layers = nn.ModuleList(_Residual(c.channels, c.kernel, c.gated) for _ in range(c.n_layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c.channels, c.channels, 1), nn.ReLU(),
                                  nn.Conv2d(c.channels, n_ch * self.params_per_channel, 1))

    # ---- the network -------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the values the model conditions on and scores (binarised for Bernoulli)."""
        if self.config.output == "bernoulli":
            return (x >= 0.5).to(x.dtype)
        return (x * 255.0).round() / 255.0  # 8-bit levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared images (B, C, H, W) -> distribution parameters (B, C, P, H, W)."""
        h = self.input(2.0 * x - 1.0)
        for layer in self.layers:
            h = layer(h)
        out = self.head(h)
        b, _, hh, ww = out.shape
        return out.view(b, self.image_shape[0], self.params_per_channel, hh, ww)

    def _log_prob_elements(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p of each prepared value given its parameters: (B, C, H, W)."""
        kind = self.config.output
        if kind == "bernoulli":
            return -F.binary_cross_entropy_with_logits(params[:, :, 0], x, reduction="none")
        if kind == "softmax256":
            target = (x * 255.0).round().long()
            return params.log_softmax(dim=2).gather(2, target.unsqueeze(2)).squeeze(2)
        return _discretised_logistic_log_prob(params, x, self.config.n_mixtures)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood of each image in nats, (B,), of the prepared (binarised / 8-bit) image."""
        xp = self._prepare(x)
        return self._log_prob_elements(self(xp), xp).flatten(1).sum(1)

    @property
    def receptive_reach(self) -> int:
        """How many rows up (and columns either side) a prediction can see: the input window a pass needs."""
        return self.config.first_kernel // 2 + self.config.n_layers * (self.config.kernel // 2)

    @property
    def n_dims(self) -> int:
        return math.prod(self.image_shape)

    # ---- training ----------------------------------------------------
    def train_step(
        self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        nll = -self.log_prob(x).mean()
        self.guarded_step(nll, optimizers["model"], "negative log-likelihood", step)
        nll = nll.detach()
        return {"loss": nll, "bits_per_dim": nll / (self.n_dims * LN2)}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        """Per-image test figures: ``loss`` = ``nll`` (nats/image, exact) and ``bits_per_dim``."""
        was = self.training
        self.eval()
        try:
            nll = float(-self.log_prob(x).double().mean())
        finally:
            self.train(was)
        return {"loss": nll, "nll": nll, "bits_per_dim": nll / (self.n_dims * LN2)}

    # ---- sampling ----------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """One image per row of ``z``, drawn pixel by pixel; row k's values seed image k (same z, same image)."""
        return sample_images(self, len(z), z=z)

    def extra_metadata(self) -> dict[str, Any]:
        return {"has_latent_space": False, "autoregressive": True, "output": self.config.output}


def _discretised_logistic_log_prob(params: torch.Tensor, x: torch.Tensor, n_mix: int) -> torch.Tensor:
    """log P(x) under a mixture of logistics discretised to 256 bins on [-1, 1] (PixelCNN++), per value."""
    logit_pi, mu, log_s = params.split(n_mix, dim=2)
    log_s = log_s.clamp(min=_LOG_SCALE_MIN)
    v = (2.0 * x - 1.0).unsqueeze(2)
    centred = v - mu
    inv_s = torch.exp(-log_s)
    plus_in = inv_s * (centred + 1.0 / 255.0)
    min_in = inv_s * (centred - 1.0 / 255.0)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in): the lowest bin takes (-inf, edge]
    log_one_minus_cdf_min = -F.softplus(min_in)  # the highest bin takes [edge, inf)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centred
    log_pdf_mid = mid_in - log_s - 2.0 * F.softplus(mid_in)  # density at the centre, for tiny bins
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid - math.log(127.5))
    log_probs = torch.where(v < -0.999, log_cdf_plus, torch.where(v > 0.999, log_one_minus_cdf_min, inner))
    return torch.logsumexp(log_probs + logit_pi.log_softmax(dim=2), dim=2)


def _uniforms(n: int, per_image: tuple[int, ...], z: torch.Tensor | None,
              generator: torch.Generator | None) -> torch.Tensor:
    """(n, *per_image) uniforms on the CPU: from one generator, or per image seeded by the bytes of z's row."""
    if z is None:
        return torch.rand((n, *per_image), generator=generator, dtype=torch.float64)
    rows = np.ascontiguousarray(z.detach().to("cpu", torch.float32).numpy())
    out = torch.empty((n, *per_image), dtype=torch.float64)
    for k in range(n):
        gen = torch.Generator().manual_seed(zlib.crc32(rows[k].tobytes()))
        out[k] = torch.rand(per_image, generator=gen, dtype=torch.float64)
    return out


@torch.no_grad()
def sample_images(
    model: PixelCNN,
    n: int,
    generator: torch.Generator | None = None,
    *,
    z: torch.Tensor | None = None,
    batch_size: int = 256,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> torch.Tensor:
    """``n`` images in [0, 1] drawn from the model, (n, C, H, W) on the model's device.

    H * W network passes per batch; the pass for pixel (i, j) only runs on the window its prediction can see
    (rows i - reach .. i, columns j - reach .. j + reach; the masks make everything else irrelevant).
    Randomness comes as uniforms drawn up front on the CPU, from ``generator`` or,
    with ``z``, one seed per image from its row of ``z``, so results do not depend on the device or batch.
    ``progress(fraction, message)`` after every image row; ``cancel`` is checked before every pass and raises
    :class:`~explorer.core.progress.Cancelled`.
    """
    check_positive_int("batch_size", batch_size)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if z is not None and len(z) != n:
        raise ValueError(f"z has {len(z)} rows for {n} images")
    c, h, w = model.image_shape
    device = model.device
    out = torch.zeros(n, c, h, w, device=device)
    if n == 0:
        return out
    u = _uniforms(n, (2, c, h, w), z, generator)
    reach = model.receptive_reach
    was = model.training
    model.eval()
    total = h * math.ceil(n / batch_size)
    done = 0
    try:
        for start in range(0, n, batch_size):
            x = out[start:start + batch_size]
            ub = u[start:start + batch_size].to(device=device, dtype=torch.float32)
            for i in range(h):
                r0 = max(0, i - reach)
                for j in range(w):
                    check_cancel(cancel)
                    c0, c1 = max(0, j - reach), min(w, j + reach + 1)
                    params = model(x[:, :, r0:i + 1, c0:c1])[:, :, :, i - r0, j - c0]  # (B, C, P)
                    x[:, :, i, j] = _draw(model.config, params, ub[:, 0, :, i, j], ub[:, 1, :, i, j])
                done += 1
                step_progress(progress, done, total, f"sampling row {i + 1} of {h}")
    finally:
        model.train(was)
    return out


def _draw(config: PixelCNNConfig, params: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] for one pixel, (B, C), by inverse-CDF sampling with the uniforms u0 (and u1)."""
    if config.output == "bernoulli":
        return (u0 < torch.sigmoid(params[:, :, 0])).float()
    if config.output == "softmax256":
        cdf = params.softmax(dim=2).cumsum(dim=2)
        level = (cdf < u0.unsqueeze(2)).sum(dim=2).clamp(max=255)
        return level.float() / 255.0
    m = config.n_mixtures
    logit_pi, mu, log_s = params.split(m, dim=2)
    cdf = logit_pi.softmax(dim=2).cumsum(dim=2)
    k = (cdf < u0.unsqueeze(2)).sum(dim=2, keepdim=True).clamp(max=m - 1)
    mu_k = mu.gather(2, k).squeeze(2)
    s_k = log_s.clamp(min=_LOG_SCALE_MIN).gather(2, k).squeeze(2).exp()
    uu = u1.clamp(1e-5, 1.0 - 1e-5)
    v = (mu_k + s_k * (torch.log(uu) - torch.log1p(-uu))).clamp(-1.0, 1.0)
    return ((v + 1.0) * 127.5).round() / 255.0


def is_autoregressive(model: LatentModel) -> bool:
    """True for models whose decode samples pixel by pixel (slow: run it in the background with progress)."""
    return bool(getattr(model, "autoregressive", False))


def has_latent_space(model: LatentModel) -> bool:
    """False for families without a latent space (PixelCNN): no map, no sliders, no traversals."""
    return bool(getattr(model, "has_latent_space", True))


def independent_pixel_nll(train_images: np.ndarray, test_images: np.ndarray, output: str = "bernoulli",
                          alpha: float = 1.0) -> float:
    """Test NLL (nats/image) of the independent per-pixel baseline: each pixel's own marginal, fitted on the
    training images with add-``alpha`` smoothing. The yardstick a PixelCNN must beat by modelling context."""
    tr = np.asarray(train_images)
    te = np.asarray(test_images)
    if tr.dtype == np.uint8:
        tr, te = tr.astype(np.float64) / 255.0, te.astype(np.float64) / 255.0
    if output == "bernoulli":
        b_tr, b_te = tr >= 0.5, te >= 0.5
        p = (b_tr.sum(0) + alpha) / (len(b_tr) + 2 * alpha)
        ll = np.where(b_te, np.log(p), np.log1p(-p))
        return float(-ll.reshape(len(te), -1).sum(1).mean())
    lv_tr = np.rint(tr * 255).astype(np.int64)
    lv_te = np.rint(te * 255).astype(np.int64)
    flat_tr = lv_tr.reshape(len(tr), -1)
    counts = np.stack([(flat_tr == v).sum(0) for v in range(256)], axis=1) + alpha  # (D, 256)
    logp = np.log(counts / counts.sum(1, keepdims=True))
    flat_te = lv_te.reshape(len(te), -1)
    ll = logp[np.arange(flat_te.shape[1])[None, :], flat_te]
    return float(-ll.sum(1).mean())
