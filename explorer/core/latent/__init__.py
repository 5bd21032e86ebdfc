"""Latent-space tools without Qt: encode a dataset, flatten its latents into a 2-D map and back.

::

    from explorer.core.latent import encode_dataset, make_projection

    z = encode_dataset(model, data.images)          # (N, D) float32
    proj = make_projection("pca")                    # or "tsne", "umap", "dims" (i=, j=)
    xy = proj.fit(z)                                 # (N, 2) float32 map positions
    proj.fit_inverse()                               # no-op for the exact maps (PCA, dims)
    z_at_cursor = proj.inverse([[0.5, -1.0]])        # (1, D): the latent vector to decode
    dist, idx = proj.nearest([[0.5, -1.0]])          # the datum under the cursor (KD-tree)

Long-running steps take ``progress`` and ``cancel`` (a ``threading.Event``) and raise
:class:`Cancelled` when the event is set.
"""

from __future__ import annotations


from ..progress import Cancelled  # noqa: F401  (re-exported: the one Cancelled of every long task)


from .encoding import encode_dataset  # noqa: E402  (after Cancelled, which it imports)
from .projection import (  # noqa: E402
    PROJECTIONS,
    DimsProjection,
    PCAProjection,
    Projection,
    ProjectionCache,
    TransformUnavailableError,
    TSNEProjection,
    UMAPProjection,
    cache_key,
    default_cache_dir,
    make_projection,
)

__all__ = [
    "PROJECTIONS",
    "Cancelled",
    "DimsProjection",
    "PCAProjection",
    "Projection",
    "ProjectionCache",
    "TSNEProjection",
    "TransformUnavailableError",
    "UMAPProjection",
    "cache_key",
    "default_cache_dir",
    "encode_dataset",
    "make_projection",
]
