"""Fixtures for the GUI tests: a small trained VAE on the digits, a synchronous window, real mouse events."""

import pytest
import torch
from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from explorer.core import save_model
from explorer.core.models import build_model
from explorer.core.training import TrainConfig, Trainer


@pytest.fixture(scope="session")
def digits_vae(tmp_path_factory, digits):
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4, image_shape=(1, 8, 8), hidden=(64,))
    Trainer(model, digits, TrainConfig(epochs=10, batch_size=64, lr=3e-3, device="cpu")).run()
    return save_model(model, tmp_path_factory.mktemp("m") / "digits-vae.safetensors", dataset="digits",
                      label_names=digits.label_names)


@pytest.fixture
def window(qtbot, tmp_path):
    from explorer.gui.main_window import MainWindow

    win = MainWindow(synchronous=True, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()


def _viewport_point(win, x, y) -> QPoint:
    scene = win.map.view.mapViewToScene(QPointF(x, y))
    return win.map.plot.mapFromScene(scene)


def _send(widget, kind, pos: QPoint, button, buttons):
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(widget, start: QPoint, end: QPoint, steps: int = 8):
    left = Qt.MouseButton.LeftButton
    _send(widget, QEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        p = start + (end - start) * (i / steps)
        _send(widget, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, left)
        QApplication.processEvents()
    _send(widget, QEvent.Type.MouseButtonRelease, end, left, Qt.MouseButton.NoButton)
    QApplication.processEvents()


