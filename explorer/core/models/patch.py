"""The patch autoencoder: a small MLP that compresses ``p x p`` patches, applied to whole images by tiling.

One of the course texts compresses 64x64 images with an MLP 64-16-64 with tanh, trained on randomly chosen 8x8
patches. This family is that model for any data set: ``patch_size`` (default 8), ``code_size`` (default 16) and
the code ``activation`` (default tanh) are configurable. Training batches are whole images (the trainer's
contract); :meth:`PatchAE.train_step` cuts ``patches_per_image`` random patches (any position, not only the tile
grid) out of each and fits those.

As a latent model, an image's code is the concatenation of its tiles' codes, row-major over the tile grid:
``latent_dim = tiles * code_size``, derived from the image shape (sides that are no multiple of the patch size
are padded by repeating the edge pixels, and the padding is cropped off again after decoding). That keeps every
explorer tool working on the patch model; :mod:`explorer.core.compression` measures it as a codec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from . import losses
from .base import Capabilities, LatentModel, ModelConfig, check_choice, check_positive_int
from .registry import register

ACTIVATIONS: tuple[str, ...] = ("tanh", "sigmoid", "relu", "linear")


def tile_grid(image_shape: tuple[int, int, int], patch_size: int) -> tuple[int, int]:
    """(rows, cols) of patch tiles covering an image (the last row/column padded when sides don't divide)."""
    _, h, w = image_shape
    return -(-h // patch_size), -(-w // patch_size)


@dataclass
class PatchConfig(ModelConfig):
    """Patch AE: ``C*p*p -> code_size -> C*p*p``; ``latent_dim`` is derived (tiles x code_size).

    ``hidden`` adds optional hidden layers (ReLU) on both sides; the default ``()`` is the text's single layer.
    """

    archs: ClassVar[tuple[str, ...]] = ("patch",)

    arch: str = "patch"
    patch_size: int = 8
    code_size: int = 16
    activation: str = "tanh"
    hidden: tuple[int, ...] = ()
    patches_per_image: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):
            self.hidden = tuple(self.hidden)
        # The image-level code is every tile's code: latent_dim follows from the other fields.
        if isinstance(self.patch_size, int) and self.patch_size >= 1 and isinstance(self.code_size, int):
            rows, cols = tile_grid(tuple(self.image_shape), self.patch_size)  # type: ignore[arg-type]
            self.latent_dim = rows * cols * self.code_size

    @property
    def patch_dim(self) -> int:
        return int(self.image_shape[0]) * self.patch_size**2

    @property
    def tiles(self) -> int:
        rows, cols = tile_grid(tuple(self.image_shape), self.patch_size)  # type: ignore[arg-type]
        return rows * cols

    def validate(self) -> None:
        # The patch fields first: latent_dim is derived from them, so its own message would mislead.
        check_positive_int("patch_size", self.patch_size)
        check_positive_int("code_size", self.code_size)
        super().validate()
        check_choice("arch", self.arch, self.archs)
        check_positive_int("patches_per_image", self.patches_per_image)
        check_choice("activation", self.activation, ACTIVATIONS)
        if not isinstance(self.hidden, tuple):
            raise ValueError(f"hidden must be a list of layer sizes, got {self.hidden!r}")
        for size in self.hidden:
            check_positive_int("each hidden layer size", size)
        _, h, w = self.image_shape
        if self.patch_size > min(h, w):
            raise ValueError(f"patch_size {self.patch_size} is larger than the {h}x{w} images")
        if self.patches_per_image > 4096:
            raise ValueError(f"patches_per_image must be at most 4096, got {self.patches_per_image}")
        if self.latent_dim != self.tiles * self.code_size:
            raise ValueError(f"latent_dim {self.latent_dim} in config but {self.tiles} tiles of {self.code_size} "
                             f"codes make {self.tiles * self.code_size}")


def _act(kind: str) -> nn.Module:
    return {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "linear": nn.Identity}[kind]()


def _mlp(sizes: list[int], last_act: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if last_act is not None:
        layers.append(last_act)
    return nn.Sequential(*layers)


@register
class PatchAE(LatentModel):
    family = "patch"
    config_cls = PatchConfig
    # Codes of an AE follow no known distribution: sampling N(0, I) is not meaningful.
    capabilities = Capabilities(has_encoder=True, is_generative=False)
    config: PatchConfig

    def __init__(self, config: PatchConfig):
        super().__init__(config)
        c = config
        self.patch_encoder = _mlp([c.patch_dim, *c.hidden, c.code_size], _act(c.activation))
        self.patch_decoder = _mlp([c.code_size, *reversed(c.hidden), c.patch_dim], None)

    # ---- geometry
    @property
    def patch_size(self) -> int:
        return int(self.config.patch_size)

    @property
    def code_size(self) -> int:
        return int(self.config.code_size)

    @property
    def tiles(self) -> int:
        return self.config.tiles

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w = self.image_shape
        rows, cols = tile_grid(self.image_shape, self.patch_size)
        ph, pw = rows * self.patch_size - h, cols * self.patch_size - w
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def tile(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> their grid patches (B * tiles, C, p, p), row-major per image."""
        p = self.patch_size
        cols = F.unfold(self._padded(x), kernel_size=p, stride=p)  # (B, C*p*p, T)
        return cols.transpose(1, 2).reshape(-1, self.image_shape[0], p, p)

    def untile(self, patches: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`tile`: (B * tiles, C, p, p) -> (B, C, H, W) (padding cropped)."""
        p, t = self.patch_size, self.tiles
        c, h, w = self.image_shape
        rows, cols = tile_grid(self.image_shape, p)
        b = len(patches) // t
        flat = patches.reshape(b, t, c * p * p).transpose(1, 2)
        img = F.fold(flat, output_size=(rows * p, cols * p), kernel_size=p, stride=p)
        return img[:, :, :h, :w]

    def random_patches(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` patches per image at uniformly random positions (any offset): (B * k, C, p, p)."""
        p = self.patch_size
        b, c, h, w = x.shape
        dev = x.device
        kw = {"generator": generator, "device": generator.device} if generator is not None else {"device": dev}
        ys = torch.randint(0, h - p + 1, (b, k), **kw).to(dev)
        xs = torch.randint(0, w - p + 1, (b, k), **kw).to(dev)
        off = torch.arange(p, device=dev)
        rows = (ys[..., None] + off)[..., :, None]  # (b, k, p, 1)
        cols = (xs[..., None] + off)[..., None, :]  # (b, k, 1, p)
        bi = torch.arange(b, device=dev)[:, None, None, None]
        picked = x[bi, :, rows, cols]  # (b, k, p, p, C)
        return picked.permute(0, 1, 4, 2, 3).reshape(b * k, c, p, p)

    # ---- patch codec
    def encode_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, C, p, p) in [0, 1] -> (N, code_size)."""
        return self.patch_encoder(patches.reshape(len(patches), -1) - 0.5)

    def decode_patches_raw(self, codes: torch.Tensor) -> torch.Tensor:
        c, p = self.image_shape[0], self.patch_size
        return (self.patch_decoder(codes) + 0.5).reshape(len(codes), c, p, p)

    def decode_patches(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, code_size) -> (N, C, p, p) in [0, 1]."""
        return self.decode_patches_raw(codes).clamp(0.0, 1.0)

    # ---- the latent-model interface
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_patches(self.tile(x)).reshape(len(x), -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        codes = z.reshape(len(z) * self.tiles, self.code_size)
        return self.untile(self.decode_patches_raw(codes)).clamp(0.0, 1.0)

    # ---- training
    def train_step(
        self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        patches = self.random_patches(x, self.config.patches_per_image)
        recon = self.decode_patches_raw(self.encode_patches(patches))
        loss = F.mse_loss(recon, patches)  # per pixel, the unit PSNR is computed in
        self.guarded_step(loss, optimizers["model"], "loss", step)
        return {"loss": loss.detach(), "mse": loss.detach()}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        """Whole images, tiled: per-pixel MSE (``loss``, as in training) and PSNR in dB."""
        mse = float(losses.pixel_mse(self.reconstruct(x), x))
        return {"loss": mse, "mse": mse, "psnr": 10.0 * math.log10(1.0 / max(mse, 1e-12))}

    def extra_metadata(self) -> dict[str, Any]:
        return {"tiles": self.tiles, "patch_dim": self.config.patch_dim}


__all__ = ["ACTIVATIONS", "PatchAE", "PatchConfig", "tile_grid"]
