"""Writing a comparison to a folder: maps, sample grids, metrics.csv / metrics.json, rate_distortion.csv."""

import csv
import io
import json
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.base import ImageData
from ..models.base import LatentModel
from .alignment import align_maps, map_bounds, prior_density
from .columns import _METRIC_NAMES, INFO_COLUMNS, METRIC_COLUMNS, CompareError
from .common import (
    _check_cancel,
    _EvalMode,
    _float_batch,
    _split,
    _subset_rows,
    check_compatible,
    model_names,
)
from .distortion import pca_baselines
from .judge import prior_images, sample_judge
from .metrics import model_metrics, reconstruction_error, reference_metrics
from .render import _side_by_side, render_map


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    from ..checkpoint import atomic_write

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(k)) for k in header])
    text = buf.getvalue()

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)

    return atomic_write(path, write)


def _write_json(path: Path, doc: Any) -> Path:
    from ..checkpoint import atomic_write

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    text = json.dumps(doc, indent=2, default=default, allow_nan=False)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")

    return atomic_write(path, write)


def _finite(doc: Any) -> Any:
    """NaN / inf -> None so the JSON is valid (json has no NaN)."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_finite(v) for v in doc]
    return doc


def write_comparison(
    models: Sequence[LatentModel],
    data: ImageData,
    out_dir: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    *,
    split: str = "test",
    max_items: int | None = None,
    max_train: int = 10000,
    n_samples: int = 1000,
    n_grid: int = 64,
    seed: int = 0,
    pca_baseline: bool = True,
    map_size: int = 480,
    progress: Callable[[str, float], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Write a comparison of ``models`` on ``data`` into ``out_dir`` and return its summary.

    Files (all written atomically):

    * ``metrics.csv``: one row per model, columns ``INFO_COLUMNS`` then ``METRIC_COLUMNS``;
      ``metrics.json``: the same plus per-dimension KL / code variance, the column explanations, and the
      sample figures of real test images for scale;
    * ``map-<name>.png``: each encoder model's PCA map of the ``split`` images (at most ``max_items``),
      Procrustes-aligned to the first model's map and drawn over shared bounds, coloured by label, with the
      prior's density as a warm tint; ``maps.png``: all of them side by side;
    * ``samples-<name>.png``: ``n_grid`` prior samples per model, the same z for every model of one latent size;
    * ``reconstructions.png``: a row of test images, then one row of reconstructions per encoder model;
    * ``rate_distortion.csv``: reconstruction error against latent size, with PCA at the same sizes;
    * ``importance-<name>.png``: on data with known factors (faces), the DCI importance matrix, one row per
      factor (``metrics.json``: ``metrics[i].disentanglement.factor_names``), one column per latent unit.
    """
    from ..export import save_png, save_png_grid, to_frames
    from ..latent.encoding import encode_dataset
    from ..latent.projection import make_projection

    names = model_names(models, names)
    check_compatible(models, data, names)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CompareError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    slugs = model_names([m for m in models], [_slug(n) for n in names])

    def report(stage: str, fraction: float) -> None:
        _check_cancel(cancel)
        if progress is not None:
            progress(stage, fraction)

    n_steps = 3 * len(models) + 2
    judge = sample_judge(data, seed=seed)
    report("metrics", 0.0)
    rows: list[dict[str, Any]] = []
    for i, (model, name) in enumerate(zip(models, names)):
        m = model_metrics(model, data, split=split, max_items=max_items, max_train=max_train, n_samples=n_samples,
                          seed=seed, judge=judge, cancel=cancel)
        rows.append({"model": name, **m})
        report(f"metrics of {name}", (i + 1) / n_steps)

    # Maps: one PCA map per encoder model, aligned to the first, on shared bounds.
    part = _split(data, split)
    idx = _subset_rows(len(part), max_items, seed)
    images, labels = part.images[idx], part.labels[idx]
    projections: list[Any] = []
    maps: list[np.ndarray | None] = []
    for i, model in enumerate(models):
        if model.capabilities.has_encoder:
            proj = make_projection("pca")
            maps.append(proj.fit(encode_dataset(model, images, cancel=cancel)))
            projections.append(proj)
        else:
            maps.append(None)
            projections.append(None)
        report("maps", (len(models) + i + 1) / n_steps)
    aligned, transforms = align_maps(maps)
    bounds = map_bounds(*aligned)
    map_images = []
    map_files: dict[str, str] = {}
    for model, name, slug, xy, proj, tr in zip(models, names, slugs, aligned, projections, transforms):
        if xy is None:
            continue
        prior = prior_density(model, proj, bounds, n=10000, resolution=96, seed=seed, alignment=tr)
        img = render_map(xy, labels, bounds, label_names=data.label_names, prior=prior,
                         title=f"{name} ({model.family}, {model.latent_dim}-d)", size=map_size, seed=seed)
        path = save_png(out / f"map-{slug}.png", img, min_size=0)
        files.append(str(path))
        map_files[name] = str(path)
        map_images.append(img)
    if map_images:
        files.append(str(save_png(out / "maps.png", _side_by_side(map_images), min_size=0)))

    # Prior samples (the same seed, so the same z for models of one latent size) and reconstructions.
    sample_files: dict[str, str] = {}
    for i, (model, name, slug) in enumerate(zip(models, names, slugs)):
        frames = to_frames(prior_images(model, n_grid, seed=seed))
        path = save_png_grid(out / f"samples-{slug}.png", frames, nrow=max(1, int(math.ceil(math.sqrt(n_grid)))))
        files.append(str(path))
        sample_files[name] = str(path)
        report("samples", (2 * len(models) + i + 1) / n_steps)
    # Importance matrices (factors x units) of the models scored against known factors, as heat maps.
    importance_files: dict[str, str] = {}
    for row, slug in zip(rows, slugs):
        if row.get("disentanglement"):
            from .disentanglement import importance_heatmap

            path = save_png(out / f"importance-{slug}.png", importance_heatmap(row["disentanglement"]), min_size=0)
            files.append(str(path))
            importance_files[row["model"]] = str(path)
    n_show = min(10, len(images))
    recon_rows = [to_frames(torch.from_numpy(images[:n_show]).float() / 255.0)]
    recon_names = ["(test images)"]
    for model, name in zip(models, names):
        if model.capabilities.has_encoder:
            with torch.no_grad(), _EvalMode(model):
                x = _float_batch(images[:n_show], model.device)
                recon_rows.append(to_frames(model.decode(model.encode(x))))
            recon_names.append(name)
    if len(recon_rows) > 1:
        files.append(str(save_png_grid(out / "reconstructions.png", np.concatenate(recon_rows), nrow=n_show)))

    # Rate–distortion: the models' reconstruction errors and PCA at each of their latent sizes.
    rd = [{"name": r["model"], "kind": "model", "family": r["family"], "latent_dim": r["latent_dim"],
           "recon_bce": r["recon_bce"], "recon_mse": r["recon_mse"]} for r in rows if r["recon_bce"] is not None]
    if pca_baseline and rd:
        eval_images = images
        for d, pca in pca_baselines(data, [r["latent_dim"] for r in rd], seed=seed).items():
            rd.append({"name": f"pca-{d}", "kind": "pca baseline", "family": "pca", "latent_dim": d,
                       **reconstruction_error(pca, eval_images)})
    rd.sort(key=lambda r: (r["latent_dim"], r["kind"] != "model", r["name"]))
    report("tables", (3 * len(models) + 1) / n_steps)

    header = INFO_COLUMNS + _METRIC_NAMES
    files.append(str(_write_csv(out / "metrics.csv", header, rows)))
    if rd:
        files.append(str(_write_csv(out / "rate_distortion.csv",
                                    ["name", "kind", "family", "latent_dim", "recon_bce", "recon_mse"], rd)))
    reference = reference_metrics(data, n=n_samples, max_train=max_train, seed=seed, judge=judge)
    summary = {
        "out_dir": str(out),
        "dataset": data.name,
        "models": names,
        "columns": [c.to_dict() for c in METRIC_COLUMNS],
        "metrics": rows,
        "reference_real_images": reference,
        "judge_accuracy": None if judge is None else judge.accuracy,
        "rate_distortion": rd,
        "maps": map_files,
        "samples": sample_files,
        "importance": importance_files,
        "reconstruction_rows": recon_names,
        "bounds": list(bounds),
    }
    files.append(str(_write_json(out / "metrics.json", _finite(summary))))
    summary["files"] = files
    report("done", 1.0)
    return _finite(summary)
