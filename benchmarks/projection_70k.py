"""Latent maps of all 70,000 MNIST digits in a 20-D latent space: how long each step takes.

Latents come from a 20-component PCA model fitted on the images (~1 s; the projection code does not care
which model made them). Measured:

* ``pca_ms``: PCA projection fit (covariance eigendecomposition + positions + KD-tree), median of 7 runs;
  ``pca_transform_ms`` places all 70k latents again, ``inverse_us`` is one cursor position -> latent;
* ``pick_ms``: ``nearest()`` for one cursor position (the GUI's hover / click), median over 1000 queries;
  ``trust_grid_ms``: the 96x96 trust overlay;
* ``umap_s_warm``: UMAP of 70k in the projection child process (as the GUI runs it) after the child has
  compiled numba's kernels (``umap_warmup_s``); ``umap_with_inverse_s`` adds the learned inverse and the
  transfers; ``umap_max_stall_ms``: the longest this process's main thread was kept from running meanwhile,
  i.e. how long the GUI would freeze;
* ``inverse_fit_s`` / ``inverse_rel_error``: the learned inverse on the UMAP map (relative RMS error on
  held-out points: 0 perfect, 1 = no better than the mean latent; PCA's exact inverse scores ``pca_inverse_error``
  by the same measure), and its stall when fitted on a thread here;
* ``--tsne``: openTSNE as well, in the child (~3 min on 2 cores).

The machine may be shared with other jobs: the load average before and after is printed with the figures.
Prints a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.data import load_dataset  # noqa: E402
from explorer.core.latent import ProjectionCache, cache_key, encode_dataset, make_projection  # noqa: E402
from explorer.core.latent.isolated import ProjectionProcess  # noqa: E402
from explorer.core.models import build_model  # noqa: E402


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def watch_stalls(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run fn on a worker thread while this thread sleeps 2 ms at a time; (result, seconds, longest gap)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["out"] = fn()
        except BaseException as exc:  # re-raised below
            box["err"] = exc
        finally:
            done.set()

    t0 = time.perf_counter()
    worker = threading.Thread(target=run)
    worker.start()
    longest, last = 0.0, time.perf_counter()
    while not done.is_set():
        time.sleep(0.002)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    if "err" in box:
        raise box["err"]
    return box.get("out"), time.perf_counter() - t0, longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tsne", action="store_true", help="also time openTSNE (slow)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images (quick checks)")
    args = parser.parse_args()
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_avg_start": round(os.getloadavg()[0], 2)}

    data = load_dataset("mnist")
    images = data.images if args.limit is None else data.images[: args.limit]
    torch.manual_seed(0)
    model = build_model("pca", latent_dim=20, image_shape=(1, 28, 28))
    t0 = time.perf_counter()
    model.fit(torch.from_numpy(images).float().div_(255.0))
    out["pca_model_fit_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    z = encode_dataset(model, images)
    out["encode_s"] = round(time.perf_counter() - t0, 3)
    out["n"], out["latent_dim"] = z.shape
    print(f"latents {z.shape} (model fit {out['pca_model_fit_s']} s, encode {out['encode_s']} s)", flush=True)

    # ---- PCA map (the default): fit, transform, one-point inverse
    times = []
    for _ in range(7):
        proj = make_projection("pca")
        t0 = time.perf_counter()
        pos = proj.fit(z)
        times.append(time.perf_counter() - t0)
    out["pca_ms"] = ms(float(np.median(times)))
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        proj.transform(z)
        times.append(time.perf_counter() - t0)
    out["pca_transform_ms"] = ms(float(np.median(times)))
    out["pca_inverse_error"] = round(float(proj.inverse_error), 4)
    rng = np.random.default_rng(0)
    queries = rng.uniform(pos.min(0), pos.max(0), size=(1000, 2))
    times = []
    for q in queries:
        t0 = time.perf_counter()
        proj.inverse(q[None])
        times.append(time.perf_counter() - t0)
    out["inverse_us"] = round(float(np.median(times)) * 1e6, 1)

    # ---- picking: one query at a time, as the GUI does on hover
    times = []
    for q in queries:
        t0 = time.perf_counter()
        proj.nearest(q[None], k=1)
        times.append(time.perf_counter() - t0)
    out["pick_ms"] = ms(float(np.median(times)))
    bounds = (*pos.min(0), *pos.max(0))
    t0 = time.perf_counter()
    proj.trust_grid(bounds, 96)
    out["trust_grid_ms"] = ms(time.perf_counter() - t0)
    print(f"PCA {out['pca_ms']} ms, pick {out['pick_ms']} ms", flush=True)

    # ---- UMAP in the projection process (as the GUI runs it): warm-up, then the full set
    proc = ProjectionProcess()
    _, seconds, _ = watch_stalls(proc.warm_up)
    out["umap_warmup_s"] = round(seconds, 2)
    print(f"UMAP warm-up in the child {out['umap_warmup_s']} s", flush=True)
    umap_proj, seconds, stall = watch_stalls(lambda: proc.fit("umap", z))
    out["umap_s_warm"] = round(float(umap_proj.info["fit_seconds"]), 2)
    out["umap_with_inverse_s"] = round(seconds, 2)
    out["umap_max_stall_ms"] = ms(stall)
    out["inverse_rel_error"] = round(float(umap_proj.inverse_error), 4)
    print(f"UMAP {out['umap_s_warm']} s, with the learned inverse and transfers {out['umap_with_inverse_s']} s "
          f"(longest main-thread stall {out['umap_max_stall_ms']} ms)", flush=True)
    times = []
    for q in queries[:200]:
        t0 = time.perf_counter()
        umap_proj.inverse(q[None])
        times.append(time.perf_counter() - t0)
    out["learned_inverse_us"] = round(float(np.median(times)) * 1e6, 1)

    # ---- the learned inverse alone, on a thread of this process (torch releases the GIL)
    local = make_projection("umap")
    local._set_embedding(umap_proj.embedding)
    local.latents, local.latent_dim = z, z.shape[1]
    _, seconds, stall = watch_stalls(local.fit_inverse)
    out["inverse_fit_s"] = round(seconds, 2)
    out["inverse_fit_max_stall_ms"] = ms(stall)

    # ---- cache round trip of the UMAP map (embedding + latents + inverse weights)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ProjectionCache(tmp)
        key = cache_key("bench-pca20", "mnist", "umap", umap_proj.key_options)
        t0 = time.perf_counter()
        path = cache.put(key, umap_proj)
        out["cache_put_ms"] = ms(time.perf_counter() - t0)
        out["cache_mb"] = round(path.stat().st_size / 2**20, 2)
        t0 = time.perf_counter()
        assert cache.get(key) is not None
        out["cache_get_ms"] = ms(time.perf_counter() - t0)

    if args.tsne:
        tsne_proj, seconds, stall = watch_stalls(lambda: proc.fit("tsne", z))
        out["tsne_s"] = round(float(tsne_proj.info["fit_seconds"]), 2)
        out["tsne_with_inverse_s"] = round(seconds, 2)
        out["tsne_max_stall_ms"] = ms(stall)
        out["tsne_inverse_rel_error"] = round(float(tsne_proj.inverse_error), 4)
        print(f"t-SNE {out['tsne_s']} s (longest main-thread stall {out['tsne_max_stall_ms']} ms)", flush=True)
    proc.close()

    out["load_avg_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
