"""Fashion-MNIST (Zalando, MIT licence): 70k 28x28 grayscale clothing images in IDX files.

Default folder: ``/usr/share/datasets/fashion-mnist``, where the Debian/Ubuntu package
``dataset-fashion-mnist`` installs ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``. The environment variable
``LATENT_EXPLORER_FASHION_MNIST`` overrides that folder; ``fashion-mnist:PATH`` names one explicitly (IDX
files directly in it or torchvision-style under ``raw/`` or ``FashionMNIST/raw/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import DataSourceError, ImageData
from .idx import load_idx_folder

LABEL_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "LATENT_EXPLORER_FASHION_MNIST"
DEBIAN_PACKAGE = "dataset-fashion-mnist"


def default_folder() -> tuple[Path, str]:
    """The folder to use when none is given, and where that choice came from (for messages)."""
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser(), f"the environment variable {ENV_VAR}"
    return DEBIAN_DIR, f"the Debian package {DEBIAN_PACKAGE}'s folder"


def _how_to() -> str:
    return (
        f"Install it with `sudo apt install {DEBIAN_PACKAGE}` (Debian/Ubuntu; it puts the files in {DEBIAN_DIR}), "
        f"or pass fashion-mnist:PATH with a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, or set {ENV_VAR}=PATH."
    )


def load_fashion_mnist(path: str | os.PathLike[str] | None = None, *, name: str = "fashion-mnist") -> ImageData:
    if path is not None:
        return load_idx_folder(path, name=name, label_names=LABEL_NAMES)
    folder, why = default_folder()
    if not folder.is_dir():
        raise DataSourceError(f"Fashion-MNIST not found: {folder} ({why}) does not exist. {_how_to()}")
    try:
        return load_idx_folder(folder, name=name, label_names=LABEL_NAMES)
    except DataSourceError as exc:
        raise DataSourceError(f"Fashion-MNIST in {folder} ({why}) is incomplete: {exc} {_how_to()}") from exc
