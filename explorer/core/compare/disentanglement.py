"""Disentanglement of a latent code against known factors: MIG and DCI.

Both need data whose true generative factors are known per image (``ImageData.attributes``: the procedural
faces' smiling, glasses, hair colour, ...). Codes are the encoder's (a VAE's posterior mean).

* **MIG**, the mutual information gap (Chen et al. 2018): for each factor ``v_k``, the gap between the two
  code units with the highest mutual information ``I(z_j; v_k)``, divided by the factor's entropy
  ``H(v_k)``; averaged over factors. 1 = each factor lives in one unit alone; 0 = at least two units carry it
  equally (or none does). Codes and continuous factors are discretised into ``n_bins`` equal-count bins (10: the plug-in estimate of I over a 10 x 10 table is biased upwards by about 81 / (2N) nats, 0.02 for the 2000 images the Compare tab uses).
* **DCI** (Eastwood & Williams 2018): one regressor per factor predicts it from the whole code; the
  regressors' feature importances form the importance matrix ``R`` (units x factors).
  *Disentanglement*: 1 - the entropy (base K) of each unit's importances over the factors, weighted by the
  unit's share of all importance: does each unit serve one factor? *Completeness*: 1 - the entropy (base D)
  of each factor's importances over the units, averaged: is each factor captured by one unit?
  *Informativeness*: the regressors' mean R^2 on held-out codes (clipped at 0; higher is better).

:func:`disentanglement` returns the figures with the importance and mutual-information matrices for a heat
map (:func:`importance_heatmap` draws one as an RGB image).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..data.base import ImageData
from ..models.base import LatentModel
from ..progress import ProgressFn, check_cancel, report
from .columns import CompareError
from .common import _split, _subset_rows

DISENTANGLEMENT_NAMES = ["mig", "dci_disentanglement", "dci_completeness", "dci_informativeness"]
REGRESSORS = ("forest", "lasso")


def _discretise(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-count bins per column (values with few distinct levels, e.g. binary factors, keep their levels)."""
    out = np.empty(values.shape, np.int64)
    for j in range(values.shape[1]):
        col = values[:, j]
        levels = np.unique(col)
        if len(levels) <= n_bins:
            out[:, j] = np.searchsorted(levels, col)
        else:
            edges = np.quantile(col, np.linspace(0, 1, n_bins + 1)[1:-1])
            out[:, j] = np.searchsorted(edges, col, side="right")
    return out


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats of two integer label vectors (plug-in estimate from the joint histogram)."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).astype(np.float64)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def _entropy(a: np.ndarray) -> float:
    p = np.bincount(a).astype(np.float64)
    p = p[p > 0] / len(a)
    return float(-(p * np.log(p)).sum())


