"""Procedural cartoon faces with exact, independent attributes.

No real face data set with attribute labels exists offline, so we draw one. Every face is a pure function of
its attribute vector and an *identity* (the unlabelled nuisance: background, shirt colour, fringe, iris colour,
exact proportions, ...). That makes latent-space arithmetic testable with known answers: render the same
identity with ``smiling`` 0 and 1 and only the mouth, the cheeks and the eyes change.

Attributes (``ATTRIBUTE_NAMES``, in column order; all float32 in [0, 1]):

==============  =======  ==============================================================================
name            sampled  meaning
==============  =======  ==============================================================================
smiling         0 / 1    a wider mouth whose corners rise in a U, flushed cheeks and narrowed "happy" eyes
                         (1) vs a flat, slightly down-turned mouth (0)
mouth_open      0 / 1    a dark open mouth with teeth (1) vs closed lips (0), the same shape and place
                         whatever the smile (only a smile's raised corners show beside it)
glasses         0 / 1    dark round frames with a bridge and arms
beard           0 / 1    a full beard in the (slightly darker) hair colour
long_hair       0 / 1    hair falling beside the face down to the shoulders
hair_colour     U[0, 1]  0 = black, ~0.35 = dark brown, ~0.65 = light brown, 1 = blond
skin_tone       U[0, 1]  0 = dark brown, 0.5 = medium, 1 = light
face_width      U[0, 1]  0 = narrow oval, 1 = wide, nearly round face
eye_size        U[0, 1]  0 = small eyes, 1 = large eyes
head_turn       U[0, 1]  0 = turned to the viewer's left, 0.5 = frontal, 1 = turned to the right
==============  =======  ==============================================================================

The data set samples the binary attributes as fair coin flips and the continuous ones uniformly, all
independently of each other and of the identity. The renderer itself is continuous in every attribute
(``smiling=0.5`` draws a straight mouth, ``glasses=0.5`` half-transparent frames), so decoded attribute
vectors and interpolations can be rendered too.

Rendering is vectorised over a chunk of faces at once: each part is a signed-distance function evaluated on
a coordinate grid and turned into a ~1 px anti-aliased coverage, and only the rows and columns that a part
can touch (over the whole chunk) are computed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .base import DataSourceError, ImageData

ATTRIBUTE_NAMES: list[str] = [
    "smiling",
    "mouth_open",
    "glasses",
    "beard",
    "long_hair",
    "hair_colour",
    "skin_tone",
    "face_width",
    "eye_size",
    "head_turn",
]
BINARY_ATTRIBUTES: list[str] = ATTRIBUTE_NAMES[:5]
CONTINUOUS_ATTRIBUTES: list[str] = ATTRIBUTE_NAMES[5:]
LABEL_NAMES: list[str] = ["neutral", "smiling"]
DEFAULT_COUNT = 12000
DEFAULT_SIZE = 64

_A = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}
_LIP = 0.016  # half-thickness of the lips' line (world units): ~2.5 px wide at 64 px
_OPEN_TOP = 0.008  # the open mouth's corners sit this far above the lips' middle line
_OPEN_DEPTH = 0.085  # its depth in the middle: ~5.5 px at 64 px
_N_IDENTITY = 24  # uniform nuisance numbers per identity; see _Layout
_MAX_IDENTITY = 10_000_000  # identities are drawn as one block of rows (~1 GB at this bound)
# Distinct streams so attributes and identities are independent yet both fixed by the one seed.
_ATTR_STREAM = 0xA77
_IDENTITY_STREAM = 0x1D


def sample_attributes(count: int, seed: int = 0) -> np.ndarray:
    """(count, 10) float32 attributes: binary ones 0/1 with p=0.5, continuous ones uniform in [0, 1].

    Prefix-stable: the first k rows are the same for any count >= k.
    """
    u = np.random.default_rng([seed, _ATTR_STREAM]).random((count, len(ATTRIBUTE_NAMES)))
    attrs = u.astype(np.float32)
    nb = len(BINARY_ATTRIBUTES)
    attrs[:, :nb] = (u[:, :nb] < 0.5).astype(np.float32)
    return attrs


def _identities(seed: int, identity: np.ndarray) -> np.ndarray:
    # One row of uniforms per identity, drawn in a single block so identity i is the same whatever else is drawn.
    n = int(identity.max()) + 1 if len(identity) else 0
    block = np.random.default_rng([seed, _IDENTITY_STREAM]).random((n, _N_IDENTITY))
    return block[identity].astype(np.float32)


def _lerp_palette(t: np.ndarray, stops: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Piecewise-linear colour ramp: t (B,) -> (B, 3)."""
    return np.stack([np.interp(t, stops, colours[:, c]) for c in range(3)], axis=1).astype(np.float32)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB for (B,) arrays in [0, 1]; returns (B, 3)."""
    k = (np.array([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6.0) % 6.0
    rgb = v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb.astype(np.float32)


_SKIN_STOPS = np.array([0.0, 0.5, 1.0])
_SKIN = np.array([[0.36, 0.22, 0.14], [0.78, 0.56, 0.40], [1.00, 0.86, 0.75]])
_HAIR_STOPS = np.array([0.0, 0.35, 0.65, 1.0])
_HAIR = np.array([[0.07, 0.06, 0.05], [0.30, 0.17, 0.08], [0.62, 0.40, 0.18], [0.97, 0.85, 0.50]])
_IRIS = np.array([[0.30, 0.18, 0.08], [0.20, 0.40, 0.70], [0.25, 0.50, 0.30], [0.10, 0.07, 0.05]])


def _col(x: np.ndarray) -> np.ndarray:
    """(B,) -> (B, 1, 1) so per-face numbers broadcast against (B, H, W) grids."""
    return np.asarray(x, dtype=np.float32)[:, None, None]


@dataclass
class _View:
    """A rectangular window of the chunk's canvas: parts are evaluated only where they can appear."""

    img: np.ndarray  # (B, 3, h, w) view into the canvas
    x: np.ndarray  # (1, 1, w) pixel-centre x in [0, 1]
    y: np.ndarray  # (1, h, 1) pixel-centre y in [0, 1]
    px: float  # pixels per unit, to turn distances into pixels for anti-aliasing


