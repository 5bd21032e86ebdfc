"""``latent-explorer pretrain-eval MODEL --dataset NAME --labels-per-class 1,10,100``.

A small classifier on the model's encoder (frozen, and fine-tuned) against the same network from random
initialisation, with the same labels and steps (:mod:`explorer.core.pretrain`). Writes ``DIR/pretrain.csv`` (one
row per mode, label count and seed) and ``DIR/pretrain.png`` (accuracy against labels per class); prints the mean
accuracies as a final JSON line.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .args import CLIError, int_list, load_model, model_data, positive_float, positive_int


def add_parser(sub: Any) -> argparse.ArgumentParser:
    ap = sub.add_parser("pretrain-eval", help="does the encoder help a classifier with few labels?")
    ap.add_argument("model", help="checkpoint of a model with an encoder (AE, VAE, PCA, patch)")
    ap.add_argument("--dataset", default=None, help="labelled data set (default: the model's own)")
    ap.add_argument("--labels-per-class", type=int_list, default=(1, 10, 100), help="e.g. 1,10,100 (default)")
    ap.add_argument("--modes", default="frozen,finetune,scratch", help="some of frozen,finetune,scratch")
    ap.add_argument("--seeds", type=positive_int, default=3, help="label draws per count (default 3)")
    ap.add_argument("--steps", type=positive_int, default=300, help="training steps per classifier (default 300)")
    ap.add_argument("--lr", type=positive_float, default=3e-3)
    ap.add_argument("--limit-test", type=positive_int, default=None, help="test images to score (default all)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    ap.add_argument("--out", default=".", help="output folder for pretrain.csv and pretrain.png (default .)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def cmd_pretrain_eval(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from tqdm import tqdm

    from explorer.core.models.base import CapabilityError
    from explorer.core.pretrain import MODES, plot_curves, pretrain_curve, write_csv, write_png

    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise CLIError(f"--modes takes some of {', '.join(MODES)}, got {args.modes!r}")
    model = load_model(args.model, args.device)
    data = model_data(args.dataset, model)
    bar = tqdm(total=1000, file=sys.stderr, disable=args.no_progress, dynamic_ncols=True)

    def progress(fraction: float, message: str) -> None:
        bar.n = int(fraction * 1000)
        bar.set_description(message, refresh=True)

    try:
        curve = pretrain_curve(model, data, labels_per_class=args.labels_per_class, modes=modes, seeds=args.seeds,
                               steps=args.steps, lr=args.lr, limit_test=args.limit_test, progress=progress)
    except (CapabilityError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    finally:
        bar.close()
    out = Path(args.out)
    csv_path = write_csv([curve], out / "pretrain.csv")
    png_path = write_png(plot_curves([curve]), out / "pretrain.png")
    print(json.dumps({**curve.to_dict(), "csv": str(csv_path), "png": str(png_path)}))
    return 0


run = cmd_pretrain_eval
