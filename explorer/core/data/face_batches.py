"""Controlled batches of procedural faces: one factor varying (DC-IGN), and exact analogy quadruples.

Built on :func:`faces.sample_attributes` / :func:`faces.render_faces`. Every batch is drawn with a seed from
``SEED_BASE`` upwards, far from the small seeds data sets use, so the people in training batches are never
the people of a faces data set's test split. Images come back as float tensors in [0, 1], (N, C, S, S), with
C = 1 (luminance) or 3.
"""

from __future__ import annotations

import numpy as np
import torch

from . import faces
from .transforms import convert_channels

SEED_BASE = 1 << 31  # batch seeds: SEED_BASE + k; data sets use small seeds
HELD_OUT_BASE = 3 << 30  # seeds of held-out evaluation batches (disjoint from the training ones)
ATTRIBUTE_NAMES = faces.ATTRIBUTE_NAMES
_A = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}


def _check_attribute(name: str) -> int:
    if name not in _A:
        raise ValueError(f"unknown face attribute {name!r}; known: {', '.join(ATTRIBUTE_NAMES)}")
    return _A[name]


def _values(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if name in faces.BINARY_ATTRIBUTES:
        return (rng.random(n) < 0.5).astype(np.float32)
    return rng.random(n).astype(np.float32)


def _to_tensor(images: np.ndarray, channels: int, device: torch.device | str | None) -> torch.Tensor:
    if channels != images.shape[1]:
        images = convert_channels(images, channels)
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255.0)


def varying_batch(attribute: str | None, count: int, size: int, seed: int, *, channels: int = 3,
                  fixed: tuple[str, ...] = (), device: torch.device | str | None = None
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """(images, attributes) of ``count`` faces in which only ``attribute`` varies: one person, every other
    attribute fixed. ``attribute=None`` gives the complementary batch: the attributes in ``fixed`` are held
    at one value and everything else (the person and the other attributes) varies."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    rng = np.random.default_rng([seed, 0xDC16])
    render_seed = SEED_BASE + int(rng.integers(0, 1 << 30))
    if attribute is not None:
        col = _check_attribute(attribute)
        attrs = np.repeat(faces.sample_attributes(1, render_seed), count, axis=0)
        attrs[:, col] = _values(attribute, rng, count)
        identity = np.zeros(count, np.int64)
    else:
        attrs = faces.sample_attributes(count, render_seed)
        base = faces.sample_attributes(1, render_seed + 1)[0]
        for name in fixed:
            col = _check_attribute(name)
            attrs[:, col] = base[col]
        identity = np.arange(count, dtype=np.int64)
    images = faces.render_faces(attrs, render_seed, identity=identity, size=size, workers=1)
    return _to_tensor(images, channels, device), attrs


def analogy_quadruples(count: int, size: int, seed: int, *, channels: int = 3,
                       attributes: tuple[str, ...] | None = None, device: torch.device | str | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """``count`` exact analogies a : b :: c : d as four image tensors, plus the attribute each one changes.

    a and b are one person that differs in one attribute (binary: 0 -> 1 or 1 -> 0; continuous: two random
    values); c and d are another person with other attributes, showing *the same* change (the same two
    values). So ``d`` is exactly what ``c`` looks like after the change that turns ``a`` into ``b``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    names = list(attributes) if attributes else list(ATTRIBUTE_NAMES)
    for name in names:
        _check_attribute(name)
    rng = np.random.default_rng([seed, 0xA4A1])
    render_seed = SEED_BASE + int(rng.integers(0, 1 << 30))
    changed = [names[i] for i in rng.integers(0, len(names), count)]
    base = faces.sample_attributes(2 * count, render_seed)
    first, second = base[:count].copy(), base[count:].copy()
    src = np.empty(count, np.float32)
    dst = np.empty(count, np.float32)
    for i, name in enumerate(changed):
        if name in faces.BINARY_ATTRIBUTES:
            src[i] = float(rng.random() < 0.5)
            dst[i] = 1.0 - src[i]
        else:
            src[i], dst[i] = rng.random(2)
    cols = np.array([_A[n] for n in changed])
    rows = np.arange(count)
    a, b, c, d = first.copy(), first.copy(), second.copy(), second.copy()
    a[rows, cols] = src
    b[rows, cols] = dst
    c[rows, cols] = src
    d[rows, cols] = dst
    attrs = np.concatenate([a, b, c, d])
    identity = np.concatenate([rows, rows, count + rows, count + rows])
    images = faces.render_faces(attrs, render_seed, identity=identity, size=size, workers=1)
    t = _to_tensor(images, channels, device)
    return t[:count], t[count:2 * count], t[2 * count:3 * count], t[3 * count:], changed
