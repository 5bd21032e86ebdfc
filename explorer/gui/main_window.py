"""The main window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox

from explorer.core.checkpoint import CheckpointError, inspect


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Latent Explorer")
        self.resize(1200, 800)
        self.models: list[dict] = []
        self._info = QLabel("Open a model with File › Open… to explore its latent space.")
        self._info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._info.setWordWrap(True)
        self.setCentralWidget(self._info)
        menu = self.menuBar().addMenu("&File")
        menu.addAction("&Open…", self._ask_open).setShortcut("Ctrl+O")
        menu.addSeparator()
        menu.addAction("&Quit", self.close).setShortcut("Ctrl+Q")

    def _ask_open(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open models", "", "Checkpoints (*.safetensors)")
        for path in paths:
            self.open_model(path)

    def open_model(self, path: str) -> bool:
        try:
            meta = inspect(path)
        except CheckpointError as exc:
            QMessageBox.warning(self, "Cannot open model", str(exc))
            return False
        self.models.append(meta)
        self._info.setText(
            "\n".join(
                f"{Path(m['path']).name}: {m['family']}, latent {m.get('latent_dim')}, dataset {m.get('dataset')}"
                for m in self.models
            )
        )
        return True
