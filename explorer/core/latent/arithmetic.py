"""Latent vector arithmetic: attribute vectors, group differences, analogies, probes, named vectors.

All numpy, no Qt and no model: callers encode (``encode_dataset``) and decode themselves.

Attribute vectors
-----------------
``attribute_vectors(z, attributes, names)`` computes one direction per known attribute in one call:

* ``method="mean_difference"``: mean(z | attribute) - mean(z | not attribute). Binary attributes split at
  0.5; continuous ones at their median (the upper half minus the lower half).
* ``method="regression"`` (the default, "bias-corrected"): one least-squares fit of every latent dimension on
  *all* attributes at once, ``z ~ b0 + sum_k a_k * beta_k``; ``beta_k`` is the change in z per unit of
  attribute k *with the other known attributes held fixed*. When attributes are correlated (in CelebA
  "Smiling" goes with "Mouth_Slightly_Open", "Male" with "Goatee"), the plain mean difference of one
  attribute also carries the others; the regression removes the part that the other *known* attributes
  explain (unknown confounders cannot be removed by anything). With independent attributes, as in the
  procedural faces, both methods estimate the same vector, the regression with less noise. With a single
  binary attribute the two are identical.

Units, so that strength 1 means the same thing everywhere: a binary attribute's vector is the change from 0
to 1; a continuous attribute's vector is the change from one standard deviation below its mean to one above
(2 sd: the regression slope times 2 sd, or for mean_difference the median split scaled to 2 sd by the
difference of the two halves' mean attribute). For a fair-coin binary attribute (sd 0.5) the two
conventions coincide.

Datasets with only labels (MNIST, folders) get one-vs-rest vectors per label: ``label_<name>`` is
mean(z | label) - mean(z | other labels), see :func:`label_vectors`. :func:`dataset_vectors` picks
attributes when a dataset has them and labels otherwise.

Entanglement
------------
:class:`AttributeProbes` fits a linear probe per attribute on latents (logistic regression for binary
attributes, ridge regression for continuous ones) and reports, for codes before and after an edit, how much
each attribute's probe output moved, in standard deviations of that attribute, so the user sees when
"glasses" also changes "hair".

Named vectors
-------------
:class:`NamedVectors` is the name -> vector store the expression language reads (``smiling``,
``p12 + 1.5*smiling``), saved as one ``.safetensors`` file (tensors plus JSON metadata, written
atomically; nothing in it can run code).
"""

from __future__ import annotations

import json
import keyword
import math
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .expression import is_point_name

__all__ = [
    "AttributeProbes",
    "AttributeVector",
    "ProbeChange",
    "NamedVectors",
    "VectorError",
    "VECTOR_METHODS",
    "analogy",
    "apply_vector",
    "attribute_vectors",
    "dataset_vectors",
    "group_vector",
    "identifier",
    "label_vectors",
]

VECTOR_METHODS: tuple[str, ...] = ("regression", "mean_difference")
VECTORS_FORMAT = "latent-explorer-vectors"
VECTORS_FORMAT_VERSION = 1
_METADATA_KEY = "latent_explorer_vectors"
_MIN_GROUP = 2  # fewer rows than this on either side gives a vector that is mostly noise


class VectorError(ValueError):
    """Bad input for vector arithmetic, or a vector file that cannot be read. ``str(err)`` is user-facing."""


# ------------------------------------------------------------------ names
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def identifier(text: str, prefix: str = "v_") -> str:
    """A name the expression language accepts, made from any text: 'T-shirt/top' -> 'T_shirt_top',
    '5_o_Clock_Shadow' -> 'v_5_o_Clock_Shadow' (with the default prefix), 'p3' -> 'v_p3'.

    Characters other than ASCII letters, digits and '_' become '_'; ``prefix`` is added where the result
    would start with a digit, be empty, be a Python keyword, a point name (p0, p1, ...) or a dunder.
    """
    name = re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_")
    if not name or name[0].isdigit() or keyword.iskeyword(name) or is_point_name(name) or name.startswith("__"):
        name = prefix + name
    return name


