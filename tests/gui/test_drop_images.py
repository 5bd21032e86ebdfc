"""Dropping your own images onto the map: resized, encoded, placed, named; bad files reported."""

import numpy as np
import torch
from PIL import Image
from PySide6.QtWidgets import QMessageBox


def test_dropped_images_are_encoded_and_placed(window, digits_vae, digits, tmp_path):
    window.open_model(str(digits_vae))
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in (3, 4, 5):
        # Saved 4x larger than the model's input: the drop resizes them back.
        Image.fromarray(digits.images[i, 0]).resize((32, 32), Image.Resampling.NEAREST).save(folder / f"d{i}.png")
    (folder / "notes.png").write_bytes(b"not an image")
    window.add_images([str(folder)])
    entry = window.current
    images, z, pos, names = entry.dropped
    assert names == ["img_d3", "img_d4", "img_d5"]  # the broken file was skipped
    assert "skipped" in window.statusBar().currentMessage()
    with torch.inference_mode():
        expect = entry.model.encode(torch.from_numpy(images).float() / 255).numpy()
    np.testing.assert_allclose(z, expect, atol=1e-5)
    # Resizing 8 -> 32 -> 8 px brings the digits back close to the originals, so their codes are close too.
    assert np.abs(images.astype(int) - digits.images[3:6].astype(int)).mean() < 20
    np.testing.assert_allclose(pos, entry.projections["pca"].transform(z), atol=1e-5)
    np.testing.assert_allclose(window.map.extra_scatter.getData()[0], pos[:, 0], atol=1e-5)
    np.testing.assert_allclose(entry.cursor_latent, z[0], atol=1e-6)
    for name, vec in zip(names, z):
        np.testing.assert_allclose(entry.vectors[name], vec)
    # Usable in expressions straight away.
    window.arithmetic.expression_edit.setText("img_d4 - img_d3")
    np.testing.assert_allclose(window.arithmetic.evaluate_expression(), z[1] - z[0], atol=1e-5)


def test_unreadable_images_show_an_error(window, digits_vae, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    window.open_model(str(digits_vae))
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG garbage")
    window.add_images([str(bad)])
    assert shown and "x.png" in shown[0]
    assert window.current.dropped is None and window.isVisible()
