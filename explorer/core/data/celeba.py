"""CelebA-format folders: aligned face photos plus 40 binary attributes per image.

Layouts accepted under ROOT (the official download, torchvision's and Kaggle's)::

    ROOT/img_align_celeba/*.jpg            (or img_align_celeba/img_align_celeba/, Img/img_align_celeba/,
                                            celeba/img_align_celeba/)
    ROOT/list_attr_celeba.txt              (or Anno/, celeba/; or Kaggle's list_attr_celeba.csv)
    ROOT/list_eval_partition.txt           optional (or Eval/, celeba/, .csv): 0 train, 1 validation, 2 test

``list_attr_celeba.txt``: line 1 the number of images, line 2 the attribute names, then one line per image:
``000001.jpg -1  1  1 -1 ...`` with -1/1 values. Attributes become 0/1 float32; the label is ``Smiling``.
Train split: partition 0; test split: partitions 1 and 2 (without a partition file, every 10th image).

Aligned CelebA images are 178x218 with the face in the middle: we keep the centred 140x140 square (the crop
most CelebA VAEs / GANs train on), scaled to the image's actual size, then resize (default 64x64).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..progress import ProgressFn
from .base import DataSourceError, ImageData
from .folder import TEST_EVERY, load_files

DEFAULT_SIZE = 64
LABEL_ATTRIBUTE = "Smiling"
LABEL_NAMES = ["not smiling", "smiling"]
_CROP_FRACTION = 140 / 178  # of the width, centred

_IMAGE_DIRS = ("img_align_celeba/img_align_celeba", "img_align_celeba", "Img/img_align_celeba",
               "celeba/img_align_celeba")
_ATTR_FILES = ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt", "celeba/list_attr_celeba.txt",
               "list_attr_celeba.csv")
_PARTITION_FILES = ("list_eval_partition.txt", "Eval/list_eval_partition.txt", "celeba/list_eval_partition.txt",
                    "list_eval_partition.csv")
_HELP = ("A CelebA folder holds img_align_celeba/ (the aligned .jpg files) and list_attr_celeba.txt "
         "(line 1: image count, line 2: the attribute names, then 'filename v1 ... vN' with -1/1 values), "
         "optionally list_eval_partition.txt.")


def celeba_box(w: int, h: int) -> tuple[float, float, float, float]:
    """The centred square of side 140/178 of the width (140x140 for the standard 178x218 images)."""
    side = min(w * _CROP_FRACTION, h)
    return (w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2


def _first(root: Path, options: tuple[str, ...], want_dir: bool) -> Path | None:
    for rel in options:
        p = root / rel
        if (p.is_dir() if want_dir else p.is_file()):
            return p
    return None


def _rows(path: Path) -> tuple[list[str], list[list[str]], int]:
    """Split a .txt (whitespace) or .csv attribute/partition file into header and rows; returns the first
    data line's 1-based line number for messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataSourceError(f"cannot read {path}: {exc}") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if path.suffix.lower() == ".csv":
        split = [line.split(",") for line in lines]
        return (split[0] if split else []), split[1:], 2
    return [], [line.split() for line in lines], 1


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(file names, attribute names, (N, A) float32 0/1) from list_attr_celeba.txt or .csv; strict checks."""
    header, rows, first_line = _rows(path)
    if path.suffix.lower() == ".csv":
        names = [h.strip() for h in header[1:]]
    else:
        if len(rows) < 2:
            raise DataSourceError(f"{path} is too short: expected the image count, the attribute names and rows. "
                                  + _HELP)
        head = rows[0]
        if len(head) != 1 or not head[0].isdigit():
            raise DataSourceError(f"{path} line 1 should be the number of images, got {' '.join(head)[:80]!r}. "
                                  + _HELP)
        declared = int(head[0])
        names = rows[1]
        rows = rows[2:]
        first_line = 3
        if declared != len(rows):
            raise DataSourceError(
                f"{path} says {declared} images on line 1 but lists {len(rows)}; the file is truncated or "
                "edited. Fix line 1 or restore the file."
            )
    if not names:
        raise DataSourceError(f"{path} has no attribute names. " + _HELP)
    width = len(names) + 1
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataSourceError(
                f"{path} line {first_line + i}: expected a file name and {len(names)} values, got "
                f"{len(row)} fields"
            )
    try:
        values = np.array([row[1:] for row in rows], dtype=np.int8).reshape(len(rows), len(names))
    except (ValueError, OverflowError):
        values = None
    if values is None or not np.isin(values, (-1, 0, 1)).all():
        bad = next(i for i, row in enumerate(rows) if any(v.strip() not in ("-1", "0", "1") for v in row[1:]))
        raise DataSourceError(f"{path} line {first_line + bad}: attribute values must be -1 or 1 "
                              f"(got {' '.join(rows[bad][1:])[:80]!r})")
    return [row[0].strip() for row in rows], names, (values > 0).astype(np.float32)


def read_partition(path: Path, files: list[str]) -> np.ndarray:
    """Partition (0 train, 1 val, 2 test) per file in `files` from list_eval_partition.txt or .csv."""
    _, rows, first_line = _rows(path)
    table: dict[str, int] = {}
    for i, row in enumerate(rows):
        if len(row) != 2 or row[1].strip() not in ("0", "1", "2"):
            if i == 0 and path.suffix.lower() == ".csv":
                continue
            raise DataSourceError(f"{path} line {first_line + i}: expected 'filename 0|1|2', got {' '.join(row)!r}")
        table[row[0].strip()] = int(row[1])
    missing = [f for f in files if f not in table]
    if missing:
        raise DataSourceError(f"{path} has no partition for {len(missing)} listed image(s), e.g. {missing[0]}; "
                              "fix the file or remove it to split every 10th image off for testing")
    return np.array([table[f] for f in files], dtype=np.int64)


def load_celeba(path: str | os.PathLike[str], *, image_size: int | None = None, channels: int | None = None,
                count: int | None = None, limit_train: int | None = None, limit_test: int | None = None,
                name: str | None = None, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> ImageData:
    """Load a CelebA-format folder; `count` reads only the first N images listed. Decoded once into the
    on-disk cache (``progress``, ``cancel``), memory-mapped on later opens."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataSourceError(f"CelebA folder {root} does not exist. Pass celeba:PATH. " + _HELP)
    attr_file = _first(root, _ATTR_FILES, want_dir=False)
    if attr_file is None:
        raise DataSourceError(
            f"no attribute list in {root} (looked for {', '.join(_ATTR_FILES)}). " + _HELP
        )
    image_dir = _first(root, _IMAGE_DIRS, want_dir=True)
    if image_dir is None:
        raise DataSourceError(f"no image folder in {root} (looked for {', '.join(_IMAGE_DIRS)}). " + _HELP)
    files, attr_names, attrs = read_attributes(attr_file)
    if count is not None:
        files, attrs = files[:count], attrs[:count]
    part_file = _first(root, _PARTITION_FILES, want_dir=False)
    if part_file is not None:
        test_mask = read_partition(part_file, files) > 0
    else:
        test_mask = (np.arange(len(files)) % TEST_EVERY) == TEST_EVERY - 1

    # Only listed images that exist: a partial copy of CelebA is still usable (noted); none at all is an error.
    # str paths and one listing of the folder: 200k Path objects and is_file() calls cost seconds on every open.
    folder = os.fspath(image_dir)
    try:
        with os.scandir(folder) as it:
            listed = {e.name for e in it if e.is_file()}
    except OSError:
        listed = set()
    paths = [os.path.join(folder, f) for f in files]
    present = np.fromiter(((f in listed) if os.sep not in f and "/" not in f else os.path.isfile(p)
                           for f, p in zip(files, paths)), dtype=bool, count=len(paths))
    if not present.any():
        example = paths[0] if paths else image_dir
        raise DataSourceError(
            f"none of the {len(paths)} images listed in {attr_file} exist in {image_dir} (e.g. {example}). " + _HELP
        )
    if LABEL_ATTRIBUTE in attr_names:
        labels = attrs[:, attr_names.index(LABEL_ATTRIBUTE)].astype(np.int64)
        label_names = list(LABEL_NAMES)
    else:
        labels, label_names = np.full(len(files), -1, dtype=np.int64), []
    keep = np.flatnonzero(present)
    data = load_files(
        [paths[i] for i in keep], labels[keep], test_mask[keep], name=name or f"celeba:{root}",
        label_names=label_names, size=image_size or DEFAULT_SIZE, channels=channels or 3, count=None,
        limit_train=limit_train, limit_test=limit_test, source=str(root), crop=celeba_box,
        attributes=attrs[keep], attribute_names=attr_names, progress=progress, cancel=cancel,
    )
    if not present.all():
        data.notes.insert(0, f"{int((~present).sum())} of {len(paths)} listed images are missing from {image_dir} "
                             f"(e.g. {Path(paths[int(np.argmin(present))]).name}) and were skipped")
    return data
