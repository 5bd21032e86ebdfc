"""Pretraining: does a model's encoder help a classifier that has only a few labels?

An autoencoder learns its encoder without class labels. Put a small classifier on top of it and train with
``k`` labels per class, three ways, with the same labels, the same head, the same optimiser and the same number
of steps:

* ``frozen``: the encoder's weights stay as trained; only the head learns (a linear probe);
* ``finetune``: encoder and head both learn, starting from the trained encoder;
* ``scratch``: the same network (a copy of the encoder with freshly initialised weights) learns from nothing.

The classifier is ``encoder -> standardise -> Linear(latent_dim, 64) -> ReLU -> Linear(64, classes)``. The standardisation is fixed
per run from the labelled images' features under the starting encoder (codes of an AE can be in the tens while
a VAE's are near 1; without it the head's learning rate would favour one family). A VAE contributes its
posterior mean, PCA its (whitened) projection as a linear layer, the patch AE its tiled patch encoder.

::

    curve = pretrain_curve(model, data, labels_per_class=(1, 10, 100), seeds=3, progress=cb, cancel=event)
    curve.mean("frozen")        # test accuracy per label count, averaged over seeds
    png = plot_curves([curve])  # (H, W, 3) uint8; write_csv / write_png store them atomically

:func:`pretrain_curve` runs for any model with an encoder, so the Compare tab can draw one curve per open model.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import atomic_write
from .imaging import label_colours
from .models.base import CapabilityError
from .progress import ProgressFn, check_cancel, report

__all__ = ["MODES", "PretrainCurve", "classifier_network", "encoder_network", "plot_curves", "pretrain_curve",
           "sample_labelled", "write_csv", "write_png"]

MODES: tuple[str, ...] = ("frozen", "finetune", "scratch")
MAX_STEPS = 100_000
HEAD_HIDDEN = 64
MAX_LABELS_PER_CLASS = 100_000


# ---------------------------------------------------------------- networks
class _TakeFirst(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.n]


class _PatchEncoder(nn.Module):
    """The patch AE's encoder over a whole image: its tiles' codes, concatenated."""

    def __init__(self, model: Any):
        super().__init__()
        # Held in a list so that the source model is no submodule: only its tile() geometry is used, and
        # re-initialising or training this network must never touch the source's weights.
        self._tiler = [model]
        self.patch_encoder = copy.deepcopy(model.patch_encoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tiles = self._tiler[0].tile(x)
        return self.patch_encoder(tiles.reshape(len(tiles), -1) - 0.5).reshape(len(x), -1)


class _Encode(nn.Module):
    """A model whose encoder is not a module we can copy (an imported model): frozen use only."""

    def __init__(self, model: Any):
        super().__init__()
        self._model = [model]  # hidden from .parameters(): it must not be trained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._model[0].encode(x)


def encoder_network(model: Any) -> tuple[nn.Module, bool]:
    """A trainable copy of ``model``'s encoder (images in [0, 1] -> latent codes) and whether it can be trained.

    AE, VAE (the mean half of its output), PCA (a Linear layer holding the projection) and the patch AE copy
    their encoder; any other model with an encoder is wrapped untrainable (frozen mode only).
    """
    if not model.capabilities.has_encoder:
        raise CapabilityError(f"{model.family.upper()} models have no encoder to pretrain a classifier with")
    fam = model.family
    if fam in ("ae", "vae") and isinstance(getattr(model, "encoder", None), nn.Module):
        enc = copy.deepcopy(model.encoder)
        return (nn.Sequential(enc, _TakeFirst(model.latent_dim)) if fam == "vae" else enc), True
    if fam == "pca":
        comps = model.components.detach().float()
        w = comps / model.scale.detach()[:, None] if model.config.whiten else comps
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(-(w @ model.mean.detach().float()))
        return nn.Sequential(nn.Flatten(), lin), True
    if fam == "patch":
        return _PatchEncoder(model), True
    return _Encode(model), False


def _reinitialise(net: nn.Module) -> None:
    for m in net.modules():
        if m is not net and hasattr(m, "reset_parameters"):
            m.reset_parameters()  # type: ignore[operator]


class _Standardise(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def classifier_network(model: Any, mode: str, n_classes: int, labelled: torch.Tensor,
                       generator: torch.Generator) -> nn.Sequential:
    """``encoder -> standardise -> Linear`` for ``mode`` (one of MODES), standardised on ``labelled`` images."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    enc, trainable = encoder_network(model)
    if mode != "frozen" and not trainable:
        raise CapabilityError(f"the encoder of this {model.family} model cannot be copied, so only the frozen "
                              "mode is available")
    enc = enc.to(labelled.device)
    if mode == "scratch":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            _reinitialise(enc)
    enc.eval()
    with torch.no_grad():
        feats = enc(labelled).float()
    mean, std = feats.mean(0), feats.std(0, unbiased=False).clamp_min(1e-4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        head = (nn.Sequential(nn.Linear(feats.shape[1], HEAD_HIDDEN), nn.ReLU(), nn.Linear(HEAD_HIDDEN, n_classes))
                if HEAD_HIDDEN else nn.Linear(feats.shape[1], n_classes)).to(labelled.device)
    net = nn.Sequential(enc, _Standardise(mean, std), head)
    if mode == "frozen":
        for p in enc.parameters():
            p.requires_grad_(False)
    return net


# ---------------------------------------------------------------- data
def sample_labelled(labels: np.ndarray, n_train: int, k: int, seed: int) -> np.ndarray:
    """``k`` training rows per class (all of a class that has fewer), drawn by ``seed``; sorted row indices."""
    rng = np.random.default_rng([seed, 0x1AB])
    y = np.asarray(labels[:n_train])
    rows = []
    for cls in np.unique(y[y >= 0]):
        idx = np.nonzero(y == cls)[0]
        rows.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, np.int64)


