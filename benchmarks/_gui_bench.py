"""Shared helpers for the GUI benchmarks (offscreen Qt, real window, real events)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def app() -> QApplication:
    return QApplication.instance() or QApplication([])


def make_window(synchronous: bool = False):
    from explorer.gui.main_window import MainWindow

    settings = QSettings(str(Path(tempfile.mkdtemp()) / "bench.ini"), QSettings.Format.IniFormat)
    # The window compiles UMAP's kernels in a child process a few seconds after its first map: a minute of
    # one core's time that would be measured as noise here. Steady state is what these benchmarks report.
    settings.setValue("warm_umap", "false")
    win = MainWindow(synchronous=synchronous, settings=settings)
    win.resize(1400, 880)
    win.show()
    app().processEvents()
    return win


def wait_until(predicate, timeout: float = 600.0) -> None:
    end = time.perf_counter() + timeout
    while not predicate():
        app().processEvents()
        if time.perf_counter() > end:
            raise TimeoutError("benchmark setup timed out")
        time.sleep(0.001)


def viewport_point(win, x: float, y: float) -> QPoint:
    scene = win.map.view.mapViewToScene(QPointF(x, y))
    return win.map.plot.mapFromScene(scene)


def send_mouse(widget, kind, pos: QPoint, button, buttons) -> None:
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


LEFT = Qt.MouseButton.LeftButton
NONE = Qt.MouseButton.NoButton
PRESS, MOVE, RELEASE = QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000.0, q)), 3)