def mig(codes: np.ndarray, factors: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """``{"mig", "mig_per_factor", "mutual_information" (units x factors, nats), "factor_entropy"}``."""
    codes, factors = _check_arrays(codes, factors)
    zc = _discretise(codes, n_bins)
    fc = _discretise(factors, n_bins)
    d, k = codes.shape[1], factors.shape[1]
    mi = np.array([[_mutual_information(zc[:, j], fc[:, f]) for f in range(k)] for j in range(d)])
    ent = np.array([_entropy(fc[:, f]) for f in range(k)])
    per = []
    for f in range(k):
        if ent[f] <= 0:
            per.append(float("nan"))
            continue
        top = np.sort(mi[:, f])[::-1]
        second = top[1] if d > 1 else 0.0
        per.append(float((top[0] - second) / ent[f]))
    per_arr = np.array(per)
    score = float(np.nanmean(per_arr)) if np.isfinite(per_arr).any() else float("nan")
    return {"mig": score, "mig_per_factor": per, "mutual_information": mi.tolist(), "factor_entropy": ent.tolist()}


def _check_arrays(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, np.float64)
    factors = np.asarray(factors, np.float64)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise CompareError(f"codes (N, D) and factors (N, K) must have the same N, got {codes.shape} and "
                           f"{factors.shape}")
    if len(codes) < 10:
        raise CompareError(f"disentanglement needs at least 10 images, got {len(codes)}")
    if not (np.isfinite(codes).all() and np.isfinite(factors).all()):
        raise CompareError("codes or factors contain NaN or infinite values")
    return codes, factors


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """1 - entropy (log base ``base``) of each row of a non-negative matrix normalised to sum 1."""
    if base < 2:
        return np.ones(len(p))
    s = p.sum(1, keepdims=True)
    q = np.divide(p, s, out=np.full_like(p, 1.0 / p.shape[1]), where=s > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * np.log(q), 0.0).sum(1) / np.log(base)
    return 1.0 - h


def dci(codes: np.ndarray, factors: np.ndarray, *, test_fraction: float = 0.3, regressor: str = "forest",
        seed: int = 0, cancel: threading.Event | None = None) -> dict[str, Any]:
    """``{"dci_disentanglement", "dci_completeness", "dci_informativeness", "importance" (units x factors),
    "informativeness_per_factor"}``. ``regressor``: "forest" (random forest importances, catches non-linear
    codes) or "lasso" (absolute coefficients on standardised codes)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LassoCV

    codes, factors = _check_arrays(codes, factors)
    if regressor not in REGRESSORS:
        raise CompareError(f"regressor must be one of {', '.join(REGRESSORS)}, got {regressor!r}")
    n, d = codes.shape
    k = factors.shape[1]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    te, tr = perm[:n_test], perm[n_test:]
    mean, std = codes[tr].mean(0), codes[tr].std(0)
    z = (codes - mean) / np.where(std > 0, std, 1.0)
    importance = np.zeros((d, k))
    r2 = []
    for f in range(k):
        check_cancel(cancel)
        y = factors[:, f]
        if regressor == "forest":
            reg = RandomForestRegressor(n_estimators=30, max_depth=8, min_samples_leaf=5, random_state=seed,
                                        n_jobs=1)
            reg.fit(z[tr], y[tr])
            importance[:, f] = reg.feature_importances_
        else:
            reg = LassoCV(cv=3, random_state=seed, n_alphas=20)
            reg.fit(z[tr], y[tr])
            importance[:, f] = np.abs(reg.coef_)
        var = y[te].var()
        r2.append(float(max(0.0, 1.0 - ((reg.predict(z[te]) - y[te]) ** 2).mean() / var)) if var > 0 else 0.0)
    dis_per_unit = _entropy_rows(importance, k)
    total = importance.sum()
    weights = importance.sum(1) / total if total > 0 else np.full(d, 1.0 / d)
    comp_per_factor = _entropy_rows(importance.T, d)
    return {
        "dci_disentanglement": float((weights * dis_per_unit).sum()),
        "dci_completeness": float(comp_per_factor.mean()),
        "dci_informativeness": float(np.mean(r2)),
        "importance": importance.tolist(),
        "informativeness_per_factor": r2,
        "disentanglement_per_unit": dis_per_unit.tolist(),
        "completeness_per_factor": comp_per_factor.tolist(),
    }


def disentanglement(
    model: LatentModel,
    data: ImageData,
    *,
    split: str = "test",
    max_items: int | None = 2000,
    n_bins: int = 10,
    regressor: str = "forest",
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """MIG and DCI of ``model``'s codes against ``data``'s true attributes (at most ``max_items`` images of
    ``split``). Keys: :data:`DISENTANGLEMENT_NAMES`, ``factor_names``, ``unit_names`` (named DC-IGN units),
    ``importance`` and ``mutual_information`` (lists of units x factors), per-factor/per-unit breakdowns.
    CompareError when the data has no attributes or the model no encoder."""
    from ..latent.encoding import encode_dataset
    from ..models.dcign import unit_names

    if not model.capabilities.has_encoder:
        raise CompareError(f"{model.family} models have no encoder, so their codes cannot be scored")
    if data.attributes is None or not data.attribute_names:
        raise CompareError(f"data set {data.name!r} has no known factors (attributes) to measure "
                           "disentanglement against; use the procedural faces")
    part = _split(data, split)
    rows = _subset_rows(len(part), max_items, seed)
    report(progress, 0.0, "encoding")
    check_cancel(cancel)
    codes = encode_dataset(model, part.images[rows], cancel=cancel)
    factors = part.attributes[rows]
    report(progress, 0.3, "mutual information")
    out: dict[str, Any] = {"factor_names": list(data.attribute_names), "n_items": int(len(rows))}
    names = unit_names(model)
    out["unit_names"] = [names.get(j, f"z{j}") for j in range(model.latent_dim)]
    out.update(mig(codes, factors, n_bins))
    check_cancel(cancel)
    report(progress, 0.5, "DCI regressors")
    out.update(dci(codes, factors, regressor=regressor, seed=seed, cancel=cancel))
    report(progress, 1.0, "done")
    return out


def importance_heatmap(result: dict[str, Any], cell: int = 18, key: str = "importance") -> np.ndarray:
    """The units x factors matrix ``result[key]`` as an RGB uint8 image (H, W, 3): one row per factor, one
    column per unit, white (0) to dark blue (the row's maximum). Labels are left to the caller (the GUI draws
    its own; ``compare`` writes the PNG with the factor and unit names in metrics.json)."""
    m = np.asarray(result[key], np.float64).T  # factors x units
    if m.size == 0:
        raise CompareError("the importance matrix is empty")
    top = m.max(1, keepdims=True)
    t = np.divide(m, top, out=np.zeros_like(m), where=top > 0)
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([24.0, 52.0, 130.0])
    rgb = white + t[..., None] * (blue - white)
    img = np.repeat(np.repeat(rgb, cell, 0), cell, 1)
    img[::cell, :, :] = 220
    img[:, ::cell, :] = 220
    return img.round().astype(np.uint8)


def disentanglement_columns(model: LatentModel, data: ImageData, *, split: str = "test",
                            max_items: int | None = 2000, seed: int = 0,
                            cancel: threading.Event | None = None) -> dict[str, Any]:
    """The Compare table's disentanglement columns (None for models without an encoder or data without
    factors) plus, under ``disentanglement``, the full result of :func:`disentanglement` for the heat map."""
    out: dict[str, Any] = {name: None for name in DISENTANGLEMENT_NAMES}
    out["disentanglement"] = None
    if not model.capabilities.has_encoder or data.attributes is None or not data.attribute_names:
        return out
    result = disentanglement(model, data, split=split, max_items=max_items, seed=seed, cancel=cancel)
    out.update({name: result[name] for name in DISENTANGLEMENT_NAMES})
    out["disentanglement"] = result
    return out
