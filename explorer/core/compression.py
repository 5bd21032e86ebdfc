"""The patch autoencoder as an image codec, measured against PCA and JPEG at the same byte budget.

An image is stored as its tiles' codes, each code number quantised to one byte (8-bit uniform quantisation over
the range the codes of training patches take: the shared "tables", like a JPEG's quantisation tables, which the
decoder has anyway). So an image of C x H x W uint8 pixels costs ``tiles * code_size`` bytes, and the
compression ratio is ``C*H*W / (tiles * code_size)``: 4:1 for 8x8 grey patches with 16 codes.

Baselines on the same footing:

* **PCA** with ``code_size`` components fitted on the same random training patches (the linear baseline of the
  text that this codec comes from), coefficients quantised to one byte each in the same way;
* **JPEG** (Pillow, libjpeg) at the highest quality whose entropy-coded data fits the same budget per image. The
  quantisation and Huffman tables are not charged (Pillow's ``streamtype=2`` abbreviated stream, ~300 bytes that
  would otherwise exceed a whole 4:1 budget of a 28x28 digit): they are shared across images, as the patch
  model's weights are. Images that do not fit even at quality 1 are counted at quality 1 and reported.

PSNR in dB over pixels in [0, 1]; SSIM is Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, per channel, averaged (the same definition as scikit-image's ``gaussian_weights=True``).

Core functions for the window: :func:`reconstruct_pair` (original beside reconstruction for any datum) and
:func:`patch_code_sample` (codes of a sample of patches, each drawable as its patch, for a map).
"""

from __future__ import annotations

import io
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .models.nets import eval_mode
from .progress import ProgressFn, check_cancel, report

__all__ = ["CompressionReport", "MethodScore", "evaluate_compression", "fit_patch_pca", "jpeg_at_budget", "psnr",
           "patch_code_sample", "reconstruct_pair", "ssim"]

# Hard bounds so a call can't do unbounded work.
MAX_TEST_IMAGES = 20_000
MAX_PCA_PATCHES = 200_000


# ---------------------------------------------------------------- image quality
def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB of (N, C, H, W) floats in [0, 1] (capped at 100 dB for identical images)."""
    mse = np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64)).reshape(len(a), -1).mean(1)
    return np.minimum(10.0 * np.log10(1.0 / np.maximum(mse, 1e-10)), 100.0)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image mean SSIM of (N, C, H, W) floats in [0, 1] (valid windows only; images below 11 px use a
    window of their smaller side)."""
    x = torch.as_tensor(np.asarray(a, np.float64))
    y = torch.as_tensor(np.asarray(b, np.float64))
    n, c, h, w = x.shape
    size = min(11, h, w)
    if size % 2 == 0:
        size -= 1
    win = _gaussian_window(size, 1.5 * size / 11).to(x.dtype)
    x = x.reshape(n * c, 1, h, w)
    y = y.reshape(n * c, 1, h, w)
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x**2
    syy = F.conv2d(y * y, win) - mu_y**2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    # Unbiased (N / (N - 1)) covariances, as scikit-image uses by default.
    npx = size * size
    corr = npx / (npx - 1) if npx > 1 else 1.0
    sxx, syy, sxy = sxx * corr, syy * corr, sxy * corr
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.reshape(n, c, -1).mean(2).mean(1).numpy()


