"""Image completion (the "Complete" dock) and the patch codec (the "Patches" tab).

:class:`CompletionPanel`: pick the selected datum or a dropped image, paint the missing region on an enlarged
copy of it (:class:`MaskCanvas`: a brush, or a rectangle dragged corner to corner; the right button erases),
Run (in the background, with progress and Cancel) and see the completions beside the original and the masked
input, each with its loss (and, for a datum, its error inside the hole against the hidden truth, next to the
mean-image fill's); "Put on the map" moves the cursor to that completion's latent.

:class:`PatchesView`: for a patch model, the selected datum beside its reconstruction with the compression
ratio, PSNR and SSIM, and the map of patch codes (PCA of a sample of patches): hover a point to see its patch
enlarged; "Draw as patches" draws a share of the points as their patches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QFrame, QGridLayout, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QRadioButton, QScrollArea, QSizePolicy, QSpinBox,
                               QVBoxLayout, QWidget)

from ..controllers.completion import (CompletionController, CompletionRun, PatchCodes, PatchController, PatchPair,
                                      is_patch_model)
from ..theme import error_css, is_dark, muted_css
from .image_panel import BACKGROUND, ImagePanel, qimage_from_array, to_uint8_hwc
from .map_view import HOVER_RADIUS_PX, UniformScatter

if TYPE_CHECKING:
    from ..controllers.explorer import ExplorerController

MASK_COLOUR = QColor(230, 40, 40, 120)  # translucent: the pixels under the mask stay visible
HINT = "Paint the missing region (left button paints, right button erases), then Run."
DRAWN_PATCHES = 300  # points drawn as their patches with "Draw as patches"
PATCH_PX = 16  # their size on screen


class _CompactPlot(pg.PlotWidget):
    """A plot whose preferred size is small: a scroll area sizes a word-wrapping page by its parts' preferred
    heights, and a plain PlotWidget's would push the page past a 760-px screen."""

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(320, 180)


