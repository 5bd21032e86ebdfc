"""The learned inverse of the non-linear maps: an MLP from map positions to latents, and the machinery t-SNE,
UMAP and the parametric map share (data latents kept for the fallback inverse, ``locate``, saved state)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from .base import (
    PreviewFn,
    ProgressFn,
    Projection,
    TransformUnavailableError,
    _as_latents,
    _as_points,
    _check_int,
    _idw,
    _Reporter,
)

log = logging.getLogger(__name__)


class MLPInverse:
    """A small MLP from 2-D map positions to latent vectors: 2 -> hidden -> hidden -> D, ReLU.

    Trained with torch (Adam, MSE on standardised inputs and outputs, cosine learning-rate decay, a bounded
    number of steps and seconds: ~7 s for 3000 steps on 2 cores), then evaluated in plain numpy (~30 us per
    cursor position), so the GUI thread never enters torch.

    ``error`` is the held-out relative RMS error ``sqrt(sum |z_hat - z|^2 / sum |z - mean|^2)``: 0 is perfect,
    1 is no better than always answering the mean latent. A 2-D position cannot pin down a D-dimensional
    code, so even a perfect inverse keeps the part of z that the map does not show (it learns E[z | p]).

    The input width is whatever ``fit`` is given: the parametric map uses the same network the other way
    round, latents -> map positions.
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
        sizes = [(x_all.shape[1], self.hidden), (self.hidden, self.hidden), (self.hidden, d)]
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

    def load_state(self, arrays: Mapping[str, np.ndarray], error: float | None, in_dim: int = 2) -> None:
        needed = [f"p{i}" for i in range(6)] + ["x_mean", "x_scale", "y_mean", "y_scale"]
        missing = [k for k in needed if k not in arrays]
        if missing:
            raise ValueError(f"inverse map weights missing: {', '.join(missing)}")
        a = {k: np.asarray(arrays[k], np.float32) for k in needed}
        if a["p0"].shape[0] != in_dim or a["p4"].shape[1] != a["y_mean"].shape[0]:
            raise ValueError("inverse map weights have inconsistent shapes")
        self.hidden = int(a["p0"].shape[1])
        self.arrays = a
        self.error = error



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
        self, latents: np.ndarray, progress: ProgressFn | None = None, cancel: threading.Event | None = None,
        preview: PreviewFn | None = None,
    ) -> np.ndarray:
        # A refit invalidates everything derived from the previous data.
        self._mlp, self._model, self._latent_tree, self.inverse_error = None, None, None, None
        self.latents = _as_latents(latents)
        return super().fit(self.latents, progress, cancel, preview)

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


