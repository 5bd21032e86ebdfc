"""Weights files: what a file is, the state dict inside its container, key prefixes, archives.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, plus an allow-list of
harmless types that training scripts put next to their weights (``argparse.Namespace`` of the run's arguments,
numpy scalars, dtypes and arrays of numbers). Nothing that would run code is ever unpickled. Tensors saved on a
GPU load on a CPU-only machine (``map_location="cpu"``).
"""

from __future__ import annotations

import argparse
import contextlib
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import AdapterError

# Where a state dict sits inside the usual containers, tried first (any other dict of tensors is found too).
STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network", "ema", "ema_model",
                       "generator", "netG", "G", "g_ema", "module", "params", "weights")
# Key prefixes added by wrappers: DataParallel/DDP, Lightning, torch.compile, EMA helpers.
KNOWN_PREFIXES = ("module.", "model.", "_orig_mod.", "net.", "ema.", "generator.", "netG.")
MAX_NESTING = 3


def _numpy_safe_globals() -> list[Any]:
    out: list[Any] = [argparse.Namespace, np.dtype, np.ndarray]
    core = getattr(np, "_core", None) or np.core
    for name in ("scalar", "_reconstruct"):
        fn = getattr(core.multiarray, name)
        out.append(fn)
        # Files written with numpy 1 name them numpy.core.multiarray.*
        out.append((fn, f"numpy.core.multiarray.{name}"))
        out.append((fn, f"numpy._core.multiarray.{name}"))
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and n != "ObjectDType"
                and isinstance(getattr(dtypes, n), type)]
    return out


SAFE_GLOBALS = _numpy_safe_globals()


def source_kind(path: str | Path) -> str:
    """What a file is: "torchscript", "export" (torch.export), "state_dict" (a torch.save zip or legacy pickle),
    "safetensors", "python" or "unknown". Decided from the file's contents, not only its name."""
    path = Path(path)
    if path.suffix == ".py":
        return "python"
    if path.suffix == ".safetensors":
        return "safetensors"
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
            tails = {n.split("/", 1)[1] if "/" in n else n for n in names}
            if "archive_format" in tails or any(t.startswith("models/") and t.endswith(".json") for t in tails) \
                    or any(t.endswith("serialized_exported_program.json") for t in tails):  # torch < 2.6
                return "export"
            if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
                return "torchscript"
            if "data.pkl" in tails:
                return "state_dict"
            return "unknown"
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise AdapterError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if head[:1] == b"\x80":  # a legacy (pre-1.6) torch.save pickle
        return "state_dict"
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: 8-byte header length, then JSON
        return "safetensors"
    return "unknown"


def _exc_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        # A few non-tensor entries (a version counter, "_metadata") do not make it something else.
        if tensors and len(tensors) >= 0.8 * len(obj):
            return tensors
    return None


def _find_state_dicts(obj: Any, where: str, depth: int, found: list[tuple[str, dict[str, torch.Tensor]]]) -> None:
    top = _tensor_dict(obj)
    if top is not None:
        found.append((where, top))
        return
    if depth >= MAX_NESTING:
        return
    if isinstance(obj, Mapping):
        ordered = [k for k in STATE_DICT_WRAPPERS if k in obj] + [k for k in obj if k not in STATE_DICT_WRAPPERS]
        for key in ordered[:64]:
            label = f"entry {key!r}" if where == "the file" else f"{where}[{key!r}]"
            _find_state_dicts(obj[key], label, depth + 1, found)
    elif isinstance(obj, argparse.Namespace):
        _find_state_dicts(vars(obj), where, depth + 1, found)


def _refusal(path: Path, exc: BaseException) -> AdapterError:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - legacy files cannot be scanned; the message stays general
        names = []
    allowed = {f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', '')}" if not isinstance(g, tuple)
               else g[1] for g in SAFE_GLOBALS}
    names = [n for n in names if n not in allowed]
    whole = any(n.startswith(("torch.nn.modules.", "__main__.")) for n in names)
    listed = f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""
    if whole:
        return AdapterError(
            f"{path.name} holds pickled Python objects{listed}, not just tensors: a whole model saved with "
            "torch.save(model). Unpickling it would run code, so only state dicts are read. Save it with "
            "torch.save(model.state_dict(), path) and import that")
    return AdapterError(
        f"{path.name} holds pickled Python objects{listed} besides tensors; unpickling them could run code, so "
        "only tensors, plain containers, argparse.Namespace and numpy values are read. Save the state dict "
        "alone: torch.save(model.state_dict(), path)")


