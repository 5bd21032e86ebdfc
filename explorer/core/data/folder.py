"""A plain folder of images: each subfolder is a label, files directly in the root are "unlabelled".

Images are centre-cropped to a square and resized (default 64x64). Every 10th file (in sorted order, so the
split is stratified by label and stable across runs and machines) goes to the test split. Within each split
the rows are in a fixed pseudo-random order, so "the first N" (``limit_train``, ``count``) is a fair sample of
all labels rather than the first folder.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import ProgressFn
from .base import DataSourceError, ImageData
from .cache import DecodeCache, decode_cached
from .transforms import CropFn, center_square_box, convert_channels
from .walk import list_folder

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
UNLABELLED = "unlabelled"
DEFAULT_SIZE = 64
TEST_EVERY = 10
_ORDER_SEED = 0x5EED  # fixed: the split and order are properties of the folder, not of a run's seed


def list_image_files(root: str | os.PathLike[str], *, cancel: threading.Event | None = None,
                     progress: ProgressFn | None = None, strings: bool = False
                     ) -> tuple[list[Any], np.ndarray, list[str]]:
    """All images under root, sorted by label then path: (files, label per file, label names); the files
    are ``Path`` objects, or ``str`` paths with ``strings=True`` (cheaper to build and hash for 200k files).

    Bounded and cancellable (see ``walk.py``): caps on files, folders and depth, and no file counted twice
    (a label folder that is a symlink to the root is skipped)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataSourceError(
            f"image folder {root} {what}. Pass folder:PATH with a folder of images "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))}); each subfolder becomes a label."
        )
    listing = list_folder(root, IMAGE_EXTENSIONS, cancel=cancel, progress=progress, strings=strings)
    groups: dict[str, list[Any]] = dict(listing.groups)
    if listing.loose:
        groups.setdefault(UNLABELLED, []).extend(listing.loose)
    if not groups:
        raise DataSourceError(
            f"no images found in {root} or its subfolders (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}). "
            "Put images in the folder, or in one subfolder per label."
        )
    names = list(groups)
    files = [f for name in names for f in groups[name]]
    labels = np.concatenate([np.full(len(groups[name]), i, dtype=np.int64) for i, name in enumerate(names)])
    return files, labels, names


def split_counts(n_train: int, n_test: int, count: int | None, limit_train: int | None,
                 limit_test: int | None) -> tuple[int, int]:
    """How many train / test rows to keep: `count` caps the total in proportion, the limits cap each split."""
    if count is not None and count < n_train + n_test:
        k_train = min(n_train, round(count * n_train / max(n_train + n_test, 1)))
        n_train, n_test = k_train, min(n_test, count - k_train)
    if limit_train is not None:
        n_train = min(n_train, limit_train)
    if limit_test is not None:
        n_test = min(n_test, limit_test)
    return n_train, n_test


def _describe_failures(failures: list[tuple[Path, str]], shown: int = 5) -> str:
    lines = [f"{path}: {why}" for path, why in failures[:shown]]
    if len(failures) > shown:
        lines.append(f"... and {len(failures) - shown} more")
    return "; ".join(lines)


def load_files(files: Sequence[str | Path], labels: np.ndarray, test_mask: np.ndarray, *, name: str, label_names: list[str],
               size: int, channels: int | None, count: int | None, limit_train: int | None,
               limit_test: int | None, source: str, crop: CropFn = center_square_box,
               attributes: np.ndarray | None = None, attribute_names: list[str] | None = None,
               progress: ProgressFn | None = None, cancel: threading.Event | None = None,
               cache: DecodeCache | bool | None = True) -> ImageData:
    """Decode the chosen rows of a file list into an ImageData (train rows first).

    Shared by the folder and CelebA sources. Unreadable files are skipped and listed in ``notes``; only if
    none can be read is it an error. Decoded pixels go through the on-disk decode cache (``cache.py``): the
    first open decodes (``progress``, ``cancel``), later ones memory-map the result.
    """
    rng = np.random.default_rng(_ORDER_SEED)
    train_idx = np.flatnonzero(~test_mask)
    test_idx = np.flatnonzero(test_mask)
    train_idx, test_idx = train_idx[rng.permutation(len(train_idx))], test_idx[rng.permutation(len(test_idx))]
    k_train, k_test = split_counts(len(train_idx), len(test_idx), count, limit_train, limit_test)
    rows = np.concatenate([train_idx[:k_train], test_idx[:k_test]])
    decoded = decode_cached([files[i] for i in rows], size, crop, source=source, channels=channels,
                            extra=[int(k_train), int(k_test)], progress=progress, cancel=cancel, cache=cache)
    if not decoded.ok.any():
        raise DataSourceError(
            f"none of the {len(rows)} images in {source} could be read: {_describe_failures(decoded.failures)}"
        )
    notes = [decoded.note] if decoded.note else []
    if decoded.failures:
        notes.append(f"skipped {len(decoded.failures)} unreadable image(s) of {len(rows)}: "
                     f"{_describe_failures(decoded.failures)}")
        log.warning("%s: %s", source, notes[-1])
    kept = rows[decoded.ok]
    n_train = int(decoded.ok[:k_train].sum())
    if channels is None:
        channels = 1 if decoded.all_gray else 3
    return ImageData(
        name=name,
        images=np.ascontiguousarray(convert_channels(decoded.images, channels)),
        labels=labels[kept],
        label_names=label_names,
        n_train=n_train,
        attributes=None if attributes is None else attributes[kept],
        attribute_names=list(attribute_names or []),
        source=source,
        notes=notes,
    )


def load_folder(path: str | os.PathLike[str], *, image_size: int | None = None, channels: int | None = None,
                count: int | None = None, limit_train: int | None = None, limit_test: int | None = None,
                name: str | None = None, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> ImageData:
    """Load an image folder. channels: default 1 if every image is grayscale, else 3. The first open decodes
    into the on-disk cache (``progress``, ``cancel``); later opens of the unchanged folder memory-map it."""
    root = Path(path).expanduser()
    files, labels, names = list_image_files(root, cancel=cancel, progress=progress, strings=True)
    test_mask = (np.arange(len(files)) % TEST_EVERY) == TEST_EVERY - 1
    return load_files(
        files, labels, test_mask, name=name or f"folder:{root}", label_names=names,
        size=image_size or DEFAULT_SIZE, channels=channels, count=count, limit_train=limit_train,
        limit_test=limit_test, source=str(root), progress=progress, cancel=cancel,
    )
