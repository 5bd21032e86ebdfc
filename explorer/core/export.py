"""Write decoded frames to disk: a PNG grid, an animated GIF, or an MP4 when an encoder is available.

Frames are uint8 arrays, (N, H, W) grayscale or (N, H, W, C) with C = 1, 3 or 4 (channels last, as images
are shown; :func:`to_frames` converts a model's (N, C, H, W) floats in [0, 1]). Nothing here needs a
display, so the CLI and the GUI share it.

* Small images are enlarged with nearest-neighbour by a whole factor until their smaller side reaches
  ``min_size`` (default 112 px): a 28 px digit or a 32 px face is otherwise a speck in an image viewer, and
  smoothing would invent blur the model did not make.
* Every file is written to a temporary file in the target's folder and renamed over the target
  (``os.replace``), so a viewer or a crash never sees half a file.
* GIF: Pillow, one adaptive palette per frame, ``duration_ms`` per frame, ``loop`` (0 = forever) and
  ``bounce`` (play forwards then backwards, without repeating the end frames). Pillow merges identical
  consecutive frames into one longer frame, so a GIF of repeated frames holds fewer frames than given.
* MP4: H.264 through an ``ffmpeg`` executable (``$PATH``, or the one the ``imageio-ffmpeg`` package ships).
  Without one, :class:`ExportError` says how to get one. Sides are padded to even sizes (yuv420p needs them).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "EXPORT_FORMATS",
    "ExportError",
    "export_frames",
    "ffmpeg_executable",
    "grid",
    "save_gif",
    "save_mp4",
    "save_png",
    "save_png_grid",
    "strip_frames",
    "to_frames",
    "upscale",
]

EXPORT_FORMATS: tuple[str, ...] = (".png", ".gif", ".mp4")
DEFAULT_MIN_SIZE = 112


class ExportError(RuntimeError):
    """Frames could not be exported. ``str(err)`` is a user-facing message."""


# ------------------------------------------------------------------ frames
def to_frames(images: Any) -> np.ndarray:
    """A model's output (N, C, H, W) floats in [0, 1] (numpy or torch) -> uint8 (N, H, W, C)."""
    if hasattr(images, "detach"):
        images = images.detach().float().cpu().numpy()
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise ExportError(f"expected images (N, C, H, W) with C = 1, 3 or 4, got shape {x.shape}")
    if x.dtype != np.uint8:
        x = np.clip(np.nan_to_num(x.astype(np.float32), nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _check_frames(frames: ArrayLike) -> np.ndarray:
    x = np.asarray(frames)
    if x.dtype != np.uint8:
        raise ExportError(f"frames must be uint8 (0..255), got {x.dtype}; convert model output with to_frames()")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise ExportError(f"frames must be (N, H, W) or (N, H, W, C) with C = 1, 3 or 4, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise ExportError(f"there are no frames to export (shape {x.shape})")
    return x


def upscale(frames: ArrayLike, min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
    """Nearest-neighbour enlargement of frames (N, H, W[, C]) by the smallest whole factor that makes the
    smaller side at least ``min_size``; frames already large enough are returned unchanged."""
    x = np.asarray(frames)
    if x.ndim not in (3, 4):
        raise ExportError(f"frames must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise ExportError(f"min_size must be a non-negative integer, got {min_size!r}")
    factor = max(1, math.ceil(min_size / max(1, min(x.shape[1], x.shape[2]))))
    if factor == 1:
        return x
    return np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)


def grid(frames: ArrayLike, nrow: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile frames into one image (H', W', C): ``nrow`` images per row (default: near-square), ``padding``
    pixels of ``pad_value`` between and around them."""
    x = _check_frames(frames)
    n, h, w, c = x.shape
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ExportError(f"nrow must be a positive integer, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ExportError(f"padding must be a non-negative integer, got {padding!r}")
    if not 0 <= pad_value <= 255:
        raise ExportError(f"pad_value must be in 0..255, got {pad_value!r}")
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    out = np.full((rows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        out[top : top + h, left : left + w] = x[i]
    return out


def _pil(image: np.ndarray):
    from PIL import Image

    # No mode argument (deprecated in Pillow 11.3): a 2-D uint8 array is "L", (H, W, 3) "RGB", (H, W, 4) "RGBA".
    return Image.fromarray(np.ascontiguousarray(image[..., 0] if image.shape[-1] == 1 else image))


def _target(path: str | os.PathLike[str], suffix: str) -> Path:
    p = Path(path)
    if p.suffix.lower() != suffix:
        raise ExportError(f"{p.name}: expected a file name ending in {suffix}")
    if p.exists() and p.is_dir():
        raise ExportError(f"{p}: is a folder")
    return p


def _atomic(path: Path, write) -> Path:
    from .checkpoint import atomic_write

    try:
        return atomic_write(path, write)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc


# ------------------------------------------------------------------ writers
def save_png(path: str | os.PathLike[str], image: ArrayLike, *, min_size: int = DEFAULT_MIN_SIZE) -> Path:
    """One uint8 image (H, W[, C]) as PNG, enlarged to ``min_size`` as in :func:`upscale`."""
    img = np.asarray(image)
    frames = _check_frames(img[None])
    frames = upscale(frames, min_size)
    target = _target(path, ".png")
    im = _pil(frames[0])
    return _atomic(target, lambda tmp: im.save(tmp, format="PNG"))


def save_png_grid(path: str | os.PathLike[str], frames: ArrayLike, *, nrow: int | None = None, padding: int = 2,
                  pad_value: int = 255, min_size: int = DEFAULT_MIN_SIZE) -> Path:
    """Frames tiled by :func:`grid` (each enlarged first, so padding stays thin) as one PNG."""
    x = upscale(_check_frames(frames), min_size)
    target = _target(path, ".png")
    im = _pil(grid(x, nrow=nrow, padding=padding, pad_value=pad_value))
    return _atomic(target, lambda tmp: im.save(tmp, format="PNG"))


def _bounced(x: np.ndarray) -> np.ndarray:
    # 0 1 2 3 -> 0 1 2 3 2 1: looping then never shows an end frame twice in a row.
    return np.concatenate([x, x[-2:0:-1]]) if len(x) > 2 else x


def save_gif(path: str | os.PathLike[str], frames: ArrayLike, *, duration_ms: int = 100, loop: int = 0,
             bounce: bool = False, min_size: int = DEFAULT_MIN_SIZE) -> Path:
    """Frames as an animated GIF; see the module docstring for ``bounce`` and merged identical frames."""
    x = _check_frames(frames)
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, (int, np.integer)) or duration_ms < 10:
        # GIF stores hundredths of a second and browsers slow anything below 20 ms down to 100 ms.
        raise ExportError(f"duration_ms must be an integer of at least 10, got {duration_ms!r}")
    if isinstance(loop, bool) or not isinstance(loop, (int, np.integer)) or loop < 0:
        raise ExportError(f"loop must be 0 (forever) or a positive count, got {loop!r}")
    if x.shape[-1] == 4:
        x = x[..., :3]  # GIF transparency is one palette entry; drop alpha rather than dither it
    x = upscale(x, min_size)
    if bounce:
        x = _bounced(x)
    images = [_pil(f) for f in x]
    if images[0].mode == "L":
        images = [im.convert("P") for im in images]
    target = _target(path, ".gif")

    def write(tmp: str) -> None:
        kwargs: dict[str, Any] = {"format": "GIF", "duration": int(duration_ms), "loop": int(loop)}
        if len(images) > 1:
            kwargs.update(save_all=True, append_images=images[1:])
        images[0].save(tmp, **kwargs)

    return _atomic(target, write)


def ffmpeg_executable() -> str | None:
    """Path of an ffmpeg executable: ``$PATH`` first, then the one bundled with imageio-ffmpeg; None if none."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found]

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        return exe if exe and os.path.isfile(exe) else None
    except Exception:  # not installed, or installed without its binary
        return None


MP4_HELP = ("MP4 export needs ffmpeg: install it (Debian/Ubuntu: sudo apt install ffmpeg; macOS: brew install "
            "ffmpeg; Windows: winget install ffmpeg) or `pip install imageio-ffmpeg`, or export a .gif instead")


def save_mp4(path: str | os.PathLike[str], frames: ArrayLike, *, fps: float = 10.0, bounce: bool = False,
             min_size: int = DEFAULT_MIN_SIZE, ffmpeg: str | None = None, crf: int = 18) -> Path:
    """Frames as an H.264 MP4 (yuv420p, plays everywhere) through ffmpeg; ExportError without one."""
    x = _check_frames(frames)
    exe = ffmpeg or ffmpeg_executable()
    if not exe:
        raise ExportError(MP4_HELP)
    if not (isinstance(fps, (int, float)) and 0 < fps <= 240):
        raise ExportError(f"fps must be a number in (0, 240], got {fps!r}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 4:
        x = x[..., :3]
    x = upscale(x, min_size)
    if bounce:
        x = _bounced(x)
    # yuv420p subsamples chroma 2x2, so both sides must be even: pad by repeating the last row / column.
    x = np.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0)), mode="edge")
    n, h, w, _ = x.shape
    target = _target(path, ".mp4")

    def write(tmp: str) -> None:
        cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", f"{fps:g}", "-i", "-", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf),
               "-movflags", "+faststart", "-f", "mp4", tmp]
        try:
            proc = subprocess.run(cmd, input=np.ascontiguousarray(x).tobytes(), capture_output=True, timeout=600)
        except OSError as exc:
            raise ExportError(f"cannot run {exe}: {exc.strerror or exc}. {MP4_HELP}") from exc
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise ExportError(f"ffmpeg failed ({msg[-1] if msg else f'exit code {proc.returncode}'})")

    return _atomic(target, write)


def export_frames(path: str | os.PathLike[str], frames: ArrayLike, *, nrow: int | None = None,
                  duration_ms: int = 100, loop: int = 0, bounce: bool = False, padding: int = 2,
                  min_size: int = DEFAULT_MIN_SIZE) -> Path:
    """Pick the writer from the file name: .png (a grid of all frames), .gif, .mp4 (fps from duration_ms)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return save_png_grid(path, frames, nrow=nrow, padding=padding, min_size=min_size)
    if suffix == ".gif":
        return save_gif(path, frames, duration_ms=duration_ms, loop=loop, bounce=bounce, min_size=min_size)
    if suffix == ".mp4":
        return save_mp4(path, frames, fps=1000.0 / duration_ms, bounce=bounce, min_size=min_size)
    raise ExportError(f"{Path(path).name}: unknown format {suffix or '(no extension)'!r}; "
                      f"use one of {', '.join(EXPORT_FORMATS)}")


def strip_frames(rows: Sequence[np.ndarray] | np.ndarray, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """(S, R, H, W[, C]) -> (S, H', W', C): frame s shows the R images of step s side by side.

    For animating a traversal grid (rows = starting points, S = steps) as one animation.
    """
    x = np.asarray(rows)
    if x.ndim not in (4, 5):
        raise ExportError(f"expected (steps, rows, H, W[, C]) frames, got shape {x.shape}")
    return np.stack([grid(x[s], nrow=x.shape[1], padding=padding, pad_value=pad_value) for s in range(len(x))])