def read_state_dict(path: str | Path) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The state dicts a weights file holds, as ``[(where, tensors)]``.

    Besides a bare state dict, the usual containers are looked into, nested up to three levels:
    ``{"state_dict": ..., "args": Namespace, "epoch": np.int64}``, ``{"model": ...}``, ``{"netG": ..., "netD":
    ...}``, ``{"ema": ...}``; :func:`pick_state_dict` chooses the one the module fits.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise AdapterError(f"{path}: weights file not found")
    if path.is_dir():
        raise AdapterError(f"{path} is a folder; name the weights file (.pt, .pth or .safetensors)")
    kind = source_kind(path)
    if kind == "safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                meta = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
        except Exception as exc:  # safetensors has its own error types for malformed files
            raise AdapterError(f"{path.name}: not a valid .safetensors file ({_exc_line(exc)})") from exc
        if "latent_explorer" in meta:
            raise AdapterError(f"{path.name} is already a Latent Explorer checkpoint: open it directly")
        return [("the file", tensors)]
    if kind in ("torchscript", "export"):
        raise AdapterError(
            f"{path.name} is a {'TorchScript' if kind == 'torchscript' else 'torch.export'} archive, not a state "
            "dict: import it without --class"
        )
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
            raise _refusal(path, exc) from exc
        raise AdapterError(f"{path.name}: cannot read as a PyTorch weights file ({_exc_line(exc)})") from exc
    found: list[tuple[str, dict[str, torch.Tensor]]] = []
    _find_state_dicts(obj, "the file", 0, found)
    if not found:
        what = type(obj).__name__
        if isinstance(obj, Mapping):
            what = f"a dict with keys {', '.join(map(repr, list(obj)[:6]))}"
        raise AdapterError(f"{path.name}: expected a state dict (a dict of tensors), found {what}")
    return found


def align_keys(tensors: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Undo wrappers' key prefixes (``module.``, ``model.``, ``_orig_mod.``, nested ones such as
    ``module._orig_mod.``, and a Lightning module's ``generator.`` beside its ``discriminator.``) when that
    makes the names match the module's; otherwise return the tensors unchanged."""
    best, score = tensors, len(set(tensors) & expected)
    if score == len(expected) or not tensors:
        return tensors
    prefixes = set(KNOWN_PREFIXES)
    for k in list(tensors)[:4096]:
        parts = k.split(".")
        for i in range(1, min(4, len(parts))):
            prefixes.add(".".join(parts[:i]) + ".")
    for prefix in sorted(prefixes, key=len):
        subset = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        s = len(set(subset) & expected)
        if s > score:
            best, score = subset, s
    return best


def pick_state_dict(found: list[tuple[str, dict[str, torch.Tensor]]], expected: set[str]
                    ) -> tuple[str, dict[str, torch.Tensor]]:
    scored = [(len(set(align_keys(t, expected)) & expected), where, t) for where, t in found]
    best = max(scored, key=lambda item: item[0])
    return best[1], align_keys(best[2], expected)


def _some(items: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... {len(items) - n} more" if len(items) > n else "")


def load_weights(module: nn.Module, path: Path, label: str) -> str:
    """Strictly load the weights file into ``module``; returns where in the file the state dict was found."""
    expected = module.state_dict()
    where, tensors = pick_state_dict(read_state_dict(path), set(expected))
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} ({_some(missing)})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} ({_some(unexpected)})")
        if wrong:
            parts.append(f"shape mismatch in {len(wrong)} (file vs model: {_some(wrong)})")
        raise AdapterError(
            f"{path.name} does not fit {label}: " + "; ".join(parts)
            + ". Check the class and its constructor arguments (--kwargs)"
        )
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise AdapterError(f"{path.name}: tensor {k!r} contains NaN or infinite values")
    module.load_state_dict(tensors, strict=True)
    return where


@contextlib.contextmanager
def quiet_torch_deprecations() -> Iterator[None]:
    # torch.jit.load warns that TorchScript is deprecated: true, and nothing the user can act on here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*deprecated.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        yield


def load_archive(path: Path, kind: str) -> tuple[nn.Module, tuple[int, ...] | None]:
    """Load a TorchScript or torch.export archive; returns (module, example latent shape if recorded)."""
    if not path.exists():
        raise AdapterError(f"model archive {path} not found (imported models reference it: put it back, or "
                           "import the model again)")
    try:
        with quiet_torch_deprecations():
            if kind == "torchscript":
                return torch.jit.load(str(path), map_location="cpu"), None
            program = torch.export.load(str(path))
            example = None
            try:
                args = program.example_inputs[0] if program.example_inputs else ()
                if args and isinstance(args[0], torch.Tensor):
                    example = tuple(int(v) for v in args[0].shape[1:])
            except (AttributeError, IndexError, TypeError):
                pass
            return program.module(), example
    except Exception as exc:
        what = "TorchScript" if kind == "torchscript" else "torch.export"
        raise AdapterError(f"{path.name}: cannot load the {what} archive ({_exc_line(exc)})") from exc
