"""UMAP maps (umap-learn), with progress from its tqdm epoch bar and cancel between and during its steps."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .base import _NUMBA_LOCK, _check_int, _Reporter
from .estimate import UMAP_COMPILE_SECONDS, umap_neighbour_seconds
from .inverse import _LearnedInverseProjection


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
_WARM = False  # numba has compiled umap-learn's kernels in this process (a fit or warm_up finished)


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
        # The neighbour search (and, in a fresh process, numba compiling) cannot report: the bar creeps at
        # the expected pace until the layout's first epoch reports for real.
        global _WARM
        seconds = umap_neighbour_seconds(len(z)) + (0.0 if _WARM else UMAP_COMPILE_SECONDS)
        rep.creep(0.02, 0.4, seconds, "UMAP: finding neighbours" if _WARM else
                  "UMAP: compiling (first map of this session) and finding neighbours")
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
        _WARM = True
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
