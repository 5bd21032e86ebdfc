"""Paths through latent space: linear and spherical interpolation, keyframe paths and traversal grids.

Everything is numpy in, numpy out (float32 where the inputs are float32, float64 otherwise); nothing here
knows about models, so the GUI can build a path, decode it in its worker and draw it on the map.

::

    frames = interpolate([z_a, z_b, z_c], steps=25, method="slerp")    # (25, D), keyframes at 0, 12, 24
    keyframe_positions(3, 25)                                        # [0, 12, 24]
    grid = traverse_vector(starts, smiling, np.linspace(-2, 2, 9))   # (rows, 9, D)
    grid = traverse_dim(starts, 3, np.linspace(-3, 3, 9))            # z[3] set to each value

Why slerp: under the N(0, I) prior almost all mass lies near the shell of radius sqrt(D). The straight line
between two samples cuts through the interior (its midpoint has norm ~ sqrt(D / 2) for independent samples),
where the decoder has seen few codes and images turn grey and blurry. :func:`slerp` here moves the
*direction* along the great circle and the *length* linearly, so a path between two shell points stays on
the shell, and endpoints of unequal length are still reached exactly. (White 2016, "Sampling generative
networks", uses one formula for both; with equal norms the two agree.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "INTERPOLATION_METHODS",
    "interpolate",
    "keyframe_positions",
    "lerp",
    "slerp",
    "traverse_dim",
    "traverse_vector",
]

INTERPOLATION_METHODS: tuple[str, ...] = ("slerp", "lerp")

# Below this angle (radians) two directions count as parallel and slerp falls back to lerp: sin(theta)
# in the denominator would amplify rounding noise, and the arc is indistinguishable from the chord anyway.
_PARALLEL_EPS = 1e-4


def _vector(name: str, value: ArrayLike) -> np.ndarray:
    v = np.asarray(value)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a 1-D latent vector, got an array of shape {v.shape}")
    if not np.issubdtype(v.dtype, np.floating):
        v = v.astype(np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    a, b = _vector("a", a), _vector("b", b)
    if a.shape != b.shape:
        raise ValueError(f"the two latent vectors differ in size: {a.shape[0]} and {b.shape[0]}")
    dtype = np.result_type(a, b)
    return a.astype(np.float64), b.astype(np.float64), dtype


def _times(t: ArrayLike) -> tuple[np.ndarray, bool]:
    arr = np.asarray(t, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"t must be a number or a 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("t contains NaN or infinite values")
    return np.atleast_1d(arr), arr.ndim == 0


def lerp(a: ArrayLike, b: ArrayLike, t: ArrayLike) -> np.ndarray:
    """(1 - t) a + t b. ``t`` a number gives (D,), a 1-D array (T, D); t = 0 and 1 give a and b exactly."""
    a64, b64, dtype = _pair(a, b)
    ts, scalar = _times(t)
    out = (1.0 - ts)[:, None] * a64 + ts[:, None] * b64
    # Exact endpoints: (1 - 1) * a + 1 * b is b, but rounding in other formulations is not; make it explicit.
    out[ts == 0.0] = a64
    out[ts == 1.0] = b64
    out = out.astype(dtype, copy=False)
    return out[0] if scalar else out


def _orthogonal_direction(u: np.ndarray) -> np.ndarray:
    """A unit vector orthogonal to the unit vector u, chosen deterministically.

    The basis axis where u is smallest is the most orthogonal one; Gram-Schmidt removes the rest.
    """
    axis = np.zeros_like(u)
    axis[int(np.argmin(np.abs(u)))] = 1.0
    w = axis - np.dot(axis, u) * u
    return w / np.linalg.norm(w)


def slerp(a: ArrayLike, b: ArrayLike, t: ArrayLike) -> np.ndarray:
    """Spherical interpolation: the direction follows the great circle from a to b, the length goes linearly.

    ``t`` a number gives (D,), a 1-D array (T, D); t = 0 and 1 give a and b exactly (t outside [0, 1]
    extrapolates along the same circle). Special cases:

    * parallel directions (angle < 1e-4 rad) or a zero vector at either end: plain :func:`lerp`, which is
      then the same path up to rounding (or the only meaningful one);
    * antiparallel directions (angle within 1e-4 of pi): every great circle through a and -a is as short, so
      a fixed one is chosen, through the basis axis most orthogonal to a: deterministic, never NaN.
    """
    a64, b64, dtype = _pair(a, b)
    ts, scalar = _times(t)
    na, nb = float(np.linalg.norm(a64)), float(np.linalg.norm(b64))
    if na == 0.0 or nb == 0.0:
        return lerp(a, b, t)
    ua, ub = a64 / na, b64 / nb
    cos = float(np.clip(np.dot(ua, ub), -1.0, 1.0))
    theta = float(np.arccos(cos))
    if theta < _PARALLEL_EPS:
        return lerp(a, b, t)
    if np.pi - theta < _PARALLEL_EPS:
        w = _orthogonal_direction(ua)
        angle = np.pi * ts
        directions = np.cos(angle)[:, None] * ua + np.sin(angle)[:, None] * w
    else:
        s = np.sin(theta)
        directions = (np.sin((1.0 - ts) * theta) / s)[:, None] * ua + (np.sin(ts * theta) / s)[:, None] * ub
    lengths = (1.0 - ts) * na + ts * nb
    out = directions * lengths[:, None]
    out[ts == 0.0] = a64
    out[ts == 1.0] = b64
    out = out.astype(dtype, copy=False)
    return out[0] if scalar else out


def keyframe_positions(n_keyframes: int, steps: int) -> list[int]:
    """Frame index of each keyframe in :func:`interpolate`'s output (first 0, last ``steps - 1``).

    The ``steps - 1`` intervals are shared out as evenly as possible between the segments, the first
    segments taking one more when it does not divide.
    """
    if isinstance(n_keyframes, bool) or not isinstance(n_keyframes, (int, np.integer)) or n_keyframes < 2:
        raise ValueError(f"a path needs at least 2 keyframes, got {n_keyframes!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < n_keyframes:
        raise ValueError(
            f"steps must be an integer of at least the number of keyframes ({n_keyframes}), got {steps!r}"
        )
    segments = n_keyframes - 1
    base, extra = divmod(int(steps) - 1, segments)
    positions = [0]
    for i in range(segments):
        positions.append(positions[-1] + base + (1 if i < extra else 0))
    return positions


def interpolate(keyframes: Sequence[ArrayLike] | np.ndarray, steps: int, method: str = "slerp") -> np.ndarray:
    """Frames along a path through two or more keyframes: (steps, D), keyframe k exactly at
    ``keyframe_positions(len(keyframes), steps)[k]``.

    ``keyframes`` is a (K, D) array or a sequence of K vectors; ``method`` is "slerp" or "lerp". Each
    segment is interpolated on its own, so the path passes through every keyframe.
    """
    if method not in INTERPOLATION_METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; choose one of {', '.join(INTERPOLATION_METHODS)}")
    keys = [_vector(f"keyframe {i}", k) for i, k in enumerate(keyframes)]
    positions = keyframe_positions(len(keys), steps)
    sizes = {k.shape[0] for k in keys}
    if len(sizes) > 1:
        raise ValueError(f"keyframes differ in latent size: {sorted(sizes)}")
    dtype = np.result_type(*keys)
    fn = slerp if method == "slerp" else lerp
    out = np.empty((steps, keys[0].shape[0]), dtype=dtype)
    for i in range(len(keys) - 1):
        p0, p1 = positions[i], positions[i + 1]
        ts = np.arange(p1 - p0 + 1, dtype=np.float64) / (p1 - p0)
        out[p0 : p1 + 1] = fn(keys[i], keys[i + 1], ts)
    return out


def _starts(starts: ArrayLike) -> np.ndarray:
    z = np.asarray(starts)
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"starting points must be (rows, D) or one (D,) vector, got shape {np.shape(starts)}")
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise ValueError("starting points contain NaN or infinite values")
    return z


def _values(values: ArrayLike, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"{what} must be a non-empty 1-D array of finite numbers, got {np.shape(values)}")
    return v


def traverse_vector(starts: ArrayLike, vector: ArrayLike, strengths: ArrayLike) -> np.ndarray:
    """Grid ``starts[r] + strengths[s] * vector``: (rows, S, D). One (D,) start gives (1, S, D)."""
    z = _starts(starts)
    v = _vector("vector", vector)
    if v.shape[0] != z.shape[1]:
        raise ValueError(f"the vector has {v.shape[0]} values but the starting points have {z.shape[1]}")
    s = _values(strengths, "strengths")
    dtype = np.result_type(z, v)
    return (z[:, None, :] + s[None, :, None] * v[None, None, :]).astype(dtype, copy=False)


def traverse_dim(starts: ArrayLike, dim: int, values: ArrayLike, *, relative: bool = False) -> np.ndarray:
    """Grid varying latent dimension ``dim``: (rows, S, D).

    By default ``z[dim]`` is *set* to each value (the usual traversal, e.g. -3..3 prior standard deviations,
    so every row shows the same range whatever its start); ``relative=True`` *adds* the values instead.
    """
    z = _starts(starts)
    d = z.shape[1]
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 0 <= dim < d:
        raise ValueError(f"dim must be an integer in [0, {d - 1}], got {dim!r}")
    s = _values(values, "values")
    out = np.repeat(z[:, None, :], len(s), axis=1)
    if relative:
        out[:, :, dim] += s[None, :].astype(out.dtype)
    else:
        out[:, :, dim] = s[None, :]
    return out