# ---------------------------------------------------------------- quantisation
def _quantise(codes: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Uniform quantisation to 2**bits levels over [lo, hi] per dimension; returns the dequantised codes."""
    levels = 2**bits - 1
    span = (hi - lo).clamp_min(1e-8)
    q = torch.round((codes.clamp(lo, hi) - lo) / span * levels)
    return lo + q / levels * span


# ---------------------------------------------------------------- PCA on patches
@dataclass
class PatchPCA:
    mean: torch.Tensor  # (D,)
    components: torch.Tensor  # (k, D), rows orthonormal

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        return (patches.reshape(len(patches), -1).double() - self.mean) @ self.components.T

    def decode(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return (codes.double() @ self.components + self.mean).reshape(len(codes), *shape).float()


def fit_patch_pca(patches: torch.Tensor, k: int) -> PatchPCA:
    """PCA with ``k`` components of (N, C, p, p) patches (eigenvectors of the covariance, float64)."""
    flat = patches.reshape(len(patches), -1).double()
    if len(flat) < 2:
        raise ValueError("PCA needs at least 2 patches")
    if not 1 <= k <= flat.shape[1]:
        raise ValueError(f"PCA needs 1 to {flat.shape[1]} components for these patches, got {k}")
    mean = flat.mean(0)
    cov = (flat - mean).T @ (flat - mean) / (len(flat) - 1)
    _, vecs = torch.linalg.eigh(cov)
    return PatchPCA(mean, vecs.flip(1).T[:k].contiguous())


# ---------------------------------------------------------------- JPEG
def _jpeg(image_u8: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """(charged bytes, decoded image) of one (C, H, W) uint8 image at ``quality``."""
    from PIL import Image

    arr = image_u8[0] if image_u8.shape[0] == 1 else image_u8.transpose(1, 2, 0)
    im = Image.fromarray(np.ascontiguousarray(arr))
    full, data_only = io.BytesIO(), io.BytesIO()
    im.save(full, "JPEG", quality=quality)
    im.save(data_only, "JPEG", quality=quality, streamtype=2)  # the same stream without its tables
    full.seek(0)
    with Image.open(full) as dec:
        out = np.asarray(dec.convert("L" if image_u8.shape[0] == 1 else "RGB"))
    out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
    return len(data_only.getvalue()), out


def jpeg_at_budget(image_u8: np.ndarray, budget: int) -> tuple[np.ndarray, int, int]:
    """The best JPEG of one (C, H, W) uint8 image within ``budget`` bytes: (decoded, quality, bytes).

    Binary search over quality 1..95 (size grows with quality); quality 1 when nothing fits.
    """
    lo, hi = 1, 95
    best_q, best = 1, _jpeg(image_u8, 1)
    while lo <= hi:
        mid = (lo + hi) // 2
        size, dec = _jpeg(image_u8, mid)
        if size <= budget:
            best_q, best = mid, (size, dec)
            lo = mid + 1
        else:
            hi = mid - 1
    return best[1], best_q, best[0]


# ---------------------------------------------------------------- the report
@dataclass
class MethodScore:
    psnr: float  # mean over test images, dB
    ssim: float
    bytes_per_image: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


@dataclass
class CompressionReport:
    dataset: str
    images: int
    image_shape: tuple[int, int, int]
    patch_size: int
    code_size: int
    raw_bytes: int  # C*H*W per image
    code_bytes: int  # tiles * code_size per image (one byte per code)
    ratio: float
    methods: dict[str, MethodScore] = field(default_factory=dict)
    jpeg_quality_mean: float = 0.0
    jpeg_over_budget: int = 0  # images whose JPEG at quality 1 is still larger than the budget

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["ratio"] = round(self.ratio, 4)
        d["methods"] = {k: v.to_dict() for k, v in self.methods.items()}
        return d


def _to_float(images: Any) -> torch.Tensor:
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr)).float().div(255.0)


def evaluate_compression(
    model: Any,
    data: Any,
    *,
    limit_test: int | None = 500,
    pca_patches: int = 20_000,
    seed: int = 0,
    jpeg: bool = True,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> tuple[CompressionReport, dict[str, np.ndarray]]:
    """Compress the test split of ``data`` (an ImageData) with the patch model, PCA and JPEG.

    Returns the report and the reconstructions (``{"original", "patch", "patch_float", "pca", "jpeg"}``, each
    (N, C, H, W) float32) for grids. PCA is fitted on ``pca_patches`` random patches of the training split (the
    same sampler the model was trained with); the code ranges for quantisation come from those patches too.
    """
    if getattr(model, "family", None) != "patch":
        raise ValueError(f"compression needs a patch model (train one with --arch patch), got a "
                         f"{getattr(model, 'family', type(model).__name__)} model")
    if tuple(data.image_shape) != tuple(model.image_shape):
        raise ValueError(f"data set {data.name!r} has images of shape {list(data.image_shape)} but the model "
                         f"expects {list(model.image_shape)}")
    if data.n_test == 0:
        raise ValueError(f"data set {data.name!r} has no test split to measure on")
    if not 2 <= pca_patches <= MAX_PCA_PATCHES:
        raise ValueError(f"pca_patches must be 2 to {MAX_PCA_PATCHES}, got {pca_patches}")
    n_test = min(data.n_test, limit_test or data.n_test, MAX_TEST_IMAGES)
    test_u8 = data.images[data.n_train:data.n_train + n_test]
    train_u8 = data.images[:data.n_train] if data.n_train else test_u8
    gen = torch.Generator().manual_seed(seed)
    c, h, w = model.image_shape
    p, k, tiles = model.patch_size, model.code_size, model.tiles
    raw_bytes, code_bytes = c * h * w, tiles * k
    x = _to_float(test_u8)
    out: dict[str, np.ndarray] = {"original": x.numpy()}
    scores: dict[str, MethodScore] = {}

    def score(name: str, rec: torch.Tensor | np.ndarray, nbytes: float) -> None:
        r = np.asarray(rec, np.float32)
        out[name] = r
        scores[name] = MethodScore(float(psnr(r, out["original"]).mean()), float(ssim(r, out["original"]).mean()),
                                   float(nbytes))

    with eval_mode(model), torch.no_grad():
        dev = model.device
        report(progress, 0.0, "patch model")
        # Training patches: the quantisation ranges and PCA's fit.
        tx = _to_float(train_u8[: min(len(train_u8), 5000)])
        per_image = max(1, -(-pca_patches // len(tx)))
        train_patches = model.random_patches(tx, per_image, gen)[:pca_patches]
        codes_tr = model.encode_patches(train_patches.to(dev))
        lo, hi = codes_tr.min(0).values, codes_tr.max(0).values
        tiles_x = model.tile(x.to(dev))
        codes = model.encode_patches(tiles_x)
        score("patch_float", model.untile(model.decode_patches(codes)).cpu(), code_bytes * 4)
        score("patch", model.untile(model.decode_patches(_quantise(codes, lo, hi))).cpu(), code_bytes)
        check_cancel(cancel)
        report(progress, 0.2, "PCA on the same patches")
        pca = fit_patch_pca(train_patches.cpu(), k)
        pc_tr = pca.encode(train_patches.cpu())
        plo, phi = pc_tr.min(0).values, pc_tr.max(0).values
        pc = _quantise(pca.encode(tiles_x.cpu()), plo, phi)
        score("pca", model.untile(pca.decode(pc, (c, p, p)).clamp(0.0, 1.0)), code_bytes)
    check_cancel(cancel)
    qualities, over = [], 0
    if jpeg:
        decoded, sizes = [], []
        for i, img in enumerate(test_u8):
            if i % 16 == 0:
                check_cancel(cancel)
                report(progress, 0.3 + 0.7 * i / len(test_u8), f"JPEG {i} of {len(test_u8)}")
            dec, q, size = jpeg_at_budget(img, code_bytes)
            decoded.append(dec)
            sizes.append(size)
            qualities.append(q)
            over += size > code_bytes
        score("jpeg", np.stack(decoded).astype(np.float32) / 255.0, float(np.mean(sizes)))
    report(progress, 1.0, "done")
    rep = CompressionReport(
        dataset=data.name, images=n_test, image_shape=(c, h, w), patch_size=p, code_size=k, raw_bytes=raw_bytes,
        code_bytes=code_bytes, ratio=raw_bytes / code_bytes, methods=scores,
        jpeg_quality_mean=float(np.mean(qualities)) if qualities else 0.0, jpeg_over_budget=int(over))
    return rep, out


# ---------------------------------------------------------------- for the window
@torch.no_grad()
def reconstruct_pair(model: Any, image: Any) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """One datum (C, H, W) uint8 or float in [0, 1] -> (original, reconstruction, {"psnr", "ssim"}).

    Works for any model with an encoder; for the patch model it is the tiled codec (unquantised codes).
    """
    arr = np.asarray(image)
    x = torch.from_numpy(np.ascontiguousarray(arr)).float()
    if arr.dtype == np.uint8:
        x = x / 255.0
    if x.ndim != 3 or tuple(x.shape) != tuple(model.image_shape):
        raise ValueError(f"the image is {tuple(x.shape)} but the model expects {tuple(model.image_shape)}")
    with eval_mode(model):
        rec = model.reconstruct(x[None].to(model.device)).float().cpu().numpy()
    orig = x[None].numpy()
    return orig[0], rec[0], {"psnr": float(psnr(rec, orig)[0]), "ssim": float(ssim(rec, orig)[0])}


@torch.no_grad()
def patch_code_sample(
    model: Any, images: Any, n: int = 2000, *, seed: int = 0,
    progress: ProgressFn | None = None, cancel: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``n`` random patches of ``images`` ((N, C, H, W) uint8) for a map: (codes (n, code_size),
    patches (n, C, p, p) float32 in [0, 1], each point drawable as its patch)."""
    if getattr(model, "family", None) != "patch":
        raise ValueError("patch codes need a patch model")
    if not 1 <= n <= 1_000_000:
        raise ValueError(f"n must be 1 to 1000000 patches, got {n}")
    arr = np.asarray(images)
    if arr.ndim != 4 or len(arr) == 0:
        raise ValueError(f"images must be a non-empty (N, C, H, W) array, got shape {arr.shape}")
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, len(arr), (n,), generator=gen).numpy()
    codes, patches = [], []
    with eval_mode(model):
        for start in range(0, n, 4096):
            check_cancel(cancel)
            report(progress, start / n, "encoding patches")
            x = _to_float(arr[rows[start:start + 4096]])
            pt = model.random_patches(x, 1, gen)
            codes.append(model.encode_patches(pt.to(model.device)).float().cpu().numpy())
            patches.append(pt.numpy())
    report(progress, 1.0, "done")
    return np.concatenate(codes), np.concatenate(patches)

