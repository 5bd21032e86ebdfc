import pytest

from explorer.core import save_model
from explorer.core.models import build_model

pytest.importorskip("pytestqt")


@pytest.fixture
def window(qtbot, tmp_path):
    from explorer.gui.main_window import MainWindow

    from PySide6.QtCore import QSettings

    win = MainWindow(synchronous=True, settings=QSettings(str(tmp_path / 's.ini'), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    return win


def test_opens_a_checkpoint(window, tmp_path):
    path = save_model(build_model("vae", latent_dim=3, image_shape=(1, 8, 8), hidden=(16,)),
                      tmp_path / "m.safetensors", dataset="digits")
    assert window.open_model(str(path))
    assert window.models[0]["family"] == "vae"


def test_corrupt_file_shows_error_and_window_survives(window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    assert not window.open_model(str(bad))
    assert shown and "bad.safetensors" in shown[0]
    assert window.isVisible()


def test_layout_and_projection_choice_survive_a_restart(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from explorer.gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    win = MainWindow(synchronous=True, settings=settings)
    qtbot.addWidget(win)
    win.show()
    win.resize(1111, 777)
    win.projection_box.setCurrentIndex(win.projection_box.findData("dims"))
    win.arithmetic_dock.hide()
    win.close()
    again = MainWindow(synchronous=True, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    again.show()
    assert again.projection_box.currentData() == "dims"
    # (The offscreen platform has no real screen to restore sizes onto; the geometry is stored, though.)
    assert settings.value("window/geometry") is not None
    assert again.arithmetic_dock.isHidden()
    again.close()


def test_help_lists_shortcuts_and_about_names_versions(window):
    keys = dict((what, k) for k, what in window.shortcuts())
    assert "Open…" in keys and "Re-roll samples" in keys
    from explorer.gui.main_window import about_text

    text = about_text()
    assert "torch" in text and "MNIST" in text and "CC BY-SA" in text


def test_dark_theme_darkens_the_map(window):
    from explorer.gui.theme import is_dark

    window.set_theme("dark")
    try:
        assert is_dark()
        assert window.map.plot.backgroundBrush().color().lightness() < 100
    finally:
        window.set_theme("light")
    assert not is_dark()
    assert window.map.plot.backgroundBrush().color().lightness() > 200
