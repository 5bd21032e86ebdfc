"""Issue 19 in the window: the Complete dock (mask painting, background completion, Put on the map), the Patches
tab (a patch model as a codec, its map of patch codes) and the Compare tab's pretraining curves."""

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt

from explorer.core import save_model
from explorer.core.models import build_model
from explorer.core.training import TrainConfig, Trainer

from .conftest import _send, drag

LEFT, RIGHT, NONE = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.MouseButton.NoButton


@pytest.fixture(scope="module")
def digits_ae(tmp_path_factory, digits):
    torch.manual_seed(0)
    model = build_model("ae", latent_dim=8, image_shape=(1, 8, 8), hidden=(64,))
    Trainer(model, digits, TrainConfig(epochs=8, batch_size=64, lr=3e-3, device="cpu")).run()
    return save_model(model, tmp_path_factory.mktemp("m") / "digits-ae.safetensors", dataset="digits",
                      label_names=digits.label_names)


@pytest.fixture(scope="module")
def digits_patch(tmp_path_factory, digits):
    torch.manual_seed(0)
    model = build_model("patch", image_shape=(1, 8, 8), patch_size=4, code_size=4)
    Trainer(model, digits, TrainConfig(epochs=5, batch_size=64, lr=3e-3, device="cpu")).run()
    return save_model(model, tmp_path_factory.mktemp("m") / "digits-patch.safetensors", dataset="digits",
                      label_names=digits.label_names)


@pytest.fixture
def completing(window, digits_ae):
    window.open_model(str(digits_ae))
    assert window.current.latents is not None
    window.completion_dock.raise_()
    panel = window.completion
    panel.restarts_spin.setValue(2)
    panel.steps_spin.setValue(80)
    return window, panel


def _rect(canvas, x0, y0, x1, y1, button=LEFT):
    start, end = canvas.widget_point(x0, y0), canvas.widget_point(x1, y1)
    if button == LEFT:
        drag(canvas, start, end, steps=4)
        return
    _send(canvas, QEvent.Type.MouseButtonPress, start, button, button)
    _send(canvas, QEvent.Type.MouseMove, end, NONE, button)
    _send(canvas, QEvent.Type.MouseButtonRelease, end, button, NONE)


def test_rectangle_and_brush_paint_exactly_their_pixels(completing):
    win, panel = completing
    win.select_datum(win.current.data.n_train + 1)
    canvas = panel.canvas
    assert canvas.mask.shape == (8, 8) and not canvas.mask.any()
    assert canvas.target_rect().width() >= 8 * 8  # enlarged (a whole factor)
    _rect(canvas, 2, 3, 5, 6)  # corner pixels (x=2, y=3) and (x=5, y=6), both included
    expect = np.zeros((8, 8), bool)
    expect[3:7, 2:6] = True
    np.testing.assert_array_equal(canvas.mask, expect)
    # Dragged the other way round, the right button erases the same kind of rectangle.
    _rect(canvas, 3, 4, 2, 3, button=RIGHT)
    expect[3:5, 2:4] = False
    np.testing.assert_array_equal(canvas.mask, expect)
    panel.clear_button.click()
    assert not canvas.mask.any()
    # A 1-pixel brush paints the pixel under the mouse and those it is dragged over.
    panel.brush_tool.setChecked(True)
    panel.brush_spin.setValue(1)
    drag(canvas, canvas.widget_point(0, 0), canvas.widget_point(0, 3), steps=6)
    expect = np.zeros((8, 8), bool)
    expect[0:4, 0] = True
    np.testing.assert_array_equal(canvas.mask, expect)


