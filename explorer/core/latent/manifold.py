"""The decoded manifold: a grid of images decoded at the tile centres of a map's visible region.

Kingma & Welling's figure 4, on any map. For every tile centre ``p`` of a view rectangle the projection's
``inverse(p)`` gives a latent vector (exact for PCA and raw dimensions, learned for t-SNE / UMAP) and the model
decodes it. A learned inverse is only meaningful near the data: each tile carries the projection's
``trust(p)`` (1 on the data, ~0 in empty parts of the map) and the mosaic greys tiles out as trust falls.
An exact inverse is exact everywhere, so its tiles have trust 1 unless ``trust_exact=True`` asks for the
distance-to-data measure there too.

Orientation: a map's y axis points *up*, a picture's rows go *down*. Tiles, centres and latents are in picture
order: row 0 is the top of the view (largest y), column 0 its left edge (smallest x), row-major. The mosaic
therefore looks like the map; draw it over ``bounds`` with its first row at ``y1``.

Decoding runs in batches with ``progress(fraction, message)`` and a ``cancel`` event checked before each batch
(``explorer.core.progress``), so a GUI can run it on a worker and drop it when the view moves again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..imaging import to_hwc, upscale_nearest
from ..progress import ProgressFn, check_cancel, report

__all__ = [
    "GREY",
    "MAX_TILES",
    "Manifold",
    "aligned_manifolds",
    "decode_manifold",
    "grid_shape",
    "side_by_side",
    "tile_centres",
    "unapply_alignment",
]

MAX_TILES = 4096  # 64 x 64: a bound on the work one request can ask for
GREY = 128  # the colour untrusted tiles fade to


def _check_bounds(bounds: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be four numbers (x0, y0, x1, y1), got {bounds!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or not (x1 > x0 and y1 > y0):
        raise ValueError(f"bounds must be finite (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {tuple(bounds)}")
    return x0, y0, x1, y1


def _check_grid(rows: int, cols: int) -> tuple[int, int]:
    for name, v in (("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if rows * cols > MAX_TILES:
        raise ValueError(f"a manifold of {rows} x {cols} tiles is too large; at most {MAX_TILES} tiles")
    return int(rows), int(cols)


def grid_shape(bounds: Sequence[float], view_px: tuple[float, float] | None = None, *, tile_px: float = 48.0,
               grid: int | None = None, max_side: int = 48) -> tuple[int, int]:
    """(rows, cols) of square tiles for a view: the tile count follows the zoom.

    With ``view_px = (width, height)`` of the view on screen, each tile is about ``tile_px`` screen pixels
    (at least 2 and at most ``max_side`` a side), so zooming in decodes a finer grid of the latent plane at the
    same picture size. Without it, ``grid`` tiles go along the longer side (the CLI's ``--grid``), and the other
    side gets as many as keep the tiles square in map units.
    """
    x0, y0, x1, y1 = _check_bounds(bounds)
    w, h = x1 - x0, y1 - y0
    if view_px is not None:
        pw, ph = (float(v) for v in view_px)
        if not (pw > 0 and ph > 0) or not tile_px > 0:
            raise ValueError(f"view_px and tile_px must be positive, got {view_px!r}, {tile_px!r}")
        cols = int(round(pw / tile_px))
        rows = int(round(ph / tile_px))
    else:
        if grid is None or isinstance(grid, bool) or int(grid) < 1:
            raise ValueError(f"grid must be a positive integer, got {grid!r}")
        g = int(grid)
        cols, rows = (g, int(round(g * h / w))) if w >= h else (int(round(g * w / h)), g)
    cols = min(max(cols, 2 if view_px is not None else 1), max_side)
    rows = min(max(rows, 2 if view_px is not None else 1), max_side)
    while rows * cols > MAX_TILES:
        rows, cols = max(1, rows - 1), max(1, cols - 1)
    return rows, cols


def tile_centres(bounds: Sequence[float], rows: int, cols: int) -> np.ndarray:
    """(rows * cols, 2) float64 map positions of the tile centres, picture order (row 0 at the top, y1)."""
    x0, y0, x1, y1 = _check_bounds(bounds)
    rows, cols = _check_grid(rows, cols)
    xs = x0 + (np.arange(cols) + 0.5) * (x1 - x0) / cols
    ys = y1 - (np.arange(rows) + 0.5) * (y1 - y0) / rows
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


@dataclass
class Manifold:
    """Decoded tiles over a view. Arrays are in picture order (see the module docstring)."""

    bounds: tuple[float, float, float, float]
    rows: int
    cols: int
    centres: np.ndarray  # (rows * cols, 2) float64 map positions
    latents: np.ndarray  # (rows * cols, D) float32: what each tile decodes
    images: np.ndarray  # (rows * cols, C, H, W) uint8, as decoded (not greyed)
    trust: np.ndarray  # (rows * cols,) float32 in [0, 1]
    exact: bool  # the projection's inverse is exact

    @property
    def tile_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.images.shape[1:])  # type: ignore[return-value]

    def greyed(self, threshold: float = 0.5) -> np.ndarray:
        """(rows * cols, H, W, 3) uint8 tiles faded towards grey where trust is below ``threshold``.

        A tile at trust t >= threshold shows as decoded; below, it is blended with grey by t / threshold, so
        the edge of the trusted region reads as a fade rather than a hard line.
        """
        hwc = to_hwc(self.images)
        if hwc.shape[-1] == 1:
            hwc = np.repeat(hwc, 3, axis=-1)
        if not threshold > 0:
            return hwc
        w = np.clip(self.trust / float(threshold), 0.0, 1.0).astype(np.float32)[:, None, None, None]
        out = hwc.astype(np.float32) * w + np.float32(GREY) * (1.0 - w)
        return (out + 0.5).astype(np.uint8)

    def mosaic(self, *, threshold: float = 0.5, pad: int = 0, scale: int = 1, pad_value: int = 255) -> np.ndarray:
        """One (H', W', 3) uint8 picture: the tiles side by side (``pad`` pixels apart), each pixel repeated
        ``scale`` times. Row 0 of the picture is the top of the view."""
        if isinstance(pad, bool) or int(pad) < 0 or isinstance(scale, bool) or int(scale) < 1:
            raise ValueError(f"pad must be >= 0 and scale >= 1, got {pad!r}, {scale!r}")
        tiles = self.greyed(threshold)
        _, h, w, _ = tiles.shape
        pad = int(pad)
        out = np.full((self.rows * (h + pad) + pad, self.cols * (w + pad) + pad, 3), pad_value, np.uint8)
        for i, t in enumerate(tiles):
            r, c = divmod(i, self.cols)
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            out[y:y + h, x:x + w] = t
        return upscale_nearest(out, int(scale))

    def tile_at(self, point: Sequence[float]) -> int | None:
        """Index of the tile containing map position ``point``, or None outside the view."""
        x0, y0, x1, y1 = self.bounds
        x, y = float(point[0]), float(point[1])
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return None
        c = min(int((x - x0) / (x1 - x0) * self.cols), self.cols - 1)
        r = min(int((y1 - y) / (y1 - y0) * self.rows), self.rows - 1)
        return r * self.cols + c


@torch.no_grad()
def _decode_batches(model: Any, z: np.ndarray, batch_size: int, progress: ProgressFn | None,
                    cancel: threading.Event | None, message: str) -> np.ndarray:
    n = len(z)
    out = np.empty((n, *model.image_shape), np.uint8)
    device = getattr(model, "device", torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n, batch_size):
            check_cancel(cancel)
            x = model.decode(torch.from_numpy(np.ascontiguousarray(z[start:start + batch_size])).to(device))
            out[start:start + len(x)] = (x.float().clamp(0, 1).mul(255).add_(0.5)).to(torch.uint8).cpu().numpy()
            report(progress, min(start + batch_size, n) / max(n, 1), message)
    finally:
        model.train(was_training)
    check_cancel(cancel)
    return out


def decode_manifold(
    model: Any,
    projection: Any,
    bounds: Sequence[float],
    rows: int,
    cols: int,
    *,
    base: np.ndarray | None = None,
    trust_exact: bool = False,
    batch_size: int = 256,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    _centres_in_map: np.ndarray | None = None,
) -> Manifold:
    """Decode ``rows x cols`` tiles over ``bounds = (x0, y0, x1, y1)`` of a fitted ``projection``'s map.

    ``base`` is handed to the exact inverses (PCA, dims): the latent coordinates a map position does not fix
    come from it (default: the data mean). ``trust_exact`` greys an exact map's tiles by distance to the data
    too. Raises ``ValueError`` for bad bounds or grid, ``RuntimeError`` for an unfitted projection and
    :class:`~explorer.core.progress.Cancelled` when ``cancel`` is set.
    """
    box = _check_bounds(bounds)
    rows, cols = _check_grid(rows, cols)
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not getattr(projection, "fitted", False):
        raise RuntimeError("the projection has not been fitted yet: compute the map first")
    if projection.latent_dim is not None and projection.latent_dim != model.latent_dim:
        raise ValueError(f"the map was computed from {projection.latent_dim}-d latents but the model's latent "
                         f"space has {model.latent_dim} dimensions")
    check_cancel(cancel)
    centres = tile_centres(box, rows, cols)
    where = centres if _centres_in_map is None else _centres_in_map
    exact = bool(projection.exact_inverse)
    z = projection.inverse(where, base=base) if exact and base is not None else projection.inverse(where)
    z = np.ascontiguousarray(z, np.float32)
    if exact and not trust_exact:
        trust = np.ones(len(centres), np.float32)
    else:
        trust = np.asarray(projection.trust(where), np.float32)
    report(progress, 0.0, "decoding the manifold")
    images = _decode_batches(model, z, int(batch_size), progress, cancel, "decoding the manifold")
    return Manifold(box, rows, cols, centres, z, images, trust, exact)


def unapply_alignment(points: np.ndarray, alignment: tuple[np.ndarray, float, np.ndarray] | None) -> np.ndarray:
    """Undo ``explorer.core.compare.alignment.apply_alignment``: aligned positions -> the map's own.

    ``aligned = scale * xy @ rotation + translation`` with an orthogonal rotation, so
    ``xy = ((aligned - translation) / scale) @ rotation.T``.
    """
    p = np.asarray(points, np.float64).reshape(-1, 2)
    if alignment is None:
        return p
    rotation, scale, translation = alignment
    if not float(scale) > 0:
        raise ValueError(f"an alignment's scale must be positive, got {scale!r}")
    return ((p - np.asarray(translation, np.float64)) / float(scale)) @ np.asarray(rotation, np.float64).T


def aligned_manifolds(
    entries: Sequence[tuple[Any, Any, tuple[np.ndarray, float, np.ndarray] | None]],
    bounds: Sequence[float],
    rows: int,
    cols: int,
    *,
    trust_exact: bool = False,
    batch_size: int = 256,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> list[Manifold]:
    """The same view decoded by several models on aligned maps (the Compare tab's side-by-side manifold).

    ``entries`` are ``(model, projection, alignment)`` with ``alignment`` the ``(rotation, scale, translation)``
    that ``compare.alignment.align_maps`` returned for that model's map (None: the reference). ``bounds`` are in
    the aligned (reference) coordinates; each tile centre is taken back into each model's own map before its
    inverse, so tile (r, c) of every model shows the same place of the aligned picture.
    """
    if not entries:
        raise ValueError("aligned_manifolds needs at least one (model, projection, alignment) entry")
    centres = tile_centres(bounds, rows, cols)
    out = []
    n = len(entries)
    for i, (model, projection, alignment) in enumerate(entries):
        def sub(f: float, message: str, i: int = i) -> None:
            report(progress, (i + f) / n, message)

        own = unapply_alignment(centres, alignment)
        out.append(decode_manifold(model, projection, bounds, rows, cols, trust_exact=trust_exact,
                                   batch_size=batch_size, progress=sub if progress else None, cancel=cancel,
                                   _centres_in_map=own))
    return out


def side_by_side(pictures: Sequence[np.ndarray], gap: int = 8, pad_value: int = 255) -> np.ndarray:
    """(H, W, 3) uint8 pictures in one row, ``gap`` pixels apart, top-aligned (the shorter padded below)."""
    if not pictures:
        raise ValueError("side_by_side needs at least one picture")
    pics = [np.asarray(p, np.uint8) for p in pictures]
    pics = [np.repeat(p[..., None] if p.ndim == 2 else p, 3, axis=-1) if p.ndim == 2 or p.shape[-1] == 1 else p
            for p in pics]
    h = max(p.shape[0] for p in pics)
    w = sum(p.shape[1] for p in pics) + gap * (len(pics) - 1)
    out = np.full((h, w, 3), pad_value, np.uint8)
    x = 0
    for p in pics:
        out[:p.shape[0], x:x + p.shape[1]] = p[..., :3]
        x += p.shape[1] + gap
    return out
