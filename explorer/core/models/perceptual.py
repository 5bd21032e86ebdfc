"""A perceptual reconstruction term from a small network trained on the procedural faces themselves.

Per-pixel losses (BCE, squared error) let a decoder trade a thin feature (an open mouth's row of teeth, the
curve of a smile) for a smooth average that costs few pixels. A perceptual term compares *features* of the
decoded and the real image instead, from a network that has learnt what matters. Nothing can be downloaded
(no VGG), so the network is trained here, on what the faces' attributes make known exactly:

* :class:`FaceFeatureNet`: three strided convolutions (k4 s2 p1, 16/32/64 channels, ReLU) and a linear head;
  about 45k weights, ~5 M multiply-adds per 64 px image (a third of the demo VAE's forward pass).
* :func:`train_feature_net`: ``FEATURE_FACES`` faces of seed ``FEATURE_SEED`` (a seed of its own, so the net
  never sees a VAE's training faces by construction), drawn at the VAE's image size; the net predicts all ten
  attributes (binary cross-entropy against the 0/1 or [0, 1] values), Adam lr 2e-3, batch 64,
  ``FEATURE_EPOCHS`` epochs, every random draw from ``torch.Generator`` seeded with ``FEATURE_SEED``. On one
  CPU thread it takes a few seconds and gives the same weights every time on the same platform (a test
  checks it), so no weights are stored: :func:`feature_net` trains it once per process and image shape.
* :func:`perceptual_loss`: the frozen net's feature maps of the decoded and the real image, squared
  differences averaged per layer and summed over the layers, scaled by the number of image values (so it is
  "summed over pixels, averaged over the batch" like the reconstruction losses in :mod:`.losses`, and a
  weight of 1 is of the same order as the squared-error term).

The VAE adds ``perceptual * perceptual_loss(decoded, x)`` to its reconstruction loss (``VAEConfig.perceptual``,
``latent-explorer train --perceptual W``); test figures (``evaluate``) stay the plain ones, so models trained
with and without it compare on the same scale.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_SEED = 2718
FEATURE_FACES = 4000
FEATURE_EPOCHS = 4
FEATURE_CHANNELS = (16, 32, 64)

_CACHE: dict[tuple[int, int, int], "FaceFeatureNet"] = {}
_LOCK = threading.Lock()


class FaceFeatureNet(nn.Module):
    """Strided convs whose activations are the perceptual features; a linear head predicts the attributes."""

    def __init__(self, image_shape: tuple[int, int, int] = (3, 64, 64), n_outputs: int = 10,
                 widths: tuple[int, ...] = FEATURE_CHANNELS):
        super().__init__()
        c_in, h, w = image_shape
        layers = []
        for c_out in widths:
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1))
            c_in, h, w = c_out, (h + 1) // 2, (w + 1) // 2
        self.convs = nn.ModuleList(layers)
        # A linear head on the whole last map, not a global average: where a part is (the mouth below the
        # nose) is what tells a mouth from an eyebrow.
        self.head = nn.Linear(c_in * h * w, n_outputs)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for conv in self.convs:
            x = F.relu(conv(x))
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1].flatten(1))


def _face_images(count: int, seed: int, image_shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data.faces import make_faces

    c, h, w = image_shape
    if h != w:
        raise ValueError(f"the perceptual term's faces are square; the model's images are {h}x{w}")
    data = make_faces(count, seed=seed, size=h)
    x = torch.from_numpy(data.images).float().div_(255.0)
    if c == 1:
        x = x.mean(dim=1, keepdim=True)
    elif c != 3:
        raise ValueError(f"the perceptual term needs 1 or 3 image channels, got {c}")
    return x, torch.from_numpy(data.attributes).float()


def train_feature_net(image_shape: tuple[int, int, int], *, count: int = FEATURE_FACES, epochs: int = FEATURE_EPOCHS,
                      seed: int = FEATURE_SEED, batch_size: int = 64, lr: float = 2e-3) -> FaceFeatureNet:
    """Train the feature net on generated faces (deterministic: fixed seeds, CPU, no data-order randomness
    outside the seeded generator); returns it frozen, in eval mode."""
    image_shape = tuple(int(s) for s in image_shape)  # type: ignore[assignment]
    if count < batch_size:
        raise ValueError(f"count must be at least the batch size {batch_size}, got {count}")
    x, y = _face_images(count, seed, image_shape)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG stream is left as it was
        torch.manual_seed(seed)
        net = FaceFeatureNet(image_shape, y.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(count, generator=gen)
        for s in range(0, count - batch_size + 1, batch_size):
            idx = order[s:s + batch_size]
            loss = F.binary_cross_entropy_with_logits(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def feature_net(image_shape: tuple[int, int, int]) -> FaceFeatureNet:
    """The frozen feature net for this image shape, trained on first use in this process (a few seconds)."""
    key = tuple(int(s) for s in image_shape)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = train_feature_net(key)  # type: ignore[arg-type]
        return _CACHE[key]


def perceptual_loss(decoded: torch.Tensor, x: torch.Tensor, net: FaceFeatureNet | None = None) -> torch.Tensor:
    """Feature-matching loss of decoded images (in [0, 1], with gradient) against real ones, per image.

    Sum over the net's layers of the mean squared feature difference, times the number of image values:
    summed over pixels and averaged over the batch, as the reconstruction losses are.
    """
    if decoded.shape != x.shape:
        raise ValueError(f"decoded images {tuple(decoded.shape)} and targets {tuple(x.shape)} differ in shape")
    if net is None:
        net = feature_net(tuple(x.shape[1:]))  # type: ignore[arg-type]
    if next(net.parameters()).device != x.device:
        net = net.to(x.device)
    with torch.no_grad():
        target = net.features(x)
    total = decoded.new_zeros(())
    for a, b in zip(net.features(decoded), target):
        total = total + F.mse_loss(a, b, reduction="mean")
    return total * float(x[0].numel())
