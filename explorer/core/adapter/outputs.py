"""What encoders and decoders return, normalised: the code, the posterior, the image; the output range.

Encoders return a tensor, ``(mu, logvar)`` as a tuple or list, a dict, a dataclass or ``ModelOutput``-style
object (pythae: ``embedding``, ``log_covariance``), a ``torch.distributions`` object, or an object with a
distribution (diffusers: ``latent_dist`` with ``.mean`` and ``.logvar``). Decoders return a tensor, a tuple,
a dict or an object with ``.sample`` (diffusers) or ``.reconstruction`` (pythae).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from .errors import AdapterError

MEAN_KEYS = ("mu", "mean", "z_mean", "loc", "z_mu", "mu_z", "embedding", "latent_dist", "posterior",
             "latents", "latent", "z")
LOGVAR_KEYS = ("logvar", "log_var", "z_logvar", "logvar_z", "z_log_var", "log_covariance")
IMAGE_KEYS = ("sample", "x", "recon", "x_recon", "recon_x", "reconstruction", "out", "output", "image", "images",
              "mean", "logits")


def _is_distribution(obj: Any) -> bool:
    return isinstance(obj, torch.distributions.Distribution)


def _dist_mean(dist: Any) -> torch.Tensor:
    try:
        return dist.mean
    except NotImplementedError:
        return dist.loc


def _fields(obj: Any) -> Mapping[str, Any] | None:
    """An output object's named parts: a Mapping as is, a dataclass's fields, or its tensor-ish attributes."""
    if isinstance(obj, Mapping):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (torch.Tensor, tuple, list, str, bytes, int, float)) or obj is None:
        return None
    out = {}
    for key in dict.fromkeys((*MEAN_KEYS, *LOGVAR_KEYS, *IMAGE_KEYS)):
        try:
            value = getattr(obj, key)
        except Exception:  # noqa: BLE001 - a property of the user's object may raise anything
            continue
        if not callable(value) or isinstance(value, torch.Tensor):
            out[key] = value
    return out or None


def select_output(out: Any, select: str) -> Any:
    """``out`` picked by ``select``: a tuple index ("1"), a key or attribute ("mu"), or a dotted path of them
    ("latent_dist.mean")."""
    for part in select.split("."):
        if isinstance(out, (tuple, list)):
            if not part.lstrip("-").isdigit() or not -len(out) <= int(part) < len(out):
                raise AdapterError(f"encode_output {select!r}: the encoder returned {len(out)} values")
            out = out[int(part)]
            continue
        fields = _fields(out) if not isinstance(out, Mapping) else out
        if isinstance(out, Mapping) and part in out:
            out = out[part]
        elif hasattr(out, part) and not isinstance(out, torch.Tensor):
            out = getattr(out, part)
        elif fields is not None and part in fields:
            out = fields[part]
        else:
            have = ", ".join(map(str, out)) if isinstance(out, Mapping) else type(out).__name__
            raise AdapterError(f"encode_output {select!r}: the encoder's output has no {part!r} ({have})")
    return out


def latent_from_encoder_output(out: Any, select: str = "auto") -> torch.Tensor:
    """The latent code in whatever an encoder returned (see the module docstring); the mean, never a sample.
    ``select`` names the part instead (:func:`select_output`)."""
    if select not in ("auto", "", None):
        return latent_from_encoder_output(select_output(out, select))
    if isinstance(out, torch.Tensor):
        return out
    if _is_distribution(out):
        return _dist_mean(out)
    if isinstance(out, (tuple, list)):
        if out:
            return latent_from_encoder_output(out[0])  # (mu, logvar): the mean comes first by convention
        raise AdapterError("the encoder returned an empty tuple")
    fields = _fields(out)
    if fields is not None:
        for key in MEAN_KEYS:
            if key in fields and fields[key] is not None:
                return latent_from_encoder_output(fields[key])
        raise AdapterError(f"the encoder returned {type(out).__name__} with {', '.join(map(str, fields))}; none is "
                           f"the mean ({', '.join(MEAN_KEYS)}); name it with --encode-output")
    raise AdapterError(f"the encoder returned a {type(out).__name__}, not a tensor")


def posterior_from_encoder_output(out: Any, select: str = "auto") -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mu, logvar) when the encoder's output says what its spread is, else None."""
    if select not in ("auto", "", None):
        try:
            out = select_output(out, select)
        except AdapterError:
            return None
        if isinstance(out, torch.Tensor):
            return None
    if _is_distribution(out):
        base = getattr(out, "base_dist", out)  # Independent(Normal(...))
        if isinstance(base, torch.distributions.Normal):
            return base.loc, 2.0 * torch.log(base.scale)
        return None
    if isinstance(out, (tuple, list)):
        if len(out) == 2 and all(isinstance(v, torch.Tensor) for v in out) and out[0].shape == out[1].shape:
            return out[0], out[1]  # the (mu, logvar) convention of the PyTorch VAE example
        return None
    fields = _fields(out)
    if fields is None:
        return None
    mu = next((fields[k] for k in MEAN_KEYS if k in fields and fields[k] is not None), None)
    lv = next((fields[k] for k in LOGVAR_KEYS if k in fields and fields[k] is not None), None)
    if isinstance(mu, torch.Tensor) and isinstance(lv, torch.Tensor) and mu.shape == lv.shape:
        return mu, lv
    if mu is not None and not isinstance(mu, torch.Tensor):
        return posterior_from_encoder_output(mu)  # diffusers: output.latent_dist.{mean, logvar}
    return None


