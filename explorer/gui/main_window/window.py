"""The explorer window: docks, menus and wiring only.

The window holds no exploration state. :class:`~explorer.gui.controllers.explorer.ExplorerController` owns the
Qt-free :class:`~explorer.core.explore.ExplorerState` and the controllers that do the work; the views render
what the state's events say and send the user's intents to the controllers. See ``controllers/cursor.py`` for
the drag path from a mouse position to pixels on screen.
"""


from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.core.explore import OpenModel, ProjectionChoice

from ..controllers.data import strip_exception
from ..controllers.explorer import ExplorerController
from ..controllers.projection import ProjectionController
from ..theme import muted_css
from ..views.arithmetic import ArithmeticPanel
from ..views.compare_view import CompareView
from ..views.completion_panel import CompletionPanel, PatchesView
from ..views.image_panel import ImagePanel
from ..views.map_view import LatentMapView
from ..views.sliders import LatentSliders
from .common import PROJECTIONS, SLIDER_REFRESH_MS, fit_to_screen, scrolled
from .files import FilesMixin
from .map_tools import MapToolsMixin
from .menus import MenusMixin


class MainWindow(MapToolsMixin, MenusMixin, FilesMixin, QMainWindow):
    modelReady = Signal(object)  # OpenModel whose map is drawn
    decoded = Signal(object)  # (H, W, C) uint8 shown in the cursor panel

    def __init__(self, *, synchronous: bool = False, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Latent Explorer")
        self.setAcceptDrops(True)
        self.settings = settings or QSettings()
        warm = not synchronous and str(self.settings.value("warm_umap", "true")).lower() != "false"
        self.explorer = ExplorerController(synchronous=synchronous, warm_up=warm)
        self.state = self.explorer.state
        self.tasks = self.explorer.tasks
        self.explorer.data.confirm_trust = self.confirm_trust
        self.explorer.data.confirm_data = self._ask_yes_no
        self.explorer.data.on_loaded.append(self._remember_recent)
        # While the cursor is dragged the sliders follow at display rate, not at mouse rate: redrawing
        # a column of sliders on every mouse move would cost as much as the decode.
        self._computing_values: set[tuple[int, str]] = set()  # per-point colourings being computed
        self._slider_timer = QTimer(self)
        self._slider_timer.setSingleShot(True)
        self._slider_timer.setInterval(SLIDER_REFRESH_MS)
        self._slider_timer.timeout.connect(self._sync_sliders)
        self._build_ui()
        self._build_menus()
        self._wire()
        self._set_busy(None)
        fit_to_screen(self)
        self.restore_layout()

    # ================================================================ what tests and tools reach
    @property
    def current(self) -> OpenModel | None:
        return self.state.current

    @property
    def entries(self) -> list[OpenModel]:
        return self.state.models

    @property
    def models(self) -> list[dict[str, Any]]:
        return [e.meta for e in self.state.models]

    @property
    def projector(self):
        return self.explorer.projections.projector

    @property
    def projection_task(self):
        return self.explorer.projections.task

    @property
    def decode_times(self) -> list[float]:
        return self.explorer.cursor.decode_times

    @property
    def projection_options(self) -> dict[str, dict[str, Any]]:
        return ProjectionController.options

    def projection_key(self) -> str:
        """The projection shown for the current model (or the one asked for, before any is shown)."""
        entry = self.state.current
        return entry.active if entry is not None and entry.active else self.state.requested.key

    def open_model(self, path: str) -> bool:
        return self.explorer.open_model(path)

    def select_datum(self, idx: int) -> None:
        self.explorer.select_datum(idx)

    def selected_index(self) -> int:
        return self.explorer.selected_index()

    def set_cursor_latent(self, z: np.ndarray, user: bool = True) -> None:
        self.explorer.set_cursor_latent(z, user)

    def reroll_samples(self, reset: bool = False, seed: int | None = None) -> None:
        self.explorer.samples.reroll(reset=reset, seed=seed)

    def add_images(self, paths: list[str]) -> None:
        self.explorer.dropped.add_images([str(p) for p in paths])

    def refresh_projection(self) -> None:
        self.explorer.projections.ensure(self.state.current)

    def cancel_projection(self) -> None:
        self.explorer.cancel()

    # ================================================================ UI
    def _build_ui(self) -> None:
        self.map = LatentMapView()
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
        hr.addWidget(self.history_slider, 1)
        self.history_label = QLabel("")
        hr.addWidget(self.history_label)
        self.history_row.setVisible(False)
        mp.addWidget(self.history_row)
        self.tabs.addTab(map_page, "Latent map")
        self.preview_label = QLabel(self.map)  # inset: a slow map forming (t-SNE streams its partial maps)
        self.preview_label.setStyleSheet("border: 1px solid #888; background: white;")
        self.preview_label.hide()
        self.samples_panel = ImagePanel("Decoded samples from the prior N(0, I)", min_size=300)
        samples_page = QWidget()
        sl = QVBoxLayout(samples_page)
        sl.addWidget(self.samples_panel, 1)
        self.reroll_button = QPushButton("Re-roll samples")
        self.reroll_button.setShortcut("Ctrl+R")
        self.reroll_button.setToolTip("Draw a new grid of latent vectors from N(0, I) (Ctrl+R)")
        self.reroll_button.clicked.connect(lambda: self.reroll_samples())
        sl.addWidget(self.reroll_button)
        self.tabs.addTab(samples_page, "Prior samples")
        self.compare = CompareView(self.explorer)
        self.tabs.addTab(scrolled(self.compare), "Compare")
        self.patches = PatchesView(self.explorer)
        self.tabs.addTab(scrolled(self.patches), "Patches")
        self.setCentralWidget(self.tabs)

        # Left: models and projection controls.
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(QLabel("<b>Models</b>"))
        self.model_list = QListWidget()
        self.model_list.setWordWrap(True)
        ll.addWidget(self.model_list, 1)
        form = QFormLayout()
        self.projection_box = QComboBox()
        for text, key in PROJECTIONS:
            self.projection_box.addItem(text, key)
        self.projection_box.setToolTip("How the latent space is flattened into the 2-D map (Ctrl+1 … Ctrl+4)")
        form.addRow("Projection", self.projection_box)
        dims_row = QHBoxLayout()
        self.dim_x = QSpinBox()
        self.dim_y = QSpinBox()
        for spin, prefix in ((self.dim_x, "x = z"), (self.dim_y, "y = z")):
            spin.setPrefix(prefix)
            dims_row.addWidget(spin)
        self.dim_y.setValue(1)
        self.dims_widget = QWidget()
        self.dims_widget.setLayout(dims_row)
        form.addRow("Dimensions", self.dims_widget)
        self.colour_box = QComboBox()
        self.colour_box.setToolTip("Colour the points by their label or by an attribute")
        form.addRow("Colour by", self.colour_box)
        self.colour_bar = QLabel()
        self.colour_bar.setToolTip("The colour ramp of a continuous value: low on the left, high on the right")
        self.colour_bar.setVisible(False)
        form.addRow("", self.colour_bar)
        manifold_row = QVBoxLayout()  # stacked: side by side they widen the dock past a laptop's share
        self.manifold_check = QCheckBox("Decoded manifold")
        self.manifold_check.setToolTip("Tile the visible map with images decoded at the tile centres (Ctrl+M); "
                                       "greyed where a learned inverse is not trusted")
        self.manifold_only = QCheckBox("instead of points")
        self.manifold_only.setToolTip("Hide the points and show only the decoded tiles")
        self.manifold_only.setEnabled(False)
        manifold_row.addWidget(self.manifold_check)
        manifold_row.addWidget(self.manifold_only)
        form.addRow("Show", manifold_row)
        ll.addLayout(form)
        self.map_info = QLabel("")
        self.map_info.setWordWrap(True)
        self.map_info.setStyleSheet(muted_css())
        ll.addWidget(self.map_info)
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Find points (Ctrl+F)")
        self.search_edit.setToolTip("Search by label, attribute value (name>x, name<x, name=x), index (#N or "
                                    "N-M) or dropped-image name; matches are ringed on the map, Enter jumps there")
        self.search_edit.setClearButtonEnabled(True)
        ll.addWidget(self.search_edit)
        self.search_info = QLabel("")
        self.search_info.setWordWrap(True)
        self.search_info.setStyleSheet(muted_css())
        ll.addWidget(self.search_info)
        ll.addWidget(QLabel("<b>Nearest in latent space</b>"))
        self.neighbour_list = QListWidget()
        self.neighbour_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.neighbour_list.setIconSize(QSize(48, 48))
        self.neighbour_list.setMovement(QListWidget.Movement.Static)
        self.neighbour_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        # Room for the two caption lines under each thumbnail (label, distance); the index is in the tooltip.
        self.neighbour_list.setGridSize(QSize(76, 84))
        self.neighbour_list.setWordWrap(True)
        self.neighbour_list.setMaximumHeight(150)
        self.neighbour_list.setToolTip("The selected point's nearest neighbours by latent distance; click one "
                                       "to select it")
        ll.addWidget(self.neighbour_list)
        dock = QDockWidget("Models", self)
        dock.setObjectName("models-dock")
        dock.setWidget(scrolled(left))
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        # Right: the decoded image at the cursor, hovered/selected data, sliders.
        right = QWidget()
        rl = QVBoxLayout(right)
        self.cursor_panel = ImagePanel("Decoded at the cursor", min_size=200)
        rl.addWidget(self.cursor_panel, 3)
        pair = QHBoxLayout()
        self.original_panel = ImagePanel("Datum", min_size=96)
        self.recon_panel = ImagePanel("Reconstruction", min_size=96)
        pair.addWidget(self.original_panel)
        pair.addWidget(self.recon_panel)
        rl.addLayout(pair, 2)
        self.sliders = LatentSliders()
        rl.addWidget(self.sliders, 3)
        rdock = QDockWidget("Decoder", self)
        rdock.setObjectName("decoder-dock")
        rdock.setWidget(right)  # not scrolled: it spans the window's height, so its minimum adds to no other
        rdock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, rdock)
        self.resizeDocks([dock, rdock], [280, 360], Qt.Orientation.Horizontal)

        # Bottom: vector arithmetic, analogies, expressions, interpolation and traversals.
        self.arithmetic = ArithmeticPanel(self.explorer)
        bdock = QDockWidget("Arithmetic and paths", self)
        bdock.setObjectName("arithmetic-dock")
        bdock.setWidget(scrolled(self.arithmetic))
        bdock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                          | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        # The side docks keep the full height; the bottom dock sits under the map only.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, bdock)
        self.resizeDocks([bdock], [300], Qt.Orientation.Vertical)
        self.arithmetic_dock = bdock

        # Training: a dock tabbed with the arithmetic one; the model being trained appears in the list.
        from ..training import TrainingPanel

        self.training = TrainingPanel()
        self.explorer.checkpoint_dir = lambda: str(self.training.checkpoint_dir)
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

        # Image completion: a third dock in the same tab group.
        self.completion = CompletionPanel(self.explorer)
        cdock = QDockWidget("Complete", self)
        cdock.setObjectName("completion-dock")
        cdock.setWidget(scrolled(self.completion))
        cdock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                          | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                          | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, cdock)
        self.tabifyDockWidget(self.arithmetic_dock, cdock)
        bdock.raise_()
        self.completion_dock = cdock

        # Status bar: progress of background work with a cancel button.
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel")
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

    # ================================================================ wiring: intents -> controllers
    def _wire(self) -> None:
        ex, state, m = self.explorer, self.state, self.map
        m.nearest_fn = self._nearest
        m.cursorMoved.connect(self._cursor_dragged)
        m.cursorMoveFinished.connect(self._cursor_drag_finished)
        m.pointHovered.connect(lambda idx: state.current is not None and state.hover(state.current, idx))
        m.pointClicked.connect(ex.select_datum)
        m.lassoFinished.connect(ex.overlays.lassoFinished.emit)
        ex.overlays.arrowsChanged.connect(m.set_arrows)
        ex.overlays.pathChanged.connect(m.set_path)
        ex.overlays.lassoRequested.connect(m.start_lasso)
        self.sliders.valuesChanged.connect(lambda z: ex.cursor.set_latent(z, "sliders"))
        self.model_list.currentRowChanged.connect(self._model_row_changed)
        self.projection_box.currentIndexChanged.connect(lambda _: self._projection_chosen())
        for spin in (self.dim_x, self.dim_y):
            spin.valueChanged.connect(lambda _: self._projection_chosen())
        self.colour_box.currentIndexChanged.connect(
            lambda _: state.set_colour_by(self.colour_box.currentText() or "label"))
        self.history_slider.valueChanged.connect(self._history_moved)
        self.search_edit.textChanged.connect(lambda _t: self._search(jump=False))
        self.search_edit.returnPressed.connect(lambda: self._search(jump=True))
        self.neighbour_list.itemClicked.connect(lambda item: ex.select_datum(int(item.data(Qt.ItemDataRole.UserRole))))
        # The manifold follows the view: decoded again (in the background) shortly after it stops moving.
        self._manifold_timer = QTimer(self)
        self._manifold_timer.setSingleShot(True)
        self._manifold_timer.setInterval(120)
        self._manifold_timer.timeout.connect(self._request_manifold)
        m.view.sigRangeChanged.connect(lambda *_: self.manifold_check.isChecked() and self._manifold_timer.start())
        self.manifold_check.toggled.connect(self._manifold_toggled)
        self.manifold_only.toggled.connect(lambda on: self.map.set_points_visible(not on))
        ex.projections.preview.connect(self._show_preview)
        ex.busy.connect(lambda message, _c: message is None and self.preview_label.hide())
        ex.manifold.ready.connect(self._show_manifold)
        ex.manifold.cleared.connect(self._manifold_cleared)
        ex.manifold.failed.connect(lambda msg: self.statusBar().showMessage(f"manifold: {strip_exception(msg)}", 8000))
        self.training.modelSnapshot.connect(ex.training.snapshot)
        self.training.trainingStarted.connect(lambda _info: self.training_dock.raise_())
        self.cancel_button.clicked.connect(ex.cancel)
        self.tabs.currentChanged.connect(self._tab_changed)
        # Results -> views.
        ex.cursor.decoded.connect(self._show_decoded)
        ex.cursor.moved.connect(lambda x, y: self.map.set_cursor(x, y))
        ex.cursor.cleared.connect(lambda: self.cursor_panel.clear())
        ex.cursor.failed.connect(lambda msg: self.statusBar().showMessage(f"decode failed: {msg}", 5000))
        ex.datum.shown.connect(self._show_datum)
        ex.datum.cleared.connect(self._clear_datum)
        ex.samples.ready.connect(lambda entry, image, caption: self.samples_panel.show_array(image, caption))
        ex.busy.connect(self._set_busy)
        ex.progress.connect(self._progress)
        ex.error.connect(self.show_error)
        # State -> views.
        state.modelsChanged.connect(self._models_changed)
        state.currentChanged.connect(self._current_changed)
        state.dataChanged.connect(self._data_changed)
        state.mapChanged.connect(self._map_changed)
        state.requestedChanged.connect(self._requested_changed)
        state.cursorChanged.connect(self._cursor_changed)
        state.selectionChanged.connect(self._selection_changed)
        state.groupsChanged.connect(self._draw_groups)
        state.droppedChanged.connect(self._draw_dropped)
        state.colourChanged.connect(lambda _name: self._recolour())
        state.historyChanged.connect(lambda entry: entry is state.current and self._update_history_slider())
        state.message.connect(self._message)
        self._update_dims_visibility()

    def _message(self, text: str, timeout_ms: int) -> None:
        if text:
            self.statusBar().showMessage(text, timeout_ms)
        else:
            self.statusBar().clearMessage()

    def _cursor_dragged(self, x: float, y: float) -> None:
        self.explorer.cursor.drag_to(x, y)

    def _cursor_drag_finished(self, x: float, y: float) -> None:
        self.explorer.cursor.drag_to(x, y)
        self._slider_timer.stop()
        self._sync_sliders()

    def _model_row_changed(self, row: int) -> None:
        if 0 <= row < len(self.state.models):
            self.state.set_current(self.state.models[row])

    def _projection_chosen(self) -> None:
        self._update_dims_visibility()
        choice = ProjectionChoice(self.projection_box.currentData(), self.dim_x.value(), self.dim_y.value())
        if choice.method != "dims":
            choice = ProjectionChoice(choice.method)
        self.explorer.projections.request(choice)

    def _update_dims_visibility(self) -> None:
        self.dims_widget.setEnabled(self.projection_box.currentData() == "dims")

    def _history_moved(self, index: int) -> None:
        entry = self.state.current
        if entry is not None:
            self.explorer.training.show_epoch(entry, index)

    def _tab_changed(self, index: int) -> None:
        # First visit to Compare with two comparable models open (the demo's AE and VAE): show them at once
        # rather than an empty page and a button to find.
        if self.tabs.tabText(index) == "Compare" and not self.compare.entries and len(self.compare.candidates()) >= 2:
            self.compare.refresh()

    def _nearest(self, points: np.ndarray) -> tuple[float, int]:
        entry = self.state.current
        proj = entry.projection if entry is not None else None
        if proj is None:
            return float("inf"), -1
        dist, idx = proj.nearest(points, k=1)
        return float(np.ravel(dist)[0]), int(np.ravel(idx)[0])

    # ================================================================ state -> views
    def _models_changed(self) -> None:
        self.model_list.blockSignals(True)
        self.model_list.clear()
        for entry in self.state.models:
            name = entry.name
            if entry.run_id:
                name += f" ({entry.meta.get('training_state', 'training')}, epoch {entry.meta.get('training_epoch', '?')})"
            item = QListWidgetItem(f"{name}\n{entry.summary()}")
            item.setToolTip(entry.path)
            self.model_list.addItem(item)
        current = self.state.current
        self.model_list.setCurrentRow(self.state.models.index(current) if current in self.state.models else -1)
        self.model_list.blockSignals(False)
        self.compare.swap.models_changed()
        if not self.state.models:
            self._current_changed(None)

    def _current_changed(self, entry: OpenModel | None) -> None:
        self.model_list.blockSignals(True)
        self.model_list.setCurrentRow(self.state.models.index(entry) if entry in self.state.models else -1)
        self.model_list.blockSignals(False)
        self.arithmetic.entry_changed(entry)
        self._update_history_slider()
        if entry is None:
            self.map.clear_points()
            self.cursor_panel.clear()
            self.samples_panel.clear()
            self._clear_datum()
            self.sliders.set_dim(0)
            self.map_info.setText("")
            return
        from explorer.core.models.dcign import unit_names
        from explorer.core.models.pixelcnn import has_latent_space

        self.sliders.set_dim(entry.latent_dim if has_latent_space(entry.model) else 0)
        self.sliders.set_unit_names(unit_names(entry.model))  # DC-IGN's units under their factors' names
        self._set_slider_range(entry)
        for spin in (self.dim_x, self.dim_y):
            spin.blockSignals(True)
            spin.setRange(0, max(0, entry.latent_dim - 1))
            spin.blockSignals(False)
        self._fill_colour_box(entry)
        if entry.cursor_latent is not None:
            self.sliders.set_values(entry.cursor_latent)
        self._map_changed(entry)

    def _data_changed(self, entry: OpenModel) -> None:
        if entry is not self.state.current:
            return
        self._fill_colour_box(entry)
        self._set_slider_range(entry)
        if not entry.has_map:
            self._describe_no_map(entry)

    def _set_slider_range(self, entry: OpenModel) -> None:
        """Slider range from the data's codes (an AE's may reach -4.65), at least the prior's +-3."""
        if entry.latents is not None and len(entry.latents) and np.isfinite(entry.latents).any():
            lim = float(np.nanpercentile(np.abs(entry.latents), 99.9))
            self.sliders.set_range(max(3.0, lim * 1.1))
        else:
            self.sliders.set_range(3.0)

    def _describe_no_map(self, entry: OpenModel) -> None:
        from explorer.core.models.pixelcnn import has_latent_space

        if entry.model.capabilities.has_encoder and (entry.encoding or (not entry.status and entry.latents is None)):
            self.map_info.setText("Encoding the dataset…")  # the map follows when that finishes
        elif entry.model.capabilities.has_encoder and entry.status:
            self.map_info.setText(f"No latent map: {entry.status}.")
        elif not has_latent_space(entry.model):
            self.map_info.setText(f"No latent map: a {entry.model.family.upper()} has no latent space. Its samples "
                                  "(drawn pixel by pixel) are on the Prior samples tab, its likelihood in Compare.")
        elif not entry.model.capabilities.has_encoder:
            self.map_info.setText(f"No latent map: {entry.model.family.upper()} models have no encoder: explore "
                                  "with the sliders and samples.")

    def _map_changed(self, entry: OpenModel) -> None:
        if entry is not self.state.current:
            return
        self._requested_changed(self.state.requested)
        if not entry.has_map:
            self.map.clear_points()
            self._describe_no_map(entry)
            return
        labels, names, colours = self._colouring(entry)
        self.map.set_points(entry.positions, labels, names, colours=colours)
        data = entry.data
        self.map.set_image_source(lambda idx, images=data.images: images[idx])  # thumbnails at close zoom
        self.map.set_points_visible(not self.manifold_only.isChecked())  # set_points shows the layers again
        proj = entry.projection
        bounds = self.map.data_bounds()
        if bounds is not None and not proj.exact_inverse:
            x0, y0, x1, y1 = bounds
            px, py = (x1 - x0) * 0.1 + 1e-6, (y1 - y0) * 0.1 + 1e-6
            padded = (x0 - px, y0 - py, x1 + px, y1 + py)
            self.map.set_trust_image(proj.trust_grid(padded, 96), padded)
        else:
            self.map.set_trust_image(None, None)
        self.map_info.setText(self._map_description(entry))
        self.map.show_selected(entry.selected)
        self._draw_groups(entry)
        self._draw_dropped(entry)
        if entry.cursor_latent is not None:
            pos = entry.locate(entry.cursor_latent)
            if pos is not None:
                self.map.set_cursor(*pos)
        self.arithmetic.map_changed()
        if self.search_edit.text().strip():
            self._search()
        self._show_neighbours(entry, entry.selected)
        self.modelReady.emit(entry)

    def _map_description(self, entry: OpenModel) -> str:
        n = len(entry.positions)
        if entry.projection.exact_inverse:
            how = "The cursor decodes exactly the latent vector under it."
        else:
            how = ("The cursor's latent vector comes from a learned inverse map; it is trustworthy near the data "
                   "and less so in the grey areas.")
        return f"{n:,} points from {entry.meta.get('dataset')}. {how}"

    def _requested_changed(self, choice: ProjectionChoice) -> None:
        """The projection box shows what is shown, or what is on its way: never a cancelled request."""
        index = self.projection_box.findData(choice.method)
        for widget in (self.projection_box, self.dim_x, self.dim_y):
            widget.blockSignals(True)
        if index >= 0:
            self.projection_box.setCurrentIndex(index)
        if choice.method == "dims":
            self.dim_x.setValue(choice.dim_x)
            self.dim_y.setValue(choice.dim_y)
        for widget in (self.projection_box, self.dim_x, self.dim_y):
            widget.blockSignals(False)
        self._update_dims_visibility()

    def _cursor_changed(self, entry: OpenModel, z: np.ndarray, source: str) -> None:
        if entry is not self.state.current:
            return
        if source != "tool" and source != "restore":
            self.arithmetic.cursor_edited()
        if source == "map":
            if not self._slider_timer.isActive():
                self._slider_timer.start()
            return
        if source != "sliders":
            self.sliders.set_values(z)  # the ring follows CursorController.moved

    def _sync_sliders(self) -> None:
        entry = self.state.current
        if entry is not None and entry.cursor_latent is not None:
            self.sliders.set_values(entry.cursor_latent)

    def _show_decoded(self, result) -> None:
        self.cursor_panel.show_array(result.image, result.caption)
        self.decoded.emit(result.image)

    def _selection_changed(self, entry: OpenModel, idx: int) -> None:
        if entry is self.state.current:
            self.map.show_selected(idx if entry.has_map else -1)
            self._show_neighbours(entry, idx)

    def _show_datum(self, view) -> None:
        self.original_panel.show_array(view.original, view.caption)
        if view.reconstruction is not None:
            self.recon_panel.show_array(view.reconstruction, view.recon_caption)
        else:
            self.recon_panel.clear()

    def _clear_datum(self) -> None:
        self.original_panel.clear()
        self.recon_panel.clear()

    def _draw_groups(self, entry: OpenModel) -> None:
        if entry is not self.state.current:
            return
        for name in ("A", "B"):
            idx = entry.groups.get(name)
            self.map.set_group(name, idx if entry.has_map else None)

    def _draw_dropped(self, entry: OpenModel) -> None:
        if entry is self.state.current:
            self.map.set_extra_points(entry.dropped_positions())

    # ================================================================ training history
    def _update_history_slider(self) -> None:
        entry = self.state.current
        history = entry.history if entry is not None else []
        self.history_row.setVisible(len(history) > 1)
        if not history:
            return
        self.history_slider.blockSignals(True)
        self.history_slider.setRange(0, len(history) - 1)
        self.history_slider.setValue(len(history) - 1 if entry.history_index < 0 else entry.history_index)
        self.history_slider.blockSignals(False)
        self.history_label.setText(f"epoch {history[self.history_slider.value()].epoch}")


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

    def _progress(self, fraction: float, message: str = "") -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