# The drawing is laid out in "world" units (the head's centre near (0.5, 0.5)); the image shows the square of
# side 1/_ZOOM around (_VIEW_X, _VIEW_Y). Zooming in on the head (shoulders and some background cropped) makes
# every feature 1.2x larger in pixels than a full-frame layout: a 64 px face reads from across a room.
_ZOOM = 1.2
_VIEW_X = 0.5
_VIEW_Y = 0.5


def _frac_x(world: np.ndarray | float) -> np.ndarray | float:
    """World x -> image fraction (0 = left edge, 1 = right edge)."""
    return (world - _VIEW_X) * _ZOOM + 0.5


def _frac_y(world: np.ndarray | float) -> np.ndarray | float:
    """World y -> image fraction (0 = top edge, 1 = bottom edge)."""
    return (world - _VIEW_Y) * _ZOOM + 0.5


class _Canvas:
    def __init__(self, n: int, size: int, background: np.ndarray) -> None:
        self.size = size
        self.img = np.empty((n, 3, size, size), dtype=np.float32)
        self.img[:] = background
        c = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres as image fractions
        self.xs = (_VIEW_X + (c - 0.5) / _ZOOM).astype(np.float32)  # ... and in world units
        self.ys = (_VIEW_Y + (c - 0.5) / _ZOOM).astype(np.float32)
        self.frac = c

    def view(self, top: np.ndarray | float, bottom: np.ndarray | float,
             left: np.ndarray | float = -1.0, right: np.ndarray | float = 2.0) -> _View | None:
        """The pixels whose centres can lie in the world box (every face of the chunk), with a 2 px margin."""
        s = self.size
        r0 = max(int(np.floor(_frac_y(np.min(top)) * s)) - 2, 0)
        r1 = min(int(np.ceil(_frac_y(np.max(bottom)) * s)) + 2, s)
        c0 = max(int(np.floor(_frac_x(np.min(left)) * s)) - 2, 0)
        c1 = min(int(np.ceil(_frac_x(np.max(right)) * s)) + 2, s)
        if r0 >= r1 or c0 >= c1:
            return None
        return _View(self.img[:, :, r0:r1, c0:c1], self.xs[None, None, c0:c1], self.ys[None, r0:r1, None],
                     float(s) * _ZOOM)


