"""Live decoding while the training panel trains on the CPU, in the same window (issue 5's figure).

Starts a training run from the window's training panel (an MLP VAE on MNIST, as many epochs as it takes),
then drags the map cursor of the demo VAE exactly as ``drag_latency.py`` does and reports the time from each
mouse move to new pixels (target: p95 <= 33 ms), together with the trainer's images/s meanwhile.
Prints a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint

from _gui_bench import LEFT, MOVE, NONE, PRESS, RELEASE, app, make_window, percentile_ms, send_mouse, \
    viewport_point, wait_until
from drag_latency import MOVE_GAP_S, PixelWaiter

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=400)
    args = parser.parse_args()
    app()
    from explorer.gui.training import TrainingSpec

    win = make_window()
    win.training.confirm_close = lambda text: True
    win.open_model(str(ROOT / "resources" / "demo" / "mnist-vae.safetensors"))
    wait_until(lambda: win.current is not None and "pca" in win.current.projections)
    entry = win.current
    tmp = Path(tempfile.mkdtemp())
    spec = TrainingSpec(kind="vae", dataset="mnist", latent_dim=20, hidden=(400,), epochs=50, batch_size=128,
                        lr=1e-3, seed=0, device="cpu", checkpoint_path=str(tmp / "run.safetensors"))
    progress: list[float] = []
    win.training.trainingProgress.connect(lambda info: progress.append(float(info.get("images_per_second", 0))))
    assert win.training.start(spec)
    wait_until(lambda: win.training.state == "running" and len(progress) > 3)
    win.model_list.setCurrentRow(win.entries.index(entry))  # keep exploring the demo model
    for _ in range(20):
        app().processEvents()
    waiter = PixelWaiter(win)
    pos = win.map.positions
    centre, radius = pos.mean(0), pos.std(0).mean()
    vp = win.map.plot.viewport()
    x0, y0 = win.map.cursor_pos()
    start = viewport_point(win, x0, y0)
    send_mouse(vp, PRESS, start, LEFT, LEFT)
    for i in range(1, 4):
        time.sleep(MOVE_GAP_S)
        send_mouse(vp, MOVE, start + QPoint(4 * i, 4 * i), NONE, LEFT)
        app().processEvents()
    times = []
    n_before = len(progress)
    target = start
    for i in range(args.moves):
        angle = 2 * np.pi * i / 60
        target = viewport_point(win, centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle))
        time.sleep(MOVE_GAP_S)
        app().processEvents()  # the panel's progress and curves are served between moves, as in real use
        waiter.arm()
        t0 = time.perf_counter()
        send_mouse(vp, MOVE, target, NONE, LEFT)
        waiter.wait()
        times.append(time.perf_counter() - t0)
    send_mouse(vp, RELEASE, target, LEFT, NONE)
    during = progress[n_before:] or progress
    still_training = win.training.state == "running"
    win.training.shutdown()
    win.shutdown()
    print(json.dumps({
        "decode_p50_ms": percentile_ms(times, 50),
        "decode_p95_ms": percentile_ms(times, 95),
        "training_images_per_second": round(float(np.median(during)), 1),
        "training_ran_throughout": still_training,
    }), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
