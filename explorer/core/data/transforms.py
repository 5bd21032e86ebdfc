"""Resizing, cropping and channel conversion, for whole uint8 arrays and for single decoded files.

Whole data sets are converted once, up front (the trainer wants one preloaded array), in chunks through
torch's interpolation: ~70k MNIST digits go to 64x64 RGB in about a second where a per-image Pillow loop
takes ten times longer. Single files (folders, CelebA) go through Pillow, whose JPEG draft mode decodes at a
reduced scale for free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..bounded import open_regular
from .base import DataSourceError, ImageData

# ITU-R 601-2 luma, the weights Pillow's convert("L") uses, so both paths agree.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHUNK = 4096  # images per interpolation call: bounds the float32 working set to a few hundred MB


def to_luminance(images: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) uint8 RGB -> (N, 1, H, W) uint8 luminance."""
    out = np.empty((len(images), 1, *images.shape[2:]), dtype=np.uint8)
    for i in range(0, len(images), _CHUNK):
        x = images[i:i + _CHUNK].astype(np.float32)
        y = np.tensordot(LUMA, x, axes=([0], [1]))  # (n, H, W)
        out[i:i + _CHUNK, 0] = np.clip(y + 0.5, 0, 255).astype(np.uint8)
    return out


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Grayscale <-> RGB for (N, C, H, W) uint8: 1 -> 3 repeats the plane, 3 -> 1 takes the luminance."""
    c = images.shape[1]
    if channels not in (1, 3):
        raise DataSourceError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    if c == channels:
        return images
    if c == 1:
        return np.repeat(images, channels, axis=1)
    if c == 3:
        return to_luminance(images)
    raise DataSourceError(f"cannot convert images with {c} channels to {channels}")


def center_crop_square(images: np.ndarray) -> np.ndarray:
    """The largest centred square of (N, C, H, W) images (a view)."""
    h, w = images.shape[2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return images[:, :, top:top + s, left:left + s]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, C, size, size); non-square images are centre-cropped to a square first.

    Bilinear with antialiasing: downscaling averages like Pillow's reducers instead of aliasing.
    """
    if size < 1:
        raise DataSourceError(f"image size must be positive, got {size}")
    images = center_crop_square(images)
    if images.shape[2] == size:
        return images
    import torch  # deferred: importing torch costs ~1 s and most callers never resize
    import torch.nn.functional as F

    def resize(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    out = np.empty((len(images), images.shape[1], size, size), dtype=np.uint8)
    with torch.no_grad():
        for i in range(0, len(images), _CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + _CHUNK]))
            try:
                # torch's fixed-point uint8 kernel (the one Pillow-SIMD uses): 4x faster than via float
                y = resize(x)
            except (RuntimeError, NotImplementedError):  # older torch builds lack it
                y = resize(x.float()).add_(0.5).clamp_(0, 255).to(torch.uint8)
            out[i:i + _CHUNK] = y.numpy()
    return out


def transform_images(images: np.ndarray, image_size: int | None = None, channels: int | None = None) -> np.ndarray:
    """Resize and convert channels; returns the input unchanged when nothing is asked."""
    c = images.shape[1]
    # Order for the least work: drop to one channel before resizing, repeat to three after it.
    if channels is not None and channels < c:
        images = convert_channels(images, channels)
    if image_size is not None:
        images = resize_images(images, image_size)
    if channels is not None and channels != images.shape[1]:
        images = convert_channels(images, channels)
    return images


def transform_data(data: ImageData, image_size: int | None = None, channels: int | None = None) -> ImageData:
    images = transform_images(data.images, image_size, channels)
    return data if images is data.images else replace(data, images=np.ascontiguousarray(images))


# --- single files ---------------------------------------------------------------------------------------------

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
# (width, height) -> the (left, top, right, bottom) pixel box to keep.
CropFn = Callable[[int, int], tuple[float, float, float, float]]


