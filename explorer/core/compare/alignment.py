"""Aligned maps: Procrustes alignment of 2-D maps, shared bounds, data and prior densities."""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..models.base import LatentModel
from .columns import CompareError


# ====================================================================== aligned maps
def procrustes_align(reference_xy: np.ndarray, xy: np.ndarray, *, match_spread: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Rotate (or mirror), scale and shift ``xy`` onto ``reference_xy``: ``(aligned, rotation, scale, translation)``.

    Both are (N, 2) maps of the *same* N data points (row i is datum i in both);
    ``aligned = scale * xy @ rotation + translation``. ``rotation`` is the orthogonal Procrustes solution
    (Schönemann 1966): the orthogonal 2x2 matrix, reflections included, that best lines the centred maps up.
    Mirroring must be allowed: a PCA map and its mirror image are the same map (an eigenvector's sign is
    arbitrary), and two models' maps should face the same way.

    ``scale`` makes the two maps equally spread (RMS distance from the centre), so an AE's map, whose codes
    may be 10x a VAE's, is drawn at the same size. ``match_spread=False`` uses the least-squares scale instead,
    which shrinks a map that agrees only partly with the reference (towards its centre: the regression
    effect), which is right for measuring fit and wrong for drawing. With an exact similarity transform
    between the maps both give the same answer.
    """
    ref = np.asarray(reference_xy, np.float64)
    pts = np.asarray(xy, np.float64)
    if ref.ndim != 2 or pts.shape != ref.shape or ref.shape[1] != 2:
        raise CompareError(f"Procrustes needs two (N, 2) maps of the same points, got {ref.shape} and {pts.shape}")
    if len(ref) < 2:
        raise CompareError("Procrustes needs at least 2 points")
    if not (np.isfinite(ref).all() and np.isfinite(pts).all()):
        raise CompareError("the maps contain NaN or infinite positions")
    ref_mean, pts_mean = ref.mean(0), pts.mean(0)
    a, b = ref - ref_mean, pts - pts_mean
    u, s, vt = np.linalg.svd(b.T @ a)  # b^T a = U S V^T  ->  R = U V^T maximises tr(R^T b^T a)
    rotation = u @ vt
    norm = float(np.square(b).sum())
    if norm <= 0:
        scale = 1.0  # every point at one place: nothing to scale
    elif match_spread:
        scale = math.sqrt(float(np.square(a).sum()) / norm)
    else:
        scale = float(s.sum() / norm)
    translation = ref_mean - scale * pts_mean @ rotation
    aligned = scale * pts @ rotation + translation
    return aligned.astype(np.float32), rotation, scale, translation


def apply_alignment(xy: np.ndarray, alignment: tuple[np.ndarray, float, np.ndarray] | None) -> np.ndarray:
    """Apply ``(rotation, scale, translation)`` from :func:`procrustes_align` to more points (prior samples)."""
    pts = np.asarray(xy, np.float64)
    if alignment is None:
        return pts.astype(np.float32)
    rotation, scale, translation = alignment
    return (scale * pts @ rotation + translation).astype(np.float32)


def align_maps(maps: Sequence[np.ndarray | None]) -> tuple[list[np.ndarray | None], list[tuple | None]]:
    """Align every map to the first one that exists (None entries, e.g. GANs, stay None).

    Returns the aligned maps and, per map, its ``(rotation, scale, translation)`` (identity for the reference).
    """
    ref = next((m for m in maps if m is not None), None)
    aligned: list[np.ndarray | None] = []
    transforms: list[tuple | None] = []
    for m in maps:
        if m is None:
            aligned.append(None)
            transforms.append(None)
        elif m is ref:
            aligned.append(np.asarray(m, np.float32))
            transforms.append((np.eye(2), 1.0, np.zeros(2)))
        else:
            a, rot, scale, shift = procrustes_align(ref, m)
            aligned.append(a)
            transforms.append((rot, scale, shift))
    return aligned, transforms


def map_bounds(*maps: np.ndarray | None, margin: float = 0.05,
               quantile: float = 0.005) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` covering the maps (all but the outermost ``quantile`` of points on each side)."""
    pts = [np.asarray(m, np.float64) for m in maps if m is not None and len(m)]
    if not pts:
        return (-1.0, -1.0, 1.0, 1.0)
    allp = np.concatenate(pts)
    lo = np.quantile(allp, quantile, axis=0)
    hi = np.quantile(allp, 1.0 - quantile, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - margin * span, hi + margin * span
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _histogram(xy: np.ndarray, bounds: Sequence[float], resolution: int | tuple[int, int]) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in bounds)
    if not (x1 > x0 and y1 > y0):
        raise CompareError(f"bounds must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {tuple(bounds)}")
    ny, nx = (int(resolution), int(resolution)) if np.isscalar(resolution) else (int(v) for v in resolution)
    if nx < 1 or ny < 1:
        raise CompareError(f"resolution must be positive, got {resolution!r}")
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((ny, nx), np.float32)
    hist, _, _ = np.histogram2d(pts[:, 1], pts[:, 0], bins=(ny, nx), range=((y0, y1), (x0, x1)))
    # Divided by *all* points, so mass outside the bounds shows as a total below 1 (the prior's outliers).
    return (hist / len(pts)).astype(np.float32)


def data_density(xy: np.ndarray, bounds: Sequence[float], resolution: int | tuple[int, int] = 64) -> np.ndarray:
    """Fraction of the map points ``xy`` (N, 2) in each cell of a grid over ``bounds = (x0, y0, x1, y1)``.

    Float32 (ny, nx), row-major like ``Projection.trust_grid``: row r covers y in
    ``[y0 + r * (y1 - y0) / ny, ...)``, column c the same in x. Sums to the fraction of points inside bounds.
    """
    return _histogram(xy, bounds, resolution)


@torch.no_grad()
def prior_density(
    model: LatentModel | int,
    projection: Any,
    bounds: Sequence[float],
    *,
    n: int = 10000,
    resolution: int | tuple[int, int] = 64,
    seed: int = 0,
    alignment: tuple[np.ndarray, float, np.ndarray] | None = None,
) -> np.ndarray:
    """Where the prior puts its mass on a map: ``n`` latents drawn from the model's prior (or N(0, I) in
    ``model`` dimensions when given an int), mapped by the fitted ``projection``'s ``transform`` (and the map's
    Procrustes ``alignment``), histogrammed as in :func:`data_density`.

    The latents are projected, not decoded and re-encoded: the question is where the prior puts mass in the
    latent space the map shows, next to where the encoded data lies. On an AE's map the two rarely agree.
    """
    gen = torch.Generator().manual_seed(seed)
    if isinstance(model, LatentModel):
        z = model.prior_sample(n, gen).cpu().numpy()
    else:
        z = torch.randn(n, int(model), generator=gen).numpy()
    xy = apply_alignment(projection.transform(z.astype(np.float32)), alignment)
    return _histogram(xy, bounds, resolution)