def _coverage(v: _View, sd: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Signed distance (units, negative inside) -> anti-aliased coverage over a ramp of `soft` pixels."""
    return np.clip(0.5 - sd * (v.px / soft), 0.0, 1.0)


def _paint(v: _View, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-blend a (B, 3) colour with coverage alpha (B, h, w) into the view, in place."""
    d = colour[:, :, None, None] - v.img  # one temporary, updated in place: painting is most of the time
    d *= alpha[:, None]
    v.img += d


def _ellipse_sd(v: _View, cx: np.ndarray | float, cy: np.ndarray | float, a: np.ndarray | float,
                b: np.ndarray | float) -> np.ndarray:
    # First-order distance (k - 1) / |grad k|; the tiny epsilon keeps the centre pixel finite.
    nx = (v.x - cx) / a
    ny = (v.y - cy) / b
    k = np.sqrt(nx * nx + ny * ny + 1e-12)
    g = np.sqrt((nx / a) ** 2 + (ny / b) ** 2 + 1e-12 / (a * b))
    return (k - 1.0) * (k / g)


def _segment_sd(v: _View, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray,
                r: np.ndarray | float) -> np.ndarray:
    """Capsule: distance to the segment (x0, y0)-(x1, y1) minus radius r."""
    dx, dy = x1 - x0, y1 - y0
    px, py = v.x - x0, v.y - y0
    h = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(px - h * dx, py - h * dy) - r


def _vcapsule_sd(v: _View, x: np.ndarray, y0: np.ndarray | float, y1: np.ndarray | float,
                 r: np.ndarray | float) -> np.ndarray:
    """Vertical capsule from (x, y0) to (x, y1), radius r: a cheaper special case of _segment_sd."""
    dy = v.y - np.clip(v.y, y0, y1)
    return np.hypot(v.x - x, dy) - r


def _curve(v: _View, xm: np.ndarray, ym: np.ndarray, w: np.ndarray, depth: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parabola through the corners (xm +- w, ym - depth/2) and the middle (xm, ym + depth/2).

    depth > 0 bends it down in the middle (a smile), < 0 arches it (an eyebrow, a frown). Returns the curve's
    y at each column, s = (x - xm) / w and the factor that turns vertical into normal distance.
    """
    s = (v.x - xm) / w
    yc = ym + depth * (0.5 - s * s)
    slope = -2.0 * depth * s / w
    return yc, s, 1.0 / np.sqrt(1.0 + slope * slope)


def _stroke_sd(v: _View, xm: np.ndarray, ym: np.ndarray, w: np.ndarray, depth: np.ndarray,
               half_thickness: np.ndarray | float) -> np.ndarray:
    yc, _, norm = _curve(v, xm, ym, w, depth)
    along = np.abs(v.x - xm) - w  # cut the stroke at the corners
    return np.maximum(np.abs(v.y - yc) * norm - half_thickness, along)


class _Layout:
    """Per-face geometry and colours (arrays of shape (B, 1, 1) or (B, 3)) from attributes and identity."""

    def __init__(self, attrs: np.ndarray, ident: np.ndarray) -> None:
        a = {name: attrs[:, i] for name, i in _A.items()}
        u = ident  # (B, _N_IDENTITY) uniforms; each column has one job below
        self.attrs = a
        turn = 2.0 * a["head_turn"] - 1.0  # -1 .. 1

        # Colours.
        bg_h, bg_s, bg_v = u[:, 0], 0.15 + 0.35 * u[:, 1], 0.55 + 0.4 * u[:, 2]
        self.bg_top = _hsv_to_rgb(bg_h, bg_s, bg_v)
        self.bg_bottom = _hsv_to_rgb(bg_h, bg_s, bg_v * (0.75 + 0.25 * u[:, 3]))
        self.shirt = _hsv_to_rgb(u[:, 4], 0.45 + 0.4 * u[:, 5], 0.3 + 0.55 * u[:, 6])
        skin = _lerp_palette(a["skin_tone"], _SKIN_STOPS, _SKIN)
        self.skin = np.clip(skin * (0.97 + 0.06 * u[:, 7:8]), 0.0, 1.0)
        self.skin_shadow = self.skin * np.float32(0.78)
        self.hair = _lerp_palette(a["hair_colour"], _HAIR_STOPS, _HAIR)
        self.beard_colour = self.hair * np.float32(0.75)
        self.brow = self.hair * np.float32(0.6)
        self.iris = _IRIS[np.minimum((u[:, 8] * len(_IRIS)).astype(int), len(_IRIS) - 1)].astype(np.float32)
        frame_v = 0.05 + 0.2 * u[:, 9]
        self.frame = np.stack([frame_v, frame_v * (0.7 + 0.3 * u[:, 10]), frame_v * (0.6 + 0.8 * u[:, 10])], 1)
        self.lips = np.array([0.32, 0.07, 0.08], np.float32)[None].repeat(len(u), 0)
        # Darker than the darkest skin, so an open mouth (with its white teeth) shows on every face.
        self.mouth_inside = np.array([0.15, 0.02, 0.03], np.float32)[None].repeat(len(u), 0)
        self.teeth = np.array([0.96, 0.95, 0.90], np.float32)[None].repeat(len(u), 0)
        self.white = np.array([0.98, 0.98, 0.98], np.float32)[None].repeat(len(u), 0)
        self.pupil = np.array([0.03, 0.03, 0.03], np.float32)[None].repeat(len(u), 0)

        # Head.
        self.turn = _col(turn)
        self.cx = _col(0.5 + 0.025 * turn + 0.03 * (u[:, 11] - 0.5))
        self.cy = _col(0.50 + 0.04 * (u[:, 12] - 0.5))
        self.fa = _col(0.195 + 0.085 * a["face_width"])  # face half-width
        self.fb = _col(0.265 + 0.03 * u[:, 13])  # face half-height
        self.hair_cx = self.cx - _col(0.012 * turn)

        # Features move towards the side the head turns to; the far side is foreshortened.
        self.eye_y = self.cy - 0.035
        spacing = _col(0.075 + 0.02 * u[:, 14]) + 0.25 * (self.fa - 0.195)
        # 2.3 px (small) to 5 px (large) half-width at 64 px: the size reads without a ruler.
        self.eye_w = _col(0.030 + 0.036 * a["eye_size"])
        eye_h_neutral = self.eye_w * 0.72
        self.smile = _col(a["smiling"])
        # A smile narrows the eyes: at 48-64 px the mouth corners alone move ~2 px, too little for a model
        # to encode reliably, so the smile shows where a real one does too (mouth, cheeks and eyes).
        self.eye_h = eye_h_neutral * (1.0 - 0.5 * self.smile)
        self.iris_r = eye_h_neutral * 0.85  # the narrowed lids cover the iris rather than shrink it
        shift = _col(0.06 * turn)
        right_f = 1.0 - 0.35 * np.maximum(self.turn, 0.0)  # viewer's right eye shrinks as the head turns right
        left_f = 1.0 - 0.35 * np.maximum(-self.turn, 0.0)
        self.eyes = [  # (x, half-width factor)
            (self.cx + shift - spacing * left_f, left_f),
            (self.cx + shift + spacing * right_f, right_f),
        ]
        self.brow_y = self.eye_y - eye_h_neutral - _col(0.028 + 0.012 * u[:, 15])
        self.brow_arch = _col(-0.008 - 0.014 * u[:, 16])
        self.brow_th = _col(0.011 + 0.005 * u[:, 17])

        self.nose_x = self.cx + _col(0.085 * turn)
        self.nose_y = self.cy + 0.065
        self.nose_s = _col(0.022 + 0.012 * u[:, 18])

        # Less than the nose (0.085) and the eyes (0.06): the mouth sits further back. Moving it 0.065 left the open
        # mouths of a face turned either way without common pixels, and a head_turn vector then closed them.
        self.mouth_x = self.cx + _col(0.035 * turn)
        self.mouth_y = self.cy + _col(0.15 + 0.015 * (u[:, 19] - 0.5))
        # The open mouth keeps the neutral width whatever the smile, so mouth_open and smiling stay separable.
        self.mouth_w_open = _col(0.07 + 0.025 * u[:, 20]) * (1.0 - 0.2 * np.abs(self.turn))
        self.mouth_w = self.mouth_w_open * (1.0 + 0.3 * self.smile)
        # Corner-to-middle drop: ~0.07 for a smile (a U you see across a room), a slight frown when neutral.
        self.mouth_depth = _col(-0.012 + 0.085 * a["smiling"] + 0.006 * (u[:, 21] - 0.5))
        # The lips' middle stays at mouth_y and a smile lifts the corners: a U that dipped below the neutral line
        # lay inside the open mouth's area, so a closed smile was already "half open" to a model, and one
        # mouth_open vector overshot on smiling faces and fell short on neutral ones.
        self.mouth_line_y = self.mouth_y - self.mouth_depth / 2  # _curve's ym: the middle lands on mouth_y
        self.cheek_y = self.cy + 0.065
        self.cheek_dx = self.fa * 0.58
        self.blush = np.clip(self.skin * np.float32(0.7) + np.array([0.32, 0.02, 0.04], np.float32), 0.0, 1.0)
        self.mouth_open = _col(a["mouth_open"])

        self.fringe_y = self.cy - self.fb * _col(0.45 + 0.25 * u[:, 22])
        self.fringe_slope = _col(0.8 * (u[:, 23] - 0.5))

        self.glasses = _col(a["glasses"])
        self.beard = _col(a["beard"])
        self.long_hair = _col(a["long_hair"])

    def mouth_box(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Top, bottom, left, right bounds of everything the mouth attributes can change."""
        up = np.maximum(self.mouth_depth, 0.0) + 0.015  # a smile's corners above the middle
        down = np.maximum(-self.mouth_depth, 0.0) + 0.015  # a frown's below it
        open_bottom = _OPEN_DEPTH - _OPEN_TOP + 0.009 + 0.008  # its lip rim and anti-aliasing below
        return (self.mouth_y - up - 0.02, self.mouth_y + np.maximum(down + 0.07, open_bottom),
                self.mouth_x - self.mouth_w - 0.01, self.mouth_x + self.mouth_w + 0.01)

    def eyes_box(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Top, bottom, left, right bounds of both eyes and eyebrows (eye size moves the brows) at any smile."""
        (lx, lf), (rx, rf) = self.eyes
        reach_y = self.eye_w * 0.72 + 0.01
        brow_top = self.brow_y + 0.5 * self.brow_arch - self.brow_th - 0.01
        return (brow_top, self.eye_y + reach_y, lx - self.eye_w * lf - 0.025, rx + self.eye_w * rf + 0.025)

    def glasses_box(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Top, bottom, left, right bounds of the frames, bridge and arms."""
        ring_r = self.eye_w * 0.8 + 0.034
        return (self.eye_y - ring_r * 0.9 - 0.015, self.eye_y + ring_r * 0.9 + 0.015,
                self.cx - self.fa - 0.015, self.cx + self.fa + 0.015)


def _draw(canvas: _Canvas, L: _Layout) -> None:
    cx, cy, fa, fb = L.cx, L.cy, L.fa, L.fb

    # Soft vertical background gradient.
    t = canvas.frac[None, None, :, None]
    canvas.img += t * (L.bg_bottom - L.bg_top)[:, :, None, None]

    # Long hair: a curtain behind the head reaching the shoulders (the neck is painted over its middle).
    v = canvas.view(cy - fa - 0.12, 0.93, cx - fa - 0.09, cx + fa + 0.09)  # the capsule's round top included
    if v is not None and L.long_hair.max() > 0:
        sd = _vcapsule_sd(v, L.hair_cx, cy - 0.05, cy + fb + 0.05, fa + 0.06)
        _paint(v, _coverage(v, sd) * L.long_hair, L.hair)

    # Shoulders and shirt.
    v = canvas.view(cy + fb * 0.8, 1.0)
    if v is not None:
        _paint(v, _coverage(v, _ellipse_sd(v, cx * 0.3 + 0.35, 1.1, 0.40, 0.24)), L.shirt)

    # Neck.
    v = canvas.view(cy, 1.0, cx - 0.1, cx + 0.1)
    if v is not None:
        sd = _vcapsule_sd(v, cx, cy, 1.2, 0.075)
        _paint(v, _coverage(v, sd), L.skin_shadow)

    # Hair behind the head: a cap a little larger than the face, cut off around ear height.
    v = canvas.view(cy - fb - 0.06, cy + 0.1, cx - fa - 0.06, cx + fa + 0.06)
    if v is not None:
        sd = _ellipse_sd(v, L.hair_cx, cy - 0.045, fa + 0.035, fb + 0.012)
        sd = np.maximum(sd, v.y - (cy + 0.04))
        _paint(v, _coverage(v, sd), L.hair)

    # Ears.
    for side in (-1.0, 1.0):
        ex = cx + side * fa * 0.97
        v = canvas.view(cy - 0.07, cy + 0.08, ex - 0.05, ex + 0.05)
        if v is not None:
            _paint(v, _coverage(v, _ellipse_sd(v, ex, cy + 0.005, 0.032, 0.055)), L.skin_shadow)

    # Face: an egg shape, narrower towards the chin.
    v = canvas.view(cy - fb, cy + fb, cx - fa, cx + fa)
    assert v is not None
    below = np.clip((v.y - cy) / fb, 0.0, 1.0)
    face_sd = _ellipse_sd(v, cx, cy, fa * (1.0 - 0.2 * below * below), fb)
    face = _coverage(v, face_sd)
    _paint(v, face, L.skin)
    # Gentle shading towards the face's edge so it reads as round rather than flat.
    _paint(v, np.clip(1.0 + face_sd / (0.35 * fa), 0.0, 1.0) * face * 0.35, L.skin_shadow)

    # Smiling cheeks: raised and flushed.
    if L.smile.max() > 0:
        for side in (-1.0, 1.0):
            sd = _ellipse_sd(v, cx + side * L.cheek_dx + 0.02 * L.turn, L.cheek_y, 0.075, 0.055)
            _paint(v, _coverage(v, sd, soft=3.0) * face * L.smile, L.blush)

    # Beard: the lower face below a line that rises towards the ears, with the lips left clear.
    if L.beard.max() > 0:
        rel = (v.x - cx) / fa
        beard_top = cy + 0.105 - 0.075 * rel * rel
        sd = np.maximum(_ellipse_sd(v, cx, cy + 0.005, fa + 0.012, fb + 0.015), beard_top - v.y)
        lips_clear = np.maximum(
            _coverage(v, _ellipse_sd(v, L.mouth_x, L.mouth_y + 0.012, L.mouth_w + 0.018, 0.035)),
            _coverage(v, _stroke_sd(v, L.mouth_x, L.mouth_line_y, L.mouth_w, L.mouth_depth, _LIP + 0.014)))
        _paint(v, _coverage(v, sd) * (1.0 - 0.85 * lips_clear) * L.beard, L.beard_colour)

    # Fringe: hair over the forehead above a slanted line.
    fringe_line = L.fringe_y + L.fringe_slope * (v.x - L.hair_cx) * 0.5
    fringe_sd = np.maximum(face_sd - 0.02, v.y - fringe_line)  # reaches past the face's soft edge: no seam
    _paint(v, _coverage(v, fringe_sd), L.hair)

    # Eyebrows.
    for ex, f in L.eyes:
        w = L.eye_w * f + 0.012
        v = canvas.view(L.brow_y - 0.04, L.brow_y + 0.03, ex - w - 0.02, ex + w + 0.02)
        if v is not None:
            _paint(v, _coverage(v, _stroke_sd(v, ex, L.brow_y, w, L.brow_arch, L.brow_th)), L.brow)

    # Eyes: white, iris, pupil, glint and a thin outline.
    for ex, f in L.eyes:
        ew, eh = L.eye_w * f, L.eye_h
        v = canvas.view(L.eye_y - eh - 0.01, L.eye_y + eh + 0.01, ex - ew - 0.01, ex + ew + 0.01)
        if v is None:
            continue
        sd = _ellipse_sd(v, ex, L.eye_y, ew, eh)
        _paint(v, _coverage(v, sd - 0.006), L.pupil * 0.5 + L.skin_shadow * 0.5)
        eye = _coverage(v, sd)
        _paint(v, eye, L.white)
        ix = ex + 0.25 * ew * L.turn
        iris_r = L.iris_r
        _paint(v, _coverage(v, _ellipse_sd(v, ix, L.eye_y, iris_r * f, iris_r)) * eye, L.iris)
        _paint(v, _coverage(v, _ellipse_sd(v, ix, L.eye_y, iris_r * 0.5 * f, iris_r * 0.5)) * eye, L.pupil)
        glint = _coverage(v, _ellipse_sd(v, ix + iris_r * 0.35, L.eye_y - iris_r * 0.35, 0.008, 0.008), soft=1.5)
        _paint(v, glint * eye * 0.8, L.white)

    # Nose: a soft shadow and a darker tip.
    v = canvas.view(L.nose_y - 0.06, L.nose_y + 0.04, L.nose_x - 0.05, L.nose_x + 0.05)
    if v is not None:
        sd = _ellipse_sd(v, L.nose_x - 0.01 * L.turn, L.nose_y - 0.012, L.nose_s * 0.75, L.nose_s * 1.4)
        _paint(v, _coverage(v, sd, soft=3.0) * 0.35, L.skin_shadow)
        sd = _ellipse_sd(v, L.nose_x, L.nose_y + L.nose_s * 0.5, L.nose_s * 0.8, L.nose_s * 0.4)
        _paint(v, _coverage(v, sd, soft=1.5) * 0.7, L.skin_shadow * 0.85)

    # Mouth: the lips' curve, and when open a dark opening with teeth at the top. The opening has one shape and
    # place whatever the smile (only the smile's up-turned corners show beside it): drawn along the smile's curve,
    # an open smile and an open neutral mouth shared few pixels, and one linear mouth_open vector opened each half.
    top, bottom, left, right = L.mouth_box()
    v = canvas.view(top, bottom, left, right)
    if v is not None:
        _paint(v, _coverage(v, _stroke_sd(v, L.mouth_x, L.mouth_line_y, L.mouth_w, L.mouth_depth, _LIP)), L.lips)
        if L.mouth_open.max() > 0:
            s = (v.x - L.mouth_x) / L.mouth_w_open
            bulge = np.clip(1.0 - s * s, 0.0, None) * L.mouth_open
            y0 = L.mouth_y - _OPEN_TOP
            upper = y0 - 0.008 * bulge
            lower = y0 + _OPEN_DEPTH * bulge
            slope = 2.0 * _OPEN_DEPTH * L.mouth_open * s / L.mouth_w_open  # of the lower edge, the longer one
            norm = 1.0 / np.sqrt(1.0 + slope * slope)
            along = np.abs(v.x - L.mouth_x) - L.mouth_w_open
            inside_sd = np.maximum(np.maximum(upper - v.y, v.y - lower) * norm, along)
            _paint(v, _coverage(v, inside_sd - 0.009) * L.mouth_open, L.lips)
            # A closed mouth's zero-height opening would still cover ~1 px along the lips: scale it away, so a
            # face looks the same whatever it is drawn beside.
            inside = _coverage(v, inside_sd) * L.mouth_open
            _paint(v, inside, L.mouth_inside)
            teeth = inside * _coverage(v, v.y - (upper + 0.026 * bulge))  # a ~2 px white band
            _paint(v, teeth, L.teeth)

    # Glasses: rings around the eyes, a bridge and arms to the ears.
    if L.glasses.max() > 0:
        ring_r = L.eye_w * 0.8 + 0.034
        rim = 0.012  # ~2 px frames at 64 px
        v = canvas.view(L.eye_y - ring_r - 0.05, L.eye_y + ring_r + 0.02, cx - fa - 0.02, cx + fa + 0.02)
        if v is not None:
            (lx, lf), (rx, rf) = L.eyes
            sd = np.minimum(
                np.abs(_ellipse_sd(v, lx, L.eye_y, ring_r * lf, ring_r * 0.9)) - rim,
                np.abs(_ellipse_sd(v, rx, L.eye_y, ring_r * rf, ring_r * 0.9)) - rim,
            )
            bridge_y = L.eye_y - ring_r * 0.25
            sd = np.minimum(sd, _segment_sd(v, lx + ring_r * lf, bridge_y, rx - ring_r * rf, bridge_y, rim))
            sd = np.minimum(sd, _segment_sd(v, lx - ring_r * lf, L.eye_y - 0.005, cx - fa, L.eye_y - 0.01, rim))
            sd = np.minimum(sd, _segment_sd(v, rx + ring_r * rf, L.eye_y - 0.005, cx + fa, L.eye_y - 0.01, rim))
            _paint(v, _coverage(v, sd) * L.glasses, L.frame)


def _render_chunk(attrs: np.ndarray, ident: np.ndarray, size: int) -> np.ndarray:
    L = _Layout(attrs, ident)
    canvas = _Canvas(len(attrs), size, L.bg_top[:, :, None, None])
    _draw(canvas, L)
    return np.clip(canvas.img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render_faces(attrs: np.ndarray, seed: int = 0, *, identity: np.ndarray | None = None,
                 size: int = DEFAULT_SIZE, chunk: int | None = None, workers: int | None = None) -> np.ndarray:
    """Draw faces: attrs (N, 10) in [0, 1] (columns as ATTRIBUTE_NAMES) -> uint8 (N, 3, size, size).

    Row i shows identity ``identity[i]`` (default i) of ``seed``: the face ``make_faces(seed=seed)`` drew at
    row i, now with the given attributes. ``render_faces(attrs, seed, identity=np.full(k, i))`` renders k
    attribute variants of one person.
    """
    attrs = np.asarray(attrs, dtype=np.float32)
    if attrs.ndim != 2 or attrs.shape[1] != len(ATTRIBUTE_NAMES):
        raise ValueError(f"attrs must have shape (N, {len(ATTRIBUTE_NAMES)}) with columns {ATTRIBUTE_NAMES}, "
                         f"got {attrs.shape}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    attrs = np.clip(np.nan_to_num(attrs, nan=0.5), 0.0, 1.0)
    n = len(attrs)
    ident_idx = np.arange(n) if identity is None else np.asarray(identity, dtype=np.int64).reshape(-1)
    if ident_idx.shape != (n,) or (n and (ident_idx.min() < 0 or ident_idx.max() >= _MAX_IDENTITY)):
        raise ValueError(f"identity must hold {n} integers in [0, {_MAX_IDENTITY})")
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    if n == 0:
        return out
    ident = _identities(seed, ident_idx)
    # ~256k pixels per chunk keeps the working arrays inside the CPU caches.
    step = chunk or max(1, (1 << 18) // (size * size))
    starts = range(0, n, step)

    def work(i: int) -> None:
        out[i:i + step] = _render_chunk(attrs[i:i + step], ident[i:i + step], size)

    # numpy releases the GIL inside its loops, so threads over chunks use the other cores.
    n_workers = workers or min(4, os.cpu_count() or 1)
    if n_workers <= 1 or len(starts) <= 1:
        for i in starts:
            work(i)
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(work, starts))
    return out


def make_faces(count: int = DEFAULT_COUNT, seed: int = 0, *, size: int = DEFAULT_SIZE,
               limit_train: int | None = None, limit_test: int | None = None) -> ImageData:
    """The faces data set: `count` faces, the first 5/6 the training split, labelled by the smiling flag.

    The limits keep the first rows of each split, and only those are drawn: the result equals
    ``make_faces(count, seed).limit(limit_train, limit_test)`` at a fraction of the cost.
    """
    if count < 1:
        raise DataSourceError(f"faces: count must be at least 1, got {count}")
    attrs = sample_attributes(count, seed)
    n_train = count - count // 6
    k_train = n_train if limit_train is None else min(n_train, limit_train)
    k_test = count - n_train if limit_test is None else min(count - n_train, limit_test)
    rows = np.concatenate([np.arange(k_train), n_train + np.arange(k_test)])
    attrs = attrs[rows]
    return ImageData(
        name="faces",
        images=render_faces(attrs, seed, identity=rows, size=size),
        labels=attrs[:, _A["smiling"]].astype(np.int64),
        label_names=list(LABEL_NAMES),
        n_train=k_train,
        attributes=attrs,
        attribute_names=list(ATTRIBUTE_NAMES),
        source=f"procedural faces (seed {seed}, {count} faces, drawn in memory)",
    )


# ------------------------------------------------------------ regions and one-attribute batches
REGION_NAMES: tuple[str, ...] = ("mouth", "eyes", "glasses")
_REGION_BOX = {"mouth": _Layout.mouth_box, "eyes": _Layout.eyes_box, "glasses": _Layout.glasses_box}
_REGION_CACHE: dict[str, tuple[float, float, float, float]] = {}


def _region_world(name: str) -> tuple[float, float, float, float]:
    """World (top, bottom, left, right) of a part over every face: the union of its per-face bounds.

    Every bound is monotonic in each attribute and identity number, so its extremes lie at corners of the unit
    cube; 4096 random corners (fixed seed) hit each bound's extreme corner for the handful of numbers it uses.
    """
    if name not in _REGION_CACHE:
        rng = np.random.default_rng(12345)
        n = 4096
        attrs = (rng.random((n, len(ATTRIBUTE_NAMES))) < 0.5).astype(np.float32)
        ident = (rng.random((n, _N_IDENTITY)) < 0.5).astype(np.float32)
        t, b, l, r = _REGION_BOX[name](_Layout(attrs, ident))
        _REGION_CACHE[name] = (float(np.min(t)), float(np.max(b)), float(np.min(l)), float(np.max(r)))
    return _REGION_CACHE[name]


def face_region(name: str, size: int = DEFAULT_SIZE) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) holding a part of *every* face drawn at ``size``.

    ``"mouth"``: everything ``smiling`` and ``mouth_open`` change at the mouth (lips, open mouth, teeth), at any
    head turn; ``"eyes"``: both eyes and eyebrows at any eye size (a smile narrows the eyes inside it too); ``"glasses"``: frames,
    bridge and arms. Slice an image as ``img[..., y0:y1, x0:x1]``; one anti-aliasing pixel of margin included.
    """
    if name not in _REGION_BOX:
        raise ValueError(f"unknown face region {name!r}; known: {', '.join(REGION_NAMES)}")
    if int(size) < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    size = int(size)
    top, bottom, left, right = _region_world(name)
    y0 = int(np.floor(_frac_y(top) * size - 0.5)) - 1
    y1 = int(np.ceil(_frac_y(bottom) * size + 0.5)) + 1
    x0 = int(np.floor(_frac_x(left) * size - 0.5)) - 1
    x1 = int(np.ceil(_frac_x(right) * size + 0.5)) + 1
    return max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)


class VaryingBatch(NamedTuple):
    """Faces of one person in which only one attribute changes (see :func:`render_varying`)."""

    images: np.ndarray  # (count, 3, size, size) uint8
    attributes: np.ndarray  # (count, 10) float32: one column varies, the others are one row repeated
    identity: int  # the identity number drawn (render_faces(..., identity=...))


def render_varying(attribute: str, count: int, size: int = DEFAULT_SIZE, seed: int = 0, *,
                   values: np.ndarray | None = None, identity: int | None = None) -> VaryingBatch:
    """A batch of one person in which only ``attribute`` varies (DC-IGN style training batches, traversals).

    The person (identity and all other attributes) is a pure function of ``seed``; the attribute takes
    ``values`` (default: drawn as the data set draws it, coin flips for binary attributes and uniform for
    continuous ones, from the same seed). ``identity`` overrides the seed's person. Deterministic.
    """
    if attribute not in _A:
        raise ValueError(f"unknown face attribute {attribute!r}; known: {', '.join(ATTRIBUTE_NAMES)}")
    count = int(count)
    if count < 1 or count > _MAX_IDENTITY:
        raise ValueError(f"count must be between 1 and {_MAX_IDENTITY}, got {count}")
    rng = np.random.default_rng([seed, 0x7A21])
    person = sample_attributes(1, seed)[0]
    who = int(rng.integers(0, 1_000_000)) if identity is None else int(identity)
    if values is None:
        draw = rng.random(count)
        values = (draw < 0.5).astype(np.float32) if attribute in BINARY_ATTRIBUTES else draw.astype(np.float32)
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if len(values) != count:
        raise ValueError(f"values must hold {count} numbers, got {len(values)}")
    attrs = np.repeat(person[None], count, axis=0)
    attrs[:, _A[attribute]] = np.clip(values, 0.0, 1.0)
    images = render_faces(attrs, seed, identity=np.full(count, who), size=size)
    return VaryingBatch(images, attrs, who)
