"""Method name -> projection class, and ``make_projection``."""

from __future__ import annotations

from typing import Any

from .base import Projection
from .dims import DimsProjection
from .parametric import ParametricProjection
from .pca import PCAProjection
from .tsne import TSNEProjection
from .umap import UMAPProjection

PROJECTIONS: dict[str, type[Projection]] = {
    "pca": PCAProjection,
    "tsne": TSNEProjection,
    "umap": UMAPProjection,
    "dims": DimsProjection,
    "parametric": ParametricProjection,
}


def make_projection(method: str, **options: Any) -> Projection:
    """A fresh (unfitted) projection: ``make_projection("dims", i=3, j=7)``, ``make_projection("tsne", n_iter=300)``."""
    key = (method or "").strip().lower().replace("-", "")
    cls = PROJECTIONS.get(key)
    if cls is None:
        raise ValueError(f"unknown projection {method!r}; known: {', '.join(PROJECTIONS)}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"bad options for the {method} projection: {exc}") from None
