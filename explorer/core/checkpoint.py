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

import errno
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from explorer import __version__

from .bounded import BoundsError, load_json, safetensors_header_size
from .models.base import LatentModel
from .models.registry import build_model, get_family

FORMAT = "latent-explorer-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "latent_explorer"
OPTIMIZER_PREFIX = "optimizer/"


class CheckpointError(Exception):
    """A checkpoint could not be read, validated or written. ``str(err)`` is a user-facing message."""


# ---------------------------------------------------------------- writing
# Temp files of atomic_write: ".<name>.<host>-<pid>.<random>.tmp" beside the target. A writer killed with
# kill -9 leaves one behind; the next write of the same target (or clean_stale_temp_files) removes it.
_TMP_SUFFIX = ".tmp"
_LEGACY_STALE_S = 3600.0  # temp files without a pid (older versions, other hosts): stale after an hour
_OTHER_HOST_STALE_S = 24 * 3600.0
_HOST = "".join(ch for ch in (os.uname().nodename if hasattr(os, "uname") else "host") if ch.isalnum())[:16] or "host"


class WriteError(OSError):
    """A file could not be written (disk full, read-only, permissions). ``str(err)`` is one line for users."""

    def __init__(self, code: int, reason: str, line: str):
        super().__init__(code, reason)  # strerror: the reason alone, for callers that write "cannot write X: ..."
        self.line = line

    def __str__(self) -> str:
        return self.line


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _is_stale(tmp: Path, now: float) -> bool:
    parts = tmp.name[: -len(_TMP_SUFFIX)].rsplit(".", 2)
    try:
        age = now - tmp.stat().st_mtime
    except OSError:
        return False
    if len(parts) == 3 and "-" in parts[1]:
        host, _, pid = parts[1].rpartition("-")
        if pid.isdigit():
            if host == _HOST:
                return not _pid_alive(int(pid)) and pid != str(os.getpid())
            return age > _OTHER_HOST_STALE_S
    return age > _LEGACY_STALE_S


