"""The per-model metrics table: reconstruction, KL, active dimensions, label probes, sample quality."""

import threading
import time
import warnings
from typing import Any

import numpy as np
import torch

from ..data.base import ImageData
from ..models.base import LatentModel
from .columns import _METRIC_NAMES, ACTIVE_VARIANCE, CompareError
from .common import (
    _bce_per_image,
    _check_cancel,
    _check_model_data,
    _EvalMode,
    _float_batch,
    _one_thread,
    _split,
    _subset_rows,
)
from .judge import SampleJudge, _sample_metrics, prior_images, sample_judge


# ====================================================================== reconstruction
@torch.no_grad()
def reconstruction_error(model: LatentModel, images: np.ndarray, batch_size: int = 500) -> dict[str, float]:
    """``{"recon_bce": nats per image, "recon_mse": per pixel}`` of ``decode(encode(x))`` over ``images``.

    ``images`` are uint8 (N, C, H, W) (or floats in [0, 1]). A VAE reconstructs from its posterior mean, the
    deterministic reconstruction a user sees; its training loss samples z instead, which is a little worse.
    """
    if not model.capabilities.has_encoder:
        raise CompareError(f"{model.family.upper()} models have no encoder, so they have no reconstruction error")
    if len(images) == 0:
        raise CompareError("no images to reconstruct")
    bce = mse = 0.0
    n = len(images)
    with _EvalMode(model):
        for start in range(0, n, batch_size):
            x = _float_batch(images[start:start + batch_size], model.device)
            r = model.decode(model.encode(x))
            bce += float(_bce_per_image(r, x).sum())
            mse += float((r.double() - x.double()).square().flatten(1).mean(1).sum())
    return {"recon_bce": bce / n, "recon_mse": mse / n}


