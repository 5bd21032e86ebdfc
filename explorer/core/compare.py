"""Compare models trained on the same data: metrics, aligned maps, densities, rate–distortion, decoder swap.

Qt-free (torch, numpy, scikit-learn, Pillow), so the comparison view, the ``compare`` command and tests share it::

    from explorer.core.compare import model_metrics, write_comparison
    row = model_metrics(vae, data)                        # dict: recon_bce, kl, knn_accuracy, sample_score, ...
    write_comparison([ae, vae], data, "out/", names=["ae", "vae"])   # maps, sample grids, metrics.csv

What each metric means, its unit and which way is better is in :data:`METRIC_COLUMNS` (the GUI's tooltips).

Sample quality
--------------
Prior samples (decoded ``z ~ N(0, I)``) are judged by a small MLP classifier trained once per data set on its
training images (:func:`sample_judge`, cached in memory). Three figures come from it:

* ``sample_confidence``: mean max-softmax probability (is each sample clearly *some* class?);
* ``sample_score``: the "classifier score" ``exp(E_x KL(p(y|x) || p(y)))`` of Salimans et al. (2016), the
  Inception Score with our classifier: between 1 and the number of classes, high when samples are both
  confident and spread over the classes, so it also punishes a model whose samples are all the same digit;
* ``sample_fd``: the Fréchet distance (Heusel et al. 2017, FID with our classifier's 128-d penultimate
  features) between the samples and real test images: lower is better; it compares whole distributions,
  so blur, holes and missing modes all raise it.

and one is model-free: ``sample_nn_rmse``, the RMS pixel distance from each sample to its nearest real
training image. ``metrics.json`` also holds all four for real test images, as the scale of a perfect model.

Which to trust (measured on MNIST, latent 16; ``sample_fd`` is the headline figure):

* the bundled demo pair (10 epochs on 60k): FD 25 (VAE) vs 385 (AE), score 4.8 vs 1.5, confidence 0.76 vs
  0.37: every classifier figure agrees with the eye (an AE's N(0, I) samples are faint smudges);
* after 2 epochs on 10k images (the test): FD ~145 vs ~250 and score ~2.0 vs ~1.7 still rank the VAE first,
  but confidence ranks the *AE* first (~0.74 vs ~0.66): its N(0, I) samples all fall near the centre of its
  much wider code cloud and decode to a few clear prototypes. Confidence alone rewards such collapse;
* ``sample_nn_rmse`` ranks the demo AE first (0.157 vs 0.182, real images 0.170): faint smudges are close
  to every digit in L2. It is a sanity figure (far above the real-image value means off the data), not a
  ranking.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.base import ImageData
from .models.base import LatentModel
from .models.registry import build_model

__all__ = [
    "ACTIVE_VARIANCE",
    "FACE_STYLES",
    "FACE_STYLE_COUNT",
    "FACE_STYLE_SIZE",
    "INFO_COLUMNS",
    "METRIC_COLUMNS",
    "NO_SHARED_ENCODER",
    "CompareError",
    "MetricColumn",
    "SampleJudge",
    "align_maps",
    "apply_alignment",
    "check_compatible",
    "data_density",
    "decoder_swap",
    "face_style_data",
    "face_style_dataset",
    "face_style_pair",
    "frechet_distance",
    "label_colours",
    "map_bounds",
    "model_metrics",
    "model_names",
    "pca_baselines",
    "prior_density",
    "prior_images",
    "procrustes_align",
    "rate_distortion",
    "reconstruction_error",
    "reference_metrics",
    "render_map",
    "sample_judge",
    "save_swap_pair",
    "shares_encoder",
    "swap_examples",
    "swap_rows",
    "train_face_style_pair",
    "train_shared_encoder",
    "write_comparison",
    "write_swap_grid",
]

# A latent dimension is active when the variance of its code (E[z|x], the posterior mean for a VAE) over the
# data exceeds this (Burda et al. 2016, "Importance Weighted Autoencoders", section 5.2).
ACTIVE_VARIANCE = 0.01
# Pixel probabilities are clamped to [eps, 1 - eps] before the log: PCA decodes clamp to exact 0 / 1 and a
# sigmoid saturates to exactly 1.0 in float32, and one such pixel would otherwise make a model's BCE infinite.
BCE_EPS = 1e-6


class CompareError(ValueError):
    """The models or data cannot be compared as asked. ``str(err)`` is a user-facing message."""


@dataclass(frozen=True)
class MetricColumn:
    name: str  # key in model_metrics' result and column in metrics.csv
    title: str  # short header for a table
    unit: str
    direction: str  # "higher" or "lower" is better, or "neither" (a trade-off; see help)
    help: str  # one sentence for a tooltip

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "title": self.title, "unit": self.unit, "direction": self.direction,
                "help": self.help}


# Descriptive columns that come first in metrics.csv (no direction).
INFO_COLUMNS: list[str] = ["model", "family", "latent_dim", "dataset", "split", "n_items", "n_samples"]

METRIC_COLUMNS: list[MetricColumn] = [
    MetricColumn("recon_bce", "Recon. BCE", "nats/image", "lower",
                 "Binary cross-entropy between each test image and its reconstruction from the encoder's code "
                 "(a VAE's posterior mean), summed over pixels: the VAE's reconstruction term without sampling."),
    MetricColumn("recon_mse", "Recon. MSE", "per pixel (0-1 scale)", "lower",
                 "Mean squared difference between test images and their reconstructions, per pixel."),
    MetricColumn("kl", "KL to prior", "nats/image", "neither",
                 "KL divergence from each image's posterior q(z|x) to the N(0, I) prior, averaged over test "
                 "images (VAEs only): the information the code carries, paid for in prior fit."),
    MetricColumn("active_dims", "Active dims", "dimensions", "higher",
                 "Latent dimensions whose code varies across test images (variance of E[z|x] above 0.01, Burda "
                 "et al.); for a plain AE the code's scale is arbitrary, so nearly all count as active."),
    MetricColumn("knn_accuracy", "kNN acc.", "fraction", "higher",
                 "Accuracy of a 5-nearest-neighbour classifier on the codes (training codes as references, test "
                 "codes as queries): whether images of one label lie together in the latent space."),
    MetricColumn("probe_accuracy", "Linear probe acc.", "fraction", "higher",
                 "Test accuracy of logistic regression on the standardised codes: how useful the code is as "
                 "features for a linear classifier."),
    MetricColumn("sample_confidence", "Sample confidence", "probability", "higher",
                 "Mean top-class probability that a small classifier trained on real images gives to images "
                 "decoded from N(0, I) samples; alone it rewards samples that are all one clear prototype."),
    MetricColumn("sample_score", "Sample score", "1 to #classes", "higher",
                 "Classifier score exp(E KL(p(y|x) || p(y))) of the prior samples (the Inception Score with our "
                 "classifier): high when samples are both clear and spread over all classes."),
    MetricColumn("sample_fd", "Sample FD", "squared feature distance", "lower",
                 "Fréchet distance between classifier features of prior samples and of real test images (FID "
                 "with our classifier): blur, holes in the prior and missing classes all raise it."),
    MetricColumn("sample_nn_rmse", "Sample NN dist.", "RMS per pixel (0-1 scale, at most 32 px a side)", "lower",
                 "RMS pixel distance from each prior sample to its nearest real training image: far above the "
                 "real images' value means off the data, but faint, blurry or copied samples also score low."),
]
_METRIC_NAMES = [c.name for c in METRIC_COLUMNS]


# ====================================================================== helpers
def _name_of(model: LatentModel, fallback: str) -> str:
    path = getattr(model, "source_path", None)
    return Path(path).stem if path else fallback


def model_names(models: Sequence[LatentModel], names: Sequence[str] | None = None) -> list[str]:
    """Display names: the given ones, else checkpoint file stems, else ``family-latentdim``; made unique."""
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(models):
            raise CompareError(f"{len(names)} names given for {len(models)} models")
    else:
        names = [_name_of(m, f"{m.family}-{m.latent_dim}") for m in models]
    out: list[str] = []
    for n in names:
        base, k = n, 2
        while n in out:
            n, k = f"{base}-{k}", k + 1
        out.append(n)
    return out


def _dataset_kind(name: str | None) -> str | None:
    if not name:
        return None
    from .data import DataSourceError, parse_dataset_name

    try:
        return parse_dataset_name(str(name))[0]
    except DataSourceError:
        return str(name).strip().lower()


def check_compatible(models: Sequence[LatentModel], data: ImageData, names: Sequence[str] | None = None) -> None:
    """CompareError unless every model takes ``data``'s images and none was trained on another data set.

    Data sets are compared by kind (``mnist`` and ``mnist:/some/idx`` count as the same); a model without a
    recorded data set is taken on trust. Latent sizes may differ (that is what rate–distortion compares).
    """
    if not models:
        raise CompareError("no models to compare")
    names = model_names(models, names)
    kind = _dataset_kind(data.name)
    for model, name in zip(models, names):
        if tuple(model.image_shape) != tuple(data.image_shape):
            raise CompareError(
                f"{name} expects images of shape {list(model.image_shape)} (C, H, W) but data set {data.name!r} "
                f"has {list(data.image_shape)}: compare models trained on the same data"
            )
        declared = (getattr(model, "metadata", None) or {}).get("dataset")
        if declared and kind and _dataset_kind(declared) != kind:
            raise CompareError(
                f"{name} was trained on {declared!r}, not on {data.name!r}: compare models of the same data set"
            )


def _check_model_data(model: LatentModel, data: ImageData) -> None:
    if tuple(model.image_shape) != tuple(data.image_shape):
        raise CompareError(
            f"the model expects images of shape {list(model.image_shape)} (C, H, W) but data set {data.name!r} "
            f"has {list(data.image_shape)}"
        )


def _subset_rows(n: int, max_items: int | None, seed: int) -> np.ndarray:
    """All rows, or a seeded random subset of ``max_items`` (in order), so a limit still covers every class."""
    if max_items is None or max_items >= n:
        return np.arange(n)
    if max_items < 1:
        raise CompareError(f"max_items must be at least 1, got {max_items}")
    return np.sort(np.random.default_rng(seed).choice(n, int(max_items), replace=False))


def _split(data: ImageData, split: str) -> ImageData:
    if split == "test":
        if data.n_test == 0:
            raise CompareError(f"data set {data.name!r} has no test split; use split='train'")
        return data.test()
    if split == "train":
        if data.n_train == 0:
            raise CompareError(f"data set {data.name!r} has no training split")
        return data.train()
    raise CompareError(f"split must be 'test' or 'train', got {split!r}")


def _float_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class _EvalMode:
    """Eval mode for the duration (BatchNorm statistics and dropout must not move), then the old mode back."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        from .latent import Cancelled

        raise Cancelled("comparison cancelled")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run small numeric work (the judge's training, the probe, kNN) on one thread, then restore the settings.

    Their matrices are tiny (batches of 128 x 784, codes of 10k x 16), where intra-op threads buy nothing and
    cost a lot when cores are shared: on a busy 2-core VM the judge trained 9x slower with 2 torch threads
    than with 1 (0.09 vs 0.01 s per step) and the probe's BLAS calls 7x slower. The thread counts are
    process-wide, so other threads (a GUI decode) also run on one thread for these few seconds.
    """
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def _bce_per_image(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    p = recon.double().clamp(BCE_EPS, 1.0 - BCE_EPS)
    xd = x.double()
    return -(xd * p.log() + (1.0 - xd) * (1.0 - p).log()).flatten(1).sum(1)


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


# ====================================================================== the sample judge
# The judge and the nearest-image distance see images average-pooled to at most this many pixels a side:
# a 64x64 RGB face then costs what an MNIST digit does (3072 inputs instead of 12288), and what they judge
# (which class, how far from the data) survives the pooling.
JUDGE_SIDE = 32


def _pooled_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in image_shape)
    return c, min(h, JUDGE_SIDE), min(w, JUDGE_SIDE)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float -> at most JUDGE_SIDE pixels a side (unchanged when already that small)."""
    h, w = x.shape[-2:]
    if h <= JUDGE_SIDE and w <= JUDGE_SIDE:
        return x
    return nn.functional.adaptive_avg_pool2d(x, (min(h, JUDGE_SIDE), min(w, JUDGE_SIDE)))


class _JudgeNet(nn.Module):
    """Pooled pixels -> 128 features -> class logits (and attribute logits where the data set has attributes)."""

    def __init__(self, n_inputs: int, n_classes: int, n_attributes: int = 0):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_inputs, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.head = nn.Linear(128, n_classes)
        self.attribute_head = nn.Linear(128, n_attributes) if n_attributes else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        f = self.body(x)
        return f, self.head(f), None if self.attribute_head is None else self.attribute_head(f)


class SampleJudge:
    """A small MLP classifier of a data set's labels on (pooled) pixels, plus its real-image feature statistics.

    Trained once per data set (see :func:`sample_judge`) on up to ``max_items`` training images for a few
    epochs (at least ``min_steps`` steps): on MNIST that is ~95% test accuracy (94.6% from 20k images, 92-93%
    from 10k), enough to tell a digit from a smudge. Where the data set has attributes (the procedural faces,
    CelebA) the net also learns to predict them (binary cross-entropy, values in [0, 1]), so its features, and
    with them ``sample_fd``, see glasses, hair colour and the like even when the label alone is hard to see
    (the faces' smiling label is near chance for this judge at 48 px). ``accuracy`` is its test accuracy on
    the labels. Always runs on the CPU (it is small; the models' samples are moved to it).
    """

    def __init__(self, data: ImageData, *, max_items: int = 20000, epochs: int = 3, min_steps: int = 600,
                 seed: int = 0):
        train = data.train()
        valid = train.labels >= 0
        classes = np.unique(train.labels[valid])
        if len(classes) < 2:
            raise CompareError(f"data set {data.name!r} has fewer than two labelled classes; no classifier to "
                               "judge samples with")
        self.n_classes = int(classes.max()) + 1
        self.image_shape = data.image_shape
        rows = np.flatnonzero(valid)
        rows = rows[_subset_rows(len(rows), max_items, seed)]
        attrs = None
        if data.attributes is not None and data.attributes.shape[1] and np.isfinite(data.attributes).all():
            attrs = torch.from_numpy(np.clip(train.attributes[rows], 0.0, 1.0).astype(np.float32))
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
            torch.manual_seed(seed)
            self.net = _JudgeNet(int(np.prod(_pooled_shape(self.image_shape))), self.n_classes,
                                 0 if attrs is None else attrs.shape[1])
        y_all = torch.from_numpy(train.labels[rows].astype(np.int64))
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.net.train()
        with _one_thread():
            # Pooled and converted once, not per step (adaptive pooling of a 48 px face costs more than the net).
            x_all = torch.cat([self._prepare(train.images[rows[i:i + 2048]]) for i in range(0, len(rows), 2048)])
            # At least min_steps steps: 3 epochs of a small subset leave the classifier undertrained.
            self._fit(x_all, y_all, attrs, opt, gen, max(epochs, math.ceil(min_steps / math.ceil(len(rows) / 128))))
        del x_all
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        test = data.test() if data.n_test else train
        test_rows = np.flatnonzero(test.labels >= 0)
        test_rows = test_rows[_subset_rows(len(test_rows), 5000, seed)]
        feats, probs = self.features(test.images[test_rows])
        self.accuracy = float((probs.argmax(1) == test.labels[test_rows]).mean()) if len(test_rows) else math.nan
        self.real_mu = feats.mean(0)
        self.real_cov = np.cov(feats, rowvar=False)

    @staticmethod
    def _prepare(images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images (numpy or torch, any device) -> pooled float32 on the CPU."""
        if isinstance(images, torch.Tensor):
            x = images.detach().cpu()
            x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
        else:
            x = _float_batch(images, torch.device("cpu"))
        return _pool(x)

    def _fit(self, x_all: torch.Tensor, y_all: torch.Tensor, attrs: torch.Tensor | None,
             opt: torch.optim.Optimizer, gen: torch.Generator, epochs: int) -> None:
        for _ in range(epochs):
            perm = torch.randperm(len(x_all), generator=gen)
            for start in range(0, len(x_all), 128):
                idx = perm[start:start + 128]
                _, logits, attr_logits = self.net(x_all[idx])
                loss = nn.functional.cross_entropy(logits, y_all[idx])
                if attr_logits is not None and attrs is not None:
                    loss = loss + nn.functional.binary_cross_entropy_with_logits(attr_logits, attrs[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    @torch.no_grad()
    def features(self, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, 128) float64, class probabilities (N, K) float64) of uint8 or [0, 1] float images."""
        feats, probs = [], []
        for start in range(0, len(images), batch_size):
            f, logits, _ = self.net(self._prepare(images[start:start + batch_size]))
            feats.append(f.double().numpy())
            probs.append(torch.softmax(logits.double(), 1).numpy())
        if not feats:
            return np.zeros((0, 128)), np.zeros((0, self.n_classes))
        return np.concatenate(feats), np.concatenate(probs)

    def score(self, images: np.ndarray | torch.Tensor) -> dict[str, float]:
        """sample_confidence, sample_score and sample_fd of a set of images (see the module docstring)."""
        feats, probs = self.features(images)
        confidence = float(probs.max(1).mean())
        marginal = probs.mean(0, keepdims=True)
        kl = (probs * (np.log(np.clip(probs, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None)))).sum(1)
        return {
            "sample_confidence": confidence,
            "sample_score": float(np.exp(kl.mean())),
            "sample_fd": frechet_distance(feats.mean(0), np.cov(feats, rowvar=False), self.real_mu, self.real_cov),
        }


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) between two Gaussians.

    Tr((C1 C2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    C1^(1/2) C2 C1^(1/2) (same spectrum): ReLU features have dead units, so the covariances are singular and a
    general matrix square root (scipy's sqrtm) warns and goes complex, where this stays real and exact.
    """
    w1, v1 = np.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T
    middle = root1 @ ((cov2 + cov2.T) / 2) @ root1
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum())
    # Rounding can leave identical distributions a hair below zero; a distance is never negative.
    return max(0.0, float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt))


_JUDGES: dict[tuple, SampleJudge] = {}
_JUDGE_LOCK = threading.Lock()


def _fingerprint(data: ImageData) -> tuple:
    # A cheap content hash (every k-th image) so two different data sets with one name never share a judge.
    step = max(1, len(data) // 64)
    crc = zlib.crc32(np.ascontiguousarray(data.images[::step]).tobytes())
    crc = zlib.crc32(np.ascontiguousarray(data.labels[::step]).tobytes(), crc)
    return data.name, data.image_shape, data.n_train, len(data), crc


def sample_judge(data: ImageData, *, max_items: int = 20000, seed: int = 0) -> SampleJudge | None:
    """The (cached) :class:`SampleJudge` of a data set, or None when it has no labels to learn."""
    key = (*_fingerprint(data), max_items, seed)
    with _JUDGE_LOCK:  # one training per data set even when several workers ask at once
        judge = _JUDGES.get(key)
        if judge is None:
            try:
                judge = SampleJudge(data, max_items=max_items, seed=seed)
            except CompareError:
                return None
            _JUDGES[key] = judge
        return judge


@torch.no_grad()
def _nearest_rmse(samples: torch.Tensor, reference: np.ndarray, chunk: int = 2048) -> float:
    """Mean over samples of the RMS-per-pixel distance to the nearest reference image (both pooled, see
    JUDGE_SIDE)."""
    s = _pool(samples.detach().float().cpu()).flatten(1)
    best = torch.full((len(s),), float("inf"))
    s_sq = s.square().sum(1, keepdim=True)
    for start in range(0, len(reference), chunk):
        r = _pool(_float_batch(reference[start:start + chunk], torch.device("cpu"))).flatten(1)
        d = s_sq - 2.0 * s @ r.T + r.square().sum(1)[None, :]
        best = torch.minimum(best, d.min(1).values)
    return float(best.clamp_min(0.0).div(s.shape[1]).sqrt().mean())


@torch.no_grad()
def prior_images(model: LatentModel, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """n images decoded from the model's prior, on the CPU. The same seed gives every model of one latent
    size the same z (the comparison's shared cursor)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with _EvalMode(model):
        for start in range(0, n, batch_size):
            z = model.prior_sample(min(batch_size, n - start), gen).to(model.device)
            out.append(model.decode(z).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, *model.image_shape)


def _sample_metrics(samples: torch.Tensor, data: ImageData, judge: SampleJudge | None,
                    nn_reference: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {"sample_confidence": None, "sample_score": None, "sample_fd": None}
    if not bool(torch.isfinite(samples).all()):
        raise CompareError("the model decoded prior samples to NaN or infinite values")
    if judge is not None:
        out.update(judge.score(samples))
    out["sample_nn_rmse"] = _nearest_rmse(samples, nn_reference) if len(nn_reference) else None
    return out


# ====================================================================== the metrics table
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
) -> dict[str, Any]:
    """One row of the comparison table for ``model`` on ``data`` (see :data:`METRIC_COLUMNS`).

    * reconstruction, KL and active dimensions use ``split`` (at most ``max_items`` images, a seeded random
      subset);
    * kNN and the linear probe learn from the codes of at most ``max_train`` training images and are scored on
      the ``split`` images; None when the data set has fewer than two labelled classes;
    * the sample figures judge ``n_samples`` images decoded from the prior (seeded by ``seed``);
      ``judge=True`` uses the cached :func:`sample_judge` of ``data``, False/None skips the classifier figures.

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
    if judge is True:
        judge = sample_judge(data, seed=seed)
    elif judge is False:
        judge = None
    if judge is not None:
        out["judge_accuracy"] = judge.accuracy
    # Every family is judged, the plain AE included: that its N(0, I) samples are poor is the point of the table.
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

    from .latent.encoding import encode_dataset

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


# ====================================================================== aligned maps
def procrustes_align(reference_xy: np.ndarray, xy: np.ndarray, *, match_spread: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Rotate (or mirror), scale and shift ``xy`` onto ``reference_xy``: ``(aligned, rotation, scale, translation)``.

    Both are (N, 2) maps of the *same* N data points (row i is datum i in both);
    ``aligned = scale * xy @ rotation + translation``. ``rotation`` is the orthogonal Procrustes solution
    (Schönemann 1966): the orthogonal 2x2 matrix, reflections included, that best lines the centred maps up.
    Mirroring must be allowed: a PCA map and its mirror image are the same map (an eigenvector's sign is
    arbitrary), and two models' maps should face the same way.

    ``scale`` makes the two maps equally spread (RMS distance from the centre), so an AE's map, whose codes
    may be 10x a VAE's, is drawn at the same size. ``match_spread=False`` uses the least-squares scale instead,
    which shrinks a map that agrees only partly with the reference (towards its centre: the regression
    effect), which is right for measuring fit and wrong for drawing. With an exact similarity transform
    between the maps both give the same answer.
    """
    ref = np.asarray(reference_xy, np.float64)
    pts = np.asarray(xy, np.float64)
    if ref.ndim != 2 or pts.shape != ref.shape or ref.shape[1] != 2:
        raise CompareError(f"Procrustes needs two (N, 2) maps of the same points, got {ref.shape} and {pts.shape}")
    if len(ref) < 2:
        raise CompareError("Procrustes needs at least 2 points")
    if not (np.isfinite(ref).all() and np.isfinite(pts).all()):
        raise CompareError("the maps contain NaN or infinite positions")
    ref_mean, pts_mean = ref.mean(0), pts.mean(0)
    a, b = ref - ref_mean, pts - pts_mean
    u, s, vt = np.linalg.svd(b.T @ a)  # b^T a = U S V^T  ->  R = U V^T maximises tr(R^T b^T a)
    rotation = u @ vt
    norm = float(np.square(b).sum())
    if norm <= 0:
        scale = 1.0  # every point at one place: nothing to scale
    elif match_spread:
        scale = math.sqrt(float(np.square(a).sum()) / norm)
    else:
        scale = float(s.sum() / norm)
    translation = ref_mean - scale * pts_mean @ rotation
    aligned = scale * pts @ rotation + translation
    return aligned.astype(np.float32), rotation, scale, translation


def apply_alignment(xy: np.ndarray, alignment: tuple[np.ndarray, float, np.ndarray] | None) -> np.ndarray:
    """Apply ``(rotation, scale, translation)`` from :func:`procrustes_align` to more points (prior samples)."""
    pts = np.asarray(xy, np.float64)
    if alignment is None:
        return pts.astype(np.float32)
    rotation, scale, translation = alignment
    return (scale * pts @ rotation + translation).astype(np.float32)


def align_maps(maps: Sequence[np.ndarray | None]) -> tuple[list[np.ndarray | None], list[tuple | None]]:
    """Align every map to the first one that exists (None entries, e.g. GANs, stay None).

    Returns the aligned maps and, per map, its ``(rotation, scale, translation)`` (identity for the reference).
    """
    ref = next((m for m in maps if m is not None), None)
    aligned: list[np.ndarray | None] = []
    transforms: list[tuple | None] = []
    for m in maps:
        if m is None:
            aligned.append(None)
            transforms.append(None)
        elif m is ref:
            aligned.append(np.asarray(m, np.float32))
            transforms.append((np.eye(2), 1.0, np.zeros(2)))
        else:
            a, rot, scale, shift = procrustes_align(ref, m)
            aligned.append(a)
            transforms.append((rot, scale, shift))
    return aligned, transforms


def map_bounds(*maps: np.ndarray | None, margin: float = 0.05,
               quantile: float = 0.005) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` covering the maps (all but the outermost ``quantile`` of points on each side)."""
    pts = [np.asarray(m, np.float64) for m in maps if m is not None and len(m)]
    if not pts:
        return (-1.0, -1.0, 1.0, 1.0)
    allp = np.concatenate(pts)
    lo = np.quantile(allp, quantile, axis=0)
    hi = np.quantile(allp, 1.0 - quantile, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - margin * span, hi + margin * span
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _histogram(xy: np.ndarray, bounds: Sequence[float], resolution: int | tuple[int, int]) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in bounds)
    if not (x1 > x0 and y1 > y0):
        raise CompareError(f"bounds must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {tuple(bounds)}")
    ny, nx = (int(resolution), int(resolution)) if np.isscalar(resolution) else (int(v) for v in resolution)
    if nx < 1 or ny < 1:
        raise CompareError(f"resolution must be positive, got {resolution!r}")
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((ny, nx), np.float32)
    hist, _, _ = np.histogram2d(pts[:, 1], pts[:, 0], bins=(ny, nx), range=((y0, y1), (x0, x1)))
    # Divided by *all* points, so mass outside the bounds shows as a total below 1 (the prior's outliers).
    return (hist / len(pts)).astype(np.float32)


def data_density(xy: np.ndarray, bounds: Sequence[float], resolution: int | tuple[int, int] = 64) -> np.ndarray:
    """Fraction of the map points ``xy`` (N, 2) in each cell of a grid over ``bounds = (x0, y0, x1, y1)``.

    Float32 (ny, nx), row-major like ``Projection.trust_grid``: row r covers y in
    ``[y0 + r * (y1 - y0) / ny, ...)``, column c the same in x. Sums to the fraction of points inside bounds.
    """
    return _histogram(xy, bounds, resolution)


@torch.no_grad()
def prior_density(
    model: LatentModel | int,
    projection: Any,
    bounds: Sequence[float],
    *,
    n: int = 10000,
    resolution: int | tuple[int, int] = 64,
    seed: int = 0,
    alignment: tuple[np.ndarray, float, np.ndarray] | None = None,
) -> np.ndarray:
    """Where the prior puts its mass on a map: ``n`` latents drawn from the model's prior (or N(0, I) in
    ``model`` dimensions when given an int), mapped by the fitted ``projection``'s ``transform`` (and the map's
    Procrustes ``alignment``), histogrammed as in :func:`data_density`.

    The latents are projected, not decoded and re-encoded: the question is where the prior puts mass in the
    latent space the map shows, next to where the encoded data lies. On an AE's map the two rarely agree.
    """
    gen = torch.Generator().manual_seed(seed)
    if isinstance(model, LatentModel):
        z = model.prior_sample(n, gen).cpu().numpy()
    else:
        z = torch.randn(n, int(model), generator=gen).numpy()
    xy = apply_alignment(projection.transform(z.astype(np.float32)), alignment)
    return _histogram(xy, bounds, resolution)


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
    from .checkpoint import load

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


# ====================================================================== decoder swap
def shares_encoder(model_a: LatentModel, model_b: LatentModel) -> bool:
    """True when both models have the same encoder: the same module, or equal weights (after a save/load)."""
    ea, eb = getattr(model_a, "encoder", None), getattr(model_b, "encoder", None)
    if ea is None or eb is None:
        return False
    if ea is eb:
        return True
    sa, sb = ea.state_dict(), eb.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa
    )


@torch.no_grad()
def decoder_swap(shared_encoder_model_a: LatentModel, model_b: LatentModel,
                 images: np.ndarray | torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Encode ``images`` with model A's encoder and decode with model B's decoder: (N, C, H, W) in [0, 1], CPU.

    The classic face-swap construction: two autoencoders trained with one shared encoder on two data sets
    (:func:`train_shared_encoder`) put both in one code space, so B's decoder draws A's inputs in B's style.
    Any two models with one latent size can be swapped, but without a shared encoder the result means
    little (see :func:`shares_encoder`).
    """
    a, b = shared_encoder_model_a, model_b
    if not a.capabilities.has_encoder:
        raise CompareError(f"the first model ({a.family}) has no encoder to encode the images with")
    if a.latent_dim != b.latent_dim:
        raise CompareError(f"the encoder gives {a.latent_dim}-d codes but the decoder takes {b.latent_dim}-d codes")
    if tuple(images.shape[1:]) != tuple(a.image_shape):
        raise CompareError(f"the images are {tuple(images.shape[1:])} (C, H, W) but the encoder expects "
                           f"{tuple(a.image_shape)}")
    out = []
    with _EvalMode(a), _EvalMode(b):
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            if isinstance(chunk, torch.Tensor):
                x = chunk.to(a.device)
                x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
            else:
                x = _float_batch(chunk, a.device)
            out.append(b.decode(a.encode(x).to(b.device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, *b.image_shape)


def train_shared_encoder(
    data_a: ImageData,
    data_b: ImageData,
    *,
    latent_dim: int = 16,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    stop_event: threading.Event | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    **config: Any,
) -> tuple[LatentModel, LatentModel]:
    """Two AEs with one encoder: ``(model_a, model_b)`` whose ``.encoder`` is the same module object.

    The core :class:`~explorer.core.training.trainer.Trainer` trains one model on one data set, so this is a
    small loop of its own: one Adam over the union of the parameters, and each iteration takes one A batch
    (``model_a.train_step``: encoder + decoder A) then one B batch (encoder + decoder B). The encoder must
    serve both decoders, so it learns what the two data sets share (pose, expression) and each decoder adds
    its own style. ``config`` goes to both AE configs (``arch``, ``hidden``, ``loss``...). ``progress(step,
    total_steps, metrics)`` is called every 50 steps and at each epoch's end; setting ``stop_event`` stops
    after the current step. Each model's ``metadata`` names its data set and records the loss history;
    saving either model stores the encoder weights with it, and :func:`shares_encoder` recognises the pair
    after loading.
    """
    from .models import nets
    from .models.base import adam

    if data_a.image_shape != data_b.image_shape:
        raise CompareError(f"a shared encoder needs one image shape, but {data_a.name!r} has "
                           f"{list(data_a.image_shape)} and {data_b.name!r} has {list(data_b.image_shape)}")
    if data_a.n_train == 0 or data_b.n_train == 0:
        raise CompareError("both data sets need training images")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model_a = build_model("ae", latent_dim=latent_dim, image_shape=data_a.image_shape, **config)
        model_b = build_model("ae", latent_dim=latent_dim, image_shape=data_a.image_shape, **config)
    model_b.encoder = model_a.encoder  # one module, registered in both
    model_b._norm_guard = nets.BufferGuard(model_b)  # it must guard the shared encoder's BatchNorm, not the old one's
    model_a.to(device).train()
    model_b.to(device).train()
    params = list({id(p): p for p in [*model_a.parameters(), *model_b.parameters()]}.values())
    optimizers = {"model": adam(params, lr)}
    xa = torch.from_numpy(data_a.train().images).to(device)
    xb = torch.from_numpy(data_b.train().images).to(device)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, math.ceil(max(len(xa), len(xb)) / batch_size))
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    history: list[dict[str, float]] = []
    step = 0
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # the denoising AE's noise, if configured
        for epoch in range(epochs):
            # The smaller set is cycled so both decoders see one batch per step.
            pa = torch.randperm(len(xa), generator=gen).repeat(math.ceil(steps_per_epoch * batch_size / len(xa)))
            pb = torch.randperm(len(xb), generator=gen).repeat(math.ceil(steps_per_epoch * batch_size / len(xb)))
            sums = {"loss_a": 0.0, "loss_b": 0.0}
            done = 0
            for i in range(steps_per_epoch):
                if step >= total or (stop_event is not None and stop_event.is_set()):
                    break
                sl = slice(i * batch_size, (i + 1) * batch_size)
                ma = model_a.train_step(xa[pa[sl].to(device)].float().div_(255.0), optimizers, step)
                mb = model_b.train_step(xb[pb[sl].to(device)].float().div_(255.0), optimizers, step)
                sums["loss_a"] += float(ma["loss"])
                sums["loss_b"] += float(mb["loss"])
                done += 1
                step += 1
                if progress is not None and (step % 50 == 0 or i == steps_per_epoch - 1 or step >= total):
                    progress(step, total, {k: v / done for k, v in sums.items()})
            if done:
                history.append({"epoch": epoch + 1, **{k: v / done for k, v in sums.items()}})
            if step >= total or (stop_event is not None and stop_event.is_set()):
                break
    model_a.eval()
    model_b.eval()
    seconds = round(time.perf_counter() - t0, 3)
    for model, data, other in ((model_a, data_a, data_b), (model_b, data_b, data_a)):
        model.metadata = {
            "dataset": data.name,
            "label_names": list(data.label_names),
            "history": {"epochs": len(history), "steps": step, "seconds": seconds, "shared_encoder": True,
                        "shared_with_dataset": other.name, "per_epoch": history},
        }
    return model_a, model_b


# Two procedural "face styles" for the decoder swap: fixed look attributes, everything else (expression, pose,
# face shape, eyes, and each identity's background, shirt and proportions) varies in both.
FACE_STYLES: dict[str, dict[str, float]] = {
    "a": {"glasses": 1.0, "beard": 1.0, "long_hair": 0.0, "hair_colour": 0.0, "skin_tone": 0.95},
    "b": {"glasses": 0.0, "beard": 0.0, "long_hair": 1.0, "hair_colour": 1.0, "skin_tone": 0.2},
}


def face_style_data(style: str | dict[str, float], count: int = 4000, *, seed: int = 0, size: int = 32,
                    identity_offset: int = 0, attrs: np.ndarray | None = None) -> ImageData:
    """Procedural faces in one style (a key of :data:`FACE_STYLES` or a dict of attribute values).

    ``identity_offset`` picks other people: style B's data set uses different identities from A's, as in the
    face-swap setting. ``attrs`` (N, 10) overrides the sampled attributes (their style columns are set), so a
    test can render the exact counterpart of a face in the other style: same person, pose and expression.
    """
    from .data.faces import ATTRIBUTE_NAMES, LABEL_NAMES, render_faces, sample_attributes

    values = FACE_STYLES[style] if isinstance(style, str) else dict(style)
    unknown = sorted(set(values) - set(ATTRIBUTE_NAMES))
    if unknown:
        raise CompareError(f"unknown face attribute(s) {', '.join(unknown)}; known: {', '.join(ATTRIBUTE_NAMES)}")
    a = sample_attributes(count, seed + 1 + identity_offset) if attrs is None else np.array(attrs, np.float32)
    for name, v in values.items():
        a[:, ATTRIBUTE_NAMES.index(name)] = v
    identity = identity_offset + np.arange(len(a))
    n_train = len(a) - len(a) // 6
    return ImageData(
        name=f"faces-style-{style if isinstance(style, str) else 'custom'}",
        images=render_faces(a, seed, identity=identity, size=size),
        labels=a[:, ATTRIBUTE_NAMES.index("smiling")].astype(np.int64),
        label_names=list(LABEL_NAMES),
        n_train=n_train,
        attributes=a,
        attribute_names=list(ATTRIBUTE_NAMES),
        source=f"procedural faces, style {values}, seed {seed}, identities from {identity_offset}",
    )


FACE_STYLE_COUNT = 4000  # faces per style in a pair (and when a style is loaded by name)
FACE_STYLE_SIZE = 32
NO_SHARED_ENCODER = "the two models do not share an encoder: the swap means little without a shared encoder"


def face_style_dataset(style: str, count: int = FACE_STYLE_COUNT, *, size: int = FACE_STYLE_SIZE,
                       seed: int = 0) -> ImageData:
    """One style's faces as a swap pair uses them: ``count`` people, style A's numbered ``0..count-1`` and
    style B's ``count..2*count-1`` (other people, as in a face swap). ``load_dataset("faces-style-a")`` (and
    ``-b``) call this, so a pair's checkpoints name data sets that load again."""
    if style not in FACE_STYLES:
        raise CompareError(f"unknown face style {style!r}; known: {', '.join(sorted(FACE_STYLES))}")
    first_person = sorted(FACE_STYLES).index(style) * count
    return face_style_data(style, count, seed=seed, size=size, identity_offset=first_person)


def face_style_pair(count: int = FACE_STYLE_COUNT, *, size: int = FACE_STYLE_SIZE, seed: int = 0,
                    styles: tuple[str, str] = ("a", "b")) -> tuple[ImageData, ImageData]:
    """The decoder swap's two data sets (:func:`face_style_dataset` of each style): different people."""
    if styles[0] == styles[1]:
        raise CompareError(f"a swap pair needs two face styles, got {styles[0]!r} twice")
    return (face_style_dataset(styles[0], count, size=size, seed=seed),
            face_style_dataset(styles[1], count, size=size, seed=seed))


def train_face_style_pair(*, count: int = FACE_STYLE_COUNT, size: int = FACE_STYLE_SIZE, seed: int = 0,
                          styles: tuple[str, str] = ("a", "b"), **train: Any) -> tuple[LatentModel, LatentModel]:
    """:func:`train_shared_encoder` on :func:`face_style_pair`; ``train`` goes to it (``latent_dim``,
    ``epochs``, ``hidden``, ``stop_event``, ``progress``...). Each model's metadata gets a ``swap_pair``
    entry (its role, ``a`` or ``b``, its style and the data's count and seed) on top of what training
    records."""
    data_a, data_b = face_style_pair(count, size=size, seed=seed, styles=styles)
    model_a, model_b = train_shared_encoder(data_a, data_b, seed=seed, **train)
    for model, role, style in ((model_a, "a", styles[0]), (model_b, "b", styles[1])):
        model.metadata["swap_pair"] = {"role": role, "style": style, "count": int(count), "seed": int(seed)}
    return model_a, model_b


def save_swap_pair(model_a: LatentModel, model_b: LatentModel, path_a: str | os.PathLike[str],
                   path_b: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Save a shared-encoder pair as two ordinary checkpoints (atomically, with :func:`checkpoint.save`).

    Each file holds the full model, shared encoder included, so either opens on its own and
    :func:`shares_encoder` recognises the pair after loading; ``swap_pair.partner`` in each one's metadata
    names the other file.
    """
    from .checkpoint import save

    path_a, path_b = Path(path_a), Path(path_b)
    if path_a.resolve() == path_b.resolve():
        raise CompareError(f"both models of the pair would be written to {path_a}: give two file names")
    out = []
    for model, path, partner, role in ((model_a, path_a, path_b, "a"), (model_b, path_b, path_a, "b")):
        pair = dict((getattr(model, "metadata", None) or {}).get("swap_pair") or {"role": role})
        pair["partner"] = partner.name
        out.append(save(model, path, swap_pair=pair))
    return out[0], out[1]


def swap_rows(model_a: LatentModel, model_b: LatentModel, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """The rows of a swap picture, uint8 (3, N, H, W, C): the images, model A's own reconstruction of them,
    and :func:`decoder_swap` (A's encoder, B's decoder). CompareError when the models cannot be swapped."""
    from .export import to_frames

    if tuple(model_b.image_shape) != tuple(model_a.image_shape):
        raise CompareError(f"the encoder takes images of shape {list(model_a.image_shape)} (C, H, W) but the "
                           f"decoder draws {list(model_b.image_shape)}: swap between models of one image shape")
    if len(images) == 0:
        raise CompareError("no images to swap")
    swapped = decoder_swap(model_a, model_b, images)  # checks the encoder, the latent sizes and the images
    own = decoder_swap(model_a, model_a, images)
    originals = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if originals.dtype != np.uint8:
        originals = originals.astype(np.float32)
    return np.stack([to_frames(originals), to_frames(own), to_frames(swapped)])


def swap_examples(data: ImageData, count: int) -> np.ndarray:
    """Rows of ``data`` to show in a swap: held-out test images first (people neither model has seen), then
    training images if there are too few; at most ``count``."""
    order = np.concatenate([np.arange(data.n_train, len(data)), np.arange(data.n_train)])
    return order[:max(0, int(count))]


def write_swap_grid(path: str | os.PathLike[str], rows: np.ndarray, *, min_size: int = 112) -> Path:
    """:func:`swap_rows`' rows as one PNG grid (a row each), enlarged as :func:`export.save_png_grid` does."""
    from .export import save_png_grid

    n_rows, n = rows.shape[:2]
    return save_png_grid(path, rows.reshape(n_rows * n, *rows.shape[2:]), nrow=n, min_size=min_size)


# ====================================================================== pictures
# Matplotlib's tab10: familiar label colours, and distinct for the ten classes of the bundled data sets.
_PALETTE = np.array([
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
], np.uint8)
_PRIOR_SHADE = np.array([250, 180, 90], np.float32)  # where the prior puts its mass: a warm tint under the points


def label_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 colours for labels 0..n-1 (tab10, then evenly spaced hues)."""
    if n <= len(_PALETTE):
        return _PALETTE[:max(n, 0)].copy()
    import colorsys

    extra = [colorsys.hsv_to_rgb(i / (n - 10), 0.65, 0.85) for i in range(n - 10)]
    return np.concatenate([_PALETTE, (np.array(extra) * 255).astype(np.uint8)])


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # a scalable font where Pillow has FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def render_map(
    xy: np.ndarray,
    labels: np.ndarray,
    bounds: Sequence[float],
    *,
    label_names: Sequence[str] = (),
    prior: np.ndarray | None = None,
    title: str = "",
    size: int = 480,
    point_size: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """A latent map as an RGB uint8 image (H, W, 3): points coloured by label over ``bounds``, the prior's
    density (:func:`prior_density`, same bounds) as a warm tint beneath them, a title and a label legend.

    Points are drawn in a seeded random order, so no label is always painted on top of the others.
    """
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = (float(v) for v in bounds)
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(pts):
        raise CompareError(f"{len(pts)} map points but {len(labels)} labels")
    canvas = np.full((size, size, 3), 255.0, np.float32)
    if prior is not None and prior.size and float(prior.max()) > 0:
        dens = np.sqrt(prior / float(prior.max()))  # sqrt: the prior's tails stay visible next to its peak
        dens = dens[::-1]  # row 0 of the histogram is the bottom of the map (y0), the top of an image is y1
        ry = (np.arange(size) * dens.shape[0] // size)
        rx = (np.arange(size) * dens.shape[1] // size)
        alpha = 0.75 * dens[ry][:, rx][..., None]
        canvas = canvas * (1.0 - alpha) + _PRIOR_SHADE * alpha
    img = canvas.astype(np.uint8)
    n_labels = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    colours = label_colours(max(n_labels, len(label_names)))
    px = ((pts[:, 0] - x0) / (x1 - x0) * size).astype(np.int64)
    py = ((1.0 - (pts[:, 1] - y0) / (y1 - y0)) * size).astype(np.int64)
    inside = (px >= 0) & (px < size) & (py >= 0) & (py < size) & np.isfinite(pts).all(1)
    order = np.random.default_rng(seed).permutation(np.flatnonzero(inside))
    lab = labels[order]
    col = np.full((len(order), 3), 60, np.uint8)  # unlabelled points (-1) in dark grey
    if len(colours):
        col[lab >= 0] = colours[lab[lab >= 0] % len(colours)]
    for dy in range(point_size):
        for dx in range(point_size):
            img[np.clip(py[order] + dy, 0, size - 1), np.clip(px[order] + dx, 0, size - 1)] = col
    # Frame, title strip and legend.
    legend_w = 80 if label_names else 0
    title_h = 26 if title else 0
    full = np.full((size + title_h + 2, size + legend_w + 2, 3), 255, np.uint8)
    full[title_h:title_h + size + 2, 0:size + 2] = 90
    full[title_h + 1:title_h + 1 + size, 1:1 + size] = img
    pil = Image.fromarray(full)
    draw = ImageDraw.Draw(pil)
    if title:
        draw.text((4, 4), title, fill=(0, 0, 0), font=_font(15))
    font = _font(12)
    for i, name in enumerate(label_names):
        top = title_h + 6 + i * 17
        if top + 12 > full.shape[0]:
            break
        draw.rectangle([size + 10, top + 2, size + 20, top + 12], fill=tuple(int(v) for v in colours[i]))
        draw.text((size + 25, top), str(name)[:8], fill=(0, 0, 0), font=font)
    return np.asarray(pil)


def _side_by_side(images: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    h = max(im.shape[0] for im in images)
    parts: list[np.ndarray] = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        pad = np.full((h - im.shape[0], im.shape[1], 3), 255, np.uint8)
        parts.append(np.concatenate([im, pad]) if len(pad) else im)
    return np.concatenate(parts, axis=1)


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
    from .checkpoint import atomic_write

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
    from .checkpoint import atomic_write

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
    * ``rate_distortion.csv``: reconstruction error against latent size, with PCA at the same sizes.
    """
    from .export import save_png, save_png_grid, to_frames
    from .latent.encoding import encode_dataset
    from .latent.projection import make_projection

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
        "reconstruction_rows": recon_names,
        "bounds": list(bounds),
    }
    files.append(str(_write_json(out / "metrics.json", _finite(summary))))
    summary["files"] = files
    report("done", 1.0)
    return _finite(summary)
