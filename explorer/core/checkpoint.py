"""Single-file checkpoints: safetensors tensors + one JSON metadata document.

Loading never executes code from the file: tensors come through safetensors
and everything else is JSON. Every problem a user can hit while loading is
reported as :class:`CheckpointError` with a message that names it.

Layout of a checkpoint
----------------------
* tensors: the model's state dict under its own names, plus optional optimiser
  state under ``optimizer/<name>/<param index>/<key>`` (used to resume training;
  ignored when a model is only opened for exploring);
* metadata: ``{"latent_explorer": "<JSON>"}`` with keys ``format``,
  ``format_version``, ``family``, ``config``, ``image_shape``, ``value_range``,
  ``dataset``, ``label_names``, ``history``, ``software``, ``created``,
  ``optimizers`` (non-tensor optimiser state) and family extras.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from explorer import __version__

from .models.base import LatentModel
from .models.registry import build_model, get_family

FORMAT = "latent-explorer-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "latent_explorer"
OPTIMIZER_PREFIX = "optimizer/"


class CheckpointError(Exception):
    """A checkpoint could not be read, validated or written. ``str(err)`` is a user-facing message."""


# ---------------------------------------------------------------- writing
def atomic_write(path: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path`` so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _optimizer_tensors(optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        plain_state: dict[str, dict[str, Any]] = {}
        for idx, st in sd["state"].items():
            for key, val in st.items():
                if isinstance(val, torch.Tensor):
                    tensors[f"{OPTIMIZER_PREFIX}{name}/{idx}/{key}"] = val.detach().cpu().contiguous()
                else:
                    plain_state.setdefault(str(idx), {})[key] = val
        meta[name] = {"param_groups": sd["param_groups"], "plain_state": plain_state}
    return tensors, meta


def save(
    model: LatentModel,
    path: str | os.PathLike[str],
    *,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    **metadata: Any,
) -> Path:
    """Write ``model`` (and optionally its optimisers) to ``path`` atomically.

    Keyword metadata (``dataset``, ``label_names``, ``history``, ...) is merged
    over whatever the model already carries in ``model.metadata``.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    doc: dict[str, Any] = dict(getattr(model, "metadata", {}) or {})
    doc.update({k: v for k, v in metadata.items() if v is not None})
    doc.update(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "family": model.family,
            "config": model.config.to_dict(),
            "image_shape": list(model.image_shape),
            "latent_dim": model.latent_dim,
            "value_range": [0.0, 1.0],
            "software": {"name": "latent-explorer", "version": __version__, "torch": torch.__version__},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    doc.setdefault("dataset", None)
    doc.setdefault("label_names", [])
    doc.setdefault("history", {})
    doc["extra"] = model.extra_metadata()
    if optimizers:
        opt_tensors, opt_meta = _optimizer_tensors(optimizers)
        clash = set(opt_tensors) & set(state)
        if clash:
            raise CheckpointError(f"state dict keys clash with optimiser keys: {sorted(clash)[:3]}")
        state.update(opt_tensors)
        doc["optimizers"] = opt_meta
    else:
        doc.pop("optimizers", None)
    try:
        text = json.dumps(doc, allow_nan=False, default=_json_default)
    except ValueError as exc:
        raise CheckpointError(f"cannot write {Path(path).name}: metadata is not valid JSON ({exc})") from exc
    try:
        return atomic_write(path, lambda tmp: save_file(state, tmp, metadata={METADATA_KEY: text}))
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# ---------------------------------------------------------------- reading
def _open(path: Path):
    from safetensors import safe_open

    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if path.stat().st_size < 8:
        raise CheckpointError(f"{path.name}: file is empty or truncated ({path.stat().st_size} bytes)")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own error type for every malformed header
        hint = ""
        if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
            hint = " It looks like a PyTorch file: open it with the import command instead."
        raise CheckpointError(
            f"{path.name}: not a valid .safetensors file or truncated ({_short(exc)}).{hint}"
        ) from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _read_metadata(handle: Any, path: Path) -> dict[str, Any]:
    raw = handle.metadata() or {}
    if METADATA_KEY not in raw:
        raise CheckpointError(
            f"{path.name}: not a Latent Explorer checkpoint (no '{METADATA_KEY}' metadata). "
            "A plain state dict of one of our architectures can be loaded with load_state_dict_file(path, family, config)."
        )
    try:
        doc = json.loads(raw[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path.name}: metadata is not valid JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path.name}: metadata must be a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: unknown checkpoint format {doc.get('format')!r} (expected {FORMAT!r})")
    version = doc.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path.name}: format_version missing or not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path.name}: written by a newer Latent Explorer (format {version}, this version reads up to "
            f"{FORMAT_VERSION}); please update"
        )
    for key in ("family", "config"):
        if key not in doc:
            raise CheckpointError(f"{path.name}: metadata has no '{key}'")
    return doc


