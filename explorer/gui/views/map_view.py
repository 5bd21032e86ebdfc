"""The latent map: a scatter of the dataset's latents, a draggable cursor, hover and pick.

Performance notes (70,000 points on 2 cores):
* the scatter uses one shared brush per label, no outlines and pxMode, and is
  cached in device coordinates, so moving the cursor over it repaints the
  cursor only instead of re-rendering every point;
* hover/pick never asks the scatter (``pointsAt`` is a linear scan): the
  caller answers with a KD-tree through :attr:`nearest_fn`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPixmapCache
from PySide6.QtWidgets import QGraphicsItem, QVBoxLayout, QWidget

from explorer.core.imaging import PALETTE_HEX, label_colours_hex

from .map_layers import DENSITY_THRESHOLD, MapLayers, points_in_polygon_fast

# The one label palette (explorer.core.imaging): the map, the Compare tab and exported PNGs agree.
PALETTE = list(PALETTE_HEX)
HOVER_RADIUS_PX = 12
CURSOR_SIZE_PX = 18
CURSOR_GRAB_PX = CURSOR_SIZE_PX / 2 + 4  # a little slack around the drawn ring
CLICK_SLOP_PX = 4  # a press and release this close together is a click, not a pan


class UniformScatter(pg.ScatterPlotItem):
    """A scatter whose points all share one style (the item's own symbol, size, pen and brush).

    pyqtgraph looks each point's style up in its symbol atlas in Python (~5 us a point);
    with one style for all, one lookup serves every point, which makes recolouring
    70,000 points several times faster.
    """

    # pyqtgraph recomputes the bounds (with pixel-vector maths) on every scene query, i.e. on every
    # mouse move; they only change with the data or the view transform, so cache them.
    _cached_rect = None

    def boundingRect(self):  # noqa: N802 (Qt name)
        if self._cached_rect is None:
            self._cached_rect = super().boundingRect()
        return self._cached_rect

    def viewTransformChanged(self):  # noqa: N802 (pyqtgraph name)
        self._cached_rect = None
        super().viewTransformChanged()

    def setData(self, *args, **kwargs):  # noqa: N802 (pyqtgraph name)
        self._cached_rect = None
        super().setData(*args, **kwargs)

    def clear(self):
        self._cached_rect = None
        super().clear()

    def updateSpots(self, dataSet=None):  # noqa: N802,N803 (pyqtgraph names)
        data = self.data if dataSet is None else dataSet
        if not (self.opts["pxMode"] and self.opts["useCache"]) or not len(data):
            return super().updateSpots(dataSet)
        mask = data["sourceRect"]["w"] == 0
        if mask.any():
            style = (self.opts["symbol"], self.opts["size"], self.opts["pen"], self.opts["brush"])
            data["sourceRect"][mask] = self.fragmentAtlas[[style]][0]
            self.invalidate()
        self._updateMaxSpotSizes(data=data)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of ``points`` (N, 2) inside ``polygon`` (M, 2; closed implicitly), by the even-odd rule.

    Vectorised over points, looped over edges: ~1 ms per 100 edges for 70,000 points.
    """
    pts = np.asarray(points, np.float64)
    poly = np.asarray(polygon, np.float64)
    if len(pts) == 0 or len(poly) < 3:
        return np.zeros(0, np.int64)
    lo, hi = poly.min(0), poly.max(0)
    candidates = np.flatnonzero(((pts >= lo) & (pts <= hi)).all(1))
    x, y = pts[candidates, 0], pts[candidates, 1]
    inside = np.zeros(len(candidates), bool)
    x0, y0 = poly[-1]
    for x1, y1 in poly:
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
        x0, y0 = x1, y1
    return candidates[inside]


def label_colours(n: int) -> list[QColor]:
    return [QColor(h) for h in label_colours_hex(n)]


class LatentMapView(QWidget):
    """Scatter + cursor. Emits map coordinates; knows nothing about models."""

    cursorMoved = Signal(float, float)
    cursorMoveFinished = Signal(float, float)
    pointHovered = Signal(int)  # -1 when the mouse leaves every point
    pointClicked = Signal(int)
    lassoFinished = Signal(object)  # indices (np.ndarray) of the points inside the drawn outline

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
        # Each label's scatter caches a viewport-sized pixmap; Qt's default 10 MB cache would thrash
        # with more than a few labels and every repaint would redraw 70k points.
        QPixmapCache.setCacheLimit(max(QPixmapCache.cacheLimit(), 256 * 1024))
        self.plot = pg.PlotWidget(background="w")
        self.apply_theme()
        self.plot.setMenuEnabled(False)
        # No grid: the axes draw it across the whole view, so every cursor move would repaint them.
        self.plot.setLabel("bottom", "map x")
        self.plot.setLabel("left", "map y")
        self.view: pg.ViewBox = self.plot.getPlotItem().getViewBox()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

        # The decoded manifold (Kingma & Welling's fig. 4): a mosaic of images decoded at tile centres of the
        # visible region, under the points (or instead of them).
        self.manifold_item = pg.ImageItem()
        self.manifold_item.setZValue(-20)
        self.plot.addItem(self.manifold_item)
        self.points_visible = True
        self.trust_item = pg.ImageItem()
        self.trust_item.setZValue(-10)
        self.trust_item.setOpacity(0.35)
        self.plot.addItem(self.trust_item)

        # One scatter item per label, each with a single shared brush: recolouring is a cheap re-partition
        # and each item renders from its own device-coordinate cache.
        self.scatter_items: list[pg.ScatterPlotItem] = []
        # Large maps (map_layers.py): above density_threshold points a density image replaces the scatters;
        # the layers also hold the point index the lasso uses, and thumbnails once an image source is set.
        self.layers = MapLayers(self.plot)
        self.density_threshold = DENSITY_THRESHOLD

        self.extra_scatter = UniformScatter(pxMode=True, size=9, pen=pg.mkPen("k", width=1.5),
                                                brush=pg.mkBrush("#ffff00"), symbol="star")
        self.extra_scatter.setZValue(5)
        self.plot.addItem(self.extra_scatter)

        self.hover_marker = UniformScatter(pxMode=True, size=12, pen=pg.mkPen("k", width=2), brush=None)
        self.hover_marker.setZValue(8)
        self.plot.addItem(self.hover_marker)
        self.search_marker = UniformScatter(pxMode=True, size=9, pen=pg.mkPen("#ff00aa", width=2), brush=None)
        self.search_marker.setZValue(8)
        self.plot.addItem(self.search_marker)
        self.selected_marker = UniformScatter(pxMode=True, size=14, pen=pg.mkPen("#d00", width=2.5),
                                                  brush=None, symbol="s")
        self.selected_marker.setZValue(9)
        self.plot.addItem(self.selected_marker)
        # Cached like the data scatters: a cursor passing over a marker then blits it instead of
        # running pyqtgraph's Python paint.
        for marker in (self.extra_scatter, self.hover_marker, self.selected_marker):
            marker.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

        self.cursor = pg.TargetItem(pos=(0.0, 0.0), size=CURSOR_SIZE_PX, movable=True,
                                    pen=pg.mkPen("#111", width=2), brush=pg.mkBrush(255, 255, 255, 90),
                                    hoverPen=pg.mkPen("#d00", width=2.5))
        self.cursor.setToolTip("Drag me: the image on the right decodes the latent vector under the cursor")
        self.cursor.setZValue(10)
        self.plot.addItem(self.cursor)
        self.apply_theme()
        self.cursor.sigPositionChanged.connect(self._cursor_changed)
        self.cursor.sigPositionChangeFinished.connect(self._cursor_finished)

        # Opaque and dark-on-light, so the labels read over any points; reset_range keeps the points clear of it.
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextSize="9pt", labelTextColor="#111111",
                                          brush=pg.mkBrush(255, 255, 255, 225), pen=pg.mkPen("#999999"))

        # Overlays for arithmetic and paths: lasso outline, point groups, vector arrows, an interpolation path.
        self.lasso_curve = pg.PlotCurveItem(pen=pg.mkPen("#d00", width=2, style=Qt.PenStyle.DashLine))
        self.lasso_curve.setZValue(20)
        self.plot.addItem(self.lasso_curve)
        self.group_items: dict[str, UniformScatter] = {}
        # Groups are told apart by shape, in black: no label colour of the palette can be mistaken for them.
        for name, colour, symbol in (("A", "#000000", "d"), ("B", "#000000", "t")):
            item = UniformScatter(pxMode=True, size=8, pen=pg.mkPen(colour, width=1.5), brush=None, symbol=symbol)
            item.setZValue(6)
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.plot.addItem(item)
            self.group_items[name] = item
        self.path_curve = pg.PlotDataItem(pen=pg.mkPen("#222", width=2), symbol="o", symbolSize=5,
                                          symbolBrush="#ffffff", symbolPen="#222")
        self.path_curve.setZValue(7)
        self.plot.addItem(self.path_curve)
        self.keyframe_items: list[pg.TextItem] = []
        self.arrow_items: list[Any] = []
        self._lasso: list[tuple[float, float]] | None = None
        self._lasso_armed = False

        self.nearest_fn: Callable[[np.ndarray], tuple[float, int]] | None = None
        self.positions = np.zeros((0, 2), np.float32)
        self._hovered = -1
        self._suppress = False
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        # Clicks are recognised in the event filter (a press and a release within a few pixels), not through the
        # scene: there the hover ring, drawn right under the pointer, took every click on a point.
        self._press_pos: QPointF | None = None
        # Dragging the cursor is handled before pyqtgraph sees the events: its scene dispatch
        # (hover tests against every item, a 100 Hz rate limit) cost more than the decode itself.
        self._drag_offset: QPointF | None = None
        self.plot.viewport().installEventFilter(self)

    def apply_theme(self) -> None:
        """Map background and axes from the light/dark theme."""
        from ..theme import is_dark

        dark = is_dark()
        self.plot.setBackground("#1e1f22" if dark else "w")
        pen = pg.mkPen("#c8c8c8" if dark else "#444444")
        for name in ("left", "bottom"):
            axis = self.plot.getPlotItem().getAxis(name)
            axis.setPen(pen)
            axis.setTextPen(pen)
        cursor = self.__dict__.get("cursor")  # (QWidget.cursor() is a method until ours is made)
        if isinstance(cursor, pg.TargetItem):
            cursor.setPen(pg.mkPen("#f5f5f5" if dark else "#111111", width=2))
        for item in getattr(self, "scatter_items", []):  # cached renders hold the old background's edges
            item.update()

    # ------------------------------------------------------------ data
    def set_points(self, positions: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                   reset_view: bool = True, colours: Sequence[QColor] | None = None) -> None:
        """Show a new map. Markers of the previous map (hover ring, selection, stars, groups, arrows, path)
        go: their coordinates belonged to it, and they would stretch the range."""
        self.positions = np.asarray(positions, np.float32)
        self._hovered = -1
        for marker in (self.hover_marker, self.selected_marker, self.extra_scatter, self.search_marker,
                       *self.group_items.values()):
            marker.clear()
        self.set_arrows([])
        self.set_path(None)
        self.set_labels(labels, label_names, colours)
        if reset_view and len(self.positions):
            self.reset_range()
        # Auto-range would follow the cursor's bounds and re-render every point on each move.
        self.view.disableAutoRange()

    def data_bounds(self) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) of the points (finite ones), or None without points."""
        pts = self.positions[np.isfinite(self.positions).all(1)] if len(self.positions) else self.positions
        if not len(pts):
            return None
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        return float(x0), float(y0), float(x1), float(y1)

    def reset_range(self, padding: float = 0.05) -> None:
        """Fit the view to the points alone (not to the cursor or overlays, which may lie far outside)."""
        bounds = self.data_bounds()
        if bounds is None:
            return
        x0, y0, x1, y1 = bounds
        w, h = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
        # Room on the right for the legend, so it covers no points when the map is first shown.
        legend_px = self.legend.boundingRect().width() + 20 if self.legend.items else 0.0
        view_px = max(self.view.width(), 1.0)
        if 0 < legend_px < 0.5 * view_px:
            w *= view_px / (view_px - legend_px)
        self.view.setRange(QRectF(x0, y0, w, h), padding=padding)

    def set_labels(self, labels: np.ndarray, label_names: Sequence[str],
                   colours: Sequence[QColor] | None = None) -> None:
        """(Re)colour the points by label (negative labels are drawn grey as 'unlabelled'). ``colours`` replaces
        the label palette, e.g. a colour ramp over the bins of a continuous value."""
        labels = np.asarray(labels)
        n_labels = max(len(label_names), int(labels.max()) + 1 if len(labels) else 0)
        names = [str(n) for n in label_names] + [str(i) for i in range(len(label_names), n_labels)]
        if colours is not None and len(colours) >= n_labels:
            colours = list(colours)
        else:
            colours = label_colours(max(n_labels, 1))
        groups = [(labels == k, names[k], colours[k]) for k in range(n_labels)]
        if len(labels) and (labels < 0).any():
            groups.append((labels < 0, "unlabelled", QColor("#999999")))
        while len(self.scatter_items) < len(groups):
            item = UniformScatter(pxMode=True, size=4, pen=None, hoverable=False)
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.plot.addItem(item)
            self.scatter_items.append(item)
        self.legend.clear()
        dense = len(self.positions) > self.density_threshold
        for item, (mask, name, colour) in zip(self.scatter_items, groups):
            item.setBrush(pg.mkBrush(colour), update=False)
            if dense:
                item.clear()  # drawn by the density layer; the empty item still serves as the legend's sample
            else:
                item.setData(pos=self.positions[mask])
            if mask.any():
                self.legend.addItem(item, name)
        for item in self.scatter_items[len(groups):]:
            item.clear()
        palette = np.array([[c.red(), c.green(), c.blue()] for c in colours[:n_labels]], np.uint8).reshape(-1, 3)
        self.layers.set_points(self.positions, labels, names, density=dense, palette=palette)
        self._shown_labels = (labels, list(label_names))

    def show_partial_map(self, positions: np.ndarray) -> None:
        """Draw a map that is still forming (t-SNE's previews, ``ProjectionProcess.fit(..., preview=...)``): the
        same points and colours at new positions, the view fitted to them. Ignored if the count differs."""
        shown = getattr(self, "_shown_labels", None)
        pos = np.asarray(positions, np.float32)
        if shown is None or pos.shape != (len(shown[0]), 2):
            return
        self.positions = pos
        self.set_labels(*shown)
        self.reset_range()

    def clear_points(self) -> None:
        self.positions = np.zeros((0, 2), np.float32)
        self._hovered = -1
        self.layers.clear()
        for item in self.scatter_items:
            item.clear()
        self.legend.clear()
        for marker in (self.hover_marker, self.selected_marker, self.extra_scatter, *self.group_items.values()):
            marker.clear()
        self.set_arrows([])
        self.set_path(None)
        self.set_trust_image(None, None)

    # ------------------------------------------------------------ search
    def set_search_matches(self, indices: np.ndarray | None) -> None:
        """Ring the points that matched a search (None or empty clears)."""
        if indices is None or len(indices) == 0 or not len(self.positions):
            self.search_marker.clear()
        else:
            self.search_marker.setData(pos=self.positions[np.asarray(indices)])

    def fit_points(self, points: np.ndarray, padding: float = 0.15) -> None:
        """Move the view onto ``points`` (map coordinates), with a little room around them."""
        pts = np.asarray(points, np.float64)
        pts = pts[np.isfinite(pts).all(1)]
        if not len(pts):
            return
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        full = self.data_bounds()
        span = max((full[2] - full[0]), (full[3] - full[1])) if full else 1.0
        w, h = max(x1 - x0, 0.05 * span), max(y1 - y0, 0.05 * span)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        self.view.setRange(QRectF(cx - w / 2, cy - h / 2, w, h), padding=padding)

    # ------------------------------------------------------------ decoded manifold
    def view_bounds(self) -> tuple[float, float, float, float]:
        (x0, x1), (y0, y1) = self.view.viewRange()
        return float(x0), float(y0), float(x1), float(y1)

    def view_pixels(self) -> tuple[float, float]:
        rect = self.view.sceneBoundingRect()
        return float(max(rect.width(), 1.0)), float(max(rect.height(), 1.0))

    def set_manifold(self, picture: np.ndarray | None, bounds: tuple[float, float, float, float] | None) -> None:
        """Show an (H, W, 3) uint8 mosaic over ``bounds`` (row 0 at the top, y1); None removes it."""
        if picture is None or bounds is None:
            self.manifold_item.clear()
            return
        x0, y0, x1, y1 = bounds
        # ImageItem draws row 0 at the rect's top edge in scene space, which is y0 on a y-up view: flip rows.
        self.manifold_item.setImage(np.ascontiguousarray(picture[::-1]), autoLevels=False)
        self.manifold_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

    def set_points_visible(self, visible: bool) -> None:
        """Hide the scatter (the manifold *instead of* the points) or show it again."""
        self.points_visible = bool(visible)
        for item in self.scatter_items:
            item.setVisible(self.points_visible)
        self.layers.density.setVisible(self.points_visible and len(self.layers.density.positions) > 0)

    def set_image_source(self, image_fn: Callable[[np.ndarray], np.ndarray] | None) -> None:
        """Show data points as their images at close zoom: ``image_fn(indices) -> (k, C, H, W) uint8``
        (e.g. ``lambda idx: data.images[idx]``, a memory map is fine); None turns thumbnails off."""
        self.layers.set_image_source(image_fn)

    def set_extra_points(self, positions: np.ndarray | None) -> None:
        if positions is None or len(positions) == 0:
            self.extra_scatter.clear()
        else:
            self.extra_scatter.setData(pos=np.asarray(positions, np.float32))

    def set_trust_image(self, image: np.ndarray | None, bounds: tuple[float, float, float, float] | None) -> None:
        """Overlay (H, W) trust values in [0, 1]: untrustworthy areas shaded grey."""
        if image is None or bounds is None:
            self.trust_item.clear()
            return
        x0, y0, x1, y1 = bounds
        shade = np.clip(1.0 - np.asarray(image, np.float32), 0.0, 1.0)
        rgba = np.zeros((*shade.shape, 4), np.uint8)
        rgba[..., :3] = 90
        rgba[..., 3] = (shade * 255).astype(np.uint8)
        self.trust_item.setImage(rgba, autoLevels=False)
        self.trust_item.setRect(pg.QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))

    # ------------------------------------------------------------ cursor
    def cursor_pos(self) -> tuple[float, float]:
        p = self.cursor.pos()
        return float(p.x()), float(p.y())

    def set_cursor(self, x: float, y: float, emit: bool = False) -> None:
        self._suppress = not emit
        try:
            self.cursor.setPos(QPointF(float(x), float(y)))
        finally:
            self._suppress = False

    @property
    def dragging(self) -> bool:
        return self._drag_offset is not None

    def _cursor_viewport_pos(self) -> QPointF:
        scene = self.view.mapViewToScene(self.cursor.pos())
        return self.plot.viewportTransform().map(scene)

    def _viewport_to_view(self, p: QPointF) -> QPointF:
        scene = self.plot.viewportTransform().inverted()[0].map(p)
        return self.view.mapSceneToView(scene)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt name)
        kind = event.type()
        if self._lasso_armed or self._lasso is not None:
            return self._lasso_event(kind, event)
        if kind == QEvent.Type.MouseButtonPress:
            if (event.button() == Qt.MouseButton.LeftButton and event.modifiers() == Qt.KeyboardModifier.NoModifier
                    and self.cursor.isVisible()):
                offset = event.position() - self._cursor_viewport_pos()
                if np.hypot(offset.x(), offset.y()) <= CURSOR_GRAB_PX:
                    self._drag_offset = offset
                    return True
            # Not on the cursor: pyqtgraph pans as usual; a release close to here is a click on a point.
            self._press_pos = event.position() if event.button() == Qt.MouseButton.LeftButton else None
        elif (kind == QEvent.Type.MouseButtonRelease and self._drag_offset is None and self._press_pos is not None
              and event.button() == Qt.MouseButton.LeftButton):
            moved = event.position() - self._press_pos
            self._press_pos = None
            if np.hypot(moved.x(), moved.y()) <= CLICK_SLOP_PX:
                scene = self.plot.viewportTransform().inverted()[0].map(event.position())
                idx = self._pick(scene)
                if idx >= 0:
                    self.pointClicked.emit(idx)
        elif kind == QEvent.Type.MouseMove and self._drag_offset is not None:
            p = self._viewport_to_view(event.position() - self._drag_offset)
            self.cursor.setPos(p)  # emits cursorMoved through _cursor_changed
            return True
        elif kind == QEvent.Type.MouseButtonRelease and self._drag_offset is not None:
            self._drag_offset = None
            self._cursor_finished(self.cursor)
            return True
        return False

    def _cursor_changed(self, item: pg.TargetItem) -> None:
        if not self._suppress:
            x, y = self.cursor_pos()
            self.cursorMoved.emit(x, y)

    def _cursor_finished(self, item: pg.TargetItem) -> None:
        x, y = self.cursor_pos()
        self.cursorMoveFinished.emit(x, y)

    # ------------------------------------------------------------ hover / pick
    def _pick(self, scene_pos: QPointF) -> int:
        if self.nearest_fn is None or not len(self.positions):
            return -1
        if not self.view.sceneBoundingRect().contains(scene_pos):
            return -1
        p = self.view.mapSceneToView(scene_pos)
        dist, idx = self.nearest_fn(np.array([[p.x(), p.y()]], np.float32))
        if idx < 0:
            return -1
        # Accept only points within a few pixels, measured on screen.
        px = self.view.viewPixelSize()
        pixel = float(np.hypot(px[0], px[1]) / np.sqrt(2))
        return int(idx) if dist <= HOVER_RADIUS_PX * pixel else -1

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self.cursor.moving or self.dragging:
            return
        idx = self._pick(scene_pos)
        if idx != self._hovered:
            self._hovered = idx
            if idx >= 0:
                self.hover_marker.setData(pos=self.positions[idx : idx + 1])
            else:
                self.hover_marker.clear()
            self.pointHovered.emit(idx)

    # ------------------------------------------------------------ lasso
    def start_lasso(self) -> None:
        """The next left-drag on the map draws an outline; on release ``lassoFinished`` gets the points
        inside it. Escape or a right click cancels."""
        self._lasso_armed = True
        self.plot.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def cancel_lasso(self) -> None:
        self._lasso_armed = False
        self._lasso = None
        self.lasso_curve.setData([], [])
        self.plot.viewport().unsetCursor()

    def _lasso_event(self, kind, event) -> bool:
        if kind == QEvent.Type.MouseButtonPress:
            if event.button() != Qt.MouseButton.LeftButton:
                self.cancel_lasso()
                return True
            p = self._viewport_to_view(event.position())
            self._lasso = [(p.x(), p.y())]
            return True
        if kind == QEvent.Type.MouseMove and self._lasso is not None:
            p = self._viewport_to_view(event.position())
            self._lasso.append((p.x(), p.y()))
            xy = np.asarray(self._lasso + self._lasso[:1])
            self.lasso_curve.setData(xy[:, 0], xy[:, 1])
            return True
        if kind == QEvent.Type.MouseButtonRelease and self._lasso is not None:
            outline = np.asarray(self._lasso, np.float64)
            self.cancel_lasso()
            index = self.layers.index if self.layers.index is not None and \
                len(self.layers.index.positions) == len(self.positions) else None
            inside = (points_in_polygon_fast(self.positions, outline, index=index) if len(outline) >= 3
                      else np.zeros(0, np.int64))
            self.lassoFinished.emit(inside)
            return True
        return kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease)

    def set_group(self, name: str, indices: np.ndarray | None) -> None:
        """Ring the points of group "A" or "B" (None clears)."""
        item = self.group_items[name]
        if indices is None or len(indices) == 0:
            item.clear()
        else:
            item.setData(pos=self.positions[np.asarray(indices)])

    # ------------------------------------------------------------ arrows and paths
    def set_arrows(self, arrows: Sequence[tuple[float, float, float, float, str, bool]]) -> None:
        """Draw vectors as arrows: (x0, y0, x1, y1, label, highlighted) in map coordinates."""
        for item in self.arrow_items:
            self.plot.removeItem(item)
        self.arrow_items = []
        for x0, y0, x1, y1, label, strong in arrows:
            colour = "#c51b7d" if strong else "#555555"
            line = pg.PlotCurveItem([x0, x1], [y0, y1], pen=pg.mkPen(colour, width=3 if strong else 1.5))
            angle = float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))
            # ArrowItem angles are in screen space, where y points down; the map's y points up.
            head = pg.ArrowItem(pos=(x1, y1), angle=180 - angle, headLen=14 if strong else 10,
                                brush=colour, pen=pg.mkPen(colour))
            text = pg.TextItem(label, color=colour, anchor=(0, 1))
            text.setPos(x1, y1)
            for item in (line, head, text):
                item.setZValue(15)
                self.plot.addItem(item)
                self.arrow_items.append(item)

    def set_path(self, points: np.ndarray | None, keyframes: np.ndarray | None = None) -> None:
        """An interpolation path through the map, with its keyframes numbered."""
        for item in self.keyframe_items:
            self.plot.removeItem(item)
        self.keyframe_items = []
        if points is None or len(points) == 0:
            self.path_curve.setData([], [])
            return
        pts = np.asarray(points, np.float64)
        self.path_curve.setData(pts[:, 0], pts[:, 1])
        for k, (x, y) in enumerate(np.asarray(keyframes if keyframes is not None else [], np.float64)):
            text = pg.TextItem(f"K{k + 1}", color="#000", fill=pg.mkBrush(255, 255, 255, 200), anchor=(0.5, 1.3))
            text.setPos(x, y)
            text.setZValue(16)
            self.plot.addItem(text)
            self.keyframe_items.append(text)

    def show_selected(self, idx: int) -> None:
        if 0 <= idx < len(self.positions):
            self.selected_marker.setData(pos=self.positions[idx : idx + 1])
        else:
            self.selected_marker.clear()
