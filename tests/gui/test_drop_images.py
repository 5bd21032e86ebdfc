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
    d = entry.dropped
    images, z, pos, names = d.images, d.latents, d.positions["pca"], d.names
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


def test_images_dropped_on_a_gan_are_found_by_inversion(window, tmp_path, monkeypatch):
    monkeypatch.setattr("explorer.gui.controllers.dropped.INVERT_OPTIONS", {"steps": 150, "restarts": 2})
    from explorer.core import save_model
    from explorer.core.models import build_model

    torch.manual_seed(0)
    gan = build_model("gan", latent_dim=8, image_shape=(1, 16, 16), base_channels=8).eval()
    with torch.no_grad():  # an untrained generator draws flat grey; sharpen it so images differ
        for conv in [m for m in gan.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1:]:
            conv.weight.mul_(2000)
    path = save_model(gan, tmp_path / "gan.safetensors", dataset="digits")
    window.open_model(str(path))
    gan = window.current.model
    with torch.inference_mode():
        made = gan.decode(torch.randn(2, 8, generator=torch.Generator().manual_seed(3)))
    for i, img in enumerate((made[:, 0].numpy() * 255).round().astype(np.uint8)):
        Image.fromarray(img).save(tmp_path / f"g{i}.png")
    window.add_images([str(tmp_path / "g0.png"), str(tmp_path / "g1.png")])
    d = window.current.dropped
    images, z, names = d.images, d.latents, d.names
    assert names == ["img_g0", "img_g1"] and not d.positions  # no map for a GAN, but named vectors
    with torch.inference_mode():
        again = gan.decode(torch.from_numpy(z)).numpy()
        chance = gan.decode(torch.randn(64, 8, generator=torch.Generator().manual_seed(9))).numpy()
    target = images.astype(np.float32) / 255
    baseline = np.mean([np.mean((c - target) ** 2) for c in chance])  # a random z's error
    assert target.std() > 0.05
    assert np.mean((again - target) ** 2) < 0.2 * baseline
