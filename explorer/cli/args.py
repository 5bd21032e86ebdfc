"""Argument types and helpers shared by every command: one definition each, public names.

Every command module imports from here (never from another command module), and raises :class:`CLIError` for
anything the user should read: ``explorer.cli.main`` prints it as one line on stderr and exits 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

EXIT_ERROR = 1
EXIT_USAGE = 2


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def float_(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def index_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated indices, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated indices >= 0, got {text!r}")
    return values


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clean line, no usage dump
        raise CLIError(f"{self.prog}: {message}")


def load_models(paths: Sequence[str], device: str) -> list[Any]:
    """Load checkpoints (all with the same image shape) or raise :class:`CLIError` naming the file."""
    from explorer.core import checkpoint

    models = []
    for path in paths:
        try:
            models.append(checkpoint.load(path, device=device))
        except checkpoint.CheckpointError as exc:
            raise CLIError(str(exc)) from exc
        except (RuntimeError, ValueError, AssertionError, MemoryError) as exc:
            raise CLIError(load_failure(path, device, exc)) from exc
    first = models[0]
    for path, model in zip(paths[1:], models[1:]):
        if tuple(model.image_shape) != tuple(first.image_shape):
            raise CLIError(f"{paths[0]} takes images of shape {list(first.image_shape)} but {path} takes "
                           f"{list(model.image_shape)}: compare models trained on the same data")
    return models


def load_failure(path: str, device: str, exc: BaseException) -> str:
    """The one line for a load that failed outside the file's own checks: memory is not the device's fault."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if isinstance(exc, MemoryError) or "out of memory" in low or "alloc" in low:
        return f"{path}: not enough memory to load the model on {device!r} ({text})"
    return f"cannot use device {device!r}: {text}"


def load_model(path: str, device: str) -> Any:
    return load_models([path], device)[0]


def model_data(dataset: str | None, model: Any, *, count: int | None = None, required: bool = True) -> Any:
    """The data set ``dataset`` (default: the one the model was trained on) at the model's image shape."""
    from explorer.core.data import DataSourceError, load_dataset

    name = dataset or (getattr(model, "metadata", {}) or {}).get("dataset")
    if not name:
        if not required:
            return None
        raise CLIError("the checkpoint does not say which data set it was trained on; pass --dataset NAME")
    c, h, w = model.image_shape
    try:
        data = load_dataset(name, image_size=h if h == w else None, channels=c, count=count)
    except DataSourceError as exc:
        raise CLIError(str(exc)) from exc
    if data.image_shape != model.image_shape:
        raise CLIError(f"data set {name!r} has images of shape {list(data.image_shape)} but the model expects "
                       f"{list(model.image_shape)}")
    return data
