"""How long a map will take, said before it starts, and when to offer the parametric map instead.

Rough cost models calibrated on the 2-core VM with 70,000 MNIST latents of dimension 20 (README,
``benchmarks/projection_70k.py``); they scale with the number of cores given to the fit. They are meant for
a sentence like "about 6 minutes", not for a deadline: a loaded machine runs slower.

* t-SNE (openTSNE): neighbour search ~ N log N, then every iteration ~ N (FFT-interpolated gradients).
* UMAP: nearest-neighbour descent ~ N^1.1, then the layout's epochs ~ N; plus numba compiling once per process.
* parametric: the exact method on a sample, a small network trained for a bounded time, and one pass of
  that network over all points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["ESTIMATE_FROM", "PARAMETRIC_SUGGEST_S", "UMAP_COMPILE_SECONDS", "describe_estimate",
           "estimate_seconds", "suggest_parametric", "tsne_neighbour_seconds", "umap_neighbour_seconds"]

ESTIMATE_FROM = 200_000  # maps at least this large are announced with their expected duration
PARAMETRIC_SUGGEST_S = 120.0  # an exact map expected to take longer than this: offer the parametric one
UMAP_COMPILE_SECONDS = 50.0  # numba compiling umap-learn's and pynndescent's kernels, once per process

_REF_N = 70_000
_REF_CORES = 2
# Calibration (2 cores, 70k x 20): see the module docstring.
_TSNE_NN_S = 33.0  # annoy index + queries + perplexity calibration (k = 3 x perplexity = 90)
_TSNE_ITER_S = 0.16  # one gradient iteration of all points (FFT)
_UMAP_NN_S = 6.0
_UMAP_LAYOUT_S = 8.0  # 200 epochs (umap-learn's default above 10k points)


def _core_factor(cores: int | None) -> float:
    c = max(1, int(cores or _REF_CORES))
    return _REF_CORES / c


def tsne_neighbour_seconds(n: int, cores: int | None = None) -> float:
    n = max(int(n), 2)
    return _TSNE_NN_S * (n * math.log(n)) / (_REF_N * math.log(_REF_N)) * _core_factor(cores)


def umap_neighbour_seconds(n: int, cores: int | None = None) -> float:
    return _UMAP_NN_S * (max(int(n), 2) / _REF_N) ** 1.1 * _core_factor(cores)


def estimate_seconds(method: str, n: int, options: Mapping[str, Any] | None = None, *, cores: int | None = None,
                     umap_warm: bool = True) -> float:
    """Expected seconds for ``make_projection(method, **options).fit`` of ``n`` points on ``cores`` cores."""
    o = dict(options or {})
    n = max(int(n), 2)
    f = _core_factor(cores)
    if method in ("pca", "dims"):
        return 1e-7 * n
    if method == "tsne":
        iters = int(o.get("n_iter", 250)) + int(o.get("early_exaggeration_iter", 125))
        return tsne_neighbour_seconds(n, cores) + iters * _TSNE_ITER_S * n / _REF_N * f
    if method == "umap":
        epochs = o.get("n_epochs") or (200 if n > 10_000 else 500)
        compile_s = 0.0 if umap_warm else UMAP_COMPILE_SECONDS
        return compile_s + umap_neighbour_seconds(n, cores) + _UMAP_LAYOUT_S * n / _REF_N * epochs / 200 * f
    if method == "parametric":
        sample = min(n, int(o.get("sample", 20_000)))
        base = str(o.get("base", "umap"))
        base_opts = {k[5:]: v for k, v in o.items() if k.startswith("base_")}
        train = float(o.get("max_seconds", 20.0))
        apply = 1.5e-6 * n * f  # one pass of the network over every point, in numpy
        return estimate_seconds(base, sample, base_opts, cores=cores, umap_warm=umap_warm) + train + apply
    raise ValueError(f"no time estimate for projection {method!r}")


def suggest_parametric(method: str, n: int, options: Mapping[str, Any] | None = None, *,
                       cores: int | None = None, umap_warm: bool = True) -> bool:
    """Whether to offer the parametric map instead: the exact ``method`` would take minutes."""
    if method not in ("tsne", "umap"):
        return False
    return estimate_seconds(method, n, options, cores=cores, umap_warm=umap_warm) > PARAMETRIC_SUGGEST_S


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def describe_estimate(method: str, n: int, options: Mapping[str, Any] | None = None, *, cores: int | None = None,
                      umap_warm: bool = True) -> str:
    """A sentence for the user before a large map starts, e.g. "t-SNE of 1,000,000 points: about 33 min on 2
    cores. A parametric map (UMAP on 20,000 of them, then a network for the rest): about 40 s." """
    names = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA", "dims": "latent dimensions", "parametric": "parametric map"}
    c = max(1, int(cores or _REF_CORES))
    text = (f"{names.get(method, method)} of {n:,} points: {_duration(estimate_seconds(method, n, options, cores=c, umap_warm=umap_warm))} "
            f"on {c} core{'s' if c > 1 else ''}.")
    if suggest_parametric(method, n, options, cores=c, umap_warm=umap_warm):
        sample = min(n, 20_000)
        p = estimate_seconds("parametric", n, {"base": method, "sample": sample}, cores=c, umap_warm=umap_warm)
        text += (f" A parametric map ({names[method]} of {sample:,} of them, then a small network places the "
                 f"rest): {_duration(p)}.")
    return text
