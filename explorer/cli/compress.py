"""``latent-explorer compress MODEL --dataset NAME --out DIR``: the patch autoencoder as an image codec.

Compresses the test split with the patch model (8-bit codes), PCA with as many components on the same patches,
and JPEG at the same byte budget (:mod:`explorer.core.compression`). Writes ``DIR/compress-grid.png`` (rows:
original, patch AE, PCA, JPEG) and ``DIR/compress-metrics.json``; prints the metrics as a final JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .args import CLIError, load_model, model_data, positive_int


def add_parser(sub: Any) -> argparse.ArgumentParser:
    ap = sub.add_parser("compress", help="measure a patch autoencoder as a codec against PCA and JPEG")
    ap.add_argument("model", help="a patch model checkpoint (train --arch patch)")
    ap.add_argument("--dataset", default=None, help="data set (default: the model's own)")
    ap.add_argument("--limit-test", type=positive_int, default=500, help="test images to measure (default 500)")
    ap.add_argument("--grid", type=positive_int, default=8, help="images per row in the grid (default 8)")
    ap.add_argument("--no-jpeg", action="store_true", help="leave JPEG out (it is the slow part)")
    ap.add_argument("--scale", type=positive_int, default=2, help="pixel scale of the grid PNG (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    ap.add_argument("--out", required=True, help="output folder")
    return ap


def cmd_compress(args: argparse.Namespace) -> int:
    import numpy as np

    from explorer.core.checkpoint import atomic_write
    from explorer.core.compression import evaluate_compression
    from explorer.core.imaging import tile, to_hwc, upscale_nearest

    model = load_model(args.model, args.device)
    if model.family != "patch":
        raise CLIError(f"{args.model} is a {model.family} model; compress needs a patch model "
                       "(latent-explorer train --arch patch ...)")
    data = model_data(args.dataset, model)
    try:
        rep, recon = evaluate_compression(model, data, limit_test=args.limit_test, seed=args.seed,
                                          jpeg=not args.no_jpeg)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    out_dir = Path(args.out)
    k = min(args.grid, rep.images)
    rows = [recon[name][:k] for name in ("original", "patch", "pca", "jpeg") if name in recon]
    grid = upscale_nearest(tile(to_hwc(np.concatenate(rows)), cols=k), args.scale)
    if grid.shape[2] == 1:
        grid = grid[..., 0]

    from PIL import Image

    png = atomic_write(out_dir / "compress-grid.png", lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))
    doc = {**rep.to_dict(), "grid_rows": ["original", "patch", "pca", "jpeg"][: len(rows)], "grid": str(png)}
    text = json.dumps(doc, indent=2)
    metrics = atomic_write(out_dir / "compress-metrics.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(json.dumps({**doc, "metrics": str(metrics)}))
    return 0


run = cmd_compress