class MaskCanvas(QWidget):
    """An image enlarged by a whole factor, with a mask painted over it by mouse.

    Tools: ``"brush"`` (a disk of ``brush_size`` pixels across, painted along the drag) and ``"rect"`` (press
    on one corner pixel, release on the opposite one: every pixel of that rectangle, both corners included).
    The left button paints, the right button erases. ``mask`` is (H, W) bool, True in the hole.
    """

    maskChanged = Signal()

    def __init__(self, min_size: int = 180, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(min_size, min_size)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        self.tool = "rect"
        self.brush_size = 3
        self.mask = np.zeros((0, 0), bool)
        self._qimage: QImage | None = None
        self._shape = (0, 0)
        self._press: tuple[int, int] | None = None
        self._drag_to: tuple[int, int] | None = None
        self._erase = False

    # ------------------------------------------------------------ content
    def set_image(self, image_chw: np.ndarray | None) -> None:
        """Show (C, H, W) uint8 pixels; the mask is kept when the size is the same, cleared otherwise."""
        if image_chw is None:
            self._qimage, self._shape = None, (0, 0)
            self.mask = np.zeros((0, 0), bool)
        else:
            hwc = to_uint8_hwc(image_chw)
            self._qimage = qimage_from_array(hwc)
            shape = hwc.shape[:2]
            if shape != self.mask.shape:
                self.mask = np.zeros(shape, bool)
            self._shape = shape
        self.update()
        self.maskChanged.emit()

    def clear_mask(self) -> None:
        self.mask = np.zeros(self._shape, bool)
        self.update()
        self.maskChanged.emit()

    def set_mask(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, bool)
        if mask.shape != self._shape:
            raise ValueError(f"a {mask.shape} mask for a {self._shape} image")
        self.mask = mask.copy()
        self.update()
        self.maskChanged.emit()

    # ------------------------------------------------------------ geometry
    def target_rect(self) -> QRect:
        h, w = self._shape
        if not h or not w:
            return QRect()
        factor = max(1, int(min(self.width() / w, self.height() / h)))
        tw, th = w * factor, h * factor
        return QRect((self.width() - tw) // 2, (self.height() - th) // 2, tw, th)

    def _image_coords(self, pos: QPointF) -> tuple[float, float] | None:
        r = self.target_rect()
        if r.isEmpty():
            return None
        h, w = self._shape
        return (pos.x() - r.x()) / r.width() * w, (pos.y() - r.y()) / r.height() * h

    def pixel_at(self, pos: QPointF) -> tuple[int, int] | None:
        """(x, y) of the image pixel under a widget position, clamped to the image; None without an image."""
        uv = self._image_coords(pos)
        if uv is None:
            return None
        h, w = self._shape
        return min(max(int(np.floor(uv[0])), 0), w - 1), min(max(int(np.floor(uv[1])), 0), h - 1)

    def widget_point(self, x: int, y: int) -> QPoint:
        """The widget position of pixel (x, y)'s centre (what tests click)."""
        r = self.target_rect()
        h, w = self._shape
        return QPoint(int(r.x() + (x + 0.5) * r.width() / w), int(r.y() + (y + 0.5) * r.height() / h))

    # ------------------------------------------------------------ painting with the mouse
    def _dab(self, pos: QPointF) -> None:
        uv = self._image_coords(pos)
        if uv is None:
            return
        h, w = self._shape
        yy, xx = np.mgrid[0:h, 0:w]
        disk = (xx + 0.5 - uv[0]) ** 2 + (yy + 0.5 - uv[1]) ** 2 <= (self.brush_size / 2.0) ** 2
        px = self.pixel_at(pos)
        if px is not None:
            disk[px[1], px[0]] = True  # a brush smaller than a pixel still paints the pixel under it
        self.mask[disk] = not self._erase

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if self._qimage is None or event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        self._erase = event.button() == Qt.MouseButton.RightButton
        pos = event.position()
        if self.tool == "brush":
            self._dab(pos)
        else:
            self._press = self._drag_to = self.pixel_at(pos)
        self.update()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if self._qimage is None or not event.buttons() & (Qt.MouseButton.LeftButton | Qt.MouseButton.RightButton):
            return
        if self.tool == "brush":
            self._dab(event.position())
        elif self._press is not None:
            self._drag_to = self.pixel_at(event.position())
        self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if self._qimage is None:
            return
        if self.tool == "rect" and self._press is not None:
            end = self.pixel_at(event.position()) or self._press
            (x0, y0), (x1, y1) = self._press, end
            self.mask[min(y0, y1):max(y0, y1) + 1, min(x0, x1):max(x0, x1) + 1] = not self._erase
        self._press = self._drag_to = None
        self.update()
        self.maskChanged.emit()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        r = self.target_rect()
        if self._qimage is None or r.isEmpty():
            painter.setPen(QColor("#bbbbbb"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "Select a datum on the map (or drop an image) to complete it")
            painter.end()
            return
        painter.drawImage(r, self._qimage)
        h, w = self._shape
        overlay = np.zeros((h, w, 4), np.uint8)
        overlay[self.mask] = (MASK_COLOUR.red(), MASK_COLOUR.green(), MASK_COLOUR.blue(), MASK_COLOUR.alpha())
        over = QImage(overlay.data, w, h, w * 4, QImage.Format.Format_RGBA8888).copy()
        painter.drawImage(r, over)
        if self._press is not None and self._drag_to is not None:
            (x0, y0), (x1, y1) = self._press, self._drag_to
            sx, sy = r.width() / w, r.height() / h
            painter.setPen(QPen(QColor("#ffd400"), 2, Qt.PenStyle.DashLine))
            painter.drawRect(QRect(int(r.x() + min(x0, x1) * sx), int(r.y() + min(y0, y1) * sy),
                                   int((abs(x1 - x0) + 1) * sx), int((abs(y1 - y0) + 1) * sy)))
        painter.end()


class CompletionPanel(QWidget):
    def __init__(self, explorer: "ExplorerController") -> None:
        super().__init__()
        self.ctx = explorer
        self.controller = CompletionController(explorer)
        self.source = None  # CompletionSource being painted on
        self.result_panels: list[ImagePanel] = []
        self.place_buttons: list[QPushButton] = []

        # Laid out for a bottom dock ~150 px high on a 1280x760 screen: the controls in four short rows, the
        # canvas beside them, the results in a strip of their own that scrolls sideways when it must.
        outer = QHBoxLayout(self)
        outer.setContentsMargins(4, 2, 4, 2)
        left = QGridLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.setVerticalSpacing(3)
        self.source_box = QComboBox()
        self.source_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source_box.setMinimumContentsLength(10)
        self.source_box.setToolTip("The selected datum (click one on the map) or an image dropped on the map")
        left.addWidget(self.source_box, 0, 0, 1, 3)
        self.rect_tool = QRadioButton("Rectangle")
        self.brush_tool = QRadioButton("Brush")
        self.rect_tool.setToolTip("Drag from one corner pixel to the opposite one (right button: erase)")
        self.brush_tool.setToolTip("Paint along the drag (right button: erase)")
        self.rect_tool.setChecked(True)
        self._tool_group = QButtonGroup(self)
        for b in (self.rect_tool, self.brush_tool):
            self._tool_group.addButton(b)
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 32)
        self.brush_spin.setValue(3)
        self.brush_spin.setSuffix(" px")
        self.brush_spin.setToolTip("Brush diameter in image pixels")
        left.addWidget(self.rect_tool, 1, 0)
        left.addWidget(self.brush_tool, 1, 1)
        left.addWidget(self.brush_spin, 1, 2)
        self.restarts_spin = QSpinBox()
        self.restarts_spin.setRange(1, 8)
        self.restarts_spin.setValue(int(self.controller.options["restarts"]))
        self.restarts_spin.setSuffix(" fills")
        self.restarts_spin.setToolTip("Completions to search for (restarts from different codes), best first")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(10, 5000)
        self.steps_spin.setSingleStep(50)
        self.steps_spin.setValue(int(self.controller.options["steps"]))
        self.steps_spin.setSuffix(" steps")
        self.steps_spin.setToolTip("Optimisation steps of the latent search")
        self.clear_button = QPushButton("Clear mask")
        left.addWidget(self.restarts_spin, 2, 0)
        left.addWidget(self.steps_spin, 2, 1)
        left.addWidget(self.clear_button, 2, 2)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Search the latent whose decoding matches the visible pixels, then blend its "
                                   "fill into the hole (in the background)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        left.addWidget(self.run_button, 3, 0)
        left.addWidget(self.cancel_button, 3, 1)
        left.addWidget(self.progress, 3, 2)
        self.status = QLabel(HINT)
        self.status.setWordWrap(True)
        self.status.setStyleSheet(muted_css())
        left.addWidget(self.status, 4, 0, 1, 3)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(error_css())
        left.addWidget(self.error, 5, 0, 1, 3)
        left.setRowStretch(6, 1)
        holder = QWidget()
        holder.setLayout(left)
        holder.setMaximumWidth(330)
        outer.addWidget(holder)
        self.canvas = MaskCanvas(100)
        self.canvas.setToolTip("Paint the region to complete: left button paints, right button erases")
        outer.addWidget(self.canvas, 2)
        # The completions come first, next to the canvas (which shows the original under the mask), so the best
        # ones are in view without scrolling; the original and the masked input follow.
        strip = QWidget()
        row = QHBoxLayout(strip)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        self.results = QGridLayout()
        self.results.setHorizontalSpacing(2)
        self.results.setVerticalSpacing(0)
        row.addLayout(self.results, 1)
        self.original_panel = ImagePanel("", min_size=64)
        self.masked_panel = ImagePanel("", min_size=64)
        for panel in (self.original_panel, self.masked_panel):
            side = QVBoxLayout()
            side.addWidget(panel, 1)
            side.addSpacing(self.fontMetrics().lineSpacing() * 2 + 14)  # level with the completions' buttons
            row.addLayout(side)
        self.results_area = QScrollArea()
        self.results_area.setWidgetResizable(True)
        self.results_area.setFrameShape(QFrame.Shape.NoFrame)
        self.results_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results_area.setWidget(strip)
        self.results_area.setMinimumWidth(140)
        outer.addWidget(self.results_area, 5)

        c, st = self.controller, self.ctx.state
        self.rect_tool.toggled.connect(lambda on: setattr(self.canvas, "tool", "rect" if on else "brush"))
        self.brush_spin.valueChanged.connect(lambda v: setattr(self.canvas, "brush_size", int(v)))
        self.source_box.activated.connect(lambda _i: self._source_picked())
        self.clear_button.clicked.connect(self.canvas.clear_mask)
        self.canvas.maskChanged.connect(self._preview_masked)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(c.cancel)
        c.progress.connect(self._progress)
        c.finished.connect(self._finished)
        c.failed.connect(self._failed)
        c.cancelled.connect(self._cancelled)
        st.selectionChanged.connect(lambda entry, idx: entry is st.current and self.refresh_sources(prefer="datum"))
        st.droppedChanged.connect(lambda entry: entry is st.current and self.refresh_sources(prefer="dropped"))
        st.currentChanged.connect(lambda entry: self._model_changed())
        self.refresh_sources()

    # ------------------------------------------------------------ sources
    def _model_changed(self) -> None:
        self.error.setText("")
        self.status.setText(HINT)
        self.refresh_sources()

    def refresh_sources(self, prefer: str | None = None) -> None:
        """Fill the image box; a new selection (or new dropped images) becomes the image painted on."""
        keep = self.source_box.currentData()
        items = self.controller.sources()
        self.source_box.blockSignals(True)
        self.source_box.clear()
        for text, key in items:
            self.source_box.addItem(text, key)
        keys = [k for _, k in items]
        pick = next((i for i, k in enumerate(keys) if prefer and k[0] == prefer), None)
        if prefer == "dropped":
            pick = max((i for i, k in enumerate(keys) if k[0] == "dropped"), default=pick)
        if pick is None and keep in keys:
            pick = keys.index(keep)
        self.source_box.setCurrentIndex(pick if pick is not None else (0 if keys else -1))
        self.source_box.blockSignals(False)
        self._source_picked()

    def _source_picked(self) -> None:
        self.source = self.controller.source(self.source_box.currentData())
        self.canvas.set_image(self.source.image if self.source is not None else None)
        self.run_button.setEnabled(self.source is not None and not self.controller.running)
        if self.source is not None:
            self.original_panel.show_array(to_uint8_hwc(self.source.image), f"original\n{self.source.label}")
        else:
            self.original_panel.clear()
        for panel, button in zip(self.result_panels, self.place_buttons):  # they belong to the previous image
            panel.clear()
            button.setEnabled(False)

    def _preview_masked(self) -> None:
        """What the encoder will see: the hole filled with the mean of the visible pixels (as the core does)."""
        mask = self.canvas.mask
        if self.source is None or mask.shape != self.source.image.shape[1:]:
            self.masked_panel.clear()
            return
        x = self.source.image.astype(np.float32) / 255.0
        if mask.any() and not mask.all():
            mean = x[:, ~mask].mean(1)
            x = np.where(mask[None], mean[:, None, None], x)
        self.masked_panel.show_array(to_uint8_hwc(x), f"masked input\n{int(mask.sum())} pixels hidden")

    def select_source(self, kind: str, index: int) -> bool:
        for i in range(self.source_box.count()):
            if self.source_box.itemData(i) == (kind, index):
                self.source_box.setCurrentIndex(i)
                self._source_picked()
                return True
        return False

    # ------------------------------------------------------------ running
    def run(self) -> bool:
        self.error.setText("")
        if self.source is None:
            self.error.setText("Select a datum on the map (or drop an image) first.")
            return False
        self.controller.options.update(restarts=self.restarts_spin.value(), steps=self.steps_spin.value())
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.status.setText(f"Completing {self.source.label}…")
        if not self.controller.run(self.source, self.canvas.mask):
            self._idle()
            return False
        return True

    def _idle(self) -> None:
        self.run_button.setEnabled(self.source is not None)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.progress.setFormat(f"{message} %p%" if message else "%p%")

    def _failed(self, message: str) -> None:
        self._idle()
        self.error.setText(message)

    def _cancelled(self) -> None:
        self._idle()
        self.status.setText("Cancelled.")

    def _finished(self, run: CompletionRun) -> None:
        self._idle()
        res = run.result
        self.masked_panel.show_array(to_uint8_hwc(run.masked), f"masked input\n{int(run.mask.sum())} pixels hidden")
        self.original_panel.show_array(to_uint8_hwc(run.source.image), f"original\n{run.source.label}")
        while len(self.result_panels) > len(res.losses):
            panel, button = self.result_panels.pop(), self.place_buttons.pop()
            for w in (panel, button):
                self.results.removeWidget(w)
                w.deleteLater()
        for k in range(len(res.losses)):
            if k >= len(self.result_panels):
                panel = ImagePanel("", min_size=64)
                small = panel.caption.font()
                small.setPointSizeF(7.5)  # "loss 0.0133" / "hole 0.022" on two lines under a 64-px image
                panel.caption.setFont(small)
                panel.caption.setFixedHeight(panel.caption.fontMetrics().lineSpacing() * 3 + 4)  # when "loss x" wraps
                button = QPushButton("Put on\nthe map")  # two lines: the strip is narrow in a bottom dock
                button.setMinimumWidth(64)
                button.setToolTip("Move the cursor to this completion's latent code")
                button.clicked.connect(lambda _=False, i=k: self.controller.place(i))
                self.results.addWidget(panel, 0, k)
                self.results.addWidget(button, 1, k)
                self.result_panels.append(panel)
                self.place_buttons.append(button)
            # Two short lines fit under a 64-px image; the tooltip says what they are.
            caption = f"loss {float(res.losses[k]):.3g}"
            tip = f"Completion {k + 1} of {len(res.losses)}: loss {float(res.losses[k]):.4g} (the search's objective)"
            if run.hole_mse is not None:
                caption += f"\nhole {float(run.hole_mse[k]):.3f}"
                tip += f"; MSE inside the hole against the original {float(run.hole_mse[k]):.4f}"
            self.result_panels[k].show_array(to_uint8_hwc(res.blended[k]), caption)
            self.result_panels[k].setToolTip(tip)
            self.place_buttons[k].setEnabled(True)
        text = f"{len(res.losses)} completions ({res.method}, {res.blend} blending), best first."
        if run.hole_mse is not None and run.mean_fill_mse is not None:
            text += (f" Error inside the hole: best {float(run.hole_mse[0]):.4f} against "
                     f"{run.mean_fill_mse:.4f} for the mean image.")
        self.status.setText(text)

    def shutdown(self) -> None:
        self.controller.cancel()


# ====================================================================== patches
class PatchesView(QWidget):
    def __init__(self, explorer: "ExplorerController") -> None:
        super().__init__()
        self.ctx = explorer
        self.controller = PatchController(explorer)
        self.codes: PatchCodes | None = None
        self.pair: PatchPair | None = None
        self.hovered = -1
        self._patch_items: list[pg.ImageItem] = []
        self._stale = True

        # The central area of a 1280x760 window is ~550x440: the codec on one row at the top, the map under it.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 2, 4, 2)
        top = QHBoxLayout()
        self.original_panel = ImagePanel("", min_size=84)
        self.recon_panel = ImagePanel("", min_size=84)
        top.addWidget(self.original_panel, 1)
        top.addWidget(self.recon_panel, 1)
        text = QVBoxLayout()
        self.info = QLabel("Open a patch model (latent-explorer train --arch patch …) to see it as a codec.")
        self.info.setWordWrap(True)
        text.addWidget(self.info)
        self.metrics = QLabel("")
        self.metrics.setWordWrap(True)
        self.metrics.setToolTip("Compression ratio: the image's bytes (one per pixel and channel) over its codes' "
                                "(one byte per code number, 8-bit quantised, as in latent-explorer compress). "
                                "PSNR and SSIM here use the unquantised codes.")
        text.addWidget(self.metrics)
        self.draw_patches = QCheckBox("Draw the map's points as patches")
        self.draw_patches.setToolTip(f"Draw {DRAWN_PATCHES} of the points as their patches")
        self.draw_patches.toggled.connect(lambda _on: self._draw_patch_images())
        text.addWidget(self.draw_patches)
        text.addStretch(1)
        top.addLayout(text, 2)
        outer.addLayout(top, 2)
        bottom = QHBoxLayout()
        mid = QVBoxLayout()
        self.map_caption = QLabel("Map of patch codes")
        self.map_caption.setStyleSheet(muted_css())
        self.map_caption.setWordWrap(True)
        mid.addWidget(self.map_caption)
        self.plot = _CompactPlot(background="#1e1f22" if is_dark() else "w")
        self.plot.setMenuEnabled(False)
        self.plot.setMinimumSize(200, 150)
        self.plot.setLabel("bottom", "PC 1 of the codes")
        self.plot.setLabel("left", "PC 2")
        self.scatter = UniformScatter(pxMode=True, size=4, pen=None, brush=pg.mkBrush(40, 110, 200, 140))
        self.plot.addItem(self.scatter)
        self.marker = UniformScatter(pxMode=True, size=14, pen=pg.mkPen("#d00", width=2.5), brush=None, symbol="s")
        self.marker.setZValue(20)
        self.plot.addItem(self.marker)
        self.plot.scene().sigMouseMoved.connect(self._hover)
        mid.addWidget(self.plot, 1)
        self.error = QLabel("")
        self.error.setStyleSheet(error_css())
        self.error.setWordWrap(True)
        mid.addWidget(self.error)
        bottom.addLayout(mid, 3)
        self.patch_panel = ImagePanel("Patch under the mouse", min_size=100)
        self.patch_panel.setMaximumWidth(180)
        bottom.addWidget(self.patch_panel, 1)
        outer.addLayout(bottom, 5)

        c, st = self.controller, self.ctx.state
        c.pairReady.connect(self._show_pair)
        c.codesReady.connect(self._show_codes)
        c.failed.connect(self.error.setText)
        for ev in (st.currentChanged, st.dataChanged, st.selectionChanged):
            ev.connect(lambda *args: self._changed())

    # ------------------------------------------------------------ updates (only while shown)
    def _changed(self) -> None:
        self._stale = True
        if self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def refresh(self) -> None:
        self._stale = False
        self.error.setText("")
        entry = self.ctx.state.current
        if not is_patch_model(entry) or entry.data is None:
            name = f"{entry.name} ({entry.model.family.upper()}) is no patch model. " if entry is not None else ""
            self.info.setText(f"{name}Open a patch model (latent-explorer train --arch patch …) to see it as a "
                              "codec and its map of patch codes.")
            self.original_panel.clear()
            self.recon_panel.clear()
            self.metrics.setText("")
            self._clear_codes()
            return
        m = entry.model
        self.info.setText(f"{entry.name}: {m.patch_size}x{m.patch_size} patches, {m.code_size} codes each, "
                          f"{m.tiles} tiles per image.")
        idx = entry.selected if entry.selected >= 0 else (entry.data.n_train if entry.data.n_test else 0)
        self.controller.show_pair(entry, idx)
        if self.codes is None or self.controller._codes_for is not entry.model:
            self._clear_codes()
            self.map_caption.setText("Encoding a sample of patches…")
        self.controller.sample_codes(entry)

    def _show_pair(self, pair: PatchPair) -> None:
        self.pair = pair
        self.original_panel.show_array(to_uint8_hwc(pair.original), f"original, datum #{pair.index}")
        self.recon_panel.show_array(to_uint8_hwc(pair.reconstruction), "reconstruction, patch by patch")
        self.metrics.setText(f"<b>{pair.ratio:.3g}:1</b> ({pair.raw_bytes} bytes → {pair.code_bytes} one-byte "
                             f"codes)<br>PSNR <b>{pair.psnr:.2f} dB</b> · SSIM <b>{pair.ssim:.3f}</b>")

    def _clear_codes(self) -> None:
        self.codes = None
        self.scatter.setData(pos=np.zeros((0, 2)))
        self.marker.setData(pos=np.zeros((0, 2)))
        for item in self._patch_items:
            self.plot.removeItem(item)
        self._patch_items = []
        self.patch_panel.clear()
        self.map_caption.setText("Map of patch codes")

    def _show_codes(self, codes: PatchCodes) -> None:
        self._clear_codes()
        self.codes = codes
        self.scatter.setData(pos=codes.positions)
        self.scatter._cached_rect = None
        self.map_caption.setText(f"Map of patch codes: {len(codes.codes)} random patches, PCA of their "
                                 f"{codes.codes.shape[1]}-number codes ({codes.explained:.0%} of the variance). "
                                 "Hover a point to see its patch.")
        self.plot.getPlotItem().getViewBox().autoRange()
        self._draw_patch_images()

    def _draw_patch_images(self) -> None:
        for item in self._patch_items:
            self.plot.removeItem(item)
        self._patch_items = []
        codes = self.codes
        if codes is None or not self.draw_patches.isChecked():
            self.scatter.setVisible(True)
            return
        pos = codes.positions
        # Square on screen: PATCH_PX pixels a side in the current view, whatever the axes' aspect.
        px, py = self.plot.getPlotItem().getViewBox().viewPixelSize()
        if not (np.isfinite(px) and np.isfinite(py) and px > 0 and py > 0):
            span = float(np.ptp(pos, axis=0).max()) if len(pos) else 1.0
            px = py = (span or 1.0) / 300.0
        w, h = PATCH_PX * px, PATCH_PX * py
        step = max(1, len(pos) // DRAWN_PATCHES)
        for i in range(0, len(pos), step)[:DRAWN_PATCHES]:
            hwc = to_uint8_hwc(codes.patches[i])
            item = pg.ImageItem(np.ascontiguousarray(np.flipud(hwc[..., 0] if hwc.shape[2] == 1 else hwc)),
                                levels=(0, 255))
            item.setRect(QRectF(float(pos[i, 0] - w / 2), float(pos[i, 1] - h / 2), float(w), float(h)))
            item.setZValue(5)
            self.plot.addItem(item)
            self._patch_items.append(item)

    # ------------------------------------------------------------ hover
    def point_at(self, scene_pos) -> int:
        codes = self.codes
        if codes is None or not len(codes.positions):
            return -1
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return -1
        p = vb.mapSceneToView(scene_pos)
        px, py = vb.viewPixelSize()
        d = np.hypot((codes.positions[:, 0] - p.x()) / px, (codes.positions[:, 1] - p.y()) / py)
        i = int(np.argmin(d))
        return i if d[i] <= HOVER_RADIUS_PX else -1

    def _hover(self, scene_pos) -> None:
        i = self.point_at(scene_pos)
        if i < 0 or i == self.hovered:
            return
        self.hovered = i
        codes = self.codes
        self.marker.setData(pos=codes.positions[i:i + 1])
        code = ", ".join(f"{v:.2f}" for v in codes.codes[i][:4])
        more = "…" if codes.codes.shape[1] > 4 else ""
        self.patch_panel.show_array(to_uint8_hwc(codes.patches[i]), f"patch {i}: code {code}{more}")


__all__ = ["CompletionPanel", "MaskCanvas", "PatchesView"]
