"""A parametric map for data sets too large for an exact t-SNE / UMAP: fit the exact method on a sample,
train a small network from latents to those map positions, and place every point with it.

A t-SNE of a million points takes the better part of an hour on two cores; UMAP several minutes. The map
of a 20,000-point sample takes seconds, and a 20 -> 64 -> 64 -> 2 network learns it well enough to place
the other points where the method would have put them (its held-out error, ``info["parametric_error"]``,
is the RMS distance from the sample's exact positions relative to the map's spread). The network is also
this map's ``transform``: new latent vectors are placed instantly and exactly as the data were, also after
the map was restored from the cache (the weights are part of its state).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import _check_int, _Reporter
from .inverse import MLPInverse, _LearnedInverseProjection

_APPLY_CHUNK = 65_536  # points per batch through the network: bounds the hidden activations to ~17 MB


class ParametricProjection(_LearnedInverseProjection):
    """The ``base`` method ("umap" or "tsne") on ``sample`` points, a network for all of them. Learned inverse."""

    method = "parametric"
    title = "parametric map"

    def __init__(
        self,
        *,
        base: str = "umap",
        sample: int = 20_000,
        hidden: int = 64,
        steps: int = 4000,
        max_seconds: float = 20.0,
        base_options: Mapping[str, Any] | None = None,
        seed: int | None = 0,
        **common: Any,
    ) -> None:
        super().__init__(seed=seed, **common)
        if base not in ("umap", "tsne", "pca"):
            raise ValueError(f"base must be umap, tsne or pca, got {base!r}")
        _check_int("sample", sample, 10)
        _check_int("hidden", hidden, 2)
        _check_int("steps", steps, 1)
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
        self.options.update(base=base, sample=int(sample), hidden=int(hidden), steps=int(steps),
                            max_seconds=float(max_seconds), base_options=dict(base_options or {}))
        self._forward: MLPInverse | None = None

    execution_options = frozenset({"n_jobs", "inverse_max_seconds"})

    def _fit(self, z: np.ndarray, rep: _Reporter) -> np.ndarray:
        from .registry import make_projection  # the registry imports this module

        o = self.options
        n = len(z)
        rng = np.random.default_rng(self.seed or 0)
        k = min(n, o["sample"])
        idx = np.sort(rng.choice(n, k, replace=False)) if k < n else np.arange(n)
        base = make_projection(o["base"], **o["base_options"])
        name = base.title or o["base"]
        base_pos = base.fit(z[idx], progress=lambda f, m: rep(0.6 * f, f"{name} of {k:,} points: {m}"),
                            cancel=rep._cancel)
        rep(0.6, "training the map network", force=True)
        t0 = time.perf_counter()
        net = MLPInverse(hidden=o["hidden"], steps=o["steps"], max_seconds=o["max_seconds"], seed=self.seed or 0)
        err = net.fit(z[idx], base_pos, lambda f: rep(0.6 + 0.3 * f, "training the map network"), rep.check)
        self.info.update(parametric_error=round(float(err), 4), sample=int(k), base=o["base"],
                         network_seconds=round(time.perf_counter() - t0, 2))
        self._forward = net
        out = np.empty((n, 2), np.float32)
        for start in range(0, n, _APPLY_CHUNK):
            out[start:start + _APPLY_CHUNK] = net(z[start:start + _APPLY_CHUNK])
            rep(0.9 + 0.1 * min(start + _APPLY_CHUNK, n) / n, f"placing {n:,} points")
        self._model = net
        return out

    def transform(self, latents: np.ndarray) -> np.ndarray:
        self._require_fitted()
        if self._forward is None:
            raise RuntimeError("the parametric map has no network (malformed state)")
        z = np.asarray(latents, np.float32).reshape(-1, self.latent_dim or 0)
        out = np.empty((len(z), 2), np.float32)
        for start in range(0, len(z), _APPLY_CHUNK):
            out[start:start + _APPLY_CHUNK] = self._forward(z[start:start + _APPLY_CHUNK])
        return out

    def locate(self, latents: np.ndarray) -> np.ndarray:
        """The network is fast and exact for this map: ``locate`` is ``transform``."""
        return self.transform(latents)

    def _extra_state(self) -> dict[str, np.ndarray]:
        state = super()._extra_state()
        if self._forward is not None:
            state.update({f"forward.{k}": v for k, v in self._forward.state().items()})
        return state

    def _load_extra_state(self, state: Mapping[str, np.ndarray]) -> None:
        super()._load_extra_state(state)
        fwd = {k.split(".", 1)[1]: np.asarray(v) for k, v in state.items() if k.startswith("forward.")}
        if not fwd:
            raise ValueError("parametric map state has no network weights")
        net = MLPInverse(hidden=self.options["hidden"], seed=self.seed or 0)
        net.load_state(fwd, self.info.get("parametric_error"), in_dim=int(self.latent_dim or 0))
        if net.arrays is not None and net.arrays["y_mean"].shape != (2,):
            raise ValueError("parametric map network does not output 2-D positions")
        self._forward = net
        self._model = net
