"""``latent-explorer import WEIGHTS --class FILE.py:ClassName ... --out OUT.safetensors``: bring your own model.

Wraps a user's model (a state dict plus their own module class, or a TorchScript / torch.export archive) with
:mod:`explorer.core.adapter`, optionally checks it on a data set (reconstruction error against the data's
mean-image baseline), and saves it as our own checkpoint. Prints what was found, the check's verdict, and a
final JSON line on stdout. Needs no display and never imports Qt.

"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .args import CLIError, positive_int


def _image_shape(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (e.g. 1,28,28), got {text!r}") from None
    if len(values) != 3 or any(v < 1 for v in values) or values[0] not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected C,H,W with C = 1 or 3 (e.g. 1,28,28), got {text!r}")
    return values  # type: ignore[return-value]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``import`` subcommand to an ``add_subparsers()`` action; returns its parser."""
    p = subparsers.add_parser(
        "import",
        help="import your own model (state dict + your class, or a TorchScript archive) as a checkpoint",
        description="Wrap your own model for the explorer: a state dict (.pt/.pth read with "
                    "torch.load(weights_only=True), or .safetensors) plus your model class given as "
                    "FILE.py:ClassName, or a TorchScript / torch.export archive (no --class). The adapter finds "
                    "encode/decode, the latent size, the image shape and the value ranges; --dataset checks the "
                    "import by reconstructing images. The checkpoint references your class file (it is not "
                    "copied): keep it where it is.",
    )
    p.add_argument("weights", metavar="WEIGHTS",
                   help="state dict (.pt, .pth, .safetensors) or a TorchScript / torch.export archive")
    p.add_argument("--class", dest="class_ref", metavar="FILE.py:ClassName", default=None,
                   help="your model class (runs that file: it is your own code)")
    p.add_argument("--kwargs", default=None, metavar="JSON", help="constructor arguments, e.g. '{\"z_dim\": 20}'")
    p.add_argument("--image-shape", type=_image_shape, default=None, metavar="C,H,W",
                   help="image shape (default: from the decoder's output)")
    p.add_argument("--latent-dim", type=positive_int, default=None, metavar="N",
                   help="latent size (default: found by probing)")
    p.add_argument("--latent-shape", default=None, metavar="C,H,W",
                   help="the shape the decoder takes per sample when it cannot be found, e.g. 8,2,2 or 4,8,8 "
                        "(the explorer works on the flattened vector)")
    p.add_argument("--script-args", default=None, metavar="ARGS",
                   help="when the class file is a training script: the arguments you ran it with (e.g. "
                        "'--dataset mnist'); only the values the class needs are taken from them")
    p.add_argument("--encode", default="auto", metavar="NAME",
                   help="method or submodule that encodes (default: encode, then encoder); 'none' for none")
    p.add_argument("--decode", default="auto", metavar="NAME",
                   help="method or submodule that decodes (default: decode, decoder, generate, generator, forward)")
    p.add_argument("--encode-output", default="auto", metavar="INDEX|KEY",
                   help="which of the encoder's outputs is the mean (default: the tensor, the first of a tuple, "
                        "'mu'/'mean' of a dict, a distribution's mean)")
    p.add_argument("--output-range", choices=["auto", "01", "logits", "tanh"], default="auto",
                   help="what the decoder returns: probabilities in [0,1], logits, or tanh output in [-1,1] "
                        "(default: guessed from decoded prior samples)")
    p.add_argument("--input-range", choices=["auto", "01", "-11"], default="auto",
                   help="what the encoder expects: [0,1] or [-1,1] (default: [-1,1] when the decoder is tanh)")
    p.add_argument("--dataset", default=None,
                   help="check the import by reconstructing images of this data set (mnist, fashion-mnist, digits, "
                        "faces, folder:PATH, celeba:PATH); also recorded as the model's data set")
    p.add_argument("--check-images", type=positive_int, default=None, metavar="N",
                   help="images used by the check (default 256; 32 for models without an encoder, which are "
                        "inverted: slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.add_argument("--out", required=True, help="output .safetensors checkpoint")
    return p




def _check_data(name: str, model: Any, limit: int) -> Any:
    from explorer.core.data import DataSourceError, load_dataset

    c, h, w = model.image_shape
    if h != w:
        raise CLIError(f"the model makes {h}x{w} images; data sets are square, so --dataset cannot check it")
    try:
        data = load_dataset(name, image_size=h, channels=c, count=max(limit * 4, 512) if name == "faces" else None)
    except DataSourceError as exc:
        raise CLIError(str(exc)) from exc
    if data.image_shape != tuple(model.image_shape):
        raise CLIError(f"data set {name!r} has images of shape {list(data.image_shape)} but the model makes "
                     f"{list(model.image_shape)}")
    # Held-out images when there is a split: they tell whether the model generalises, not memorises.
    return data.images[data.n_train:] if len(data) > data.n_train else data.images


def _data_shape(name: str) -> tuple[int, int, int]:
    from explorer.core.data import DataSourceError, load_dataset

    try:  # the data set's own image shape (a few images: the sources cache what they read)
        return tuple(load_dataset(name, count=8).image_shape)  # type: ignore[return-value]
    except DataSourceError as exc:
        raise CLIError(str(exc)) from exc


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from explorer.core.adapter import (
        AdapterError,
        import_model,
        round_trip_check,
        save_imported,
    )
    from explorer.core.checkpoint import CheckpointError

    t0 = time.perf_counter()
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise CLIError(f"--out {args.out}: the checkpoint's name must end in .safetensors")
    if out.is_dir():
        raise CLIError(f"--out {args.out} is a folder; give a file name")
    import shlex

    try:
        script_args = shlex.split(args.script_args) if args.script_args else None
    except ValueError as exc:
        raise CLIError(f"--script-args {args.script_args!r}: {exc}") from None
    data_shape = _data_shape(args.dataset) if args.dataset and args.image_shape is None else None
    try:
        model = import_model(
            args.weights, args.class_ref, kwargs=args.kwargs, image_shape=args.image_shape, data_shape=data_shape,
            latent_dim=args.latent_dim, latent_shape=args.latent_shape, encode_method=args.encode,
            decode_method=args.decode, output_range=args.output_range, input_range=args.input_range,
            encode_output=args.encode_output, script_args=script_args,
        )
    except (AdapterError, CheckpointError) as exc:
        raise CLIError(str(exc)) from exc
    report = model.import_report
    what = report.get("class_name") or report["source"]
    enc = (f"encode={report['encode']}" if report["encode"]
           else "no encoder (explored from samples; images by inversion)")
    print(f"imported {what}: latent_dim {report['latent_dim']} (decoder takes {report['latent_shape']}), "
          f"images {report['image_shape']}, decode={report['decode']}, {enc}, output {report['output_range']} "
          f"({report['output_range_reason']}), input {report['input_range']}")
    for note in report.get("notes", []):
        print(f"note: {note}")
    for warning in report.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)

    check = None
    if args.dataset:
        limit = args.check_images or (256 if model.capabilities.has_encoder else 32)
        images = _check_data(args.dataset, model, limit)
        shown = {"tenth": -1}

        def progress(done: int, total: int) -> None:
            # Inversion takes a while on a CPU: a line every 10%, not a bar (stderr may be a log file).
            tenth = (10 * done) // max(total, 1)
            if not args.no_progress and not model.capabilities.has_encoder and tenth > shown["tenth"]:
                shown["tenth"] = tenth
                print(f"import: inverting {min(limit, len(images))} images for the check ({10 * tenth}%)",
                      file=sys.stderr, flush=True)

        try:
            check = round_trip_check(model, images, max_images=limit, progress=progress)
        except (AdapterError, CheckpointError, ValueError, RuntimeError) as exc:
            raise CLIError(f"the round-trip check failed: {exc}") from exc
        how = "encode/decode" if check["method"] == "encode" else "inversion"
        recon = "nan" if check["recon_mse"] is None else f"{check['recon_mse']:.4g}"
        if check.get("ranges_changed"):
            print(f"note: {check['ranges_changed']['note']}")
        print(f"round trip ({how}) on {check['images']} {args.dataset} images: reconstruction MSE {recon} vs "
              f"mean-image baseline {check['baseline_mse']:.4g}: {check['verdict']} ({check['message']})")
    else:
        print("round trip: not checked (pass --dataset NAME to compare reconstructions with the data)")
    try:
        saved = save_imported(model, out, check=check, dataset=args.dataset)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from exc
    print(json.dumps({
        "out": str(saved),
        "source": report["source"],
        "class": report.get("class_name"),
        "latent_dim": report["latent_dim"],
        "latent_shape": report["latent_shape"],
        "image_shape": report["image_shape"],
        "encode": report["encode"],
        "decode": report["decode"],
        "output_range": model.config.output_range,
        "input_range": model.config.input_range,
        "warnings": report.get("warnings", []),
        "check": check,
        "seconds": round(time.perf_counter() - t0, 2),
    }))
    return 0


run = cmd_import
