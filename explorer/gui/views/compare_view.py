"""Side-by-side comparison of the opened models that share a dataset (e.g. an AE and a VAE).

Each model gets a PCA map of the same data, Procrustes-aligned to the first so corresponding regions face the
same way, with the prior's density tinted underneath (where N(0, I) samples land) and the data on top. Hovering
or clicking a datum in any map highlights it in all of them and shows every model's reconstruction; one shared
prior sample is decoded by each model; a metrics table (computed in the background) explains its columns in
tooltips; the whole comparison exports as PNGs and CSV. Under it, the decoder swap (``swap_panel``): encode
with one model, decode with another, and train a shared-encoder pair on two face styles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QLabel, QPushButton, QScrollArea, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from ..theme import error_css, is_dark
from .image_panel import ImagePanel, grid, to_uint8_hwc
from .map_view import HOVER_RADIUS_PX, UniformScatter, label_colours
from .swap_panel import SwapPanel

if TYPE_CHECKING:
    from ..controllers.explorer import ExplorerController
    from explorer.core.explore import OpenModel as ModelEntry

DENSITY_RESOLUTION = 64
# "Pretraining (few labels)": explorer.core.pretrain.pretrain_curve's options (tests shrink them). Two seeds of
# 150 steps per point: about a minute per 28x28 model on one busy CPU core.
PRETRAIN_OPTIONS: dict[str, Any] = {"labels_per_class": (1, 10, 100), "seeds": 2, "steps": 150,
                                    "limit_test": 2000}
PRETRAIN_DASH = {"frozen": Qt.PenStyle.SolidLine, "finetune": Qt.PenStyle.DashLine,
                 "scratch": Qt.PenStyle.DotLine}
MAX_POINTS = 20000  # per map: enough to see the shape, light enough for several maps side by side


class CompareView(QWidget):
    def __init__(self, explorer: "ExplorerController") -> None:
        super().__init__()
        self.ctx = explorer
        self.entries: list["ModelEntry"] = []
        self.maps: list[np.ndarray] = []  # aligned positions of the shown rows, per model
        self.rows = np.zeros(0, np.int64)  # dataset indices shown on the maps
        self.plots: list[pg.PlotWidget] = []
        self.markers: list[UniformScatter] = []
        self.metrics: list[dict[str, Any]] = []
        self._seed = 0
        outer = QVBoxLayout(self)
        # Two rows of three: one row of five buttons is wider than the map area of a 1280-px screen.
        top = QGridLayout()
        placed = iter(divmod(k, 3) for k in range(9))
        self.refresh_button = QPushButton("Compare the open models")
        self.refresh_button.setToolTip("Every open model with a map of the same dataset, side by side")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button, *next(placed))
        self.reroll_button = QPushButton("New prior sample")
        self.reroll_button.setToolTip("Decode one new z ~ N(0, I) with every model")
        self.reroll_button.clicked.connect(self.reroll)
        top.addWidget(self.reroll_button, *next(placed))
        self.metrics_button = QPushButton("Compute metrics")
        self.metrics_button.clicked.connect(self.compute_metrics)
        top.addWidget(self.metrics_button, *next(placed))
        self.rd_button = QPushButton("Rate–distortion")
        self.rd_button.setToolTip("Reconstruction error against latent size for the open models, with PCA at the "
                                  "same sizes as the linear baseline (train models of other sizes in the Training "
                                  "dock to fill the curve)")
        self.rd_button.clicked.connect(self.compute_rate_distortion)
        top.addWidget(self.rd_button, *next(placed))
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Maps, prior-sample grids, reconstructions and metrics.csv into a folder")
        self.export_button.clicked.connect(self._ask_export)
        top.addWidget(self.export_button, *next(placed))
        self.pretrain_button = QPushButton("Pretraining (few labels)")
        self.pretrain_button.setToolTip("Test accuracy of a small classifier on each open model's encoder (frozen, "
                                        "fine-tuned) against the same network from scratch, trained with 1, 10 and "
                                        "100 labels per class (in the background; press again to cancel)")
        self.pretrain_button.clicked.connect(self.compute_pretraining)
        top.addWidget(self.pretrain_button, *next(placed))
        self.manifold_button = QPushButton("Decoded manifolds")
        self.manifold_button.setToolTip("The same region of the aligned maps decoded by every model, side by side: "
                                        "an AE's holes beside a VAE's smooth plane")
        self.manifold_button.clicked.connect(self.compute_manifolds)
        top.addWidget(self.manifold_button, *next(placed))
        self.pretrain_options: dict[str, Any] = dict(PRETRAIN_OPTIONS)
        self.pretrain_curves: list[Any] = []
        self._pretrain_cancel = None
        self.info = QLabel("Open two or more models of the same dataset (e.g. the demo's AE and VAE), then "
                           "press 'Compare the open models'.")
        self.info.setWordWrap(True)
        outer.addLayout(top)
        outer.addWidget(self.info)
        self.error = QLabel("")
        self.error.setStyleSheet(error_css())
        outer.addWidget(self.error)
        self.grid = QGridLayout()
        # The maps get most of the height; reconstructions and prior samples are small strips under them.
        self.grid.setRowStretch(0, 6)
        self.grid.setRowStretch(1, 2)
        self.grid.setRowStretch(2, 2)
        outer.addLayout(self.grid, 1)
        self.rd_plot = pg.PlotWidget(background="w")
        self.rd_plot.setMaximumHeight(220)
        self.rd_plot.setLabel("bottom", "latent size")
        self.rd_plot.setLabel("left", "reconstruction BCE (nats/image)")
        self.rd_plot.addLegend(offset=(-10, 10))
        self.rd_plot.setVisible(False)
        outer.addWidget(self.rd_plot)
        self.pretrain_plot = pg.PlotWidget(background="w")
        self.pretrain_plot.setMaximumHeight(240)
        self.pretrain_plot.setMinimumHeight(180)
        self.pretrain_plot.setLogMode(x=True, y=False)
        self.pretrain_plot.setYRange(0, 1)
        self.pretrain_plot.setLabel("bottom", "labels per class")
        self.pretrain_plot.setLabel("left", "test accuracy")
        self.pretrain_plot.addLegend(offset=(-10, -10))  # bottom right: the curves rise towards the top right
        self.pretrain_plot.setVisible(False)
        # Under the buttons, above the maps: the result of a button press appears where the eye is.
        outer.insertWidget(outer.indexOf(self.error) + 1, self.pretrain_plot)
        self.rd_rows: list[dict[str, Any]] = []
        self.table = QTableWidget()
        self.table.setMaximumHeight(110)
        self.table.setVisible(False)
        outer.addWidget(self.table)
        self.manifold_panel = ImagePanel("Decoded manifolds on the aligned maps (same tiles, left to right as above)",
                                         min_size=160)
        self.manifold_panel.setVisible(False)
        self.manifold_picture: np.ndarray | None = None
        outer.addWidget(self.manifold_panel)
        # Decoder swap: any two open models (ideally a shared-encoder pair), whatever their data sets.
        self.swap = SwapPanel(explorer)
        outer.addWidget(self.swap)

    # ------------------------------------------------------------ building
    def candidates(self) -> list["ModelEntry"]:
        """Open models with encoded data of the current model's dataset (same image shape)."""
        current = self.ctx.state.current
        if current is None:
            return []
        key = (current.meta.get("dataset"), tuple(current.model.image_shape))
        return [e for e in self.ctx.state.models
                if e.latents is not None and (e.meta.get("dataset"), tuple(e.model.image_shape)) == key]

    def refresh(self) -> None:
        from explorer.core.compare import align_maps, map_bounds, prior_density
        from explorer.core.latent.projection import make_projection

        self.error.setText("")
        entries = self.candidates()
        if len(entries) < 2:
            self.error.setText("Need at least two open models with maps of the same dataset.")
            return
        n = len(entries[0].latents)
        rng = np.random.default_rng(0)
        self.rows = np.sort(rng.choice(n, MAX_POINTS, replace=False)) if n > MAX_POINTS else np.arange(n)
        projections, raw = [], []
        for e in entries:
            proj = e.projections.get("pca")
            if proj is None:  # PCA is instant: fit it here rather than make the user switch maps
                proj = make_projection("pca")
                e.maps["pca"] = proj.fit(e.latents)
                e.projections["pca"] = proj
            projections.append(proj)
            raw.append(e.maps["pca"][self.rows])
        aligned, alignments = align_maps(raw)
        self.entries, self.maps = entries, [np.asarray(a, np.float32) for a in aligned]
        bounds = map_bounds(*self.maps)
        self.projections, self.alignments, self.bounds = projections, alignments, bounds
        self._clear_grid()
        labels = entries[0].data.labels[self.rows]
        names = entries[0].data.label_names
        colours = label_colours(max(len(names), int(labels.max()) + 1 if len(labels) else 1))
        for col, (e, pos, proj, align) in enumerate(zip(entries, self.maps, projections, alignments)):
            plot = pg.PlotWidget(background="#1e1f22" if is_dark() else "w")
            plot.setMenuEnabled(False)
            plot.setMinimumHeight(160)
            plot.setTitle(f"{e.name} ({e.model.family.upper()}, latent {e.model.latent_dim})", size="9pt")
            density = prior_density(e.model, proj, bounds, n=5000, resolution=DENSITY_RESOLUTION, alignment=align)
            img = pg.ImageItem(self._density_rgba(density))
            x0, y0, x1, y1 = bounds
            img.setRect(pg.QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))
            img.setZValue(-10)
            plot.addItem(img)
            for k in range(len(colours)):
                mask = labels == k
                if mask.any():
                    item = UniformScatter(pos=pos[mask], pxMode=True, size=3, pen=None, brush=pg.mkBrush(colours[k]))
                    plot.addItem(item)
            marker = UniformScatter(pxMode=True, size=14, pen=pg.mkPen("#d00", width=2.5), brush=None, symbol="s")
            marker.setZValue(10)
            plot.addItem(marker)
            plot.scene().sigMouseMoved.connect(lambda p, c=col: self._hover(c, p))
            plot.scene().sigMouseClicked.connect(lambda ev, c=col: self._click(c, ev))
            self.grid.addWidget(plot, 0, col)
            recon = ImagePanel("", min_size=72)
            prior = ImagePanel("", min_size=72)
            self.grid.addWidget(recon, 1, col)
            self.grid.addWidget(prior, 2, col)
            self.plots.append(plot)
            self.markers.append(marker)
            self.recon_panels.append(recon)
            self.prior_panels.append(prior)
        self.info.setText("Maps: PCA of the same data, aligned to the first (rotation/mirror/scale). Coloured "
                          "points: the encoded data. Red tint: where N(0, I) samples land; an AE's data often "
                          "lies far from it, a VAE's covers it. Hover or click a point: every model's "
                          "reconstruction of it. Bottom row: one prior sample decoded by each model.")
        self.reroll(reset=True)
        self.highlight(int(self.rows[0]))

    def _clear_grid(self) -> None:
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.plots, self.markers = [], []
        self.recon_panels: list[ImagePanel] = []
        self.prior_panels: list[ImagePanel] = []

    @staticmethod
    def _density_rgba(density: np.ndarray) -> np.ndarray:
        d = np.asarray(density, np.float64)
        d = d / d.max() if d.max() > 0 else d
        rgba = np.zeros((*d.shape, 4), np.uint8)
        rgba[..., 0] = 220
        rgba[..., 1] = 60
        rgba[..., 2] = 60
        rgba[..., 3] = (np.sqrt(d) * 150).astype(np.uint8)
        return rgba

    # ------------------------------------------------------------ linked hover / selection
    def _pick(self, col: int, scene_pos) -> int:
        plot = self.plots[col]
        vb = plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return -1
        p = vb.mapSceneToView(scene_pos)
        pos = self.maps[col]
        d = np.hypot(pos[:, 0] - p.x(), pos[:, 1] - p.y())
        i = int(np.argmin(d))
        px = vb.viewPixelSize()
        return int(self.rows[i]) if d[i] <= HOVER_RADIUS_PX * float(np.hypot(*px) / np.sqrt(2)) else -1

    def _hover(self, col: int, scene_pos) -> None:
        idx = self._pick(col, scene_pos)
        if idx >= 0:
            self.highlight(idx)

    def _click(self, col: int, event) -> None:
        idx = self._pick(col, event.scenePos())
        if idx >= 0:
            self.highlight(idx)
            self.ctx.select_datum(idx)

    def highlight(self, idx: int) -> None:
        """Mark datum ``idx`` in every map and show each model's reconstruction of it."""
        where = np.flatnonzero(self.rows == idx)
        data = self.entries[0].data if self.entries else None
        for col, e in enumerate(self.entries):
            if len(where):
                self.markers[col].setData(pos=self.maps[col][where])
            recon = e.reconstruct_uint8(idx)
            if recon is not None:
                original = to_uint8_hwc(data.images[idx]).astype(np.float32)
                err = float(np.mean((recon.astype(np.float32) - original) ** 2)) / 255**2
                self.recon_panels[col].show_array(recon, f"#{idx} reconstructed, MSE {err:.4f}")

    # ------------------------------------------------------------ prior samples
    def reroll(self, reset: bool = False) -> None:
        import torch

        if not self.entries:
            return
        self._seed = 0 if reset else self._seed + 1
        dims = {e.model.latent_dim for e in self.entries}
        gen = torch.Generator().manual_seed(self._seed)
        shared = {d: torch.randn(16, d, generator=gen).numpy() for d in sorted(dims)}
        for col, e in enumerate(self.entries):
            images = e.decode_batch_uint8(shared[e.model.latent_dim])
            same = "the same z as the others" if len(dims) == 1 else f"z in {e.model.latent_dim} dimensions"
            # The first image is "the" shared sample; the grid shows 15 more for coverage.
            self.prior_panels[col].show_array(grid(images, 8), f"prior samples, seed {self._seed}: {same}")

    # ------------------------------------------------------------ metrics
    def compute_metrics(self) -> None:
        from explorer.core.compare import METRIC_COLUMNS, model_metrics

        if not self.entries:
            self.refresh()
        entries = list(self.entries)
        if not entries:
            return
        data = entries[0].data
        self.metrics_button.setEnabled(False)
        self.table.clear()
        self.table.setRowCount(0)

        def work(progress, cancel):
            rows = []
            for i, e in enumerate(entries):
                progress(i / len(entries), f"metrics of {e.name}")
                rows.append(model_metrics(e.model, data, max_items=2000, max_train=5000, n_samples=500,
                                          cancel=cancel))
            return rows

        def done(rows) -> None:
            self.metrics_button.setEnabled(True)
            self.metrics = rows
            cols = [c for c in METRIC_COLUMNS if any(r.get(c.name) is not None for r in rows)]
            self.table.setColumnCount(len(cols))
            self.table.setRowCount(len(rows))
            for j, c in enumerate(cols):
                head = QTableWidgetItem(f"{c.title} ({'↑' if c.direction == 'higher' else '↓' if c.direction == 'lower' else '·'})")
                head.setToolTip(f"{c.help} Unit: {c.unit}.")
                self.table.setHorizontalHeaderItem(j, head)
            self.table.setVerticalHeaderLabels([e.name for e in entries])
            for i, r in enumerate(rows):
                for j, c in enumerate(cols):
                    v = r.get(c.name)
                    text = "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
                    item = QTableWidgetItem(text)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.table.setItem(i, j, item)
            self.table.resizeColumnsToContents()
            self.table.setVisible(True)

        def failed(msg: str) -> None:
            self.metrics_button.setEnabled(True)
            self.error.setText(msg.partition(": ")[2] or msg)

        self.ctx.run_tracked("Computing the metrics", work, on_done=done, on_error=failed,
                             on_cancel=lambda: self.metrics_button.setEnabled(True))

    # ------------------------------------------------------------ rate-distortion
    def compute_rate_distortion(self) -> None:
        from explorer.core.compare import rate_distortion

        entries = self.candidates()
        if not entries:
            self.error.setText("Open models with maps of one dataset first.")
            return
        models = [e.model for e in entries]
        names = [e.name.removesuffix(".safetensors") for e in entries]
        data = entries[0].data
        self.rd_button.setEnabled(False)

        def done(rows) -> None:
            self.rd_button.setEnabled(True)
            self.show_rate_distortion(rows)

        def failed(msg: str) -> None:
            self.rd_button.setEnabled(True)
            self.error.setText(msg.partition(": ")[2] or msg)

        self.ctx.tasks.start(lambda progress, cancel: rate_distortion(models, data, names=names, max_items=2000),
                             on_done=done, on_error=failed)

    def show_rate_distortion(self, rows: list[dict[str, Any]]) -> None:
        self.rd_rows = rows
        self.rd_plot.clear()
        self.rd_plot.setBackground("#1e1f22" if is_dark() else "w")
        pca = sorted((r for r in rows if r["kind"] != "model"), key=lambda r: r["latent_dim"])
        if pca:
            self.rd_plot.plot([r["latent_dim"] for r in pca], [r["recon_bce"] for r in pca],
                              pen=pg.mkPen("#888", width=2, style=Qt.PenStyle.DashLine), symbol="s", symbolSize=7,
                              symbolBrush="#888", name="PCA (linear baseline)")
        for family, colour in (("ae", "#0072B2"), ("vae", "#D55E00")):
            pts = sorted((r for r in rows if r["kind"] == "model" and r["family"] == family),
                         key=lambda r: r["latent_dim"])
            if pts:
                self.rd_plot.plot([r["latent_dim"] for r in pts], [r["recon_bce"] for r in pts],
                                  pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=9, symbolBrush=colour,
                                  name=family.upper())
        self.rd_plot.setVisible(True)

    # ------------------------------------------------------------ pretraining with few labels
    def compute_pretraining(self) -> None:
        """One accuracy-vs-labels curve per mode for every open model with an encoder (background; the button
        cancels while it runs)."""
        from explorer.core.pretrain import pretrain_curve

        if self._pretrain_cancel is not None:
            self._pretrain_cancel.set()
            return
        entries = [e for e in self.ctx.state.models if e.data is not None and e.model.capabilities.has_encoder]
        if not entries:
            self.error.setText("Open a model with an encoder and its labelled data set first.")
            return
        self.error.setText("")
        opts = dict(self.pretrain_options)
        jobs = [(e.name.removesuffix(".safetensors"), e.model, e.data) for e in entries]
        self.pretrain_button.setText("Cancel pretraining")
        tooltip = self.pretrain_button.toolTip()

        def step(fraction: float, message: str) -> None:
            self.pretrain_button.setText(f"Cancel pretraining ({fraction:.0%})")
            self.pretrain_button.setToolTip(message)

        def work(progress, cancel):
            self._pretrain_cancel = cancel
            curves, skipped = [], []
            for i, (name, model, data) in enumerate(jobs):
                def part(f, msg, i=i, name=name):
                    progress((i + f) / len(jobs), f"{name}: {msg}")

                try:
                    curve = pretrain_curve(model, data, progress=part, cancel=cancel, **opts)
                except ValueError as exc:  # e.g. a data set without labels: the others still get a curve
                    skipped.append(f"{name}: {exc}")
                    continue
                curve.model_name = name
                curves.append(curve)
            return curves, skipped

        def finish() -> None:
            self._pretrain_cancel = None
            self.pretrain_button.setText("Pretraining (few labels)")
            self.pretrain_button.setToolTip(tooltip)

        def done(out) -> None:
            finish()
            curves, skipped = out
            self.show_pretraining(curves)
            if skipped:
                self.error.setText("No pretraining curve for " + "; ".join(skipped))

        def failed(msg: str) -> None:
            finish()
            self.error.setText(msg.partition(": ")[2] or msg)

        self.ctx.run_tracked("Pretraining", work, on_done=done, on_error=failed, on_cancel=finish, on_progress=step)

    def show_pretraining(self, curves: list[Any]) -> None:
        from explorer.core.imaging import label_colours_hex

        self.pretrain_curves = list(curves)
        plot = self.pretrain_plot
        plot.clear()
        plot.setBackground("#1e1f22" if is_dark() else "w")
        colours = label_colours_hex(max(len(curves), 1))
        for c, colour in zip(curves, colours):
            for mode in c.modes:
                plot.plot(c.labels_per_class, c.mean(mode), name=f"{c.model_name} {mode}", symbol="o",
                          symbolSize=6, symbolBrush=colour,
                          pen=pg.mkPen(colour, width=2, style=PRETRAIN_DASH.get(mode, Qt.PenStyle.SolidLine)))
        if curves:
            plot.addLine(y=curves[0].chance, pen=pg.mkPen("#999", style=Qt.PenStyle.DashLine))
            # Short: a title wider than the plot widens the whole plot past its widget.
            plot.setTitle(f"{curves[0].dataset}: solid frozen, dashed fine-tuned, dotted scratch", size="9pt")
        plot.setVisible(True)
        # The plot sits under the maps: bring it into view in the tab's scroll area.
        area = self.parentWidget()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parentWidget()
        if area is not None:  # after the layout has made room for the plot that just appeared
            QTimer.singleShot(100, area, lambda: area.ensureWidgetVisible(plot))

    # ------------------------------------------------------------ export
    def _ask_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the comparison into a folder")
        if folder:
            self.export(folder)

    def compute_manifolds(self, grid: int = 12) -> None:
        """Every compared model decodes the same tiles of the aligned maps (in the background)."""
        from explorer.core.latent.manifold import aligned_manifolds, grid_shape, side_by_side

        if not self.entries:
            self.refresh()
        if len(self.entries) < 2:
            return
        entries = [(e.model, p, a) for e, p, a in zip(self.entries, self.projections, self.alignments)]
        bounds = self.bounds
        rows, cols = grid_shape(bounds, grid=grid)
        self.manifold_button.setEnabled(False)

        def work(progress, cancel):
            ms = aligned_manifolds(entries, bounds, rows, cols, progress=progress, cancel=cancel)
            return side_by_side([m.mosaic(pad=1) for m in ms], gap=12)

        def done(picture) -> None:
            self.manifold_button.setEnabled(True)
            self.manifold_picture = picture
            self.manifold_panel.setVisible(True)
            self.manifold_panel.show_array(picture, " | ".join(e.name for e in self.entries))

        def failed(msg: str) -> None:
            self.manifold_button.setEnabled(True)
            self.error.setText(msg.partition(": ")[2] or msg)

        self.ctx.run_tracked("Decoding the manifolds", work, on_done=done, on_error=failed,
                             on_cancel=lambda: self.manifold_button.setEnabled(True))

    def export(self, folder: str) -> None:
        """Write the comparison into ``folder`` (and ``decoder-swap.png`` when a decoder swap is shown)."""
        from pathlib import Path

        from explorer.core.compare import write_comparison
        from explorer.core.swap import write_swap_grid

        entries = self.entries or self.candidates()
        if len(entries) < 2:
            self.error.setText("Need at least two open models with maps of the same dataset.")
            return
        models = [e.model for e in entries]
        names = [e.name.removesuffix(".safetensors") for e in entries]
        data = entries[0].data
        swap = self.swap.rows
        manifolds = self.manifold_picture

        def write() -> None:
            write_comparison(models, data, folder, names=names, max_items=2000, max_train=5000, n_samples=500)
            if swap is not None:
                write_swap_grid(Path(folder) / "decoder-swap.png", swap)
            if manifolds is not None:
                from explorer.core.export import save_png

                save_png(Path(folder) / "manifolds.png", manifolds)

        self.ctx.run_io(write, f"Exported the comparison to {folder}", self.error)


__all__ = ["CompareView"]
