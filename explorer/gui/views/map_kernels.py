"""Compiled density binning for the map: one pass over the points instead of numpy's dozen.

numpy's density image (``map_layers.render_density``) makes about twenty passes over the points
(transform, masks, casts, four ``bincount``) and every ``bincount`` is a random walk over a 5 MB array: 25 ms
a frame at 1M points on this CPU. The kernel here reads each point once and adds its count and colour to one
interleaved (pixel, 4) accumulator; with the points stored in tile order (:func:`tile_order`) the writes
stay in cache: about 9 ms at 1M points, whatever the zoom.

numba is already installed with umap-learn (through pynndescent); it is named as a dependency of its own.
Compiling takes about a second, so :func:`warm_up` compiles on a background thread and callers use the
numpy path until :func:`ready` says the kernels are there (or for good, if numba cannot compile here).
"""

from __future__ import annotations

import math
import threading

import numpy as np

_lock = threading.Lock()
_state = {"kernels": None, "failed": False, "thread": None}
TILES = 64  # tile grid side for the points' storage order
# Opacity of a pixel holding one point; the densest pixel is opaque, on a log scale between. At 0.4 a lone
# light-yellow point was hard to see on white.
LONE_POINT_ALPHA = 0.55


def tile_order(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """An order of the points by a TILES x TILES grid over their bounds (row by row), stable inside a tile."""
    if not len(x):
        return np.zeros(0, np.int64)
    x0, x1, y0, y1 = float(x.min()), float(x.max()), float(y.min()), float(y.max())
    tx = np.clip(((x - x0) * (TILES / max(x1 - x0, 1e-30))).astype(np.int64), 0, TILES - 1)
    ty = np.clip(((y - y0) * (TILES / max(y1 - y0, 1e-30))).astype(np.int64), 0, TILES - 1)
    return np.argsort(ty * TILES + tx, kind="stable")


def _compile():
    import numba

    @numba.njit(nogil=True, cache=False)
    def bin_points(x, y, rgb, x0, y1, sx, sy, width, height, acc):  # pragma: no cover - compiled
        inview = 0
        fw = np.float32(width)
        fh = np.float32(height)
        for i in range(x.shape[0]):
            fx = (x[i] - x0) * sx
            fy = (y1 - y[i]) * sy
            if fx < 0 or fx > fw or fy < 0 or fy > fh:
                continue
            ix = min(int(fx), width - 1)
            iy = min(int(fy), height - 1)
            p = iy * width + ix
            acc[p, 0] += 1.0
            acc[p, 1] += rgb[i, 0]
            acc[p, 2] += rgb[i, 1]
            acc[p, 3] += rgb[i, 2]
            inview += 1
        return inview

    @numba.njit(nogil=True, cache=False)
    def shade(acc, out):  # pragma: no cover - compiled
        lone = LONE_POINT_ALPHA
        top = 0.0
        for p in range(acc.shape[0]):
            if acc[p, 0] > top:
                top = acc[p, 0]
        ltop = math.log1p(top)
        for p in range(acc.shape[0]):
            c = acc[p, 0]
            if c == 0:
                out[p] = 0
                continue
            inv = 1.0 / c
            r = np.uint32(acc[p, 1] * inv + 0.5)
            g = np.uint32(acc[p, 2] * inv + 0.5)
            b = np.uint32(acc[p, 3] * inv + 0.5)
            a = np.uint32((lone + (1.0 - lone) * math.log1p(c) / ltop) * 255 + 0.5) if ltop > 0 else np.uint32(255)
            out[p] = r | (g << 8) | (b << 16) | (a << 24)  # RGBA8888 bytes on a little-endian machine
        return top

    @numba.njit(nogil=True, cache=False)
    def classify(x, y, lo0, lo1, inv0, inv1, g, code, px, py, out):  # pragma: no cover - compiled
        # Every point in index order: outside the outline's box -> no; else its grid cell's answer, and the
        # exact even-odd rule (float64, as numpy's) for cells the outline passes through.
        n_in = 0
        e = px.shape[0]
        hx0 = lo0
        hy0 = lo1
        hx1 = lo0 + g / inv0
        hy1 = lo1 + g / inv1
        for i in range(x.shape[0]):
            xi = x[i]
            yi = y[i]
            if xi < hx0 or xi > hx1 or yi < hy0 or yi > hy1:
                continue
            c = min(max(int((xi - np.float32(lo0)) * np.float32(inv0)), 0), g - 1)
            r = min(max(int((yi - np.float32(lo1)) * np.float32(inv1)), 0), g - 1)
            k = code[r * g + c]
            if k == 2:
                fx = np.float64(xi)
                fy = np.float64(yi)
                inside = False
                x0 = px[e - 1]
                y0 = py[e - 1]
                for j in range(e):
                    x1 = px[j]
                    y1 = py[j]
                    if (y0 > fy) != (y1 > fy):
                        at = x0 + (fy - y0) * (x1 - x0) / (y1 - y0)
                        if fx < at:
                            inside = not inside
                    x0 = x1
                    y0 = y1
                k = 1 if inside else 0
            if k == 1:
                out[n_in] = i
                n_in += 1
        return n_in

    # Compile for the types the map uses (float32 positions and colours, float32 scalars, int widths).
    f = np.zeros(2, np.float32)
    rgb = np.zeros((2, 3), np.float32)
    acc = np.zeros((4, 4), np.float32)
    bin_points(f, f, rgb, np.float32(0), np.float32(1), np.float32(1), np.float32(1), 2, 2, acc)
    shade(acc, np.zeros(4, np.uint32))
    poly = np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0])
    classify(f, f, 0.0, 0.0, 1.0, 1.0, 1, np.zeros(1, np.uint8), *poly, np.zeros(2, np.int64))
    return bin_points, shade, classify


