"""``latent-explorer complete MODEL (--index N | --image FILE) --mask x0,y0,x1,y1 --out grid.png``.

Fills the masked rectangle of a datum (test split of the model's data set) or of an image file with what the model
believes belongs there (latent search, :mod:`explorer.core.completion`). The grid shows, left to right: the
original, the masked input, then each completion (blended), best first. Prints a final JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .args import CLIError, float_, load_model, model_data, nonnegative_int, positive_int


def _box(text: str) -> tuple[int, int, int, int]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x0,y0,x1,y1 in pixels, got {text!r}") from None
    if len(vals) != 4:
        raise argparse.ArgumentTypeError(f"expected four numbers x0,y0,x1,y1, got {text!r}")
    return vals  # type: ignore[return-value]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    ap = sub.add_parser("complete", help="fill a masked region of an image by searching the latent space")
    ap.add_argument("model", help="checkpoint (.safetensors)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", type=nonnegative_int, help="datum N of the data set's test split")
    src.add_argument("--image", help="an image file (resized to the model's size)")
    ap.add_argument("--mask", type=_box, required=True, help="the missing rectangle x0,y0,x1,y1 in pixels (x1, y1 "
                                                             "exclusive)")
    ap.add_argument("--dataset", default=None, help="data set for --index (default: the model's own)")
    ap.add_argument("--restarts", type=positive_int, default=4, help="starting codes (default 4)")
    ap.add_argument("--steps", type=positive_int, default=300, help="optimisation steps (default 300)")
    ap.add_argument("--prior-weight", type=float_, default=None, help="weight of the prior term")
    ap.add_argument("--blend", choices=["poisson", "feather", "none"], default="poisson")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=positive_int, default=4, help="pixel scale of the grid PNG (default 4)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    ap.add_argument("--out", required=True, help="grid PNG path")
    return ap


def _code_stats(model: Any, data: Any) -> Any:
    """Mean and std of training codes: the prior for a plain AE (whose codes follow no known distribution)."""
    if data is None or model.family != "ae" or data.n_train == 0:
        return None
    from explorer.core.latent.encoding import encode_dataset

    z = encode_dataset(model, data.images[: min(data.n_train, 2000)])
    return z.mean(0), z.std(0)


def _image_file(path: str, model: Any) -> Any:
    from explorer.core.data.base import DataSourceError
    from explorer.core.data.transforms import convert_channels, decode_files

    c, h, w = model.image_shape
    if h != w:
        raise CLIError(f"image files are read as squares, but the model takes {h}x{w} images")
    f = Path(path)
    if not f.is_file():
        raise CLIError(f"{f}: file not found")
    decoded = decode_files([f], h)
    if len(decoded.failures):
        raise CLIError(f"{f}: cannot read it as an image ({decoded.failures[0][1]})")
    try:
        return convert_channels(decoded.images, c)[0]
    except DataSourceError as exc:
        raise CLIError(str(exc)) from exc


def cmd_complete(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from explorer.core.checkpoint import atomic_write
    from explorer.core.completion import box_mask, complete
    from explorer.core.imaging import tile, to_hwc, upscale_nearest
    from explorer.core.progress import Cancelled

    model = load_model(args.model, args.device)
    data = model_data(args.dataset, model, required=args.index is not None)
    if args.index is not None:
        if args.index >= data.n_test:
            raise CLIError(f"--index {args.index} is out of range: the test split of {data.name!r} has "
                           f"{data.n_test} images")
        image = data.images[data.n_train + args.index]
        source = {"dataset": data.name, "index": args.index}
    else:
        image = _image_file(args.image, model)
        source = {"image": args.image}
    try:
        mask = box_mask(model.image_shape, *args.mask)
        result = complete(model, image, mask, restarts=args.restarts, steps=args.steps,
                          prior_weight=args.prior_weight, blend=args.blend, code_stats=_code_stats(model, data),
                          generator=torch.Generator().manual_seed(args.seed))
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    except Cancelled:
        raise CLIError("interrupted") from None
    original = image.astype(np.float32) / 255.0
    shown = original.copy()
    shown[:, mask] = 0.5  # the hole as the search saw it: grey
    panels = np.concatenate([original[None], shown[None], result.blended])
    grid = upscale_nearest(tile(to_hwc(panels), cols=len(panels)), args.scale)
    if grid.shape[2] == 1:
        grid = grid[..., 0]

    from PIL import Image

    out = atomic_write(args.out, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))
    hole = mask[None]
    hole_mse = [float(np.square(b - original)[np.broadcast_to(hole, b.shape)].mean()) for b in result.blended]
    print(json.dumps({"out": str(out), **source, "mask": list(args.mask), **result.info(),
                      "hole_mse_vs_original": [round(v, 6) for v in hole_mse],
                      "latent_best": [round(float(v), 5) for v in result.latents[0]]}))
    return 0


run = cmd_complete
