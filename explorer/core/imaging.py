"""Pixels without Qt: float <-> uint8, tiling, and the one label palette.

The map on screen, the Compare tab and every exported PNG colour label ``k`` with ``label_colours(n)[k]``, so a
"7" is the same blue everywhere.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np

# Colour-blind-friendly qualitative palette (Okabe-Ito, then Tableau), cycled through evenly spaced hues past it.
# No grey: the map draws points without a label in grey (Tableau's grey here made MNIST's 8s look unlabelled),
# so Tableau's purple moves up in its place and Tol's wine takes the purple's.
PALETTE_HEX: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#8C564B",
    "#9467BD", "#17BECF", "#882255", "#BCBD22", "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728",
)
PALETTE = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in PALETTE_HEX], np.uint8)


def label_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colours for labels 0..n-1: the palette, then evenly spaced hues (never repeating)."""
    n = max(int(n), 0)
    if n <= len(PALETTE):
        return PALETTE[:n].copy()
    extra = n - len(PALETTE)
    hues = [colorsys.hsv_to_rgb((i + 0.5) / extra, 0.65, 0.85) for i in range(extra)]
    return np.concatenate([PALETTE, (np.array(hues) * 255 + 0.5).astype(np.uint8)])


def label_colours_hex(n: int) -> list[str]:
    return ["#%02X%02X%02X" % tuple(int(v) for v in c) for c in label_colours(n)]


def to_uint8(images: Any) -> np.ndarray:
    """Floats in [0, 1] (torch or numpy, any shape) -> uint8 of the same shape; uint8 passes through."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_hwc(images: Any) -> np.ndarray:
    """(C, H, W) / (H, W) or (N, C, H, W) floats or uint8 -> (H, W, C) / (N, H, W, C) uint8, C in {1, 3}."""
    arr = to_uint8(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        return np.ascontiguousarray(arr.transpose(1, 2, 0))
    if arr.ndim == 4:
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1))
    raise ValueError(f"expected (C, H, W) or (N, C, H, W) images, got shape {arr.shape}")


def tile(images: np.ndarray, cols: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (H', W', C) image of row-major tiles with ``pad`` pixels between them."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    cols = max(1, int(cols))
    rows = max(1, -(-n // cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y:y + h, x:x + w] = images[i]
    return out


def tile_float(images: Any, cols: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> one (H', W', C) uint8 image (see :func:`tile`)."""
    return tile(to_hwc(images), cols, pad, pad_value)


def upscale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) -> (H*f, W*f, C) by repeating pixels: crisp at any whole factor."""
    f = max(1, int(factor))
    return image if f == 1 else np.repeat(np.repeat(image, f, axis=0), f, axis=1)


__all__ = [
    "PALETTE", "PALETTE_HEX", "label_colours", "label_colours_hex", "tile", "tile_float", "to_hwc", "to_uint8",
    "upscale_nearest",
]


def scatter_image(positions: np.ndarray, labels: np.ndarray, size: int = 160,
                  background: int = 255) -> np.ndarray:
    """(size, size, 3) uint8 picture of a 2-D map: each pixel the colour of the last point drawn on it.

    Cheap enough for a live preview of a map that is still forming (t-SNE's optimisation), ~10 ms for 70k points.
    """
    pos = np.asarray(positions, np.float64)
    out = np.full((size, size, 3), background, np.uint8)
    ok = np.isfinite(pos).all(1)
    if not ok.any():
        return out
    pos, lab = pos[ok], np.asarray(labels)[ok]
    lo, hi = pos.min(0), pos.max(0)
    span = np.maximum(hi - lo, 1e-12)
    ij = ((pos - lo) / span * (size - 1)).astype(np.int64)
    colours = label_colours(int(lab.max()) + 1 if len(lab) and lab.max() >= 0 else 1)
    rgb = colours[np.clip(lab, 0, len(colours) - 1)]
    rgb[lab < 0] = 150
    out[size - 1 - ij[:, 1], ij[:, 0]] = rgb  # map y up, picture rows down
    return out