def test_completion_beats_the_mean_fill_and_goes_on_the_map(completing):
    win, panel = completing
    entry = win.current
    n_train = entry.data.n_train
    wins, runs = 0, []
    for i in range(6):
        win.select_datum(n_train + 10 * i)
        assert panel.source is not None and panel.source.index == n_train + 10 * i
        if i == 0:
            _rect(panel.canvas, 0, 4, 7, 7)  # the bottom half; kept for the next data (same size)
        assert panel.canvas.mask[4:].all() and not panel.canvas.mask[:4].any()
        assert panel.run()
        run = panel.controller.last
        assert run.source.index == n_train + 10 * i
        assert len(run.result.losses) == 2 and np.all(np.diff(run.result.losses) >= 0)  # best first
        # Visible pixels are kept exactly; the hole's error is against the hidden truth.
        x = entry.data.images[n_train + 10 * i].astype(np.float32) / 255
        np.testing.assert_allclose(run.result.blended[0][:, ~run.mask], x[:, ~run.mask], atol=1e-5)
        assert run.hole_mse[0] == pytest.approx(float(np.square(run.result.blended[0] - x)[:, run.mask].mean()))
        wins += run.hole_mse.min() < run.mean_fill_mse
        runs.append(run)
    assert np.mean([r.hole_mse.min() for r in runs]) < np.mean([r.mean_fill_mse for r in runs])
    assert wins >= 4
    # The panel shows original, masked input and each completion with its loss.
    assert len(panel.result_panels) == 2
    assert "loss" in panel.result_panels[0].caption.text() and "hole" in panel.result_panels[0].caption.text()
    np.testing.assert_array_equal(panel.result_panels[1].last_array[..., 0],
                                  (np.clip(runs[-1].result.blended[1][0], 0, 1) * 255 + 0.5).astype(np.uint8))
    assert "mean image" in panel.status.text()
    # "Put on the map": the cursor goes to that completion's latent and the decoder shows it.
    panel.place_buttons[1].click()
    np.testing.assert_allclose(entry.cursor_latent, runs[-1].result.latents[1], atol=1e-6)
    np.testing.assert_array_equal(win.cursor_panel.last_array, entry.decode_uint8(runs[-1].result.latents[1]))


def test_cancel_stops_the_search_and_bad_masks_are_refused(completing):
    win, panel = completing
    win.select_datum(win.current.data.n_train)
    panel.run()
    assert "Paint the region" in panel.error.text() and panel.run_button.isEnabled()
    panel.canvas.set_mask(np.ones((8, 8), bool))
    panel.run()
    assert "every pixel" in panel.error.text()
    _mask = np.zeros((8, 8), bool)
    _mask[2:5, 2:5] = True
    panel.canvas.set_mask(_mask)
    panel.steps_spin.setValue(2000)
    seen = []
    panel.controller.progress.connect(lambda f, m: (seen.append(f), panel.cancel_button.click()))
    panel.run()
    assert seen and max(seen) < 0.5
    assert panel.status.text() == "Cancelled." and panel.run_button.isEnabled()
    assert panel.controller.last is None and not panel.controller.running


def test_a_dropped_image_can_be_completed(completing, digits, tmp_path):
    win, panel = completing
    Image.fromarray(digits.images[7, 0]).save(tmp_path / "seven.png")
    win.add_images([str(tmp_path / "seven.png")])
    assert panel.source is not None and panel.source.index == -1
    np.testing.assert_array_equal(panel.source.image, win.current.dropped.images[0])
    mask = np.zeros((8, 8), bool)
    mask[:, 4:] = True
    panel.canvas.set_mask(mask)
    assert panel.run()
    run = panel.controller.last
    assert run.hole_mse is None and len(panel.result_panels) == 2  # no truth to compare against
    # The datum stays available in the box.
    assert panel.select_source("datum", win.current.selected)


