"""What to train: the panel's form as a plain dataclass, and how it becomes a model and a trainer config.

Qt-free on purpose, so the worker, the tests and the benchmark build exactly the
same model from the same settings.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Panel family -> (label, registry family, config preset, the family's extra setting or None).
# The extra setting is (config field, label, default, minimum, maximum, decimals).
FAMILIES: dict[str, tuple[str, str, dict[str, Any], tuple[str, str, float, float, float, int] | None]] = {
    "ae": ("Autoencoder", "ae", {}, None),
    "dae": ("Denoising autoencoder", "ae", {}, ("denoising_std", "Input noise σ", 0.3, 0.0, 1.0, 3)),
    "sae": ("Sparse autoencoder", "ae", {}, ("sparsity_l1", "L1 weight on z", 1e-3, 0.0, 10.0, 5)),
    "vae": ("VAE (β-VAE)", "vae", {}, ("beta", "β (KL weight)", 1.0, 0.0, 1000.0, 3)),
    # The faces demo's loss (explorer/core/models/perceptual.py): features of a small net trained on the faces.
    "vae-perceptual": ("VAE + perceptual loss (faces)", "vae", {"beta": 0.1},
                       ("perceptual", "Perceptual weight", 0.25, 0.0, 10.0, 3)),
    "gan": ("GAN (DCGAN)", "gan", {}, None),
    "pca": ("PCA (closed form)", "pca", {}, None),
    # The course texts' other models: an exact likelihood (no latent space), and two ways of training the faces'
    # factors into named units / analogies (train them on the "faces" data set).
    "pixelcnn": ("PixelCNN (exact likelihood)", "pixelcnn", {}, None),
    "dcign": ("DC-IGN (faces: named units)", "dcign", {}, ("invariance_weight", "Invariance weight", 10.0, 0.0, 100.0, 2)),
    "analogy": ("VAE + visual-analogy loss (faces)", "analogy", {}, ("analogy_weight", "Analogy weight", 1.0, 0.0, 100.0, 2)),
}
# Families whose latent size is not a choice (PixelCNN has none: its config holds a placeholder of 1).
FIXED_LATENT = {"pixelcnn": 1}
# Which families take an architecture choice (GANs are always DCGAN convolutions, PCA is linear).
ARCH_FAMILIES = ("ae", "dae", "sae", "vae", "vae-perceptual")
ARCHS = (("MLP", "mlp"), ("Convolutional", "conv"))


def default_lr(kind: str) -> float:
    # DCGAN's 2e-4 (Radford et al.); Adam's usual 1e-3 for the autoencoders.
    return 2e-4 if kind == "gan" else 1e-3


@dataclass
class TrainingSpec:
    kind: str = "vae"  # a key of FAMILIES
    arch: str = "mlp"
    latent_dim: int = 20
    extra: float | None = None  # the family's extra setting (β, noise σ, L1 weight); None: its default
    hidden: tuple[int, ...] | None = None  # MLP hidden sizes; None: the family default
    base_channels: int | None = None
    dataset: str = "mnist"  # any name load_dataset takes, e.g. "digits" or "folder:/path"
    image_size: int | None = None  # None: the source's own size
    limit_train: int | None = None
    limit_test: int | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float | None = None  # None: default_lr(kind)
    seed: int = 0
    device: str = "auto"
    checkpoint_path: str | None = None
    checkpoint_every: int = 0
    max_steps: int | None = None
    resume_path: str | None = None  # continue from this checkpoint (its model config wins over the form's)
    # The trainer's progress events: at most 5 a second. Enough for a smooth bar and curve; each
    # report costs the GUI thread a repaint of the bar and a label.
    progress_interval_s: float = 0.2
    n_sample_grid: int = 16

    def replace(self, **changes: Any) -> "TrainingSpec":
        return dataclasses.replace(self, **changes)

    @property
    def family(self) -> str:
        return FAMILIES[self.kind][1]

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else default_lr(self.kind)

    def validate(self) -> None:
        """Raise ValueError with a message for the user when the settings cannot work."""
        if self.kind not in FAMILIES:
            raise ValueError(f"unknown model kind {self.kind!r}; choose one of {', '.join(FAMILIES)}")
        if not self.dataset.strip():
            raise ValueError("choose a data set")
        for name in ("latent_dim", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be a positive whole number, got {value!r}")
        lr = self.effective_lr
        if not (lr > 0 and lr < float("inf")):
            raise ValueError(f"learning rate must be a positive number, got {lr!r}")
        if self.checkpoint_every < 0:
            raise ValueError("the checkpoint period must be 0 (only at the end) or more epochs")

    def model_config(self, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        """The registry config (as a dict) for images of this shape."""
        from explorer.core.models import get_family

        label, family, preset, extra = FAMILIES[self.kind]
        fields = set(get_family(family).config_cls.__dataclass_fields__)
        cfg: dict[str, Any] = {"latent_dim": FIXED_LATENT.get(self.kind, self.latent_dim),
                               "image_shape": list(image_shape), **preset}
        if "arch" in fields:
            cfg["arch"] = self.arch
        if extra is not None:
            cfg[extra[0]] = extra[2] if self.extra is None else float(self.extra)
        if self.hidden is not None and "hidden" in fields:
            cfg["hidden"] = list(self.hidden)
        if self.base_channels is not None and "base_channels" in fields:
            cfg["base_channels"] = self.base_channels
        return cfg

    def describe(self) -> str:
        label = FAMILIES[self.kind][0]
        arch = f" {self.arch}" if self.kind in ARCH_FAMILIES else ""
        return f"{label}{arch}, latent {self.latent_dim}, {self.dataset}"


def default_checkpoint_path(directory: str | Path, spec: TrainingSpec) -> str:
    """A new file name in ``directory`` that says what was trained and when (never an existing file)."""
    directory = Path(directory).expanduser()
    data = spec.dataset.split(":", 1)[0] or "data"
    stem = f"{spec.kind}-{spec.arch if spec.kind in ARCH_FAMILIES else 'default'}-z{spec.latent_dim}-{data}-" \
           f"{time.strftime('%Y%m%d-%H%M%S')}"
    path = directory / f"{stem}.safetensors"
    n = 2
    while path.exists():
        path = directory / f"{stem}-{n}.safetensors"
        n += 1
    return str(path)
