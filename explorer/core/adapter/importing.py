"""The entry point: :func:`import_model` turns a weights file + class (or an archive) into an ImportedModel."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..models.base import check_choice
from .errors import AdapterError
from .loading import load_archive, load_weights, source_kind
from .model import INPUT_RANGES, OUTPUT_RANGES, ImportedConfig, ImportedModel
from .probe import parse_shape, setup
from .source import (
    constant_choices,
    construct,
    list_classes,
    load_target,
    parse_class_ref,
)
from .trust import trust_code


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


def _parse_kwargs(kwargs: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if isinstance(kwargs, str):
        text = kwargs.strip()
        if text.startswith("@"):  # a JSON file, e.g. pythae's model_config.json: {"model_config": @file} is
            try:                  # written as --kwargs @file for a class taking one config object
                text = Path(text[1:]).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise AdapterError(f"--kwargs {kwargs}: cannot read ({exc.strerror or exc})") from exc
        try:
            kwargs = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise AdapterError(f"--kwargs is not valid JSON ({exc.msg} at char {exc.pos}): {kwargs}") from exc
    kwargs = dict(kwargs or {}) if isinstance(kwargs, Mapping) or kwargs is None else kwargs
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise AdapterError("--kwargs must be a JSON object of constructor arguments, e.g. '{\"z_dim\": 20}'")
    try:
        json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"--kwargs must be plain JSON values (they are stored in the checkpoint): {exc}") from exc
    return kwargs


def _build_class(file: Path, class_name: str, script_args: list[str], kwargs: dict[str, Any], weights: Path
                 ) -> tuple[torch.nn.Module, dict[str, Any], list[str], str, dict[str, Any]]:
    """Construct the user's class and load the weights: (module, load info, notes, where, script values).

    A training script may set a value the class reads only in a branch its arguments choose (the DCGAN
    example sets ``nc`` per ``--dataset``); then each literal value the script assigns to that name is tried,
    and the one whose module the weights fit is kept (and recorded, so the checkpoint rebuilds the same)."""
    label = f"{class_name}({json.dumps(kwargs)})" if kwargs else f"{class_name}()"

    def attempt(preset: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, Any], list[str], str]:
        target, module, info = load_target(file, class_name, script_args, preset=preset)
        if isinstance(target, torch.nn.Module) and kwargs:
            raise AdapterError(f"{class_name} in {file.name} is a ready-made nn.Module instance; it takes no --kwargs")
        net, notes = construct(target, kwargs, module, info["search_path"], info)
        return net, info, notes, load_weights(net, weights, label)

    try:
        return (*attempt({}), {})
    except AdapterError as exc:
        cause = exc.__cause__
        name = getattr(cause, "name", None) if isinstance(cause, NameError) else None
        choices = constant_choices(file, name) if name else []
        for value in choices:
            try:
                net, info, notes, where = attempt({name: value})
            except AdapterError:
                continue
            if info["mode"] != "script":
                break
            notes.append(f"{name} = {value!r}: the script sets {name} only for some of its arguments; of the "
                         f"values it assigns ({', '.join(map(repr, choices))}) this is the one the weights fit "
                         "(or give the script's arguments with --script-args)")
            return net, info, notes, where, {name: value}
        raise


def import_model(
    source: str | os.PathLike[str],
    class_ref: str | None = None,
    *,
    kwargs: Mapping[str, Any] | str | None = None,
    image_shape: Sequence[int] | str | None = None,
    data_shape: Sequence[int] | str | None = None,
    latent_dim: int | None = None,
    latent_shape: Sequence[int] | str | None = None,
    encode_method: str | None = "auto",
    decode_method: str = "auto",
    output_range: str = "auto",
    input_range: str = "auto",
    encode_output: str = "auto",
    script_args: Sequence[str] | None = None,
    trust: bool = True,
    device: str | torch.device = "cpu",
) -> ImportedModel:
    """Import a user's model as an :class:`ImportedModel` (eval mode, on ``device``).

    source: a weights file (``.pt``/``.pth``/``.ckpt`` state dict or container, or ``.safetensors``) used with
        ``class_ref`` (``"path/to/file.py:Name"``: a class, or a module-level ``nn.Module`` instance), or,
        without ``class_ref``, a TorchScript / torch.export archive.
    kwargs: the class's constructor arguments (a dict or a JSON object string, or ``"@file.json"``); checked
        against the real signature. A JSON object for an argument annotated with a config class (pythae's
        ``model_config``) becomes that class.
    image_shape: (C, H, W) or "C,H,W" the decoder must make (an error otherwise).
    data_shape: the data set's image shape: probed first, and a warning when the model makes another.
    latent_dim / latent_shape: found by probing when not given; a latent may have any rank (e.g. "8,2,2").
    encode_method / decode_method: attribute names ("auto" finds them; encode_method "none" for decoder only).
    output_range: "auto", "01", "logits" or "tanh"; input_range: "auto" (follows the output), "01" or "-11".
    encode_output: "auto" or the tuple index / key / attribute path of the mean in the encoder's output.
    script_args: a training script's own arguments (its argparse values), e.g. ["--dataset", "mnist"].
    trust: record the code (its sha256, with this class and these arguments) as trusted, so that checkpoints
        saved from this model load later without asking.

    Raises :class:`AdapterError` with a message that names the problem. The returned model has
    ``import_report`` (what was found and why, with ``notes`` and ``warnings``) and ``metadata``.
    """
    source = Path(source).expanduser().absolute()
    kwargs = _parse_kwargs(kwargs)
    given_shape = parse_shape(image_shape, "image shape", image=True)
    data = parse_shape(data_shape, "data shape", image=True)
    given_latent = parse_shape(latent_shape, "latent shape", image=False)
    if latent_dim is not None and (isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1
                                   or latent_dim > 1 << 20):
        raise AdapterError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    check_choice("output_range", output_range, OUTPUT_RANGES)
    if input_range not in (*INPUT_RANGES, "tanh"):
        raise AdapterError(f"input_range must be one of {', '.join(INPUT_RANGES)}, got {input_range!r}")
    script_args = [str(a) for a in (script_args or [])]

    example = None
    notes: list[str] = []
    search_path: list[str] = []
    if class_ref is not None:
        file, class_name = parse_class_ref(class_ref)
        if not source.exists():
            raise AdapterError(f"{source}: weights file not found")
        net, info, more, where, preset = _build_class(file, class_name, script_args, kwargs, source)
        notes += more
        search_path = info["search_path"]
        if info["mode"] == "script":
            line, what = info["script_work"][0]
            kept = f" (and the values {', '.join(info['values'])})" if info["values"] else ""
            notes.append(f"{file.name} runs a training script when imported (line {line}: {what}); only its imports "
                         f"and the definitions {class_name} needs{kept} were run")
        elif info["mode"] == "package":
            notes.append(f"{file.name} was imported as {info['dotted']} from {search_path[1] if len(search_path) > 1 else file.parent}")
        kind, ref = "class", str(file.resolve())
        origin = {"weights": str(source), "state_dict": where}
    else:
        preset = {}
        if script_args:
            raise AdapterError("--script-args applies to a model class file; archives are loaded as saved")
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
        net, example = load_archive(source, kind)
        class_name, ref = "", str(source.resolve())
        origin = {"archive": str(source)}

    found = setup(net, kwargs=kwargs, image_shape=given_shape, data_shape=data, latent_dim=latent_dim,
                  latent_shape=given_latent, encode_method=encode_method, decode_method=decode_method,
                  output_range=output_range, input_range=input_range, encode_output=encode_output,
                  example_latent=example)
    try:
        config = ImportedConfig(source=kind, path=ref, class_name=class_name, kwargs=kwargs,
                                script_args=script_args, script_values=preset, search_path=search_path,
                                **found["settings"])
        config.validate()
    except ValueError as exc:
        raise AdapterError(f"cannot use this model: {exc}") from exc
    model = ImportedModel(config, module=net)
    if trust:
        trust_code(ref, call=config.call(), what="Python file" if kind == "class" else f"{kind} archive")
    s = found["settings"]
    model.import_report = {
        "source": kind, "path": ref, "class_name": class_name or None, **origin,
        "latent_dim": s["latent_dim"], "latent_shape": list(s["latent_shape"]),
        "image_shape": list(s["image_shape"]), "encode": s["encode_method"] or None,
        "decode": s["decode_method"], "encode_input": s["encode_input"], "output_range": s["output_range"],
        "output_range_reason": found["output_range_reason"], "input_range": s["input_range"],
        "ranges_given": found["ranges_given"],
        "has_encoder": bool(s["encode_method"]), "has_posterior": s["has_posterior"],
        "parameters": sum(p.numel() for p in net.parameters()), "search_path": search_path,
        "notes": notes + found["notes"], "warnings": found["warnings"],
    }
    if math.prod(s["image_shape"]) > 1 << 24:
        raise AdapterError(f"the model makes images of shape {list(s['image_shape'])}: too large to explore")
    model.metadata = {"imported_from": origin}
    model.eval()
    return model.to(device)
