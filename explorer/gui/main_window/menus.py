"""Menus, themes, shortcuts, the About box, recent files and drag and drop."""


from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMessageBox, QPushButton

from ..theme import THEMES, apply_theme, muted_css
from .common import MAX_RECENT, PROJECTIONS, RESOURCES, _droppable, about_text


class MenusMixin:
    """Part of :class:`MainWindow`; uses its widgets and ``self.explorer``."""

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        act = QAction("&Open…", self)
        act.setShortcut(QKeySequence.StandardKey.Open)
        act.triggered.connect(self._ask_open)
        file_menu.addAction(act)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._refresh_recent_menu()
        importer = QAction("&Import your own model…", self)
        importer.setShortcut("Ctrl+I")
        importer.triggered.connect(self.show_import_dialog)
        file_menu.addAction(importer)
        trusted = QAction("&Trusted model code…", self)
        trusted.setToolTip("The imported model files you allowed to run; revoke any of them")
        trusted.triggered.connect(self.show_trusted_code)
        file_menu.addAction(trusted)
        save_session = QAction("&Save session…", self)
        save_session.setShortcut(QKeySequence.StandardKey.Save)
        save_session.triggered.connect(self._ask_save_session)
        open_session = QAction("Open s&ession…", self)
        open_session.setShortcut("Ctrl+Shift+O")
        open_session.triggered.connect(self._ask_open_session)
        file_menu.addAction(open_session)
        file_menu.addAction(save_session)
        add_images = QAction("&Add images…", self)
        add_images.setShortcut("Ctrl+Shift+I")
        add_images.setToolTip("Encode image files and place them on the current model's map")
        add_images.triggered.connect(self._ask_add_images)
        file_menu.addAction(add_images)
        file_menu.addSeparator()
        demo = QAction("Open &demo models", self)
        demo.triggered.connect(self.open_demo)
        file_menu.addAction(demo)
        faces = QAction("Open &faces demo (vector arithmetic)", self)
        faces.triggered.connect(self.open_faces_demo)
        file_menu.addAction(faces)
        file_menu.addSeparator()
        close = QAction("&Close model", self)
        close.setShortcut("Ctrl+W")
        close.triggered.connect(self.close_current)
        file_menu.addAction(close)
        quit_act = QAction("&Quit", self)
        quit_act.setShortcut(QKeySequence.StandardKey.Quit)
        quit_act.triggered.connect(self.close)
        file_menu.addAction(quit_act)
        view = self.menuBar().addMenu("&View")
        reset = QAction("&Reset map view", self)
        reset.setShortcut("Ctrl+0")
        reset.triggered.connect(lambda: self.map.reset_range())
        view.addAction(reset)
        find = QAction("&Find points…", self)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.triggered.connect(lambda: (self.search_edit.setFocus(), self.search_edit.selectAll()))
        view.addAction(find)
        manifold = QAction("Decoded &manifold", self)
        manifold.setShortcut("Ctrl+M")
        manifold.triggered.connect(lambda: self.manifold_check.toggle())
        view.addAction(manifold)
        export_manifold = QAction("&Export the manifold as PNG…", self)
        export_manifold.triggered.connect(self._ask_export_manifold)
        view.addAction(export_manifold)
        for number, (text, key) in enumerate(PROJECTIONS, start=1):
            act = QAction(f"Projection: {text}", self)
            act.setShortcut(f"Ctrl+{number}")
            act.triggered.connect(lambda _=False, k=key: self.projection_box.setCurrentIndex(
                self.projection_box.findData(k)))
            view.addAction(act)
        theme_menu = view.addMenu("&Theme")
        current = str(self.settings.value("theme", "system"))
        group = QActionGroup(self)
        for name in THEMES:
            act = QAction(name.capitalize(), self, checkable=True)
            act.setChecked(name == current)
            act.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            group.addAction(act)
            theme_menu.addAction(act)
        view.addSeparator()
        for dock in self.findChildren(QDockWidget):
            view.addAction(dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        keys = QAction("&Keyboard shortcuts", self)
        keys.setShortcut(QKeySequence.StandardKey.HelpContents)
        keys.triggered.connect(self.show_shortcuts)
        help_menu.addAction(keys)
        about = QAction("&About Latent Explorer", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def set_theme(self, name: str) -> None:
        self.settings.setValue("theme", name)
        apply_theme(name)
        self._theme_changed()

    def _theme_changed(self) -> None:
        self.map.apply_theme()
        self.map_info.setStyleSheet(muted_css())

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        from PySide6.QtCore import QEvent

        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # the system switched between light and dark
            self._theme_changed()

    def shortcuts(self) -> list[tuple[str, str]]:
        """(keys, what) for every menu action and button that has a shortcut."""
        rows = []
        for act in self.findChildren(QAction):
            key = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if key and act.text():
                rows.append((key, act.text().replace("&", "")))
        for button in self.findChildren(QPushButton):
            key = button.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if key:
                rows.append((key, button.text().replace("&", "")))
        return sorted(set(rows))

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{what}</td></tr>" for k, what in self.shortcuts())
        QMessageBox.information(self, "Keyboard shortcuts",
                                f"<table>{rows}</table><p>On the map: drag the ring cursor to decode; "
                                "click a point to select it; wheel to zoom; drag the background to pan.</p>")

    def show_about(self) -> None:
        QMessageBox.about(self, "About Latent Explorer", about_text())

    # ================================================================ recent files, drag and drop
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        if Path(path).parent == (RESOURCES / "demo").resolve():
            return
        files = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent_files", [path, *files][:MAX_RECENT])
        self.settings.setValue("last_dir", str(Path(path).parent))
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            act = self.recent_menu.addAction(Path(path).name)
            act.setToolTip(path)
            act.triggered.connect(lambda _=False, p=path: self.open_model(p))
        self.recent_menu.setEnabled(bool(files))

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if any(_droppable(u.toLocalFile()) for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt name)
        images = []
        for url in event.mimeData().urls():
            path = url.toLocalFile()
            if path.endswith(".safetensors"):
                self.open_model(path)
            elif path.endswith(".lexsession"):
                self.open_session(path)
            elif _droppable(path):
                images.append(path)
        if images:
            self.add_images(images)
