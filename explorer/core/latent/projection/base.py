"""The surface every map shares (:class:`Projection`), the helpers the methods share, and the saved-state format."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from scipy.spatial import cKDTree

from ...progress import Cancelled

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
PreviewFn = Callable[[np.ndarray], None]  # (N, 2) float32 partial map positions while a fit runs


class _Reporter:
    """Throttled progress reports, previews and cancel checks for one long-running step.

    ``preview(embedding)`` forwards partial map positions (t-SNE's optimiser) at most every
    ``preview_interval_s``. ``creep(lo, hi, seconds, message)`` starts a phase that cannot report (a
    neighbour search, numba compiling): a daemon thread moves the bar from ``lo`` towards ``hi`` along
    ``1 - exp(-t / seconds)``, so the bar keeps moving at the expected pace and never claims the phase is
    done; the next real report (or ``end_creep``) stops it. Reports from both threads go through one lock.
    """

    def __init__(self, progress: ProgressFn | None, cancel: threading.Event | None, interval_s: float = 0.1,
                 preview: PreviewFn | None = None, preview_interval_s: float = 0.4):
        self._progress = progress
        self._cancel = cancel
        self._interval = interval_s
        self._last = -math.inf
        self.preview_fn = preview
        self._preview_interval = preview_interval_s
        self._last_preview = -math.inf
        self._lock = threading.Lock()
        self._creep: threading.Event | None = None
        self.fraction = 0.0

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    @property
    def cancel_event(self) -> threading.Event | None:
        return self._cancel

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled("cancelled")

    def _emit(self, fraction: float, message: str, creep: threading.Event | None = None) -> None:
        with self._lock:
            if creep is not None and creep.is_set():  # a creep step that lost the race with a real report
                return
            self.fraction = float(min(max(fraction, 0.0), 1.0))
            if self._progress is not None:
                self._progress(self.fraction, message)

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        self.end_creep()
        self.check()
        if self._progress is None:
            return
        now = time.perf_counter()
        if force or now - self._last >= self._interval:
            self._last = now
            self._emit(fraction, message)

    def preview(self, embedding: Any, *, force: bool = False) -> None:
        if self.preview_fn is None:
            return
        now = time.perf_counter()
        if force or now - self._last_preview >= self._preview_interval:
            self._last_preview = now
            self.preview_fn(np.array(embedding, dtype=np.float32, copy=True))

    def creep(self, lo: float, hi: float, seconds: float, message: str) -> None:
        self.end_creep()
        self(lo, message, force=True)
        if self._progress is None or seconds <= 0:
            return
        stop = threading.Event()
        self._creep = stop
        t0 = time.perf_counter()

        def run() -> None:
            while not stop.wait(0.25):
                t = time.perf_counter() - t0
                self._emit(lo + (hi - lo) * (1.0 - math.exp(-t / seconds)), message, stop)

        threading.Thread(target=run, name="projection-progress", daemon=True).start()

    def end_creep(self) -> None:
        stop, self._creep = self._creep, None
        if stop is not None:
            with self._lock:  # after this, no step of that creep can be reported
                stop.set()


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
        self, latents: np.ndarray, progress: ProgressFn | None = None, cancel: threading.Event | None = None,
        preview: PreviewFn | None = None,
    ) -> np.ndarray:
        """Map positions (N, 2) float32 of ``latents`` (N, D); also builds the KD-tree for picking and trust.

        ``preview(positions)``, where the method has them (t-SNE), receives partial maps while it optimises
        (a copy, at most every 0.4 s), so a GUI can draw the map forming.
        """
        z = _as_latents(latents)
        rep = _Reporter(progress, cancel, preview=preview)
        rep(0.0, f"computing {self.title or self.method}", force=True)
        t0 = time.perf_counter()
        try:
            emb = np.asarray(self._fit(z, rep), np.float32)
        finally:
            rep.end_creep()
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
        # Imported here: the registry imports every method, each of which imports this module.
        from .registry import PROJECTIONS

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