# ---------------------------------------------------------------- the curve
@dataclass
class PretrainCurve:
    model_name: str
    dataset: str
    labels_per_class: list[int]
    modes: list[str]
    seeds: int
    steps: int
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)  # mode -> (len(labels_per_class), seeds)
    chance: float = 0.0

    def mean(self, mode: str) -> np.ndarray:
        return self.accuracy[mode].mean(1)

    def std(self, mode: str) -> np.ndarray:
        return self.accuracy[mode].std(1)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for mode in self.modes:
            for i, k in enumerate(self.labels_per_class):
                for s in range(self.seeds):
                    out.append({"model": self.model_name, "dataset": self.dataset, "mode": mode,
                                "labels_per_class": k, "seed": s, "accuracy": round(float(self.accuracy[mode][i, s]), 5)})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "dataset": self.dataset, "labels_per_class": self.labels_per_class,
                "seeds": self.seeds, "steps": self.steps, "chance": round(self.chance, 4),
                "mean_accuracy": {m: [round(float(v), 4) for v in self.mean(m)] for m in self.modes},
                "std_accuracy": {m: [round(float(v), 4) for v in self.std(m)] for m in self.modes}}


def _train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, batch_size: int,
           generator: torch.Generator, cancel: threading.Event | None) -> None:
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    net.train()
    n = len(x)
    for step in range(steps):
        if step % 20 == 0:
            check_cancel(cancel)
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator).to(x.device) if n > batch_size \
            else torch.arange(n, device=x.device)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()


@torch.no_grad()
def _accuracy(net: nn.Module, x_u8: np.ndarray, y: np.ndarray, device: torch.device) -> float:
    correct = 0
    for start in range(0, len(x_u8), 2000):
        xb = torch.from_numpy(np.ascontiguousarray(x_u8[start:start + 2000])).to(device).float().div_(255.0)
        correct += int((net(xb).argmax(1).cpu().numpy() == y[start:start + 2000]).sum())
    return correct / max(len(y), 1)


