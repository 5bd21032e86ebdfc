"""``latent-explorer swap train|apply``: the decoder swap of two autoencoders that share one encoder.

* ``swap train --out-a A.safetensors --out-b B.safetensors``: trains two AEs with one shared encoder on the two
  procedural face styles (:func:`explorer.core.swap.train_face_style_pair`) and saves both checkpoints
  atomically; each names its data set (``faces-style-a`` / ``faces-style-b``) and its partner file.
* ``swap apply A.safetensors B.safetensors --out grid.png``: encodes images of A's data set (or image files)
  with A's encoder, decodes them with B's decoder and writes a PNG grid: the images, A's own reconstruction,
  the swap into B.

Both print a final JSON line on stdout and never import Qt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .args import (
    CLIError,
    Parser,
    int_list,
    load_models,
    model_data,
    nonnegative_int,
    positive_int,
)

DEFAULT_COUNT = 8  # images swapped by `swap apply`


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``swap`` subcommand (with ``train`` and ``apply``) to an ``add_subparsers()`` action."""
    p = subparsers.add_parser(
        "swap", help="decoder swap: train two autoencoders with a shared encoder, decode one's images with the "
                     "other's decoder (headless)",
        description="The classic face-swap construction: two autoencoders trained with one shared encoder on two "
                    "data sets. Encode with A's (shared) encoder, decode with B's decoder.")
    sub = p.add_subparsers(dest="swap_command", parser_class=Parser, metavar="{train,apply}")

    tr = sub.add_parser(
        "train", help="train a shared-encoder pair on the two procedural face styles and save both",
        description="Train two AEs with one shared encoder: A on faces in style A (glasses, beard, short black "
                    "hair, light skin), B on other people in style B (long blond hair, dark skin). Saves both "
                    "checkpoints atomically; each holds the shared encoder.")
    tr.add_argument("--style-a", choices=["a", "b"], default="a", help="style of model A's faces (default a)")
    tr.add_argument("--style-b", choices=["a", "b"], default="b", help="style of model B's faces (default b)")
    tr.add_argument("--count", type=positive_int, default=None,
                    help="faces per style (default 4000; a sixth of them held out as the test split)")
    tr.add_argument("--image-size", type=positive_int, default=None, help="face size in pixels (default 32)")
    tr.add_argument("--latent-dim", type=positive_int, default=16)
    tr.add_argument("--hidden", type=int_list, default=(256,), help="MLP hidden sizes (default 256)")
    tr.add_argument("--epochs", type=positive_int, default=10)
    tr.add_argument("--batch-size", type=positive_int, default=128)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    tr.add_argument("--out-a", required=True, help="output .safetensors of model A")
    tr.add_argument("--out-b", required=True, help="output .safetensors of model B")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")

    ap = sub.add_parser(
        "apply", help="encode with A's encoder, decode with B's decoder: a PNG grid",
        description="Write a PNG grid: row 1 the images, row 2 A's own reconstruction, row 3 the swap into B "
                    "(A's encoder, B's decoder). Images come from A's data set (its held-out test split first) "
                    "or from image files.")
    ap.add_argument("model_a", metavar="A", help="the encoder's checkpoint")
    ap.add_argument("model_b", metavar="B", help="the decoder's checkpoint")
    ap.add_argument("images", nargs="*", metavar="IMAGE", help="image files to swap instead of a data set")
    ap.set_defaults(late_positionals="images")
    ap.add_argument("--dataset", default=None, help="data set to take images from (default: the one A was trained on)")
    ap.add_argument("--count", type=positive_int, default=DEFAULT_COUNT,
                    help=f"images to swap (default {DEFAULT_COUNT})")
    ap.add_argument("--out", required=True, help="output .png")
    ap.add_argument("--min-size", type=nonnegative_int, default=112, metavar="PX",
                    help="enlarge small images (nearest neighbour) to at least PX pixels (default 112; 0: never)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    return p


# ------------------------------------------------------------------ train
def cmd_swap_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from explorer.core import checkpoint
    from explorer.core.compare import CompareError
    from explorer.core.data import DataSourceError
    from explorer.core.swap import (
        FACE_STYLE_COUNT,
        FACE_STYLE_SIZE,
        save_swap_pair,
        shares_encoder,
        train_face_style_pair,
    )

    t0 = time.perf_counter()
    out_a, out_b = Path(args.out_a), Path(args.out_b)
    for option, path in (("--out-a", out_a), ("--out-b", out_b)):
        if path.suffix.lower() != ".safetensors":
            raise CLIError(f"{option} {path}: use a file name ending in .safetensors")
        if path.is_dir():
            raise CLIError(f"{option} {path} is a folder; give a file name")
    if out_a.resolve() == out_b.resolve():
        raise CLIError("--out-a and --out-b name the same file: give two file names")
    if args.style_a == args.style_b:
        raise CLIError(f"--style-a and --style-b are both {args.style_a!r}: a swap needs two styles")
    count = args.count or FACE_STYLE_COUNT
    if count < 6:
        raise CLIError(f"--count {count} is too few: at least 6 faces per style (a sixth are held out)")
    size = args.image_size or FACE_STYLE_SIZE

    bar = tqdm(total=0, unit="step", file=sys.stderr, disable=args.no_progress, dynamic_ncols=True)

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.n = step
        bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
        bar.refresh()

    try:
        model_a, model_b = train_face_style_pair(
            count=count, size=size, seed=args.seed, styles=(args.style_a, args.style_b),
            latent_dim=args.latent_dim, hidden=tuple(args.hidden), epochs=args.epochs, batch_size=args.batch_size,
            device=args.device, progress=progress)
    except (CompareError, DataSourceError) as exc:
        raise CLIError(str(exc)) from exc
    except (RuntimeError, ValueError) as exc:  # e.g. an unknown or unavailable device, a bad config
        raise CLIError(f"cannot train the pair: {exc}") from exc
    except KeyboardInterrupt:
        raise CLIError("interrupted") from None
    finally:
        bar.close()
    try:
        save_swap_pair(model_a, model_b, out_a, out_b)
        # Check what a user will open: two files whose encoders are the same weights.
        loaded = [checkpoint.load(p) for p in (out_a, out_b)]
    except (CompareError, checkpoint.CheckpointError) as exc:
        raise CLIError(str(exc)) from exc
    if not shares_encoder(*loaded):
        raise CLIError(f"{out_a.name} and {out_b.name} were saved but their encoders differ after loading")
    history = model_a.metadata["history"]
    print(json.dumps({
        "out_a": str(out_a), "out_b": str(out_b),
        "dataset_a": model_a.metadata["dataset"], "dataset_b": model_b.metadata["dataset"], "count": count,
        "image_size": size,
        "latent_dim": args.latent_dim, "epochs": history["epochs"], "steps": history["steps"],
        "final_metrics": {k: v for k, v in (history["per_epoch"] or [{}])[-1].items() if k != "epoch"},
        "shared_encoder": True,
        "seconds": round(time.perf_counter() - t0, 2),
    }, default=float))
    return 0


# ------------------------------------------------------------------ apply
def _images_from_files(paths: Sequence[str], model: Any, count: int) -> tuple[Any, dict[str, Any]]:
    from explorer.core.data.base import DataSourceError
    from explorer.core.data.transforms import convert_channels, decode_files

    c, h, w = model.image_shape
    if h != w:
        raise CLIError(f"image files are read as squares, but model A takes {h}x{w} images")
    files = [Path(p) for p in paths[:count]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CLIError(f"{missing[0]}: file not found")
    decoded = decode_files(files, h)
    if len(decoded.failures):
        f, why = decoded.failures[0]
        raise CLIError(f"{f}: cannot read it as an image ({why})")
    try:
        images = convert_channels(decoded.images, c)
    except DataSourceError as exc:
        raise CLIError(str(exc)) from exc
    return images, {"files": [str(f) for f in files]}


def _images_from_data(args: argparse.Namespace, model: Any) -> tuple[Any, dict[str, Any]]:
    from explorer.core.swap import swap_examples

    # Draw the data as the pair was trained on it (count and seed of its faces), so the held-out test split
    # holds people neither model has seen.
    pair = (getattr(model, "metadata", {}) or {}).get("swap_pair") or {}
    name = args.dataset or (getattr(model, "metadata", {}) or {}).get("dataset")
    same_data = not args.dataset or args.dataset == model.metadata.get("dataset")
    data = model_data(name, model, count=pair.get("count") if same_data else None)
    rows = swap_examples(data, args.count)
    if len(rows) < args.count:
        print(f"warning: {data.name} has only {len(rows)} images; swapping those", file=sys.stderr)
    return data.images[rows], {"dataset": data.name, "indices": rows.tolist()}


def cmd_swap_apply(args: argparse.Namespace) -> int:
    from explorer.core.compare import CompareError
    from explorer.core.export import ExportError
    from explorer.core.swap import (
        NO_SHARED_ENCODER,
        shares_encoder,
        swap_rows,
        write_swap_grid,
    )

    t0 = time.perf_counter()
    if Path(args.out).suffix.lower() != ".png":
        raise CLIError(f"--out {args.out}: use a file name ending in .png")
    if Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} is a folder; give a file name")
    if args.images and args.dataset:
        raise CLIError("give either image files or --dataset, not both")
    model_a = load_models([args.model_a], args.device)[0]
    model_b = load_models([args.model_b], args.device)[0]
    if not model_a.capabilities.has_encoder:
        raise CLIError(f"{Path(args.model_a).name} is a {model_a.family.upper()} model and has no encoder to encode "
                     "the images with; model A must be an autoencoder")
    if args.images:
        images, source = _images_from_files(args.images, model_a, args.count)
    else:
        images, source = _images_from_data(args, model_a)
    shared = shares_encoder(model_a, model_b)
    if not shared:
        print(f"warning: {NO_SHARED_ENCODER} (train a pair with `latent-explorer swap train`)", file=sys.stderr)
    try:
        rows = swap_rows(model_a, model_b, images)
        out = write_swap_grid(args.out, rows, min_size=args.min_size)
    except (CompareError, ExportError) as exc:
        raise CLIError(str(exc)) from exc
    except OSError as exc:
        raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    from PIL import Image

    with Image.open(out) as im:
        size = [im.width, im.height]
    print(json.dumps({
        "out": str(out), "size": size, "count": int(rows.shape[1]),
        "rows": ["images", "A's reconstruction", "swapped into B"],
        "shared_encoder": shared, **source,
        "seconds": round(time.perf_counter() - t0, 3),
    }))
    return 0


SWAP_COMMANDS = {"train": cmd_swap_train, "apply": cmd_swap_apply}


def cmd_swap(args: argparse.Namespace) -> int:
    if not getattr(args, "swap_command", None):
        raise CLIError("latent-explorer swap: choose train or apply (see --help)")
    return SWAP_COMMANDS[args.swap_command](args)


run = cmd_swap
