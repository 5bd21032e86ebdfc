"""Pictures of a comparison without Qt: maps as PNG with the one label palette, side-by-side strips."""

from collections.abc import Sequence

import numpy as np

from ..imaging import label_colours
from .columns import CompareError

# ====================================================================== pictures
_PRIOR_SHADE = np.array([250, 180, 90], np.float32)  # where the prior puts its mass: a warm tint under the points


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # a scalable font where Pillow has FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def render_map(
    xy: np.ndarray,
    labels: np.ndarray,
    bounds: Sequence[float],
    *,
    label_names: Sequence[str] = (),
    prior: np.ndarray | None = None,
    title: str = "",
    size: int = 480,
    point_size: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """A latent map as an RGB uint8 image (H, W, 3): points coloured by label over ``bounds``, the prior's
    density (:func:`prior_density`, same bounds) as a warm tint beneath them, a title and a label legend.

    Points are drawn in a seeded random order, so no label is always painted on top of the others.
    """
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = (float(v) for v in bounds)
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(pts):
        raise CompareError(f"{len(pts)} map points but {len(labels)} labels")
    canvas = np.full((size, size, 3), 255.0, np.float32)
    if prior is not None and prior.size and float(prior.max()) > 0:
        dens = np.sqrt(prior / float(prior.max()))  # sqrt: the prior's tails stay visible next to its peak
        dens = dens[::-1]  # row 0 of the histogram is the bottom of the map (y0), the top of an image is y1
        ry = (np.arange(size) * dens.shape[0] // size)
        rx = (np.arange(size) * dens.shape[1] // size)
        alpha = 0.75 * dens[ry][:, rx][..., None]
        canvas = canvas * (1.0 - alpha) + _PRIOR_SHADE * alpha
    img = canvas.astype(np.uint8)
    n_labels = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    colours = label_colours(max(n_labels, len(label_names)))
    px = ((pts[:, 0] - x0) / (x1 - x0) * size).astype(np.int64)
    py = ((1.0 - (pts[:, 1] - y0) / (y1 - y0)) * size).astype(np.int64)
    inside = (px >= 0) & (px < size) & (py >= 0) & (py < size) & np.isfinite(pts).all(1)
    order = np.random.default_rng(seed).permutation(np.flatnonzero(inside))
    lab = labels[order]
    col = np.full((len(order), 3), 60, np.uint8)  # unlabelled points (-1) in dark grey
    if len(colours):
        col[lab >= 0] = colours[lab[lab >= 0] % len(colours)]
    for dy in range(point_size):
        for dx in range(point_size):
            img[np.clip(py[order] + dy, 0, size - 1), np.clip(px[order] + dx, 0, size - 1)] = col
    # Frame, title strip and legend.
    legend_w = 80 if label_names else 0
    title_h = 26 if title else 0
    full = np.full((size + title_h + 2, size + legend_w + 2, 3), 255, np.uint8)
    full[title_h:title_h + size + 2, 0:size + 2] = 90
    full[title_h + 1:title_h + 1 + size, 1:1 + size] = img
    pil = Image.fromarray(full)
    draw = ImageDraw.Draw(pil)
    if title:
        draw.text((4, 4), title, fill=(0, 0, 0), font=_font(15))
    font = _font(12)
    for i, name in enumerate(label_names):
        top = title_h + 6 + i * 17
        if top + 12 > full.shape[0]:
            break
        draw.rectangle([size + 10, top + 2, size + 20, top + 12], fill=tuple(int(v) for v in colours[i]))
        draw.text((size + 25, top), str(name)[:8], fill=(0, 0, 0), font=font)
    return np.asarray(pil)


def _side_by_side(images: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    h = max(im.shape[0] for im in images)
    parts: list[np.ndarray] = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        pad = np.full((h - im.shape[0], im.shape[1], 3), 255, np.uint8)
        parts.append(np.concatenate([im, pad]) if len(pad) else im)
    return np.concatenate(parts, axis=1)
