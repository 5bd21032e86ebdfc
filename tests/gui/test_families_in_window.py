"""PixelCNN and DC-IGN in the window: no map for a model without latent space, named units under their factors."""

import numpy as np
import torch

from explorer.core import save_model
from explorer.core.models import build_model


def test_pixelcnn_has_samples_but_no_map_or_sliders(window, tmp_path, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    torch.manual_seed(0)
    model = build_model("pixelcnn", image_shape=(1, 8, 8), channels=8, n_layers=1)
    path = save_model(model, tmp_path / "pcnn.safetensors", dataset="digits")
    window.open_model(str(path))
    assert window.current.model.family == "pixelcnn"
    assert "no latent space" in window.map_info.text()
    assert not any(w.isVisibleTo(window) for w in window.sliders.rows[0])
    assert window.current.cursor_latent is None  # nothing decodes per mouse move
    window.reroll_samples(seed=3)
    grid = window.samples_panel.last_array
    assert grid is not None and grid.shape[0] > 8 * 8  # 64 samples drawn pixel by pixel
    again = grid.copy()
    window.reroll_samples(seed=3)
    np.testing.assert_array_equal(window.samples_panel.last_array, again)  # same seed, same samples
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    (tmp_path / "x.png").write_bytes(b"")
    window.add_images([str(tmp_path / "x.png")])
    assert shown and "no latent space" in shown[0]


def test_dcign_units_are_named_in_the_sliders(window, tmp_path):
    model = build_model("dcign", latent_dim=6, image_shape=(3, 16, 16), base_channels=4,
                        factor_units={"smiling": 1, "glasses": 4})
    path = save_model(model, tmp_path / "dcign.safetensors")
    window.open_model(str(path))
    names = [window.sliders.rows[i][0].text() for i in range(6)]
    assert names[1] == "z1 smiling" and names[4] == "z4 glasses" and names[0] == "z0"
