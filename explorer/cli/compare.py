"""``latent-explorer compare MODEL MODEL... --dataset NAME --out DIR``: a headless comparison of models.

Writes per-model PCA maps (Procrustes-aligned, prior density underneath), prior-sample grids,
reconstructions, ``metrics.csv`` / ``metrics.json`` and ``rate_distortion.csv`` (see
:func:`explorer.core.compare.write_comparison`), then prints a final JSON line on stdout. Needs no display
and never imports Qt.

"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from .args import CLIError, load_models, positive_int


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to an ``add_subparsers()`` action; returns its parser."""
    p = subparsers.add_parser(
        "compare",
        help="compare models trained on the same data: aligned maps, prior samples, metrics.csv (headless)",
        description="Compare models trained on the same data set. Writes map-*.png, maps.png, samples-*.png, "
                    "reconstructions.png, metrics.csv, metrics.json and rate_distortion.csv into --out.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help=".safetensors checkpoints (two or more to compare)")
    p.add_argument("--dataset", default=None,
                   help="mnist, fashion-mnist, digits, faces, folder:PATH, celeba:PATH "
                        "(default: the data set the first checkpoint was trained on)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--max-items", type=positive_int, default=None,
                   help="use at most N test images for metrics and maps (default: all)")
    p.add_argument("--max-train", type=positive_int, default=10000,
                   help="training images used as kNN / probe references and for the nearest-image distance")
    p.add_argument("--samples", type=positive_int, default=1000, help="prior samples judged per model")
    p.add_argument("--grid", type=positive_int, default=64, help="prior samples in each samples-*.png")
    p.add_argument("--names", default=None, help="comma-separated model names (default: the file names)")
    p.add_argument("--count", type=positive_int, default=None, help="images to generate (faces)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets and the prior samples")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--no-pca-baseline", action="store_true", help="leave PCA out of rate_distortion.csv")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return p






def _load_data(args: argparse.Namespace, models: Sequence[Any]) -> Any:
    from explorer.core.data import DataSourceError, load_dataset

    name = args.dataset
    if not name:
        for model in models:
            name = (getattr(model, "metadata", {}) or {}).get("dataset")
            if name:
                break
    if not name:
        raise CLIError("the checkpoints do not say which data set they were trained on; pass --dataset NAME")
    c, h, w = models[0].image_shape
    try:
        data = load_dataset(name, image_size=h if h == w else None, channels=c, count=args.count)
    except DataSourceError as exc:
        raise CLIError(str(exc)) from exc
    if data.image_shape != tuple(models[0].image_shape):
        raise CLIError(f"data set {name!r} has images of shape {list(data.image_shape)} but the models expect "
                     f"{list(models[0].image_shape)}")
    if data.n_test == 0:
        raise CLIError(f"data set {name!r} has no test split to compare on")
    return data


def cmd_compare(args: argparse.Namespace) -> int:
    from explorer.core.compare import METRIC_COLUMNS, CompareError, write_comparison
    from explorer.core.export import ExportError

    t0 = time.perf_counter()
    names = None
    if args.names:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != len(args.models) or not all(names):
            raise CLIError(f"--names gives {len(names)} name(s) for {len(args.models)} model(s)")
    models = load_models(args.models, args.device)
    data = _load_data(args, models)

    def progress(stage: str, fraction: float) -> None:
        if not args.no_progress:
            print(f"compare: {stage} ({100 * fraction:.0f}%)", file=sys.stderr, flush=True)

    try:
        summary = write_comparison(
            models, data, args.out, names, max_items=args.max_items, max_train=args.max_train,
            n_samples=max(2, args.samples), n_grid=args.grid, seed=args.seed,
            pca_baseline=not args.no_pca_baseline, progress=progress,
        )
    except (CompareError, ExportError) as exc:
        raise CLIError(str(exc)) from exc
    except OSError as exc:
        raise CLIError(f"cannot write into {args.out}: {exc.strerror or exc}") from exc
    keep = ["model", "family", "latent_dim", *(c.name for c in METRIC_COLUMNS)]
    print(json.dumps({
        "out": summary["out_dir"],
        "dataset": summary["dataset"],
        "metrics": [{k: row.get(k) for k in keep} for row in summary["metrics"]],
        "reference_real_images": summary["reference_real_images"],
        "files": summary["files"],
        "seconds": round(time.perf_counter() - t0, 2),
    }))
    return 0


run = cmd_compare
