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
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.spatial import cKDTree

from . import Cancelled

__all__ = [
    "PROJECTIONS",
    "DimsProjection",
    "MLPInverse",
    "PCAProjection",
    "Projection",
    "ProjectionCache",
    "ProgressFn",
    "TSNEProjection",
    "TransformUnavailableError",
    "UMAPProjection",
    "cache_key",
    "default_cache_dir",
    "make_projection",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]  # (fraction in [0, 1], message)

# Bump when the meaning or layout of a saved state changes: old cache entries then stop matching.
STATE_FORMAT = 1

# numba's parallel kernels (UMAP, pynndescent) must not be launched from two threads at once where numba
# falls back to its "workqueue" threading layer: that aborts the whole process. Serialising them also avoids
# oversubscribing the cores when the GUI starts a second map before the first has noticed its cancel.
_NUMBA_LOCK = threading.Lock()


class TransformUnavailableError(RuntimeError):
    """This projection cannot place new latent vectors exactly (e.g. a t-SNE map restored from the cache)."""


# ============================================================================ helpers
class _Reporter:
    """Throttled progress reports and cancel checks for one long-running step."""

    def __init__(self, progress: ProgressFn | None, cancel: threading.Event | None, interval_s: float = 0.1):
        self._progress = progress
        self._cancel = cancel
        self._interval = interval_s
        self._last = -math.inf

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled("cancelled")

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        self.check()
        if self._progress is None:
            return
        now = time.perf_counter()
        if force or now - self._last >= self._interval:
            self._last = now
            self._progress(float(min(max(fraction, 0.0), 1.0)), message)


def _as_latents(latents: Any, name: str = "latents") -> np.ndarray:
    z = np.asarray(latents)
    if z.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, latent_dim), got shape {z.shape}")
    if z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(f"{name} must have at least 2 rows and 1 column, got shape {z.shape}")
    z = np.ascontiguousarray(z, dtype=np.float32)
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contain NaN or infinite values (a diverged model?)")
    return z


def _as_points(points2d: Any) -> np.ndarray:
    """(M, 2) float64; a single (2,) point is promoted to (1, 2)."""
    p = np.asarray(points2d, dtype=np.float64)
    if p.ndim == 1 and p.shape[0] == 2:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"map points must have shape (M, 2), got {p.shape}")
    return p


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _idw(dist: np.ndarray, idx: np.ndarray, values: np.ndarray, eps: float) -> np.ndarray:
    """Inverse-distance-weighted average of ``values[idx]`` (M, k) -> (M, ...)."""
    w = 1.0 / (dist + eps)
    w /= w.sum(1, keepdims=True)
    return np.einsum("mk,mk...->m...", w, values[idx])


