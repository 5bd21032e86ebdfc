"""Rate-distortion: reconstruction error against latent size, for the open models and PCA baselines."""

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data.base import ImageData
from ..models.base import LatentModel
from ..models.registry import build_model
from .columns import CompareError
from .common import _split, _subset_rows, check_compatible, model_names
from .metrics import reconstruction_error


# ====================================================================== rate–distortion
def pca_baselines(data: ImageData, latent_dims: Sequence[int], *, max_items: int = 20000,
                  seed: int = 0) -> dict[int, LatentModel]:
    """The repo's PCA model fitted on (at most ``max_items``) training images, one per latent size.

    One fit at the largest size serves every size: PCA's leading k components do not depend on how many are
    kept, so the smaller models are truncations of the large one.
    """
    dims = sorted({int(d) for d in latent_dims})
    if not dims:
        return {}
    n_pixels = int(np.prod(data.image_shape))
    if dims[-1] > n_pixels:
        raise CompareError(f"a PCA baseline of {dims[-1]} dimensions needs more than the {n_pixels} pixels per image")
    train = data.train()
    if train.n_train < 2:
        raise CompareError(f"data set {data.name!r} has too few training images to fit PCA")
    rows = _subset_rows(train.n_train, max_items, seed)
    big = build_model("pca", latent_dim=dims[-1], image_shape=data.image_shape)
    x = torch.from_numpy(train.images[rows]).float().div_(255.0)
    if len(rows) >= 2 * n_pixels or n_pixels <= 2048:
        big.fit(x)  # the model's own exact fit: fast for tall data (MNIST) and small images
    else:
        # Wide data (3000 faces of 48x48x3 = 6912 pixels): PCA.fit's exact SVD took 161 s on a 2-core VM;
        # the leading components alone, by randomised SVD, take about a second.
        _fit_pca_lowrank(big, x, seed)
    out: dict[int, LatentModel] = {}
    for d in dims:
        m = build_model("pca", latent_dim=d, image_shape=data.image_shape)
        with torch.no_grad():
            m.mean.copy_(big.mean)
            m.components.copy_(big.components[:d])
            m.scale.copy_(big.scale[:d])
        m.eval()
        m.metadata = {"dataset": data.name, "label_names": list(data.label_names)}
        out[d] = m
    return out


@torch.no_grad()
def _fit_pca_lowrank(model: LatentModel, x: torch.Tensor, seed: int = 0) -> None:
    """Fill a PCA model's buffers with the leading components from a randomised SVD (Halko et al. 2011).

    Same result as ``PCA.fit`` up to the accuracy of the randomised range finder (4 power iterations and 10
    extra directions: the reconstruction error is within a fraction of a percent), same sign convention.
    """
    flat = x.reshape(len(x), -1).float()
    n, p = flat.shape
    mean = flat.mean(0)
    k = model.latent_dim
    q = min(k + 10, n, p)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, s, v = torch.svd_lowrank(flat - mean, q=q, niter=4)
    kept = min(k, q, n - 1)
    axes = v[:, :kept].T  # (kept, p)
    idx = axes.abs().argmax(1, keepdim=True)
    signs = torch.sign(axes.gather(1, idx))
    signs[signs == 0] = 1.0
    model.mean.copy_(mean)
    model.components.zero_()
    model.components[:kept].copy_(axes * signs)
    model.scale.fill_(1.0)
    model.scale[:kept].copy_((s[:kept].square() / max(n - 1, 1)).sqrt().clamp_min(1e-6))


def rate_distortion(
    models_or_paths: Sequence[LatentModel | str | os.PathLike[str]],
    data: ImageData,
    *,
    names: Sequence[str] | None = None,
    split: str = "test",
    max_items: int | None = None,
    pca_baseline: bool = True,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Reconstruction error against latent size: one row per model with an encoder, plus (``pca_baseline``)
    the PCA model at each of their latent sizes. Rows: ``name, kind ("model" / "pca baseline"), family,
    latent_dim, recon_bce, recon_mse``, sorted by latent size. Models are loaded from paths when given paths.
    """
    from ..checkpoint import load

    models = [m if isinstance(m, LatentModel) else load(m) for m in models_or_paths]
    names = model_names(models, names)
    check_compatible(models, data, names)
    part = _split(data, split)
    images = part.images[_subset_rows(len(part), max_items, seed)]
    rows: list[dict[str, Any]] = []
    for model, name in zip(models, names):
        if not model.capabilities.has_encoder:
            continue
        rows.append({"name": name, "kind": "model", "family": model.family, "latent_dim": model.latent_dim,
                     **reconstruction_error(model, images)})
    if pca_baseline and rows:
        for d, pca in pca_baselines(data, [r["latent_dim"] for r in rows], seed=seed).items():
            rows.append({"name": f"pca-{d}", "kind": "pca baseline", "family": "pca", "latent_dim": d,
                         **reconstruction_error(pca, images)})
    rows.sort(key=lambda r: (r["latent_dim"], r["kind"] != "model", r["name"]))
    return rows