def clean_stale_temp_files(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove temp files that :func:`atomic_write` left behind when its process died (for ``name`` only, or
    every target in ``folder``). Files of writers still running are kept. Returns what was removed."""
    folder = Path(folder)
    pattern = f".{name}.*{_TMP_SUFFIX}" if name else f".*{_TMP_SUFFIX}"
    removed = []
    now = time.time()
    try:
        candidates = list(folder.glob(pattern))
    except OSError:
        return removed
    for tmp in candidates:
        if tmp.is_file() and not tmp.is_symlink() and _is_stale(tmp, now):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


_ERRNO_FROM_TEXT = re.compile(r"(?:code:\s*|os error |\[Errno\s*)(\d+)")


def _write_error(exc: BaseException, path: Path) -> WriteError | None:
    """One clear line for the ways a write fails because of the disk, from an OSError or from a serializer's
    own error that wraps one (safetensors: 'IoError(Os { code: 28, kind: StorageFull, ... })')."""
    code = exc.errno if isinstance(exc, OSError) else None
    text = str(exc)
    if code is None and ("os error" in text or "IoError" in text or "I/O error" in text):
        m = _ERRNO_FROM_TEXT.search(text)
        code = int(m.group(1)) if m else None
    if code is None:
        return None
    folder = path.parent
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        reason = ("no space left on" if code == errno.ENOSPC else "disk quota exceeded on") + f" the disk holding {folder}"
    elif code == errno.EROFS:
        reason = f"{folder} is on a read-only file system"
    elif code in (errno.EACCES, errno.EPERM):
        reason = f"no permission to write in {folder}"
    elif code == errno.EFBIG:
        reason = f"the file is larger than the file system (or a limit) allows in {folder}"
    else:
        reason = os.strerror(code)
    return WriteError(code, reason, f"{reason}: could not write {path.name}")


def atomic_write(path: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path`` so readers never see a partial file.

    Disk problems raise :class:`WriteError` (an ``OSError``) whose message is one line naming the folder
    ("no space left on the disk holding ..."), whatever the serializer's own error said.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temp_files(path.parent, path.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=_TMP_SUFFIX,
                                   dir=path.parent)
    except OSError as exc:
        raise (_write_error(exc, path) or exc) from None
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
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, Exception) and not isinstance(exc, WriteError):
            clear = _write_error(exc, path)
            if clear is not None:
                raise clear from None
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
    except WriteError as exc:
        raise CheckpointError(str(exc)) from None
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
# dtypes a state dict may hold (safetensors names): float parameters load from any float width, integer
# buffers (BatchNorm's num_batches_tracked) from any integer. float8 and the rest are refused by name.
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
_INT_DTYPES = {"I8", "U8", "I16", "I32", "I64"}


def _open(path: Path):
    from safetensors import safe_open

    hint = ""
    if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        hint = " It looks like a PyTorch file: open it with the import command instead."
    try:
        if not path.exists():
            raise CheckpointError(f"{path}: file not found")
        if path.is_dir():
            raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
        safetensors_header_size(path)  # a FIFO or device is refused here, before anything blocks on it
    except BoundsError as exc:
        raise CheckpointError(f"{path.name}: {exc}.{hint}") from None
    except OSError as exc:
        raise CheckpointError(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own error type for every malformed header
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
        doc = load_json(raw[METADATA_KEY])
    except BoundsError as exc:
        raise CheckpointError(f"{path.name}: {exc}") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path.name}: metadata must be a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: unknown checkpoint format {_clip(doc.get('format'))} "
                              f"(expected {FORMAT!r})")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path.name}: format_version missing or not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path.name}: written by a newer Latent Explorer (format {version}, this version reads up to "
            f"{FORMAT_VERSION}); please update"
        )
    for key in ("family", "config"):
        if key not in doc:
            raise CheckpointError(f"{path.name}: metadata has no '{key}'")
    _check_document(doc, path.name)
    return doc


def _clip(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_document(doc: dict[str, Any], name: str) -> None:
    """Every key the app acts on has the type it expects, so that nothing downstream (the model list, the
    trainer's resume, the data loader) meets a string where it wants a dict."""

    def bad(key: str, want: str) -> CheckpointError:
        return CheckpointError(f"{name}: metadata {key!r} must be {want}, got {_clip(doc_get(key))}")

    def doc_get(dotted: str) -> Any:
        value: Any = doc
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    if not isinstance(doc["family"], str):
        raise bad("family", "a family name (text)")
    if not isinstance(doc["config"], dict):
        raise bad("config", "a JSON object")
    shape = doc.get("image_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) and v > 0
                                                                                       for v in shape)):
        raise bad("image_shape", "three positive integers [C, H, W]")
    if "latent_dim" in doc and not (_is_int(doc["latent_dim"]) and doc["latent_dim"] > 0):
        raise bad("latent_dim", "a positive integer")
    if doc.get("dataset") is not None and not isinstance(doc["dataset"], str):
        raise bad("dataset", "a data set name (text) or null")
    for key in ("label_names", "attribute_names"):
        value = doc.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise bad(key, "a list of names (text)")
    vr = doc.get("value_range")
    if vr is not None and not (isinstance(vr, list) and len(vr) == 2 and all(_is_number(v) for v in vr)):
        raise bad("value_range", "two numbers [low, high]")
    for key in ("history", "extra", "software", "optimizers", "swap_pair"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise bad(key, "a JSON object")
    if doc.get("created") is not None and not isinstance(doc["created"], str):
        raise bad("created", "a date (text)")
    hist = doc.get("history") or {}
    for key in ("epochs", "steps"):
        if hist.get(key) is not None and not (_is_int(hist[key]) and hist[key] >= 0):
            raise bad(f"history.{key}", "an integer >= 0")
    if hist.get("per_epoch") is not None and not (isinstance(hist["per_epoch"], list)
                                                  and all(isinstance(e, dict) for e in hist["per_epoch"])):
        raise bad("history.per_epoch", "a list of JSON objects")
    for key in ("final_metrics", "train_config"):
        if hist.get(key) is not None and not isinstance(hist[key], dict):
            raise bad(f"history.{key}", "a JSON object")
    for metric, value in (hist.get("final_metrics") or {}).items():
        if value is not None and not _is_number(value) and not (isinstance(value, list)
                                                                 and all(_is_number(v) for v in value)):
            raise bad(f"history.final_metrics.{metric}", "a number, a list of numbers or null")
    pair = doc.get("swap_pair") or {}
    for key in ("count", "seed"):
        if pair.get(key) is not None and not (_is_int(pair[key]) and pair[key] >= 0):
            raise bad(f"swap_pair.{key}", "an integer >= 0")
    for opt_name, meta in (doc.get("optimizers") or {}).items():
        if not (isinstance(meta, dict) and isinstance(meta.get("param_groups"), list)
                and all(isinstance(g, dict) for g in meta["param_groups"])
                and isinstance(meta.get("plain_state", {}), dict)):
            raise bad(f"optimizers.{opt_name}", "an object with a list of param_groups")


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


def _config(doc: dict[str, Any], name: str) -> tuple[type[LatentModel], Any]:
    family = doc["family"]
    try:
        cls = get_family(family)
    except KeyError as exc:
        raise CheckpointError(f"{name}: {exc.args[0]}") from None
    try:
        config = cls.config_cls.from_dict(doc["config"])
    except CheckpointError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{name}: invalid {family} config: {exc}") from exc
    return cls, config


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate" in text
                                              or "cannot allocate" in text or "alloc" in text)


def _expected_state(cls: type[LatentModel], config: Any) -> dict[str, tuple[tuple[int, ...], torch.dtype]] | None:
    """The state dict's names, shapes and dtypes for this config, from a model built on the meta device
    (no memory for weights). None for families we do not build this way (users' own code: built once, after
    trust) or that cannot be built on meta."""
    if not cls.__module__.startswith("explorer.core.models.") or not getattr(cls, "meta_shape_check", True):
        return None
    try:
        with torch.device("meta"):
            ghost = cls(config)
        return {k: (tuple(v.shape), v.dtype) for k, v in ghost.state_dict().items()}
    except Exception:  # a family whose constructor needs real data: checked after building instead
        return None


def _file_layout(handle: Any, name: str) -> dict[str, tuple[tuple[int, ...], str]]:
    try:
        layout = {}
        for key in handle.keys():
            if key.startswith(OPTIMIZER_PREFIX):
                continue
            sl = handle.get_slice(key)
            layout[key] = (tuple(int(v) for v in sl.get_shape()), str(sl.get_dtype()))
        return layout
    except Exception as exc:
        raise CheckpointError(f"{name}: tensor index is corrupted ({_short(exc)})") from exc


def _describe(config: Any) -> str:
    bits = [f"latent_dim {getattr(config, 'latent_dim', '?')}", f"image_shape {list(getattr(config, 'image_shape', []))}"]
    for field in ("hidden", "base_channels"):
        if hasattr(config, field):
            value = getattr(config, field)
            bits.append(f"{field} {list(value) if isinstance(value, tuple) else value}")
    return ", ".join(bits)


def _check_layout(expected: dict[str, tuple[tuple[int, ...], Any]], layout: dict[str, tuple[tuple[int, ...], str]],
                  family: str, config: Any, name: str) -> None:
    """The file's tensors (names, shapes, dtypes from its header) against what the config builds: a config
    that lies about its size is caught here, before any memory is allocated for it."""
    missing = [k for k in expected if k not in layout]
    if missing:
        raise CheckpointError(
            f"{name}: weights are missing {len(missing)} tensor(s) the {family} config ({_describe(config)}) "
            f"needs, e.g. {missing[0]!r}"
        )
    unexpected = [k for k in layout if k not in expected]
    if unexpected:
        raise CheckpointError(
            f"{name}: weights have {len(unexpected)} tensor(s) the {family} config does not use, "
            f"e.g. {unexpected[0]!r}"
        )
    for key, (shape, dtype) in expected.items():
        got_shape, got_dtype = layout[key]
        _check_dtype(key, got_dtype, dtype, name)
        if got_shape != shape:
            raise CheckpointError(
                f"{name}: tensor {key!r} has shape {got_shape} but the config ({_describe(config)}) expects {shape}"
            )


def _check_dtype(key: str, got: str, want: torch.dtype, name: str) -> None:
    allowed = _FLOAT_DTYPES if want.is_floating_point else _INT_DTYPES
    if got not in allowed:
        kind = "floating-point" if want.is_floating_point else "integer"
        raise CheckpointError(f"{name}: tensor {key!r} has dtype {got}; a {kind} tensor "
                              f"({', '.join(sorted(allowed))}) is needed")


_TORCH_TO_ST = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
                torch.int8: "I8", torch.uint8: "U8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64"}