def test_patches_tab_shows_the_codec_and_the_map_of_codes(window, digits_patch, qtbot):
    from explorer.core.compression import psnr, reconstruct_pair, ssim

    window.open_model(str(digits_patch))
    view = window.patches
    view.controller.sample_size = 400
    window.tabs.setCurrentIndex([window.tabs.tabText(i) for i in range(window.tabs.count())].index("Patches"))
    entry = window.current
    idx = entry.data.n_train + 3
    window.select_datum(idx)
    pair = view.pair
    assert pair.index == idx and pair.ratio == pytest.approx(4.0)  # 64 pixels -> 4 tiles x 4 one-byte codes
    orig, rec, _ = reconstruct_pair(entry.model, entry.data.images[idx])
    assert pair.psnr == pytest.approx(float(psnr(rec[None], orig[None])[0]))
    assert pair.ssim == pytest.approx(float(ssim(rec[None], orig[None])[0]))
    assert "4:1" in view.metrics.text() and f"{pair.psnr:.2f} dB" in view.metrics.text()
    np.testing.assert_array_equal(view.recon_panel.last_array[..., 0], (np.clip(rec[0], 0, 1) * 255 + 0.5).astype(np.uint8))
    codes = view.codes
    assert codes.codes.shape == (400, 4) and codes.patches.shape == (400, 1, 4, 4)
    # The points are the codes' PCA: centred, first axis with the most spread.
    np.testing.assert_allclose(codes.positions.mean(0), 0, atol=1e-4)
    assert codes.positions[:, 0].var() >= codes.positions[:, 1].var()
    with torch.no_grad():
        again = entry.model.encode_patches(torch.from_numpy(codes.patches[:5])).numpy()
    np.testing.assert_allclose(codes.codes[:5], again, atol=1e-5)
    # Hovering a point shows its patch enlarged.
    vb = view.plot.getPlotItem().getViewBox()
    i = int(np.argmax(codes.positions[:, 0]))  # an outermost point: nobody else under the mouse
    view._hover(vb.mapViewToScene(QPointF(*codes.positions[i].astype(float))))
    assert view.hovered == i
    np.testing.assert_array_equal(view.patch_panel.last_array[..., 0],
                                  (codes.patches[i, 0] * 255 + 0.5).astype(np.uint8))
    view.draw_patches.setChecked(True)
    assert len(view._patch_items) == min(300, 400)


def test_patches_tab_explains_itself_for_other_models(window, digits_vae):
    window.open_model(str(digits_vae))
    window.tabs.setCurrentIndex([window.tabs.tabText(i) for i in range(window.tabs.count())].index("Patches"))
    assert "patch model" in window.patches.info.text() and window.patches.codes is None


def test_compare_pretraining_draws_one_curve_per_model_and_mode(window, digits_vae, digits_ae):
    window.open_model(str(digits_vae))
    window.open_model(str(digits_ae))
    compare = window.compare
    compare.pretrain_options.update(labels_per_class=(1, 5), seeds=1, steps=30, limit_test=200)
    compare.pretrain_button.click()
    curves = compare.pretrain_curves
    assert [c.model_name for c in curves] == ["digits-vae", "digits-ae"]
    items = compare.pretrain_plot.listDataItems()
    assert len(items) == 2 * 3  # frozen, fine-tuned and scratch for each model
    names = sorted(item.name() for item in items)
    assert names == sorted(f"{m} {mode}" for m in ("digits-vae", "digits-ae")
                           for mode in ("frozen", "finetune", "scratch"))
    x, y = items[0].getOriginalDataset()
    np.testing.assert_array_equal(x, [1, 5])
    np.testing.assert_allclose(y, curves[0].mean(curves[0].modes[0]))
    assert not compare.pretrain_plot.isHidden() and compare.pretrain_button.text() == "Pretraining (few labels)"


def test_the_status_bars_cancel_stops_pretraining_and_shows_it_while_it_runs(window, digits_vae, digits_ae,
                                                                             monkeypatch):
    import explorer.core.pretrain as pretrain

    window.open_model(str(digits_vae))
    window.open_model(str(digits_ae))
    compare = window.compare
    seen = []

    def fake_curve(model, data, progress=None, cancel=None, **opts):
        # What the user sees while it runs, then their click on the status bar's Cancel (the synchronous
        # runner of the tests cannot click while a task runs, so the task clicks for them).
        seen.append((window.progress.isVisibleTo(window), window.cancel_button.isVisibleTo(window),
                     window.statusBar().currentMessage()))
        window.cancel_button.click()
        progress(0.5, "fitting")  # the next progress report is where a cancelled task stops
        raise AssertionError("the status bar's Cancel did not reach the pretraining")

    monkeypatch.setattr(pretrain, "pretrain_curve", fake_curve)
    compare.pretrain_button.click()
    assert seen == [(True, True, "Pretraining…")]
    assert compare.error.text() == "" and compare.pretrain_curves == []  # cancelled: no error, no curve
    assert compare.pretrain_button.text() == "Pretraining (few labels)"
    assert not window.progress.isVisibleTo(window) and not window.cancel_button.isVisibleTo(window)
