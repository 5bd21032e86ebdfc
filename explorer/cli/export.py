"""``latent-explorer export interpolate|traverse|manifold MODEL``: walks through latent space as PNG / GIF / MP4,
and the decoded manifold (a grid of images decoded across a map) as PNG."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from .args import (
    CLIError,
    Parser,
    float_,
    index_list,
    load_failure,
    model_data,
    nonnegative_int,
    positive_int,
)


def add_parser(sub: Any) -> None:
    ex = sub.add_parser("export", help="export an interpolation, a traversal (PNG / GIF / MP4) or the decoded "
                                       "manifold (PNG), headless")
    exsub = ex.add_subparsers(dest="export_command", parser_class=Parser,
                              metavar="{interpolate,traverse,manifold}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="a .safetensors checkpoint")
        p.add_argument("--dataset", default=None,
                       help="data set to encode (default: the one the model was trained on)")
        p.add_argument("--count", type=positive_int, default=None,
                       help="faces: how many to draw (default 12000); others: at most N images")
        p.add_argument("--out", required=True, help="output file: .gif, .png (a grid) or .mp4 (needs ffmpeg)")
        p.add_argument("--duration", type=positive_int, default=100, metavar="MS",
                       help="GIF/MP4: milliseconds per frame (default 100)")
        p.add_argument("--bounce", action="store_true", help="GIF/MP4: play forwards, then backwards")
        p.add_argument("--min-size", type=nonnegative_int, default=112, metavar="PX",
                       help="enlarge small images (nearest neighbour) to at least PX pixels (default 112; 0: never)")
        p.add_argument("--nrow", type=positive_int, default=None, help="PNG: images per row")
        p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")

    ip = exsub.add_parser(
        "interpolate", help="frames between data points I and J (and more with --via)",
        description="Interpolate between the latent codes of data points. I, J and --via index the whole data "
                    "set as loaded (training rows first, then test rows), the same numbers as the explorer's "
                    "points and the pN names of expressions. A GAN has no encoder: there they are seeds of "
                    "prior samples.")
    common(ip)
    ip.add_argument("--from", dest="start", type=nonnegative_int, required=True, metavar="I")
    ip.add_argument("--to", dest="end", type=nonnegative_int, required=True, metavar="J")
    ip.add_argument("--via", type=index_list, default=(), metavar="K,L",
                    help="keyframes to pass through between I and J, in order")
    ip.add_argument("--steps", type=positive_int, default=16, help="frames in all, keyframes included (default 16)")
    ip.add_argument("--method", choices=["slerp", "lerp"], default="slerp")

    tp = exsub.add_parser(
        "traverse", help="vary one attribute vector (or latent dimension) for several starting points",
        description="A traversal grid: rows are starting points, columns strengths along an attribute vector "
                    "(mean difference of the attribute's latent codes, bias-corrected by regression on the "
                    "other attributes) or values of one latent dimension. A .gif/.mp4 animates the columns.")
    common(tp)
    what = tp.add_mutually_exclusive_group(required=True)
    what.add_argument("--attribute", metavar="NAME",
                      help="an attribute of the data set (e.g. smiling), or label=K for labelled data sets "
                           "(K a label name or number: that label's mean minus the others')")
    what.add_argument("--dim", type=nonnegative_int, metavar="K", help="latent dimension K instead")
    tp.add_argument("--steps", type=positive_int, default=9, help="strengths / values (columns), default 9")
    tp.add_argument("--range", type=float_, nargs=2, default=None, metavar=("LO", "HI"),
                    help="strength range (default -2 2 for attributes; -3 3 for --dim, set as absolute values)")
    tp.add_argument("--rows", type=positive_int, default=4, help="starting points (default 4)")
    tp.add_argument("--start", type=index_list, default=None, metavar="I,J",
                    help="starting points by data set index instead of random test images")
    tp.add_argument("--seed", type=int, default=0, help="picks the random starting points")
    tp.add_argument("--method", choices=["regression", "mean_difference"], default="regression",
                    help="attribute vector: regression (bias-corrected, default) or the plain mean difference")
    tp.add_argument("--limit", type=positive_int, default=10000,
                    help="encode at most N images to compute the attribute vector (default 10000)")

    mp = exsub.add_parser(
        "manifold", help="a grid of images decoded across the data's map (the VAE paper's figure 4)",
        description="Encode the data set, compute a 2-D map of its latents and decode a grid of tiles across the "
                    "map: through the exact inverse for pca and dims, the learned inverse for tsne and umap, "
                    "with tiles greyed where that inverse is not trusted (far from the data). Writes a PNG whose "
                    "top row is the top of the map (largest y). A GAN's map is made of prior samples.")
    mp.add_argument("model", help="a .safetensors checkpoint")
    mp.add_argument("--dataset", default=None, help="data set to encode (default: the one the model was trained on)")
    mp.add_argument("--count", type=positive_int, default=None, help="faces: how many to draw (default 12000)")
    mp.add_argument("--out", required=True, help="output .png")
    mp.add_argument("--grid", type=positive_int, default=20,
                    help="tiles along the map's longer side (default 20; at most 64)")
    mp.add_argument("--projection", choices=["pca", "dims", "tsne", "umap"], default="pca",
                    help="the map (default pca)")
    mp.add_argument("--dims", type=index_list, default=(0, 1), metavar="I,J",
                    help="--projection dims: the two latent dimensions (default 0,1)")
    mp.add_argument("--bounds", type=float_, nargs=4, default=None, metavar=("X0", "Y0", "X1", "Y1"),
                    help="the map rectangle to tile (default: the data's extent, 0.5%% trimmed each side)")
    mp.add_argument("--limit", type=positive_int, default=5000,
                    help="encode at most N images for the map (default 5000)")
    mp.add_argument("--threshold", type=float_, default=0.5,
                    help="trust below which tiles fade to grey (default 0.5; 0: never)")
    mp.add_argument("--scale", type=positive_int, default=None,
                    help="repeat each pixel N times (default: enough for 48 px tiles)")
    mp.add_argument("--pad", type=nonnegative_int, default=0, help="pixels between tiles (default 0)")
    mp.add_argument("--seed", type=int, default=0, help="t-SNE / UMAP seed and the GAN's prior samples")
    mp.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")


def _export_target(args: argparse.Namespace) -> str:
    from pathlib import Path

    from explorer.core.export import EXPORT_FORMATS, MP4_HELP, ffmpeg_executable

    suffix = Path(args.out).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise CLIError(f"--out {args.out}: use a file name ending in {', '.join(EXPORT_FORMATS)}")
    if suffix == ".mp4" and ffmpeg_executable() is None:  # fail before the slow part
        raise CLIError(MP4_HELP)
    if Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} is a folder; give a file name")
    return suffix


def _export_model(args: argparse.Namespace):
    from explorer.core import checkpoint

    try:
        return checkpoint.load(args.model, device=args.device)
    except checkpoint.CheckpointError as exc:
        raise CLIError(str(exc)) from exc
    except (RuntimeError, ValueError, AssertionError, MemoryError) as exc:  # an unknown or unavailable device
        raise CLIError(load_failure(args.model, args.device, exc)) from exc


def _check_index(option: str, index: int, data: Any) -> None:
    if not 0 <= index < len(data):
        raise CLIError(f"{option} {index} is out of range: {data.name} has {len(data)} images (0 to {len(data) - 1})")


def _encode_rows(model: Any, data: Any, rows: Any) -> Any:
    import numpy as np

    from explorer.core.latent.encoding import encode_dataset

    return encode_dataset(model, data.images[np.asarray(rows, dtype=np.int64)])


def _prior(model: Any, seeds: Sequence[int]) -> Any:
    import numpy as np
    import torch

    # One generator per seed, so seed 7 is the same latent whatever the other keyframes are.
    return np.stack([model.prior_sample(1, torch.Generator().manual_seed(int(s)))[0].cpu().numpy()
                     for s in seeds]).astype(np.float32)


def _decode_frames(model: Any, z: Any, batch: int = 256) -> Any:
    import numpy as np
    import torch

    from explorer.core.export import to_frames

    out = []
    with torch.no_grad():
        for i in range(0, len(z), batch):
            zb = torch.from_numpy(np.ascontiguousarray(z[i:i + batch], dtype=np.float32)).to(model.device)
            out.append(to_frames(model.decode(zb)))
    return np.concatenate(out)


def _write_export(args: argparse.Namespace, frames: Any, *, nrow: int | None, png_frames: Any = None) -> Any:
    from explorer.core.export import ExportError, export_frames

    try:
        if png_frames is not None and args.out.lower().endswith(".png"):
            frames = png_frames
        return export_frames(args.out, frames, nrow=args.nrow or nrow, duration_ms=args.duration,
                             bounce=args.bounce, min_size=args.min_size)
    except ExportError as exc:
        raise CLIError(str(exc)) from exc


def _image_size(path: Any) -> list[int]:
    from PIL import Image

    with Image.open(path) as im:
        return [im.width, im.height]


def cmd_export_interpolate(args: argparse.Namespace) -> int:
    import time

    from explorer.core.latent.interpolation import interpolate

    t0 = time.perf_counter()
    _export_target(args)
    keys = [args.start, *args.via, args.end]
    if args.steps < len(keys):
        raise CLIError(f"--steps {args.steps} is fewer than the {len(keys)} keyframes")
    model = _export_model(args)
    if model.capabilities.has_encoder:
        data = model_data(args.dataset, model, count=args.count)
        for option, index in zip(["--from", *["--via"] * len(args.via), "--to"], keys):
            _check_index(option, index, data)
        z_keys = _encode_rows(model, data, keys)
        keyframes = {"indices": keys, "dataset": data.name}
    else:
        # A GAN cannot place data points in its latent space; prior samples by seed are its points.
        z_keys = _prior(model, keys)
        keyframes = {"prior_seeds": keys}
    z = interpolate(z_keys, args.steps, method=args.method)
    frames = _decode_frames(model, z)
    out = _write_export(args, frames, nrow=len(frames))
    print(json.dumps({"out": str(out), "frames": len(frames), "size": _image_size(out), "method": args.method,
                      "keyframes": keyframes, "seconds": round(time.perf_counter() - t0, 3)}))
    return 0


def _resolve_attribute(spec: str, model: Any, data: Any, rows: Any, method: str) -> Any:
    """The AttributeVector for --attribute NAME or label=K."""

    from explorer.core.latent.arithmetic import (
        VectorError,
        attribute_vectors,
        identifier,
        label_vectors,
    )

    has_attrs = data.attributes is not None and len(data.attribute_names) > 0
    name = spec.strip()
    if name.lower().startswith("label="):
        wanted = name.split("=", 1)[1].strip()
        names = list(data.label_names)
        if not names:
            raise CLIError(f"data set {data.name!r} has no labels")
        if wanted in names:
            k = names.index(wanted)
        elif wanted.lstrip("-").isdigit() and 0 <= int(wanted) < len(names):
            k = int(wanted)
        else:
            raise CLIError(f"unknown label {wanted!r} for {data.name}; labels: {', '.join(names)} "
                           f"(or their numbers 0 to {len(names) - 1})")
        z = _encode_rows(model, data, rows)
        key = "label_" + identifier(names[k], prefix="")
        vecs = label_vectors(z, data.labels[rows], names)
        if key not in vecs:
            raise CLIError(f"label {names[k]!r} has too few images among the first {len(rows)} to make a vector")
        return vecs[key]
    if not has_attrs:
        labels = ", ".join(f"label={n}" for n in data.label_names[:10]) or "none"
        raise CLIError(f"data set {data.name!r} has no attributes; use --attribute label=K ({labels}) or --dim K")
    keys = [identifier(n) for n in data.attribute_names]
    lookup = {n.lower(): i for i, n in enumerate(data.attribute_names)}
    lookup.update({k.lower(): i for i, k in enumerate(keys)})
    if name.lower() not in lookup:
        import difflib

        close = difflib.get_close_matches(name, list(data.attribute_names), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise CLIError(f"unknown attribute {name!r} for {data.name}.{hint} Known: {', '.join(data.attribute_names)}")
    index = lookup[name.lower()]
    z = _encode_rows(model, data, rows)
    try:
        vecs = attribute_vectors(z, data.attributes[rows], data.attribute_names, method=method)
    except VectorError as exc:
        raise CLIError(str(exc)) from exc
    return vecs[keys[index]]


def cmd_export_traverse(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from explorer.core.export import strip_frames, upscale
    from explorer.core.latent.interpolation import traverse_dim, traverse_vector

    t0 = time.perf_counter()
    _export_target(args)
    model = _export_model(args)
    if args.dim is not None and args.dim >= model.latent_dim:
        raise CLIError(f"--dim {args.dim} is out of range: the latent space has {model.latent_dim} dimensions "
                       f"(0 to {model.latent_dim - 1})")
    lo, hi = args.range if args.range is not None else ((-3.0, 3.0) if args.dim is not None else (-2.0, 2.0))
    values = np.linspace(lo, hi, args.steps)
    report: dict[str, Any] = {}

    if not model.capabilities.has_encoder:
        if args.attribute is not None:
            raise CLIError(f"{model.family.upper()} models have no encoder, so attribute vectors cannot be computed "
                           "from a data set; traverse a latent dimension with --dim K instead")
        if args.start is not None:
            raise CLIError("--start picks data points, but this model has no encoder; starting points are prior "
                           "samples chosen by --seed")
        starts = _prior(model, [args.seed * 1000 + r for r in range(args.rows)])
        report["starts"] = {"prior_seeds": [args.seed * 1000 + r for r in range(args.rows)]}
    else:
        data = model_data(args.dataset, model, count=args.count)
        if args.start is not None:
            for i in args.start:
                _check_index("--start", i, data)
            start_rows = np.asarray(args.start, dtype=np.int64)
        else:
            # Held-out faces make honest examples; fall back to all rows when there is no test split.
            pool = np.arange(data.n_train, len(data)) if data.n_test else np.arange(len(data))
            if args.rows > len(pool):
                raise CLIError(f"--rows {args.rows} is more than the {len(pool)} images available")
            start_rows = np.sort(np.random.default_rng(args.seed).choice(pool, args.rows, replace=False))
        starts = _encode_rows(model, data, start_rows)
        report["starts"] = {"indices": start_rows.tolist(), "dataset": data.name}
        if args.attribute is not None:
            vec_rows = np.arange(min(args.limit, len(data)))
            vec = _resolve_attribute(args.attribute, model, data, vec_rows, args.method)
            report["attribute"] = vec.info()
    if args.attribute is not None:
        grid = traverse_vector(starts, vec.vector, values)
    else:
        grid = traverse_dim(starts, args.dim, values)
        report["dim"] = args.dim
    rows, steps = grid.shape[:2]
    frames = _decode_frames(model, grid.reshape(rows * steps, -1)).reshape(rows, steps, *model.image_shape[1:],
                                                                           -1)
    flat = frames.reshape(rows * steps, *frames.shape[2:])
    # Animations show one column per frame, the starting points side by side; each image is enlarged before
    # tiling so the padding between them stays thin.
    big = upscale(flat, args.min_size)
    animation = strip_frames(big.reshape(rows, steps, *big.shape[1:]).transpose(1, 0, 2, 3, 4))
    out = _write_export(args, animation, nrow=steps, png_frames=flat)
    print(json.dumps({"out": str(out), "rows": rows, "steps": steps, "values": [round(float(v), 6) for v in values],
                      "frames": 1 if str(out).lower().endswith(".png") else steps,
                      "size": _image_size(out), **report, "seconds": round(time.perf_counter() - t0, 3)},
                     default=float))
    return 0


def cmd_export_manifold(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import numpy as np
    import torch

    from explorer.core.checkpoint import WriteError, atomic_write
    from explorer.core.compare.alignment import map_bounds
    from explorer.core.latent.manifold import MAX_TILES, decode_manifold, grid_shape
    from explorer.core.latent.projection import make_projection

    t0 = time.perf_counter()
    if Path(args.out).suffix.lower() != ".png":
        raise CLIError(f"--out {args.out}: the manifold is a picture; use a file name ending in .png")
    if Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} is a folder; give a file name")
    if args.grid > 64:
        raise CLIError(f"--grid {args.grid} is too large: at most 64 tiles a side ({MAX_TILES} tiles)")
    if not 0 <= args.threshold <= 1:
        raise CLIError(f"--threshold {args.threshold} must be between 0 and 1")
    model = _export_model(args)
    if args.projection == "dims":
        if len(args.dims) != 2 or args.dims[0] == args.dims[1]:
            raise CLIError(f"--dims needs two different latent dimensions, got {','.join(map(str, args.dims))}")
        if max(args.dims) >= model.latent_dim:
            raise CLIError(f"--dims {max(args.dims)} is out of range: the latent space has {model.latent_dim} "
                           f"dimensions (0 to {model.latent_dim - 1})")
    info: dict[str, Any] = {}
    if model.capabilities.has_encoder:
        data = model_data(args.dataset, model, count=args.count)
        rows = np.arange(min(args.limit, len(data)))
        z = _encode_rows(model, data, rows)
        info["dataset"] = data.name
    else:
        with torch.no_grad():
            z = model.prior_sample(args.limit, torch.Generator().manual_seed(args.seed)).cpu().numpy()
        info["prior_samples"] = int(len(z))
    options: dict[str, Any] = {}
    if args.projection == "dims":
        options = {"i": args.dims[0], "j": args.dims[1]}
    elif args.projection in ("tsne", "umap"):
        options = {"seed": args.seed}
    try:
        projection = make_projection(args.projection, **options)
        xy = projection.fit(z)
        projection.fit_inverse()
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    bounds = tuple(args.bounds) if args.bounds is not None else map_bounds(xy)
    try:
        r, c = grid_shape(bounds, grid=args.grid, max_side=64)
        manifold = decode_manifold(model, projection, bounds, r, c)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    tile = max(model.image_shape[1:])
    scale = args.scale or max(1, -(-48 // tile))
    picture = manifold.mosaic(threshold=args.threshold, pad=args.pad, scale=scale)

    def write(tmp: Any) -> None:
        from PIL import Image

        Image.fromarray(picture).save(tmp, format="PNG")

    try:
        out = atomic_write(args.out, write)
    except WriteError as exc:
        raise CLIError(str(exc)) from exc
    print(json.dumps({"out": str(out), "rows": r, "cols": c, "projection": args.projection,
                      "bounds": [round(float(v), 6) for v in bounds], "size": [picture.shape[1], picture.shape[0]],
                      "trusted_tiles": int((manifold.trust >= args.threshold).sum()), **info,
                      "seconds": round(time.perf_counter() - t0, 3)}))
    return 0


EXPORT_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "interpolate": cmd_export_interpolate,
    "traverse": cmd_export_traverse,
    "manifold": cmd_export_manifold,
}


def cmd_export(args: argparse.Namespace) -> int:
    if not getattr(args, "export_command", None):
        raise CLIError("latent-explorer export: choose interpolate, traverse or manifold (see --help)")
    return EXPORT_COMMANDS[args.export_command](args)


run = cmd_export
