"""scikit-learn's bundled 8x8 handwritten digits (1797 images): tiny, for tests and quick demos."""

from __future__ import annotations

import functools

import numpy as np

from .base import DataSourceError, ImageData

LABEL_NAMES = [str(d) for d in range(10)]
N_TRAIN = 1500
_SPLIT_SEED = 0  # fixed, so the split is the same in every run whatever the training seed


@functools.cache
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits  # deferred: sklearn's import is slow
    except ImportError as exc:
        raise DataSourceError("the digits data set comes with scikit-learn: `pip install scikit-learn`") from exc
    bunch = load_digits()
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(bunch.target))
    # values are 0..16 ink counts; scale to the 0..255 range every other source uses
    images = np.rint(bunch.images[order] * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target[order].astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digits_data(*, name: str = "digits") -> ImageData:
    images, labels = _arrays()
    return ImageData(name=name, images=images.copy(), labels=labels.copy(), label_names=list(LABEL_NAMES),
                     n_train=N_TRAIN, source="sklearn.datasets.load_digits (bundled with scikit-learn)")
