"""The map at any size: a density layer, exact picking, fast lasso and thumbnails for millions of points.

A pyqtgraph scatter draws every point on every zoom (222 ms a frame for 1M points on 2 cores). Past a few
hundred thousand points there are more points than pixels, so :class:`DensityItem` draws what a screen can
show instead, as datashader does: every point is binned into the pixel it falls on (one ``np.bincount``
per colour channel over the points in view), and each pixel gets the mean colour of its points' labels
(the one palette, :func:`explorer.core.imaging.label_colours`) with an opacity that grows with the log of
its count. No point is dropped: a lone point is one opaque-enough pixel. Zoomed in until few points are in
view, the same item draws each point as a small disc, so the map looks like the scatter it replaces.
The image is computed at the viewport's own resolution for the visible part of the map only, and reused
while the view does not change (a cursor moving over the map repaints from it). Above ``KERNEL_ABOVE``
points in range, a compiled kernel (:mod:`map_kernels`, numba) draws the same image in one pass over the
points (9 ms at 1M against numpy's 25 ms) once it has compiled in the background; the lasso likewise.

* :class:`PointIndex`: the exact nearest point (a KD-tree, ~20-50 us at 1M) and the points in a view
  rectangle (points sorted by x once: a binary search, then a mask over that slice).
* :func:`points_in_polygon_fast`: lasso selection by a raster mask of the outline (scanline fill on a grid)
  with an exact even-odd test only for the points in grid cells the outline passes through.
* :class:`ThumbnailItem`: at close zoom, data points drawn as their images, a fixed number of screen
  pixels wide (level of detail: bigger as the view zooms in), only those in view, converted on a background
  thread (a small LRU of ready QImages) and drawn when ready.

Everything here is CPU-only (CI has no GPU): OpenGL is not used. The numpy paths are the reference the
kernels are tested against, and what draws wherever numba cannot compile.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from scipy.spatial import cKDTree

from explorer.core.imaging import label_colours

from . import map_kernels

__all__ = ["DENSITY_THRESHOLD", "DensityItem", "MapLayers", "PointIndex", "ThumbnailItem", "points_in_polygon_fast",
           "render_density"]

# Above this many points the map draws the density layer instead of one scatter item per label
# (ARCHITECTURE.md: the scatter costs 35 ms a zoom frame at 70k, 80 ms at 300k).
DENSITY_THRESHOLD = 100_000
POINT_MODE_MAX = 60_000  # points in view at most for drawing them as discs (each disc ~13 pixel writes)
KERNEL_ABOVE = POINT_MODE_MAX  # points in a view's x range from which the compiled kernel draws (map_kernels)
UNLABELLED_RGB = (153, 153, 153)


# ============================================================================ pure numpy: rendering
def point_colours(labels: np.ndarray, n_labels: int | None = None, palette: np.ndarray | None = None) -> np.ndarray:
    """(3, N) float64 RGB per point from its label (negative labels: grey), channel-major. ``palette``
    ((n_labels, 3) RGB) replaces the label palette, e.g. a colour ramp over the bins of a continuous value."""
    labels = np.asarray(labels, np.int64)
    n = int(labels.max()) + 1 if len(labels) and n_labels is None else int(n_labels or 0)
    own = label_colours(max(n, 1)) if palette is None or len(palette) < n else np.asarray(palette)[:max(n, 1)]
    palette = np.concatenate([np.asarray(own, np.float64).reshape(-1, 3), [UNLABELLED_RGB]])
    rgb = palette[np.where(labels < 0, len(palette) - 1, np.minimum(labels, len(palette) - 2))]
    return np.ascontiguousarray(rgb.T)


_DISC_RADIUS = 2
_DISC = [(dx, dy) for dy in range(-2, 3) for dx in range(-2, 3) if dx * dx + dy * dy <= 5]  # 21 px, ~4.5 px wide


def render_density(x: np.ndarray, y: np.ndarray, colours: np.ndarray, rect: tuple[float, float, float, float],
                   width: int, height: int, *, points_max: int = POINT_MODE_MAX,
                   bounds: tuple[float, float, float, float] | None = None) -> tuple[np.ndarray, str, int]:
    """RGBA (height, width, 4) uint8 of the points (``x``, ``y``: contiguous float32 columns) inside
    ``rect = (x0, y0, x1, y1)``; row 0 is the top (y1). ``bounds`` (the points' own, if known) saves a pass.

    ``colours`` is (3, N) float64, one contiguous row per channel (what ``np.bincount`` weights take as is).

    Returns (image, mode, points in view); mode is "points" (each point a small opaque disc, drawn when at
    most ``points_max`` are in view) or "density" (per-pixel counts: mean label colour, log opacity).
    """
    x0, y0, x1, y1 = (float(v) for v in rect)
    width, height = max(int(width), 1), max(int(height), 1)
    img = np.zeros((height, width, 4), np.uint8)
    if not len(x) or x1 <= x0 or y1 <= y0:
        return img, "density", 0
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    # float32 arithmetic, int32 pixel coordinates (float32 -> int64 costs 5x more), one int64 index array
    # for the four bincounts (which would each convert int32 again).
    bx0, by0, bx1, by1 = bounds if bounds is not None else (x.min(), y.min(), x.max(), y.max())
    everything = bx0 >= x0 and by0 >= y0 and bx1 <= x1 and by1 <= y1
    fx = x - np.float32(x0)
    fx *= np.float32(sx)
    fy = np.float32(y1) - y
    fy *= np.float32(sy)
    if everything:
        outside = None
        n = len(x)
    else:
        # Points out of view go to one extra bin instead of being filtered out: no gathers over all
        # the points and their colours.
        outside = (fx < 0) | (fx > width) | (fy < 0) | (fy > height)
        n = len(x) - int(np.count_nonzero(outside))
    if n == 0:
        return img, "density", 0
    ix = fx.astype(np.int32)
    iy = fy.astype(np.int32)
    del fx, fy
    np.clip(ix, 0, width - 1, out=ix)  # a point on the right / bottom edge is still drawn
    np.clip(iy, 0, height - 1, out=iy)
    if n <= points_max:
        keep = np.flatnonzero(~outside) if outside is not None else np.arange(len(x))
        # Stamp a disc per point as one uint32 (RGBA) write per disc pixel, into a buffer padded by the
        # disc's radius so no offset needs a bounds check; later points overwrite earlier ones.
        r = _DISC_RADIUS
        pw = width + 2 * r
        base = (iy[keep].astype(np.intp) + r) * pw + (ix[keep] + r)
        rgba = np.empty((n, 4), np.uint8)
        rgba[:, :3] = colours[:, keep].T
        rgba[:, 3] = 255
        value = rgba.view(np.uint32).ravel()
        buf = np.zeros((height + 2 * r) * pw, np.uint32)
        for dx, dy in _DISC:
            buf[base + (dy * pw + dx)] = value
        img = np.ascontiguousarray(buf.reshape(height + 2 * r, pw)[r:-r, r:-r]).view(np.uint8).reshape(height, width, 4)
        return img, "points", n
    size = width * height
    iy *= width
    iy += ix
    del ix
    idx = iy.astype(np.intp)
    del iy
    if outside is not None:
        idx[outside] = size
    count = np.bincount(idx, minlength=size + 1)[:size]
    hit = np.flatnonzero(count)
    c = count[hit].astype(np.float64)
    out = np.empty((len(hit), 4), np.uint8)
    inv = 1.0 / c
    for ch in range(3):
        s = np.bincount(idx, weights=colours[ch], minlength=size + 1)[hit]
        s *= inv
        s += 0.5
        out[:, ch] = s
    # Opacity: LONE_POINT_ALPHA for a single point up to opaque at the densest pixel, on a log scale
    # (datashader's "log" shading): dense cores and sparse halos are both visible. float32: the log is most of this.
    lone = map_kernels.LONE_POINT_ALPHA
    top = math.log1p(float(c.max()))
    alpha = np.log1p(c.astype(np.float32))
    alpha *= np.float32((1.0 - lone) * 255 / top if top > 0 else 0.0)
    alpha += np.float32(lone * 255 + 0.5 if top > 0 else 255.5)
    out[:, 3] = alpha
    # One uint32 per pixel: a 1-D scatter is several times faster than one of 4-byte rows.
    img.reshape(-1).view(np.uint32)[hit] = out.view(np.uint32).ravel()
    return img, "density", n


# ============================================================================ pure numpy: index and lasso
class PointIndex:
    """Nearest point (exact, KD-tree) and points in a rectangle (points sorted by x) over (N, 2) positions."""

    def __init__(self, positions: np.ndarray) -> None:
        self.positions = np.ascontiguousarray(positions, np.float32)
        self.order = np.argsort(self.positions[:, 0], kind="stable")
        self.sorted_x = self.positions[self.order, 0]
        self._tree: cKDTree | None = None
        self._lock = threading.Lock()

    @property
    def tree(self) -> cKDTree:
        with self._lock:
            if self._tree is None:
                self._tree = cKDTree(self.positions, leafsize=32, balanced_tree=False, compact_nodes=False)
            return self._tree

    def nearest(self, points: np.ndarray) -> tuple[float, int]:
        """(distance, index) of the point nearest to the first query point; (inf, -1) for an empty map."""
        if not len(self.positions):
            return math.inf, -1
        d, i = self.tree.query(np.asarray(points, np.float64).reshape(-1, 2)[0])
        return float(d), int(i)

    def x_slice(self, x0: float, x1: float) -> np.ndarray:
        """Indices of the points with x0 <= x <= x1 (a slice of the x order: no mask over all points)."""
        a = int(np.searchsorted(self.sorted_x, x0, "left"))
        b = int(np.searchsorted(self.sorted_x, x1, "right"))
        return self.order[a:b]

    def in_rect(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Indices of the points with x0 <= x <= x1 and y0 <= y <= y1 (in order of x)."""
        a = int(np.searchsorted(self.sorted_x, x0, "left"))
        b = int(np.searchsorted(self.sorted_x, x1, "right"))
        cand = self.order[a:b]
        y = self.positions[cand, 1]
        return cand[(y >= y0) & (y <= y1)]


def _even_odd(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(x), bool)
    x0, y0 = poly[-1]
    for x1, y1 in poly:
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
        x0, y0 = x1, y1
    return inside


def points_in_polygon_fast(points: np.ndarray, polygon: np.ndarray, grid: int = 512,
                           index: PointIndex | None = None) -> np.ndarray:
    """Indices (sorted) of ``points`` inside ``polygon`` by the even-odd rule, exactly.

    A grid over the outline's bounding box is filled by scanlines (one row of cell centres at a time,
    vectorised over rows and edges); cells the outline passes through (sampled every third of a cell along
    each edge, then grown by one cell) are "boundary" cells, whose points get the exact per-edge test. Every
    other point takes its cell's answer, which is exact because no edge enters that cell. Cost: O(N) plus
    O(boundary points x edges); ~30-60 ms for 500k points inside a 200-edge outline on 2 cores.
    """
    pts = np.asarray(points)
    poly = np.asarray(polygon, np.float64)
    if len(poly) >= 2 and np.array_equal(poly[0], poly[-1]):
        poly = poly[:-1]
    if len(pts) == 0 or len(poly) < 3:
        return np.zeros(0, np.int64)
    lo, hi = poly.min(0), poly.max(0)
    compiled = map_kernels.ready() and len(pts) > KERNEL_ABOVE  # the kernel walks every point, in index order
    cand = None
    if not compiled:
        if index is not None:
            cand = index.in_rect(lo[0], lo[1], hi[0], hi[1])
        else:
            cand = np.flatnonzero((pts[:, 0] >= lo[0]) & (pts[:, 0] <= hi[0]) & (pts[:, 1] >= lo[1])
                                  & (pts[:, 1] <= hi[1]))
        if len(cand) == 0:
            return np.zeros(0, np.int64)
    span = np.maximum(hi - lo, 1e-12)
    g = int(grid)
    cw = span / g
    # Scanline fill at cell centres: a crossing at x toggles every centre to its right.
    yc = lo[1] + (np.arange(g) + 0.5) * cw[1]
    a, b = poly, np.roll(poly, -1, axis=0)
    ya, yb = a[:, 1][:, None], b[:, 1][:, None]
    crosses = (ya > yc[None]) != (yb > yc[None])  # (E, G)
    e_idx, r_idx = np.nonzero(crosses)
    t = (yc[r_idx] - a[e_idx, 1]) / (b[e_idx, 1] - a[e_idx, 1])
    xat = a[e_idx, 0] + t * (b[e_idx, 0] - a[e_idx, 0])
    start = np.clip(np.floor((xat - lo[0]) / cw[0] - 0.5).astype(np.int64) + 1, 0, g)
    toggles = np.zeros((g, g + 1), np.int32)
    np.add.at(toggles, (r_idx, start), 1)
    mask = (np.cumsum(toggles[:, :g], axis=1) & 1).astype(bool)  # (rows = y, cols = x)
    # Boundary cells: sample each edge densely, mark the cells, grow by one cell in every direction.
    boundary = np.zeros((g + 2, g + 2), bool)
    seg = np.hypot((b[:, 0] - a[:, 0]) / cw[0], (b[:, 1] - a[:, 1]) / cw[1])
    steps = np.maximum(np.ceil(seg * 3).astype(np.int64), 1)
    e_rep = np.repeat(np.arange(len(a)), steps + 1)
    frac = np.concatenate([np.linspace(0.0, 1.0, s + 1) for s in steps])
    sx = a[e_rep, 0] + frac * (b[e_rep, 0] - a[e_rep, 0])
    sy = a[e_rep, 1] + frac * (b[e_rep, 1] - a[e_rep, 1])
    bc = np.clip(((sx - lo[0]) / cw[0]).astype(np.int64), 0, g - 1) + 1
    br = np.clip(((sy - lo[1]) / cw[1]).astype(np.int64), 0, g - 1) + 1
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            boundary[br + dr, bc + dc] = True
    boundary = boundary[1:-1, 1:-1]
    # One grid for both answers: 0 outside, 1 inside, 2 on the boundary (decided exactly per point).
    grid_code = np.where(boundary, np.uint8(2), mask.astype(np.uint8)).ravel()
    if cand is None:
        return map_kernels.classify(np.ascontiguousarray(pts[:, 0], np.float32),
                                    np.ascontiguousarray(pts[:, 1], np.float32), (lo[0], lo[1]),
                                    (1 / cw[0], 1 / cw[1]), g, grid_code, poly)
    p = pts[cand]
    # Cell of every candidate in float32 (the points' own precision), int32 indices: half the memory traffic.
    col = ((p[:, 0] - np.float32(lo[0])) * np.float32(1 / cw[0])).astype(np.int32)
    row = ((p[:, 1] - np.float32(lo[1])) * np.float32(1 / cw[1])).astype(np.int32)
    np.clip(col, 0, g - 1, out=col)
    np.clip(row, 0, g - 1, out=row)
    row *= g
    row += col
    cell = row
    code = grid_code[cell]
    result = code == 1
    ex = np.flatnonzero(code == 2)
    if len(ex):
        result[ex] = _even_odd(p[ex, 0].astype(np.float64), p[ex, 1].astype(np.float64), poly)
    # Back in index order with one pass over a mask, not a sort of the (x-ordered) candidates.
    chosen = np.zeros(len(pts), bool)
    chosen[cand[result]] = True
    return np.flatnonzero(chosen)


# ============================================================================ Qt items
class DensityItem(pg.GraphicsObject):
    """Every point of a large map, drawn as a density image (or discs when few are in view)."""

    def __init__(self) -> None:
        super().__init__()
        self.positions = np.zeros((0, 2), np.float32)
        self.colours = np.zeros((3, 0), np.float64)
        self.x = self.y = np.zeros(0, np.float32)
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._data_bounds = (0.0, 0.0, 0.0, 0.0)
        self.index: PointIndex | None = None
        self._bounds = QRectF()
        self._cache: tuple | None = None  # (QImage, its pixels, rendered rect, x scale, y scale)
        self.last_mode = ""
        self.last_visible = 0
        self.points_max = POINT_MODE_MAX
        self.renders = 0  # images computed (a pan or a repaint at the same scale reuses the last one)
        self._tiled: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # x, y, (N, 3) rgb in tile order
        self._tile_order: np.ndarray | None = None
        self.last_kernel = False  # whether the last image came from the compiled kernel

    def set_data(self, positions: np.ndarray, labels: np.ndarray, n_labels: int | None = None,
                 index: PointIndex | None = None, palette: np.ndarray | None = None) -> None:
        self.prepareGeometryChange()
        self.positions = np.ascontiguousarray(positions, np.float32)
        self.x, self.y = np.ascontiguousarray(self.positions[:, 0]), np.ascontiguousarray(self.positions[:, 1])
        self.colours = point_colours(labels, n_labels, palette)
        self.index = index
        self._sort()
        if len(self.positions):
            lo, hi = self.positions.min(0), self.positions.max(0)
            self._data_bounds = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
            self._bounds = QRectF(float(lo[0]), float(lo[1]), float(max(hi[0] - lo[0], 1e-9)),
                                  float(max(hi[1] - lo[1], 1e-9)))
        else:
            self._bounds = QRectF()
        self._tile_order = None
        self._tile()
        self._cache = None
        self.update()

    def set_colours(self, labels: np.ndarray, n_labels: int | None = None) -> None:
        self.colours = point_colours(labels, n_labels)
        self._sort()
        self._tile()
        self._cache = None
        self.update()

    def _tile(self) -> None:
        # Copies in tile order for the compiled kernel: its writes then stay in cache (~9 ms at 1M points
        # against 18 ms in random order and 25 ms for numpy).
        if len(self.positions) <= KERNEL_ABOVE:
            self._tiled = None
            return
        map_kernels.warm_up()
        if self._tile_order is None or self._tiled is None:  # positions changed; a recolouring keeps the order
            o = self._tile_order = map_kernels.tile_order(self.x, self.y)
            self._tiled = (self.x[o], self.y[o], None)
        o = self._tile_order
        self._tiled = (self._tiled[0], self._tiled[1], np.ascontiguousarray(self.colours[:, o].T, np.float32))

    def _sort(self) -> None:
        # Copies in the index's x order: the points of a zoomed-in view are then one contiguous slice
        # (a view, no gathering of positions and colours on every frame).
        if self.index is not None and len(self.index.order) == len(self.x):
            o = self.index.order
            self._sorted = (self.x[o], self.y[o], np.ascontiguousarray(self.colours[:, o]))
        else:
            self._sorted = None

    def clear(self) -> None:
        self.set_data(np.zeros((0, 2), np.float32), np.zeros(0, np.int64))

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return QRectF(self._bounds)

    def _visible_rect(self) -> QRectF | None:
        vb = self.getViewBox()
        if vb is None or self._bounds.isEmpty():
            return None
        view = vb.viewRect()
        r = view.intersected(self._bounds.adjusted(-1e-6, -1e-6, 1e-6, 1e-6))
        return None if r.isEmpty() else r

    PAN_MARGIN = 0.5  # of the view's size, rendered beyond each side: panning then blits from the image

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ARG002
        r = self._visible_rect()
        if r is None or not len(self.positions):
            return
        dev = painter.transform().mapRect(r)
        if dev.width() < 1 or dev.height() < 1 or dev.width() > 16384 or dev.height() > 16384:
            return
        sx, sy = dev.width() / r.width(), dev.height() / r.height()  # device pixels per map unit
        c = self._cache
        same_scale = c is not None and abs(c[3] / sx - 1) < 1e-6 and abs(c[4] / sy - 1) < 1e-6
        hit = (same_scale and c[2][0] <= r.left() and c[2][1] <= r.top() and c[2][2] >= r.right()
               and c[2][3] >= r.bottom())
        if not hit:
            # A zoom (new scale) renders just the view. A pan (same scale, view moved off the image) renders
            # the view plus a margin, and the pan frames after it blit from that image, as does a cursor
            # moving over the map.
            bx0, by0, bx1, by1 = self._data_bounds
            eps = 1e-6 * max(bx1 - bx0, by1 - by0, 1e-12)
            margin = self.PAN_MARGIN if same_scale else 0.0
            # Whole device pixels on every side (clipped to the data), so the view's own pixel grid is the
            # image's and a whole-pixel pan blits exactly.
            mx, my = margin * dev.width(), margin * dev.height()
            left = int(min(mx, max(0.0, (r.left() - bx0 + eps) * sx)))
            right = int(min(mx, max(0.0, (bx1 + eps - r.right()) * sx)))
            top = int(min(my, max(0.0, (by1 + eps - r.bottom()) * sy)))
            bottom = int(min(my, max(0.0, (r.top() - by0 + eps) * sy)))
            w = min(left + int(math.ceil(dev.width())) + right, 16384)
            h = min(top + int(math.ceil(dev.height())) + bottom, 16384)
            x0, y1 = r.left() - left / sx, r.bottom() + top / sy
            x1, y0 = x0 + w / sx, y1 - h / sy
            x, y, cols, bounds = self.x, self.y, self.colours, self._data_bounds
            in_range = len(self.positions)
            if self.index is not None:
                # Only the points in the rendered x range are looked at: a slice of the x-sorted copies.
                a = int(np.searchsorted(self.index.sorted_x, x0, "left"))
                b = int(np.searchsorted(self.index.sorted_x, x1, "right"))
                in_range = b - a
                if b - a < len(self.positions) and self._sorted is not None:
                    sx_, sy_, sc_ = self._sorted
                    x, y, cols, bounds = sx_[a:b], sy_[a:b], sc_[:, a:b], None
            self.last_kernel = False
            if self._tiled is not None and in_range > KERNEL_ABOVE and map_kernels.ready():
                img, n = map_kernels.render(*self._tiled, (x0, y0, x1, y1), w, h)
                if n > self.points_max:
                    self.last_mode, self.last_visible, self.last_kernel = "density", n, True
            if not self.last_kernel:
                img, self.last_mode, self.last_visible = render_density(x, y, cols, (x0, y0, x1, y1), w, h,
                                                                        points_max=self.points_max, bounds=bounds)
            qimg = QImage(img.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
            c = self._cache = (qimg, img, (x0, y0, x1, y1), sx, sy)
            self.renders += 1
        qimg, _, (x0, _, _, y1), _, _ = c
        source = QRectF((r.left() - x0) * sx, (y1 - r.bottom()) * sy, dev.width(), dev.height())
        painter.save()
        painter.resetTransform()
        painter.drawImage(dev, qimg, source)
        painter.restore()


class _ThumbSignals(QObject):
    ready = Signal()


class ThumbnailItem(pg.GraphicsObject):
    """Data points as their images at close zoom: only those in view, a few screen pixels wide.

    ``image_fn(indices) -> (k, C, H, W) uint8`` reads images (e.g. rows of a memory-mapped data set). Images
    are converted to QImages on a background thread (``synchronous=True``: in ``paint``, for tests) and kept
    in a small LRU per (index, size). Shown when at most ``max_visible`` points are in view.
    """

    LEVELS = (24, 32, 48, 64, 96)

    def __init__(self, image_fn: Callable[[np.ndarray], np.ndarray] | None = None, *, max_visible: int = 400,
                 cache_size: int = 3000, synchronous: bool = False) -> None:
        super().__init__()
        self.image_fn = image_fn
        self.index: PointIndex | None = None
        self.max_visible = int(max_visible)
        self.synchronous = synchronous
        self._cache: OrderedDict[tuple[int, int], QImage] = OrderedDict()
        self._cache_size = int(cache_size)
        self._cache_lock = threading.Lock()
        self._signals = _ThumbSignals()
        self._signals.ready.connect(self.update)
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._generation = 0
        self.last_drawn = 0
        self.last_size = 0
        self._bounds = QRectF()

    def set_data(self, index: PointIndex | None, image_fn: Callable[[np.ndarray], np.ndarray] | None) -> None:
        self.prepareGeometryChange()
        self.index, self.image_fn = index, image_fn
        self._generation += 1
        with self._cache_lock:
            self._cache.clear()
        if index is not None and len(index.positions):
            lo, hi = index.positions.min(0), index.positions.max(0)
            self._bounds = QRectF(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        else:
            self._bounds = QRectF()
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return QRectF(self._bounds)

    # ---- building
    def _build(self, indices: np.ndarray, size: int) -> list[tuple[tuple[int, int], QImage]]:
        if self.image_fn is None or not len(indices):
            return []
        idx = np.asarray(indices, np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads: a memory map reads runs far faster
        sorted_imgs = np.asarray(self.image_fn(idx[order]))
        imgs = np.empty_like(sorted_imgs)
        imgs[order] = sorted_imgs
        out = []
        for i, a in zip(idx, imgs):
            c, h, w = a.shape
            hwc = np.ascontiguousarray(np.repeat(a, 3, axis=0).transpose(1, 2, 0) if c == 1 else a.transpose(1, 2, 0))
            q = QImage(hwc.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            q = q.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            out.append(((int(i), size), q))
        return out

    def _store(self, items: list[tuple[tuple[int, int], QImage]]) -> None:
        with self._cache_lock:
            for key, q in items:
                self._cache[key] = q
                self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            while True:  # latest request wins: skip to the newest queued one
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
            if job is None:
                return
            generation, indices, size = job
            try:
                built = self._build(indices, size)
            except Exception:  # noqa: BLE001 - a failing image source shows no thumbnails, never crashes paint
                continue
            if generation == self._generation:
                self._store(built)
                self._signals.ready.emit()

    def _request(self, indices: np.ndarray, size: int) -> None:
        if self.synchronous:
            self._store(self._build(indices, size))
            return
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="map-thumbnails", daemon=True)
            self._worker.start()
        self._queue.put((self._generation, indices, size))

    def stop(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._queue.put(None)
            self._worker.join(2.0)

    # ---- drawing
    def visible(self) -> tuple[np.ndarray, int]:
        """(indices in view, thumbnail size in px), or (empty, 0) when too many are in view."""
        vb = self.getViewBox()
        if vb is None or self.index is None or self.image_fn is None:
            return np.zeros(0, np.int64), 0
        r = vb.viewRect()
        vis = self.index.in_rect(r.left(), r.top(), r.right(), r.bottom())
        if len(vis) == 0 or len(vis) > self.max_visible:
            return np.zeros(0, np.int64), 0
        px = vb.viewPixelSize()
        area_px = (r.width() / max(px[0], 1e-300)) * (r.height() / max(px[1], 1e-300))
        want = 0.8 * math.sqrt(area_px / len(vis))
        size = max([lv for lv in self.LEVELS if lv <= want], default=0)
        return (vis, size) if size else (np.zeros(0, np.int64), 0)

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ARG002
        vis, size = self.visible()
        self.last_size = size
        self.last_drawn = 0
        if not len(vis):
            return
        with self._cache_lock:
            missing = np.array([i for i in vis if (int(i), size) not in self._cache], np.int64)
        if len(missing):
            self._request(missing, size)
        tr = painter.transform()
        pos = self.index.positions if self.index is not None else np.zeros((0, 2))
        painter.save()
        painter.resetTransform()
        painter.setPen(QPen(QColor(40, 40, 40), 1))
        with self._cache_lock:
            ready = [(int(i), self._cache.get((int(i), size))) for i in vis]
        for i, q in ready:
            if q is None:
                continue
            c = tr.map(QPointF(float(pos[i, 0]), float(pos[i, 1])))
            top_left = QPointF(c.x() - q.width() / 2, c.y() - q.height() / 2)
            painter.drawImage(top_left, q)
            painter.drawRect(QRectF(top_left, QPointF(top_left.x() + q.width(), top_left.y() + q.height())))
            self.last_drawn += 1
        painter.restore()


class MapLayers:
    """The large-map layers of one plot: density image, thumbnails, the index they share, lasso."""

    def __init__(self, plot: pg.PlotItem | pg.PlotWidget, *, synchronous_thumbnails: bool = False) -> None:
        self.plot = plot
        self.density = DensityItem()
        self.density.setZValue(-1)
        self.thumbnails = ThumbnailItem(synchronous=synchronous_thumbnails)
        self.thumbnails.setZValue(4)
        plot.addItem(self.density)
        plot.addItem(self.thumbnails)
        self.index: PointIndex | None = None

    def set_points(self, positions: np.ndarray, labels: np.ndarray, label_names: Sequence[str] = (),
                   image_fn: Callable[[np.ndarray], np.ndarray] | None = None, *, density: bool = True,
                   palette: np.ndarray | None = None) -> None:
        """New points. ``density=False`` keeps only the index and thumbnails (a small map drawn by scatters);
        ``palette`` ((n_labels, 3) RGB) replaces the label colours."""
        positions = np.ascontiguousarray(positions, np.float32)
        labels = np.asarray(labels)
        n_labels = max(len(label_names), int(labels.max()) + 1 if len(labels) else 0)
        self.index = PointIndex(positions)
        if density:
            self.density.set_data(positions, labels, n_labels, index=self.index, palette=palette)
        else:
            self.density.clear()
        self.density.setVisible(density)
        self.thumbnails.set_data(self.index, image_fn if image_fn is not None else self.thumbnails.image_fn)

    def set_image_source(self, image_fn: Callable[[np.ndarray], np.ndarray] | None) -> None:
        """Where thumbnails come from: ``image_fn(indices) -> (k, C, H, W) uint8`` (None: no thumbnails)."""
        self.thumbnails.set_data(self.index, image_fn)

    def set_labels(self, labels: np.ndarray, label_names: Sequence[str] = ()) -> None:
        labels = np.asarray(labels)
        self.density.set_colours(labels, max(len(label_names), int(labels.max()) + 1 if len(labels) else 0))

    @property
    def dense(self) -> bool:
        return self.density.isVisible() and len(self.density.positions) > 0

    def clear(self) -> None:
        self.index = None
        self.density.clear()
        self.thumbnails.set_data(None, self.thumbnails.image_fn)

    def nearest(self, points: np.ndarray) -> tuple[float, int]:
        return self.index.nearest(points) if self.index is not None else (math.inf, -1)

    def lasso(self, polygon: np.ndarray) -> np.ndarray:
        if self.index is None:
            return np.zeros(0, np.int64)
        return points_in_polygon_fast(self.index.positions, polygon, index=self.index)
