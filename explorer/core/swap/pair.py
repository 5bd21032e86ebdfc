"""The decoder swap: two autoencoders sharing one encoder, trained on two face styles, and swapping between them."""

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..compare.columns import CompareError
from ..compare.common import _EvalMode, _float_batch
from ..data.base import ImageData
from ..data.face_styles import FACE_STYLE_COUNT, FACE_STYLE_SIZE, face_style_pair
from ..models.base import LatentModel
from ..models.registry import build_model


# ====================================================================== decoder swap
def shares_encoder(model_a: LatentModel, model_b: LatentModel) -> bool:
    """True when both models have the same encoder: the same module, or equal weights (after a save/load)."""
    ea, eb = getattr(model_a, "encoder", None), getattr(model_b, "encoder", None)
    if ea is None or eb is None:
        return False
    if ea is eb:
        return True
    sa, sb = ea.state_dict(), eb.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa
    )


@torch.no_grad()
def decoder_swap(shared_encoder_model_a: LatentModel, model_b: LatentModel,
                 images: np.ndarray | torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Encode ``images`` with model A's encoder and decode with model B's decoder: (N, C, H, W) in [0, 1], CPU.

    The classic face-swap construction: two autoencoders trained with one shared encoder on two data sets
    (:func:`train_shared_encoder`) put both in one code space, so B's decoder draws A's inputs in B's style.
    Any two models with one latent size can be swapped, but without a shared encoder the result means
    little (see :func:`shares_encoder`).
    """
    a, b = shared_encoder_model_a, model_b
    if not a.capabilities.has_encoder:
        raise CompareError(f"the first model ({a.family}) has no encoder to encode the images with")
    if a.latent_dim != b.latent_dim:
        raise CompareError(f"the encoder gives {a.latent_dim}-d codes but the decoder takes {b.latent_dim}-d codes")
    if tuple(images.shape[1:]) != tuple(a.image_shape):
        raise CompareError(f"the images are {tuple(images.shape[1:])} (C, H, W) but the encoder expects "
                           f"{tuple(a.image_shape)}")
    out = []
    with _EvalMode(a), _EvalMode(b):
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            if isinstance(chunk, torch.Tensor):
                x = chunk.to(a.device)
                x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
            else:
                x = _float_batch(chunk, a.device)
            out.append(b.decode(a.encode(x).to(b.device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, *b.image_shape)


def train_shared_encoder(
    data_a: ImageData,
    data_b: ImageData,
    *,
    latent_dim: int = 16,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    stop_event: threading.Event | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    **config: Any,
) -> tuple[LatentModel, LatentModel]:
    """Two AEs with one encoder: ``(model_a, model_b)`` whose ``.encoder`` is the same module object.

    The core :class:`~explorer.core.training.trainer.Trainer` trains one model on one data set, so this is a
    small loop of its own: one Adam over the union of the parameters, and each iteration takes one A batch
    (``model_a.train_step``: encoder + decoder A) then one B batch (encoder + decoder B). The encoder must
    serve both decoders, so it learns what the two data sets share (pose, expression) and each decoder adds
    its own style. ``config`` goes to both AE configs (``arch``, ``hidden``, ``loss``...). ``progress(step,
    total_steps, metrics)`` is called every 50 steps and at each epoch's end; setting ``stop_event`` stops
    after the current step. Each model's ``metadata`` names its data set and records the loss history;
    saving either model stores the encoder weights with it, and :func:`shares_encoder` recognises the pair
    after loading.
    """
    from ..models import nets
    from ..models.base import adam

    if data_a.image_shape != data_b.image_shape:
        raise CompareError(f"a shared encoder needs one image shape, but {data_a.name!r} has "
                           f"{list(data_a.image_shape)} and {data_b.name!r} has {list(data_b.image_shape)}")
    if data_a.n_train == 0 or data_b.n_train == 0:
        raise CompareError("both data sets need training images")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model_a = build_model("ae", latent_dim=latent_dim, image_shape=data_a.image_shape, **config)
        model_b = build_model("ae", latent_dim=latent_dim, image_shape=data_a.image_shape, **config)
    model_b.encoder = model_a.encoder  # one module, registered in both
    model_b._norm_guard = nets.BufferGuard(model_b)  # it must guard the shared encoder's BatchNorm, not the old one's
    model_a.to(device).train()
    model_b.to(device).train()
    params = list({id(p): p for p in [*model_a.parameters(), *model_b.parameters()]}.values())
    optimizers = {"model": adam(params, lr)}
    xa = torch.from_numpy(data_a.train().images).to(device)
    xb = torch.from_numpy(data_b.train().images).to(device)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, math.ceil(max(len(xa), len(xb)) / batch_size))
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    history: list[dict[str, float]] = []
    step = 0
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # the denoising AE's noise, if configured
        for epoch in range(epochs):
            # The smaller set is cycled so both decoders see one batch per step.
            pa = torch.randperm(len(xa), generator=gen).repeat(math.ceil(steps_per_epoch * batch_size / len(xa)))
            pb = torch.randperm(len(xb), generator=gen).repeat(math.ceil(steps_per_epoch * batch_size / len(xb)))
            sums = {"loss_a": 0.0, "loss_b": 0.0}
            done = 0
            for i in range(steps_per_epoch):
                if step >= total or (stop_event is not None and stop_event.is_set()):
                    break
                sl = slice(i * batch_size, (i + 1) * batch_size)
                ma = model_a.train_step(xa[pa[sl].to(device)].float().div_(255.0), optimizers, step)
                mb = model_b.train_step(xb[pb[sl].to(device)].float().div_(255.0), optimizers, step)
                sums["loss_a"] += float(ma["loss"])
                sums["loss_b"] += float(mb["loss"])
                done += 1
                step += 1
                if progress is not None and (step % 50 == 0 or i == steps_per_epoch - 1 or step >= total):
                    progress(step, total, {k: v / done for k, v in sums.items()})
            if done:
                history.append({"epoch": epoch + 1, **{k: v / done for k, v in sums.items()}})
            if step >= total or (stop_event is not None and stop_event.is_set()):
                break
    model_a.eval()
    model_b.eval()
    seconds = round(time.perf_counter() - t0, 3)
    for model, data, other in ((model_a, data_a, data_b), (model_b, data_b, data_a)):
        model.metadata = {
            "dataset": data.name,
            "label_names": list(data.label_names),
            "history": {"epochs": len(history), "steps": step, "seconds": seconds, "shared_encoder": True,
                        "shared_with_dataset": other.name, "per_epoch": history},
        }
    return model_a, model_b


def save_swap_pair(model_a: LatentModel, model_b: LatentModel, path_a: str | os.PathLike[str],
                   path_b: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Save a shared-encoder pair as two ordinary checkpoints (atomically, with :func:`checkpoint.save`).

    Each file holds the full model, shared encoder included, so either opens on its own and
    :func:`shares_encoder` recognises the pair after loading; ``swap_pair.partner`` in each one's metadata
    names the other file.
    """
    from ..checkpoint import save

    path_a, path_b = Path(path_a), Path(path_b)
    if path_a.resolve() == path_b.resolve():
        raise CompareError(f"both models of the pair would be written to {path_a}: give two file names")
    out = []
    for model, path, partner, role in ((model_a, path_a, path_b, "a"), (model_b, path_b, path_a, "b")):
        pair = dict((getattr(model, "metadata", None) or {}).get("swap_pair") or {"role": role})
        pair["partner"] = partner.name
        out.append(save(model, path, swap_pair=pair))
    return out[0], out[1]


def swap_rows(model_a: LatentModel, model_b: LatentModel, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """The rows of a swap picture, uint8 (3, N, H, W, C): the images, model A's own reconstruction of them,
    and :func:`decoder_swap` (A's encoder, B's decoder). CompareError when the models cannot be swapped."""
    from ..export import to_frames

    if tuple(model_b.image_shape) != tuple(model_a.image_shape):
        raise CompareError(f"the encoder takes images of shape {list(model_a.image_shape)} (C, H, W) but the "
                           f"decoder draws {list(model_b.image_shape)}: swap between models of one image shape")
    if len(images) == 0:
        raise CompareError("no images to swap")
    swapped = decoder_swap(model_a, model_b, images)  # checks the encoder, the latent sizes and the images
    own = decoder_swap(model_a, model_a, images)
    originals = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if originals.dtype != np.uint8:
        originals = originals.astype(np.float32)
    return np.stack([to_frames(originals), to_frames(own), to_frames(swapped)])


def swap_examples(data: ImageData, count: int) -> np.ndarray:
    """Rows of ``data`` to show in a swap: held-out test images first (people neither model has seen), then
    training images if there are too few; at most ``count``."""
    order = np.concatenate([np.arange(data.n_train, len(data)), np.arange(data.n_train)])
    return order[:max(0, int(count))]


def write_swap_grid(path: str | os.PathLike[str], rows: np.ndarray, *, min_size: int = 112) -> Path:
    """:func:`swap_rows`' rows as one PNG grid (a row each), enlarged as :func:`export.save_png_grid` does."""
    from ..export import save_png_grid

    n_rows, n = rows.shape[:2]
    return save_png_grid(path, rows.reshape(n_rows * n, *rows.shape[2:]), nrow=n, min_size=min_size)


NO_SHARED_ENCODER = "the two models do not share an encoder: the swap means little without a shared encoder"


def train_face_style_pair(*, count: int = FACE_STYLE_COUNT, size: int = FACE_STYLE_SIZE, seed: int = 0,
                          styles: tuple[str, str] = ("a", "b"), **train: Any) -> tuple[LatentModel, LatentModel]:
    """:func:`train_shared_encoder` on :func:`face_style_pair`; ``train`` goes to it (``latent_dim``,
    ``epochs``, ``hidden``, ``stop_event``, ``progress``...). Each model's metadata gets a ``swap_pair``
    entry (its role, ``a`` or ``b``, its style and the data's count and seed) on top of what training
    records."""
    data_a, data_b = face_style_pair(count, size=size, seed=seed, styles=styles)
    model_a, model_b = train_shared_encoder(data_a, data_b, seed=seed, **train)
    for model, role, style in ((model_a, "a", styles[0]), (model_b, "b", styles[1])):
        model.metadata["swap_pair"] = {"role": role, "style": style, "count": int(count), "seed": int(seed)}
    return model_a, model_b
