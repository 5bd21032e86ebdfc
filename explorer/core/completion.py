"""Image completion by latent search (semantic inpainting, Yeh et al., CVPR 2017).

Fill a missing region of an image with what the model believes belongs there: find the latent code whose decoded
image matches the *visible* pixels, then blend the decoded fill into the visible pixels.

* AE / VAE / PCA (models with an encoder): the search starts from the encoder's code of the masked image (the hole
  filled with the mean of the visible pixels); further restarts start from that code plus noise. The objective is
  the mean squared error over the visible pixels plus ``prior_weight`` times a prior term: ``mean(z^2) / 2`` for
  families whose codes follow N(0, I) (VAE, whitened PCA); for a plain AE, whose codes follow no known
  distribution, a Gaussian with the per-dimension mean and std of ``code_stats`` (codes of training images; the
  CLI passes them) or, without them, a pull towards the encoder's starting code.
* GAN: z starts from prior samples and the objective is Yeh et al.'s *contextual loss* -- an L1 error over the
  visible pixels, each weighted by the share of hole pixels in its 7x7 neighbourhood, so the pixels bordering the
  hole count most -- plus, when the checkpoint holds the discriminator (``GAN.discriminator``, saved in every GAN
  checkpoint of this app), the *perceptual* (prior) loss ``-log D(G(z))``. The paper writes ``log(1 - D(G(z)))``;
  its gradient vanishes exactly where D rejects the completion, and D in eval mode (running statistics of
  real-only and fake-only batches) rejects nearly everything, so the non-saturating form is used, as in GAN
  training itself. A small ``mean(z^2)`` term keeps z where the generator was trained.

Blending: Poisson blending (Perez et al. 2003, the blending Yeh et al. use): inside the hole, solve for the image
whose Laplacian equals the decoded image's and whose values on the hole's border equal the visible pixels. The
fill keeps the model's shapes and shading while any colour or brightness offset between the decoded image and the
real one is spread smoothly over the hole, so no seam shows. A feathered mask (a cross-fade over a band) was the
other candidate; it leaves the offset inside the hole and shows both images at once in the band (a ghosted double
edge wherever they disagree), so it is offered only as ``blend="feather"``; ``blend="none"`` pastes the fill.

::

    from explorer.core.completion import box_mask, complete

    mask = box_mask(model.image_shape, 0, 14, 28, 28)       # x0, y0, x1, y1: the bottom half of an MNIST digit
    result = complete(model, image, mask, restarts=4, steps=300, progress=cb, cancel=event)
    result.blended[0]      # the best completion (lowest loss), (C, H, W) floats in [0, 1]
    result.latents[0]      # its code, which the explorer can place on the map

:func:`complete_batch` completes many images at once (tests, benchmarks).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .models.base import LatentModel
from .models.nets import eval_mode, frozen
from .progress import Cancelled, ProgressFn, check_cancel, report

__all__ = ["BLENDS", "Cancelled", "CompletionResult", "default_prior_weight", "box_mask", "complete", "complete_batch", "contextual_weights",
           "encoder_pass", "mean_fill", "poisson_blend", "feather_blend", "masked_input"]

BLENDS: tuple[str, ...] = ("poisson", "feather", "none")
_CONTEXT_WINDOW = 7  # Yeh et al.'s neighbourhood for the contextual weights


@dataclass
class CompletionResult:
    """Completions of one image, best (lowest loss) first."""

    images: np.ndarray  # (K, C, H, W) float32 in [0, 1]: the decoded images, unblended
    latents: np.ndarray  # (K, latent_dim) float32
    losses: np.ndarray  # (K,) float32: the objective at the kept code (lower is better)
    blended: np.ndarray  # (K, C, H, W) float32: the visible pixels with each fill blended in
    mask: np.ndarray  # (H, W) bool: True where the pixels were missing (the hole)
    method: str  # "encoder+search" or "gan-search"
    blend: str  # one of BLENDS

    def info(self) -> dict[str, Any]:
        return {"completions": len(self.losses), "losses": [round(float(v), 6) for v in self.losses],
                "method": self.method, "blend": self.blend, "hole_pixels": int(self.mask.sum())}


# ---------------------------------------------------------------- masks and inputs
def box_mask(image_shape: tuple[int, ...], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """(H, W) bool mask, True inside the rectangle [x0, x1) x [y0, y1) (pixels; clipped to the image).

    ``image_shape`` is (C, H, W) or (H, W). Raises ValueError for an empty rectangle.
    """
    h, w = int(image_shape[-2]), int(image_shape[-1])
    vals = [int(v) for v in (x0, y0, x1, y1)]
    x0, y0, x1, y1 = max(vals[0], 0), max(vals[1], 0), min(vals[2], w), min(vals[3], h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"the mask rectangle {vals} covers no pixel of a {w}x{h} image (x0 < x1 and y0 < y1 "
                         "are needed, inside the image)")
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _as_images(images: Any, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 (0..255) or float (0..1) (N, C, H, W) or (C, H, W) -> float32 (N, C, H, W) on the CPU."""
    if isinstance(images, torch.Tensor):
        x = images.detach().cpu()
        x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    else:
        arr = np.asarray(images)
        if arr.dtype == np.uint8:
            x = torch.from_numpy(np.ascontiguousarray(arr)).float().div(255.0)
        elif np.issubdtype(arr.dtype, np.floating):
            x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        else:
            raise ValueError(f"images must be uint8 (0..255) or float (0..1), got {arr.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"the image is {tuple(x.shape[1:]) if x.ndim == 4 else tuple(x.shape)} (C, H, W) but the "
                         f"model expects {tuple(shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("the image has NaN or infinite pixels")
    return x.clamp(0.0, 1.0)


def _as_masks(mask: Any, n: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """(H, W) or (N, H, W) bool-like -> (N, 1, H, W) float32, 1 in the hole."""
    m = torch.as_tensor(np.asarray(mask)).bool()
    h, w = shape[1:]
    if m.ndim == 2:
        m = m[None].expand(n, h, w) if tuple(m.shape) == (h, w) else m
    if tuple(m.shape) != (n, h, w):
        raise ValueError(f"the mask must be ({h}, {w}) or ({n}, {h}, {w}) with True in the hole, got "
                         f"{tuple(np.shape(mask))}")
    counts = m.flatten(1).sum(1)
    if bool((counts == 0).any()):
        raise ValueError("the mask marks no pixel as missing: paint the region to complete")
    if bool((counts == h * w).any()):
        raise ValueError("the mask hides every pixel: leave some of the image visible to complete from")
    return m[:, None].float().contiguous()


def masked_input(x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The image with its hole filled by the per-channel mean of its visible pixels (what the encoder sees)."""
    vis = 1.0 - hole
    mean = (x * vis).sum((2, 3), keepdim=True) / vis.sum((2, 3), keepdim=True).clamp_min(1.0)
    return x * vis + mean * hole


def contextual_weights(hole: torch.Tensor, window: int = _CONTEXT_WINDOW) -> torch.Tensor:
    """Yeh et al.'s weights: for each visible pixel, the share of hole pixels in its window; 0 in the hole.

    ``hole`` is (N, 1, H, W) with 1 in the hole. The weights are normalised to mean 1 over the visible pixels
    so the loss scale does not depend on the hole's size. Visible pixels far from the hole would get weight 0
    and be ignored; a floor of 5% of the mean keeps the whole visible image in the fit.
    """
    k = torch.ones(1, 1, window, window, dtype=hole.dtype, device=hole.device) / window**2
    share = F.conv2d(F.pad(hole, [window // 2] * 4, mode="replicate"), k)
    w = share * (1.0 - hole)
    mean = w.sum((2, 3), keepdim=True) / (1.0 - hole).sum((2, 3), keepdim=True).clamp_min(1.0)
    w = w / mean.clamp_min(1e-8)
    return (w + 0.05) * (1.0 - hole)


# ---------------------------------------------------------------- blending
def poisson_blend(fill: np.ndarray, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Seamless cloning of ``fill`` into ``image`` over ``hole`` ((C, H, W), (C, H, W), (H, W) bool).

    Solves the discrete Poisson equation (4-neighbour Laplacian) for the hole pixels with the visible pixels as
    Dirichlet boundary values and the fill's Laplacian as the guidance field; one sparse solve per image (all
    channels share the matrix). Pixels at the image edge use only their in-image neighbours.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    fill = np.asarray(fill, np.float64)
    out = np.array(image, np.float64)
    hole = np.asarray(hole, bool)
    ys, xs = np.nonzero(hole)
    n = len(ys)
    if n == 0:
        return out.astype(np.float32)
    h, w = hole.shape
    index = -np.ones((h, w), np.int64)
    index[ys, xs] = np.arange(n)
    rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.zeros(n)]
    degree = np.zeros(n)
    c = fill.shape[0]
    rhs = np.zeros((n, c))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        degree += inside
        k = np.nonzero(inside)[0]
        nyk, nxk = ny[k], nx[k]
        # Guidance: the fill's own difference to this neighbour.
        rhs[k] += (fill[:, ys[k], xs[k]] - fill[:, nyk, nxk]).T
        nb = index[nyk, nxk]
        in_hole = nb >= 0
        rows.append(k[in_hole])
        cols.append(nb[in_hole])
        vals.append(-np.ones(int(in_hole.sum())))
        border = k[~in_hole]
        rhs[border] += out[:, nyk[~in_hole], nxk[~in_hole]].T
    vals[0] = degree
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsc()
    solution = splu(a).solve(rhs)
    out[:, ys, xs] = solution.T
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def feather_blend(fill: np.ndarray, image: np.ndarray, hole: np.ndarray, radius: int = 2) -> np.ndarray:
    """Cross-fade over a band of ``radius`` pixels inside the hole's edge (a box-blurred mask as alpha)."""
    m = torch.from_numpy(np.asarray(hole, np.float32))[None, None]
    k = 2 * radius + 1
    soft = F.avg_pool2d(F.pad(m, [radius] * 4, mode="replicate"), k, 1)
    # Only the inside of the hole is cross-faded (visible pixels stay exactly as they were): the blurred mask is
    # 0.5 at the hole's edge and 1 from ``radius`` pixels inside, so (soft - 0.5) * 2 ramps from ~0 to 1 there.
    alpha = (((soft - 0.5) * 2.0).clamp(0.0, 1.0) * m)[0].numpy()
    return (alpha * np.asarray(fill, np.float32) + (1.0 - alpha) * np.asarray(image, np.float32)).astype(np.float32)


def _blend(kind: str, fill: np.ndarray, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    if kind == "poisson":
        return poisson_blend(fill, image, hole)
    if kind == "feather":
        return feather_blend(fill, image, hole)
    return np.where(hole[None], fill, image).astype(np.float32)


# ---------------------------------------------------------------- baselines
@torch.no_grad()
def encoder_pass(model: LatentModel, images: Any, mask: Any) -> np.ndarray:
    """decode(encode(masked image)): the one-pass guess that the search starts from (a baseline)."""
    x = _as_images(images, model.image_shape)
    hole = _as_masks(mask, len(x), model.image_shape)
    with eval_mode(model):
        z = model.encode(masked_input(x, hole).to(model.device))
        return model.decode(z).float().cpu().numpy()


def mean_fill(images: Any, mask: Any, mean_image: np.ndarray) -> np.ndarray:
    """The images with the hole filled by the mean image (a baseline): (N, C, H, W) float32."""
    x = _as_images(images, tuple(np.shape(mean_image)))
    hole = _as_masks(mask, len(x), tuple(np.shape(mean_image))).numpy()
    return np.where(hole > 0, np.asarray(mean_image, np.float32)[None], x.numpy()).astype(np.float32)


# ---------------------------------------------------------------- the search
def _has_discriminator(model: LatentModel) -> bool:
    return isinstance(getattr(model, "discriminator", None), torch.nn.Module)


def _prior_kind(model: LatentModel, code_stats: Any) -> str:
    if model.family == "ae" or (not model.capabilities.is_generative and model.capabilities.has_encoder):
        return "stats" if code_stats is not None else "anchor"
    if model.family == "pca" and not getattr(model.config, "whiten", True):
        return "stats" if code_stats is not None else "anchor"
    return "normal"


def default_prior_weight(model: LatentModel) -> float:
    """The prior weight that :func:`complete` uses when none is given (tuned on MNIST and the faces)."""
    return 0.05 if model.family == "gan" else 0.03


def complete_batch(
    model: LatentModel,
    images: Any,
    mask: Any,
    *,
    restarts: int = 4,
    steps: int = 300,
    prior_weight: float | None = None,
    lr: float = 0.05,
    blend: str = "poisson",
    code_stats: tuple[np.ndarray, np.ndarray] | None = None,
    batch_size: int = 64,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    generator: torch.Generator | None = None,
) -> list[CompletionResult]:
    """Complete each of ``images`` ((N, C, H, W) or (C, H, W), uint8 or float in [0, 1]) over its hole.

    mask: (H, W) or (N, H, W), True (nonzero) where the pixels are missing.
    restarts: starting codes per image (restart 0 is the encoder's code where there is an encoder); all are
        optimised side by side and returned best first.
    steps: Adam steps; the learning rate decays from ``lr`` to ``lr / 20`` on a cosine.
    prior_weight: weight of the prior term (see the module docstring); default :func:`default_prior_weight`.
        For a GAN it weights ``mean(z^2) / 2``, and a tenth of it weights the discriminator's ``-log D(G(z))``.
    code_stats: (mean, std) of training codes, each (latent_dim,): the prior for a plain AE.
    blend: "poisson" (default), "feather" or "none".
    progress(fraction, message) about 10 times a second; cancel: checked before every step
    (:class:`explorer.core.progress.Cancelled`).
    generator: seeds the random restarts (CPU generator).

    The model runs in eval mode with its parameters frozen (no weight gradients); both are restored.
    """
    for name, value in (("restarts", restarts), ("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if steps > 100_000 or restarts > 1024:
        raise ValueError(f"steps (at most 100000) and restarts (at most 1024) are bounded, got {steps}, {restarts}")
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    weight = default_prior_weight(model) if prior_weight is None else prior_weight
    if not (isinstance(weight, (int, float)) and weight >= 0 and math.isfinite(weight)):
        raise ValueError(f"prior_weight must be a finite number >= 0, got {prior_weight!r}")
    x_all = _as_images(images, model.image_shape)
    holes = _as_masks(mask, len(x_all), model.image_shape)
    n, d = len(x_all), model.latent_dim
    is_gan = not model.capabilities.has_encoder
    prior = "normal" if is_gan else _prior_kind(model, code_stats)
    if code_stats is not None:
        mu_c, sd_c = (torch.as_tensor(np.asarray(v, np.float32)).reshape(-1) for v in code_stats)
        if mu_c.shape != (d,) or sd_c.shape != (d,):
            raise ValueError(f"code_stats must be two arrays of {d} values (mean, std), got {tuple(mu_c.shape)} "
                             f"and {tuple(sd_c.shape)}")
        sd_c = sd_c.clamp_min(1e-3)
    use_d = is_gan and _has_discriminator(model)
    gen = generator or torch.Generator().manual_seed(0)
    device = model.device
    results: list[CompletionResult] = []
    n_batches = -(-n // batch_size)
    total = n_batches * steps

    with eval_mode(model), frozen(model), torch.enable_grad():
        for b, start in enumerate(range(0, n, batch_size)):
            x = x_all[start:start + batch_size].to(device)
            hole = holes[start:start + batch_size].to(device)
            m = len(x)
            vis = 1.0 - hole
            weights = contextual_weights(hole) if is_gan else vis / vis.mean((1, 2, 3), keepdim=True)
            # Restart-major layout: row r * m + i is restart r of image i.
            target = x.repeat(restarts, 1, 1, 1)
            w_rep = weights.repeat(restarts, 1, 1, 1)
            noise = torch.randn(restarts * m, d, generator=gen).to(device)
            if is_gan:
                z0 = noise
                anchor = None
            else:
                with torch.no_grad():
                    start_code = model.encode(masked_input(x, hole)).float()
                anchor = start_code.repeat(restarts, 1)
                scale = sd_c.to(device) if code_stats is not None else start_code.abs().mean(0).clamp_min(0.1)
                spread = 0.0 if restarts == 1 else 0.5
                noise[:m] = 0.0  # restart 0: the encoder's code itself
                z0 = anchor + spread * noise * scale
            z = z0.clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 20)
            best = torch.full((restarts * m,), float("inf"), device=device)
            best_z = z.detach().clone()

            def objective(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                out = model.decode(z)
                if is_gan:
                    fit = ((out - target).abs() * w_rep).flatten(1).mean(1)
                else:
                    fit = ((out - target).square() * w_rep).flatten(1).mean(1)
                if prior == "normal":
                    p = 0.5 * z.square().mean(1)
                elif prior == "stats":
                    p = 0.5 * ((z - mu_c.to(device)) / sd_c.to(device)).square().mean(1)
                else:  # stay near the encoder's code, in units of its own scale
                    p = 0.5 * ((z - anchor) / anchor.abs().mean(1, keepdim=True).clamp_min(0.1)).square().mean(1)
                per = fit + weight * p
                if use_d:
                    logits = model.discriminator(out * 2.0 - 1.0)
                    per = per + 0.1 * weight * F.softplus(-logits).reshape(-1)
                return per, out

            for step in range(steps):
                check_cancel(cancel)
                per, _ = objective(z)
                with torch.no_grad():  # per belongs to the codes before this step: keep the best seen
                    err = torch.nan_to_num(per.detach(), nan=float("inf"))
                    better = err < best
                    best = torch.where(better, err, best)
                    best_z[better] = z.detach()[better]
                opt.zero_grad(set_to_none=True)
                per.sum().backward()
                opt.step()
                sched.step()
                if step % 10 == 0 or step == steps - 1:
                    report(progress, (b * steps + step + 1) / total * 0.95,
                           f"completing: step {b * steps + step + 1} of {total}")
            with torch.no_grad():
                per, _ = objective(z)
                err = torch.nan_to_num(per, nan=float("inf"))
                better = err < best
                best = torch.where(better, err, best)
                best_z[better] = z.detach()[better]
                decoded = model.decode(best_z).float().cpu().numpy()
            losses = best.view(restarts, m).cpu().numpy()
            codes = best_z.view(restarts, m, d).cpu().numpy()
            decoded = decoded.reshape(restarts, m, *model.image_shape)
            x_np = x.cpu().numpy()
            hole_np = hole[:, 0].cpu().numpy() > 0.5
            for i in range(m):
                check_cancel(cancel)
                order = np.argsort(losses[:, i], kind="stable")
                imgs = decoded[order, i]
                blended = np.stack([_blend(blend, f, x_np[i], hole_np[i]) for f in imgs])
                results.append(CompletionResult(
                    images=np.ascontiguousarray(imgs, np.float32), latents=codes[order, i].astype(np.float32),
                    losses=losses[order, i].astype(np.float32), blended=blended, mask=hole_np[i].copy(),
                    method="gan-search" if is_gan else "encoder+search", blend=blend))
    report(progress, 1.0, "completed")
    return results


def complete(
    model: LatentModel,
    image: Any,
    mask: Any,
    *,
    restarts: int = 4,
    steps: int = 300,
    prior_weight: float | None = None,
    lr: float = 0.05,
    blend: str = "poisson",
    code_stats: tuple[np.ndarray, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    generator: torch.Generator | None = None,
) -> CompletionResult:
    """Complete one image ((C, H, W), uint8 or float in [0, 1]) over ``mask`` ((H, W), True in the hole).

    Returns ``restarts`` completions, best first; see :func:`complete_batch` for the options.
    """
    x = _as_images(image, model.image_shape)
    if len(x) != 1:
        raise ValueError(f"complete takes one image, got {len(x)}; use complete_batch for several")
    return complete_batch(model, x, mask, restarts=restarts, steps=steps, prior_weight=prior_weight, lr=lr,
                          blend=blend, code_stats=code_stats, batch_size=1, progress=progress, cancel=cancel,
                          generator=generator)[0]

