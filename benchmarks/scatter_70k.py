"""The latent map with all 70,000 MNIST points (demo VAE, PCA map), in a real offscreen window.

Figures (final JSON line):
* cursor_repaint_p95_ms - move the cursor and let Qt repaint what changed (per frame);
* pan_fps - translate the view by a few pixels and repaint, frames per second;
* pick_p95_ms - nearest datum under the mouse (KD-tree), per query;
* recolour_ms - recolour every point (e.g. by an attribute) and repaint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from _gui_bench import app, make_window, percentile_ms, wait_until

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    app()
    win = make_window()
    win.open_model(str(ROOT / "resources" / "demo" / "mnist-vae.safetensors"))
    wait_until(lambda: win.current is not None and "pca" in win.current.projections)
    app().processEvents()
    vp = win.map.plot.viewport()
    pos = win.map.positions
    n = len(pos)
    rng = np.random.default_rng(0)
    vp.repaint()

    for _ in range(5):
        app().processEvents()
    cursor = []
    for _ in range(300):
        x, y = pos[rng.integers(n)]
        t0 = time.perf_counter()
        win.map.set_cursor(x, y)
        app().processEvents()  # Qt repaints the dirty region (old and new cursor) from here
        cursor.append(time.perf_counter() - t0)

    frames = 120
    t0 = time.perf_counter()
    for i in range(frames):
        px = win.map.view.viewPixelSize()
        win.map.view.translateBy(x=(3 if (i // 30) % 2 == 0 else -3) * px[0])
        vp.repaint()
    pan_fps = frames / (time.perf_counter() - t0)

    picks = []
    for _ in range(2000):
        q = pos[rng.integers(n)][None] + rng.normal(0, 0.01, (1, 2)).astype(np.float32)
        t0 = time.perf_counter()
        win._nearest(q)
        picks.append(time.perf_counter() - t0)

    labels = win.current.data.labels
    recolour = []
    for shift in range(1, 4):
        t0 = time.perf_counter()
        win.map.set_labels((labels + shift) % 10, [str(i) for i in range(10)])
        vp.repaint()
        recolour.append(time.perf_counter() - t0)

    print(json.dumps({
        "points": n,
        "cursor_repaint_p95_ms": percentile_ms(cursor, 95),
        "pan_fps": round(pan_fps, 1),
        "pick_p95_ms": percentile_ms(picks, 95),
        "recolour_ms": round(float(np.median(recolour)) * 1000, 1),
    }), flush=True)
    win.shutdown()


if __name__ == "__main__":
    main()
