"""The sample judge: a small in-domain classifier whose scores and features rate prior samples."""

import math
import threading
import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..data.base import ImageData
from ..models.base import LatentModel
from .columns import CompareError
from .common import _EvalMode, _float_batch, _one_thread, _subset_rows
from .prdc import PRDC_NAMES, prdc

PRDC_K = 5  # neighbours of precision / recall / density / coverage (Naeem et al. 2020)
PRDC_REAL = 5000  # at most this many real test images' features as their reference set

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
        self.real_features = feats[:PRDC_REAL]  # the reference set of precision / recall / density / coverage

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
        """sample_confidence, sample_score, sample_fd and, with more than PRDC_K images, precision, recall,
        density and coverage (:func:`~explorer.core.compare.prdc.prdc` on the judge's features, test images as
        the real set) of a set of images."""
        feats, probs = self.features(images)
        confidence = float(probs.max(1).mean())
        marginal = probs.mean(0, keepdims=True)
        kl = (probs * (np.log(np.clip(probs, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None)))).sum(1)
        return {
            "sample_confidence": confidence,
            "sample_score": float(np.exp(kl.mean())),
            "sample_fd": frechet_distance(feats.mean(0), np.cov(feats, rowvar=False), self.real_mu, self.real_cov),
            **(prdc(self.real_features, feats, PRDC_K) if min(len(feats), len(self.real_features)) > PRDC_K
               else dict.fromkeys(PRDC_NAMES)),
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
    out: dict[str, float | None] = {"sample_confidence": None, "sample_score": None, "sample_fd": None,
                                    **dict.fromkeys(PRDC_NAMES)}
    if not bool(torch.isfinite(samples).all()):
        raise CompareError("the model decoded prior samples to NaN or infinite values")
    if judge is not None:
        out.update(judge.score(samples))
    out["sample_nn_rmse"] = _nearest_rmse(samples, nn_reference) if len(nn_reference) else None
    return out
