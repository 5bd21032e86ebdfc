"""The default map: the plane of the two leading principal components (exact inverse)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .base import Projection, _as_points, _Reporter


class PCAProjection(Projection):
    """The plane of the two leading principal components of the latents. Instant; the default map.

    ``inverse(p)`` is the point of that plane: ``mean + p @ V.T``, i.e. every direction outside the plane
    keeps the data mean's value. ``inverse(p, base=z0)`` keeps ``z0``'s out-of-plane part instead, so the
    cursor moves in a plane through a chosen datum; in both cases ``transform(inverse(p)) == p``.
    """

    method = "pca"
    title = "PCA"
    exact_inverse = True

    def __init__(self, *, trust_scale: float = 5.0) -> None:
        super().__init__(trust_scale=trust_scale)
        self.mean: np.ndarray | None = None  # (D,) float64
        self.components: np.ndarray | None = None  # (D, 2) float64, orthonormal columns

    def _fit(self, z: np.ndarray, rep: _Reporter) -> np.ndarray:
        n, d = z.shape
        mean = z.mean(0, dtype=np.float64)  # float64 accumulation: the map's origin and the inverse depend on it
        # The D x D covariance and its eigendecomposition: O(N D^2) + O(D^3), ~1 ms each for 70k x 20, where an
        # SVD of the N x D matrix costs ~10x more. The centred copy and the product stay in float32 (BLAS
        # accumulates in blocks, relative error ~1e-6: plenty for the two leading axes); the small D x D
        # eigenproblem runs in float64.
        centred = z - mean.astype(np.float32)
        cov = (centred.T @ centred).astype(np.float64) / max(n - 1, 1)
        evals, evecs = np.linalg.eigh(cov)  # ascending
        evals = np.clip(evals[::-1], 0.0, None)
        evecs = evecs[:, ::-1]
        if d < 2:  # a 1-D latent space: the second map axis is constant
            evecs = np.concatenate([evecs, np.zeros((d, 1))], axis=1)
            evals = np.concatenate([evals, [0.0]])
        comps = evecs[:, :2].copy()
        # scikit-learn's sign convention: the largest-magnitude loading of each axis is positive, so the
        # map does not flip between runs or machines.
        signs = np.sign(comps[np.abs(comps).argmax(0), np.arange(2)])
        signs[signs == 0] = 1.0
        comps *= signs
        total = float(evals.sum())
        self.mean, self.components = mean, comps
        ratio = (evals[:2] / total) if total > 0 else np.zeros(2)
        self.info["explained_variance_ratio"] = [float(v) for v in ratio]
        # What a position pins down: the latent variance outside the plane is what inverse(transform(z)) loses.
        self.inverse_error = math.sqrt(max(0.0, 1.0 - float(ratio.sum()))) if total > 0 else 0.0
        return centred @ comps.astype(np.float32)

    def transform(self, latents: np.ndarray) -> np.ndarray:
        self._require_fitted()
        z = np.asarray(latents, np.float64).reshape(-1, self.latent_dim or 0)
        return ((z - self.mean) @ self.components).astype(np.float32)

    def inverse(self, points2d: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        self._require_fitted()
        assert self.mean is not None and self.components is not None
        p = _as_points(points2d)
        z = self.mean + p @ self.components.T
        if base is not None:
            # Keep the base vector's out-of-plane part: z = mean + P_perp (base - mean) + p V^T.
            b = np.asarray(base, np.float64).reshape(-1, len(self.mean)) - self.mean
            z = z + (b - (b @ self.components) @ self.components.T)
        return z.astype(np.float32)

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "components": self.components}  # type: ignore[dict-item]

    def _load_extra_state(self, state: Mapping[str, np.ndarray]) -> None:
        mean = np.asarray(state["mean"], np.float64)
        comps = np.asarray(state["components"], np.float64)
        if mean.shape != (self.latent_dim,) or comps.shape != (self.latent_dim, 2):
            raise ValueError(f"PCA arrays {mean.shape}, {comps.shape} do not match latent_dim {self.latent_dim}")
        self.mean, self.components = mean, comps
