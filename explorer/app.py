"""QApplication bootstrap. The explorer window lives in explorer.gui."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(files: Sequence[str] = ()) -> int:
    from PySide6.QtWidgets import QApplication

    from explorer import __version__
    from explorer.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Latent Explorer")
    app.setOrganizationName("Latent Explorer")
    app.setApplicationVersion(__version__)
    window = MainWindow()
    for path in files:
        window.open_model(path)
    window.show()
    return app.exec()
