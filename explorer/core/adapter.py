"""Bring your own model: wrap a user's PyTorch module as a :class:`LatentModel` (the "imported" family).

Researchers will not retrain in our format, so we adapt what they have:

* a plain state dict (``.pt``/``.pth`` read with ``torch.load(weights_only=True)``, or ``.safetensors``) plus
  their own module class named as ``path/to/file.py:ClassName`` and its constructor arguments (JSON). Running
  that file is the explicit opt-in: it is the user's own code;
* a TorchScript archive (``torch.jit.save``) whose ``encode``/``decode`` are ``@torch.jit.export`` methods, or
  a ``torch.export`` archive (``torch.export.save``) of a decoder/generator: no Python class needed.

::

    from explorer.core.adapter import import_model, round_trip_check

    model = import_model("vae.pth", "models/vae.py:VAE", kwargs={"z_dim": 20})
    model.import_report                   # what was found: methods, latent_dim, image shape, value range
    check = round_trip_check(model, images_uint8)
    check["verdict"]                      # "looks right" / "questionable" / "looks wrong"
    checkpoint.save(model, "vae.safetensors", dataset="mnist")   # checkpoint.load() rebuilds it later

What the adapter works out (each can also be given):

* the methods: ``encode``/``decode``, else ``encoder``/``decoder`` submodules, else ``generate``/``generator``,
  else ``forward`` as a generator (a GAN: decode only);
* the latent size and shape: by encoding a dummy batch, or by decoding zeros of the sizes the weights suggest
  (the ``in_features``/``in_channels`` of the layers, constructor arguments such as ``z_dim``/``nz``), both as
  ``(B, D)`` and as DCGAN's ``(B, D, 1, 1)``;
* the image shape: from the decoder's output, or from a flat output's length (square, 1 or 3 channels);
* whether the encoder wants images or flat vectors, and in [0, 1] or [-1, 1];
* what the encoder returns: a tensor, ``(mu, logvar)`` (we use mu), a dict with ``mu``/``mean``, or a
  ``torch.distributions.Distribution`` (its mean);
* what the decoder returns: probabilities in [0, 1], logits (we apply a sigmoid) or tanh output in [-1, 1]
  (see :func:`detect_output_range`).

A checkpoint saved from an imported model holds the weights and the adapter settings (class file path, class
name, kwargs, methods, ranges, shapes); the class file is referenced, never embedded or pickled. Because
loading such a checkpoint runs that file, :func:`checkpoint.load` only does so for files this user has trusted
(importing a file trusts it; see :func:`trust_code`), so opening a checkpoint from elsewhere cannot run code
the user never chose to run.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import re
import sys
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, atomic_write
from .models.base import Capabilities, LatentModel, ModelConfig, check_choice
from .models.registry import register

__all__ = [
    "AdapterError",
    "ImportedConfig",
    "ImportedModel",
    "OUTPUT_RANGES",
    "INPUT_RANGES",
    "UntrustedCodeError",
    "detect_output_range",
    "import_model",
    "inspect_source",
    "is_trusted",
    "list_classes",
    "load_class",
    "parse_class_ref",
    "read_state_dict",
    "round_trip_check",
    "save_imported",
    "source_kind",
    "trust_code",
    "verdict_for",
]

OUTPUT_RANGES = ("auto", "01", "logits", "tanh")
INPUT_RANGES = ("auto", "01", "-11")
SOURCES = ("class", "torchscript", "export")
DECODE_CANDIDATES = ("decode", "decoder", "generate", "generator", "netG", "G", "forward")
ENCODE_CANDIDATES = ("encode", "encoder")
# Constructor arguments / attributes that usually hold the latent size, tried before the layer sizes.
LATENT_NAMES = ("latent_dim", "z_dim", "zdim", "nz", "latent_size", "latent_dims", "dim_z", "n_latent",
                "latent", "code_size", "code_dim", "embedding_dim", "bottleneck")
STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "generator", "netG", "G", "ema")
PROBE_BATCH = 2  # > 1 so that BatchNorm1d layers left in training mode by a user's code still run
MAX_PROBES = 24


class AdapterError(CheckpointError):
    """A user's model could not be imported or rebuilt. ``str(err)`` is a user-facing message.

    A subclass of :class:`CheckpointError` so that code opening checkpoints needs to catch only one type.
    """


class UntrustedCodeError(AdapterError):
    """The checkpoint runs code from ``path``, which this user has not trusted yet (see :func:`trust_code`)."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


# ============================================================ trusted code
# Loading a checkpoint must not run code the user never chose to run. An imported model's checkpoint names a
# Python file (or TorchScript archive) by path; a checkpoint from someone else could name any file on disk. So
# checkpoint.load only runs files the user imported themselves (or confirmed in the GUI), recorded by path in
# a small JSON list in their config folder.
_trust_lock = threading.Lock()
_trusted_session: set[str] = set()


def trust_store_path() -> Path:
    """$LATENT_EXPLORER_CONFIG/trusted_code.json, else $XDG_CONFIG_HOME/latent-explorer/... (~/.config/...)."""
    env = os.environ.get("LATENT_EXPLORER_CONFIG")
    if env:
        return Path(env).expanduser() / "trusted_code.json"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "latent-explorer" / "trusted_code.json"