# ====================================================================== the metrics table
# Prior samples judged for models that draw them pixel by pixel (PixelCNN); their sample figures are rougher.
AUTOREGRESSIVE_SAMPLES = 100
def model_metrics(
    model: LatentModel,
    data: ImageData,
    *,
    split: str = "test",
    batch_size: int = 500,
    max_items: int | None = None,
    max_train: int = 10000,
    n_samples: int = 1000,
    seed: int = 0,
    judge: SampleJudge | None | bool = True,
    cancel: threading.Event | None = None,
    likelihood_k: int = 64,
) -> dict[str, Any]:
    """One row of the comparison table for ``model`` on ``data`` (see :data:`METRIC_COLUMNS`).

    * reconstruction, KL and active dimensions use ``split`` (at most ``max_items`` images, a seeded random
      subset);
    * kNN and the linear probe learn from the codes of at most ``max_train`` training images and are scored on
      the ``split`` images; None when the data set has fewer than two labelled classes;
    * the sample figures judge ``n_samples`` images decoded from the prior (seeded by ``seed``);
      ``judge=True`` uses the cached :func:`sample_judge` of ``data``, False/None skips the classifier figures.

    * likelihoods (``neg_elbo``, ``nll_iwae`` with ``likelihood_k`` samples, ``nll_exact``, ``bits_per_dim``)
      and disentanglement against ``data``'s attributes (``mig``, ``dci_*``; the full result with the
      importance matrix under ``disentanglement``), None where the family or data has none.

    Models without an encoder (GANs) get None for every encoder column. Extra keys: ``kl_per_dim`` (VAE),
    ``code_variance`` (per dimension), ``judge_accuracy`` (the classifier's own test accuracy) and ``seconds``.
    """
    t0 = time.perf_counter()
    _check_model_data(model, data)
    part = _split(data, split)
    rows = _subset_rows(len(part), max_items, seed)
    images = part.images[rows]
    labels = part.labels[rows]
    if n_samples < 2:
        raise CompareError(f"n_samples must be at least 2, got {n_samples}")
    out: dict[str, Any] = {
        "family": model.family,
        "latent_dim": model.latent_dim,
        "dataset": data.name,
        "split": split,
        "n_items": int(len(rows)),
        "n_samples": int(n_samples),
    }
    out.update({name: None for name in _METRIC_NAMES})
    out.update({"kl_per_dim": None, "code_variance": None, "judge_accuracy": None})
    caps = model.capabilities

    if caps.has_encoder:
        n = len(images)
        codes = np.empty((n, model.latent_dim), np.float64)
        kl_sum = np.zeros(model.latent_dim) if caps.has_posterior else None
        bce = mse = 0.0
        with torch.no_grad(), _EvalMode(model):
            for start in range(0, n, batch_size):
                _check_cancel(cancel)
                x = _float_batch(images[start:start + batch_size], model.device)
                if caps.has_posterior:
                    mu, logvar = model.encode_dist(x)
                    kl = -0.5 * (1.0 + logvar.double() - mu.double().square() - logvar.double().exp())
                    kl_sum += kl.sum(0).cpu().numpy()
                else:
                    mu = model.encode(x)
                r = model.decode(mu)
                codes[start:start + len(x)] = mu.double().cpu().numpy()
                bce += float(_bce_per_image(r, x).sum())
                mse += float((r.double() - x.double()).square().flatten(1).mean(1).sum())
        if not np.isfinite(codes).all():
            raise CompareError("the model's encoder produced NaN or infinite codes")
        out["recon_bce"] = bce / n
        out["recon_mse"] = mse / n
        variance = codes.var(0, ddof=1) if n > 1 else np.zeros(model.latent_dim)
        out["code_variance"] = variance.tolist()
        out["active_dims"] = int((variance > ACTIVE_VARIANCE).sum())
        if kl_sum is not None:
            kl_dims = kl_sum / n
            out["kl_per_dim"] = kl_dims.tolist()
            out["kl"] = float(kl_dims.sum())
        _check_cancel(cancel)
        out.update(_label_metrics(model, data, codes, labels, max_train, seed, batch_size))

    _check_cancel(cancel)
    from .disentanglement import disentanglement_columns
    from .likelihood import likelihood_metrics

    out.update(likelihood_metrics(model, images, k=likelihood_k, seed=seed, cancel=cancel))
    out.update(disentanglement_columns(model, data, split=split, seed=seed, cancel=cancel))
    _check_cancel(cancel)
    if judge is True:
        judge = sample_judge(data, seed=seed)
    elif judge is False:
        judge = None
    if judge is not None:
        out["judge_accuracy"] = judge.accuracy
    # Every family is judged, the plain AE included: that its N(0, I) samples are poor is the point of the table.
    if getattr(model, "autoregressive", False):  # PixelCNN: H x W network passes per batch of samples
        n_samples = min(n_samples, AUTOREGRESSIVE_SAMPLES)
        out["n_samples"] = int(n_samples)
    samples = prior_images(model, n_samples, seed=seed, batch_size=batch_size)
    train = data.train()
    ref_rows = _subset_rows(train.n_train, max_train, seed)
    out.update(_sample_metrics(samples, data, judge, train.images[ref_rows]))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _label_metrics(model: LatentModel, data: ImageData, codes: np.ndarray, labels: np.ndarray, max_train: int,
                   seed: int, batch_size: int) -> dict[str, float | None]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..latent.encoding import encode_dataset

    out: dict[str, float | None] = {"knn_accuracy": None, "probe_accuracy": None}
    train = data.train()
    valid_train = np.flatnonzero(train.labels >= 0)
    valid_test = labels >= 0
    if len(np.unique(train.labels[valid_train])) < 2 or not valid_test.any():
        return out
    rows = valid_train[_subset_rows(len(valid_train), max_train, seed)]
    z_train = encode_dataset(model, train.images[rows], batch_size=batch_size).astype(np.float64)
    if not np.isfinite(z_train).all():
        raise CompareError("the model's encoder produced NaN or infinite codes")
    y_train = train.labels[rows]
    z_test, y_test = codes[valid_test], labels[valid_test]
    # Raw codes for kNN: the latent geometry as the map shows it. Standardised for the probe, which only
    # helps the optimiser (a linear model can undo any per-dimension scale).
    knn = KNeighborsClassifier(n_neighbors=min(5, len(rows)))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with _one_thread(), warnings.catch_warnings():
        # A probe stopped at max_iter still scores usefully; the figure, not the optimiser, is the point.
        warnings.simplefilter("ignore", ConvergenceWarning)
        knn.fit(z_train, y_train)
        out["knn_accuracy"] = float((knn.predict(z_test) == y_test).mean())
        probe.fit(z_train, y_train)
        out["probe_accuracy"] = float((probe.predict(z_test) == y_test).mean())
    return out


def reference_metrics(data: ImageData, *, n: int = 1000, max_train: int = 10000, seed: int = 0,
                      judge: SampleJudge | None | bool = True) -> dict[str, Any]:
    """The sample figures of ``n`` real test images: what a perfect generator would score (for scale).

    The judge's real-image statistics come from (up to 5000) test images too, so where the test split is
    small the two sets overlap and the reference ``sample_fd`` is optimistic (near 0).
    """
    test = _split(data, "test")
    imgs = test.images[_subset_rows(len(test), n, seed)]
    if judge is True:
        judge = sample_judge(data, seed=seed)
    elif judge is False:
        judge = None
    train = data.train()
    ref = train.images[_subset_rows(train.n_train, max_train, seed)]
    x = torch.from_numpy(imgs).float().div_(255.0)
    out = _sample_metrics(x, data, judge, ref)
    out["n_items"] = int(len(imgs))
    return out
