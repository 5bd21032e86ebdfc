"""One test per defect that the explorer state fixed (issue 13), with real mouse events where a user clicks."""

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from explorer.core import save_model
from explorer.core.models import build_model
from explorer.core.training.snapshot import ModelSnapshot, cpu_state_dict

from .conftest import _send, _viewport_point, drag


def _click(widget, pos: QPoint) -> None:
    left = Qt.MouseButton.LeftButton
    _send(widget, QEvent.Type.MouseButtonPress, pos, left, left)
    _send(widget, QEvent.Type.MouseButtonRelease, pos, left, Qt.MouseButton.NoButton)
    QApplication.processEvents()


def _hover(widget, pos: QPoint) -> None:
    event = QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), QPointF(widget.mapToGlobal(pos)),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    QApplication.processEvents()


def _far_point(window, avoid: int) -> int:
    """A point away from the cursor ring (so a click on it cannot grab the cursor) and from ``avoid``."""
    pos = window.map.positions
    cx, cy = window.map.cursor_pos()
    d = np.hypot(pos[:, 0] - cx, pos[:, 1] - cy)
    order = np.argsort(-d)
    return int(next(i for i in order if i != avoid))


def test_clicking_on_a_point_selects_it(window, digits_vae):
    """Defect 2: the hover ring under the pointer took the click; only clicks 6-12 px beside a point selected."""
    window.open_model(str(digits_vae))
    viewport = window.map.plot.viewport()
    target = _far_point(window, window.selected_index())
    where = _viewport_point(window, *window.map.positions[target])
    _hover(viewport, where)  # the hover ring is now drawn right under the pointer
    assert window.current.hovered == window.map._hovered >= 0
    hovered = window.map._hovered
    _click(viewport, where)
    assert window.selected_index() == hovered
    np.testing.assert_array_equal(window.current.cursor_latent, window.current.latents[hovered])
    # And "Set A from the clicked point" (Analogy) takes that very point.
    window.arithmetic.set_analogy_slot("A")
    assert window.arithmetic._analogy["A"] is not None
    np.testing.assert_array_equal(window.arithmetic._analogy["A"], window.current.latents[hovered])


def test_a_drag_on_the_background_pans_and_selects_nothing(window, digits_vae):
    window.open_model(str(digits_vae))
    before = window.selected_index()
    viewport = window.map.plot.viewport()
    view_before = window.map.view.viewRange()
    drag(viewport, QPoint(30, 30), QPoint(90, 80))
    assert window.selected_index() == before
    assert window.map.view.viewRange() != view_before


def test_trained_model_selected_after_training_gets_its_map(window, digits_vae, digits):
    """Defect 1: a model trained in the window, selected after training ended, stayed on "Encoding…" forever."""
    window.open_model(str(digits_vae))
    shown = window.current
    model = build_model("ae", latent_dim=3, image_shape=(1, 8, 8), hidden=(16,))
    for epoch in (1, 2, 3):
        snap = ModelSnapshot(run_id="run1", family="ae", config=model.config.to_dict(),
                             state_dict=cpu_state_dict(model), epoch=epoch, step=epoch * 10, dataset="digits",
                             label_names=list(digits.label_names), final=epoch == 3)
        window.explorer.training.snapshot(snap)
    assert window.current is shown  # training elsewhere does not take the view away
    trained = next(e for e in window.entries if e.run_id == "run1")
    window.model_list.setCurrentRow(window.entries.index(trained))
    assert window.current is trained
    assert trained.latents is not None and trained.has_map  # encoded on selection, map drawn
    assert "Encoding" not in window.map_info.text()
    assert len(window.map.positions) == len(digits)
    assert window.history_row.isVisibleTo(window) and window.history_slider.maximum() == 2


def test_map_stays_usable_while_a_slow_projection_fits_and_after_cancel(window, digits_vae, qtbot):
    """Defect 3: while t-SNE/UMAP fitted nothing decoded; after Cancel the box said UMAP and nothing decoded."""
    window.open_model(str(digits_vae))
    window.tasks._sync = False  # the fit must really run in the background
    window.projection_box.setCurrentIndex(window.projection_box.findData("umap"))
    qtbot.waitUntil(lambda: window.cancel_button.isVisible(), timeout=3000)
    assert window.current.active == "pca"  # what is shown is a projection that exists
    viewport = window.map.plot.viewport()
    x0, y0 = window.map.cursor_pos()
    before = window.cursor_panel.last_array.copy()
    target = window.map.positions[_far_point(window, -1)]
    drag(viewport, _viewport_point(window, x0, y0), _viewport_point(window, *target))
    qtbot.waitUntil(lambda: not np.array_equal(window.cursor_panel.last_array, before), timeout=3000)
    z = window.current.projections["pca"].inverse(np.array([window.map.cursor_pos()], np.float32))[0]
    np.testing.assert_allclose(window.current.cursor_latent, z, atol=1e-6)
    window.cancel_button.click()
    qtbot.waitUntil(lambda: window.projection_task is None, timeout=15000)
    assert window.projection_box.currentData() == "pca"  # the box says what is shown
    before = window.cursor_panel.last_array.copy()
    x0, y0 = window.map.cursor_pos()
    drag(viewport, _viewport_point(window, x0, y0), _viewport_point(window, *window.map.positions[0]))
    qtbot.waitUntil(lambda: not np.array_equal(window.cursor_panel.last_array, before), timeout=3000)


