"""A saved session restores the same exploration: models, vectors, keyframes, groups, cursor, samples."""

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from explorer.core import save_model
from explorer.core.models import build_model
from explorer.core.session import Session, SessionError


def _window(qtbot, tmp_path, name):
    from explorer.gui.main_window import MainWindow

    win = MainWindow(synchronous=True, settings=QSettings(str(tmp_path / f"{name}.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    return win


def test_session_round_trip_reproduces_the_images(qtbot, tmp_path, digits_vae):
    gan = save_model(build_model("gan", latent_dim=6, image_shape=(1, 8, 8), base_channels=8),
                     tmp_path / "gan.safetensors", dataset="digits")
    first = _window(qtbot, tmp_path, "a")
    first.open_model(str(gan))
    first.sliders.rows[2][1].setValue(150)
    gan_image = first.cursor_panel.last_array.copy()
    first.open_model(str(digits_vae))
    panel = first.arithmetic
    panel.compute_vectors()
    first.select_datum(42)
    panel.vector_list.item(3).setSelected(True)
    panel.strength_slider.setValue(90)
    for idx in (5, 6):
        first.select_datum(idx)
        panel.add_keyframe()
    panel.set_group("A", np.arange(10))
    first.select_datum(42)
    panel.strength_slider.setValue(90)
    first.reroll_samples()
    first.reroll_samples()
    shown = first.cursor_panel.last_array.copy()
    samples = first.samples_panel.last_array.copy()
    cursor = first.current.cursor_latent.copy()
    path = tmp_path / "explore.lexsession"
    first.save_session(str(path))
    assert path.exists()
    first.shutdown()

    second = _window(qtbot, tmp_path, "b")
    second.open_session(str(path))
    assert [e.name for e in second.entries] == ["gan.safetensors", "digits-vae.safetensors"]
    entry = second.current
    assert entry.name == "digits-vae.safetensors"
    np.testing.assert_array_equal(entry.cursor_latent, cursor)
    np.testing.assert_array_equal(second.cursor_panel.last_array, shown)
    np.testing.assert_array_equal(second.samples_panel.last_array, samples)
    assert sorted(entry.vectors) == sorted(first.entries[1].vectors)
    assert [label for label, _ in entry.keyframes] == ["p5", "p6"]
    np.testing.assert_array_equal(second.arithmetic._groups["A"], np.arange(10))
    assert second.selected_index() == 42
    second.model_list.setCurrentRow(0)
    np.testing.assert_array_equal(second.cursor_panel.last_array, gan_image)
    second.shutdown()


def test_bad_session_files_raise_the_documented_error(tmp_path):
    bad = tmp_path / "bad.lexsession"
    bad.write_bytes(b"not a session")
    with pytest.raises(SessionError, match="bad.lexsession"):
        Session.load(bad)
    with pytest.raises(SessionError, match="no such"):
        Session.load(tmp_path / "missing.lexsession")
    other = save_model(build_model("vae", latent_dim=2, image_shape=(1, 8, 8), hidden=(8,)),
                       tmp_path / "model.safetensors", dataset="digits")
    with pytest.raises(SessionError, match="not a Latent Explorer session"):
        Session.load(other)
