"""Helpers shared by the comparison modules: compatibility checks, splits, batching, eval mode, threads."""

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.base import ImageData
from ..models.base import LatentModel
from .columns import BCE_EPS, CompareError


# ====================================================================== helpers
def _name_of(model: LatentModel, fallback: str) -> str:
    path = getattr(model, "source_path", None)
    return Path(path).stem if path else fallback


def model_names(models: Sequence[LatentModel], names: Sequence[str] | None = None) -> list[str]:
    """Display names: the given ones, else checkpoint file stems, else ``family-latentdim``; made unique."""
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(models):
            raise CompareError(f"{len(names)} names given for {len(models)} models")
    else:
        names = [_name_of(m, f"{m.family}-{m.latent_dim}") for m in models]
    out: list[str] = []
    for n in names:
        base, k = n, 2
        while n in out:
            n, k = f"{base}-{k}", k + 1
        out.append(n)
    return out


def _dataset_kind(name: str | None) -> str | None:
    if not name:
        return None
    from ..data import DataSourceError, parse_dataset_name

    try:
        return parse_dataset_name(str(name))[0]
    except DataSourceError:
        return str(name).strip().lower()


def check_compatible(models: Sequence[LatentModel], data: ImageData, names: Sequence[str] | None = None) -> None:
    """CompareError unless every model takes ``data``'s images and none was trained on another data set.

    Data sets are compared by kind (``mnist`` and ``mnist:/some/idx`` count as the same); a model without a
    recorded data set is taken on trust. Latent sizes may differ (that is what rate–distortion compares).
    """
    if not models:
        raise CompareError("no models to compare")
    names = model_names(models, names)
    kind = _dataset_kind(data.name)
    for model, name in zip(models, names):
        if tuple(model.image_shape) != tuple(data.image_shape):
            raise CompareError(
                f"{name} expects images of shape {list(model.image_shape)} (C, H, W) but data set {data.name!r} "
                f"has {list(data.image_shape)}: compare models trained on the same data"
            )
        declared = (getattr(model, "metadata", None) or {}).get("dataset")
        if declared and kind and _dataset_kind(declared) != kind:
            raise CompareError(
                f"{name} was trained on {declared!r}, not on {data.name!r}: compare models of the same data set"
            )


def _check_model_data(model: LatentModel, data: ImageData) -> None:
    if tuple(model.image_shape) != tuple(data.image_shape):
        raise CompareError(
            f"the model expects images of shape {list(model.image_shape)} (C, H, W) but data set {data.name!r} "
            f"has {list(data.image_shape)}"
        )


def _subset_rows(n: int, max_items: int | None, seed: int) -> np.ndarray:
    """All rows, or a seeded random subset of ``max_items`` (in order), so a limit still covers every class."""
    if max_items is None or max_items >= n:
        return np.arange(n)
    if max_items < 1:
        raise CompareError(f"max_items must be at least 1, got {max_items}")
    return np.sort(np.random.default_rng(seed).choice(n, int(max_items), replace=False))


def _split(data: ImageData, split: str) -> ImageData:
    if split == "test":
        if data.n_test == 0:
            raise CompareError(f"data set {data.name!r} has no test split; use split='train'")
        return data.test()
    if split == "train":
        if data.n_train == 0:
            raise CompareError(f"data set {data.name!r} has no training split")
        return data.train()
    raise CompareError(f"split must be 'test' or 'train', got {split!r}")


def _float_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class _EvalMode:
    """Eval mode for the duration (BatchNorm statistics and dropout must not move), then the old mode back."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        from ..latent import Cancelled

        raise Cancelled("comparison cancelled")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run small numeric work (the judge's training, the probe, kNN) on one thread, then restore the settings.

    Their matrices are tiny (batches of 128 x 784, codes of 10k x 16), where intra-op threads buy nothing and
    cost a lot when cores are shared: on a busy 2-core VM the judge trained 9x slower with 2 torch threads
    than with 1 (0.09 vs 0.01 s per step) and the probe's BLAS calls 7x slower. The thread counts are
    process-wide, so other threads (a GUI decode) also run on one thread for these few seconds.
    """
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def _bce_per_image(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    p = recon.double().clamp(BCE_EPS, 1.0 - BCE_EPS)
    xd = x.double()
    return -(xd * p.log() + (1.0 - xd) * (1.0 - p).log()).flatten(1).sum(1)