def center_square_box(w: int, h: int) -> tuple[float, float, float, float]:
    s = min(w, h)
    return (w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2


# Decoded pixels we accept in one file (after JPEG's reduced-scale draft): a 40-megapixel PNG costs ~160 MB
# while it is cropped and reduced; a 12000x12000 PNG (17 KB on disk if it is flat) would cost over a GB.
MAX_IMAGE_PIXELS = 40_000_000
# Bumped whenever the same file decodes to different pixels (the decode cache keys on it).
DECODER_VERSION = 3  # 3: JPEG draft down to the target size (was 2x)
# 16-bit (and 32-bit integer) images are scaled from 0..65535, float images from 0..1, to 0..255.
_HIGH_RANGE = {"I": 65535.0, "F": 1.0}


def open_image(path: str | Path, size: int, crop: CropFn = center_square_box, *, draft: bool = True
               ) -> tuple[np.ndarray, bool]:
    """Decode one file to a (3, size, size) uint8 RGB array, and whether it is grayscale.

    Transparent pixels are composited on white (sprites and icons usually mean "no background"). 16-bit and
    float images are scaled by their mode's range (65535, 1.0), not clipped at 255. Large images are decoded
    at a reduced scale (JPEG draft) or reduced right after the crop; more than ``MAX_IMAGE_PIXELS`` decoded
    pixels are refused. Only regular files are opened (a FIFO named .png would block for ever). Raises
    OSError / ValueError (Pillow's errors, ours) for unreadable files; the caller decides whether to skip them.
    ``draft=False`` decodes JPEGs at full scale (for comparisons; the pixels differ by a level or two).
    """
    with open_regular(path) as fh, Image.open(fh) as src:
        # JPEG draft: libjpeg decodes at 1/2, 1/4 or 1/8 scale (DCT-domain scaling, an averaging filter of
        # its own) while the crop stays >= the target size: a CelebA photo (178x218) for 64 px decodes at
        # 89x109, which halves the decode and the resize. EXIF rotation does not change the box's size.
        w0, h0 = src.size
        box0 = crop(w0, h0)
        scale = min(box0[2] - box0[0], box0[3] - box0[1]) / size
        if draft and src.format == "JPEG" and scale >= 2:
            src.draft("RGB", (int(w0 / scale) + 1, int(h0 / scale) + 1))
        w, h = src.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ValueError(f"{Path(path).name} is {w0}x{h0} pixels ({w0 * h0 / 1e6:.0f} megapixels), above the "
                             f"{MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit for one image; resize it first")
        im: Image.Image = ImageOps.exif_transpose(src)
        gray = im.mode in _GRAY_MODES or (im.mode == "P" and _palette_is_gray(im))
        # Crop first (whole pixels): resize(box=...) would let the filter blend in pixels from outside the box.
        # At a draft scale the box's edges may fall inside a pixel (CelebA's x=19 is 9.5 at half scale):
        # crop to the whole pixels around it and give the resize the exact sub-box, so the picture is the
        # same region as a full decode's (rounding the edges shifted it by a pixel of the full image).
        box = crop(*im.size)
        inner: tuple[float, float, float, float] | None = None
        if src.size != (w0, h0):
            left, top = math.floor(box[0]), math.floor(box[1])
            right, bottom = max(math.ceil(box[2]), left + 1), max(math.ceil(box[3]), top + 1)
            if (left, top, right, bottom) != tuple(box):
                inner = (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
        else:
            left, top, right, bottom = (round(v) for v in box)
            right, bottom = max(right, left + 1), max(bottom, top + 1)
        im = im.crop((left, top, right, bottom))
        high = None
        if im.mode.startswith("I;16"):
            im, high = im.convert("I"), _HIGH_RANGE["I"]  # I;16 cannot be reduced; I keeps every value
        elif im.mode in _HIGH_RANGE:
            high = _HIGH_RANGE[im.mode]
        elif im.mode == "P" or im.mode not in ("L", "LA", "RGB", "RGBA"):
            alpha = "transparency" in im.info or im.mode in ("PA", "La", "RGBa")
            im = im.convert("L" if im.mode == "1" else "RGBA" if alpha else "RGB")
        factor = min(im.size) // (2 * size)
        if factor >= 2:  # box-average down to >= 2x the target first: the bicubic resize then costs little
            im = im.reduce(factor)
            if inner is not None:
                inner = (inner[0] / factor, inner[1] / factor, inner[2] / factor, inner[3] / factor)
        if high is not None:
            values = np.asarray(im, dtype=np.float32)
            scaled = np.nan_to_num(values * (255.0 / high), nan=0.0, posinf=255.0, neginf=0.0)
            im = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8))
        if im.mode in ("RGBA", "LA"):
            rgba = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        im = im.convert("RGB")
        im = im.resize((size, size), Image.Resampling.BICUBIC, box=inner, reducing_gap=2.0)
        arr = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    if not gray:
        # Grayscale content saved as RGB (common for scans and JPEGs) counts as grayscale too.
        gray = bool(np.array_equal(arr[0], arr[1]) and np.array_equal(arr[1], arr[2]))
    return arr, gray


def _palette_is_gray(im: Image.Image) -> bool:
    pal = im.getpalette() or []
    rgb = np.asarray(pal[: len(pal) // 3 * 3]).reshape(-1, 3)
    return bool(len(rgb)) and bool(np.all(rgb[:, 0] == rgb[:, 1]) and np.all(rgb[:, 1] == rgb[:, 2]))


@dataclass
class DecodedFiles:
    images: np.ndarray  # (n_ok, 3, size, size) uint8 RGB
    ok: np.ndarray  # bool (n_files,): which files decoded
    all_gray: bool  # every decoded file was grayscale
    failures: list[tuple[Path, str]]  # (file, reason) for the files that did not


def decode_files(paths: list[Path], size: int, crop: CropFn = center_square_box, workers: int | None = None
                 ) -> DecodedFiles:
    """Decode many files into one preallocated array, on a few threads (Pillow releases the GIL)."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    gray = np.zeros(len(paths), dtype=bool)
    failures: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            out[i], gray[i] = open_image(paths[i], size, crop)
            ok[i] = True
        except MemoryError:
            failures[i] = "MemoryError: not enough memory to decode it"
        except Exception as exc:  # noqa: BLE001 - OSError, ValueError, SyntaxError, DecompressionBombError and
            # whatever else a damaged file makes a Pillow plugin raise: one bad file must not stop the others
            failures[i] = f"{type(exc).__name__}: {exc}"

    n_workers = workers or min(8, (os.cpu_count() or 1) + 1)
    if n_workers <= 1 or len(paths) < 16:
        for i in range(len(paths)):
            work(i)
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(work, range(len(paths))))
    images = out if ok.all() else out[ok]
    return DecodedFiles(images, ok, bool(gray[ok].all()) if ok.any() else False,
                        [(Path(paths[i]), failures[i]) for i in sorted(failures)])