def _build() -> None:
    try:
        kernels = _compile()
    except Exception:  # numba missing or unable to compile here: the numpy path serves
        with _lock:
            _state["failed"] = True
        return
    with _lock:
        _state["kernels"] = kernels


def warm_up(block: bool = False) -> None:
    """Compile the kernels on a background thread (once); ``block`` waits for them."""
    import sys

    if sys.byteorder != "little":
        _state["failed"] = True
        return
    with _lock:
        if _state["kernels"] is None and not _state["failed"] and _state["thread"] is None:
            t = threading.Thread(target=_build, name="map-kernels", daemon=True)
            _state["thread"] = t
            t.start()
        t = _state["thread"]
    if block and t is not None:
        t.join()


def ready() -> bool:
    return _state["kernels"] is not None


def render(x: np.ndarray, y: np.ndarray, rgb: np.ndarray, rect: tuple[float, float, float, float],
           width: int, height: int) -> tuple[np.ndarray, int]:
    """RGBA (height, width, 4) uint8 density image and the points in view, as ``render_density``'s density
    mode draws it. ``x``, ``y``: float32; ``rgb``: (N, 3) float32. Only call once :func:`ready`."""
    bin_points, shade, _ = _state["kernels"]
    x0, y0, x1, y1 = (float(v) for v in rect)
    width, height = max(int(width), 1), max(int(height), 1)
    acc = np.zeros((width * height, 4), np.float32)
    if x1 > x0 and y1 > y0 and len(x):
        n = int(bin_points(x, y, rgb, np.float32(x0), np.float32(y1), np.float32(width / (x1 - x0)),
                           np.float32(height / (y1 - y0)), width, height, acc))
    else:
        n = 0
    out = np.empty(width * height, np.uint32)
    shade(acc, out)
    return out.view(np.uint8).reshape(height, width, 4), n


def classify(x: np.ndarray, y: np.ndarray, lo: tuple[float, float], inv: tuple[float, float], g: int,
             code: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the points (float32 ``x``, ``y``) inside ``polygon``: ``code`` is the lasso's
    (g * g) uint8 grid over the outline's box from ``lo`` with ``inv`` cells per unit (0 outside, 1 inside,
    2 passed through by the outline: decided by the exact even-odd rule). Only call once :func:`ready`."""
    kernel = _state["kernels"][2]
    out = np.empty(len(x), np.int64)
    poly = np.asarray(polygon, np.float64)
    n = int(kernel(x, y, float(lo[0]), float(lo[1]), float(inv[0]), float(inv[1]), int(g),
                   np.ascontiguousarray(code, np.uint8), np.ascontiguousarray(poly[:, 0]),
                   np.ascontiguousarray(poly[:, 1]), out))
    return out[:n].copy()