# ============================================================================ learned inverse
class MLPInverse:
    """A small MLP from 2-D map positions to latent vectors: 2 -> hidden -> hidden -> D, ReLU.

    Trained with torch (Adam, MSE on standardised inputs and outputs, cosine learning-rate decay, a bounded
    number of steps and seconds: ~7 s for 3000 steps on 2 cores), then evaluated in plain numpy (~30 us per
    cursor position), so the GUI thread never enters torch.

    ``error`` is the held-out relative RMS error ``sqrt(sum |z_hat - z|^2 / sum |z - mean|^2)``: 0 is perfect,
    1 is no better than always answering the mean latent. A 2-D position cannot pin down a D-dimensional
    code, so even a perfect inverse keeps the part of z that the map does not show (it learns E[z | p]).
    """

    def __init__(
        self,
        hidden: int = 128,
        steps: int = 3000,
        batch_size: int = 512,
        lr: float = 3e-3,
        max_seconds: float = 30.0,
        holdout: float = 0.1,
        seed: int = 0,
    ):
        self.hidden = int(hidden)
        self.steps = int(steps)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.max_seconds = float(max_seconds)
        self.holdout = float(holdout)
        self.seed = int(seed)
        self.error: float | None = None
        self.arrays: dict[str, np.ndarray] | None = None  # set once, atomically, when training is done

    # ---- training
    def fit(
        self,
        points2d: np.ndarray,
        latents: np.ndarray,
        progress: Callable[[float], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> float:
        """Train on (points, latents) pairs; returns the held-out relative error. ``check`` may raise to stop."""
        x_all = np.asarray(points2d, np.float64)
        y_all = np.asarray(latents, np.float64)
        n, d = y_all.shape
        gen = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(n, generator=gen).numpy()
        n_hold = min(int(n * self.holdout), 5000) if n >= 20 else 0
        hold, train = perm[:n_hold], perm[n_hold:]

        # Standardise both sides: the map's units are arbitrary (t-SNE spans ~100, UMAP ~20) and latent
        # coordinates can differ in scale by orders of magnitude; MSE on raw values would fit only the largest.
        x_mean, x_scale = x_all[train].mean(0), x_all[train].std(0)
        y_mean, y_scale = y_all[train].mean(0), y_all[train].std(0)
        x_scale[x_scale < 1e-12] = 1.0
        y_scale[y_scale < 1e-12] = 1.0
        xs = torch.from_numpy(((x_all[train] - x_mean) / x_scale).astype(np.float32))
        ys = torch.from_numpy(((y_all[train] - y_mean) / y_scale).astype(np.float32))

        # Parameters drawn from our own generator (PyTorch's default Linear init, U(+-1/sqrt(fan_in))): building
        # nn.Linear would consume the *global* RNG, which a training run on another thread may be relying on.
        sizes = [(2, self.hidden), (self.hidden, self.hidden), (self.hidden, d)]
        params: list[torch.Tensor] = []
        for fan_in, fan_out in sizes:
            bound = 1.0 / math.sqrt(fan_in)
            params.append(torch.empty(fan_in, fan_out).uniform_(-bound, bound, generator=gen).requires_grad_())
            params.append(torch.empty(fan_out).uniform_(-bound, bound, generator=gen).requires_grad_())
        # Adam by hand (a few in-place ops per tensor, as fast as torch's fused kernel at this size): building
        # any torch.optim optimiser imports torch._dynamo and ~900 modules, 2-6 s and a GIL stall of up to
        # half a second in a GUI process that has not trained anything yet.
        moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        beta1, beta2, eps = 0.9, 0.999, 1e-8

        def forward(x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(torch.addmm(params[1], x, params[0]))
            h = torch.relu(torch.addmm(params[3], h, params[2]))
            return torch.addmm(params[5], h, params[4])

        batch = min(self.batch_size, len(xs))
        t0 = time.perf_counter()
        for step in range(self.steps):
            if step % 25 == 0:
                if check is not None:
                    check()
                if progress is not None:
                    progress(step / self.steps)
                if time.perf_counter() - t0 > self.max_seconds:
                    log.info("inverse map: stopped at step %d of %d (time budget)", step, self.steps)
                    break
            idx = torch.randint(len(xs), (batch,), generator=gen)
            loss = torch.nn.functional.mse_loss(forward(xs[idx]), ys[idx])
            grads = torch.autograd.grad(loss, params)
            # Cosine decay: the last steps refine instead of jittering. Bias correction folded into the rate.
            lr = self.lr * 0.5 * (1.0 + math.cos(math.pi * step / self.steps))
            t = step + 1
            lr_t = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
            with torch.no_grad():
                for p, g, (m, v) in zip(params, grads, moments):
                    m.mul_(beta1).add_(g, alpha=1.0 - beta1)
                    v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                    p.addcdiv_(m, v.sqrt().add_(eps), value=-lr_t)
        if check is not None:
            check()

        arrays = {f"p{i}": p.detach().numpy().astype(np.float32) for i, p in enumerate(params)}
        arrays.update(
            x_mean=x_mean.astype(np.float32),
            x_scale=x_scale.astype(np.float32),
            y_mean=y_mean.astype(np.float32),
            y_scale=y_scale.astype(np.float32),
        )
        self.arrays = arrays
        ref = hold if len(hold) else train
        pred = self(x_all[ref]).astype(np.float64)
        spread = float(np.square(y_all[ref] - y_mean).sum())
        self.error = math.sqrt(float(np.square(pred - y_all[ref]).sum()) / spread) if spread > 0 else 0.0
        return self.error

    # ---- evaluation
    @property
    def ready(self) -> bool:
        return self.arrays is not None

    def __call__(self, points2d: np.ndarray) -> np.ndarray:
        a = self.arrays
        if a is None:
            raise RuntimeError("the inverse map has not been fitted")
        x = ((np.asarray(points2d, np.float32) - a["x_mean"]) / a["x_scale"]).astype(np.float32)
        h = np.maximum(x @ a["p0"] + a["p1"], 0.0)
        h = np.maximum(h @ a["p2"] + a["p3"], 0.0)
        return (h @ a["p4"] + a["p5"]) * a["y_scale"] + a["y_mean"]

    # ---- state
    def state(self) -> dict[str, np.ndarray]:
        return dict(self.arrays or {})

    def load_state(self, arrays: Mapping[str, np.ndarray], error: float | None) -> None:
        needed = [f"p{i}" for i in range(6)] + ["x_mean", "x_scale", "y_mean", "y_scale"]
        missing = [k for k in needed if k not in arrays]
        if missing:
            raise ValueError(f"inverse map weights missing: {', '.join(missing)}")
        a = {k: np.asarray(arrays[k], np.float32) for k in needed}
        if a["p0"].shape[0] != 2 or a["p4"].shape[1] != a["y_mean"].shape[0]:
            raise ValueError("inverse map weights have inconsistent shapes")
        self.hidden = int(a["p0"].shape[1])
        self.arrays = a
        self.error = error


# ============================================================================ the base class
class Projection:
    """A fitted 2-D map of N latent vectors. Subclasses implement ``_fit``, ``transform`` and ``inverse``.

    ``trust(points)`` is ``exp(-(d / (trust_scale * s))^2)`` where d is the distance to the nearest map point
    and s the median nearest-neighbour spacing of the map points: 1 on the data, 1/e at ``trust_scale``
    typical spacings away, ~0 in the empty parts of the map. Inside evenly dense data a random spot is
    farther than 3 spacings from every point with probability 2^-9, so the default scale of 5 keeps trust
    above 0.7 there almost everywhere (an overlay without speckles), while the gaps between t-SNE / UMAP
    clusters, tens of spacings wide, fall to ~0.
    """

    method: ClassVar[str] = ""
    title: ClassVar[str] = ""
    exact_inverse: ClassVar[bool] = True
    # Options that change how fast a map is computed but not the map itself: left out of cache keys.
    execution_options: ClassVar[frozenset[str]] = frozenset({"n_jobs"})

    def __init__(self, *, trust_scale: float = 5.0) -> None:
        if not trust_scale > 0:
            raise ValueError(f"trust_scale must be positive, got {trust_scale!r}")
        self.options: dict[str, Any] = {"trust_scale": float(trust_scale)}
        self.trust_scale = float(trust_scale)
        self.embedding: np.ndarray | None = None  # (N, 2) float32 map positions of the fitted data
        self.latent_dim: int | None = None
        self.inverse_error: float | None = None  # see MLPInverse; for linear maps the exact analogue
        self.info: dict[str, Any] = {}  # JSON-able facts for captions (explained variance, fit seconds...)
        self._tree: cKDTree | None = None
        self._spacing = 1.0

    # ---- facts
    @property
    def fitted(self) -> bool:
        return self.embedding is not None

    @property
    def inverse_ready(self) -> bool:
        """True when ``inverse`` gives its final answer (always, once fitted, for the exact maps)."""
        return self.fitted

    @property
    def key_options(self) -> dict[str, Any]:
        """The options that determine the map: what a cache key should hash."""
        return {k: v for k, v in self.options.items() if k not in self.execution_options}

    @property
    def spacing(self) -> float:
        """Median distance from a map point to its nearest neighbour (the unit of ``trust``)."""
        return self._spacing

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        n = "unfitted" if self.embedding is None else f"{len(self.embedding)} points"
        return f"{type(self).__name__}({opts}; {n})"

    # ---- fitting
    def fit(
        self, latents: np.ndarray, progress: ProgressFn | None = None, cancel: threading.Event | None = None
    ) -> np.ndarray:
        """Map positions (N, 2) float32 of ``latents`` (N, D); also builds the KD-tree for picking and trust."""
        z = _as_latents(latents)
        rep = _Reporter(progress, cancel)
        rep(0.0, f"computing {self.title or self.method}", force=True)
        t0 = time.perf_counter()
        emb = np.asarray(self._fit(z, rep), np.float32)
        rep.check()
        if emb.shape != (len(z), 2) or not np.isfinite(emb).all():
            raise RuntimeError(f"{self.title or self.method} produced an invalid map ({emb.shape}, non-finite values)")
        self.latent_dim = int(z.shape[1])
        self._set_embedding(emb)
        self.info["fit_seconds"] = round(time.perf_counter() - t0, 4)
        self.info["n_points"] = len(z)
        rep(1.0, "done", force=True)
        return self.embedding.copy()  # type: ignore[union-attr]  (a copy: callers may edit theirs)

    def fit_inverse(self, progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> float | None:
        """Fit the learned inverse (non-linear maps); a no-op for exact maps. Returns ``inverse_error``."""
        self._require_fitted()
        return self.inverse_error

    def _fit(self, z: np.ndarray, rep: _Reporter) -> np.ndarray:
        raise NotImplementedError

    def _set_embedding(self, emb: np.ndarray) -> None:
        emb = np.ascontiguousarray(emb, np.float32)
        # Sliding-midpoint splits (balanced_tree=False) and larger leaves build in ~12 ms instead of ~23 ms for
        # 70k points; a single-point query stays at tens of microseconds (mostly call overhead).
        tree = cKDTree(emb, leafsize=32, balanced_tree=False, compact_nodes=False)
        # The median nearest-neighbour spacing, estimated on at most 2048 points (~2 ms instead of ~80 ms for
        # all 70k); k=2 because the nearest point of a map point is itself.
        n = len(emb)
        sample = emb if n <= 2048 else emb[np.random.default_rng(0).choice(n, 2048, replace=False)]
        d, _ = tree.query(sample, k=min(2, n))
        d = d[:, -1] if d.ndim == 2 else d
        positive = d[d > 0]
        if len(positive):
            spacing = float(np.median(positive))
        else:  # every point coincides with another: fall back to a fraction of the map's extent
            extent = float(np.ptp(emb, axis=0).max()) if n else 0.0
            spacing = extent / 1000.0 if extent > 0 else 1.0
        # Publish the finished tree last: a reader on another thread sees either nothing or a complete index.
        self.embedding = emb
        self._spacing = spacing
        self._tree = tree

    def _require_fitted(self) -> None:
        if self.embedding is None or self._tree is None:
            raise RuntimeError(f"the {self.title or self.method} projection has not been fitted yet")

    # ---- mapping (subclasses)
    def transform(self, latents: np.ndarray) -> np.ndarray:
        """Map positions (M, 2) float32 of new latent vectors (M, D)."""
        raise NotImplementedError

    def inverse(self, points2d: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """Latent vectors (M, D) float32 for map positions (M, 2)."""
        raise NotImplementedError

    def locate(self, latents: np.ndarray) -> np.ndarray:
        """Fast map positions (M, 2) of latent vectors, for moving the cursor when the sliders move.

        Exact for linear maps (it is ``transform``); approximate for the non-linear ones (see there).
        """
        return self.transform(latents)

    # ---- the KD-tree: picking, trust
    def nearest(self, points2d: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Distances and indices of the k nearest data points on the map.

        Shapes follow ``cKDTree.query``: (M,) for k=1, (M, k) otherwise. ~20 us for one point among 70k.
        """
        self._require_fitted()
        assert self._tree is not None and self.embedding is not None
        p = _as_points(points2d)
        kk = int(max(1, min(k, len(self.embedding))))
        dist, idx = self._tree.query(p, k=kk)
        if k > 1 and kk == 1:  # fewer data points than asked for: keep the (M, k)-style shape
            dist, idx = dist[:, None], idx[:, None]
        return np.asarray(dist, np.float64), np.asarray(idx, np.int64)

    def trust(self, points2d: np.ndarray) -> np.ndarray:
        """(M,) in [0, 1]: 1 on the data, falling towards 0 away from it (see the class docstring)."""
        dist, _ = self.nearest(points2d, k=1)
        return np.exp(-np.square(dist / (self.trust_scale * self._spacing))).astype(np.float32)

    def trust_grid(
        self, bounds: Sequence[float], resolution: int | tuple[int, int] = 96
    ) -> np.ndarray:
        """Trust sampled on a grid over ``bounds = (x0, y0, x1, y1)``, for an overlay image.

        Returns float32 (ny, nx) in row-major order: row r is y = y0 + (r + 0.5) * (y1 - y0) / ny, column c is
        x = x0 + (c + 0.5) * (x1 - x0) / nx (pixel centres). Draw it with pyqtgraph's
        ``imageAxisOrder='row-major'`` and ``setRect(x0, y0, x1 - x0, y1 - y0)``.
        """
        x0, y0, x1, y1 = (float(v) for v in bounds)
        if isinstance(resolution, (int, np.integer)):
            ny = nx = int(resolution)
        else:
            ny, nx = (int(v) for v in resolution)
        if nx < 1 or ny < 1:
            raise ValueError(f"resolution must be positive, got {resolution!r}")
        xs = x0 + (np.arange(nx) + 0.5) * ((x1 - x0) / nx)
        ys = y0 + (np.arange(ny) + 0.5) * ((y1 - y0) / ny)
        gx, gy = np.meshgrid(xs, ys)  # (ny, nx) each, row = y
        return self.trust(np.column_stack([gx.ravel(), gy.ravel()])).reshape(ny, nx)

    # ---- state (cache)
    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays plus one JSON string (``__meta__``): what ``from_state`` needs. No pickles."""
        self._require_fitted()
        meta = {
            "format": STATE_FORMAT,
            "method": self.method,
            "options": self.options,
            "latent_dim": self.latent_dim,
            "inverse_error": self.inverse_error,
            "info": self.info,
        }
        state = {"__meta__": np.array(json.dumps(meta, default=_json_default)), "embedding": self.embedding}
        state.update(self._extra_state())
        return state  # type: ignore[return-value]

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_extra_state(self, state: Mapping[str, np.ndarray]) -> None:
        pass

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> "Projection":
        """Rebuild a fitted projection from ``state_dict()``; ValueError if the state is malformed."""
        try:
            meta = json.loads(str(np.asarray(state["__meta__"])[()]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"not a projection state ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
            raise ValueError(f"projection state format {meta.get('format') if isinstance(meta, dict) else '?'} "
                             f"is not {STATE_FORMAT}")
        method = meta.get("method")
        klass = PROJECTIONS.get(method)  # type: ignore[arg-type]
        if klass is None:
            raise ValueError(f"unknown projection method {method!r} in saved state")
        if cls is not Projection and not issubclass(klass, cls):
            raise ValueError(f"saved state is a {method} projection, not {cls.method}")
        try:
            obj = klass(**meta.get("options", {}))
            emb = np.asarray(state["embedding"], np.float32)
            if emb.ndim != 2 or emb.shape[1] != 2 or len(emb) < 2 or not np.isfinite(emb).all():
                raise ValueError(f"bad embedding {emb.shape}")
            obj.latent_dim = int(meta["latent_dim"])
            obj.inverse_error = None if meta.get("inverse_error") is None else float(meta["inverse_error"])
            obj.info = dict(meta.get("info") or {})
            obj._load_extra_state(state)
            obj._set_embedding(emb)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed {method} projection state: {exc}") from None
        return obj


# ============================================================================ linear maps (exact inverse)
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


# ============================================================================ non-linear maps (learned inverse)
class _LearnedInverseProjection(Projection):
    """Shared machinery of t-SNE and UMAP: data latents kept for the fallback inverse and ``locate``."""

    exact_inverse = False

    def __init__(
        self,
        *,
        seed: int | None,
        inverse_steps: int = 3000,
        inverse_hidden: int = 128,
        inverse_max_seconds: float = 30.0,
        neighbours: int = 8,
        trust_scale: float = 5.0,
    ) -> None:
        super().__init__(trust_scale=trust_scale)
        if seed is not None:
            _check_int("seed", seed, 0)
        for name, v in (("inverse_steps", inverse_steps), ("inverse_hidden", inverse_hidden),
                        ("neighbours", neighbours)):
            _check_int(name, v, 1)
        self.seed = None if seed is None else int(seed)
        self.options.update(
            seed=self.seed,
            inverse_steps=int(inverse_steps),
            inverse_hidden=int(inverse_hidden),
            inverse_max_seconds=float(inverse_max_seconds),
            neighbours=int(neighbours),
        )
        self.latents: np.ndarray | None = None  # (N, D) float32, the fitted data
        self._mlp: MLPInverse | None = None  # published only once trained
        self._model: Any = None  # the library's fitted object (for transform); absent after from_state
        self._latent_tree: cKDTree | None = None
        self._latent_tree_lock = threading.Lock()

    execution_options = frozenset({"n_jobs", "inverse_max_seconds"})

    @property
    def inverse_ready(self) -> bool:
        return self._mlp is not None

    def fit(
        self, latents: np.ndarray, progress: ProgressFn | None = None, cancel: threading.Event | None = None
    ) -> np.ndarray:
        # A refit invalidates everything derived from the previous data.
        self._mlp, self._model, self._latent_tree, self.inverse_error = None, None, None, None
        self.latents = _as_latents(latents)
        return super().fit(self.latents, progress, cancel)

    def fit_inverse(self, progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> float | None:
        """Train the MLP inverse (a few seconds for 70k points on 2 cores). Until it is done, ``inverse`` uses
        the nearest-neighbour fallback; afterwards it switches atomically, so the GUI may call ``inverse`` from
        another thread meanwhile."""
        self._require_fitted()
        assert self.latents is not None
        rep = _Reporter(progress, cancel)
        rep(0.0, "learning the inverse map", force=True)
        t0 = time.perf_counter()
        mlp = MLPInverse(
            hidden=self.options["inverse_hidden"],
            steps=self.options["inverse_steps"],
            max_seconds=self.options["inverse_max_seconds"],
            seed=self.seed or 0,
        )
        assert self.embedding is not None
        error = mlp.fit(self.embedding, self.latents, lambda f: rep(f, "learning the inverse map"), rep.check)
        self.inverse_error = error
        self.info["inverse_fit_seconds"] = round(time.perf_counter() - t0, 3)
        self._mlp = mlp
        rep(1.0, "done", force=True)
        return error

    def inverse(self, points2d: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """Latents at map positions: the learned MLP once fitted, else an inverse-distance-weighted average of
        the latents of the ``neighbours`` nearest map points. ``base`` is ignored (a non-linear map has no
        "out-of-plane" part to keep)."""
        self._require_fitted()
        p = _as_points(points2d)
        mlp = self._mlp  # read once: fit_inverse may publish it from another thread
        if mlp is not None:
            return mlp(p).astype(np.float32)
        assert self.latents is not None
        dist, idx = self.nearest(p, k=self.options["neighbours"])
        return _idw(dist, idx, self.latents, 1e-3 * self._spacing).astype(np.float32)

    def locate(self, latents: np.ndarray) -> np.ndarray:
        """Approximate map positions of latent vectors: the inverse-distance-weighted map positions of their
        ``neighbours`` nearest data latents (a KD-tree in latent space, ~0.1 ms per vector). This is what the
        libraries' own ``transform`` does as its starting point, without the slow optimisation after it."""
        self._require_fitted()
        assert self.latents is not None and self.embedding is not None
        z = np.asarray(latents, np.float32).reshape(-1, self.latents.shape[1])
        with self._latent_tree_lock:
            if self._latent_tree is None:
                self._latent_tree = cKDTree(self.latents, balanced_tree=False, compact_nodes=False)
            tree = self._latent_tree
        k = int(min(self.options["neighbours"], len(self.latents)))
        dist, idx = tree.query(z, k=k)
        if k == 1:
            dist, idx = dist[:, None], idx[:, None]
        scale = float(np.median(dist[:, :1])) + 1e-12
        return _idw(dist, idx, self.embedding, 1e-3 * scale).astype(np.float32)

    def transform(self, latents: np.ndarray) -> np.ndarray:
        if self._model is None:
            self._require_fitted()
            raise TransformUnavailableError(
                f"this {self.title} map was restored from the cache, which keeps positions but not the fitted "
                f"{self.title} model; use locate() for approximate positions, or refit to place new points exactly"
            )
        z = np.asarray(latents, np.float32).reshape(-1, self.latent_dim or 0)
        return self._library_transform(z)

    def _library_transform(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _finite_embedding(self, emb: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Give points the library could not place (UMAP: NaN for vertices disconnected from the neighbour
        graph) the weighted position of their nearest placed neighbours in latent space, so the map, its
        bounds and its KD-tree stay finite."""
        emb = np.asarray(emb, np.float32)
        bad = ~np.isfinite(emb).all(1)
        if not bad.any():
            return emb
        good = np.flatnonzero(~bad)
        if len(good) == 0:
            raise RuntimeError(f"{self.title} could not place any point")
        k = int(min(self.options["neighbours"], len(good)))
        dist, idx = cKDTree(z[good]).query(z[bad], k=k)
        if k == 1:
            dist, idx = dist[:, None], idx[:, None]
        emb = emb.copy()
        emb[bad] = _idw(dist, good[idx], emb, 1e-6)
        log.info("%s: %d points were not placed and were put next to their neighbours", self.title, int(bad.sum()))
        return emb

    def _extra_state(self) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {"latents": self.latents}  # type: ignore[dict-item]
        mlp = self._mlp
        if mlp is not None:
            state.update({f"inverse.{k}": v for k, v in mlp.state().items()})
        return state

    def _load_extra_state(self, state: Mapping[str, np.ndarray]) -> None:
        latents = np.ascontiguousarray(state["latents"], np.float32)
        emb = np.asarray(state["embedding"])
        if latents.ndim != 2 or latents.shape != (len(emb), self.latent_dim):
            raise ValueError(f"latents {latents.shape} do not match {len(emb)} points of dimension {self.latent_dim}")
        self.latents = latents
        inv = {k.split(".", 1)[1]: np.asarray(v) for k, v in state.items() if k.startswith("inverse.")}
        if inv:
            mlp = MLPInverse(hidden=self.options["inverse_hidden"], seed=self.seed or 0)
            mlp.load_state(inv, self.inverse_error)
            if mlp.arrays is not None and mlp.arrays["y_mean"].shape != (self.latent_dim,):
                raise ValueError("inverse map output size does not match latent_dim")
            self._mlp = mlp


class _TSNECallback:
    """openTSNE callback: progress over both optimisation phases; returning True stops the optimiser."""

    def __init__(self, rep: _Reporter, phases: Sequence[int], lo: float, hi: float):
        self.rep, self.phases, self.lo, self.hi = rep, list(phases), lo, hi
        self.phase = -1
        self.total = max(sum(self.phases), 1)

    def optimization_about_to_start(self) -> None:  # openTSNE calls this before each optimize() phase
        self.phase += 1

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        if self.rep.cancelled:
            return True
        done = sum(self.phases[: max(self.phase, 0)]) + iteration
        self.rep(self.lo + (self.hi - self.lo) * done / self.total, f"t-SNE iteration {done}/{self.total}")
        return False


class TSNEProjection(_LearnedInverseProjection):
    """openTSNE (FFT-accelerated t-SNE): ~160 s for 70k x 20 on 2 cores (35 s of it the neighbour search,
    then ~0.15 s per iteration). Learned inverse.

    ``transform`` places new points with openTSNE's own optimisation (~0.1-1 s); it is unavailable on a map
    restored from the cache (``TransformUnavailableError``; ``locate`` works on both).
    """

    method = "tsne"
    title = "t-SNE"

    def __init__(
        self,
        *,
        perplexity: float = 30.0,
        n_iter: int = 500,
        early_exaggeration_iter: int = 250,
        learning_rate: float | str = "auto",
        seed: int | None = 0,
        n_jobs: int | None = None,
        callbacks_every: int = 10,
        **common: Any,
    ) -> None:
        super().__init__(seed=seed, **common)
        if not perplexity > 0:
            raise ValueError(f"perplexity must be positive, got {perplexity!r}")
        _check_int("n_iter", n_iter, 0)
        _check_int("early_exaggeration_iter", early_exaggeration_iter, 0)
        _check_int("callbacks_every", callbacks_every, 1)
        self.options.update(
            perplexity=float(perplexity),
            n_iter=int(n_iter),
            early_exaggeration_iter=int(early_exaggeration_iter),
            learning_rate=learning_rate,
            n_jobs=n_jobs,
            callbacks_every=int(callbacks_every),
        )

    execution_options = frozenset({"n_jobs", "inverse_max_seconds", "callbacks_every"})

    def _fit(self, z: np.ndarray, rep: _Reporter) -> np.ndarray:
        import openTSNE
        from openTSNE import affinity, initialization

        o = self.options
        n = len(z)
        n_jobs = o["n_jobs"] or _default_jobs()
        # openTSNE needs 3 * perplexity < N; small maps (tests, tiny datasets) get a smaller perplexity.
        perplexity = float(min(o["perplexity"], max((n - 1) / 3.0 - 1e-3, 1.0)))
        rep(0.01, "t-SNE: finding neighbours")
        # Not interruptible (annoy / exact search + perplexity calibration), ~35 s of the ~160 s for 70k x 20 on
        # 2 cores: cancel is checked after it.
        aff = affinity.PerplexityBasedNN(z, perplexity=perplexity, n_jobs=n_jobs, random_state=self.seed, verbose=False)
        rep(0.2, "t-SNE: initialising")
        init = initialization.pca(z, random_state=self.seed)
        phases = [o["early_exaggeration_iter"], o["n_iter"]]
        callback = _TSNECallback(rep, phases, 0.21, 1.0)
        tsne = openTSNE.TSNE(
            n_iter=o["n_iter"],
            early_exaggeration_iter=o["early_exaggeration_iter"],
            learning_rate=o["learning_rate"],
            n_jobs=n_jobs,
            random_state=self.seed,
            callbacks=callback,
            callbacks_every_iters=max(1, o["callbacks_every"]),
            verbose=False,
        )
        embedding = tsne.fit(affinities=aff, initialization=init)
        # A callback that returned True makes openTSNE return the partial embedding quietly: raise here.
        rep.check()
        self._model = embedding
        return self._finite_embedding(np.asarray(embedding), z)

    def _library_transform(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.transform(z), np.float32)


class _TqdmHook(io.TextIOBase):
    """A file object for umap-learn's tqdm epoch bar: parses "n/total" and forwards it.

    Exceptions raised by ``on_progress`` (``Cancelled``) propagate out of UMAP's epoch loop, which is the only
    way to stop it early. Writes from other threads (tqdm's monitor thread) are ignored, and nothing is
    raised twice (tqdm writes once more while closing).
    """

    _PATTERN = re.compile(r"(\d+)/(\d+)")

    def __init__(self) -> None:
        super().__init__()
        self.on_progress: Callable[[int, int], None] | None = None
        self.owner = threading.get_ident()
        self._raised = False

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        found = self._PATTERN.findall(s)
        cb = self.on_progress
        if found and cb is not None and not self._raised and threading.get_ident() == self.owner:
            n, total = found[-1]
            try:
                cb(int(n), int(total))
            except BaseException:
                self._raised = True
                raise
        return len(s)

    def flush(self) -> None:
        pass


_HOOKED_UMAP: type | None = None


def _hooked_umap_class() -> type:
    """umap.UMAP with a hook between the neighbour graph and the layout (built on first use: importing
    umap-learn takes seconds)."""
    global _HOOKED_UMAP
    if _HOOKED_UMAP is None:
        import umap

        class HookedUMAP(umap.UMAP):
            explorer_hook: Callable[[], None] | None = None

            def _fit_embed_data(self, X, n_epochs, init, random_state, **kwargs):  # noqa: N803 (umap's names)
                if self.explorer_hook is not None:
                    self.explorer_hook()
                return super()._fit_embed_data(X, n_epochs, init, random_state, **kwargs)

        _HOOKED_UMAP = HookedUMAP
    return _HOOKED_UMAP


# PCA initialisation by default: on 70k MNIST latents it gives the same map quality as umap-learn's spectral
# default (10-NN label accuracy on the map 0.958 vs 0.959) and saves the ~3 s eigensolve, a sixth of the fit
# on 2 cores; PCA init keeps the global layout as well as spectral (Kobak & Linderman, Nat. Biotech. 2021).
UMAP_INITS = ("pca", "spectral", "tswspectral", "random")


class UMAPProjection(_LearnedInverseProjection):
    """umap-learn: 13-18 s for 70k x 20 on 2 cores once numba has compiled its kernels, which every new
    process does on its first UMAP (40-75 s; see ``warm_up``). Learned inverse.

    ``seed=None`` (the default) lets UMAP use every core; a fixed seed makes it reproducible but
    single-threaded (umap-learn's rule). ``transform`` uses UMAP's own (unavailable after a cache restore).
    """

    method = "umap"
    title = "UMAP"

    def __init__(
        self,
        *,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        n_epochs: int | None = None,
        init: str = "pca",
        seed: int | None = None,
        n_jobs: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(seed=seed, **common)
        _check_int("n_neighbors", n_neighbors, 2)
        if init not in UMAP_INITS:
            raise ValueError(f"init must be one of {', '.join(UMAP_INITS)}, got {init!r}")
        if not min_dist >= 0:
            raise ValueError(f"min_dist must be >= 0, got {min_dist!r}")
        if n_epochs is not None:
            _check_int("n_epochs", n_epochs, 1)
        self.options.update(
            n_neighbors=int(n_neighbors),
            min_dist=float(min_dist),
            n_epochs=None if n_epochs is None else int(n_epochs),
            init=init,
            n_jobs=n_jobs,
        )

    def _fit(self, z: np.ndarray, rep: _Reporter) -> np.ndarray:
        rep(0.0, "UMAP: loading")
        import numba

        cls = _hooked_umap_class()
        rep(0.02, "UMAP: finding neighbours")
        o = self.options
        hook = _TqdmHook()
        hook.on_progress = lambda n, total: rep(0.4 + 0.6 * n / max(total, 1), f"UMAP epoch {n}/{total}")
        model = cls(
            n_components=2,
            n_neighbors=int(min(o["n_neighbors"], len(z) - 1)),
            min_dist=o["min_dist"],
            n_epochs=o["n_epochs"],
            init=o["init"],
            random_state=self.seed,
            # umap-learn forces one thread when seeded, and warns if told otherwise: say so ourselves.
            n_jobs=1 if self.seed is not None else (o["n_jobs"] or -1),
            verbose=False,
            # The epoch loop's tqdm bar, sent to our hook (disable=False is what makes tqdm call it).
            tqdm_kwds={"disable": False, "file": hook, "bar_format": "{n}/{total}", "mininterval": 0.1},
        )
        model.explorer_hook = lambda: rep(0.4, "UMAP: optimising the layout")
        threads = numba.get_num_threads()
        with _NUMBA_LOCK:
            try:
                model.fit(z)
            finally:
                # UMAP restores numba's thread count only when fit succeeds; also detach our hooks so a later
                # transform (which runs the same epoch loop) reports nothing.
                numba.set_num_threads(threads)
                hook.on_progress = None
                model.explorer_hook = None
                model.tqdm_kwds = {"disable": True}
        rep.check()
        self._model = model
        return self._finite_embedding(model.embedding_, z)

    def _library_transform(self, z: np.ndarray) -> np.ndarray:
        with _NUMBA_LOCK:
            return np.asarray(self._model.transform(z), np.float32)

    @staticmethod
    def warm_up(cancel: threading.Event | None = None) -> float:
        """Compile umap-learn's numba kernels on a tiny random set; returns the seconds it took.

        The first UMAP of a process spends ~15-20 s compiling for small data (< 4096 points) and 40-75 s for
        large data (pynndescent's kernels too), whatever the number of points. The GUI can call this on a
        worker thread at idle time, or when the user first picks UMAP.
        """
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        # umap-learn takes one code path below 4096 points (all pairwise distances) and another above it
        # (pynndescent): compile both. Kernels are typed by dtype and rank, not by size or dimension.
        for n in (300, 4100):
            UMAPProjection(n_epochs=5).fit(rng.normal(size=(n, 4)).astype(np.float32), cancel=cancel)
        return time.perf_counter() - t0


# ============================================================================ registry
PROJECTIONS: dict[str, type[Projection]] = {
    "pca": PCAProjection,
    "tsne": TSNEProjection,
    "umap": UMAPProjection,
    "dims": DimsProjection,
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


# ============================================================================ cache
def cache_key(model_identity: str, dataset_name: str, method: str, options: Mapping[str, Any] | None = None) -> str:
    """sha256 (hex) naming one cached map. ``model_identity`` must change whenever the weights do (e.g. a
    hash of the checkpoint file). Execution-only options (``n_jobs``...) are left out: they do not change the
    map. The state format is hashed too, so a format change invalidates old entries."""
    cls = PROJECTIONS.get(method)
    skip = cls.execution_options if cls is not None else frozenset({"n_jobs"})
    opts = {k: v for k, v in (options or {}).items() if k not in skip}
    doc = json.dumps(
        {"format": STATE_FORMAT, "model": model_identity, "dataset": dataset_name, "method": method, "options": opts},
        sort_keys=True,
        default=_json_default,
    )
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    """$LATENT_EXPLORER_CACHE, else $XDG_CACHE_HOME/latent-explorer/projections (~/.cache/...)."""
    env = os.environ.get("LATENT_EXPLORER_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "latent-explorer" / "projections"


class ProjectionCache:
    """Fitted projections on disk, one ``<key>.npz`` per map (arrays + JSON, loaded with allow_pickle=False).

    Writes are atomic (temporary file + ``os.replace``), so a crash or a second process never leaves a
    half-written entry under the real name. An unreadable or malformed entry is a miss (and is deleted), never
    an error: the map is simply recomputed.
    """

    _KEY = re.compile(r"^[0-9a-f]{16,128}$")

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        if not isinstance(key, str) or not self._KEY.match(key):
            raise ValueError(f"cache keys are hex digests (see cache_key), got {key!r}")
        return self.folder / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> Projection | None:
        """The cached projection, or None (missing, unreadable or malformed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                state = {name: npz[name] for name in npz.files}
            return Projection.from_state(state)
        except Exception as exc:  # noqa: BLE001 - any unreadable entry is a miss; the map is recomputed
            log.warning("projection cache: ignoring unreadable %s (%s: %s)", path.name, type(exc).__name__, exc)
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def put(self, key: str, projection: Projection) -> Path:
        """Store a fitted projection (for t-SNE/UMAP call it after ``fit_inverse`` to keep the inverse)."""
        from ..checkpoint import atomic_write  # imported here: checkpoint pulls in torch and safetensors

        state = projection.state_dict()

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **state)

        return atomic_write(self.path(key), write)

    def remove(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass
