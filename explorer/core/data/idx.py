"""IDX files (the MNIST / Fashion-MNIST format) and folders holding them.

An IDX file is a big-endian header -- two zero bytes, a type code, the number of dimensions, one uint32 per
dimension -- followed by the raw array. Files may be gzip-compressed (``.gz``). Folders come in a few layouts:
the original downloads (``train-images-idx3-ubyte.gz``, some mirrors spell it ``train-images.idx3-ubyte``),
torchvision's ``ROOT/raw/`` and ``ROOT/MNIST/raw/`` (``ROOT/FashionMNIST/raw/``), all of which we accept.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from .base import DataSourceError, ImageData

# IDX type code -> numpy dtype (multi-byte types are big-endian on disk).
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}

# The four files of a split, by role; each with the spellings seen in the wild.
_STEMS: dict[str, tuple[str, ...]] = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
# torchvision keeps the files under ROOT/<ClassName>/raw.
_SUBDIRS = ("", "raw", "MNIST/raw", "FashionMNIST/raw", "KMNIST/raw")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (plain or gzip); returns a native-endian array. Raises DataSourceError if malformed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataSourceError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataSourceError(f"{path} is not an IDX file (bad header {raw[:4].hex() or 'empty'})")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataSourceError(f"{path}: IDX header is truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataSourceError(
            f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds {len(raw) - header} "
            "bytes; the file is truncated or corrupt"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # writable, native order


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def _read_idx_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    # Decompressing Fashion-MNIST takes ~0.5 s; reloads in one process (GUI switching data sets, tests) are
    # free. The stamp in the key drops the entry when the file changes. Read-only: callers must copy.
    arr = read_idx(path)
    arr.flags.writeable = False
    return arr


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write an array as IDX; gzip when the name ends in .gz (or compress=True). Used by tests and exports."""
    path = Path(path)
    arr = np.asarray(array)
    code = _CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(arr, dtype=_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6)
    path.write_bytes(payload)
    return path


def _candidates(folder: Path, role: str) -> list[Path]:
    return [folder / sub / (stem + ext) for sub in _SUBDIRS for stem in _STEMS[role] for ext in ("", ".gz")]


def find_idx_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """The four IDX files of an MNIST-style folder, by role (train_images, ..., test_labels).

    Raises DataSourceError naming the folder, the places searched and the file names expected.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataSourceError(
            f"folder {folder} does not exist. {_layout_help(folder)}"
        )
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role in _STEMS:
        hit = next((p for p in _candidates(folder, role) if p.is_file()), None)
        if hit is None:
            missing.append(_STEMS[role][0] + "[.gz]")
        else:
            found[role] = hit
    if missing:
        where = ", ".join(str(folder / s) if s else str(folder) for s in _SUBDIRS)
        raise DataSourceError(
            f"missing {', '.join(missing)} in {folder} (looked in {where}). {_layout_help(folder)}"
        )
    return found


def _layout_help(folder: Path) -> str:
    return (
        f"Provide a folder with the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally .gz), directly in it or under "
        f"raw/ or MNIST/raw/ as torchvision writes them, e.g. {folder / 'raw'}."
    )


def load_idx_folder(folder: str | os.PathLike[str], *, name: str, label_names: list[str]) -> ImageData:
    """Load an MNIST-style IDX folder: train images first, then test; images become (N, 1, H, W) uint8."""
    files = find_idx_files(folder)
    arrays = {role: _read_idx_cached(str(path), *_stamp(path)) for role, path in files.items()}
    parts = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        where = f"{files[f'{split}_images']} / {files[f'{split}_labels']}"
        if images.ndim not in (3, 4) or images.dtype != np.uint8:
            raise DataSourceError(f"{where}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataSourceError(f"{where}: {len(images)} images but labels of shape {labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(label_names)):
            raise DataSourceError(
                f"{where}: labels range {labels.min()}..{labels.max()}, expected 0..{len(label_names) - 1}"
            )
        # IDX stores (N, H, W); a 4-D file is taken as (N, H, W, C) like the EMNIST-style variants.
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        parts.append((images, labels.astype(np.int64)))
    (tr_x, tr_y), (te_x, te_y) = parts
    if tr_x.shape[1:] != te_x.shape[1:]:
        raise DataSourceError(f"{folder}: train images {tr_x.shape[1:]} and test images {te_x.shape[1:]} differ")
    return ImageData(
        name=name,
        images=np.ascontiguousarray(np.concatenate([tr_x, te_x])),
        labels=np.concatenate([tr_y, te_y]),
        label_names=list(label_names),
        n_train=len(tr_x),
        source=str(Path(folder).expanduser()),
    )
