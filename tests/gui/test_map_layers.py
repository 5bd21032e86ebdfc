"""Large-map layers: density image with known pixels, exact lasso and pick, thumbnails at close zoom."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from explorer.core.imaging import label_colours
from explorer.gui.views.map_layers import (
    MapLayers,
    PointIndex,
    point_colours,
    points_in_polygon_fast,
    render_density,
)
from explorer.gui.views.map_view import points_in_polygon


def _cols(xy):
    xy = np.asarray(xy, np.float32)
    return np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])


def test_density_pixels_have_the_mean_label_colour_and_log_opacity():
    pal = label_colours(2).astype(int)
    # 100 points needed for density mode with points_max=10; 3 in pixel (0, 0): two of label 0, one of 1.
    xy = [[0.5, 9.5]] * 2 + [[0.5, 9.5]] + [[9.99, 0.0]] + [[5.5, 4.5]] * 96
    labels = [0, 0, 1, 1] + [0] * 96
    x, y = _cols(xy)
    img, mode, n = render_density(x, y, point_colours(np.array(labels), 2), (0, 0, 10, 10), 10, 10, points_max=10)
    assert mode == "density" and n == 100
    top_left = img[0, 0]  # row 0 is the top of the map (y = 10)
    expect = (2 * pal[0] + pal[1]) / 3
    np.testing.assert_allclose(top_left[:3], expect, atol=1)
    assert img[9, 9, 3] > 0  # a point on the map's right edge is drawn, not dropped
    np.testing.assert_array_equal(img[9, 9, :3], pal[1])
    assert img[5, 5, 3] == 255  # the densest pixel is opaque
    assert 140 <= img[9, 9, 3] < top_left[3] < 255  # a lone point is plainly visible (55 %); opacity grows with the count
    assert (img[..., 3] > 0).sum() == 3


def test_no_label_colour_looks_like_the_grey_of_unlabelled_points():
    from explorer.gui.views.map_layers import UNLABELLED_RGB

    # Unlabelled points are grey; the palette held Tableau's grey too, so MNIST's 8s looked unlabelled. Every
    # label colour must be clearly coloured (chroma: max - min channel, 0 for any grey).
    assert max(UNLABELLED_RGB) == min(UNLABELLED_RGB)
    pal = label_colours(24).astype(int)
    chroma = pal.max(axis=1) - pal.min(axis=1)
    assert chroma.min() >= 60, dict(enumerate(chroma))


def test_few_points_are_drawn_as_discs_of_their_colour():
    pal = label_colours(3)
    x, y = _cols([[2.0, 2.0], [7.0, 7.0]])
    img, mode, n = render_density(x, y, point_colours(np.array([1, 2]), 3), (0, 0, 10, 10), 10, 10)
    assert mode == "points" and n == 2
    np.testing.assert_array_equal(img[8, 2, :3], pal[1])  # y = 2 is row 10 - 2 = 8
    np.testing.assert_array_equal(img[3, 7, :3], pal[2])
    assert 15 <= (img[..., 3] == 255).sum() <= 2 * 21


def test_points_outside_the_view_are_not_counted():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-10, 10, (5000, 2)).astype(np.float32)
    x, y = _cols(xy)
    inside = ((xy >= 0) & (xy <= 5)).all(1).sum()
    _, _, n = render_density(x, y, point_colours(np.zeros(5000, int), 1), (0, 0, 5, 5), 50, 50, points_max=0)
    assert n == inside


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_lasso_matches_the_exact_even_odd_rule(seed):
    pts, poly = _check_lasso_against_the_even_odd_rule(seed, 40_000)
    assert len(points_in_polygon_fast(pts, poly[:2])) == 0  # a degenerate outline


@pytest.mark.parametrize("seed", [0, 1])
def test_the_compiled_lasso_matches_the_exact_even_odd_rule(seed):
    from explorer.gui.views import map_kernels

    map_kernels.warm_up(block=True)
    if not map_kernels.ready():
        pytest.skip("numba cannot compile here")
    _check_lasso_against_the_even_odd_rule(seed, 60_000)  # above the size the kernel takes over at


def _check_lasso_against_the_even_odd_rule(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The fast lasso equals the exact even-odd rule on a spiky concave outline and a self-intersecting bow tie;
    returns the points and the spiky outline."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(0, 3, (n, 2)).astype(np.float32)
    t = np.sort(rng.uniform(0, 2 * np.pi, 60))
    r = rng.uniform(2, 8, 60)
    poly = np.c_[r * np.cos(t), r * np.sin(t)]
    expect = np.sort(points_in_polygon(pts, poly))
    np.testing.assert_array_equal(points_in_polygon_fast(pts, poly), expect)
    np.testing.assert_array_equal(points_in_polygon_fast(pts, poly, index=PointIndex(pts)), expect)
    bow = np.array([[-5, -5], [5, 5], [5, -5], [-5, 5]], float)
    np.testing.assert_array_equal(points_in_polygon_fast(pts, bow, grid=64), np.sort(points_in_polygon(pts, bow)))
    return pts, poly


def test_point_index_nearest_and_rectangle():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(3000, 2)).astype(np.float32)
    index = PointIndex(pts)
    for q in rng.normal(size=(20, 2)):
        d, i = index.nearest(q[None])
        brute = np.hypot(*(pts - q).T)
        assert i == int(brute.argmin()) and d == pytest.approx(float(brute.min()), rel=1e-5)
    got = np.sort(index.in_rect(-0.5, -0.2, 0.7, 1.0))
    want = np.flatnonzero((pts[:, 0] >= -0.5) & (pts[:, 0] <= 0.7) & (pts[:, 1] >= -0.2) & (pts[:, 1] <= 1.0))
    np.testing.assert_array_equal(got, want)
    assert PointIndex(np.zeros((0, 2))).nearest(np.zeros((1, 2))) == (np.inf, -1)


def _plot(qtbot):
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    w = pg.PlotWidget(background="w")
    w.resize(400, 300)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def _two_clusters() -> tuple[np.ndarray, np.ndarray]:
    """200,000 points: 120k of label 0 around (-5, -5), 80k of label 1 around (5, 5)."""
    rng = np.random.default_rng(0)
    pts = np.r_[rng.normal(-5, 0.5, (120_000, 2)), rng.normal(5, 0.5, (80_000, 2))].astype(np.float32)
    return pts, np.r_[np.zeros(120_000, int), np.ones(80_000, int)]


def test_density_item_draws_every_point_in_a_plot(qtbot):
    w = _plot(qtbot)
    pts, labels = _two_clusters()
    layers = MapLayers(w)
    layers.set_points(pts, labels, ["a", "b"])
    w.getPlotItem().getViewBox().setRange(xRange=(-8, 8), yRange=(-8, 8), padding=0)
    img = w.grab().toImage()
    pal = label_colours(2)

    def colour_at(x, y):
        vb = w.getPlotItem().getViewBox()
        p = w.mapFromScene(vb.mapViewToScene(pg.Point(x, y)))
        c = img.pixelColor(p.x(), p.y())
        return np.array([c.red(), c.green(), c.blue()])

    def over_white(rgb, colour):  # rgb == a * colour + (1 - a) * white for one opacity a, and a is high
        colour = colour.astype(float)
        a = float(np.dot(255 - rgb, 255 - colour) / np.dot(255 - colour, 255 - colour))
        np.testing.assert_allclose(rgb, a * colour + (1 - a) * 255, atol=3)
        assert a > 0.8

    over_white(colour_at(-5, -5), pal[0])  # the centre of each cluster, nearly opaque
    over_white(colour_at(5, 5), pal[1])
    np.testing.assert_array_equal(colour_at(5, -5), [255, 255, 255])
    assert layers.density.last_mode == "density" and layers.density.last_visible == 200_000
    # Zoomed in on a corner of one cluster: discs, only the points in view.
    w.getPlotItem().getViewBox().setRange(xRange=(-3.6, -3.4), yRange=(-3.6, -3.4), padding=0)
    w.grab()
    assert layers.density.last_mode == "points" and 0 < layers.density.last_visible < 2000
    d, i = layers.nearest(np.array([[5.0, 5.0]]))
    assert labels[i] == 1 and d < 0.1
    inside = layers.lasso(np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float))
    np.testing.assert_array_equal(inside, np.flatnonzero((pts >= 0).all(1) & (pts <= 10).all(1)))


@pytest.mark.parametrize("synchronous", [True, False])
def test_thumbnails_appear_at_close_zoom_only(qtbot, synchronous):
    w = _plot(qtbot)
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (5000, 2)).astype(np.float32)
    images = rng.integers(0, 256, (5000, 1, 8, 8), dtype=np.uint8)
    asked: list[np.ndarray] = []

    def image_fn(idx):
        asked.append(np.asarray(idx))
        return images[idx]

    layers = MapLayers(w, synchronous_thumbnails=synchronous)
    layers.set_points(pts, np.zeros(5000, int), ["x"], image_fn=image_fn)
    vb = w.getPlotItem().getViewBox()
    vb.setRange(xRange=(0, 100), yRange=(0, 100), padding=0)
    w.grab()
    assert layers.thumbnails.last_drawn == 0 and not asked  # 5000 in view: no thumbnails
    vb.setRange(xRange=(10, 20), yRange=(10, 20), padding=0)
    in_view = len(layers.index.in_rect(10, 10, 20, 20))
    if synchronous:
        w.grab()
    else:
        w.grab()
        qtbot.waitUntil(lambda: (w.grab(), layers.thumbnails.last_drawn)[1] == in_view, timeout=5000)
    assert layers.thumbnails.last_drawn == in_view > 0 and layers.thumbnails.last_size >= 24
    assert set(np.concatenate(asked)) == set(layers.index.in_rect(10, 10, 20, 20))
    layers.thumbnails.stop()


def test_the_map_view_swaps_its_scatters_for_the_density_layer_above_the_threshold(qtbot):
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from explorer.gui.views.map_view import LatentMapView

    view = LatentMapView()
    view.resize(500, 400)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    view.density_threshold = 2000  # the real threshold is 100k: the switch is what is tested, not the size
    rng = np.random.default_rng(0)
    small = rng.normal(size=(1500, 2)).astype(np.float32)
    view.set_points(small, np.arange(1500) % 3, ["a", "b", "c"])
    assert sum(len(i.data) for i in view.scatter_items) == 1500 and not view.layers.dense
    big = rng.normal(size=(5000, 2)).astype(np.float32)
    labels = np.arange(5000) % 3
    view.set_points(big, labels, ["a", "b", "c"])
    assert sum(len(i.data) for i in view.scatter_items) == 0 and view.layers.dense
    assert len(view.legend.items) == 3  # the legend still names every label
    view.grab()
    assert view.layers.density.last_visible == 5000
    # Lasso through the view's own mouse handling, answered by the fast polygon test over the layers' index.
    got = []
    view.lassoFinished.connect(got.append)
    view.start_lasso()
    vp = view.plot.viewport()

    def at(x, y):
        return view.plot.mapFromScene(view.view.mapViewToScene(QPointF(x, y)))

    def send(kind, p, button, buttons):
        ev = QMouseEvent(kind, QPointF(p), QPointF(vp.mapToGlobal(p)), button, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(vp, ev)

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    corners = [(0, 0), (1.5, 0), (1.5, 1.5), (0, 1.5)]
    send(QEvent.Type.MouseButtonPress, at(*corners[0]), left, left)
    for c in corners[1:]:
        send(QEvent.Type.MouseMove, at(*c), none, left)
    send(QEvent.Type.MouseButtonRelease, at(*corners[-1]), left, none)
    inside = got[-1]
    expect = np.flatnonzero((big >= 0).all(1) & (big <= 1.5).all(1))
    assert abs(len(inside) - len(expect)) <= 0.05 * len(expect) + 5  # pixel rounding of the drawn outline
    # Back under the threshold: scatters again.
    view.set_points(small, np.arange(1500) % 3, ["a", "b", "c"])
    assert sum(len(i.data) for i in view.scatter_items) == 1500 and not view.layers.dense
    view.clear_points()
    assert view.layers.index is None


def test_panning_blits_from_the_rendered_margin_and_matches_a_fresh_render(qtbot):
    w = _plot(qtbot)
    pts, labels = np.random.default_rng(4).normal(size=(150_000, 2)).astype(np.float32), np.arange(150_000) % 4
    layers = MapLayers(w)
    layers.set_points(pts, labels, list("abcd"))
    vb = w.getPlotItem().getViewBox()
    vb.setRange(xRange=(-2, 2), yRange=(-2, 2), padding=0)
    w.grab()
    px = vb.viewPixelSize()
    vb.translateBy(x=2 * px[0])  # the first pan renders the view with a margin around it
    w.grab()
    before = layers.density.renders
    vb.translateBy(x=20 * px[0], y=-10 * px[1])  # whole pixels: the blit aligns exactly
    panned = w.grab().toImage()
    assert layers.density.renders == before  # no new image: the pan was a blit
    layers.density._cache = None
    fresh = w.grab().toImage()
    assert layers.density.renders == before + 1
    def rgb(img):
        c = [img.pixelColor(x, y) for y in range(20, 260, 7) for x in range(60, 340, 7)]
        return np.array([[q.red(), q.green(), q.blue()] for q in c], float)

    # The same picture: the opacity scale may differ a little (the densest pixel of a larger area).
    diff = np.abs(rgb(panned) - rgb(fresh)).max(1)
    assert np.mean(diff <= 16) > 0.95
    vb.scaleBy((0.5, 0.5))
    w.grab()
    assert layers.density.renders == before + 2  # a zoom renders anew


def test_a_forming_map_is_drawn_with_the_same_colours(qtbot):
    from explorer.gui.views.map_view import LatentMapView

    view = LatentMapView()
    qtbot.addWidget(view)
    labels = np.arange(300) % 3
    view.set_points(np.zeros((300, 2), np.float32) + np.arange(300)[:, None], labels, ["a", "b", "c"])
    frame = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32) * 40
    view.show_partial_map(frame)
    np.testing.assert_array_equal(view.positions, frame)
    np.testing.assert_array_equal(np.sort(view.scatter_items[1].data["x"]), np.sort(frame[labels == 1, 0]))
    view.show_partial_map(frame[:10])  # a frame of another map: ignored
    assert len(view.positions) == 300


def test_the_density_layer_takes_the_views_own_colours(qtbot):
    from PySide6.QtGui import QColor

    from explorer.gui.views.map_view import LatentMapView

    view = LatentMapView()
    qtbot.addWidget(view)
    view.density_threshold = 100
    labels = np.arange(1000) % 2
    ramp = [QColor(10, 20, 30), QColor(200, 100, 50)]
    view.set_points(np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32), labels, ["lo", "hi"],
                    colours=ramp)
    np.testing.assert_array_equal(view.layers.density.colours[:, 1], [200, 100, 50])
    np.testing.assert_array_equal(view.layers.density.colours[:, 0], [10, 20, 30])


def test_the_compiled_kernel_draws_the_numpy_image():
    from explorer.gui.views import map_kernels

    map_kernels.warm_up(block=True)
    if not map_kernels.ready():
        pytest.skip("numba cannot compile here: the numpy path serves (tested above)")
    rng = np.random.default_rng(3)
    pts = np.r_[rng.normal(-2, 1.0, (90_000, 2)), rng.uniform(-9, 9, (30_000, 2))].astype(np.float32)
    labels = rng.integers(-1, 4, len(pts))  # -1: unlabelled grey
    x, y = _cols(pts)
    cols = point_colours(labels, 4)
    for rect, w, h in (((-10, -10, 10, 10), 300, 200), ((-3, -2.5, 0.5, 1), 257, 199)):
        want, mode, n = render_density(x, y, cols, rect, w, h, points_max=0)
        o = map_kernels.tile_order(x, y)
        got, n_k = map_kernels.render(x[o], y[o], np.ascontiguousarray(cols[:, o].T, np.float32), rect, w, h)
        assert mode == "density" and n_k == n
        np.testing.assert_array_equal(got[..., 3] > 0, want[..., 3] > 0)  # the same pixels are drawn
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float32 sums: at most one level off


def test_the_density_item_draws_through_the_kernel_once_it_is_compiled(qtbot):
    from explorer.gui.views import map_kernels

    map_kernels.warm_up(block=True)
    if not map_kernels.ready():
        pytest.skip("numba cannot compile here")
    w = _plot(qtbot)
    pts, labels = _two_clusters()
    layers = MapLayers(w)
    layers.set_points(pts, labels, ["a", "b"])
    w.getPlotItem().getViewBox().setRange(xRange=(-8, 8), yRange=(-8, 8), padding=0)
    kernel = w.grab().toImage()
    assert layers.density.last_kernel and layers.density.last_visible == 200_000
    layers.density._tiled = None  # the numpy path, same view
    layers.density._cache = None
    numpy_img = w.grab().toImage()
    assert not layers.density.last_kernel
    a = np.frombuffer(kernel.constBits(), np.uint8).astype(int)
    b = np.frombuffer(numpy_img.constBits(), np.uint8).astype(int)
    assert np.abs(a - b).max() <= 2
    # Recoloured (labels swapped): the kernel's copies take the new colours in the same tile order.
    layers.density.set_colours(1 - labels, 2)
    recoloured = w.grab().toImage()
    assert layers.density.last_kernel
    layers.density._tiled = None
    layers.density._cache = None
    expect = w.grab().toImage()
    c = np.frombuffer(recoloured.constBits(), np.uint8).astype(int)
    d = np.frombuffer(expect.constBits(), np.uint8).astype(int)
    assert np.abs(c - d).max() <= 2 and np.abs(c - a).max() > 50  # the new colours, not the old ones
