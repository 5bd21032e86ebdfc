"""The explorer window: model list, latent map, live decoding, sliders, samples."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFileDialog, QFormLayout, QFrame, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QMainWindow, QMessageBox, QProgressBar, QPushButton,
                               QScrollArea, QSlider, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from explorer.core.checkpoint import CheckpointError
from explorer.core.latent.isolated import ProjectionProcess
from explorer.core.latent.projection import ProjectionCache, cache_key

from .model_entry import ModelEntry
from .theme import THEMES, apply_theme, muted_css
from .views.arithmetic import ArithmeticPanel
from .views.compare_view import CompareView
from .views.image_panel import ImagePanel, grid, to_uint8_hwc
from .views.map_view import LatentMapView
from .views.sliders import LatentSliders
from .workers import LatestWinsWorker, TaskRunner

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
DEMO_MODELS = [RESOURCES / "demo" / "mnist-vae.safetensors", RESOURCES / "demo" / "mnist-ae.safetensors"]
FACES_DEMO = RESOURCES / "demo" / "faces-vae.safetensors"
MAX_RECENT = 10
SLIDER_REFRESH_MS = 30
SLOW_PROJECTIONS = ("tsne", "umap")
WARM_UP_DELAY_MS = 5000
DECODE_CHUNK = 64
MAX_HISTORY = 100  # epochs of weights kept for the latent-history slider
MAX_DROPPED_IMAGES = 2000
INVERT_OPTIONS: dict[str, Any] = {"steps": 300, "restarts": 4}  # GAN inversion of dropped images
PROJECTIONS = [("PCA", "pca"), ("t-SNE", "tsne"), ("UMAP", "umap"), ("Two latent dimensions", "dims")]


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area that it fills: a panel's minimum size then scrolls instead of
    adding up with the others into a window too large for a laptop screen."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    return area


class MainWindow(QMainWindow):
    modelReady = Signal(object)  # ModelEntry whose map is drawn
    decoded = Signal(object)  # (H, W, C) uint8 shown in the cursor panel
    # Options per projection method (tests shorten t-SNE with these).
    projection_options: dict[str, dict[str, Any]] = {}

    def __init__(self, *, synchronous: bool = False, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Latent Explorer")
        self.resize(1400, 880)
        self.setAcceptDrops(True)
        self.settings = settings or QSettings()
        self.entries: list[ModelEntry] = []
        self.current: ModelEntry | None = None
        self.models: list[dict[str, Any]] = []  # metadata of every opened model, in order
        self._datasets: dict[tuple, Any] = {}
        self._projection_task = None
        self._focus: dict[str, Any] | None = None  # while a group of files loads: which one to show
        self._pending_states: dict[str, Any] = {}  # path -> session ModelState to apply once its data is in
        self._selected = -1
        self._sample_seed = 0
        self.tasks = TaskRunner(synchronous=synchronous)
        self.projector = ProjectionProcess()
        self._warm_cancel = threading.Event()
        self._warm_scheduled = synchronous  # tests and scripts skip the warm-up
        self.projection_cache = ProjectionCache()
        self.decoder = LatestWinsWorker(self._decode_request, synchronous=synchronous)
        self.decoder.result.connect(self._show_decoded)
        self.decoder.failed.connect(lambda gen, msg: self.statusBar().showMessage(f"decode failed: {msg}", 5000))
        self.decode_times: list[float] = []
        # While the cursor is dragged the sliders follow at display rate, not at mouse rate: redrawing
        # a column of sliders on every mouse move would cost as much as the decode.
        self._slider_timer = QTimer(self)
        self._slider_timer.setSingleShot(True)
        self._slider_timer.setInterval(SLIDER_REFRESH_MS)
        self._slider_timer.timeout.connect(self._sync_sliders)

        self._build_ui()
        self._build_menus()
        self._set_busy(None)
        self.restore_layout()

    # ================================================================ UI
    def _build_ui(self) -> None:
        self.map = LatentMapView()
        self.map.nearest_fn = self._nearest
        self.map.cursorMoved.connect(self._cursor_moved)
        self.map.cursorMoveFinished.connect(self._cursor_move_finished)
        self.map.pointHovered.connect(self._hovered)
        self.map.pointClicked.connect(self.select_datum)
        self.placeholder = QLabel(
            "<h2>Latent Explorer</h2><p>Open a model with <b>File › Open…</b> (Ctrl+O), drop .safetensors "
            "files here, or choose <b>File › Open demo models</b>.</p>"
        )
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.tabs = QTabWidget()
        map_page = QWidget()
        mp = QVBoxLayout(map_page)
        mp.setContentsMargins(0, 0, 0, 0)
        mp.addWidget(self.map, 1)
        self.history_row = QWidget()
        hr = QHBoxLayout(self.history_row)
        hr.setContentsMargins(6, 0, 6, 2)
        hr.addWidget(QLabel("Latent history"))
        self.history_slider = QSlider(Qt.Orientation.Horizontal)
        self.history_slider.setToolTip("Replay the map at the end of each epoch of the training run")
        self.history_slider.valueChanged.connect(self._history_moved)
        hr.addWidget(self.history_slider, 1)
        self.history_label = QLabel("")
        hr.addWidget(self.history_label)
        self.history_row.setVisible(False)
        mp.addWidget(self.history_row)
        self.tabs.addTab(map_page, "Latent map")
        self.samples_panel = ImagePanel("Decoded samples from the prior N(0, I)", min_size=300)
        samples_page = QWidget()
        sl = QVBoxLayout(samples_page)
        sl.addWidget(self.samples_panel, 1)
        self.reroll_button = QPushButton("Re-roll samples")
        self.reroll_button.setShortcut("Ctrl+R")
        self.reroll_button.setToolTip("Draw a new grid of latent vectors from N(0, I) (Ctrl+R)")
        self.reroll_button.clicked.connect(self.reroll_samples)
        sl.addWidget(self.reroll_button)
        self.tabs.addTab(samples_page, "Prior samples")
        self.compare = CompareView(self)
        self.tabs.addTab(scrolled(self.compare), "Compare")
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)

        # Left: models and projection controls.
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(QLabel("<b>Models</b>"))
        self.model_list = QListWidget()
        self.model_list.setWordWrap(True)
        self.model_list.currentRowChanged.connect(self._model_row_changed)
        # The compare tab's decoder swap offers the open models: keep its choices in step with the list.
        self.model_list.model().rowsInserted.connect(lambda *_: self.compare.swap.models_changed())
        self.model_list.model().rowsRemoved.connect(lambda *_: self.compare.swap.models_changed())
        ll.addWidget(self.model_list, 1)
        form = QFormLayout()
        self.projection_box = QComboBox()
        for text, key in PROJECTIONS:
            self.projection_box.addItem(text, key)
        self.projection_box.setToolTip("How the latent space is flattened into the 2-D map")
        self.projection_box.currentIndexChanged.connect(lambda _: self.refresh_projection())
        form.addRow("Projection", self.projection_box)
        dims_row = QHBoxLayout()
        self.dim_x = QSpinBox()
        self.dim_y = QSpinBox()
        for spin, prefix in ((self.dim_x, "x = z"), (self.dim_y, "y = z")):
            spin.setPrefix(prefix)
            spin.valueChanged.connect(lambda _: self._dims_changed())
            dims_row.addWidget(spin)
        self.dim_y.setValue(1)
        self.dims_widget = QWidget()
        self.dims_widget.setLayout(dims_row)
        form.addRow("Dimensions", self.dims_widget)
        self.colour_box = QComboBox()
        self.colour_box.setToolTip("Colour the points by their label or by an attribute")
        self.colour_box.currentIndexChanged.connect(lambda _: self._recolour())
        form.addRow("Colour by", self.colour_box)
        ll.addLayout(form)
        self.map_info = QLabel("")
        self.map_info.setWordWrap(True)
        self.map_info.setStyleSheet(muted_css())
        ll.addWidget(self.map_info)
        dock = QDockWidget("Models", self)
        dock.setObjectName("models-dock")
        dock.setWidget(left)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        # Right: the decoded image at the cursor, hovered/selected data, sliders.
        right = QWidget()
        rl = QVBoxLayout(right)
        self.cursor_panel = ImagePanel("Decoded at the cursor", min_size=224)
        rl.addWidget(self.cursor_panel, 3)
        pair = QHBoxLayout()
        self.original_panel = ImagePanel("Datum", min_size=96)
        self.recon_panel = ImagePanel("Reconstruction", min_size=96)
        pair.addWidget(self.original_panel)
        pair.addWidget(self.recon_panel)
        rl.addLayout(pair, 2)
        self.sliders = LatentSliders()
        self.sliders.valuesChanged.connect(self._sliders_changed)
        rl.addWidget(self.sliders, 3)
        rdock = QDockWidget("Decoder", self)
        rdock.setObjectName("decoder-dock")
        rdock.setWidget(right)  # not scrolled: it spans the window's height, so its minimum adds to no other
        rdock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, rdock)
        self.resizeDocks([dock, rdock], [300, 380], Qt.Orientation.Horizontal)

        # Bottom: vector arithmetic, analogies, expressions, interpolation and traversals.
        self.arithmetic = ArithmeticPanel(self)
        bdock = QDockWidget("Arithmetic and paths", self)
        bdock.setObjectName("arithmetic-dock")
        bdock.setWidget(scrolled(self.arithmetic))
        bdock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                          | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        # The side docks keep the full height; the bottom dock sits under the map only.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, bdock)
        # Tall enough for the panels without a scroll bar (they scroll only when the window is small).
        self.resizeDocks([bdock], [320], Qt.Orientation.Vertical)
        self.arithmetic_dock = bdock

        # Training: a dock tabbed with the arithmetic one; the model being trained appears in the list.
        from .training import TrainingPanel

        self.training = TrainingPanel()
        self.training.modelSnapshot.connect(self._training_snapshot)
        self.training.trainingStarted.connect(lambda _info: self.training_dock.raise_())
        tdock = QDockWidget("Training", self)
        tdock.setObjectName("training-dock")
        tdock.setWidget(scrolled(self.training))
        tdock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                          | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                          | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, tdock)
        self.tabifyDockWidget(bdock, tdock)
        bdock.raise_()
        self.training_dock = tdock

        # Status bar: progress of background work with a cancel button.
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_projection)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self._update_dims_visibility()

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
        save_session = QAction("&Save session…", self)
        save_session.setShortcut(QKeySequence.StandardKey.Save)
        save_session.triggered.connect(self._ask_save_session)
        open_session = QAction("Open s&ession…", self)
        open_session.setShortcut("Ctrl+Shift+O")
        open_session.triggered.connect(self._ask_open_session)
        file_menu.addAction(open_session)
        file_menu.addAction(save_session)
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
        reset.triggered.connect(lambda: self.map.view.autoRange(padding=0.05))
        view.addAction(reset)
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

    # ================================================================ opening
    def _ask_open(self) -> None:
        start = self.settings.value("last_dir", str(Path.home()))
        paths, _ = QFileDialog.getOpenFileNames(self, "Open models", start, "Checkpoints (*.safetensors)")
        for path in paths:
            self.open_model(path)

    def open_demo(self) -> None:
        missing = [p for p in DEMO_MODELS if not p.exists()]
        if missing:
            self.show_error("Demo models missing", f"The bundled demo model {missing[0]} is not installed.")
            return
        # Show the VAE, whichever file finishes loading first.
        self._focus = {"path": str(DEMO_MODELS[0]), "pending": len(DEMO_MODELS)}
        for path in DEMO_MODELS:
            self.open_model(str(path))

    def show_import_dialog(self):
        from .views.import_dialog import ImportDialog

        dialog = ImportDialog(self)
        dialog.show()
        return dialog

    def _tab_changed(self, index: int) -> None:
        # First visit to Compare with two comparable models open (the demo's AE and VAE): show them at once
        # rather than an empty page and a button to find.
        if self.tabs.tabText(index) == "Compare" and not self.compare.entries and len(self.compare.candidates()) >= 2:
            self.compare.refresh()

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

    def open_model(self, path: str) -> bool:
        """Load a checkpoint in the background; errors go to a dialog. Returns False on a synchronous failure."""
        path = str(path)
        if not Path(path).exists():
            self.show_error("Cannot open model", f"{path}: file not found")
            return False
        self.statusBar().showMessage(f"Loading {Path(path).name}…")

        def work(progress, cancel):
            from explorer.core import checkpoint

            model = checkpoint.load(path)
            return model, file_identity(path)

        result: dict[str, bool] = {"ok": True}

        untrusted: dict[str, str] = {}

        def work_checked(progress, cancel):
            from explorer.core.adapter import UntrustedCodeError

            try:
                return work(progress, cancel)
            except UntrustedCodeError as exc:
                untrusted["path"] = exc.path
                raise

        def failed(msg: str) -> None:
            result["ok"] = False
            self._one_load_settled()
            self.statusBar().clearMessage()
            if "path" in untrusted and self.confirm_trust(untrusted["path"], path):
                from explorer.core.adapter import trust_code

                trust_code(untrusted["path"])
                self.open_model(path)
                return
            self.show_error("Cannot open model", _strip_exception(msg))

        self.tasks.start(work_checked, on_done=lambda result: self._model_loaded(path, *result), on_error=failed)
        return result["ok"]

    def _model_loaded(self, path: str, model, identity: str = "") -> None:
        meta = dict(getattr(model, "metadata", {}) or {})
        meta.setdefault("path", path)
        entry = ModelEntry(path=path, model=model, meta=meta, identity=identity)
        self.entries.append(entry)
        self.models.append(meta)
        self._remember_recent(path)
        item = QListWidgetItem(f"{entry.name}\n{entry.summary()}")
        item.setToolTip(path)
        self.model_list.addItem(item)
        if self._focus is None or path == self._focus["path"]:
            self.model_list.setCurrentRow(len(self.entries) - 1)
        self._one_load_settled()
        self.statusBar().showMessage(f"Opened {entry.name}", 3000)
        self._prepare_data(entry)

    def confirm_trust(self, code_path: str, checkpoint: str) -> bool:
        """An imported model runs the Python file (or archive) it names: ask before running it."""
        answer = QMessageBox.question(
            self, "Run this model's code?",
            f"{Path(checkpoint).name} was imported from your own model code:\n\n{code_path}\n\nOpening it runs "
            "that code. Only continue if you trust it (for example, you wrote it).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def _one_load_settled(self) -> None:
        if self._focus is not None:
            self._focus["pending"] -= 1
            if self._focus["pending"] <= 0:
                self._focus = None

    def close_current(self) -> None:
        if self.current is None:
            return
        row = self.entries.index(self.current)
        self.entries.pop(row)
        self.models.pop(row)
        self.model_list.takeItem(row)
        if not self.entries:
            self.current = None
            self.arithmetic.entry_changed(None)
            self.map.clear_points()
            self.cursor_panel.clear()
            self.sliders.set_dim(0)

    def show_error(self, title: str, text: str) -> None:
        self.statusBar().showMessage(text, 8000)
        QMessageBox.warning(self, title, text)

    # ================================================================ data + latents
    def _dataset_for(self, entry: ModelEntry):
        from explorer.core.data import load_dataset

        name = entry.meta.get("dataset")
        if not name:
            raise ValueError("this checkpoint does not say which dataset it was trained on")
        c, h, w = entry.model.image_shape
        # A face-style pair was trained on `count` generated faces: draw the same ones, so that its held-out
        # split is held out here too (as `swap apply` does).
        count = (entry.meta.get("swap_pair") or {}).get("count")
        key = (name, c, h, w, count)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(name, image_size=h if h == w else None, channels=c, count=count)
        return self._datasets[key]

    def _prepare_data(self, entry: ModelEntry) -> None:
        """Load the model's dataset and encode it (background), then draw the default map."""
        entry.status = ""
        self._set_busy("Encoding the dataset", cancellable=False)

        model = entry.model  # a training run may swap in newer weights meanwhile

        def work(progress, cancel):
            from explorer.core.latent.encoding import encode_dataset

            data = self._dataset_for(entry)
            if not model.capabilities.has_encoder:
                return data, None
            latents = encode_dataset(model, data.images,
                                     progress=lambda done, total: progress(done / max(total, 1), "encoding"),
                                     cancel=cancel)
            return data, latents

        def done(result) -> None:
            if entry.model is not model:  # stale: the encoding of the newer weights follows
                return
            entry.data, entry.latents = result
            entry.status = ""
            self._set_busy(None)
            self._fill_colour_box(entry)
            restoring = self._pending_states.pop(_path_key(entry.path), None)
            if restoring is not None:
                self._restore_model_state(entry, restoring)
            elif entry.latents is not None and entry.data.attributes is not None:
                # Datasets with attributes (faces, CelebA) get their vectors at once: "smiling" is then
                # one click away.
                self.arithmetic.compute_vectors(entry)
            if entry is self.current:
                self.arithmetic.entry_changed(entry)
                self.refresh_projection()

        def failed(msg: str) -> None:
            entry.status = _strip_exception(msg)
            self._set_busy(None)
            self.statusBar().showMessage(f"{entry.name}: no map ({entry.status})", 10000)
            if entry is self.current:
                self._show_entry(entry)

        self.tasks.start(work, on_done=done, on_error=failed, on_progress=self._progress)

    # ================================================================ projection
    def projection_key(self) -> str:
        method = self.projection_box.currentData()
        if method == "dims":
            return f"dims:{self.dim_x.value()}:{self.dim_y.value()}"
        return method

    def _dims_changed(self) -> None:
        if self.projection_box.currentData() == "dims":
            self.refresh_projection()

    def _update_dims_visibility(self) -> None:
        self.dims_widget.setEnabled(self.projection_box.currentData() == "dims")

    def refresh_projection(self) -> None:
        """Show the current projection of the current model, fitting it in the background if needed."""
        self._update_dims_visibility()
        entry = self.current
        if entry is None:
            return
        if entry.latents is None:
            self._show_entry(entry)
            return
        key = self.projection_key()
        if key in entry.maps:
            self._draw_map(entry, key)
            return
        method = self.projection_box.currentData()
        options: dict[str, Any] = dict(self.projection_options.get(method, {}))
        if method == "dims":
            options = {"i": self.dim_x.value(), "j": self.dim_y.value()}
        self.cancel_projection()
        slow = method in SLOW_PROJECTIONS
        self._set_busy(f"Computing {self.projection_box.currentText()}", cancellable=slow)
        latents = entry.latents
        projector, cache = self.projector, self.projection_cache
        key_hash = cache_key(entry.identity, entry.dataset_key(), method, options) if slow and entry.identity else None

        def work(progress, cancel):
            from explorer.core.latent.projection import make_projection

            if key_hash and cache is not None:
                cached = cache.get(key_hash)
                if cached is not None and cached.embedding.shape[0] == len(latents):
                    return cached, cached.embedding
            if slow:
                # In a child process: these libraries hold the GIL for long stretches, which would
                # freeze the window; and killing the child is the only prompt way to cancel them.
                proj = projector.fit(method, latents, options, progress=lambda f, msg="": progress(f, msg),
                                     cancel=cancel)
                if key_hash and cache is not None:
                    try:
                        cache.put(key_hash, proj)
                    except OSError:  # a full or read-only cache folder costs a recomputation, nothing else
                        pass
                return proj, proj.embedding
            proj = make_projection(method, **options)
            pos = proj.fit(latents, progress=lambda f, msg="": progress(f, msg), cancel=cancel)
            return proj, pos

        def done(result) -> None:
            self._projection_task = None
            proj, pos = result
            entry.projections[key] = proj
            entry.maps[key] = np.asarray(pos, np.float32)
            self._set_busy(None)
            if entry is self.current and key == self.projection_key():
                self._draw_map(entry, key)

        def failed(msg: str) -> None:
            self._projection_task = None
            self._set_busy(None)
            self.show_error("Projection failed", _strip_exception(msg))

        def cancelled() -> None:
            self._projection_task = None
            self._set_busy(None)
            self.statusBar().showMessage("Projection cancelled; the previous map is still shown", 5000)

        self._projection_task = self.tasks.start(work, on_done=done, on_error=failed, on_progress=self._progress,
                                                 on_cancel=cancelled)

    def cancel_projection(self) -> None:
        if self._projection_task is not None:
            self._projection_task.cancel()

    def _draw_map(self, entry: ModelEntry, key: str) -> None:
        pos = entry.maps[key]
        labels, names = self._colouring(entry)
        self.map.set_points(pos, labels, names)
        proj = entry.projections[key]
        x0, y0 = pos.min(0)
        x1, y1 = pos.max(0)
        pad_x, pad_y = (x1 - x0) * 0.1 + 1e-6, (y1 - y0) * 0.1 + 1e-6
        bounds = (float(x0 - pad_x), float(y0 - pad_y), float(x1 + pad_x), float(y1 + pad_y))
        if not proj.exact_inverse:
            self.map.set_trust_image(proj.trust_grid(bounds, 96), bounds)
        else:
            self.map.set_trust_image(None, None)
        self.map_info.setText(self._map_description(entry, key, proj))
        restore = entry.restore
        entry.restore = None
        if restore is not None:
            self.reroll_samples(seed=int(restore.get("sample_seed", 0)))
            for group, idx in (restore.get("groups") or {}).items():
                self.arithmetic.set_group(group, idx)
            self.arithmetic._refresh_vector_list()
            self.arithmetic._refresh_keyframes()
            selected = int(restore.get("selected", -1))
            if 0 <= selected < len(entry.data):
                self._selected = selected
                self.map.show_selected(selected)
                self._show_datum(entry, selected)
        if entry.cursor_latent is not None:
            self.set_cursor_latent(entry.cursor_latent, user=restore is None)
        else:
            # Start on a real test image: the first thing shown is a datum and its reconstruction.
            self.select_datum(entry.data.n_train if entry.data.n_test else 0)
        self.modelReady.emit(entry)
        self._schedule_umap_warm_up()

    def _schedule_umap_warm_up(self) -> None:
        """Compile UMAP's kernels in the projection process soon after the first map appears, so that
        choosing UMAP later takes seconds rather than a minute. Off with the setting warm_umap=false."""
        if self._warm_scheduled or str(self.settings.value("warm_umap", "true")).lower() == "false":
            return
        self._warm_scheduled = True

        def warm() -> None:
            try:
                self.projector.warm_up(cancel=self._warm_cancel)
            except Exception:  # noqa: BLE001 - a failed warm-up only means the first UMAP is slower
                pass

        QTimer.singleShot(WARM_UP_DELAY_MS, lambda: threading.Thread(target=warm, name="umap-warm-up",
                                                                     daemon=True).start())

    def _map_description(self, entry: ModelEntry, key: str, proj) -> str:
        n = len(entry.maps[key])
        if proj.exact_inverse:
            how = "The cursor decodes exactly the latent vector under it."
        else:
            how = ("The cursor's latent vector comes from a learned inverse map; it is trustworthy near the data "
                   "and less so in the grey areas.")
        return f"{n:,} points from {entry.meta.get('dataset')}. {how}"

    # ================================================================ colouring
    def _fill_colour_box(self, entry: ModelEntry) -> None:
        self.colour_box.blockSignals(True)
        self.colour_box.clear()
        self.colour_box.addItem("label", None)
        if entry.data is not None:
            for i, name in enumerate(entry.data.attribute_names):
                self.colour_box.addItem(name, i)
        self.colour_box.blockSignals(False)

    def _colouring(self, entry: ModelEntry) -> tuple[np.ndarray, list[str]]:
        data = entry.data
        attr = self.colour_box.currentData()
        if data is None:
            return np.zeros(0, np.int64), []
        if attr is None or data.attributes is None:
            return data.labels, list(data.label_names)
        values = data.attributes[:, attr]
        if set(np.unique(values)) <= {0.0, 1.0}:
            return values.astype(np.int64), [f"not {data.attribute_names[attr]}", data.attribute_names[attr]]
        bins = np.clip((values * 5).astype(np.int64), 0, 4)
        return bins, [f"{data.attribute_names[attr]} {i / 5:.1f}–{(i + 1) / 5:.1f}" for i in range(5)]

    def _recolour(self) -> None:
        entry = self.current
        if entry is None or entry.data is None or not len(self.map.positions):
            return
        labels, names = self._colouring(entry)
        self.map.set_labels(labels, names)

    # ================================================================ model switching
    def _model_row_changed(self, row: int) -> None:
        if 0 <= row < len(self.entries):
            self._show_entry(self.entries[row])

    def _show_entry(self, entry: ModelEntry) -> None:
        self.current = entry
        self.decoder.reset_cost()
        self._selected = -1
        self.sliders.set_dim(entry.model.latent_dim)
        for spin in (self.dim_x, self.dim_y):
            spin.setRange(0, entry.model.latent_dim - 1)
        self._fill_colour_box(entry)
        self.original_panel.clear()
        self.recon_panel.clear()
        self.map.show_selected(-1)
        self._update_history_slider()
        self.arithmetic.entry_changed(entry)
        self.reroll_samples(reset=True)
        if entry.latents is not None:
            self.refresh_projection()
            return
        self.map.clear_points()
        self.map.set_trust_image(None, None)
        if entry.model.capabilities.has_encoder and not entry.status:
            self.map_info.setText("Encoding the dataset…")  # the map follows when that finishes
            return
        if entry.model.capabilities.has_encoder:
            reason = entry.status
        else:
            reason = f"{entry.model.family.upper()} models have no encoder: explore with the sliders and samples"
        self.map_info.setText(f"No latent map: {reason}.")
        restore, entry.restore = entry.restore, None
        if restore is not None:
            self.reroll_samples(seed=int(restore.get("sample_seed", 0)))
        start = entry.cursor_latent if entry.cursor_latent is not None else np.zeros(entry.model.latent_dim)
        self.set_cursor_latent(start, user=restore is None)

    # ================================================================ cursor + decoding
    def _cursor_moved(self, x: float, y: float) -> None:
        entry = self.current
        if entry is None:
            return
        proj = entry.projections.get(self.projection_key())
        if proj is None:
            return
        z = proj.inverse(np.array([[x, y]], np.float32))[0].astype(np.float32)
        entry.cursor_latent = z
        self.arithmetic.cursor_edited()
        self._request_decode(entry, z, (x, y))
        if not self._slider_timer.isActive():
            self._slider_timer.start()

    def _cursor_move_finished(self, x: float, y: float) -> None:
        self._cursor_moved(x, y)
        self._slider_timer.stop()
        self._sync_sliders()

    def _sync_sliders(self) -> None:
        if self.current is not None and self.current.cursor_latent is not None:
            self.sliders.set_values(self.current.cursor_latent)

    def _sliders_changed(self, z: np.ndarray) -> None:
        entry = self.current
        if entry is None:
            return
        entry.cursor_latent = z
        self.arithmetic.cursor_edited()
        pos = entry.locate(z, self.projection_key())
        if pos is not None:
            self.map.set_cursor(*pos)
        self._request_decode(entry, z, pos)

    def set_cursor_latent(self, z: np.ndarray, user: bool = True) -> None:
        """Put the cursor on a latent vector (moves the map cursor and sliders, decodes). ``user=False``
        for moves made by a tool (applying a vector, playing a path) that keeps its own reference point."""
        entry = self.current
        if entry is None:
            return
        if user:
            self.arithmetic.cursor_edited()
        z = np.asarray(z, np.float32).copy()
        entry.cursor_latent = z
        self.sliders.set_values(z)
        pos = entry.locate(z, self.projection_key())
        if pos is not None:
            self.map.set_cursor(*pos)
        self._request_decode(entry, z, pos)

    def _request_decode(self, entry: ModelEntry, z: np.ndarray, pos) -> None:
        self.decoder.submit((entry, z, pos, time.perf_counter()))

    @staticmethod
    def _decode_request(request):
        entry, z, pos, _t = request
        return entry.decode_uint8(z)

    def _show_decoded(self, gen: int, request, image: np.ndarray) -> None:
        entry, z, pos, t0 = request
        if entry is not self.current:
            return
        coords = " ".join(f"{v:+.2f}" for v in z[:8]) + (" …" if len(z) > 8 else "")
        where = f"map ({pos[0]:.2f}, {pos[1]:.2f})\n" if pos is not None else ""
        self.cursor_panel.show_array(image, f"{where}z = [{coords}]")
        self.decode_times.append(time.perf_counter() - t0)
        del self.decode_times[:-500]
        self.decoded.emit(image)

    # ================================================================ training
    def _training_snapshot(self, snap) -> None:
        """A training run reached an epoch end: show (or update) its model, rebuilt from the snapshot's
        CPU weights, and re-encode the data for its map. The live module is never touched."""
        entry = next((e for e in self.entries if e.run_id == snap.run_id), None)
        model = snap.build_model()
        if entry is None:
            meta = snap.metadata()
            meta.setdefault("path", snap.checkpoint or "")
            entry = ModelEntry(path=snap.checkpoint or f"training-{snap.run_id}.safetensors", model=model,
                               meta=meta, run_id=snap.run_id)
            self.entries.append(entry)
            self.models.append(meta)
            item = QListWidgetItem()
            self.model_list.addItem(item)
        else:
            entry.model = model
            entry.meta = snap.metadata()
        entry.history.append(snap)
        del entry.history[:-MAX_HISTORY]
        row = self.entries.index(entry)
        state = "final" if snap.final else "training"
        self.model_list.item(row).setText(f"{entry.name} ({state}, epoch {snap.epoch})\n{entry.summary()}")
        if self.current is None or (entry is self.current and not self._history_pinned(entry)):
            if self.current is None:
                self.model_list.setCurrentRow(row)
            self._refresh_training_entry(entry)
        self._update_history_slider()

    def _history_pinned(self, entry: ModelEntry) -> bool:
        """The user has moved the history slider off the newest epoch: leave their view alone."""
        return entry is self.current and self.history_row.isVisible() and \
            self.history_slider.value() < self.history_slider.maximum()

    def _refresh_training_entry(self, entry: ModelEntry) -> None:
        """Re-encode and redraw with the entry's current weights (background), keeping the projection."""
        entry.latents = None
        entry.projections.clear()
        entry.maps.clear()
        self.decoder.reset_cost()
        self._prepare_data(entry)

    def _update_history_slider(self) -> None:
        entry = self.current
        history = entry.history if entry is not None else []
        self.history_row.setVisible(len(history) > 1)
        if not history:
            return
        pinned = self._history_pinned(entry)
        self.history_slider.blockSignals(True)
        self.history_slider.setRange(0, len(history) - 1)
        if not pinned:
            self.history_slider.setValue(len(history) - 1)
        self.history_slider.blockSignals(False)
        self.history_label.setText(f"epoch {history[self.history_slider.value()].epoch}")

    def _history_moved(self, index: int) -> None:
        entry = self.current
        if entry is None or not 0 <= index < len(entry.history):
            return
        snap = entry.history[index]
        self.history_label.setText(f"epoch {snap.epoch}")
        entry.model = snap.build_model()
        self._refresh_training_entry(entry)

    # ================================================================ sessions
    def session(self):
        """Everything needed to reproduce this exploration (see explorer.core.session)."""
        from explorer.core.session import ModelState, Session

        states = []
        for entry in self.entries:
            vecs = entry.vectors or {}
            groups = {}
            if entry is self.current:
                groups = {g: idx for g, idx in self.arithmetic._groups.items() if idx is not None}
            states.append(ModelState(
                path=str(Path(entry.path).resolve()), identity=entry.identity,
                cursor=None if entry.cursor_latent is None else entry.cursor_latent.copy(),
                selected=self._selected if entry is self.current else -1,
                vectors={k: np.asarray(vecs[k]) for k in vecs},
                vector_info={k: dict(entry.vectors.info.get(k, {})) for k in vecs} if vecs else {},
                keyframes=list(entry.keyframes), groups=groups, sample_seed=self._sample_seed))
        view = {"projection": self.projection_box.currentData(), "dim_x": self.dim_x.value(),
                "dim_y": self.dim_y.value(), "colour_by": self.colour_box.currentText()}
        current = self.entries.index(self.current) if self.current in self.entries else -1
        return Session(models=states, current=current, view=view)

    def save_session(self, path: str) -> None:
        session = self.session()
        self.run_io(lambda: session.save(path), f"Saved session {Path(path).name}")

    def open_session(self, path: str) -> None:
        from explorer.core.session import Session

        def failed(msg: str) -> None:
            self.show_error("Cannot open session", _strip_exception(msg))

        self.tasks.start(lambda progress, cancel: Session.load(path), on_done=self.apply_session, on_error=failed)

    def apply_session(self, session) -> None:
        """Open the session's models and restore each one's state as soon as its data is encoded."""
        view = session.view
        index = self.projection_box.findData(view.get("projection"))
        if index >= 0:
            self.projection_box.blockSignals(True)
            self.projection_box.setCurrentIndex(index)
            self.projection_box.blockSignals(False)
            self._update_dims_visibility()
        for spin, key in ((self.dim_x, "dim_x"), (self.dim_y, "dim_y")):
            spin.blockSignals(True)
            spin.setMaximum(max(spin.maximum(), int(view.get(key, 0))))
            spin.setValue(int(view.get(key, spin.value())))
            spin.blockSignals(False)
        missing = [s.path for s in session.models if not Path(s.path).exists()]
        if missing:
            self.show_error("Session: models not found", "These checkpoints are no longer there:\n" + "\n".join(missing))
        present = [s for s in session.models if Path(s.path).exists()]
        if not present:
            return
        shown = session.models[session.current] if 0 <= session.current < len(session.models) else present[0]
        self._focus = {"path": shown.path, "pending": len(present)} if shown in present else None
        for state in present:
            self._pending_states[_path_key(state.path)] = state
            self.open_model(state.path)

    def _restore_model_state(self, entry: ModelEntry, state) -> None:
        from explorer.core.latent.arithmetic import NamedVectors

        if state.identity and entry.identity and state.identity != entry.identity:
            self.statusBar().showMessage(f"{entry.name} has changed since the session was saved: "
                                         "its images will differ", 10000)
        dim = entry.model.latent_dim
        try:
            if state.vectors:
                entry.vectors = NamedVectors(dim, state.vectors)
                for name, info in state.vector_info.items():
                    if name in entry.vectors:
                        entry.vectors.info[name] = info
            entry.keyframes = [(label, z) for label, z in state.keyframes if np.shape(z) == (dim,)]
            if state.cursor is not None and np.shape(state.cursor) == (dim,):
                entry.cursor_latent = np.asarray(state.cursor, np.float32)
        except ValueError as exc:  # a vector of the wrong size: keep what fits, say what did not
            self.statusBar().showMessage(f"{entry.name}: part of the session was skipped ({exc})", 10000)
        entry.restore = {"selected": state.selected, "groups": state.groups, "sample_seed": state.sample_seed}

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

    # ================================================================ helpers for the tool panels
    def selected_index(self) -> int:
        return self._selected

    def locate_many(self, latents: np.ndarray) -> np.ndarray | None:
        """Map positions (M, 2) of latent vectors under the current projection, or None without a map."""
        entry = self.current
        proj = entry.projections.get(self.projection_key()) if entry is not None else None
        if proj is None:
            return None
        return np.asarray(proj.locate(np.asarray(latents, np.float32)), np.float64)

    def decode_many(self, entry: ModelEntry, latents: np.ndarray, on_done, error_label=None) -> None:
        """Decode (N, D) latents to (N, H, W, C) uint8 in the background, in chunks."""
        z = np.asarray(latents, np.float32)

        def work(progress, cancel):
            chunks = []
            for i in range(0, len(z), DECODE_CHUNK):
                chunks.append(entry.decode_batch_uint8(z[i : i + DECODE_CHUNK]))
                progress(min(1.0, (i + DECODE_CHUNK) / len(z)), "decoding")
            return np.concatenate(chunks)

        def failed(msg: str) -> None:
            text = _strip_exception(msg)
            if error_label is not None:
                error_label.setText(text)
            self.statusBar().showMessage(f"decoding failed: {text}", 8000)

        self.tasks.start(work, on_done=on_done, on_error=failed)

    def run_io(self, fn, message: str, error_label=None, on_done=None) -> None:
        """Run a file operation off the GUI thread; report success in the status bar, errors in the label."""

        def done(result) -> None:
            self.statusBar().showMessage(message, 5000)
            if error_label is not None:
                error_label.setText("")
            if on_done is not None:
                on_done(result)

        def failed(msg: str) -> None:
            text = _strip_exception(msg)
            if error_label is not None:
                error_label.setText(text)
            self.statusBar().showMessage(text, 8000)

        self.tasks.start(lambda progress, cancel: fn(), on_done=done, on_error=failed)

    # ================================================================ hover / select
    def _nearest(self, points: np.ndarray) -> tuple[float, int]:
        entry = self.current
        proj = entry.projections.get(self.projection_key()) if entry else None
        if proj is None:
            return float("inf"), -1
        dist, idx = proj.nearest(points, k=1)
        return float(np.ravel(dist)[0]), int(np.ravel(idx)[0])

    def _datum_caption(self, entry: ModelEntry, idx: int) -> str:
        data = entry.data
        label = data.labels[idx]
        name = data.label_names[label] if 0 <= label < len(data.label_names) else "?"
        split = "train" if idx < data.n_train else "test"
        return f"#{idx} · {split} · label {name}"

    def _hovered(self, idx: int) -> None:
        entry = self.current
        if entry is None or entry.data is None:
            return
        if idx < 0:
            if self._selected >= 0:
                self._show_datum(entry, self._selected)
            return
        self._show_datum(entry, idx, hover=True)

    def select_datum(self, idx: int) -> None:
        entry = self.current
        if entry is None or entry.data is None or not 0 <= idx < len(entry.data):
            return
        self._selected = idx
        self.map.show_selected(idx)
        self._show_datum(entry, idx)
        if entry.latents is not None:
            self.set_cursor_latent(entry.latents[idx])

    def _show_datum(self, entry: ModelEntry, idx: int, hover: bool = False) -> None:
        original = to_uint8_hwc(entry.data.images[idx])
        prefix = "hovered " if hover else "selected "
        self.original_panel.show_array(original, prefix + self._datum_caption(entry, idx))
        recon = entry.reconstruct_uint8(idx)
        if recon is not None:
            err = float(np.mean((recon.astype(np.float32) - original.astype(np.float32)) ** 2)) / 255**2
            self.recon_panel.show_array(recon, f"pixel MSE {err:.4f}")

    # ================================================================ samples
    def reroll_samples(self, reset: bool = False, seed: int | None = None) -> None:
        entry = self.current
        if entry is None:
            return
        if seed is not None:
            self._sample_seed = int(seed)
        else:
            self._sample_seed = 0 if reset else self._sample_seed + 1
        import torch

        gen = torch.Generator().manual_seed(self._sample_seed)
        z = torch.randn(64, entry.model.latent_dim, generator=gen).numpy()
        images = entry.decode_batch_uint8(z)
        note = "" if entry.model.capabilities.is_generative else (
            " — a plain AE was never trained to decode N(0, I) samples: expect holes and blur")
        self.samples_panel.show_array(grid(images, 8), f"64 samples, seed {self._sample_seed}{note}")

    # ================================================================ busy state
    def _set_busy(self, message: str | None, cancellable: bool = False) -> None:
        busy = message is not None
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy and cancellable)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat(f"{message}… %p%")
            self.statusBar().showMessage(message + "…")
        else:
            self.statusBar().clearMessage()

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))

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

    # ================================================================ your own images
    def add_images(self, paths: list[str]) -> None:
        """Resize image files (or every image in dropped folders) to the model's input, encode them and
        place them on the map as highlighted points; each becomes a named vector (img_<file name>) usable
        in expressions, analogies and as keyframes, and the cursor moves onto the first."""
        from explorer.core.data.folder import IMAGE_EXTENSIONS
        from explorer.core.data.transforms import convert_channels, decode_files

        entry = self.current
        if entry is None:
            self.show_error("No model", "Open a model first, then drop images onto it.")
            return
        invert = not entry.model.capabilities.has_encoder  # GANs: optimise z to reproduce each image
        c, h, _ = entry.model.image_shape
        files: list[Path] = []
        for p in map(Path, paths):
            if p.is_dir():
                files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
            else:
                files.append(p)
        files = files[:MAX_DROPPED_IMAGES]
        self._set_busy(f"{'Inverting' if invert else 'Encoding'} {len(files)} images", cancellable=invert)
        key = self.projection_key()
        proj = entry.projections.get(key)
        projector = self.projector

        def work(progress, cancel):
            import torch

            decoded = decode_files(files, h)
            if not len(decoded.images):
                reasons = "; ".join(f"{f.name}: {why}" for f, why in decoded.failures[:3])
                raise ValueError(f"none of the {len(files)} files could be read as an image ({reasons})")
            images = convert_channels(decoded.images, c)
            if invert:
                from explorer.core.inversion import images_to_latents

                z, _errors, _how = images_to_latents(
                    entry.model, images, cancel=cancel, **INVERT_OPTIONS,
                    progress=lambda done, total: progress(done / max(total, 1), "inverting the generator"))
                z = np.asarray(z, np.float32)
            else:
                with torch.inference_mode():
                    z = entry.model.encode(torch.from_numpy(images).float().div_(255.0)).numpy().astype(np.float32)
            pos = None
            if proj is not None:
                if proj.exact_inverse:
                    pos = proj.transform(z)
                elif projector.can_transform(proj):
                    pos = projector.transform(proj, z, cancel=cancel)  # openTSNE's / UMAP's own placement
                else:
                    pos = proj.locate(z)
            names = [f for f, ok in zip(files, decoded.ok) if ok]
            return images, z, pos, names, decoded.failures

        def done(result) -> None:
            self._set_busy(None)
            images, z, pos, names, failures = result
            if entry is not self.current:
                return
            from explorer.core.latent.arithmetic import NamedVectors, identifier

            if entry.vectors is None:
                entry.vectors = NamedVectors(entry.model.latent_dim)
            labels = []
            for f, vec in zip(names, z):
                name = identifier("img_" + f.stem)
                entry.vectors[name] = vec
                entry.vectors.info[name] = {"source": str(f), "kind": "image"}
                labels.append(name)
            entry.dropped = (images, z, pos, labels)
            self.map.set_extra_points(pos)
            self.arithmetic._refresh_vector_list()
            self.set_cursor_latent(z[0])
            self.original_panel.show_array(to_uint8_hwc(images[0]), f"dropped {names[0].name}")
            msg = f"Placed {len(z)} images on the map (vectors {labels[0]}…)"
            if failures:
                msg += f"; {len(failures)} files skipped ({failures[0][0].name}: {failures[0][1]})"
            self.statusBar().showMessage(msg, 10000)

        def failed(msg: str) -> None:
            self._set_busy(None)
            self.show_error("Cannot add images", _strip_exception(msg))

        def cancelled() -> None:
            self._set_busy(None)
            self.statusBar().showMessage("Adding images cancelled", 5000)

        self._projection_task = self.tasks.start(work, on_done=done, on_error=failed, on_progress=self._progress,
                                                 on_cancel=cancelled)

    # ================================================================ shutdown
    def restore_layout(self) -> None:
        """Window size, dock positions and the projection choice from the last session."""
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        method = self.settings.value("map/projection")
        index = self.projection_box.findData(method) if method else -1
        if index >= 0:
            self.projection_box.blockSignals(True)
            self.projection_box.setCurrentIndex(index)
            self.projection_box.blockSignals(False)
            self._update_dims_visibility()

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("map/projection", self.projection_box.currentData())
        self.settings.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if not self.training.request_close():  # asks, then stops cleanly and saves
            event.ignore()
            return
        self.save_layout()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        self._warm_cancel.set()
        self.training.shutdown()
        self.cancel_projection()
        self.projector.kill()  # a fit in the child would otherwise hold up the task pool below
        self.decoder.close()
        self.tasks.shutdown()
        self.projector.close()


