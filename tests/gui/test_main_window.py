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