def _read_trust_store() -> list[str]:
    try:
        doc = json.loads(trust_store_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # missing or damaged: nothing trusted yet (never an error)
    paths = doc.get("trusted", []) if isinstance(doc, dict) else []
    return [p for p in paths if isinstance(p, str)]


def _key(path: str | os.PathLike[str]) -> str:
    return str(Path(path).expanduser().resolve())


def is_trusted(path: str | os.PathLike[str]) -> bool:
    key = _key(path)
    with _trust_lock:
        return key in _trusted_session or key in _read_trust_store()


def trust_code(path: str | os.PathLike[str], persist: bool = True) -> None:
    """Allow checkpoints to run the model code at ``path`` (a class file or a TorchScript/export archive).

    ``persist=False`` trusts it for this process only. The GUI calls this after asking the user about an
    :class:`UntrustedCodeError`; importing a model calls it for the file the user pointed at.
    """
    key = _key(path)
    with _trust_lock:
        _trusted_session.add(key)
        if not persist:
            return
        paths = _read_trust_store()
        if key in paths:
            return
        paths.append(key)
        text = json.dumps({"trusted": paths}, indent=1)
        try:
            atomic_write(trust_store_path(), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        except OSError:
            pass  # a read-only home still works for this session


def _require_trust(path: str, what: str) -> None:
    if not is_trusted(path):
        raise UntrustedCodeError(
            f"this model runs the {what} {path}, which you have not imported on this computer; loading it would "
            "run that code. If you trust it, import it again with `latent-explorer import` (or confirm in the "
            "explorer's dialog).",
            path,
        )


# ============================================================ the user's class
def parse_class_ref(ref: str) -> tuple[Path, str]:
    """``"path/to/file.py:ClassName"`` -> (absolute path, class name). Windows drive letters are fine."""
    text = str(ref).strip()
    file_part, sep, name = text.rpartition(":")
    if not sep or not file_part or not name or "/" in name or "\\" in name:
        raise AdapterError(f"--class {ref!r}: expected FILE.py:ClassName, e.g. models/vae.py:VAE")
    if not name.isidentifier():
        raise AdapterError(f"--class {ref!r}: {name!r} is not a Python class name")
    return Path(file_part).expanduser().absolute(), name


def list_classes(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The classes a Python file defines, found by parsing it (nothing is run), for an import wizard.

    Each: ``{"name", "bases", "line", "params": [{"name", "default"}]}`` where ``params`` are the ``__init__``
    parameters after ``self`` and ``default`` is the literal default (or None when there is none or it is not a
    literal). ``bases`` are written as in the source (e.g. ``"nn.Module"``), so the wizard can list likely
    module classes first.
    """
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except FileNotFoundError:
        raise AdapterError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{path}: cannot read ({exc})") from exc
    except SyntaxError as exc:
        raise AdapterError(f"{path.name} line {exc.lineno}: syntax error: {exc.msg}") from exc
    out = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        params: list[dict[str, Any]] = []
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                args = item.args.posonlyargs + item.args.args
                defaults = [None] * (len(args) - len(item.args.defaults)) + list(item.args.defaults)
                pairs = list(zip(args, defaults))[1:]  # drop self
                pairs += list(zip(item.args.kwonlyargs, item.args.kw_defaults))
                for arg, default in pairs:
                    try:
                        value = ast.literal_eval(default) if default is not None else None
                        has_default = default is not None
                    except ValueError:
                        value, has_default = None, True
                    params.append({"name": arg.arg, "default": value, "required": not has_default})
        out.append({"name": node.name, "bases": [ast.unparse(b) for b in node.bases], "line": node.lineno,
                    "params": params})
    return out


_module_lock = threading.Lock()
_module_cache: dict[str, tuple[int, int, Any]] = {}


@contextlib.contextmanager
def _user_dir_on_path(folder: Path) -> Iterator[None]:
    # Research code imports its siblings (``from layers import Block``): put the file's folder first while it
    # runs, and take it away again so it cannot shadow other modules later.
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass


def _exc_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _load_module(path: Path) -> Any:
    """Run a user's .py file as a module whose name is unique to its path; cached until the file changes."""
    if not path.exists():
        raise AdapterError(
            f"model class file {path} not found (imported models reference their class file: put it back, "
            "or import the model again)"
        )
    if path.is_dir():
        raise AdapterError(f"{path} is a folder; name the .py file that defines the model class")
    if path.suffix != ".py":
        raise AdapterError(f"{path.name}: the model class must be in a .py file")
    key = str(path.resolve())
    stat = path.stat()
    with _module_lock:
        cached = _module_cache.get(key)
        if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        # Unique per path: two different files both called model.py must not replace each other.
        stem = re.sub(r"\W", "_", path.stem)
        name = f"_latent_explorer_user_{stem}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"
        spec = importlib.util.spec_from_file_location(name, key)
        if spec is None or spec.loader is None:
            raise AdapterError(f"{path.name}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        # In sys.modules while it runs: dataclasses, pickling and typing look their module up there.
        sys.modules[name] = module
        try:
            with _user_dir_on_path(path.parent):
                spec.loader.exec_module(module)
        except SyntaxError as exc:
            sys.modules.pop(name, None)
            raise AdapterError(f"{path.name} line {exc.lineno}: syntax error: {exc.msg}") from exc
        except BaseException as exc:  # the user's code may raise anything, SystemExit included
            sys.modules.pop(name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            if isinstance(exc, ImportError) and "relative import" in str(exc):
                module = _import_from_package(path, reload=cached is not None)
            else:
                raise AdapterError(f"running {path.name} failed: {_exc_line(exc)}") from exc
        _module_cache[key] = (stat.st_mtime_ns, stat.st_size, module)
        return module


def _import_from_package(path: Path, reload: bool) -> Any:
    """Import a file that uses relative imports (``from .layers import Block``) as part of its package.

    Such a file only runs inside its package, so it is imported under its real dotted name with the folder
    above the top package on sys.path for the duration.
    """
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        raise AdapterError(f"running {path.name} failed: it uses relative imports but its folder is no package "
                           "(no __init__.py); make them absolute imports")
    dotted = ".".join(parts)
    top = sys.modules.get(parts[0])
    top_file = getattr(top, "__file__", None) if top is not None else None
    if top_file and not Path(top_file).resolve().is_relative_to(folder.resolve()):
        raise AdapterError(f"{path.name} belongs to a package named {parts[0]!r}, but another package of that name "
                           f"is already loaded (from {top_file}); rename one of them")
    try:
        with _user_dir_on_path(folder):
            module = importlib.import_module(dotted)
            if reload:
                module = importlib.reload(module)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AdapterError(f"importing {dotted} (from {path}) failed: {_exc_line(exc)}") from exc
    if Path(getattr(module, "__file__", "") or "").resolve() != path.resolve():
        raise AdapterError(f"importing {dotted} found {module.__file__}, not {path}; rename one of them")
    return module


def load_class(path: str | os.PathLike[str], class_name: str) -> type[nn.Module]:
    """The ``nn.Module`` subclass ``class_name`` defined in (or imported by) the file at ``path``."""
    path = Path(path).expanduser().absolute()
    module = _load_module(path)
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__)
        hint = f"; module classes there: {', '.join(found)}" if found else "; it defines no nn.Module classes"
        raise AdapterError(f"{path.name} has no class {class_name!r}{hint}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise AdapterError(f"{path.name}: {class_name} is not a torch.nn.Module subclass")
    return cls


def _construct(path: Path, cls: type[nn.Module], kwargs: Mapping[str, Any]) -> nn.Module:
    try:
        with _user_dir_on_path(path.parent):
            module = cls(**dict(kwargs))
    except TypeError as exc:
        raise AdapterError(
            f"cannot construct {cls.__name__}(**{json.dumps(dict(kwargs))}): {exc}. Pass the constructor arguments "
            "as JSON, e.g. --kwargs '{\"latent_dim\": 20}'"
        ) from exc
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AdapterError(f"{cls.__name__}(...) failed: {_exc_line(exc)}") from exc
    if not isinstance(module, nn.Module):
        raise AdapterError(f"{cls.__name__}(...) did not return a torch.nn.Module")
    return module


# ============================================================ archives and weights
def source_kind(path: str | os.PathLike[str]) -> str:
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


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj) \
            and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    return None


def read_state_dict(path: str | os.PathLike[str]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The state dicts a weights file holds, as ``[(where, tensors)]``.

    ``.pt``/``.pth``/``.bin``/``.ckpt`` are read with ``torch.load(weights_only=True)`` (plain tensors and
    containers only: no code runs); ``.safetensors`` with safetensors. Besides a bare state dict, the usual
    wrappers are looked into: ``{"state_dict": ...}``, ``{"model": ...}``, ``{"netG": ..., "netD": ...}`` and
    any other entry that is a dict of tensors; :func:`_pick_state_dict` chooses the one the module fits.
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
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
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
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
            raise AdapterError(
                f"{path.name} holds pickled Python objects, not just tensors (e.g. a whole model saved with "
                "torch.save(model)); for safety only plain state dicts are read. Save it with "
                "torch.save(model.state_dict(), path) and import that"
            ) from exc
        raise AdapterError(f"{path.name}: cannot read as a PyTorch weights file ({_exc_line(exc)})") from exc
    found: list[tuple[str, dict[str, torch.Tensor]]] = []
    top = _tensor_dict(obj)
    if top is not None:
        found.append(("the file", top))
    elif isinstance(obj, Mapping):
        ordered = [k for k in STATE_DICT_WRAPPERS if k in obj] + [k for k in obj if k not in STATE_DICT_WRAPPERS]
        for key in ordered:
            inner = _tensor_dict(obj[key])
            if inner is not None:
                found.append((f"entry {key!r}", inner))
    if not found:
        what = type(obj).__name__
        if isinstance(obj, Mapping):
            what = f"a dict with keys {', '.join(map(repr, list(obj)[:6]))}"
        raise AdapterError(f"{path.name}: expected a state dict (a dict of tensors), found {what}")
    return found


def _strip_prefix(keys: Sequence[str], prefix: str) -> bool:
    return bool(keys) and all(k.startswith(prefix) for k in keys)


def _align_keys(tensors: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Undo the common wrappers' key prefixes (DataParallel's ``module.``, Lightning's ``model.``, ...)
    when that makes the names match the module's; otherwise return the tensors unchanged."""
    if set(tensors) & expected or not tensors:
        return tensors
    keys = list(tensors)
    first = keys[0].split(".", 1)[0] + "."
    for prefix in ("module.", "_orig_mod.", first):
        if _strip_prefix(keys, prefix):
            stripped = {k[len(prefix):]: v for k, v in tensors.items()}
            if set(stripped) & expected:
                return stripped
    return tensors


def _pick_state_dict(found: list[tuple[str, dict[str, torch.Tensor]]], expected: set[str]
                     ) -> tuple[str, dict[str, torch.Tensor]]:
    best = max(found, key=lambda item: len(set(_align_keys(item[1], expected)) & expected))
    return best[0], _align_keys(best[1], expected)


def _load_weights(module: nn.Module, path: Path, label: str) -> str:
    """Strictly load the weights file into ``module``; returns where in the file the state dict was found."""
    expected = module.state_dict()
    where, tensors = _pick_state_dict(read_state_dict(path), set(expected))
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


def _some(items: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... {len(items) - n} more" if len(items) > n else "")


@contextlib.contextmanager
def _quiet_torch_deprecations() -> Iterator[None]:
    # torch.jit.load warns that TorchScript is deprecated: true, and nothing the user can act on here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*deprecated.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        yield


def _load_archive(path: Path, kind: str) -> tuple[nn.Module, tuple[int, ...] | None]:
    """Load a TorchScript or torch.export archive; returns (module, example latent shape if recorded)."""
    if not path.exists():
        raise AdapterError(f"model archive {path} not found (imported models reference it: put it back, or "
                           "import the model again)")
    try:
        with _quiet_torch_deprecations():
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


# ============================================================ calling the user's methods
def _resolve(net: nn.Module, name: str) -> Callable[[torch.Tensor], Any]:
    """``"forward"`` -> the module itself (so hooks run); ``"decoder.net"`` -> nested attributes."""
    if name == "forward":
        return net
    obj: Any = net
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AdapterError(f"{type(net).__name__} has no method or submodule {name!r}") from None
    if not callable(obj):
        raise AdapterError(f"{type(net).__name__}.{name} is not callable")
    return obj


def _has(net: nn.Module, name: str) -> bool:
    if name == "forward":
        return True
    try:
        _resolve(net, name)
        return True
    except AdapterError:
        return False


_MEAN_KEYS = ("mu", "mean", "z_mean", "loc", "z_mu", "mu_z", "z")
_LOGVAR_KEYS = ("logvar", "log_var", "z_logvar", "logvar_z", "z_log_var")


def _is_distribution(obj: Any) -> bool:
    return isinstance(obj, torch.distributions.Distribution)


def _dist_mean(dist: Any) -> torch.Tensor:
    try:
        return dist.mean
    except NotImplementedError:
        return dist.loc


def latent_from_encoder_output(out: Any, select: str = "auto") -> torch.Tensor:
    """The latent code in whatever an encoder returned: a tensor, ``(mu, logvar)`` (mu), a dict with
    ``mu``/``mean``, or a Distribution (its mean). ``select`` names a tuple index ("1") or dict key instead."""
    if select != "auto":
        if isinstance(out, Mapping):
            if select not in out:
                raise AdapterError(f"the encoder returned a dict without {select!r} (keys: {', '.join(map(str, out))})")
            out = out[select]
        elif isinstance(out, (tuple, list)):
            if not select.lstrip("-").isdigit() or not -len(out) <= int(select) < len(out):
                raise AdapterError(f"encode_output {select!r}: the encoder returned {len(out)} values")
            out = out[int(select)]
        else:
            raise AdapterError(f"encode_output {select!r} given, but the encoder returned a {type(out).__name__}")
        return latent_from_encoder_output(out)
    if isinstance(out, torch.Tensor):
        return out
    if _is_distribution(out):
        return _dist_mean(out)
    if isinstance(out, Mapping):
        for key in _MEAN_KEYS:
            if key in out:
                return latent_from_encoder_output(out[key])
        raise AdapterError(f"the encoder returned a dict with keys {', '.join(map(str, out))}; none is the mean "
                           f"({', '.join(_MEAN_KEYS)}); name it with encode_output")
    if isinstance(out, (tuple, list)) and out:
        return latent_from_encoder_output(out[0])  # (mu, logvar): the mean comes first by convention
    raise AdapterError(f"the encoder returned a {type(out).__name__}, not a tensor")


def _posterior_from_encoder_output(out: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mu, logvar) when the encoder's output says what its spread is, else None."""
    if _is_distribution(out):
        base = getattr(out, "base_dist", out)  # Independent(Normal(...))
        if isinstance(base, torch.distributions.Normal):
            return base.loc, 2.0 * torch.log(base.scale)
        return None
    if isinstance(out, Mapping):
        mu = next((out[k] for k in _MEAN_KEYS if k in out), None)
        lv = next((out[k] for k in _LOGVAR_KEYS if k in out), None)
        if isinstance(mu, torch.Tensor) and isinstance(lv, torch.Tensor) and mu.shape == lv.shape:
            return mu, lv
        return None
    if isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(v, torch.Tensor) for v in out) \
            and out[0].shape == out[1].shape:
        return out[0], out[1]  # the (mu, logvar) convention of the PyTorch VAE example
    return None


def image_from_decoder_output(out: Any) -> torch.Tensor:
    """The image tensor in a decoder's output: a tensor, the first tensor of a tuple, a dict's "x"/"recon"/...,
    or a Distribution's mean (a Bernoulli's probabilities)."""
    if isinstance(out, torch.Tensor):
        return out
    if _is_distribution(out):
        return _dist_mean(out)
    if isinstance(out, Mapping):
        for key in ("x", "recon", "x_recon", "reconstruction", "out", "output", "image", "images", "mean", "logits"):
            if key in out:
                return image_from_decoder_output(out[key])
        raise AdapterError(f"the decoder returned a dict with keys {', '.join(map(str, out))}; none is an image")
    if isinstance(out, (tuple, list)) and out:
        return image_from_decoder_output(out[0])
    raise AdapterError(f"the decoder returned a {type(out).__name__}, not a tensor")


def infer_image_shape(numel: int) -> tuple[int, int, int] | None:
    """A flat image's shape from its length: a square with 1 channel, else a square with 3 (never both:
    3 * m^2 is never a square)."""
    s = math.isqrt(numel)
    if s * s == numel:
        return (1, s, s)
    if numel % 3 == 0:
        s = math.isqrt(numel // 3)
        if 3 * s * s == numel:
            return (3, s, s)
    return None


def detect_output_range(images: torch.Tensor) -> tuple[str, str]:
    """Guess a decoder's output range from its outputs on prior samples: (range, reason).

    * all values in [0, 1] -> "01";
    * all in [-1, 1] with a real share (> 5%) below zero -> "tanh"; only a few slightly negative values are a
      linear [0, 1] decoder's undershoot -> "01" (clamped);
    * beyond [-1, 1]: a linear [0, 1] decoder's mild overshoot (98% inside [-0.25, 1.25]) -> "01", anything
      wider -> "logits" (a sigmoid is applied).

    It is a guess: an *untrained* logits decoder can look like tanh. The round-trip check shows whether the
    guess was right, and ``output_range`` overrides it.
    """
    x = images.detach().float().flatten()
    x = x[torch.isfinite(x)]
    if x.numel() == 0:
        raise AdapterError("the decoder's output on prior samples is all NaN or infinite")
    lo, hi = float(x.min()), float(x.max())
    neg = float((x < 0).float().mean())
    eps = 1e-5
    if lo >= -eps and hi <= 1 + eps:
        return "01", f"outputs within [0, 1] (min {lo:.3g}, max {hi:.3g})"
    if lo >= -1 - eps and hi <= 1 + eps:
        if neg > 0.05:
            return "tanh", f"outputs within [-1, 1], {100 * neg:.0f}% negative (min {lo:.3g}, max {hi:.3g})"
        return "01", f"outputs within [0, 1] but for a little undershoot (min {lo:.3g}); clamped"
    inside = float(((x >= -0.25) & (x <= 1.25)).float().mean())
    if inside >= 0.98:
        return "01", f"outputs mostly within [0, 1] (min {lo:.3g}, max {hi:.3g}); clamped"
    return "logits", f"outputs beyond [-1, 1] (min {lo:.3g}, max {hi:.3g}): taken as logits"


# ============================================================ the model family
@dataclass
class ImportedConfig(ModelConfig):
    """How to rebuild and call a user's model. Written to checkpoint metadata as JSON.

    * ``source``: "class" (``path`` is a .py file, ``class_name`` in it, built with ``kwargs``),
      "torchscript" or "export" (``path`` is the archive);
    * ``encode_method``: attribute called to encode ("" = no encoder); ``decode_method``: to decode
      ("forward" calls the module itself); dotted names reach submodules;
    * ``encode_input``: "image" (B, C, H, W) or "flat" (B, C*H*W); ``input_range``: "01" or "-11";
    * ``encode_output``: "auto" or the tuple index / dict key of the mean in the encoder's output;
    * ``latent_shape``: what the decoder is given per sample, e.g. (nz, 1, 1) for DCGAN; product = latent_dim;
    * ``output_range``: "01", "logits" or "tanh" (never "auto" here: resolved at import);
    * ``has_posterior``: the encoder also gives a spread (encode_dist works); ``generative``: N(0, I) samples
      are meaningful (VAEs and GANs, not plain autoencoders).
    """

    source: str = "class"
    path: str = ""
    class_name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    encode_method: str = ""
    decode_method: str = "decode"
    encode_input: str = "image"
    encode_output: str = "auto"
    latent_shape: tuple[int, ...] = ()
    output_range: str = "01"
    input_range: str = "01"
    has_posterior: bool = False
    generative: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ImportedConfig":
        d = dict(d)
        if isinstance(d.get("latent_shape"), list):
            d["latent_shape"] = tuple(d["latent_shape"])
        return super().from_dict(d)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["latent_shape"] = list(self.latent_shape)
        return d

    def validate(self) -> None:
        super().validate()
        check_choice("source", self.source, SOURCES)
        check_choice("output_range", self.output_range, OUTPUT_RANGES[1:])
        check_choice("input_range", self.input_range, INPUT_RANGES[1:])
        check_choice("encode_input", self.encode_input, ("image", "flat"))
        if not isinstance(self.path, str) or not self.path:
            raise ValueError("path (the model's class file or archive) must be given")
        if self.source == "class" and not (isinstance(self.class_name, str) and self.class_name.isidentifier()):
            raise ValueError(f"class_name must be a Python class name, got {self.class_name!r}")
        if not isinstance(self.kwargs, dict) or not all(isinstance(k, str) for k in self.kwargs):
            raise ValueError("kwargs must be a JSON object")
        for name in ("encode_method", "decode_method", "encode_output"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string")
        if not self.decode_method:
            raise ValueError("decode_method must name the method that decodes")
        shape = tuple(self.latent_shape)
        if not shape or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape):
            raise ValueError(f"latent_shape must be positive integers, got {self.latent_shape!r}")
        if math.prod(shape) != self.latent_dim:
            raise ValueError(f"latent_shape {list(shape)} has {math.prod(shape)} values but latent_dim is "
                             f"{self.latent_dim}")


def _set_eval(net: nn.Module) -> None:
    try:
        net.eval()
    except NotImplementedError:
        pass  # a torch.export module: its graph was captured in the mode it was exported in


def _build_module(config: ImportedConfig) -> nn.Module:
    path = Path(config.path)
    if config.source == "class":
        if not path.exists():  # say so before the trust question: it is the real problem
            raise AdapterError(
                f"model class file {path} not found (this imported model references it for {config.class_name}: "
                "put it back, or import the model again)"
            )
        _require_trust(str(path), "Python file")
        return _construct(path, load_class(path, config.class_name), config.kwargs)
    if not path.exists():
        raise AdapterError(f"model archive {path} not found (this imported model references it: put it back, or "
                           "import the model again)")
    _require_trust(str(path), "TorchScript archive" if config.source == "torchscript" else "torch.export archive")
    return _load_archive(path, config.source)[0]


@register
class ImportedModel(LatentModel):
    """A user's module behind the LatentModel interface. Explored, never trained here.

    Built from its config alone (``build_model("imported", config)``, which is what ``checkpoint.load`` does),
    it reruns the user's class file / loads the archive; :func:`import_model` passes the module it already
    built and probed.
    """

    family = "imported"
    config_cls = ImportedConfig
    # The class-level default; each instance replaces it with what its encoder actually offers.
    capabilities = Capabilities(has_encoder=True, is_generative=True, trainable=False)
    config: ImportedConfig

    def __init__(self, config: ImportedConfig, module: nn.Module | None = None):
        super().__init__(config)
        self.net = module if module is not None else _build_module(config)
        _set_eval(self.net)
        self.capabilities = Capabilities(
            has_encoder=bool(config.encode_method),
            is_generative=bool(config.generative),
            has_posterior=bool(config.has_posterior and config.encode_method),
            trainable=False,
        )
        self.import_report: dict[str, Any] = {}

    def train(self, mode: bool = True) -> "ImportedModel":
        # Imported models are only explored: batch norm and dropout stay in inference mode whatever the caller
        # asks, so that every decode of the same z gives the same image. (Not nn.Module.train's recursion:
        # a torch.export module refuses train()/eval() outright.)
        self.training = bool(mode)
        _set_eval(self.net)
        return self

    @property
    def _dtype(self) -> torch.dtype:
        for p in self.net.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    # ---- value ranges and layouts
    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.input_range == "-11":
            x = x * 2.0 - 1.0
        if self.config.encode_input == "flat":
            x = x.reshape(len(x), -1)
        return x.to(self._dtype)

    def _from_output(self, out: Any, n: int) -> torch.Tensor:
        y = image_from_decoder_output(out)
        if y.shape[0] != n or y[0].numel() != math.prod(self.image_shape):
            raise AdapterError(f"the decoder returned shape {tuple(y.shape)} for {n} codes; expected {n} images of "
                               f"{list(self.image_shape)}")
        y = y.reshape(n, *self.image_shape).float()
        if self.config.output_range == "logits":
            return torch.sigmoid(y)
        if self.config.output_range == "tanh":
            return (y + 1.0) * 0.5
        return y.clamp(0.0, 1.0)  # a no-op for sigmoid outputs; trims a linear decoder's overshoot

    def _encoder_output(self, x: torch.Tensor) -> Any:
        if not self.config.encode_method:
            return super().encode(x)  # raises CapabilityError
        return _resolve(self.net, self.config.encode_method)(self._to_input(x))

    # ---- the exploration interface
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        mu = latent_from_encoder_output(self._encoder_output(x), self.config.encode_output)
        return mu.reshape(len(x), -1).float()

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.capabilities.has_posterior:
            return super().encode_dist(x)
        out = self._encoder_output(x)
        pair = _posterior_from_encoder_output(out)
        if pair is None:
            return super().encode_dist(x)
        mu, logvar = pair
        return mu.reshape(len(x), -1).float(), logvar.reshape(len(x), -1).float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        # Not under no_grad: GAN inversion optimises z through this.
        n = len(z)
        zz = z.reshape(n, *self.config.latent_shape).to(self._dtype)
        return self._from_output(_resolve(self.net, self.config.decode_method)(zz), n)

    def extra_metadata(self) -> dict[str, Any]:
        what = f"{Path(self.config.path).name}:{self.config.class_name}" if self.config.source == "class" \
            else Path(self.config.path).name
        return {"imported": {"source": self.config.source, "model": what}}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["imported"] = {"source": self.config.source, "path": self.config.path,
                         "class_name": self.config.class_name or None,
                         "encode": self.config.encode_method or None, "decode": self.config.decode_method,
                         "output_range": self.config.output_range, "input_range": self.config.input_range}
        return d


# ============================================================ probing a fresh module
def _try(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[Any, BaseException | None]:
    try:
        with torch.no_grad():
            return fn(x), None
    except Exception as exc:  # a wrong guess fails inside the user's code with any error type
        return None, exc


def _int_hints(net: nn.Module, kwargs: Mapping[str, Any]) -> list[int]:
    hints = []
    for name in LATENT_NAMES:
        for value in (kwargs.get(name), getattr(net, name, None) if not isinstance(net, torch.jit.ScriptModule)
                      else None):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                hints.append(value)
    return hints


def _size_candidates(net: nn.Module, decoder: Any, kwargs: Mapping[str, Any]) -> list[int]:
    """Latent sizes worth trying: hints by name first, then every layer's input size, smallest first (the
    latent is usually the narrowest input in the network)."""
    sizes: set[int] = set()
    modules = [decoder] if isinstance(decoder, nn.Module) and decoder is not net else []
    modules.append(net)
    decoder_smallest: list[int] = []  # a decoder submodule's narrowest input is the best guess of all
    for mod in modules:
        for value in mod.state_dict().values():
            if not value.is_floating_point():
                continue
            if value.ndim == 2:
                sizes.add(int(value.shape[1]))  # Linear: (out, in)
            elif value.ndim in (3, 4, 5):
                sizes.update((int(value.shape[0]), int(value.shape[1])))  # Conv: (out, in); ConvT: (in, out)
        if mod is decoder and sizes:
            decoder_smallest = sorted(sizes)[:1]
    ordered = _int_hints(net, kwargs) + decoder_smallest + sorted(sizes)
    return list(dict.fromkeys(v for v in ordered if v > 0))


def _probe_decoder(decode: Any, sizes: Sequence[int], shapes_for: Callable[[int], list[tuple[int, ...]]]
                   ) -> tuple[tuple[int, ...], torch.Tensor, list[str]]:
    errors: list[str] = []
    tries = 0
    for d in sizes:
        for shape in shapes_for(d):
            tries += 1
            if tries > MAX_PROBES:
                break
            out, exc = _try(decode, torch.zeros(PROBE_BATCH, *shape))
            if exc is not None:
                errors.append(f"{list(shape)}: {_exc_line(exc)}")
                continue
            try:
                y = image_from_decoder_output(out)
            except AdapterError as bad:
                errors.append(f"{list(shape)}: {bad}")
                continue
            if y.ndim >= 2 and y.shape[0] == PROBE_BATCH:
                return shape, y, errors
            errors.append(f"{list(shape)}: output shape {tuple(y.shape)} has no batch of {PROBE_BATCH}")
    raise AdapterError("could not find the latent size: decoding zeros failed for every size tried ("
                       + "; ".join(errors[:3]) + "). Give it with --latent-dim")


def _shapes(d: int) -> list[tuple[int, ...]]:
    return [(d,), (d, 1, 1)]  # an MLP's flat code, DCGAN's (nz, 1, 1)


def _image_shape_of(y: torch.Tensor, given: tuple[int, int, int] | None) -> tuple[int, int, int]:
    per = y[0]
    numel = per.numel()
    if given is not None:
        if math.prod(given) != numel:
            raise AdapterError(f"the decoder makes {numel} values per image ({tuple(per.shape)}) but --image-shape "
                               f"{','.join(map(str, given))} has {math.prod(given)}")
        return given
    if per.ndim == 3 and per.shape[0] in (1, 3):
        return tuple(int(v) for v in per.shape)  # type: ignore[return-value]
    if per.ndim == 2:
        return (1, int(per.shape[0]), int(per.shape[1]))
    shape = infer_image_shape(numel)
    if shape is None:
        raise AdapterError(f"the decoder makes {numel} values per image ({tuple(per.shape)}), which is no square "
                           "grayscale or RGB image; give --image-shape C,H,W")
    return shape


def _parse_image_shape(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            raise AdapterError(f"image shape {value!r}: expected C,H,W, e.g. 1,28,28") from None
    shape = tuple(int(v) for v in value)
    if len(shape) != 3 or any(v < 1 for v in shape) or shape[0] not in (1, 3):
        raise AdapterError(f"image shape {list(shape)}: expected C,H,W with C = 1 or 3, e.g. 1,28,28")
    return shape  # type: ignore[return-value]


def _pick_decode(net: nn.Module, wanted: str) -> list[str]:
    if wanted not in ("", "auto"):
        if not _has(net, wanted):
            raise AdapterError(f"{type(net).__name__} has no method or submodule {wanted!r} to decode with")
        return [wanted]
    names = [n for n in DECODE_CANDIDATES if _has(net, n)]
    if any(_has(net, n) for n in ENCODE_CANDIDATES):
        # forward is a decoder only for generator-like classes; an autoencoder's forward reconstructs.
        names.remove("forward")
    return names


def _pick_encode(net: nn.Module, wanted: str | None, decode_name: str) -> str:
    if wanted in ("none", ""):
        return ""
    if wanted not in (None, "auto"):
        if not _has(net, wanted):
            raise AdapterError(f"{type(net).__name__} has no method or submodule {wanted!r} to encode with")
        return wanted
    for name in ENCODE_CANDIDATES:
        if name != decode_name and _has(net, name):
            return name
    return ""


def _setup(net: nn.Module, *, kwargs: Mapping[str, Any], image_shape: tuple[int, int, int] | None,
           latent_dim: int | None, encode_method: str | None, decode_method: str, output_range: str,
           input_range: str, encode_output: str, example_latent: tuple[int, ...] | None,
           seed: int = 0) -> dict[str, Any]:
    """Work out how to call ``net``: the settings of an :class:`ImportedConfig` plus a report for the user."""
    _set_eval(net)
    notes: list[str] = []
    failures: list[str] = []
    chosen = None
    for name in _pick_decode(net, decode_method):
        decode = _resolve(net, name)
        enc_name = _pick_encode(net, encode_method, name)
        try:
            if latent_dim is not None:
                found = _probe_decoder(decode, [latent_dim], _shapes)
            elif example_latent is not None:
                found = _probe_decoder(decode, [math.prod(example_latent)], lambda d: [example_latent])
            elif enc_name and image_shape is not None:
                found = None  # the encoder tells us below
            else:
                found = _probe_decoder(decode, _size_candidates(net, decode, kwargs), _shapes)
        except AdapterError as exc:
            failures.append(f"{name}: {exc}")
            continue
        chosen = (name, enc_name, found)
        break
    if chosen is None:
        if not failures:
            raise AdapterError(f"{type(net).__name__} has no decode/decoder/generate/generator method; name the "
                               "decoding method with --decode")
        raise AdapterError(failures[0] if len(failures) == 1 else "no way to decode worked: " + " | ".join(failures))
    decode_name, enc_name, found = chosen
    decode = _resolve(net, decode_name)

    encode_input = "image"
    encoder_out = None
    if found is None:  # latent size from the encoder, on a dummy batch of the given image shape
        encode_input, encoder_out = _probe_encoder(net, enc_name, image_shape, input_range)  # type: ignore[arg-type]
        z = latent_from_encoder_output(encoder_out, encode_output)
        zshape = tuple(int(v) for v in z.shape[1:])
        shapes = [zshape] if len(zshape) > 1 else _shapes(zshape[0])
        found = _probe_decoder(decode, [math.prod(zshape)], lambda d: shapes)
    latent_shape, probe_out, _ = found
    img_shape = _image_shape_of(probe_out, image_shape)
    latent = math.prod(latent_shape)

    if enc_name and encoder_out is None:
        encode_input, encoder_out = _probe_encoder(net, enc_name, img_shape, input_range)
    has_posterior = False
    if enc_name:
        z = latent_from_encoder_output(encoder_out, encode_output)
        if z[0].numel() != latent:
            raise AdapterError(f"the encoder ({enc_name}) gives codes of {z[0].numel()} values but the decoder "
                               f"({decode_name}) takes {latent}; name the right methods with --encode / --decode")
        has_posterior = _posterior_from_encoder_output(encoder_out) is not None
        if encode_output == "auto" and isinstance(encoder_out, (tuple, list)) and len(encoder_out) > 2:
            notes.append(f"the encoder returns {len(encoder_out)} values; the first is used as the code "
                         "(set encode_output to another index if that is a sample rather than the mean)")

    # Output range, judged on decoded prior samples (what the explorer will show).
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(64, *latent_shape, generator=gen)
    out, exc = _try(decode, z)
    if exc is not None:
        raise AdapterError(f"decoding a batch of prior samples failed: {_exc_line(exc)}")
    samples = image_from_decoder_output(out)
    if output_range == "auto":
        out_range, reason = detect_output_range(samples)
    else:
        check_choice("output_range", output_range, OUTPUT_RANGES)
        out_range, reason = output_range, "given"
    if input_range == "auto":
        in_range = "-11" if out_range == "tanh" else "01"
    else:
        in_range = {"tanh": "-11"}.get(input_range, input_range)
        check_choice("input_range", in_range, INPUT_RANGES)
    if enc_name and input_range == "auto" and in_range == "-11":
        notes.append("the encoder is given images in [-1, 1] like the decoder's tanh output "
                     "(set input_range to 01 if it was trained on [0, 1])")
    if not bool(torch.isfinite(samples).all()):
        notes.append("some decoded prior samples are NaN or infinite")

    return {
        "settings": {
            "latent_dim": latent, "image_shape": img_shape, "encode_method": enc_name,
            "decode_method": decode_name, "encode_input": encode_input, "encode_output": encode_output,
            "latent_shape": tuple(latent_shape), "output_range": out_range, "input_range": in_range,
            "has_posterior": has_posterior, "generative": (not enc_name) or has_posterior,
        },
        "output_range_reason": reason,
        "notes": notes,
    }


def _probe_encoder(net: nn.Module, name: str, image_shape: tuple[int, int, int], input_range: str
                   ) -> tuple[str, Any]:
    encode = _resolve(net, name)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(PROBE_BATCH, *image_shape, generator=gen)
    if input_range in ("-11", "tanh"):
        x = x * 2 - 1
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    x = x.to(dtype)
    errors = []
    for layout, batch in (("image", x), ("flat", x.reshape(PROBE_BATCH, -1))):
        out, exc = _try(encode, batch)
        if exc is None:
            try:
                z = latent_from_encoder_output(out)
            except AdapterError as bad:
                errors.append(f"{layout}: {bad}")
                continue
            if z.ndim >= 1 and z.shape[0] == PROBE_BATCH:
                return layout, out
            errors.append(f"{layout}: code shape {tuple(z.shape)}")
        else:
            errors.append(f"{layout} {list(batch.shape)}: {_exc_line(exc)}")
    raise AdapterError(f"the encoder ({name}) fails on images of shape {list(image_shape)} both as images and "
                       f"flat ({'; '.join(errors)}); check --image-shape, or use --encode none for a decoder only")


# ============================================================ the entry point
def inspect_source(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What an import wizard needs to know about a dropped file before asking more: its kind and, for a
    Python file, the classes it defines (parsed, not run)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AdapterError(f"{path}: file not found")
    kind = source_kind(path)
    info: dict[str, Any] = {"path": str(path.absolute()), "kind": kind,
                            "needs_class": kind in ("state_dict", "safetensors")}
    if kind == "python":
        info["classes"] = list_classes(path)
    return info


def import_model(
    source: str | os.PathLike[str],
    class_ref: str | None = None,
    *,
    kwargs: Mapping[str, Any] | str | None = None,
    image_shape: Sequence[int] | str | None = None,
    latent_dim: int | None = None,
    encode_method: str | None = "auto",
    decode_method: str = "auto",
    output_range: str = "auto",
    input_range: str = "auto",
    encode_output: str = "auto",
    trust: bool = True,
    device: str | torch.device = "cpu",
) -> ImportedModel:
    """Import a user's model as an :class:`ImportedModel` (eval mode, on ``device``).

    source: a weights file (``.pt``/``.pth`` state dict or ``.safetensors``) used with ``class_ref``
        (``"path/to/file.py:ClassName"``), or, without ``class_ref``, a TorchScript / torch.export archive.
    kwargs: the class's constructor arguments (a dict or a JSON object string).
    image_shape: (C, H, W) or "C,H,W"; inferred from the decoder's output when not given.
    latent_dim: inferred when not given.
    encode_method / decode_method: attribute names ("auto" finds them; encode_method "none" for decoder only).
    output_range: "auto", "01", "logits" or "tanh"; input_range: "auto" (follows the output), "01" or "-11".
    encode_output: "auto" or the tuple index / dict key holding the mean in the encoder's output.
    trust: record the class file / archive as trusted so checkpoints saved from this model load later.

    Raises :class:`AdapterError` with a message that names the problem. The returned model has
    ``import_report`` (what was found and why) and ``metadata`` (merged into a saved checkpoint).
    """
    source = Path(source).expanduser().absolute()
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs) if kwargs.strip() else {}
        except json.JSONDecodeError as exc:
            raise AdapterError(f"--kwargs is not valid JSON ({exc.msg} at char {exc.pos}): {kwargs}") from exc
    kwargs = dict(kwargs or {})
    if not all(isinstance(k, str) for k in kwargs):
        raise AdapterError("--kwargs must be a JSON object of constructor arguments, e.g. '{\"z_dim\": 20}'")
    try:
        json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"--kwargs must be plain JSON values (they are stored in the checkpoint): {exc}") from exc
    given_shape = _parse_image_shape(image_shape)
    if latent_dim is not None and (isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1):
        raise AdapterError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    check_choice("output_range", output_range, OUTPUT_RANGES)
    if input_range not in (*INPUT_RANGES, "tanh"):
        raise AdapterError(f"input_range must be one of {', '.join(INPUT_RANGES)}, got {input_range!r}")

    example = None
    if class_ref is not None:
        file, class_name = parse_class_ref(class_ref)
        if not source.exists():
            raise AdapterError(f"{source}: weights file not found")
        cls = load_class(file, class_name)
        net = _construct(file, cls, kwargs)
        where = _load_weights(net, source, f"{class_name}({json.dumps(kwargs)})" if kwargs else f"{class_name}()")
        kind, ref = "class", str(file.resolve())
        origin = {"weights": str(source), "state_dict": where}
    else:
        if not source.exists():
            raise AdapterError(f"{source}: file not found")
        kind = source_kind(source)
        if kind in ("state_dict", "safetensors"):
            raise AdapterError(f"{source.name} holds only weights: name the model class with "
                               "--class path/to/file.py:ClassName")
        if kind not in ("torchscript", "export"):
            raise AdapterError(f"{source.name}: not a TorchScript or torch.export archive, nor a weights file")
        if kwargs:
            raise AdapterError("--kwargs applies to a model class; archives are loaded as saved")
        net, example = _load_archive(source, kind)
        class_name, ref = "", str(source.resolve())
        origin = {"archive": str(source)}

    found = _setup(net, kwargs=kwargs, image_shape=given_shape, latent_dim=latent_dim,
                   encode_method=encode_method, decode_method=decode_method, output_range=output_range,
                   input_range=input_range, encode_output=encode_output, example_latent=example)
    try:
        config = ImportedConfig(source=kind, path=ref, class_name=class_name, kwargs=kwargs, **found["settings"])
        config.validate()
    except ValueError as exc:
        raise AdapterError(f"cannot use this model: {exc}") from exc
    model = ImportedModel(config, module=net)
    if trust:
        trust_code(ref)
    s = found["settings"]
    model.import_report = {
        "source": kind, "path": ref, "class_name": class_name or None, **origin,
        "latent_dim": s["latent_dim"], "latent_shape": list(s["latent_shape"]),
        "image_shape": list(s["image_shape"]), "encode": s["encode_method"] or None,
        "decode": s["decode_method"], "encode_input": s["encode_input"], "output_range": s["output_range"],
        "output_range_reason": found["output_range_reason"], "input_range": s["input_range"],
        "has_encoder": bool(s["encode_method"]), "has_posterior": s["has_posterior"],
        "parameters": sum(p.numel() for p in net.parameters()), "notes": found["notes"],
    }
    model.metadata = {"imported_from": origin}
    model.eval()
    return model.to(device)


# ============================================================ does it make sense?
def verdict_for(ratio: float) -> tuple[str, str]:
    """(verdict, explanation) for reconstruction MSE / mean-image-baseline MSE."""
    if not math.isfinite(ratio):
        return "looks wrong", "the reconstructions are NaN or infinite"
    if ratio < 0.5:
        return "looks right", "reconstructions are much closer to the images than the data's mean image is"
    if ratio < 1.0:
        return "questionable", ("reconstructions are only a little better than predicting the mean image: check "
                                "the value ranges (--output-range, --input-range), the image shape and the data set")
    return "looks wrong", ("reconstructions are no better than the data's mean image: check the class and "
                           "weights, the value ranges (--output-range, --input-range), the image shape and that "
                           "the data set is the one the model was trained on")


def round_trip_check(
    model: LatentModel,
    images: Any,
    *,
    max_images: int = 256,
    batch_size: int = 128,
    invert_steps: int = 150,
    invert_restarts: int = 2,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Reconstruct sample images and compare the error with the data's mean-image baseline.

    images: (N, C, H, W) uint8 (0..255) or float (0..1) of the model's image shape; at most ``max_images``
    (an even spread over the array) are used. Models with an encoder reconstruct as ``decode(encode(x))``;
    models without one (GANs) through :func:`explorer.core.inversion.invert` (slower: ``invert_steps`` Adam
    steps, ``invert_restarts`` starts; a GAN's inversion error is naturally higher than an autoencoder's).

    Returns ``{"method", "images", "recon_mse", "baseline_mse", "ratio", "verdict", "message"}`` where
    ``verdict`` is "looks right" (ratio < 0.5), "questionable" (< 1) or "looks wrong".
    """
    from .inversion import _as_float_images, invert, mean_image_baseline

    x = _as_float_images(images, model)
    if len(x) == 0:
        raise ValueError("no images to check with")
    if len(x) > max_images:
        x = x[np.linspace(0, len(x) - 1, max_images).round().astype(np.int64)]
    baseline = mean_image_baseline(x)
    if model.capabilities.has_encoder:
        method = "encode"
        errs = []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(x), batch_size):
                    if cancel is not None and cancel.is_set():
                        from .latent import Cancelled

                        raise Cancelled("round-trip check cancelled")
                    xb = x[start:start + batch_size].to(model.device)
                    recon = model.decode(model.encode(xb)).float()
                    errs.append((recon - xb).pow(2).flatten(1).mean(1).cpu())
                    if progress is not None:
                        progress(min(start + batch_size, len(x)), len(x))
        finally:
            model.train(was_training)
        recon_mse = float(torch.cat(errs).mean())
    else:
        method = "invert"
        result = invert(model, x, steps=invert_steps, restarts=invert_restarts, seed=seed, progress=progress,
                        cancel=cancel)
        recon_mse = float(result.errors.mean())
    ratio = recon_mse / baseline if baseline > 0 else float("inf")
    if not math.isfinite(recon_mse):
        ratio = float("nan")
    verdict, message = verdict_for(ratio)
    return {
        "method": method,
        "images": int(len(x)),
        "recon_mse": recon_mse if math.isfinite(recon_mse) else None,
        "baseline_mse": baseline,
        "ratio": ratio if math.isfinite(ratio) else None,
        "verdict": verdict,
        "message": message,
    }


def save_imported(model: ImportedModel, path: str | os.PathLike[str], *, check: dict[str, Any] | None = None,
                  **metadata: Any) -> Path:
    """Save an imported model as our own checkpoint (atomically): its weights, and the adapter settings in the
    metadata's config (the class file is referenced by path, never embedded). ``check`` (a
    :func:`round_trip_check` result) and ``import_report`` go into the metadata too."""
    from .checkpoint import save

    extra: dict[str, Any] = {"import_report": getattr(model, "import_report", None) or None}
    if check is not None:
        extra["import_check"] = check
    return save(model, path, **extra, **metadata)