def inspect(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata document of a checkpoint, without building the model or reading weights."""
    path = Path(path)
    with _open(path) as handle:
        doc = _read_metadata(handle, path)
        doc["tensors"] = len([k for k in handle.keys() if not k.startswith(OPTIMIZER_PREFIX)])
        doc["has_optimizer_state"] = any(k.startswith(OPTIMIZER_PREFIX) for k in handle.keys())
    doc["path"] = str(path)
    doc["file_size"] = path.stat().st_size
    return doc


def _build(doc: dict[str, Any], name: str) -> LatentModel:
    family = doc["family"]
    try:
        cls = get_family(family)
    except KeyError as exc:
        raise CheckpointError(f"{name}: {exc.args[0]}") from None
    if not isinstance(doc["config"], dict):
        raise CheckpointError(f"{name}: config must be a JSON object")
    try:
        config = cls.config_cls.from_dict(doc["config"])
        model = build_model(family, config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: invalid {family} config: {exc}") from exc
    if list(model.image_shape) != list(doc.get("image_shape", model.image_shape)):
        raise CheckpointError(
            f"{name}: image_shape {doc.get('image_shape')} in metadata but the config builds {list(model.image_shape)}"
        )
    return model


def _check_and_load_state(model: LatentModel, tensors: dict[str, torch.Tensor], name: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        raise CheckpointError(
            f"{name}: weights are missing {len(missing)} tensor(s) the {model.family} config needs, e.g. {missing[0]!r}"
        )
    if unexpected:
        raise CheckpointError(
            f"{name}: weights have {len(unexpected)} tensor(s) the {model.family} config does not use, "
            f"e.g. {unexpected[0]!r}"
        )
    for key, ref in expected.items():
        got = tensors[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{name}: tensor {key!r} has shape {tuple(got.shape)} but the config "
                f"(latent_dim {model.latent_dim}, image_shape {list(model.image_shape)}) expects {tuple(ref.shape)}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise CheckpointError(f"{name}: tensor {key!r} contains NaN or infinite values")
        if got.dtype != ref.dtype:
            tensors[key] = got.to(ref.dtype)
    model.load_state_dict(tensors, strict=True)


def load(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    with_optimizer_state: bool = False,
) -> LatentModel:
    """Build and load a model from a checkpoint, in eval mode on ``device``.

    The returned model carries ``model.metadata`` (the JSON document) and
    ``model.source_path``. With ``with_optimizer_state`` it also carries
    ``model.optimizer_state`` for :func:`restore_optimizers`.
    """
    path = Path(path)
    name = path.name
    with _open(path) as handle:
        doc = _read_metadata(handle, path)
        model = _build(doc, name)
        tensors: dict[str, torch.Tensor] = {}
        opt_tensors: dict[str, torch.Tensor] = {}
        try:
            for key in handle.keys():
                if key.startswith(OPTIMIZER_PREFIX):
                    if with_optimizer_state:
                        opt_tensors[key] = handle.get_tensor(key)
                else:
                    tensors[key] = handle.get_tensor(key)
        except Exception as exc:
            raise CheckpointError(f"{name}: tensor data is corrupted or truncated ({_short(exc)})") from exc
    _check_and_load_state(model, tensors, name)
    model.metadata = {k: v for k, v in doc.items() if k != "optimizers"}
    model.source_path = str(path)
    if with_optimizer_state:
        model.optimizer_state = {"meta": doc.get("optimizers", {}), "tensors": opt_tensors}
    model.eval()
    return model.to(device)


def restore_optimizers(model: LatentModel, optimizers: dict[str, torch.optim.Optimizer]) -> bool:
    """Load optimiser state saved with the model (see ``load(with_optimizer_state=True)``). False if none."""
    saved = getattr(model, "optimizer_state", None)
    if not saved or not saved.get("meta"):
        return False
    for name, opt in optimizers.items():
        meta = saved["meta"].get(name)
        if meta is None:
            return False
        state: dict[int, dict[str, Any]] = {}
        prefix = f"{OPTIMIZER_PREFIX}{name}/"
        for key, val in saved["tensors"].items():
            if key.startswith(prefix):
                idx, field = key[len(prefix):].split("/", 1)
                state.setdefault(int(idx), {})[field] = val
        for idx, plain in meta.get("plain_state", {}).items():
            state.setdefault(int(idx), {}).update(plain)
        try:
            opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"saved optimiser state for {name!r} does not match the model: {exc}") from exc
    return True


def load_state_dict_file(
    path: str | os.PathLike[str],
    family: str,
    config: dict[str, Any],
    device: str | torch.device = "cpu",
) -> LatentModel:
    """Load a plain PyTorch state dict (``.pt``/``.pth``) for one of our own architectures.

    The user supplies the family and config; the file is read with
    ``torch.load(weights_only=True)`` so it cannot run code.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    try:
        cls = get_family(family)
        model = build_model(family, cls.config_cls.from_dict(config))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: invalid {family} config: {exc}") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path.name}: cannot read as a PyTorch state dict ({_short(exc)}); only plain tensors are accepted"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path.name}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    _check_and_load_state(model, dict(obj), path.name)
    model.metadata = {"family": family, "config": model.config.to_dict(), "imported_from": str(path)}
    model.source_path = str(path)
    model.eval()
    return model.to(device)


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: keep metadata writable when a metric is not finite."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None