def image_from_decoder_output(out: Any) -> torch.Tensor:
    """The image tensor in a decoder's output (see the module docstring)."""
    if isinstance(out, torch.Tensor):
        return out
    if _is_distribution(out):
        return _dist_mean(out)
    if isinstance(out, (tuple, list)):
        if out:
            return image_from_decoder_output(out[0])
        raise AdapterError("the decoder returned an empty tuple")
    fields = _fields(out)
    if fields is not None:
        for key in IMAGE_KEYS:
            if key in fields and fields[key] is not None:
                return image_from_decoder_output(fields[key])
        raise AdapterError(f"the decoder returned {type(out).__name__} with {', '.join(map(str, fields))}; none is "
                           "an image")
    raise AdapterError(f"the decoder returned a {type(out).__name__}, not a tensor")


def infer_image_shape(numel: int) -> tuple[int, int, int] | None:
    """A flat image's shape from its length: a square with 1 channel, else a square with 3 (never both:
    3 * m^2 is never a square)."""
    s = math.isqrt(numel)
    if s * s == numel:
        return (1, s, s)
    if numel % 3 == 0:
        s = math.isqrt(numel // 3)
        if 3 * s * s == numel:
            return (3, s, s)
    return None


def detect_output_range(images: torch.Tensor) -> tuple[str, str]:
    """Guess a decoder's output range from its outputs on prior samples: (range, reason).

    * all values in [0, 1] -> "01";
    * all in [-1, 1] with a real share (> 5%) below zero -> "tanh"; only a few slightly negative values are a
      linear [0, 1] decoder's undershoot -> "01" (clamped);
    * beyond [-1, 1]: a linear [0, 1] decoder's mild overshoot (98% inside [-0.25, 1.25]) -> "01"; a
      symmetric spread mostly inside [-1.25, 1.25] is a linear [-1, 1] decoder (diffusers' VAEs) -> "tanh"
      (clamped after mapping); anything wider -> "logits" (a sigmoid is applied).

    It is a guess: the round-trip check on real images corrects the ranges when it shows the guess was
    wrong, and ``output_range`` overrides it.
    """
    x = images.detach().float().flatten()
    x = x[torch.isfinite(x)]
    if x.numel() == 0:
        raise AdapterError("the decoder's output on prior samples is all NaN or infinite")
    lo, hi = float(x.min()), float(x.max())
    neg = float((x < 0).float().mean())
    eps = 1e-5
    if lo >= -eps and hi <= 1 + eps:
        return "01", f"outputs within [0, 1] (min {lo:.3g}, max {hi:.3g})"
    if lo >= -1 - eps and hi <= 1 + eps:
        if neg > 0.05:
            return "tanh", f"outputs within [-1, 1], {100 * neg:.0f}% negative (min {lo:.3g}, max {hi:.3g})"
        return "01", f"outputs within [0, 1] but for a little undershoot (min {lo:.3g}); clamped"
    inside = float(((x >= -0.25) & (x <= 1.25)).float().mean())
    if inside >= 0.98:
        return "01", f"outputs mostly within [0, 1] (min {lo:.3g}, max {hi:.3g}); clamped"
    inside11 = float(((x >= -1.25) & (x <= 1.25)).float().mean())
    if inside11 >= 0.98 and neg > 0.2:
        return "tanh", (f"outputs mostly within [-1, 1] (min {lo:.3g}, max {hi:.3g}), {100 * neg:.0f}% negative: "
                        "taken as [-1, 1], clamped")
    return "logits", f"outputs beyond [-1, 1] (min {lo:.3g}, max {hi:.3g}): taken as logits"
