"""The in-memory dataset every source produces.

A source loads everything into one uint8 array (N, C, H, W): the trainer moves
it to the training device in one piece, which is far faster than a per-item
Dataset/DataLoader pipeline. The first ``n_train`` rows are the training split,
the rest the test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


class DataSourceError(RuntimeError):
    """A data source is missing or malformed. The message says where we looked and how to fix it."""


@dataclass
class ImageData:
    name: str
    images: np.ndarray  # uint8, (N, C, H, W)
    labels: np.ndarray  # int64, (N,); -1 where unknown
    label_names: list[str]
    n_train: int
    attributes: np.ndarray | None = None  # float32, (N, A): binary 0/1 or continuous in [0, 1]
    attribute_names: list[str] = field(default_factory=list)
    source: str = ""  # where it was loaded from, for messages and metadata
    notes: list[str] = field(default_factory=list)  # things a user should know about the load, e.g. skipped files

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {self.images.shape}")
        n = len(self.images)
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {self.labels.shape}")
        if not 0 <= self.n_train <= n:
            raise ValueError(f"n_train={self.n_train} out of range for {n} images")
        if self.attributes is not None:
            if self.attributes.shape != (n, len(self.attribute_names)):
                raise ValueError(
                    f"attributes must have shape ({n}, {len(self.attribute_names)}), got {self.attributes.shape}"
                )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def n_test(self) -> int:
        return len(self) - self.n_train

    def _take(self, idx: np.ndarray | slice, n_train: int) -> "ImageData":
        return replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            attributes=None if self.attributes is None else self.attributes[idx],
            n_train=n_train,
        )

    def train(self) -> "ImageData":
        return self._take(slice(0, self.n_train), self.n_train)

    def test(self) -> "ImageData":
        return self._take(slice(self.n_train, None), 0)

    def subset(self, indices: np.ndarray) -> "ImageData":
        """Rows by index; the result counts as a training split of its own."""
        idx = np.asarray(indices, dtype=np.int64)
        return self._take(idx, len(idx))

    def limit(self, n_train: int | None = None, n_test: int | None = None) -> "ImageData":
        """At most n_train training and n_test test rows (first rows of each split)."""
        tr = self.n_train if n_train is None else min(n_train, self.n_train)
        te = self.n_test if n_test is None else min(n_test, self.n_test)
        idx = np.concatenate([np.arange(tr), self.n_train + np.arange(te)])
        return self._take(idx, tr)

    def as_float(self, indices: np.ndarray | slice | None = None) -> np.ndarray:
        x = self.images if indices is None else self.images[indices]
        return x.astype(np.float32) / 255.0