def _build(cls: type[LatentModel], config: Any, doc: dict[str, Any], name: str) -> LatentModel:
    try:
        model = build_model(doc["family"], config)
    except CheckpointError:
        raise
    except (MemoryError, RuntimeError) as exc:
        if _is_out_of_memory(exc):
            raise CheckpointError(f"{name}: not enough memory to build the {doc['family']} model "
                                  f"({_describe(config)})") from None
        raise CheckpointError(f"{name}: cannot build the {doc['family']} model: {_short(exc)}") from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{name}: invalid {doc['family']} config: {exc}") from exc
    if list(model.image_shape) != list(doc.get("image_shape") or model.image_shape):
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
        _check_dtype(key, _TORCH_TO_ST.get(got.dtype, str(got.dtype).replace("torch.", "")), ref.dtype, name)
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{name}: tensor {key!r} has shape {tuple(got.shape)} but the config "
                f"(latent_dim {model.latent_dim}, image_shape {list(model.image_shape)}) expects {tuple(ref.shape)}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise CheckpointError(f"{name}: tensor {key!r} contains NaN or infinite values")
        if got.dtype != ref.dtype:
            tensors[key] = got.to(ref.dtype)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: weights do not fit the model ({_short(exc)})") from exc


def _check_optimizer_tensors(tensors: dict[str, torch.Tensor], name: str) -> None:
    for key, val in tensors.items():
        if val.dtype not in _TORCH_TO_ST:  # float8 and friends: not what any optimiser here saves
            raise CheckpointError(f"{name}: optimiser tensor {key!r} has unsupported dtype "
                                  f"{str(val.dtype).replace('torch.', '')}")
        if val.is_floating_point() and not bool(torch.isfinite(val).all()):
            raise CheckpointError(f"{name}: saved optimiser state {key!r} contains NaN or infinite values; "
                                  "resuming from it would spoil the weights at the first step")


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

    Every problem with the file raises :class:`CheckpointError`, including a config whose model would not fit
    in memory. An unknown or unavailable ``device`` raises ``ValueError`` / ``RuntimeError`` (not the file's
    fault); running out of memory on the device is a ``CheckpointError`` naming it.
    """
    path = Path(path)
    name = path.name
    with _open(path) as handle:
        doc = _read_metadata(handle, path)
        cls, config = _config(doc, name)
        expected = _expected_state(cls, config)
        if expected is not None:
            _check_layout(expected, _file_layout(handle, name), doc["family"], config, name)
        model = _build(cls, config, doc, name)
        tensors: dict[str, torch.Tensor] = {}
        opt_tensors: dict[str, torch.Tensor] = {}
        try:
            for key in handle.keys():
                if key.startswith(OPTIMIZER_PREFIX):
                    if with_optimizer_state:
                        opt_tensors[key] = handle.get_tensor(key)
                else:
                    tensors[key] = handle.get_tensor(key)
        except Exception as exc:  # safetensors' own error, an unsupported dtype (float8 on old torch), memory
            if _is_out_of_memory(exc):
                raise CheckpointError(f"{name}: not enough memory to read the weights") from None
            raise CheckpointError(f"{name}: tensor data is corrupted or truncated ({_short(exc)})") from exc
    _check_and_load_state(model, tensors, name)
    if with_optimizer_state:
        _check_optimizer_tensors(opt_tensors, name)
    model.metadata = {k: v for k, v in doc.items() if k != "optimizers"}
    model.source_path = str(path)
    if with_optimizer_state:
        model.optimizer_state = {"meta": doc.get("optimizers", {}), "tensors": opt_tensors}
    model.eval()
    try:
        return model.to(device)
    except (RuntimeError, MemoryError) as exc:
        if _is_out_of_memory(exc):
            raise CheckpointError(f"{name}: not enough memory on {device} for the model") from None
        raise


def restore_optimizers(model: LatentModel, optimizers: dict[str, torch.optim.Optimizer]) -> bool:
    """Load optimiser state saved with the model (see ``load(with_optimizer_state=True)``). False if none.

    Saved state that does not fit the optimisers (wrong keys, sizes, types) raises :class:`CheckpointError`."""
    saved = getattr(model, "optimizer_state", None)
    if not saved or not saved.get("meta"):
        return False
    for name, opt in optimizers.items():
        meta = saved["meta"].get(name)
        if meta is None:
            return False
        try:
            state: dict[int, dict[str, Any]] = {}
            prefix = f"{OPTIMIZER_PREFIX}{name}/"
            for key, val in saved["tensors"].items():
                if key.startswith(prefix):
                    idx, field = key[len(prefix):].split("/", 1)
                    state.setdefault(int(idx), {})[field] = val
            for idx, plain in meta.get("plain_state", {}).items():
                if not isinstance(plain, dict):
                    raise ValueError(f"plain state of parameter {idx} is not an object")
                state.setdefault(int(idx), {}).update(plain)
            groups = meta["param_groups"]
            for group in groups:
                for key in ("lr", "eps", "weight_decay"):
                    if key in group and not (isinstance(group[key], (int, float)) and not isinstance(group[key], bool)
                                             and math.isfinite(group[key]) and group[key] >= 0):
                        raise ValueError(f"param_groups {key} must be a finite number >= 0, got {group[key]!r}")
            opt.load_state_dict({"state": state, "param_groups": groups})
        except (ValueError, KeyError, RuntimeError, TypeError, IndexError, AttributeError) as exc:
            raise CheckpointError(f"saved optimiser state for {name!r} does not match the model: "
                                  f"{_short(exc)}") from exc
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
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{path.name}: invalid {family} config: {exc}") from exc
    except (MemoryError, RuntimeError) as exc:
        raise CheckpointError(f"{path.name}: cannot build the {family} model: {_short(exc)}") from exc
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
