"""How much a data set named by a file would load, before loading it.

A checkpoint (or a session) names its data set, and the window loads it after opening: ``"dataset":
"folder:/"`` would walk the whole file system, ``swap_pair.count = 10**7`` would draw ten million faces. Before
loading data named by a file, the window asks :func:`assess_dataset` and shows ``question`` (Yes / No) when
``needs_confirmation`` is set; the load itself then runs with a cancel event (``load_dataset(..., cancel=)``).
The assessment is cheap and bounded: built-in sizes are known, folders are counted with small caps
(:mod:`.walk`), a CelebA folder by the first line of its attribute list.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .base import DataSourceError

# Loaded without asking: at most this many images and bytes in memory (uint8), from inside the file's folder
# or from a built-in source. MNIST (70k, 55 MB), the faces demo (12k at 64x64, 147 MB) stay below.
ASK_ABOVE_IMAGES = 200_000
ASK_ABOVE_BYTES = 512 * 1024 * 1024
# Counting a folder for the question stops here (the answer is then "more than ...").
COUNT_FILES = 250_000
COUNT_FOLDERS = 5_000  # ~1-3 s on a slow disk: run it off the GUI thread

_NATIVE: dict[str, tuple[int, tuple[int, int, int]]] = {  # kind -> (images, native shape)
    "mnist": (70_000, (1, 28, 28)),
    "fashion-mnist": (70_000, (1, 28, 28)),
    "digits": (1797, (1, 8, 8)),
}


@dataclass(frozen=True)
class DataAssessment:
    """What loading a named data set would mean. ``question`` is empty when nothing needs asking."""

    name: str  # as named by the file
    kind: str  # "mnist", "folder", "faces", ... ("" when the name is not a data set)
    path: Path | None  # the folder it reads, for names with a path
    images: int  # images it would load (a lower bound when not ``bounded``)
    bytes: int  # memory for them as uint8 (a lower bound when not ``bounded``)
    bounded: bool  # False: counting stopped at a cap, there are more
    outside: bool  # the folder lies outside the folder of the file that names it
    large: bool  # above ASK_ABOVE_IMAGES / ASK_ABOVE_BYTES
    needs_confirmation: bool
    question: str
    error: str = ""  # the name cannot be loaded at all (unknown, missing folder): shown instead of loading


def _size_text(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MB"
    return f"{max(n, 0) / 2**10:.0f} KB"


def _celeba_count(root: Path) -> int | None:
    from .celeba import _ATTR_FILES

    for rel in _ATTR_FILES:
        p = root / rel
        if p.is_file():
            try:
                from ..bounded import open_regular

                with open_regular(p) as fh:
                    first = fh.readline(64).decode("utf-8", "replace").strip()
                    if rel.endswith(".csv"):  # one line per image after the header: count lines, bounded
                        n = 0
                        for _ in fh:
                            n += 1
                            if n > COUNT_FILES:
                                return None
                        return n
            except (OSError, ValueError):
                return None
            return int(first) if first.isdigit() else None
    return None


def assess_dataset(dataset: str, *, source_file: str | os.PathLike[str] | None = None,
                   image_shape: tuple[int, int, int] | list[int] | None = None, count: int | None = None,
                   cancel: threading.Event | None = None) -> DataAssessment:
    """Assess ``dataset`` (a name as in a checkpoint's metadata) for the file ``source_file`` that names it.

    image_shape: the model's (C, H, W), i.e. the size images are loaded at (default: the source's own);
    count: the count the file asks for (a face-style pair's ``swap_pair.count``, a CLI ``--count``).
    """
    from . import parse_dataset_name

    name = str(dataset)
    try:
        kind, path = parse_dataset_name(name)
    except DataSourceError as exc:
        return DataAssessment(name, "", None, 0, 0, True, False, False, False, "", error=str(exc))
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        return DataAssessment(name, kind, path, 0, 0, True, False, False, False, "",
                              error=f"count must be a positive integer, got {count!r}")
    bounded = True
    if kind in ("faces", "faces-style-a", "faces-style-b"):
        from .face_styles import FACE_STYLE_COUNT, FACE_STYLE_SIZE
        from .faces import DEFAULT_COUNT, DEFAULT_SIZE

        default = (DEFAULT_COUNT, DEFAULT_SIZE) if kind == "faces" else (FACE_STYLE_COUNT, FACE_STYLE_SIZE)
        n = count or default[0]
        native: tuple[int, int, int] = (3, default[1], default[1])
    elif kind in _NATIVE and path is None:
        n, native = _NATIVE[kind]
        n = min(n, count) if count else n
    elif kind == "celeba" and path is not None:
        declared = _celeba_count(path)
        n, bounded = (declared, True) if declared is not None else (COUNT_FILES, False)
        n = min(n, count) if count else n
        native = (3, 64, 64)
    elif path is not None:
        from .folder import IMAGE_EXTENSIONS
        from .walk import list_folder

        if not path.is_dir():
            return DataAssessment(name, kind, path, 0, 0, True, False, False, False, "",
                                  error=f"{kind} folder {path} does not exist")
        listing = list_folder(path, IMAGE_EXTENSIONS, max_files=COUNT_FILES, max_folders=COUNT_FOLDERS,
                              cancel=cancel, stop_at_cap=True)
        n = listing.count
        bounded = not any(s.startswith("listing stopped") for s in listing.skipped)
        if count and n >= count:
            n, bounded = count, True
        native = (1, 28, 28) if kind in _NATIVE else (3, 64, 64)
    else:
        n, native = 0, (1, 1, 1)
    shape = tuple(image_shape) if image_shape is not None else native
    nbytes = n * math.prod(shape)
    outside = False
    if path is not None and source_file is not None:
        home = Path(os.path.realpath(Path(source_file).expanduser().absolute().parent))
        outside = not Path(os.path.realpath(path)).is_relative_to(home)
    large = (not bounded) or n > ASK_ABOVE_IMAGES or nbytes > ASK_ABOVE_BYTES
    question = ""
    if large or outside:
        who = Path(source_file).name if source_file is not None else "This file"
        where = f" from {path}" if path is not None else ""
        amount = (f"more than {n:,} images (counting stopped there; at least {_size_text(nbytes)} in memory)"
                  if not bounded else f"{n:,} images (about {_size_text(nbytes)} in memory)")
        parts = [f"{who} names the data set {name!r}: loading it reads {amount}{where}."]
        if outside:
            parts.append(f"That folder lies outside the folder of {who} "
                         f"({Path(source_file).expanduser().absolute().parent}).")
        if large:
            parts.append("That can take long and use much memory (you can cancel it).")
        parts.append("Load it?")
        question = " ".join(parts)
    return DataAssessment(name, kind, path, n, nbytes, bounded, outside, large, bool(question), question)


def assess_checkpoint_data(checkpoint_path: str | os.PathLike[str], metadata: dict,
                           image_shape: tuple[int, int, int] | list[int] | None = None,
                           cancel: threading.Event | None = None) -> DataAssessment | None:
    """:func:`assess_dataset` for what a loaded checkpoint's metadata names (``dataset`` and a face-style
    pair's ``swap_pair.count``), or None when it names no data set."""
    name = (metadata or {}).get("dataset")
    if not name:
        return None
    pair = (metadata or {}).get("swap_pair") or {}
    count = pair.get("count") if isinstance(pair, dict) else None
    shape = image_shape if image_shape is not None else (metadata or {}).get("image_shape")
    return assess_dataset(str(name), source_file=checkpoint_path, image_shape=shape, count=count, cancel=cancel)


__all__ = ["ASK_ABOVE_BYTES", "ASK_ABOVE_IMAGES", "DataAssessment", "assess_checkpoint_data", "assess_dataset"]
