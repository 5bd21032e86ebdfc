"""Colour the points of a map by a number: a continuous attribute, reconstruction error, posterior spread.

:func:`colour_values` turns any (N,) numbers into (N, 3) uint8 colours on a perceptually uniform ramp
(viridis, from matplotlib's published table, sampled at 9 stops) and returns the :class:`ColourBar` a legend
draws (its range, the ramp, tick values). The numbers come from :func:`attribute_values`,
:func:`reconstruction_errors` or :func:`posterior_spread`; the last two run the model in batches with
``progress`` and ``cancel`` (``explorer.core.progress``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..models.base import CapabilityError
from ..progress import ProgressFn, check_cancel, report

__all__ = ["VIRIDIS", "ColourBar", "attribute_values", "colour_values", "posterior_spread",
           "reconstruction_errors", "ramp"]

# viridis at 0, 1/8, ..., 1 (matplotlib's _viridis_data rows 0, 32, ..., 255), linearly interpolated between.
VIRIDIS = np.array([
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], np.float64)
NAN_COLOUR = np.array([160, 160, 160], np.uint8)  # points without a value


def ramp(t: np.ndarray) -> np.ndarray:
    """t in [0, 1] (any shape) -> uint8 RGB (shape + (3,)) on the viridis ramp."""
    t = np.clip(np.asarray(t, np.float64), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(VIRIDIS))
    rgb = np.stack([np.interp(t, stops, VIRIDIS[:, c]) for c in range(3)], axis=-1)
    return (rgb + 0.5).astype(np.uint8)


@dataclass
class ColourBar:
    """What a colour bar legend shows: ``title``, the value range and a ``(n, 3)`` uint8 gradient, low first."""

    title: str
    vmin: float
    vmax: float
    gradient: np.ndarray
    ticks: list[float]


def colour_values(values: np.ndarray, *, title: str = "", vmin: float | None = None, vmax: float | None = None,
                  robust: bool = True, n_stops: int = 256) -> tuple[np.ndarray, ColourBar]:
    """(N, 3) uint8 colours for (N,) values, and the colour bar.

    The range defaults to the 1st-99th percentile with ``robust`` (a few huge reconstruction errors must not
    squash everyone else into one colour), else to the min and max; values outside it take the end colours,
    NaN takes grey.
    """
    v = np.asarray(values, np.float64).reshape(-1)
    finite = v[np.isfinite(v)]
    if vmin is None or vmax is None:
        if len(finite) == 0:
            lo, hi = 0.0, 1.0
        elif robust and len(finite) >= 10:
            lo, hi = (float(x) for x in np.percentile(finite, [1, 99]))
        else:
            lo, hi = float(finite.min()), float(finite.max())
        vmin = lo if vmin is None else float(vmin)
        vmax = hi if vmax is None else float(vmax)
    if not (np.isfinite(vmin) and np.isfinite(vmax)) or vmax < vmin:
        raise ValueError(f"the colour range must be finite with vmax >= vmin, got {vmin!r}, {vmax!r}")
    span = vmax - vmin if vmax > vmin else 1.0
    with np.errstate(invalid="ignore"):
        colours = ramp((v - vmin) / span)
    colours[~np.isfinite(v)] = NAN_COLOUR
    bar = ColourBar(title, float(vmin), float(vmax), ramp(np.linspace(0, 1, max(2, int(n_stops)))),
                    [float(x) for x in np.linspace(vmin, vmax, 5)])
    return colours, bar


def attribute_values(attributes: np.ndarray, attribute_names: Sequence[str], name: str) -> np.ndarray:
    """(N,) float32 column ``name`` of an (N, A) attribute table; ``ValueError`` naming the known ones."""
    names = list(attribute_names)
    lookup = {str(n).lower(): i for i, n in enumerate(names)}
    if attributes is None or name.lower() not in lookup:
        raise ValueError(f"unknown attribute {name!r}; known: {', '.join(names) or 'none'}")
    return np.asarray(attributes, np.float32)[:, lookup[name.lower()]].copy()


def _batches(model, images: np.ndarray, batch_size: int, progress: ProgressFn | None,
             cancel: threading.Event | None, message: str):
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(model.image_shape):
        raise ValueError(f"images must be (N, {', '.join(map(str, model.image_shape))}), got {images.shape}")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0
    n = len(images)
    for s in range(0, n, int(batch_size)):
        check_cancel(cancel)
        x = torch.from_numpy(np.ascontiguousarray(images[s:s + int(batch_size)])).to(model.device).float() * scale
        yield s, x
        report(progress, min(s + int(batch_size), n) / max(n, 1), message)
    check_cancel(cancel)


@torch.no_grad()
def reconstruction_errors(model, images: np.ndarray, *, batch_size: int = 512, progress: ProgressFn | None = None,
                          cancel: threading.Event | None = None) -> np.ndarray:
    """(N,) float32 mean squared pixel error of each image's reconstruction (decode of its code, in [0, 1]).

    Models without an encoder raise ``CapabilityError``.
    """
    if not model.capabilities.has_encoder:
        raise CapabilityError(f"{model.family.upper()} models have no encoder: there is no reconstruction error")
    out = np.empty(len(images), np.float32)
    was = model.training
    model.eval()
    try:
        for s, x in _batches(model, images, batch_size, progress, cancel, "reconstruction errors"):
            r = model.decode(model.encode(x))
            out[s:s + len(x)] = (r.float() - x).square().flatten(1).mean(1).cpu().numpy()
    finally:
        model.train(was)
    return out


@torch.no_grad()
def posterior_spread(model, images: np.ndarray, *, batch_size: int = 512, progress: ProgressFn | None = None,
                     cancel: threading.Event | None = None) -> np.ndarray:
    """(N,) float32 mean posterior standard deviation ``mean_d exp(logvar_d / 2)`` of each image (VAEs).

    Near 1 where the encoder is unsure (the prior's width), small where it pins the code down. Models without
    a posterior raise ``CapabilityError``.
    """
    if not getattr(model.capabilities, "has_posterior", False):
        raise CapabilityError(f"{model.family.upper()} models have no posterior: only a VAE has a spread to show")
    out = np.empty(len(images), np.float32)
    was = model.training
    model.eval()
    try:
        for s, x in _batches(model, images, batch_size, progress, cancel, "posterior spread"):
            _, logvar = model.encode_dist(x)
            out[s:s + len(x)] = torch.exp(0.5 * logvar.float()).mean(1).cpu().numpy()
    finally:
        model.train(was)
    return out
