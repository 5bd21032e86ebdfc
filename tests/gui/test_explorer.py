"""The explorer window with a real (small) model: map, drag, hover, pick, sliders, samples."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication

from explorer.core import save_model
from explorer.core.models import build_model

from .conftest import _send, _viewport_point, drag


def test_open_draws_map_and_drag_decodes(window, digits_vae, digits, qtbot):
    window.open_model(str(digits_vae))
    entry = window.current
    assert entry is not None and entry.latents is not None
    assert window.map.positions.shape == (len(digits), 2)
    before = window.cursor_panel.last_array.copy()

    x0, y0 = window.map.cursor_pos()
    pos = window.map.positions
    far = pos[np.argmax(np.linalg.norm(pos - [x0, y0], axis=1))]
    viewport = window.map.plot.viewport()
    drag(viewport, _viewport_point(window, x0, y0), _viewport_point(window, *far))

    x1, y1 = window.map.cursor_pos()
    assert np.hypot(x1 - x0, y1 - y0) > 0.5 * np.hypot(*(far - [x0, y0]))
    after = window.cursor_panel.last_array
    assert not np.array_equal(before, after)
    proj = entry.projections[window.projection_key()]
    z = proj.inverse(np.array([[x1, y1]], np.float32))[0]
    assert np.array_equal(after, entry.decode_uint8(z))
    assert np.allclose(window.sliders.values, z, atol=1e-6)


def test_hover_and_pick_find_the_right_datum(window, digits_vae, qtbot):
    window.open_model(str(digits_vae))
    pos = window.map.positions
    idx = 123
    hovered = []
    window.map.pointHovered.connect(hovered.append)
    vp = window.map.plot.viewport()
    point = _viewport_point(window, *pos[idx])
    _send(vp, QEvent.Type.MouseMove, point, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    QApplication.processEvents()
    assert hovered, "no hover signal"
    got = hovered[-1]
    # Several points may share a pixel: the picked one must lie within a pixel or two of the target.
    pixel = float(np.hypot(*window.map.view.viewPixelSize()))
    assert got == idx or np.linalg.norm(pos[got] - pos[idx]) < 2 * pixel
    window.select_datum(idx)
    assert window.original_panel.last_array is not None and window.recon_panel.last_array is not None
    np.testing.assert_allclose(window.sliders.values, window.current.latents[idx], atol=1e-6)


def test_sliders_move_cursor_and_decode(window, digits_vae):
    window.open_model(str(digits_vae))
    before = window.cursor_panel.last_array.copy()
    z = np.array([2.0, -1.5, 0.5, 1.0], np.float32)
    window.sliders.set_values(z)
    window.sliders.rows[0][1].setValue(250)  # move the first slider by hand
    assert window.sliders.values[0] == pytest.approx(2.5)
    assert not np.array_equal(before, window.cursor_panel.last_array)
    x, y = window.map.cursor_pos()
    proj = window.current.projections["pca"]
    np.testing.assert_allclose(proj.transform(window.sliders.values[None])[0], [x, y], atol=1e-4)


def test_projection_switch_to_raw_dims(window, digits_vae):
    window.open_model(str(digits_vae))
    window.projection_box.setCurrentIndex(window.projection_box.findData("dims"))
    window.dim_x.setValue(2)
    window.dim_y.setValue(3)
    entry = window.current
    np.testing.assert_allclose(window.map.positions, entry.latents[:, [2, 3]], atol=1e-6)


def test_prior_samples_reroll(window, digits_vae):
    window.open_model(str(digits_vae))
    first = window.samples_panel.last_array.copy()
    window.reroll_samples()
    assert not np.array_equal(first, window.samples_panel.last_array)


def test_gan_without_encoder_still_explorable(window, tmp_path):
    gan = build_model("gan", latent_dim=8, image_shape=(1, 8, 8), base_channels=8)
    path = save_model(gan, tmp_path / "gan.safetensors", dataset="digits")
    window.open_model(str(path))
    assert window.current.latents is None
    assert "no encoder" in window.map_info.text()
    before = window.cursor_panel.last_array.copy()
    window.sliders.rows[0][1].setValue(200)
    assert not np.array_equal(before, window.cursor_panel.last_array)


def test_tsne_runs_in_a_child_process_and_is_cached(window, digits_vae, qtbot, monkeypatch):
    monkeypatch.setattr(type(window), "projection_options",
                        {"tsne": {"n_iter": 100, "early_exaggeration_iter": 50, "seed": 0, "inverse_steps": 200}})
    window.open_model(str(digits_vae))
    window.projection_box.setCurrentIndex(window.projection_box.findData("tsne"))
    entry = window.current
    proj = entry.projections["tsne"]
    assert window.projector.alive  # fitted in the child, not on a thread of this process
    assert not proj.exact_inverse and proj.inverse_ready
    np.testing.assert_allclose(window.map.positions, proj.embedding)
    # Dragged, the cursor decodes the learned inverse of its map position.
    x0, y0 = window.map.cursor_pos()
    target = proj.embedding[np.argmax(np.linalg.norm(proj.embedding - [x0, y0], axis=1))]
    drag(window.map.plot.viewport(), _viewport_point(window, x0, y0), _viewport_point(window, *target))
    x, y = window.map.cursor_pos()
    assert np.hypot(x - x0, y - y0) > 0
    z = proj.inverse(np.array([[x, y]], np.float32))[0]
    np.testing.assert_array_equal(window.cursor_panel.last_array, entry.decode_uint8(z))
    # Reopening the same checkpoint finds the map in the disk cache, without the child.
    window.projector.close()
    window.close_current()  # an open file is not opened twice: close it first
    window.open_model(str(digits_vae))
    assert window.current is not entry and "tsne" in window.current.projections
    np.testing.assert_allclose(window.current.projections["tsne"].embedding, proj.embedding)
    assert not window.projector.alive


def test_cancelling_a_projection_keeps_the_previous_map(window, digits_vae, qtbot):
    window.open_model(str(digits_vae))
    before = window.map.positions.copy()
    window.tasks._sync = False  # this test needs the fit running in the background to cancel it
    window.projection_box.setCurrentIndex(window.projection_box.findData("umap"))
    qtbot.waitUntil(lambda: window.cancel_button.isVisible(), timeout=2000)
    qtbot.wait(300)
    window.cancel_button.click()
    qtbot.waitUntil(lambda: window.projection_task is None, timeout=10000)
    assert "umap" not in window.current.projections
    np.testing.assert_array_equal(window.map.positions, before)
    assert not window.projector.alive  # killed: the only way to stop numba mid-call