def pretrain_curve(
    model: Any,
    data: Any,
    *,
    labels_per_class: tuple[int, ...] | list[int] = (1, 10, 100),
    modes: tuple[str, ...] | list[str] = MODES,
    seeds: int = 3,
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 128,
    limit_test: int | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> PretrainCurve:
    """Test accuracy per label count for each mode (see the module docstring), over ``seeds`` label draws.

    data: an ImageData with class labels (>= 0) and a test split, at the model's image shape.
    Each seed draws its labelled images once; every mode and the head's initialisation share them.
    """
    if not labels_per_class or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or
                                   not 1 <= k <= MAX_LABELS_PER_CLASS for k in labels_per_class):
        raise ValueError(f"labels per class must be integers from 1 to {MAX_LABELS_PER_CLASS}, got "
                         f"{list(labels_per_class)}")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"modes must be some of {', '.join(MODES)}, got {list(modes)}")
    for name, v, hi in (("seeds", seeds, 100), ("steps", steps, MAX_STEPS), ("batch_size", batch_size, 65536)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
            raise ValueError(f"{name} must be an integer from 1 to {hi}, got {v!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not model.capabilities.has_encoder:
        raise CapabilityError(f"{model.family.upper()} models have no encoder to pretrain a classifier with")
    if tuple(data.image_shape) != tuple(model.image_shape):
        raise ValueError(f"data set {data.name!r} has images of shape {list(data.image_shape)} but the model "
                         f"expects {list(model.image_shape)}")
    y_all = np.asarray(data.labels)
    classes = np.unique(y_all[: data.n_train][y_all[: data.n_train] >= 0])
    if len(classes) < 2:
        raise ValueError(f"data set {data.name!r} has fewer than two labelled classes in its training split")
    n_test = data.n_test if limit_test is None else min(data.n_test, int(limit_test))
    test_rows = np.arange(data.n_train, data.n_train + n_test)
    test_rows = test_rows[np.isin(y_all[test_rows], classes)]
    if len(test_rows) == 0:
        raise ValueError(f"data set {data.name!r} has no labelled test images")
    remap = {int(c): i for i, c in enumerate(classes)}
    y_test = np.array([remap[int(v)] for v in y_all[test_rows]])
    x_test = data.images[test_rows]
    device = model.device
    ks = [int(k) for k in labels_per_class]
    acc = {m: np.zeros((len(ks), seeds)) for m in modes}
    total, done = len(ks) * seeds * len(modes), 0
    was_training = model.training
    model.eval()
    try:
        for i, k in enumerate(ks):
            for s in range(seeds):
                rows = sample_labelled(y_all, data.n_train, k, s)
                x = torch.from_numpy(data.images[rows]).to(device).float().div_(255.0)
                y = torch.as_tensor([remap[int(v)] for v in y_all[rows]], device=device)
                for mode in modes:
                    check_cancel(cancel)
                    report(progress, done / total, f"{mode}, {k} labels per class, seed {s + 1} of {seeds}")
                    gen = torch.Generator().manual_seed(1000 * s + 17)
                    net = classifier_network(model, mode, len(classes), x, gen)
                    _train(net, x, y, steps, lr, batch_size, gen, cancel)
                    acc[mode][i, s] = _accuracy(net, x_test, y_test, device)
                    done += 1
    finally:
        model.train(was_training)
    report(progress, 1.0, "done")
    name = Path(str(getattr(model, "source_path", "") or model.family)).stem
    return PretrainCurve(model_name=name, dataset=str(data.name), labels_per_class=ks, modes=list(modes),
                         seeds=seeds, steps=steps, accuracy=acc, chance=1.0 / len(classes))


# ---------------------------------------------------------------- outputs
def write_csv(curves: list[PretrainCurve], path: str | Path) -> Path:
    """One row per (model, mode, label count, seed), written atomically."""
    buf = io.StringIO()
    fields = ["model", "dataset", "mode", "labels_per_class", "seed", "accuracy"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for c in curves:
        writer.writerows(c.rows())
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


_DASH = {"frozen": None, "finetune": (6, 3), "scratch": (2, 3)}


def plot_curves(curves: list[PretrainCurve], size: tuple[int, int] = (640, 420)) -> np.ndarray:
    """Test accuracy against labels per class (log axis), one colour per model, one dash per mode: (H, W, 3)."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = size
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 56, w - 150, 28, h - 44
    ks = sorted({k for c in curves for k in c.labels_per_class})
    lo, hi = math.log10(min(ks)), math.log10(max(ks))
    span = hi - lo if hi > lo else 1.0

    def px(k: float, a: float) -> tuple[float, float]:
        x = left + (math.log10(k) - lo) / span * (right - left) if hi > lo else (left + right) / 2
        return x, bottom - a * (bottom - top)

    d.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    for a in np.linspace(0, 1, 6):
        _, y = px(ks[0], a)
        d.line([left, y, right, y], fill=(225, 225, 225))
        d.text((left - 34, y - 6), f"{a:.1f}", fill=(0, 0, 0), font=font)
    for k in ks:
        x, _ = px(k, 0)
        d.line([x, bottom, x, bottom + 4], fill=(0, 0, 0))
        d.text((x - 8, bottom + 8), str(k), fill=(0, 0, 0), font=font)
    d.text(((left + right) / 2 - 45, h - 18), "labels per class", fill=(0, 0, 0), font=font)
    d.text((left, 8), "test accuracy", fill=(0, 0, 0), font=font)
    if curves:
        _, y = px(ks[0], curves[0].chance)
        for x0 in range(left, right, 8):
            d.line([x0, y, min(x0 + 3, right), y], fill=(150, 150, 150))
        d.text((right - 40, y - 13), "chance", fill=(120, 120, 120), font=font)
    # One model: a colour per mode; several: a colour per model and a dash per mode.
    per_mode = len(curves) == 1
    colours = [tuple(int(v) for v in c) for c in label_colours(max(len(curves), len(MODES)))]
    legend_y = top
    for ci, c in enumerate(curves):
        for mode in c.modes:
            col = colours[MODES.index(mode)] if per_mode else colours[ci]
            pts = [px(k, float(a)) for k, a in zip(c.labels_per_class, c.mean(mode))]
            dash = _DASH.get(mode)
            for p0, p1 in zip(pts[:-1], pts[1:]):
                _dashed(d, p0, p1, col, dash)
            for x, y in pts:
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=col)
            _dashed(d, (right + 10, legend_y + 6), (right + 34, legend_y + 6), col, dash)
            d.text((right + 38, legend_y), f"{c.model_name[:12]} {mode}", fill=(0, 0, 0), font=font)
            legend_y += 14
    return np.asarray(img)


def _dashed(d: Any, p0: tuple[float, float], p1: tuple[float, float], col: tuple[int, ...],
            dash: tuple[int, int] | None) -> None:
    if dash is None:
        d.line([p0, p1], fill=col, width=2)
        return
    length = math.dist(p0, p1)
    on, off = dash
    t = 0.0
    while t < length:
        a, b = t / length, min(t + on, length) / length
        d.line([(p0[0] + (p1[0] - p0[0]) * a, p0[1] + (p1[1] - p0[1]) * a),
                (p0[0] + (p1[0] - p0[0]) * b, p0[1] + (p1[1] - p0[1]) * b)], fill=col, width=2)
        t += on + off


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """An (H, W, 3) uint8 image as a PNG, written atomically."""
    from PIL import Image

    return atomic_write(path, lambda tmp: Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG"))
