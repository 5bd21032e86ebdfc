"""Precision, recall, density and coverage of generated samples (Naeem et al. 2020, "Reliable Fidelity and
Diversity Metrics for Generative Models"), on any features.

Each real feature vector gets a ball reaching its k-th nearest real neighbour. Then, with N real and M fake:

* precision: the fraction of fakes inside at least one real ball (fidelity; Kynkäänniemi et al. 2019);
* recall: the fraction of reals inside at least one *fake* ball (fake balls from the fakes' own k-NN);
* density: how many real balls hold each fake on average, divided by k (1 for fakes distributed like the
  reals; above 1 where fakes crowd the dense regions; robust to real outliers, unlike precision);
* coverage: the fraction of real balls that hold at least one fake (diversity; robust to fake outliers).

The same definitions as the ``prdc`` package (its author's reference code), written out here: ~30 lines of
numpy, exact, in blocks, so no dependency and bounded memory.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PRDC_NAMES", "prdc"]

PRDC_NAMES = ("sample_precision", "sample_recall", "sample_density", "sample_coverage")
_BLOCK = 2048


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.square(a).sum(1)[:, None] - 2.0 * a @ b.T + np.square(b).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row."""
    out = np.empty(len(x))
    for s in range(0, len(x), _BLOCK):
        d = _sq_dist(x[s:s + _BLOCK], x)
        # column k of the sorted row: column 0 is the point itself (distance 0)
        out[s:s + len(d)] = np.partition(d, k, axis=1)[:, k]
    return out


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """``{"sample_precision", "sample_recall", "sample_density", "sample_coverage"}`` of ``fake`` (M, F)
    against ``real`` (N, F) features with k nearest neighbours (Naeem et al. use k = 5)."""
    r = np.asarray(real, np.float64)
    f = np.asarray(fake, np.float64)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features must be (N, F) and (M, F), got {r.shape} and {f.shape}")
    if isinstance(k, bool) or int(k) < 1 or len(r) <= k or len(f) <= k:
        raise ValueError(f"prdc needs more than k = {k} real and fake feature vectors, got {len(r)} and {len(f)}")
    if not (np.isfinite(r).all() and np.isfinite(f).all()):
        raise ValueError("the features contain NaN or infinite values")
    k = int(k)
    real_r = _kth_radius(r, k)
    fake_r = _kth_radius(f, k)
    in_real = np.zeros(len(f), bool)  # fake j inside some real ball
    balls_per_fake = np.zeros(len(f))
    covered = np.zeros(len(r), bool)  # real ball i holds some fake
    recalled = np.zeros(len(r), bool)  # real i inside some fake ball
    for s in range(0, len(r), _BLOCK):
        d = _sq_dist(r[s:s + _BLOCK], f)  # (block of reals, M)
        inside = d <= real_r[s:s + len(d), None]
        in_real |= inside.any(0)
        balls_per_fake += inside.sum(0)
        covered[s:s + len(d)] = inside.any(1)
        recalled[s:s + len(d)] = (d <= fake_r[None, :]).any(1)
    return {
        "sample_precision": float(in_real.mean()),
        "sample_recall": float(recalled.mean()),
        "sample_density": float(balls_per_fake.sum() / (k * len(f))),
        "sample_coverage": float(covered.mean()),
    }