def test_switching_projection_reranges_and_clears_old_markers(window, digits_vae):
    """Defect 4a: the view kept the old range and markers kept old coordinates, stretching the auto-range."""
    window.open_model(str(digits_vae))
    window.select_datum(5)
    window.map._mouse_moved(window.map.view.mapViewToScene(QPointF(*window.map.positions[7])))
    window.projection_box.setCurrentIndex(window.projection_box.findData("dims"))
    window.dim_x.setValue(2)
    pos = window.map.positions
    (x0, x1), (y0, y1) = window.map.view.viewRange()
    span_x, span_y = pos[:, 0].max() - pos[:, 0].min(), pos[:, 1].max() - pos[:, 1].min()
    # The view fits the new points (5% padding each side, and room on the right for the legend), not the union
    # with stale markers.
    legend_px = window.map.legend.boundingRect().width() + 20
    room = window.map.view.width() / (window.map.view.width() - legend_px)
    assert x0 <= pos[:, 0].min() and x1 >= pos[:, 0].max() and (x1 - x0) < 1.3 * span_x * room
    assert y0 <= pos[:, 1].min() and y1 >= pos[:, 1].max() and (y1 - y0) < 1.3 * span_y
    hover = window.map.hover_marker.getData()[0]
    assert len(hover) == 0  # the hover ring of the old map is gone
    sel = window.map.selected_marker.getData()
    np.testing.assert_allclose([sel[0][0], sel[1][0]], pos[5], atol=1e-6)  # selection redrawn on the new map


def test_dropped_stars_belong_to_their_model(window, digits_vae, digits, tmp_path):
    """Defect 4b: stars of dropped images appeared on other models' maps."""
    from PIL import Image

    window.open_model(str(digits_vae))
    Image.fromarray(digits.images[3, 0]).save(tmp_path / "d3.png")
    window.add_images([str(tmp_path / "d3.png")])
    assert len(window.map.extra_scatter.getData()[0]) == 1
    other = save_model(build_model("ae", latent_dim=3, image_shape=(1, 8, 8), hidden=(16,)),
                       tmp_path / "other.safetensors", dataset="digits")
    window.open_model(str(other))
    assert window.current.name == "other.safetensors"
    assert len(window.map.extra_scatter.getData()[0]) == 0
    window.model_list.setCurrentRow(0)
    assert len(window.map.extra_scatter.getData()[0]) == 1


def test_opening_a_session_does_not_duplicate_open_models(window, digits_vae, tmp_path):
    """Defect 4c: opening a session added a second copy of models that were already open."""
    window.open_model(str(digits_vae))
    window.select_datum(9)
    path = tmp_path / "s.lexsession"
    window.save_session(str(path))
    window.open_session(str(path))
    window.open_model(str(digits_vae))
    assert len(window.entries) == 1
    assert window.selected_index() == 9


def test_switching_to_a_model_without_map_never_shows_the_previous_image(window, digits_vae, tmp_path):
    """Defect 4d: the decoder kept the previous model's image after switching to a model with no map yet."""
    window.open_model(str(digits_vae))
    vae_image = window.cursor_panel.last_array.copy()
    nodata = save_model(build_model("ae", latent_dim=3, image_shape=(1, 8, 8), hidden=(16,)),
                        tmp_path / "nodata.safetensors")  # no data set named: it can have no map
    window.open_model(str(nodata))
    assert window.current.name == "nodata.safetensors" and not window.current.has_map
    shown = window.cursor_panel.last_array
    assert shown is None or not np.array_equal(shown, vae_image)
    assert "No latent map" in window.map_info.text()


def test_window_fits_the_screen_it_opens_on(qtbot, tmp_path):
    """Defect 5: the window opened at 1400x880 whatever the screen."""
    from PySide6.QtCore import QSettings

    from explorer.gui.main_window import MainWindow

    win = MainWindow(synchronous=True, settings=QSettings(str(tmp_path / "f.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    avail = win.screen().availableGeometry()
    assert win.width() <= avail.width() and win.height() <= avail.height()
    assert win.width() == min(1400, max(640, avail.width() - 16))
    win.shutdown()


def test_data_named_by_a_file_outside_its_folder_is_asked_about(window, tmp_path, digits):
    """Issue 15: a checkpoint naming "folder:/..." made the window walk and decode it without asking."""
    from PIL import Image

    elsewhere = tmp_path / "elsewhere" / "cls"
    elsewhere.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(digits.images[i, 0]).save(elsewhere / f"{i}.png")
    sent = tmp_path / "sent"
    sent.mkdir()
    path = save_model(build_model("ae", latent_dim=3, image_shape=(1, 8, 8), hidden=(16,)),
                      sent / "m.safetensors", dataset=f"folder:{tmp_path / 'elsewhere'}")
    asked = []
    window.explorer.data.confirm_data = lambda title, question: asked.append(question) or False
    window.open_model(str(path))
    assert asked and "elsewhere" in asked[0]
    assert window.current.data is None and "not loaded" in window.current.status
    window.close_current()
    window.explorer.data.confirm_data = lambda title, question: True
    window.open_model(str(path))
    assert window.current.data is not None and len(window.current.data) == 4
