"""The k nearest neighbours of a point in latent space (not on the map: the map distorts distances)."""

from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "nearest_neighbours"]

METRICS = ("euclidean", "cosine")
_CHUNK = 65536  # rows per block of distances: bounded memory for any data set size


def nearest_neighbours(latents: np.ndarray, query: int | np.ndarray, k: int = 8, *, metric: str = "euclidean",
                       exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(indices (k,), distances (k,)) of the k latents nearest to ``query``, nearest first.

    ``query`` is a row index of ``latents`` (that row itself is left out unless ``exclude_self=False``) or a
    latent vector (D,). ``metric``: ``"euclidean"`` or ``"cosine"`` (1 - cosine similarity). Exact, brute force
    in blocks: ~2 ms for 70k x 32 latents, no index to build or keep in step with the data. Ties go to the
    lower index among those found.
    """
    z = np.asarray(latents, np.float32)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"latents must be a non-empty (N, D) array, got shape {z.shape}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    skip = None
    if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
        if not 0 <= int(query) < len(z):
            raise ValueError(f"point {query} is out of range (0 to {len(z) - 1})")
        skip = int(query) if exclude_self else None
        q = z[int(query)].astype(np.float64)
    else:
        q = np.asarray(query, np.float64).reshape(-1)
        if q.shape != (z.shape[1],):
            raise ValueError(f"the query vector has {q.size} values but the latents have {z.shape[1]} dimensions")
    if not np.isfinite(q).all():
        raise ValueError("the query vector contains NaN or infinite values")
    dist = np.empty(len(z), np.float64)
    for s in range(0, len(z), _CHUNK):
        block = z[s:s + _CHUNK].astype(np.float64)
        if metric == "euclidean":
            dist[s:s + len(block)] = np.sqrt(np.square(block - q).sum(1))
        else:
            nb = np.linalg.norm(block, axis=1) * np.linalg.norm(q)
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = np.where(nb > 0, block @ q / nb, 0.0)
            dist[s:s + len(block)] = 1.0 - cos
    if skip is not None:
        dist[skip] = np.inf
    available = len(z) - (skip is not None)
    k = min(int(k), available)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    part = np.argpartition(dist, k - 1)[:k] if k < len(z) else np.arange(len(z))
    order = np.lexsort((part, dist[part]))  # by distance, then index
    idx = part[order][:k]
    return idx.astype(np.int64), dist[idx]
