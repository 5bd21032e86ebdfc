"""Opening models and demos, trust prompts, sessions, the window layout and shutdown."""


from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from explorer.core.explore import ProjectionChoice, to_session

from ..controllers.data import strip_exception
from .common import DEMO_MODELS, FACES_DEMO, fit_to_screen


class FilesMixin:
    """Part of :class:`MainWindow`; uses its widgets and ``self.explorer``."""

    # ================================================================ opening
    def _ask_open(self) -> None:
        start = self.settings.value("last_dir", str(Path.home()))
        paths, _ = QFileDialog.getOpenFileNames(self, "Open models", start, "Checkpoints (*.safetensors)")
        for path in paths:
            self.open_model(path)

    def _ask_add_images(self) -> None:
        from explorer.core.data.folder import IMAGE_EXTENSIONS

        start = self.settings.value("last_dir", str(Path.home()))
        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        paths, _ = QFileDialog.getOpenFileNames(self, "Add images to the map", start, f"Images ({patterns})")
        if paths:
            self.add_images(paths)

    def open_demo(self) -> None:
        missing = [p for p in DEMO_MODELS if not p.exists()]
        if missing:
            self.show_error("Demo models missing", f"The bundled demo model {missing[0]} is not installed.")
            return
        # Show the VAE, whichever file finishes loading first.
        self.explorer.data.open_many([str(p) for p in DEMO_MODELS], focus=str(DEMO_MODELS[0]))

    def show_import_dialog(self):
        from ..views.import_dialog import ImportDialog

        dialog = ImportDialog(self.explorer, self)
        dialog.show()
        return dialog

    def open_faces_demo(self) -> None:
        """The conv VAE on procedural faces: its attribute vectors are computed as soon as the faces are
        encoded, so "smiling" is in the Vectors list; select it and move the strength slider."""
        if not FACES_DEMO.exists():
            self.show_error("Demo model missing", f"The bundled faces demo {FACES_DEMO} is not installed.")
            return
        self.open_model(str(FACES_DEMO))
        self.arithmetic_dock.raise_()
        self.arithmetic.setCurrentIndex(0)
        self.statusBar().showMessage("Faces demo: pick a vector (e.g. smiling) under Arithmetic › Vectors and "
                                     "move the strength slider", 15000)

    def confirm_trust(self, code_path: str, checkpoint: str, error: Any = None) -> bool:
        """An imported model runs the Python file (or archive) it names: ask before running it, with the core's
        exact words (where the checkpoint came from, which file would run, its hash, what changed, the arguments)."""
        title, text, details = "Run this model's code?", "", ""
        if error is not None:
            from explorer.core.adapter import trust_question

            q = trust_question(error, checkpoint)
            title, text, details = q.title, q.text, q.details
        if not text:
            text = (f"Opening {Path(checkpoint).name} (from {Path(checkpoint).parent}) runs the Python code in:\n\n"
                    f"{code_path}\n\nOnly continue if you trust that file and whoever sent it.")
        box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        if details:
            box.setDetailedText(details)
        return box.exec() == QMessageBox.StandardButton.Yes

    def show_trusted_code(self):
        from ..views.trust_dialog import TrustDialog

        dialog = TrustDialog(self)
        dialog.show()
        return dialog

    def _ask_yes_no(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(self, title, question,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def close_current(self) -> None:
        if self.state.current is not None:
            self.state.remove_model(self.state.current)

    def show_error(self, title: str, text: str) -> None:
        self.statusBar().showMessage(text, 8000)
        QMessageBox.warning(self, title, text)

    # ================================================================ sessions
    def session(self):
        """Everything needed to reproduce this exploration (see explorer.core.explore.session)."""
        return to_session(self.state)

    def save_session(self, path: str) -> None:
        session = self.session()
        self.explorer.run_io(lambda: session.save(path), f"Saved session {Path(path).name}")

    def open_session(self, path: str) -> None:
        from explorer.core.session import Session

        def failed(msg: str) -> None:
            self.show_error("Cannot open session", strip_exception(msg))

        self.tasks.start(lambda progress, cancel: Session.load(path), on_done=self.apply_session, on_error=failed)

    def apply_session(self, session) -> None:
        """Open the session's models (those already open are reused) and restore each one's state."""
        self.explorer.data.open_session(session)

    def _ask_save_session(self) -> None:
        start = self.settings.value("last_dir", str(Path.home()))
        path, _ = QFileDialog.getSaveFileName(self, "Save session", str(Path(start) / "session.lexsession"),
                                              "Sessions (*.lexsession)")
        if path:
            self.save_session(path)

    def _ask_open_session(self) -> None:
        start = self.settings.value("last_dir", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open session", start, "Sessions (*.lexsession);;All files (*)")
        if path:
            self.open_session(path)

    # ================================================================ layout and shutdown
    def restore_layout(self) -> None:
        """Window size (kept on this screen), dock positions and the projection choice from the last session."""
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
            screen = self.screen()
            if screen is not None:  # saved on a bigger screen: shrink to this one
                avail = screen.availableGeometry()
                if self.width() > avail.width() or self.height() > avail.height():
                    fit_to_screen(self, (min(self.width(), avail.width()), min(self.height(), avail.height())))
        if state is not None:
            self.restoreState(state)
        method = self.settings.value("map/projection")
        if method in ("pca", "tsne", "umap", "dims"):
            self.explorer.projections.request(ProjectionChoice(str(method)))

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("map/projection", self.state.requested.method)
        self.settings.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if not self.training.request_close():  # asks, then stops cleanly and saves
            event.ignore()
            return
        self.save_layout()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self.completion.shutdown()
        self.training.shutdown()
        self.explorer.shutdown()
        self.explorer.unwire()  # drop every connection into this window, so a closed window is freed
        self._unwire_widgets()

    def _unwire_widgets(self) -> None:
        """Disconnect the signals of the window's own widgets. Qt holds connected Python slots (our lambdas,
        which reference the window) strongly and out of the garbage collector's sight: left connected, a closed
        window could never be freed."""
        import warnings

        from PySide6.QtCore import QObject, SignalInstance

        self.map.nearest_fn = None
        # The map's view box lives in its graphics scene, not among the window's QObject children.
        for obj in [self, *self.findChildren(QObject), self.map.view]:
            for name in ("currentRowChanged", "currentIndexChanged", "valueChanged", "toggled", "clicked",
                         "textChanged", "returnPressed", "itemClicked", "triggered", "currentChanged",
                         "cursorMoved", "cursorMoveFinished", "pointHovered", "pointClicked", "lassoFinished",
                         "valuesChanged", "modelSnapshot", "trainingStarted", "timeout", "sigRangeChanged",
                         "framesReady", "activated"):
                sig = getattr(obj, name, None)
                if isinstance(sig, SignalInstance):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        try:
                            sig.disconnect()
                        except (RuntimeError, TypeError):
                            pass