def _droppable(path: str) -> bool:
    from explorer.core.data.folder import IMAGE_EXTENSIONS

    p = Path(path)
    return p.suffix in (".safetensors", ".lexsession") or p.suffix.lower() in IMAGE_EXTENSIONS or p.is_dir()


def _path_key(path: str) -> str:
    return str(Path(path).resolve())


def about_text() -> str:
    import platform

    import pyqtgraph
    import PySide6
    import torch

    from explorer import __version__

    return (
        f"<h3>Latent Explorer {__version__}</h3>"
        "<p>Explore the latent spaces of autoencoders, VAEs and GANs: a decodable 2-D map, vector "
        "arithmetic, interpolation, comparison and training.</p>"
        f"<p>Python {platform.python_version()} · PySide6 {PySide6.__version__} · "
        f"pyqtgraph {pyqtgraph.__version__} · torch {torch.__version__}</p>"
        "<p><b>Data licences.</b> MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0. Fashion-MNIST: "
        "Zalando Research, MIT. Digits (scikit-learn): UCI ML repository, CC BY 4.0. The procedural faces "
        "are drawn by this program. CelebA and your own folders: the licence of their owners.</p>"
    )


def file_identity(path: str) -> str:
    """sha256 of a checkpoint's bytes: names its cached maps, and changes whenever the weights do."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _strip_exception(msg: str) -> str:
    """'explorer.core.checkpoint.CheckpointError: x.safetensors: ...' -> 'x.safetensors: ...'."""
    head, sep, tail = msg.partition(": ")
    if sep and ("Error" in head or "Exception" in head) and " " not in head:
        return tail
    return msg


__all__ = ["MainWindow", "CheckpointError", "DEMO_MODELS"]
