"""Mouse move -> new pixels on screen, while dragging the map cursor (real window, offscreen Qt).

For each mouse-move event sent to the map: time until the decoded image of the
new cursor position has been set and the image panel repainted. Runs the real
asynchronous decode worker ("latest request wins"). Moves are spaced 12 ms apart
(pyqtgraph ignores moves above 100 Hz). Models: the 28x28 MLP VAE
demo checkpoint, a 64x64 conv VAE on the faces (map drag) and a 64x64 DCGAN
generator (no encoder, so its cursor is driven by a latent slider).

Prints a final JSON line with p50/p95 in milliseconds for each model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QEventLoop, QPoint, QTimer

from _gui_bench import LEFT, MOVE, NONE, PRESS, RELEASE, app, make_window, percentile_ms, send_mouse, \
    viewport_point, wait_until

ROOT = Path(__file__).resolve().parents[1]
# pyqtgraph drops mouse moves closer than 1/mouseRateLimit (100 Hz); space them so that each counts.
MOVE_GAP_S = 0.012


def checkpoint_64(folder: Path, family: str, **config) -> Path:
    """A 64x64 RGB model on the procedural faces (weights untrained: decode cost is what is measured)."""
    from explorer.core import save_model
    from explorer.core.models import build_model

    torch.manual_seed(0)
    model = build_model(family, image_shape=(3, 64, 64), **config)
    return save_model(model.eval(), folder / f"{family}64.safetensors", dataset="faces")


class PixelWaiter:
    """Runs the real Qt event loop (idle in C++, so worker threads run freely) until the decoded
    image has been set, then paints it. Works whether the decode is served inline or on the worker."""

    def __init__(self, win) -> None:
        self.win = win
        self.done = False
        self.loop = QEventLoop()
        win.decoded.connect(self._on_decoded)

    def _on_decoded(self, _image) -> None:
        self.done = True
        self.loop.quit()

    def arm(self) -> None:
        self.done = False

    def wait(self) -> None:
        if not self.done:
            QTimer.singleShot(5000, self.loop.quit)  # a stuck decode must not hang the benchmark
            self.loop.exec()
        self.win.cursor_panel.image.repaint()


def measure(path: Path, moves: int) -> dict:
    win = make_window()
    win.open_model(str(path))
    wait_until(lambda: win.current is not None and win.cursor_panel.last_array is not None)
    wait_until(lambda: win.current.projections or win.current.latents is None and win.current.status == "")
    for _ in range(20):  # let layouts settle before mapping view coordinates to pixels
        app().processEvents()
    entry = win.current
    waiter = PixelWaiter(win)
    times: list[float] = []
    if entry.projections:
        # Drag the map cursor along a circle through the data.
        pos = win.map.positions
        centre, radius = pos.mean(0), pos.std(0).mean()
        x0, y0 = win.map.cursor_pos()
        vp = win.map.plot.viewport()
        start = viewport_point(win, x0, y0)
        send_mouse(vp, PRESS, start, LEFT, LEFT)
        for i in range(1, 4):  # get past the drag threshold
            time.sleep(MOVE_GAP_S)
            send_mouse(vp, MOVE, start + QPoint(4 * i, 4 * i), NONE, LEFT)
            app().processEvents()
        for i in range(moves):
            angle = 2 * np.pi * i / 60
            target = viewport_point(win, centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle))
            time.sleep(MOVE_GAP_S)
            waiter.arm()
            t0 = time.perf_counter()
            send_mouse(vp, MOVE, target, NONE, LEFT)
            waiter.wait()
            times.append(time.perf_counter() - t0)
        send_mouse(vp, RELEASE, target, LEFT, NONE)
        mode = "map drag"
    else:
        # No encoder (GAN): the sliders drive the cursor.
        slider = win.sliders.rows[0][1]
        for i in range(moves):
            time.sleep(MOVE_GAP_S)
            waiter.arm()
            t0 = time.perf_counter()
            slider.setValue(int(250 * np.sin(i / 7.0)) + (i % 2))
            waiter.wait()
            times.append(time.perf_counter() - t0)
        mode = "slider drag"
    shape = list(entry.model.image_shape)
    win.shutdown()
    win.close()
    return {"mode": mode, "image_shape": shape, "p50_ms": percentile_ms(times, 50), "p95_ms": percentile_ms(times, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moves", type=int, default=400)
    args = parser.parse_args()
    app()
    tmp = Path(tempfile.mkdtemp())
    figures = {
        "mlp_vae_28": measure(ROOT / "resources" / "demo" / "mnist-vae.safetensors", args.moves),
        "conv_vae_64": measure(checkpoint_64(tmp, "vae", arch="conv", latent_dim=32), args.moves),
        "dcgan_64": measure(checkpoint_64(tmp, "gan", latent_dim=100), args.moves),
    }
    print(json.dumps(figures), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
