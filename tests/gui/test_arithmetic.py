"""Arithmetic and paths in the window: vectors, lasso groups, expressions, analogies, interpolation, export."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtWidgets import QApplication

from explorer.gui.views.map_view import points_in_polygon

from .conftest import _send, _viewport_point


@pytest.fixture
def opened(window, digits_vae):
    window.open_model(str(digits_vae))
    assert window.current.latents is not None
    return window


def test_points_in_polygon_matches_a_square():
    pts = np.array([[0.5, 0.5], [1.5, 0.5], [0.1, 0.9], [-0.1, 0.5], [0.5, 1.01]])
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert sorted(points_in_polygon(pts, square)) == [0, 2]
    # A concave outline (an L): the notch is outside.
    ell = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], float)
    assert list(points_in_polygon(np.array([[1.5, 1.5], [0.5, 1.5], [1.5, 0.5]]), ell)) == [1, 2]


def test_label_vectors_and_strength_slider_move_the_cursor(opened):
    win, panel = opened, opened.arithmetic
    panel.compute_vectors()
    names = [panel.vector_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(panel.vector_list.count())]
    assert len(names) == 10 and all(n.startswith("label_") for n in names)  # digits: labels only
    win.select_datum(3)
    base = win.current.cursor_latent.copy()
    before = win.cursor_panel.last_array.copy()
    panel.vector_list.item(7).setSelected(True)
    assert win.map.arrow_items, "the selected vector is drawn as an arrow"
    panel.strength_slider.setValue(2 * 60)  # strength +2
    v = win.current.vectors[names[7]]
    np.testing.assert_allclose(win.current.cursor_latent, base + 2 * v, atol=1e-5)
    assert not np.array_equal(before, win.cursor_panel.last_array)
    np.testing.assert_array_equal(win.cursor_panel.last_array, win.current.decode_uint8(base + 2 * v))
    # The strength is relative to where the cursor was: going back to 0 returns there.
    panel.strength_slider.setValue(0)
    np.testing.assert_allclose(win.current.cursor_latent, base, atol=1e-6)


def test_lasso_two_groups_and_save_their_difference(opened, qtbot):
    win, panel = opened, opened.arithmetic
    pos = win.map.positions
    vp = win.map.plot.viewport()
    left = Qt.MouseButton.LeftButton
    groups = {}
    for group, centre in (("A", np.percentile(pos, 25, axis=0)), ("B", np.percentile(pos, 75, axis=0))):
        panel._start_lasso(group)
        r = 0.25 * pos.std(0)
        outline = [centre + r * np.array([np.cos(a), np.sin(a)]) for a in np.linspace(0, 2 * np.pi, 24)]
        _send(vp, QEvent.Type.MouseButtonPress, _viewport_point(win, *outline[0]), left, left)
        for p in outline[1:]:
            _send(vp, QEvent.Type.MouseMove, _viewport_point(win, *p), Qt.MouseButton.NoButton, left)
        _send(vp, QEvent.Type.MouseButtonRelease, _viewport_point(win, *outline[-1]), left, Qt.MouseButton.NoButton)
        QApplication.processEvents()
        groups[group] = panel._groups[group]
        assert groups[group] is not None and len(groups[group]) > 5
        # Every chosen point lies near the drawn circle's inside (pixel rounding aside).
        d = np.linalg.norm((pos[groups[group]] - centre) / r, axis=1)
        assert d.max() < 1.2
    panel.group_name.setText("upper right")
    name = panel.save_group_vector()
    assert name == "upper_right"
    z = win.current.latents
    np.testing.assert_allclose(win.current.vectors[name], z[groups["B"]].mean(0) - z[groups["A"]].mean(0),
                               atol=1e-5)


def test_expression_box_decodes_and_rejects_code(opened):
    win, panel = opened, opened.arithmetic
    z = win.current.latents
    panel.expression_edit.setText("p5 - 0.5*p3 + (p7 - p7)")
    out = panel.evaluate_expression()
    np.testing.assert_allclose(out, z[5] - 0.5 * z[3], atol=1e-5)
    np.testing.assert_allclose(win.current.cursor_latent, out)
    assert panel.expression_error.text() == ""
    for bad, words in (("__import__('os')", ""), ("p5.real", ""), ("p5 + smiling", "smiling"),
                       ("p999999", "999999")):
        panel.expression_edit.setText(bad)
        assert panel.evaluate_expression() is None
        assert panel.expression_error.text() and words in panel.expression_error.text()
        np.testing.assert_allclose(win.current.cursor_latent, out)  # the cursor did not move


def test_analogy_layout(opened):
    win, panel = opened, opened.arithmetic
    z = win.current.latents
    for slot, idx in zip("ABC", (1, 2, 3)):
        win.select_datum(idx)
        panel.set_analogy_slot(slot)
    d = z[3] + (z[2] - z[1])
    np.testing.assert_allclose(panel._analogy["D"], d, atol=1e-5)
    np.testing.assert_array_equal(panel.analogy_panels[3].last_array, win.current.decode_uint8(d))
    assert panel.analogy_panels[0].caption.text() == "p1"


def test_interpolation_path_strip_play_and_export(opened, tmp_path, qtbot):
    win, panel = opened, opened.arithmetic
    z = win.current.latents
    for idx in (10, 20, 30):
        win.select_datum(idx)
        panel.add_keyframe()
    panel.steps_spin.setValue(9)
    panel.run_interpolation()
    frames = panel.path_frames
    assert frames is not None and len(frames) == 9
    np.testing.assert_array_equal(frames[0], win.current.decode_uint8(z[10]))
    np.testing.assert_array_equal(frames[4], win.current.decode_uint8(z[20]))  # keyframe 2 in the middle
    np.testing.assert_array_equal(frames[-1], win.current.decode_uint8(z[30]))
    xs, ys = win.map.path_curve.getData()
    assert len(xs) == 9 and len(win.map.keyframe_items) == 3
    # Playing walks the cursor along the path.
    panel.play_button.setChecked(True)
    # A timer drives it: wait for its first steps rather than a fixed time (a loaded machine ticks late).
    qtbot.waitUntil(lambda: panel._play_index >= 2, timeout=5000)
    panel.play_button.setChecked(False)
    assert any(np.allclose(win.current.cursor_latent, f, atol=1e-5) for f in panel.path_latents[1:])
    out = tmp_path / "walk.gif"
    panel.export("path", str(out))
    with Image.open(out) as gif:
        assert gif.n_frames == 2 * 9 - 2  # bounced: there and back without repeating the ends
        assert min(gif.size) >= 64


def test_traverse_grid_and_png_export(opened, tmp_path):
    win, panel = opened, opened.arithmetic
    panel.trav_rows.setValue(3)
    panel.trav_steps.setValue(5)
    panel.dim_spin.setValue(1)
    panel.run_traverse()
    grid = panel.traverse_frames
    assert grid.shape[:2] == (3, 5)
    # Along a row only z1 changes, so the images change; every row starts from its own point.
    assert not np.array_equal(grid[0, 0], grid[0, -1])
    out = tmp_path / "grid.png"
    panel.export("traverse", str(out))
    with Image.open(out) as im:
        assert im.size[0] > im.size[1]  # 5 columns, 3 rows


@pytest.fixture(scope="module")
def faces_vae(tmp_path_factory):
    import torch

    from explorer.core import save_model
    from explorer.core.data import load_dataset
    from explorer.core.models import build_model
    from explorer.core.training import TrainConfig, Trainer

    data = load_dataset("faces", image_size=16)
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=8, image_shape=(3, 16, 16), hidden=(128,))
    Trainer(model, data, TrainConfig(epochs=3, batch_size=128, lr=2e-3, device="cpu")).run()
    return save_model(model, tmp_path_factory.mktemp("faces") / "faces-vae.safetensors", dataset="faces")


def test_faces_get_attribute_vectors_and_an_entanglement_report(window, faces_vae):
    window.open_model(str(faces_vae))
    entry, panel = window.current, window.arithmetic
    assert entry.vectors is not None and "smiling" in entry.vectors  # computed without a click
    assert entry.probes is not None and "smiling" in entry.probes.names
    names = [panel.vector_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(panel.vector_list.count())]
    assert "smiling" in names
    panel.vector_list.item(names.index("smiling")).setSelected(True)
    before = entry.probes.predict(entry.cursor_latent[None])[0, entry.probes.names.index("smiling")]
    panel.strength_slider.setValue(2 * 60)
    after = entry.probes.predict(entry.cursor_latent[None])[0, entry.probes.names.index("smiling")]
    assert after > before  # the smile probe moves the way the vector points
    assert "smiling" in panel.entangle_label.text()


def test_faces_demo_opens_with_its_vectors_ready(window):
    from explorer.gui.main_window import FACES_DEMO

    if not FACES_DEMO.exists():
        pytest.skip("faces demo not bundled")
    window.open_faces_demo()
    entry = window.current
    assert entry.name == "faces-vae.safetensors" and entry.latents is not None
    assert "smiling" in entry.vectors and entry.probes is not None


def test_every_arithmetic_page_fits_the_dock_at_1280_wide(window):
    # At 1280x760 the dock is ~570 px wide. A tab widget is as wide as its widest page, so the narrow Vectors
    # page scrolled sideways because of the Interpolate (673 px) and Traverse (661 px) rows.
    panel = window.arithmetic
    for i in range(panel.count()):
        panel.setCurrentIndex(i)
        assert panel.minimumSizeHint().width() <= 540, (panel.tabText(i), panel.minimumSizeHint())
