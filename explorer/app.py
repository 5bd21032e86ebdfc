"""QApplication bootstrap. The explorer window lives in explorer.gui."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(files: Sequence[str] = ()) -> int:
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from explorer import __version__
    from explorer.gui.main_window import RESOURCES, MainWindow

    from explorer.core.threads import apply

    apply("gui")  # the GUI thread decodes small batches inline; background jobs take their own shares
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Latent Explorer")
    app.setOrganizationName("Latent Explorer")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("io.github.latent_explorer.LatentExplorer")
    icon = RESOURCES / "icons" / "latent-explorer.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    from explorer.gui.theme import apply_theme

    apply_theme(str(QSettings().value("theme", "system")))
    window = MainWindow()
    app.aboutToQuit.connect(window.shutdown)
    window.show()
    if files:
        for path in files:
            window.open_model(path)
    else:
        window.open_demo()  # first thing a new user sees: real models on real data
    # For smoke tests and README screenshots: save the window once a map is drawn, then quit.
    shot = os.environ.get("LATENT_EXPLORER_SCREENSHOT")
    if shot:
        def save_and_quit(_entry=None) -> None:
            window.grab().save(shot)
            app.quit()

        window.modelReady.connect(lambda entry: QTimer.singleShot(800, save_and_quit))
    quit_after = os.environ.get("LATENT_EXPLORER_QUIT_AFTER_MS")
    if quit_after:
        QTimer.singleShot(int(quit_after), app.quit)
    return app.exec()
