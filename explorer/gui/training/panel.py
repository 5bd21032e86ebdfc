"""The training panel: a form, Start / Pause / Resume / Stop, and live views of the run.

All training happens on a :class:`TrainingJob`'s QThread; this widget only
receives plain-data signals from it. The GUI thread never waits on training
except in :meth:`TrainingPanel.request_close` / :meth:`TrainingPanel.shutdown`,
where it waits for the current step to finish and the checkpoint to be written.

Painting is throttled: progress reports arrive at most 5 times a second and
only touch the progress bar and one label; loss curves are redrawn by a timer
at most once a second (not at all while hidden), and the image grids and KL
bars change once per epoch.
That keeps the panel's share of the CPU (and of the GIL the training loop also
needs) small; see ``benchmarks/panel_overhead.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QStandardPaths, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressBar, QPushButton,
                               QScrollArea, QSizePolicy, QSpinBox, QSplitter, QToolButton, QVBoxLayout, QWidget)

from explorer.core.training.snapshot import ModelSnapshot

from ..views.image_panel import ImagePanel
from .spec import ARCH_FAMILIES, ARCHS, FAMILIES, TrainingSpec, default_checkpoint_path, default_lr
from .worker import TrainingJob

# Data set names for people; anything else shows its own name.
DATASET_LABELS = {
    "mnist": "MNIST digits (28×28)",
    "fashion-mnist": "Fashion-MNIST (28×28)",
    "digits": "scikit-learn digits (8×8, tiny)",
    "faces": "Procedural faces (64×64 RGB)",
}
PICK_FOLDER = "__pick_folder__"
PICK_CELEBA = "__pick_celeba__"

# What the loss plot shows per family: (metric, legend label, colour). VAEs: the two ELBO terms
# apart, so KL collapse or a starving decoder is visible; GANs: both players.
CURVES: dict[str, list[tuple[str, str, str]]] = {
    "vae": [("recon", "reconstruction", "#1f77b4"), ("kl", "KL", "#ff7f0e")],
    "ae": [("recon", "reconstruction", "#1f77b4"), ("l1", "L1 of z", "#9467bd")],
    "gan": [("d_loss", "discriminator", "#d62728"), ("g_loss", "generator", "#2ca02c")],
}
ACTIVE_BRUSH = pg.mkBrush("#1f77b4")
COLLAPSED_BRUSH = pg.mkBrush("#c8c8c8")
# Loss curves repaint at most once a second (and at each epoch end). Each repaint of a pyqtgraph
# plot whose range moved costs ~10 ms of GUI-thread time, and each new range repaints twice (data,
# then auto-range): at 4 Hz that was ~10% of a 2-core machine's CPU, taken from the trainer.
CURVE_REDRAW_MS = 1000
MESSAGE_STYLES = {
    "error": "background: #fdecea; color: #611a15; border: 1px solid #f5c2c0; border-radius: 4px; padding: 6px",
    "warning": "background: #fff4e5; color: #663c00; border: 1px solid #ffd8a8; border-radius: 4px; padding: 6px",
    "info": "background: #e8f4fd; color: #0c3c60; border: 1px solid #b6dcfb; border-radius: 4px; padding: 6px",
}


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"


class LossPlot(pg.PlotWidget):
    """Running-mean training losses per family, plus held-out test values as dots at epoch ends."""

    def __init__(self) -> None:
        super().__init__(background="w")
        item = self.getPlotItem()
        item.setTitle("Loss per image (line: training, dots: test set)")
        item.setLabel("bottom", "epoch")
        for side in ("bottom", "left"):  # "epoch (x0.001)" confuses more than it saves
            item.getAxis(side).enableAutoSIPrefix(False)
        # No grid, and a fixed axis width: grid lines cost ~30% of each repaint, and an axis
        # that widens as its labels change re-lays out the plot once more.
        item.getAxis("left").setWidth(52)
        item.setMenuEnabled(True)
        self.legend = item.addLegend(offset=(-10, 10), brush=pg.mkBrush(255, 255, 255, 210))
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.tests: dict[str, pg.ScatterPlotItem] = {}
        self._x: dict[str, list[float]] = {}
        self._y: dict[str, list[float]] = {}
        self._tx: dict[str, list[float]] = {}
        self._ty: dict[str, list[float]] = {}
        self._spec: list[tuple[str, str, str]] = []
        self._dirty = False

    def reset(self, family: str) -> None:
        for c in self.curves.values():
            self.removeItem(c)
        for t in self.tests.values():
            self.removeItem(t)
        self.legend.clear()
        self.curves, self.tests = {}, {}
        self._x, self._y, self._tx, self._ty = {}, {}, {}, {}
        self._spec = CURVES.get(family, [("loss", "loss", "#333333")])
        self._dirty = False
        # Forget the previous run's axes: auto-range keeps the old range while there is no data.
        self.getPlotItem().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.getPlotItem().enableAutoRange()

    def _ensure(self, key: str) -> bool:
        if key in self.curves:
            return True
        for k, label, colour in self._spec:
            if k == key:
                curve = self.plot([], [], pen=pg.mkPen(colour, width=2), name=label)
                curve.setClipToView(True)
                curve.setDownsampling(auto=True, method="peak")
                self.curves[key] = curve
                dots = pg.ScatterPlotItem(size=7, pen=pg.mkPen("w", width=1), brush=pg.mkBrush(colour),
                                          symbol="o")
                self.addItem(dots)
                self.tests[key] = dots
                self._x[key], self._y[key], self._tx[key], self._ty[key] = [], [], [], []
                return True
        return False

    def add_train(self, x: float, metrics: dict[str, float]) -> None:
        keys = [k for k, _, _ in self._spec if k in metrics]
        if not keys and "loss" in metrics:  # an unknown family: at least the loss
            self._spec = self._spec or [("loss", "loss", "#333333")]
            keys = ["loss"] if any(k == "loss" for k, _, _ in self._spec) else []
        for key in keys:
            value = float(metrics[key])
            if math.isfinite(value) and self._ensure(key):
                self._x[key].append(x)
                self._y[key].append(value)
                self._dirty = True

    def add_test(self, x: float, metrics: dict[str, Any]) -> None:
        for key, _, _ in self._spec:
            value = metrics.get(f"test_{key}")
            if isinstance(value, (int, float)) and math.isfinite(value) and self._ensure(key):
                self._tx[key].append(x)
                self._ty[key].append(float(value))
                self._dirty = True

    def redraw(self) -> None:
        # Hidden (another tab in front): keep the data, paint nothing until shown again.
        if not self._dirty or not self.isVisible():
            return
        self._dirty = False
        for key, curve in self.curves.items():
            curve.setData(np.asarray(self._x[key]), np.asarray(self._y[key]))
            self.tests[key].setData(self._tx[key], self._ty[key])

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        self.redraw()

    def point_count(self, key: str) -> int:
        return len(self._y.get(key, []))


class BarsPlot(pg.PlotWidget):
    """Per-dimension KL (VAE) or explained variance (PCA) as bars; collapsed KL dimensions in grey."""

    def __init__(self) -> None:
        super().__init__(background="w")
        item = self.getPlotItem()
        item.setLabel("bottom", "latent dimension")
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brushes=[])
        self.addItem(self.bars)
        self.values: np.ndarray = np.zeros(0)
        self.reset("")

    def reset(self, family: str) -> None:
        self.values = np.zeros(0)
        self.bars.setOpts(x=[], height=[], brushes=[])
        title = {"vae": "KL per dimension (nats)",
                 "pca": "Explained variance per component"}.get(family, "")
        self.getPlotItem().setTitle(title)

    def set_kl(self, kl_per_dim: Sequence[float], epoch: int, threshold: float) -> int:
        values = np.asarray(kl_per_dim, dtype=float)
        active = values > threshold
        self.values = values
        self.bars.setOpts(x=np.arange(len(values)), height=values, width=0.8,
                          brushes=[ACTIVE_BRUSH if a else COLLAPSED_BRUSH for a in active])
        self.getPlotItem().setTitle(f"KL per dimension: {int(active.sum())} of {len(values)} active")
        self.setToolTip(f"KL divergence of each latent dimension (nats per image, epoch {epoch}). Grey bars "
                        f"carry less than {threshold:g} nats: collapsed dimensions the decoder ignores.")
        self.getPlotItem().enableAutoRange()
        return int(active.sum())

    def set_explained(self, ratios: Sequence[float]) -> None:
        values = np.asarray(ratios, dtype=float)
        self.values = values
        self.bars.setOpts(x=np.arange(len(values)), height=values, width=0.8,
                          brushes=[ACTIVE_BRUSH] * len(values))
        self.getPlotItem().setTitle(f"Explained variance per component ({values.sum():.0%} in all)")
        self.getPlotItem().enableAutoRange()


class TrainingPanel(QWidget):
    """Train a model from a form and watch it learn.

    Signals for the main window:

    * ``modelSnapshot(ModelSnapshot)``: weights at each epoch end and once more when the run ends
      (``final=True``; after a NaN failure: the last good weights). ``snapshot.build_model()``
      rebuilds a private CPU model; ``snapshot.metadata()`` looks like a checkpoint's metadata;
      ``snapshot.run_id`` is the same for every snapshot of one run.
    * ``trainingStarted(dict)``: the worker's ``started`` payload (run_id, device, family, ...).
    * ``trainingProgress(dict)``: the worker's ``progress`` payload (at most 10 a second).
    * ``trainingFinished(dict)``: the worker's result (ok, stopped, error, checkpoint, history, ...).
    * ``stateChanged(str)``: "idle", "starting", "running", "paused", "stopping".

    Call :meth:`request_close` from the window's close event and :meth:`shutdown` when the
    application quits, so no thread outlives the widget.
    """

    modelSnapshot = Signal(object)
    trainingStarted = Signal(object)
    trainingProgress = Signal(object)
    trainingFinished = Signal(object)
    stateChanged = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        devices: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(parent)
        if checkpoint_dir is None:
            base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
            checkpoint_dir = Path(base or Path.home() / ".latent-explorer") / "checkpoints"
        self.checkpoint_dir = Path(checkpoint_dir)
        self.job: TrainingJob | None = None
        self.state = "idle"
        self.last_snapshot: ModelSnapshot | None = None
        self.last_result: dict[str, Any] | None = None
        self.last_progress: dict[str, Any] | None = None
        self.last_epoch_metrics: dict[str, Any] | None = None
        self.error: str | None = None
        self._family = ""
        self._checkpoint = ""
        self._saved: str | None = None
        # Dialogs are attributes so tests (and embedders) can replace them.
        self.confirm_close: Callable[[str], bool] = self._ask_user
        self.choose_folder: Callable[[str], str | None] = self._folder_dialog
        self.choose_save_path: Callable[[], str | None] = self._save_dialog
        self.choose_checkpoint: Callable[[], str | None] = self._open_dialog

        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
        self._build_form(devices)
        self._build_views()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form_widget)
        # Wide enough for the form itself: otherwise its fields are cut off behind a horizontal scroll bar.
        scroll.setMinimumWidth(max(300, self.form_widget.minimumSizeHint().width()
                                   + scroll.verticalScrollBar().sizeHint().width() + 2))
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        splitter.addWidget(scroll)
        splitter.addWidget(self.views_widget)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([330, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self.buttons_row)
        layout.addWidget(splitter, 1)

        self._redraw_timer = QTimer(self)
        self._redraw_timer.setInterval(CURVE_REDRAW_MS)
        self._redraw_timer.timeout.connect(self.loss_plot.redraw)
        self._family_changed()
        self._set_state("idle")

    # ================================================================ building
    def _build_form(self, devices: Sequence[tuple[str, str]] | None) -> None:
        self.form_widget = QWidget()
        outer = QVBoxLayout(self.form_widget)
        outer.setContentsMargins(0, 0, 4, 0)

        model_box = QGroupBox("Model")
        mf = QFormLayout(model_box)
        self.family_box = QComboBox()
        for key, (label, *_rest) in FAMILIES.items():
            self.family_box.addItem(label, key)
        self.family_box.setCurrentIndex(list(FAMILIES).index("vae"))
        self.family_box.currentIndexChanged.connect(lambda _: self._family_changed())
        mf.addRow("Family", self.family_box)
        self.arch_box = QComboBox()
        for label, key in ARCHS:
            self.arch_box.addItem(label, key)
        self.arch_box.setToolTip("MLP: fully connected layers. Convolutional: needs even image sides of 8 or more.")
        mf.addRow("Architecture", self.arch_box)
        self.extra_label = QLabel("β")
        self.extra_spin = QDoubleSpinBox()
        mf.addRow(self.extra_label, self.extra_spin)
        self.latent_spin = QSpinBox()
        self.latent_spin.setRange(1, 1024)
        self.latent_spin.setValue(20)
        self.latent_spin.setToolTip("Size of the latent code z")
        mf.addRow("Latent size", self.latent_spin)
        self.resume_edit = QLineEdit()
        self.resume_edit.setReadOnly(True)
        self.resume_edit.setPlaceholderText("none: a new model")
        self.resume_edit.setToolTip("Continue training a saved checkpoint: its model settings replace the ones above")
        resume_pick = QToolButton()
        resume_pick.setText("…")
        resume_pick.setToolTip("Choose a checkpoint to continue")
        resume_pick.clicked.connect(self._pick_resume)
        resume_clear = QToolButton()
        resume_clear.setText("✕")
        resume_clear.setToolTip("Train a new model instead")
        resume_clear.clicked.connect(lambda: self.set_resume_path(None))
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.resume_edit, 1)
        row.addWidget(resume_pick)
        row.addWidget(resume_clear)
        mf.addRow("Continue from", row)
        self.model_form = mf
        outer.addWidget(model_box)

        data_box = QGroupBox("Data and training")
        df = QFormLayout(data_box)
        self.dataset_box = QComboBox()
        from explorer.core.data import DATASET_NAMES, describe_datasets

        help_texts = describe_datasets()
        for name in DATASET_NAMES:
            self.dataset_box.addItem(DATASET_LABELS.get(name, name), name)
            self.dataset_box.setItemData(self.dataset_box.count() - 1, help_texts.get(name, ""),
                                         Qt.ItemDataRole.ToolTipRole)
        self.dataset_box.addItem("Image folder…", PICK_FOLDER)
        self.dataset_box.addItem("CelebA folder…", PICK_CELEBA)
        self._dataset_index = 0
        self.dataset_box.activated.connect(self._dataset_activated)
        df.addRow("Data set", self.dataset_box)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, 512)
        self.size_spin.setSpecialValueText("source size")
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Resize images to this size (0: keep the data set's own)")
        df.addRow("Image size", self.size_spin)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 100_000)
        self.epochs_spin.setValue(10)
        df.addRow("Epochs", self.epochs_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 65_536)
        self.batch_spin.setValue(128)
        df.addRow("Batch size", self.batch_spin)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 10.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(1e-3)
        self.lr_spin.setToolTip("Adam learning rate (GANs usually want 2e-4)")
        df.addRow("Learning rate", self.lr_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        df.addRow("Seed", self.seed_spin)
        self.device_box = QComboBox()
        if devices is None:
            from explorer.core.training import available_devices

            devices = [(d.id, d.name) for d in available_devices()]  # best first: CUDA GPUs by name, MPS, CPU
        for dev_id, name in devices:
            self.device_box.addItem(name, dev_id)
        df.addRow("Device", self.device_box)
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText(f"automatic, in {self.checkpoint_dir}")
        self.checkpoint_edit.setToolTip("Where checkpoints are saved (atomically). Empty: a new file named after "
                                        f"the model and data set in {self.checkpoint_dir}")
        ck_pick = QToolButton()
        ck_pick.setText("…")
        ck_pick.clicked.connect(self._pick_checkpoint_path)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.checkpoint_edit, 1)
        row.addWidget(ck_pick)
        df.addRow("Checkpoint", row)
        self.period_spin = QSpinBox()
        self.period_spin.setRange(0, 100_000)
        self.period_spin.setSpecialValueText("at the end only")
        self.period_spin.setPrefix("every ")
        self.period_spin.setSuffix(" epoch(s)")
        self.period_spin.setValue(1)
        df.addRow("Save", self.period_spin)
        outer.addWidget(data_box)
        self.settings_boxes = (model_box, data_box)

        buttons = QGridLayout()
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.start_button.setToolTip("Train with these settings")
        self.stop_button.setToolTip("Stop after the current step and save a checkpoint")
        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.stop_button.clicked.connect(self.stop)
        # One row above the form and the plots (built into the panel's layout below): on a short screen the
        # form scrolls, but Start, Pause, Resume and Stop are always in view.
        for col, button in enumerate((self.start_button, self.pause_button, self.resume_button, self.stop_button)):
            buttons.addWidget(button, 0, col)
        self.buttons_row = buttons

        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.setVisible(False)
        outer.addWidget(self.message_label)
        outer.addStretch(1)

    def _build_views(self) -> None:
        self.views_widget = QWidget()
        v = QVBoxLayout(self.views_widget)
        v.setContentsMargins(0, 0, 0, 0)
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("not started")
        self.progress_bar.setValue(0)
        v.addWidget(self.progress_bar)
        self.stats_label = QLabel("Choose the settings on the left and press Start.")
        self.stats_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        v.addWidget(self.stats_label)
        self.metrics_label = QLabel("")
        self.metrics_label.setStyleSheet("color: #555")
        self.metrics_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        v.addWidget(self.metrics_label)
        plots = QSplitter(Qt.Orientation.Horizontal)
        self.loss_plot = LossPlot()
        self.bars_plot = BarsPlot()
        for plot in (self.loss_plot, self.bars_plot):
            plot.setMinimumHeight(120)  # below this the curves are a flat line under the title
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.bars_plot)
        plots.setSizes([600, 400])
        images = QSplitter(Qt.Orientation.Horizontal)
        # Small minimum sizes: in a short dock the loss curves need the height more than the grids do.
        self.samples_view = ImagePanel("Samples from the prior N(0, I)", min_size=96)
        self.recon_view = ImagePanel("Test images and their reconstructions", min_size=96)
        images.addWidget(self.samples_view)
        images.addWidget(self.recon_view)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(plots)
        main.addWidget(images)
        main.setSizes([350, 350])
        v.addWidget(main, 1)
        self._clear_views("")

    # ================================================================ form <-> spec
    def _kind(self) -> str:
        return str(self.family_box.currentData())

    def _family_changed(self) -> None:
        kind = self._kind()
        extra = FAMILIES[kind][3]
        self.arch_box.setEnabled(kind in ARCH_FAMILIES and not self.resume_edit.text())
        if kind == "gan":  # always DCGAN convolutions: say so rather than show a stale choice
            self.arch_box.setCurrentIndex(self.arch_box.findData("conv"))
        self.model_form.setRowVisible(self.arch_box, kind != "pca")
        self.model_form.setRowVisible(self.extra_spin, extra is not None)
        if extra is not None:
            _field, label, default, lo, hi, decimals = extra
            self.extra_label.setText(label)
            self.extra_spin.setDecimals(decimals)
            self.extra_spin.setRange(lo, hi)
            self.extra_spin.setSingleStep(default / 10 if default > 0 else 0.1)
            self.extra_spin.setValue(default)
        self.lr_spin.setValue(default_lr(kind))

    def spec(self) -> TrainingSpec:
        """The form as a TrainingSpec (checkpoint path resolved when training starts)."""
        kind = self._kind()
        dataset = str(self.dataset_box.currentData() or "")
        if dataset in (PICK_FOLDER, PICK_CELEBA):
            dataset = ""
        return TrainingSpec(
            kind=kind,
            arch=str(self.arch_box.currentData()),
            latent_dim=self.latent_spin.value(),
            extra=self.extra_spin.value() if FAMILIES[kind][3] is not None else None,
            dataset=dataset,
            image_size=self.size_spin.value() or None,
            epochs=self.epochs_spin.value(),
            batch_size=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            seed=self.seed_spin.value(),
            device=str(self.device_box.currentData() or "auto"),
            checkpoint_path=self.checkpoint_edit.text().strip() or None,
            checkpoint_every=self.period_spin.value(),
            resume_path=self.resume_edit.text().strip() or None,
        )

    def set_spec(self, spec: TrainingSpec) -> None:
        """Fill the form from a spec (values the form has no field for are ignored)."""
        self.family_box.setCurrentIndex(max(0, self.family_box.findData(spec.kind)))
        self._family_changed()
        if spec.kind in ARCH_FAMILIES:
            self.arch_box.setCurrentIndex(max(0, self.arch_box.findData(spec.arch)))
        if spec.extra is not None:
            self.extra_spin.setValue(spec.extra)
        self.latent_spin.setValue(spec.latent_dim)
        self.select_dataset(spec.dataset)
        self.size_spin.setValue(spec.image_size or 0)
        self.epochs_spin.setValue(spec.epochs)
        self.batch_spin.setValue(spec.batch_size)
        self.lr_spin.setValue(spec.effective_lr)
        self.seed_spin.setValue(spec.seed)
        index = self.device_box.findData(spec.device)
        if index >= 0:
            self.device_box.setCurrentIndex(index)
        self.checkpoint_edit.setText(spec.checkpoint_path or "")
        self.period_spin.setValue(spec.checkpoint_every)
        self.set_resume_path(spec.resume_path)

    def select_dataset(self, name: str) -> None:
        """Select a data set by load_dataset name, adding folder entries as needed."""
        index = self.dataset_box.findData(name)
        if index < 0:
            kind, _, path = name.partition(":")
            label = f"{'CelebA' if kind == 'celeba' else 'Folder'}: {Path(path).name or path}" if path else name
            index = self.dataset_box.findData(PICK_FOLDER)
            self.dataset_box.insertItem(index, label, name)
            self.dataset_box.setItemData(index, path or name, Qt.ItemDataRole.ToolTipRole)
        self.dataset_box.setCurrentIndex(index)
        self._dataset_index = index

    def set_resume_path(self, path: str | None) -> None:
        self.resume_edit.setText(path or "")
        resuming = bool(path)
        for w in (self.family_box, self.arch_box, self.extra_spin, self.latent_spin, self.size_spin):
            w.setEnabled(not resuming)
        if not resuming:
            self.arch_box.setEnabled(self._kind() in ARCH_FAMILIES)

    # ---------------------------------------------------------------- dialogs (replaceable)
    def _dataset_activated(self, index: int) -> None:
        data = self.dataset_box.itemData(index)
        if data not in (PICK_FOLDER, PICK_CELEBA):
            self._dataset_index = index
            return
        kind = "celeba" if data == PICK_CELEBA else "folder"
        folder = self.choose_folder(kind)
        if folder:
            self.select_dataset(f"{kind}:{folder}")
        else:
            self.dataset_box.setCurrentIndex(self._dataset_index)

    def _folder_dialog(self, kind: str) -> str | None:
        title = "CelebA folder (img_align_celeba/ and list_attr_celeba.txt)" if kind == "celeba" else \
            "Folder of images (subfolders become labels)"
        return QFileDialog.getExistingDirectory(self, title) or None

    def _save_dialog(self) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoints as", str(self.checkpoint_dir),
                                              "Checkpoints (*.safetensors)")
        if path and not path.endswith(".safetensors"):
            path += ".safetensors"
        return path or None

    def _open_dialog(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, "Continue training from", str(self.checkpoint_dir),
                                              "Checkpoints (*.safetensors)")
        return path or None

    def _pick_checkpoint_path(self) -> None:
        path = self.choose_save_path()
        if path:
            self.checkpoint_edit.setText(path)

    def _pick_resume(self) -> None:
        path = self.choose_checkpoint()
        if path:
            self.set_resume_path(path)
            if not self.checkpoint_edit.text().strip():
                self.checkpoint_edit.setText(path)  # continuing a file saves back into it (atomically)

    def _ask_user(self, question: str) -> bool:
        answer = QMessageBox.question(
            self, "Training is running", question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    # ================================================================ control
    @property
    def is_running(self) -> bool:
        """True from Start until the worker's thread has ended."""
        return self.job is not None

    def start(self, spec: TrainingSpec | None = None) -> bool:
        """Start training ``spec`` (default: the form). Returns False (with a message) if it cannot start."""
        if self.job is not None:
            self.show_message("Training is already running; stop it first.", "warning")
            return False
        spec = spec or self.spec()
        try:
            spec.validate()
        except ValueError as exc:
            self.show_message(f"Invalid settings: {exc}", "error")
            return False
        if not spec.checkpoint_path:
            spec = spec.replace(checkpoint_path=default_checkpoint_path(self.checkpoint_dir, spec))
        self._checkpoint = spec.checkpoint_path or ""
        self._saved = None
        self.error = None
        self.last_result = None
        self.last_progress = None
        self.last_epoch_metrics = None
        self.last_snapshot = None
        self._family = spec.family
        self._clear_views(spec.family)
        self.show_message("", "info")
        # No Qt parent: the panel's reference is the only owner, dropped once the thread has ended.
        job = TrainingJob(spec)
        w = job.worker
        w.status.connect(self._on_status)
        w.started.connect(self._on_started)
        w.progress.connect(self._on_progress)
        w.epochEnded.connect(self._on_epoch_ended)
        w.samplesReady.connect(self._on_samples)
        w.snapshot.connect(self._on_snapshot)
        w.checkpointSaved.connect(self._on_checkpoint_saved)
        w.paused.connect(self._on_paused)
        w.resumed.connect(self._on_resumed)
        w.failed.connect(self._on_failed)
        job.finished.connect(self._on_finished)
        self.job = job
        self.progress_bar.setRange(0, 0)  # busy until the step count is known
        self.progress_bar.setFormat("starting…")
        self.stats_label.setText(f"Starting: {spec.describe()}")
        self._set_state("starting")
        job.start()
        self._redraw_timer.start()
        return True

    def pause(self) -> None:
        if self.job is None or self.state not in ("starting", "running"):
            return
        self.job.worker.pause()
        self.stats_label.setText("Pausing after the current step…")
        self._set_state("paused")

    def resume(self) -> None:
        if self.job is None or self.state != "paused":
            return
        self.job.worker.resume()
        self.stats_label.setText("Resuming…")
        self._set_state("running")

    def stop(self) -> None:
        """Ask the worker to stop after the current step; the run saves its checkpoint and ends."""
        if self.job is None:
            return
        self.job.stop()
        self.stats_label.setText("Stopping after the current step, then saving a checkpoint…")
        self._set_state("stopping")

    def stop_and_wait(self, timeout_ms: int = 60_000) -> bool:
        """Stop and block until the thread has ended (the checkpoint is written by then).

        Only for closing: the GUI thread waits here for at most one step plus the save.
        Returns False if the thread is still running after ``timeout_ms``.
        """
        job = self.job
        if job is None:
            return True
        self.stop()
        if not job.wait(timeout_ms):
            self.show_message("Training is still stopping (a long step or a slow save); try again in a moment.",
                              "warning")
            return False
        # Deliver what the worker sent before it ended (progress, last snapshot, checkpoint path,
        # then its result) now rather than from an event loop that may not run again.
        QCoreApplication.sendPostedEvents(self)
        QCoreApplication.sendPostedEvents(job)
        if self.job is job:  # the result was not among the posted events (should not happen)
            self._on_finished(job.result or {"ok": False, "stopped": True, "error": None})
        return True

    def request_close(self) -> bool:
        """For the window's close event: True if closing may go on.

        While training runs, asks the user (``confirm_close``); on yes, stops after the
        current step, saves a checkpoint and waits for the thread to end.
        """
        if self.job is None:
            return True
        where = self._checkpoint or "a checkpoint"
        if not self.confirm_close(f"A model is being trained. Stop training and save it to {where}?"):
            return False
        return self.stop_and_wait()

    def shutdown(self, timeout_ms: int = 60_000) -> None:
        """Stop without asking and wait for the thread (application quit, tests)."""
        self._redraw_timer.stop()
        self.stop_and_wait(timeout_ms)

    # ================================================================ worker signals (GUI thread)
    @Slot(str)
    def _on_status(self, text: str) -> None:
        if self.state == "starting":
            self.stats_label.setText(text)

    @Slot(object)
    def _on_started(self, info: dict) -> None:
        self._family = info["family"]
        self.loss_plot.reset(self._family)
        self.bars_plot.reset(self._family)
        self._update_view_visibility(info["family"])
        total = max(1, int(info["total_steps"]))
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat(f"epoch {info['first_epoch']} of {info['last_epoch']}")
        device = info["device"]
        self.stats_label.setText(
            f"Training {info['family'].upper()} (latent {info['latent_dim']}) on {info['dataset']} "
            f"({info['n_train']:,} images) on {device}")
        if self.state == "starting":
            self._set_state("running")
        self.trainingStarted.emit(info)

    @Slot(object)
    def _on_progress(self, p: dict) -> None:
        self.last_progress = p
        self.progress_bar.setValue(min(int(p["run_step"]), self.progress_bar.maximum()))
        self.progress_bar.setFormat(
            f"epoch {p['epoch']} of {p['last_epoch']} · step {p['step']} of {p['steps_per_epoch']}")
        if self.state == "running":
            self.stats_label.setText(
                f"{p['images_per_second']:,.0f} images/s · about {_duration(p['eta_s'])} left")
        x = (p["global_step"]) / max(1, p["steps_per_epoch"])
        self.loss_plot.add_train(x, p["metrics"])
        self.trainingProgress.emit(p)

    @Slot(object)
    def _on_epoch_ended(self, e: dict) -> None:
        m = e["metrics"]
        self.last_epoch_metrics = e
        epoch = e["epoch"]
        self.loss_plot.add_test(float(epoch), m)
        self.loss_plot.redraw()
        bits: list[str] = []
        keys = [("loss", "loss"), ("recon", "recon"), ("kl", "KL"), ("l1", "L1"), ("recon_mse", "MSE")]
        if self._family == "gan":  # its "loss" is the generator's: show the two players only
            keys = [("d_loss", "D loss"), ("g_loss", "G loss"), ("d_real", "D(real)"), ("d_fake", "D(fake)")]
        for key, label in keys:
            if isinstance(m.get(key), (int, float)):
                test = m.get(f"test_{key}")
                bits.append(f"{label} {_fmt(m[key])}" + (f" (test {_fmt(test)})" if isinstance(test, float) else ""))
        if "kl_per_dim" in m:
            from explorer.core.models.vae import ACTIVE_KL_NATS

            active = self.bars_plot.set_kl(m.get("test_kl_per_dim") or m["kl_per_dim"], epoch, ACTIVE_KL_NATS)
            bits.append(f"active dims {active}/{len(m['kl_per_dim'])}")
        elif "explained_variance_ratio" in m:
            self.bars_plot.set_explained(m["explained_variance_ratio"])
        partial = " (stopped part-way)" if e["partial"] else ""
        self.metrics_label.setText(f"Epoch {epoch}{partial}: " + " · ".join(bits))
        if self.progress_bar.maximum() == 1:  # closed-form fit: one "step"
            self.progress_bar.setValue(1)

    @Slot(object)
    def _on_samples(self, s: dict) -> None:
        epoch = s["epoch"]
        if s["samples"] is not None:
            n = s.get("n", 0)
            self.samples_view.show_array(s["samples"], f"epoch {epoch}: the same {n} latent vectors every epoch")
        if s["reconstructions"] is not None:
            self.recon_view.show_array(s["reconstructions"], f"epoch {epoch}: rows alternate test image / "
                                                             "reconstruction")

    @Slot(object)
    def _on_snapshot(self, snap: ModelSnapshot) -> None:
        self.last_snapshot = snap
        self.modelSnapshot.emit(snap)

    @Slot(str)
    def _on_checkpoint_saved(self, path: str) -> None:
        self._saved = path

    @Slot(int)
    def _on_paused(self, step: int) -> None:
        if self.state == "paused":
            epoch = self.last_progress["epoch"] if self.last_progress else 1
            self.stats_label.setText(f"Paused at step {step} (epoch {epoch}). Resume to go on.")

    @Slot(int)
    def _on_resumed(self, step: int) -> None:
        if self.state == "running":
            self.stats_label.setText(f"Resumed at step {step}")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.error = message
        self.show_message(message, "error")

    @Slot(object)
    def _on_finished(self, result: dict) -> None:
        self.job = None  # the thread has ended and been waited for (TrainingJob): Python frees it
        self._redraw_timer.stop()
        self.loss_plot.redraw()
        self.last_result = result
        top = max(1, self.progress_bar.maximum())
        self.progress_bar.setRange(0, top)
        self.progress_bar.setValue(min(int((self.last_progress or {}).get("run_step", 0)), top))
        saved = result.get("checkpoint") or self._saved
        where = f" Checkpoint saved to {saved}." if saved else ""
        if result.get("error"):
            self.stats_label.setText("Training stopped by an error.")
            self.progress_bar.setFormat("stopped by an error")
        elif result.get("stopped"):
            steps = result.get("steps", 0)
            self.stats_label.setText(f"Stopped at step {steps}.")
            self.progress_bar.setFormat("stopped")
            self.show_message(f"Training stopped at step {steps} after "
                              f"{result.get('epochs_completed', 0)} complete epoch(s).{where}", "info")
        else:
            self.progress_bar.setValue(self.progress_bar.maximum())
            self.progress_bar.setFormat("done")
            ips = result.get("images_per_second", 0.0)
            self.stats_label.setText(f"Finished in {_duration(result.get('seconds', 0.0))} "
                                     f"({ips:,.0f} images/s on {result.get('device', '?')}).")
            self.show_message(f"Training finished: {result.get('epochs_completed', 0)} epoch(s).{where}", "info")
        self._set_state("idle")
        self.trainingFinished.emit(result)

    # ================================================================ display helpers
    def show_message(self, text: str, kind: str = "info") -> None:
        """The panel's message line (errors in red). Empty text hides it."""
        self.message_label.setText(text)
        self.message_label.setStyleSheet(MESSAGE_STYLES.get(kind, MESSAGE_STYLES["info"]))
        self.message_label.setProperty("kind", kind)
        self.message_label.setVisible(bool(text))

    def _clear_views(self, family: str) -> None:
        self.loss_plot.reset(family)
        self.bars_plot.reset(family)
        self.metrics_label.setText("")
        self.samples_view.clear("samples appear after each epoch")
        self.recon_view.clear("reconstructions appear after each epoch")
        self._update_view_visibility(family)

    def _update_view_visibility(self, family: str) -> None:
        self.bars_plot.setVisible(family in ("vae", "pca"))
        if family == "ae":
            self.samples_view.clear("A plain autoencoder's codes follow no known distribution, "
                                    "so it has no prior to sample from.")
        elif family == "gan":
            self.recon_view.clear("A GAN has no encoder, so it cannot reconstruct images.")

    def _set_state(self, state: str) -> None:
        self.state = state
        running = state in ("starting", "running", "paused", "stopping")
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(state in ("starting", "running"))
        self.resume_button.setEnabled(state == "paused")
        self.stop_button.setEnabled(state in ("starting", "running", "paused"))
        for box in self.settings_boxes:
            box.setEnabled(not running)
        self.stateChanged.emit(state)
