"""2-D maps of a latent space, and the way back from a map position to a latent vector.

Every projection has the same surface (:class:`Projection`):

* ``fit(latents, progress, cancel) -> (N, 2)`` map positions of the data;
* ``transform(latents) -> (M, 2)`` positions of new latent vectors;
* ``inverse(points2d) -> (M, D)`` the latent vector to decode at a map position;
* ``nearest(points2d, k)`` and ``trust(points2d)``, both answered by one KD-tree over the map points.

Two kinds:

* Linear maps, ``pca`` (the default: it is instant) and ``dims`` (two raw latent coordinates), have an
  **exact** inverse: ``transform(inverse(p)) == p``. A map position fixes only two degrees of freedom; the
  other latent coordinates come from a *base* vector (the data mean unless one is given).
* Non-linear maps, ``tsne`` (openTSNE) and ``umap`` (umap-learn), have no inverse of their own. Theirs is
  **learned** (``exact_inverse = False``): a small MLP from map positions to latents, fitted separately by
  ``fit_inverse`` so the GUI can show the map first. Until it is fitted, ``inverse`` interpolates the latents of
  the 8 nearest data points on the map (inverse-distance weights). Either way the answer is only trustworthy
  near the data, which is what ``trust`` / ``trust_grid`` measure.

Threading and cancellation
--------------------------
``fit`` and ``fit_inverse`` are meant to run on a worker thread. ``progress(fraction, message)`` is called at
most ~10 times a second (plus once at the end) and ``cancel`` (a ``threading.Event``) is checked at every
report; a set event raises :class:`~explorer.core.latent.Cancelled`. Where the libraries allow it, that is
within about a second:

* t-SNE: an openTSNE callback every ``callbacks_every`` iterations returns True to stop the optimiser (about
  1 s apart for 70k points on 2 cores). The neighbour search before it (annoy, ~10-20 s for 70k) cannot be
  interrupted: cancel is checked before and after it.
* UMAP has no callbacks. Cancel is checked before the neighbour search, between the neighbour graph and the
  layout (a subclass hook, ``UMAP._fit_embed_data``), and during the layout at every progress report: umap-learn
  draws its epoch loop with tqdm, and we hand tqdm a file object whose ``write`` reports progress and raises
  ``Cancelled``. The nearest-neighbour descent and the spectral initialisation cannot be interrupted.
  The first UMAP of a process compiles numba kernels (40-75 s; umap-learn does not cache them on disk),
  which cannot be interrupted either: ``UMAPProjection.warm_up()`` does it ahead of time.

GIL: the longest time the main thread was kept from running while a fit ran on a worker thread
(``benchmarks/projection_70k.py``, 70k x 20, 2 cores): UMAP ~85-150 ms (numba compiling: up to ~0.5 s),
openTSNE ~170 ms, the learned inverse ~5 ms (torch releases the GIL). Under heavy CPU contention we saw
t-SNE stall the main thread for 1.5 s once. A GUI that must never stall can run UMAP / t-SNE in a child
process (and kill it to cancel), then hand the embedding to ``fit_inverse`` here.

Results can be cached to disk as plain arrays (``.npz`` + JSON, no pickle): see :class:`ProjectionCache`.

Keeping up with large data
--------------------------
* ``fit(..., preview=fn)``: t-SNE hands ``fn`` its partial map (a copy, at most every 0.4 s) while it
  optimises, also from the child process (``ProjectionProcess.fit(..., preview=fn)``), so the map can be drawn
  forming.
* Phases that cannot report (neighbour searches, numba compiling) move the bar at their expected pace
  (``_Reporter.creep``) instead of leaving it still, never claiming the phase is done.
* ``estimate.py``: ``estimate_seconds`` / ``describe_estimate`` say how long a map will take before it starts
  (meant for maps past ``ESTIMATE_FROM`` = 200k points); ``suggest_parametric`` says when to offer the
  parametric map instead.
* ``parametric`` (``parametric.py``): t-SNE or UMAP on a sample, then a small network that places all
  points (and any new one, also after a cache restore).

Files: ``base.py`` (the surface, helpers, state format), ``pca.py``, ``dims.py``, ``inverse.py`` (the learned
inverse and what the non-linear maps share), ``tsne.py``, ``umap.py``, ``parametric.py``, ``estimate.py``,
``registry.py`` (``PROJECTIONS``, ``make_projection``), ``cache.py`` (on disk).
"""

from __future__ import annotations

from .base import STATE_FORMAT, PreviewFn, ProgressFn, Projection, TransformUnavailableError
from .cache import ProjectionCache, cache_key, default_cache_dir
from .dims import DimsProjection
from .estimate import (
    ESTIMATE_FROM,
    PARAMETRIC_SUGGEST_S,
    describe_estimate,
    estimate_seconds,
    suggest_parametric,
)
from .inverse import MLPInverse
from .parametric import ParametricProjection
from .pca import PCAProjection
from .registry import PROJECTIONS, make_projection
from .tsne import TSNEProjection
from .umap import UMAP_INITS, UMAPProjection

__all__ = [
    "ESTIMATE_FROM",
    "PARAMETRIC_SUGGEST_S",
    "PROJECTIONS",
    "STATE_FORMAT",
    "UMAP_INITS",
    "DimsProjection",
    "MLPInverse",
    "PCAProjection",
    "ParametricProjection",
    "PreviewFn",
    "ProgressFn",
    "Projection",
    "ProjectionCache",
    "TSNEProjection",
    "TransformUnavailableError",
    "UMAPProjection",
    "cache_key",
    "default_cache_dir",
    "describe_estimate",
    "estimate_seconds",
    "make_projection",
    "suggest_parametric",
]
