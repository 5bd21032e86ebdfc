"""Training from the window: the model appears in the list, its map refreshes per epoch from snapshots,
the history slider replays past epochs, and closing mid-training asks, stops and saves."""

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from explorer.gui.training import TrainingSpec


@pytest.fixture
def live_window(qtbot, tmp_path):
    from explorer.gui.main_window import MainWindow

    # Not synchronous: training runs on its own QThread, as in the app.
    win = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    win.training.checkpoint_dir = tmp_path / "ckpt"
    win.training.confirm_close = lambda text: True  # a modal question would hang an offscreen test
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


def test_trained_model_appears_and_its_map_follows_the_epochs(live_window, qtbot, tmp_path):
    win = live_window
    spec = TrainingSpec(kind="vae", dataset="digits", latent_dim=4, hidden=(32,), epochs=3, batch_size=64,
                        lr=3e-3, seed=0, device="cpu", checkpoint_path=str(tmp_path / "run.safetensors"))
    assert win.training.start(spec)
    qtbot.waitUntil(lambda: not win.training.is_running, timeout=120_000)
    qtbot.waitUntil(lambda: win.current is not None and win.current.run_id and win.current.latents is not None
                    and "pca" in win.current.projections, timeout=60_000)
    entry = win.current
    assert len(win.entries) == 1 and len(entry.history) >= 3
    assert "final" in win.model_list.item(0).text()
    assert win.map.positions.shape == (len(entry.data), 2)
    # The cursor's image is decoded on the decode worker thread: it arrives shortly after the map.
    qtbot.waitUntil(lambda: win.cursor_panel.last_array is not None, timeout=10_000)
    final_latents = entry.latents.copy()
    # Replay epoch 1: the weights (and so the codes) differ from the final ones.
    assert win.history_row.isVisible()
    win.history_slider.setValue(0)
    qtbot.waitUntil(lambda: entry.latents is not None and "pca" in entry.projections, timeout=60_000)
    assert entry.history[0].epoch < entry.history[-1].epoch
    assert not np.allclose(entry.latents, final_latents)
    assert (tmp_path / "run.safetensors").exists()


def test_closing_mid_training_asks_then_stops_and_saves(live_window, qtbot, tmp_path):
    win = live_window
    asked = []
    win.training.confirm_close = lambda text: asked.append(text) or True
    spec = TrainingSpec(kind="vae", dataset="digits", latent_dim=4, hidden=(32,), epochs=500, batch_size=16,
                        lr=1e-3, seed=0, device="cpu", checkpoint_path=str(tmp_path / "long.safetensors"))
    assert win.training.start(spec)
    qtbot.waitUntil(lambda: win.training.state == "running", timeout=60_000)
    win.close()
    assert asked and "Stop training" in asked[0]
    assert not win.training.is_running
    assert (tmp_path / "long.safetensors").exists()