def check_name(name: str) -> str:
    """Validate a vector name for :class:`NamedVectors`; returns it unchanged or raises VectorError."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise VectorError(f"vector name {name!r} must start with a letter or _ and use only letters, digits and _"
                          f" (try {identifier(str(name))!r})")
    if is_point_name(name):
        raise VectorError(f"{name!r} is reserved: p0, p1, ... name data points in expressions")
    if name.startswith("__"):
        raise VectorError(f"vector names may not start with '__' ({name!r})")
    if keyword.iskeyword(name):
        raise VectorError(f"{name!r} is a Python keyword and cannot name a vector")
    return name


# ------------------------------------------------------------------ input checks
def _latents(z: ArrayLike, what: str = "latents") -> np.ndarray:
    arr = np.asarray(z)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise VectorError(f"{what} must be an (N, D) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise VectorError(f"{what} contain NaN or infinite values")
    return arr


def _vec(v: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(v)
    if arr.ndim != 1 or arr.size == 0:
        raise VectorError(f"{what} must be a 1-D latent vector, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise VectorError(f"{what} contains NaN or infinite values")
    return arr


def _is_binary(col: np.ndarray) -> bool:
    finite = col[np.isfinite(col)]
    return finite.size > 0 and bool(np.all((finite == 0) | (finite == 1)))


# ------------------------------------------------------------------ attribute vectors
@dataclass
class AttributeVector:
    """One direction in latent space and where it came from.

    ``vector`` is float32 (D,) in the units of the module docstring (strength 1 = the full attribute change).
    ``n_pos`` / ``n_neg`` count the rows on each side (for continuous attributes: above / below the median).
    ``separation`` is how far apart the two sides are along the vector, in units of their pooled standard
    deviation along it (a d'): near 0 means the latent space hardly encodes the attribute and the vector is
    mostly noise; above ~1 the attribute is clearly represented.
    """

    name: str
    vector: np.ndarray
    kind: str  # "binary", "continuous", "label", "group"
    method: str  # "regression", "mean_difference", "group"
    n_pos: int
    n_neg: int
    separation: float
    unit: str = ""  # what strength 1 means, in words
    source: str = ""  # the attribute / label / selection it came from

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector))

    def info(self) -> dict[str, Any]:
        """JSON-able description (everything but the vector)."""
        d = asdict(self)
        d.pop("vector")
        d["norm"] = self.norm
        # JSON has no inf / NaN (a perfectly separated group gives separation inf).
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _separation(z: np.ndarray, pos: np.ndarray, neg: np.ndarray, v: np.ndarray) -> float:
    nv = float(np.linalg.norm(v))
    if nv == 0.0 or pos.sum() < _MIN_GROUP or neg.sum() < _MIN_GROUP:
        return 0.0
    proj = z @ (v / nv)
    a, b = proj[pos], proj[neg]
    pooled = math.sqrt(0.5 * (float(a.var(ddof=1)) + float(b.var(ddof=1))))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("inf")


def _groups(col: np.ndarray, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(col)
    if binary:
        return ok & (col >= 0.5), ok & (col < 0.5)
    med = float(np.median(col[ok])) if ok.any() else 0.0
    # Ties at the median go below, so a column with many equal values still splits.
    return ok & (col > med), ok & (col <= med)


def attribute_vectors(
    z: ArrayLike,
    attributes: ArrayLike,
    names: Sequence[str],
    *,
    method: str = "regression",
    binary: Sequence[bool] | None = None,
    ridge: float = 1e-6,
) -> dict[str, AttributeVector]:
    """One :class:`AttributeVector` per attribute column, keyed by a name the expression language accepts
    (``identifier(name)``; the original name is kept in ``source``), in column order.

    z: (N, D) latent codes; attributes: (N, A) values, binary 0/1 or continuous (NaN = unknown, that row is
    left out of that attribute's groups and, for the regression, out of the fit). binary: per column,
    default detected (a column holding only 0 and 1 is binary). method: see the module docstring.
    ``ridge`` is a tiny diagonal load on the regression's normal equations, so a constant or duplicated
    attribute column gives a zero vector for the redundant part instead of a singular-matrix failure.
    """
    if method not in VECTOR_METHODS:
        raise VectorError(f"unknown method {method!r}; choose one of {', '.join(VECTOR_METHODS)}")
    zz = _latents(z)
    attrs = np.asarray(attributes, dtype=np.float64)
    if attrs.ndim == 1:
        attrs = attrs[:, None]
    if attrs.ndim != 2 or attrs.shape[0] != zz.shape[0]:
        raise VectorError(f"attributes must be ({zz.shape[0]}, A) to match the latents, got shape {attrs.shape}")
    names = [str(n) for n in names]
    if len(names) != attrs.shape[1]:
        raise VectorError(f"{attrs.shape[1]} attribute columns but {len(names)} names")
    if binary is None:
        is_bin = [_is_binary(attrs[:, k]) for k in range(attrs.shape[1])]
    else:
        if len(binary) != attrs.shape[1]:
            raise VectorError(f"binary must have one flag per attribute ({attrs.shape[1]}), got {len(binary)}")
        is_bin = [bool(b) for b in binary]

    keys = [identifier(n) for n in names]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise VectorError(f"attribute names clash once made into identifiers: {', '.join(dup)}")

    coef = _regression(zz, attrs, ridge) if method == "regression" else None
    out: dict[str, AttributeVector] = {}
    for k, (name, key) in enumerate(zip(names, keys)):
        col = attrs[:, k]
        pos, neg = _groups(col, is_bin[k])
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        if n_pos < _MIN_GROUP or n_neg < _MIN_GROUP:
            raise VectorError(
                f"attribute {name!r} has {n_pos} rows with it and {n_neg} without; at least {_MIN_GROUP} of "
                "each are needed for a vector")
        ok = np.isfinite(col)
        sd = float(col[ok].std())
        if coef is not None:
            # Regression coefficients are per unit of the attribute; rescale to the documented units.
            v = coef[k] * (1.0 if is_bin[k] else 2.0 * sd)
        else:
            v = zz[pos].mean(axis=0) - zz[neg].mean(axis=0)
            if not is_bin[k]:
                gap = float(col[pos].mean() - col[neg].mean())
                v = v * (2.0 * sd / gap) if gap > 0 else v * 0.0
        unit = "0 -> 1" if is_bin[k] else f"mean - 1 sd -> mean + 1 sd ({2 * sd:.3g} in attribute units)"
        out[key] = AttributeVector(
            name=key, vector=np.asarray(v, dtype=np.float32), kind="binary" if is_bin[k] else "continuous",
            method=method, n_pos=n_pos, n_neg=n_neg, separation=_separation(zz, pos, neg, v), unit=unit,
            source=name)
    return out


def _regression(z: np.ndarray, attrs: np.ndarray, ridge: float) -> np.ndarray:
    """(A, D) least-squares coefficients of z on [1, attrs] (intercept dropped), rows with NaN left out."""
    ok = np.all(np.isfinite(attrs), axis=1)
    if ok.sum() <= attrs.shape[1] + 1:
        raise VectorError(
            f"only {int(ok.sum())} rows have every attribute known; the bias-corrected (regression) method "
            f"needs more than {attrs.shape[1] + 1}; use method='mean_difference'")
    x = attrs[ok]
    # Centre the predictors: the intercept then separates out exactly, and the normal equations stay well
    # conditioned even for attributes with very different means.
    xc = x - x.mean(axis=0)
    zc = z[ok] - z[ok].mean(axis=0)
    gram = xc.T @ xc
    gram[np.diag_indices_from(gram)] += ridge * max(float(np.trace(gram)) / len(gram), 1e-12)
    return np.linalg.solve(gram, xc.T @ zc)


def label_vectors(z: ArrayLike, labels: ArrayLike, label_names: Sequence[str]) -> dict[str, AttributeVector]:
    """One-vs-rest vectors per label: ``label_<name>`` = mean(z | label) - mean(z | any other known label).

    Rows with label -1 (unknown) are ignored. Labels with fewer than 2 rows (or no other rows) are skipped.
    To morph one class into another, subtract: ``label_7 - label_1``.
    """
    zz = _latents(z)
    lab = np.asarray(labels)
    if lab.shape != (zz.shape[0],):
        raise VectorError(f"labels must have shape ({zz.shape[0]},), got {lab.shape}")
    known = lab >= 0
    out: dict[str, AttributeVector] = {}
    for k, lname in enumerate(label_names):
        pos = lab == k
        neg = known & ~pos
        if pos.sum() < _MIN_GROUP or neg.sum() < _MIN_GROUP:
            continue
        v = zz[pos].mean(axis=0) - zz[neg].mean(axis=0)
        key = "label_" + identifier(lname, prefix="")
        out[key] = AttributeVector(
            name=key, vector=v.astype(np.float32), kind="label", method="mean_difference",
            n_pos=int(pos.sum()), n_neg=int(neg.sum()), separation=_separation(zz, pos, neg, v),
            unit=f"other labels -> {lname}", source=f"label={lname}")
    return out


def dataset_vectors(z: ArrayLike, data: Any, *, method: str = "regression",
                    labels: bool | None = None) -> dict[str, AttributeVector]:
    """Every vector a dataset's annotations give: its attributes, and its labels when it has no attributes
    (``labels=None``; True / False force them in or out). ``z`` holds the codes of ``data``'s rows, in order
    (``encode_dataset(model, data.images)``); ``data`` is an :class:`~explorer.core.data.ImageData`.
    """
    zz = _latents(z)
    if len(zz) != len(data):
        raise VectorError(f"{len(zz)} latent codes for a data set of {len(data)} images")
    out: dict[str, AttributeVector] = {}
    has_attrs = data.attributes is not None and len(data.attribute_names) > 0
    if has_attrs:
        out.update(attribute_vectors(zz, data.attributes, data.attribute_names, method=method))
    if labels or (labels is None and not has_attrs):
        for key, vec in label_vectors(zz, data.labels, data.label_names).items():
            out.setdefault(key, vec)
    if not out:
        raise VectorError(f"data set {data.name!r} has no attributes and no labels to compute vectors from")
    return out


def _index_set(indices: ArrayLike, n: int, what: str) -> np.ndarray:
    idx = np.unique(np.asarray(indices, dtype=np.int64).reshape(-1))
    if idx.size == 0:
        raise VectorError(f"{what} is empty: select at least one point")
    if idx[0] < 0 or idx[-1] >= n:
        bad = idx[0] if idx[0] < 0 else idx[-1]
        raise VectorError(f"{what} holds index {bad}, outside the {n} points (0 to {n - 1})")
    return idx


def group_vector(z: ArrayLike, these: ArrayLike, those: ArrayLike, name: str = "group") -> AttributeVector:
    """mean(z[these]) - mean(z[those]): the direction from "those" to "these" (e.g. two lasso selections).

    Points selected in both groups count in both (the vector is then shorter, not wrong); identical
    selections are an error because the difference is zero.
    """
    zz = _latents(z)
    a = _index_set(these, len(zz), "the first group ('these')")
    b = _index_set(those, len(zz), "the second group ('those')")
    if np.array_equal(a, b):
        raise VectorError("the two groups are the same points, so their difference is zero")
    v = zz[a].mean(axis=0) - zz[b].mean(axis=0)
    pos = np.zeros(len(zz), bool)
    neg = np.zeros(len(zz), bool)
    pos[a] = True
    neg[b] = True
    return AttributeVector(
        name=check_name(name), vector=v.astype(np.float32), kind="group", method="group",
        n_pos=len(a), n_neg=len(b), separation=_separation(zz, pos, neg, v),
        unit="mean of 'those' -> mean of 'these'", source=f"{len(a)} vs {len(b)} selected points")


# ------------------------------------------------------------------ applying
def apply_vector(z: ArrayLike, vector: ArrayLike, strength: ArrayLike = 1.0) -> np.ndarray:
    """``z + strength * vector``.

    z: (D,) or (N, D); strength: a number, giving z's shape, or a 1-D array of S strengths, giving (S, D) for
    one z and (N, S, D) for many (a strength sweep, e.g. the slider's -3..3).
    """
    v = _vec(vector, "the vector")
    zz = np.asarray(z)
    if zz.ndim not in (1, 2) or zz.shape[-1] != v.shape[0]:
        raise VectorError(f"z must be (D,) or (N, D) with D = {v.shape[0]} (the vector's size), got {zz.shape}")
    if not np.issubdtype(zz.dtype, np.floating):
        zz = zz.astype(np.float64)
    s = np.asarray(strength, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise VectorError("strength must be finite")
    dtype = np.result_type(zz, v)
    if s.ndim == 0:
        return (zz + float(s) * v).astype(dtype, copy=False)
    if s.ndim != 1:
        raise VectorError(f"strength must be a number or a 1-D array, got shape {s.shape}")
    return (zz[..., None, :] + s[:, None] * v).astype(dtype, copy=False)


def analogy(a: ArrayLike, b: ArrayLike, c: ArrayLike) -> np.ndarray:
    """A : B :: C : D, so ``D = C + (B - A)``. Each is (D,) or (N, D) (broadcast together)."""
    arrays = [np.asarray(x, dtype=np.result_type(np.asarray(x), np.float32)) for x in (a, b, c)]
    sizes = {x.shape[-1] if x.ndim else 0 for x in arrays}
    if any(x.ndim not in (1, 2) for x in arrays) or len(sizes) != 1:
        raise VectorError(f"A, B and C must be latent vectors of one size, got shapes "
                          f"{', '.join(str(x.shape) for x in arrays)}")
    try:
        return arrays[2] + (arrays[1] - arrays[0])
    except ValueError as exc:
        raise VectorError(f"A, B and C do not broadcast together: {exc}") from None


# ------------------------------------------------------------------ probes
@dataclass
class ProbeChange:
    """How an edit moved one attribute's probe, averaged over the edited codes.

    before / after: mean probe output (probability for binary attributes, predicted value for continuous).
    change_sd: (after - before) in standard deviations of the attribute in the data (comparable across
    attributes: for a fair-coin binary attribute, a probability change of 0.5 is 1 sd).
    flipped: binary attributes: the fraction of codes whose predicted class changed (NaN for continuous).
    """

    name: str
    kind: str
    before: float
    after: float
    change_sd: float
    flipped: float
    probe_score: float  # held-out accuracy (binary) or R^2 (continuous): how far to trust the probe


@dataclass
class AttributeProbes:
    """Linear probes of every attribute on latent codes. Build with :meth:`fit`."""

    names: list[str]
    kinds: list[str]
    sds: list[float]
    scores: list[float]  # held-out accuracy / R^2
    latent_dim: int
    _models: list[Any] = field(repr=False, default_factory=list)
    _mean: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    _scale: np.ndarray = field(repr=False, default_factory=lambda: np.ones(0))

    @classmethod
    def fit(cls, z: ArrayLike, attributes: ArrayLike, names: Sequence[str], *,
            binary: Sequence[bool] | None = None, holdout: float = 0.2, seed: int = 0,
            max_rows: int = 20000) -> "AttributeProbes":
        """Fit one probe per attribute column: logistic regression (binary) or ridge regression (continuous).

        ``holdout`` of the rows (at most) are kept out to measure each probe's score; the probes are then
        refitted on all rows. At most ``max_rows`` random rows are used (fitting is O(N D) per probe).
        """
        from sklearn.linear_model import LogisticRegression, Ridge

        zz = _latents(z)
        attrs = np.asarray(attributes, dtype=np.float64)
        if attrs.ndim == 1:
            attrs = attrs[:, None]
        if attrs.shape[0] != zz.shape[0] or attrs.shape[1] != len(names):
            raise VectorError(f"attributes must be ({zz.shape[0]}, {len(names)}), got {attrs.shape}")
        if not 0.0 <= holdout < 1.0:
            raise VectorError(f"holdout must be in [0, 1), got {holdout}")
        rng = np.random.default_rng(seed)
        rows = rng.permutation(len(zz))[:max_rows]
        zz, attrs = zz[rows], attrs[rows]
        mean, scale = zz.mean(axis=0), zz.std(axis=0)
        scale[scale == 0] = 1.0
        zs = (zz - mean) / scale  # standardised inputs: one regularisation strength suits every dimension
        n_hold = int(len(zs) * holdout)
        is_bin = ([_is_binary(attrs[:, k]) for k in range(attrs.shape[1])] if binary is None
                  else [bool(b) for b in binary])
        models, kinds, sds, scores = [], [], [], []
        for k, name in enumerate(names):
            col = attrs[:, k]
            ok = np.isfinite(col)
            x, y = zs[ok], col[ok]
            n_hold_k = min(n_hold, len(x) // 2)
            if is_bin[k]:
                y = (y >= 0.5).astype(int)
                if len(np.unique(y)) < 2:
                    raise VectorError(f"attribute {name!r} has only one value; a probe needs both")

                def make():
                    return LogisticRegression(C=1.0, max_iter=1000)
            else:
                def make():
                    return Ridge(alpha=1.0)
            score = float("nan")
            if n_hold_k > 0 and len(np.unique(y[n_hold_k:])) > (1 if is_bin[k] else 0):
                m = make().fit(x[n_hold_k:], y[n_hold_k:])
                score = float(m.score(x[:n_hold_k], y[:n_hold_k]))
            models.append(make().fit(x, y))
            kinds.append("binary" if is_bin[k] else "continuous")
            sds.append(float(col[ok].std()) or 1.0)
            scores.append(score)
        return cls(names=[str(n) for n in names], kinds=kinds, sds=sds, scores=scores, latent_dim=zz.shape[1],
                   _models=models, _mean=mean, _scale=scale)

    def predict(self, z: ArrayLike) -> np.ndarray:
        """(N, A) probe outputs: probability of the attribute (binary), predicted value (continuous)."""
        zz = _latents(np.atleast_2d(np.asarray(z)))
        if zz.shape[1] != self.latent_dim:
            raise VectorError(f"the probes were fitted on {self.latent_dim}-d codes, got {zz.shape[1]}-d")
        zs = (zz - self._mean) / self._scale
        cols = [m.predict_proba(zs)[:, 1] if kind == "binary" else m.predict(zs)
                for m, kind in zip(self._models, self.kinds)]
        return np.stack(cols, axis=1)

    def changes(self, z_before: ArrayLike, z_after: ArrayLike) -> list[ProbeChange]:
        """Per attribute, how the probe output moved from ``z_before`` to ``z_after`` (same shape)."""
        before, after = self.predict(z_before), self.predict(z_after)
        if before.shape != after.shape:
            raise VectorError(f"z_before and z_after differ in shape: {np.shape(z_before)} vs {np.shape(z_after)}")
        out = []
        for k, name in enumerate(self.names):
            b, a = before[:, k], after[:, k]
            flipped = float(np.mean((b >= 0.5) != (a >= 0.5))) if self.kinds[k] == "binary" else float("nan")
            out.append(ProbeChange(name=name, kind=self.kinds[k], before=float(b.mean()), after=float(a.mean()),
                                   change_sd=float((a.mean() - b.mean()) / self.sds[k]), flipped=flipped,
                                   probe_score=self.scores[k]))
        return out

    def entanglement(self, z_before: ArrayLike, z_after: ArrayLike, target: str | None = None,
                     threshold_sd: float = 0.25) -> dict[str, Any]:
        """A summary for the user: the target attribute's change and the other attributes that moved by more
        than ``threshold_sd`` standard deviations (largest first)."""
        rows = self.changes(z_before, z_after)
        if target is not None and target not in self.names:
            raise VectorError(f"unknown attribute {target!r}; probes exist for {', '.join(self.names)}")
        others = [r for r in rows if r.name != target]
        moved = sorted((r for r in others if abs(r.change_sd) > threshold_sd), key=lambda r: -abs(r.change_sd))
        return {
            "target": next((asdict(r) for r in rows if r.name == target), None),
            "entangled": [asdict(r) for r in moved],
            "all": [asdict(r) for r in rows],
        }


# ------------------------------------------------------------------ named vectors
class NamedVectors(MutableMapping[str, np.ndarray]):
    """Name -> float32 (latent_dim,) vector, with a JSON-able ``info`` dict per vector.

    Names follow :func:`check_name` (identifiers, never ``pN``). Every vector must have ``latent_dim``
    values and be finite. :meth:`save` / :meth:`load` use one ``.safetensors`` file; ``source`` (e.g. the
    checkpoint's file name and dataset) is stored with it so a file is not silently used with another model.
    """

    def __init__(self, latent_dim: int, vectors: Mapping[str, ArrayLike] | None = None, *,
                 source: Mapping[str, Any] | None = None):
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, (int, np.integer)) or latent_dim < 1:
            raise VectorError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        self.latent_dim = int(latent_dim)
        self.source: dict[str, Any] = dict(source or {})
        self._vectors: dict[str, np.ndarray] = {}
        self.info: dict[str, dict[str, Any]] = {}
        for k, v in (vectors or {}).items():
            self[k] = v

    def __getitem__(self, name: str) -> np.ndarray:
        return self._vectors[name]

    def __setitem__(self, name: str, vector: ArrayLike) -> None:
        check_name(name)
        if isinstance(vector, AttributeVector):
            self.info[name] = vector.info()
            vector = vector.vector
        v = np.asarray(vector, dtype=np.float32)
        if v.shape != (self.latent_dim,):
            raise VectorError(f"vector {name!r} has shape {v.shape} but this latent space has "
                              f"{self.latent_dim} dimensions")
        if not np.all(np.isfinite(v)):
            raise VectorError(f"vector {name!r} contains NaN or infinite values")
        self._vectors[name] = v.copy()
        self.info.setdefault(name, {})

    def __delitem__(self, name: str) -> None:
        del self._vectors[name]
        self.info.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._vectors)

    def __len__(self) -> int:
        return len(self._vectors)

    def __repr__(self) -> str:
        return f"NamedVectors(latent_dim={self.latent_dim}, names={list(self._vectors)})"

    def add(self, vec: AttributeVector, name: str | None = None) -> str:
        """Store an :class:`AttributeVector` (with its description) under ``name`` or its own name."""
        key = name or vec.name
        self[key] = vec
        return key

    def update_from(self, vectors: Mapping[str, AttributeVector]) -> None:
        for key, vec in vectors.items():
            self.add(vec, key)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write all vectors to ``path`` (.safetensors) atomically."""
        from safetensors.numpy import save_file

        from ..checkpoint import atomic_write

        if not self._vectors:
            raise VectorError("there are no vectors to save")
        doc = {"format": VECTORS_FORMAT, "format_version": VECTORS_FORMAT_VERSION, "latent_dim": self.latent_dim,
               "source": self.source, "order": list(self._vectors),
               "info": {k: self.info.get(k, {}) for k in self._vectors}}
        try:
            text = json.dumps(doc, allow_nan=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise VectorError(f"vector descriptions are not valid JSON: {exc}") from exc
        tensors = {k: np.ascontiguousarray(v) for k, v in self._vectors.items()}
        try:
            return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={_METADATA_KEY: text}))
        except OSError as exc:
            raise VectorError(f"cannot write {path}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str], latent_dim: int | None = None) -> "NamedVectors":
        """Read a file written by :meth:`save`; with ``latent_dim``, refuse vectors of another size."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise VectorError(f"{path}: file not found")
        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        except Exception as exc:  # safetensors raises its own error types for malformed files
            raise VectorError(f"{path.name}: not a valid .safetensors file ({str(exc).splitlines()[0][:200]})") \
                from exc
        if _METADATA_KEY not in meta:
            raise VectorError(f"{path.name}: not a Latent Explorer vector file (no '{_METADATA_KEY}' metadata)")
        try:
            doc = json.loads(meta[_METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise VectorError(f"{path.name}: metadata is not valid JSON ({exc.msg})") from exc
        if not isinstance(doc, dict) or doc.get("format") != VECTORS_FORMAT:
            raise VectorError(f"{path.name}: unknown format (expected {VECTORS_FORMAT!r})")
        if not isinstance(doc.get("format_version"), int) or doc["format_version"] > VECTORS_FORMAT_VERSION:
            raise VectorError(f"{path.name}: written by a newer Latent Explorer (format "
                              f"{doc.get('format_version')!r}); please update")
        dim = doc.get("latent_dim")
        if not isinstance(dim, int) or dim < 1:
            raise VectorError(f"{path.name}: latent_dim missing or invalid in the metadata")
        if latent_dim is not None and dim != latent_dim:
            raise VectorError(f"{path.name}: the vectors are {dim}-d but the model's latent space is "
                              f"{latent_dim}-d")
        info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
        store = cls(dim, source=doc.get("source") if isinstance(doc.get("source"), dict) else {})
        # safetensors sorts its keys; the saved order is the one the user built (attributes in column order).
        order = [k for k in doc.get("order", []) if k in tensors] if isinstance(doc.get("order"), list) else []
        order += sorted(set(tensors) - set(order))
        for name in order:
            v = tensors[name]
            try:
                store[name] = v
            except VectorError as exc:
                raise VectorError(f"{path.name}: {exc}") from None
            if isinstance(info.get(name), dict):
                store.info[name] = info[name]
        return store


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        value = obj.item()
        return value if not isinstance(value, float) or math.isfinite(value) else None
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
