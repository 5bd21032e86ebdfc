"""Closed windows and their models are released (issue 15): weak references die after closing, as napari's
leak checks do."""

import gc
import weakref

from PySide6.QtCore import QCoreApplication, QEvent, QSettings
from PySide6.QtWidgets import QApplication


def _cycle(tmp_path, model_path=None):
    from explorer.gui.main_window import MainWindow

    win = MainWindow(synchronous=True, settings=QSettings(str(tmp_path / "leak.ini"), QSettings.Format.IniFormat))
    win.show()
    if model_path is not None:
        win.open_model(str(model_path))
        assert win.current is not None
    model = weakref.ref(win.current.model) if win.current is not None else None
    win.close()
    ref = weakref.ref(win)
    del win
    QApplication.processEvents()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    gc.collect()
    return ref, model


def test_closed_windows_and_their_models_are_freed(qapp, tmp_path, digits_vae):
    refs = [_cycle(tmp_path) for _ in range(20)]
    refs += [_cycle(tmp_path, digits_vae) for _ in range(3)]
    gc.collect()
    alive = [i for i, (w, _m) in enumerate(refs) if w() is not None]
    assert not alive, f"windows {alive} of {len(refs)} were never freed"
    assert all(m() is None for _w, m in refs if m is not None), "a closed window's model is still in memory"
