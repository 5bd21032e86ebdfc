"""File › Import your own model: a tutorial-style VAE class and a plain state dict, checked and opened."""

import numpy as np
import torch

from tests.core.test_import import VAE_SRC, _module_from


def test_import_dialog_checks_saves_and_opens(window, tmp_path, digits):
    src = tmp_path / "vae_model.py"
    src.write_text(VAE_SRC)
    torch.manual_seed(0)
    net = _module_from(src, "VAE")(x_dim=64, hidden=32, z_dim=3).eval()
    weights = tmp_path / "vae.pth"
    torch.save(net.state_dict(), weights)

    dialog = window.show_import_dialog()
    dialog.weights.setText(str(weights))
    dialog.class_file.setText(str(src))
    dialog._list_classes()
    assert dialog.class_name.currentData() == "VAE"
    dialog.kwargs.setText('{"x_dim": 64, "hidden": 32, "z_dim": 3}')
    dialog.shape.setText("1,8,8")
    dialog.dataset.setCurrentText("digits")
    dialog.run_import()
    assert dialog.error.text() == "", dialog.error.text()
    assert dialog.check is not None and "Round trip" in dialog.report.toPlainText()
    out = tmp_path / "mine.safetensors"
    dialog.save_and_open(str(out))
    assert out.exists()
    entry = window.current
    assert entry.name == "mine.safetensors" and entry.latents is not None  # opened, data encoded, map drawn
    z = np.random.default_rng(0).standard_normal(3).astype(np.float32)
    with torch.inference_mode():
        expect = net.decode(torch.from_numpy(z)[None]).reshape(1, 8, 8)
    np.testing.assert_array_equal(entry.decode_uint8(z)[..., 0],
                                  (expect[0] * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy())


def test_import_dialog_reports_bad_json(window):
    dialog = window.show_import_dialog()
    dialog.weights.setText("x.pth")
    dialog.kwargs.setText("{not json")
    dialog.run_import()
    assert "JSON" in dialog.error.text()
