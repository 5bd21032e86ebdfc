"""Two raw latent coordinates as the map axes (exact inverse)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .base import Projection, _as_points, _check_int, _Reporter


class DimsProjection(Projection):
    """Two raw latent coordinates, ``z[:, i]`` against ``z[:, j]``.

    ``inverse(p)`` is a copy of the base vector (the data mean unless ``base`` is given) with coordinates
    i and j set to the position: exact, ``transform(inverse(p)) == p``.
    """

    method = "dims"
    title = "latent dimensions"
    exact_inverse = True

    def __init__(self, i: int = 0, j: int = 1, *, trust_scale: float = 5.0) -> None:
        super().__init__(trust_scale=trust_scale)
        _check_int("dimension i", i, 0)
        _check_int("dimension j", j, 0)
        if i == j:
            raise ValueError(f"the two map axes must be different latent dimensions, got i = j = {i}")
        self.i, self.j = int(i), int(j)
        self.options.update(i=self.i, j=self.j)
        self.mean: np.ndarray | None = None

    def _check_dims(self, d: int) -> None:
        if max(self.i, self.j) >= d:
            raise ValueError(f"dimensions {self.i} and {self.j} do not exist in a {d}-D latent space (0..{d - 1})")

    def _fit(self, z: np.ndarray, rep: _Reporter) -> np.ndarray:
        self._check_dims(z.shape[1])
        self.mean = z.mean(0, dtype=np.float64)
        var = z.var(0, dtype=np.float64)
        total = float(var.sum())
        shown = float(var[self.i] + var[self.j])
        shares = [float(var[self.i] / total), float(var[self.j] / total)] if total > 0 else [0.0, 0.0]
        self.info["explained_variance_ratio"] = shares
        self.inverse_error = math.sqrt(max(0.0, 1.0 - shown / total)) if total > 0 else 0.0
        return z[:, [self.i, self.j]].copy()

    def transform(self, latents: np.ndarray) -> np.ndarray:
        self._require_fitted()
        z = np.asarray(latents, np.float32).reshape(-1, self.latent_dim or 0)
        return z[:, [self.i, self.j]].copy()

    def inverse(self, points2d: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        self._require_fitted()
        p = _as_points(points2d)
        src = self.mean if base is None else np.asarray(base, np.float64).reshape(-1, self.latent_dim or 0)
        z = np.broadcast_to(np.asarray(src, np.float32), (len(p), self.latent_dim or 0)).copy()
        z[:, self.i] = p[:, 0]
        z[:, self.j] = p[:, 1]
        return z

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean}  # type: ignore[dict-item]

    def _load_extra_state(self, state: Mapping[str, np.ndarray]) -> None:
        mean = np.asarray(state["mean"], np.float64)
        if mean.shape != (self.latent_dim,):
            raise ValueError(f"mean {mean.shape} does not match latent_dim {self.latent_dim}")
        self._check_dims(int(self.latent_dim or 0))
        self.mean = mean
