"""Does an import make sense? Reconstruct real images, compare with the mean-image baseline; fix the value
ranges when the data shows the guess was wrong; save as our own checkpoint."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..models.base import LatentModel
from .model import ImportedModel

# Verdict thresholds on reconstruction MSE / mean-image-baseline MSE. An encoder's round trip and a
# generator's inversion are held to different standards: a correctly imported, trained DCGAN does not
# reproduce held-out images as closely as an autoencoder does. Measured (benchmarks/imports.py --calibrate:
# the tutorial DCGAN trained 800 adversarial steps on 16x16 digits, 32 held-out images inverted): imported
# right 0.35, the same weights with the output range wrong (01 for tanh) 0.74, untrained weights 3.3. So
# "looks right" below 0.6 keeps the wrong range out of it while leaving a less well fitted, right import
# room above 0.5.
THRESHOLDS = {"encode": (0.5, 1.0), "invert": (0.6, 1.0)}
RANGE_SWITCH = 0.8  # switch ranges only when the alternative's error is clearly lower


def verdict_for(ratio: float, method: str = "encode") -> tuple[str, str]:
    """(verdict, explanation) for reconstruction MSE / mean-image-baseline MSE."""
    right, wrong = THRESHOLDS.get(method, THRESHOLDS["encode"])
    if not math.isfinite(ratio):
        return "looks wrong", "the reconstructions are NaN or infinite"
    if ratio < right:
        return "looks right", "reconstructions are much closer to the images than the data's mean image is"
    if ratio < wrong:
        return "questionable", ("reconstructions are only a little better than predicting the mean image: check "
                                "the value ranges (--output-range, --input-range), the image shape and the data set")
    return "looks wrong", ("reconstructions are no better than the data's mean image: check the class and "
                           "weights, the value ranges (--output-range, --input-range), the image shape and that "
                           "the data set is the one the model was trained on")


def _recon_mse(model: LatentModel, x: torch.Tensor, batch_size: int, cancel: threading.Event | None,
               progress: Callable[[int, int], None] | None = None) -> float:
    errs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            if cancel is not None and cancel.is_set():
                from ..latent import Cancelled

                raise Cancelled("round-trip check cancelled")
            xb = x[start:start + batch_size].to(model.device)
            recon = model.decode(model.encode(xb)).float()
            errs.append((recon - xb).pow(2).flatten(1).mean(1).cpu())
            if progress is not None:
                progress(min(start + batch_size, len(x)), len(x))
    return float(torch.cat(errs).mean())


def fix_ranges(model: ImportedModel, x: torch.Tensor, *, batch_size: int = 128,
               cancel: threading.Event | None = None) -> dict[str, Any] | None:
    """Try the other input/output ranges on real images; keep the best when it is clearly better than the
    guess (and the user gave neither range). Returns what changed, or None."""
    report = getattr(model, "import_report", None) or {}
    given = report.get("ranges_given") or {}
    if not model.capabilities.has_encoder or (given.get("input") and given.get("output")):
        return None
    inputs = [model.config.input_range] if given.get("input") else ["01", "-11"]
    outputs = [model.config.output_range] if given.get("output") else ["01", "tanh", "logits"]
    sample = x[: min(len(x), 64)]
    before = (model.config.input_range, model.config.output_range)
    scores: dict[tuple[str, str], float] = {}
    try:
        for i in inputs:
            for o in outputs:
                model.set_ranges(i, o)
                try:
                    scores[(i, o)] = _recon_mse(model, sample, batch_size, cancel)
                except Exception:  # noqa: BLE001 - a range the encoder cannot take (e.g. NaN): not a choice
                    scores[(i, o)] = math.inf
    finally:
        model.set_ranges(*before)
    best = min(scores, key=lambda k: scores[k] if math.isfinite(scores[k]) else math.inf)
    current = scores.get(before, math.inf)
    if best == before or not math.isfinite(scores[best]) or not scores[best] < RANGE_SWITCH * current:
        return None
    model.set_ranges(*best)
    note = (f"the round trip on the data was better with input range {best[0]} and output range {best[1]} "
            f"(MSE {scores[best]:.4g} vs {current:.4g} with {before[0]}/{before[1]}): switched")
    if model.import_report:
        model.import_report.setdefault("notes", []).append(note)
    return {"input_range": best[0], "output_range": best[1], "was": list(before), "note": note}


def round_trip_check(
    model: LatentModel,
    images: Any,
    *,
    max_images: int = 256,
    batch_size: int = 128,
    invert_steps: int = 150,
    invert_restarts: int = 2,
    seed: int = 0,
    adjust_ranges: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Reconstruct sample images and compare the error with the data's mean-image baseline.

    images: (N, C, H, W) uint8 (0..255) or float (0..1) of the model's image shape; at most ``max_images``
    (an even spread over the array) are used. Models with an encoder reconstruct as ``decode(encode(x))``;
    models without one (GANs) through :func:`explorer.core.inversion.invert`.

    With ``adjust_ranges`` an imported model whose value ranges were guessed has them corrected from the data
    first (:func:`fix_ranges`; ``"ranges_changed"`` in the result says so).

    Returns ``{"method", "images", "recon_mse", "baseline_mse", "ratio", "verdict", "message",
    "ranges_changed"}``; the verdict's thresholds depend on the method (:data:`THRESHOLDS`).
    """
    from ..inversion import _as_float_images, invert, mean_image_baseline

    x = _as_float_images(images, model)
    if len(x) == 0:
        raise ValueError("no images to check with")
    if len(x) > max_images:
        x = x[np.linspace(0, len(x) - 1, max_images).round().astype(np.int64)]
    baseline = mean_image_baseline(x)
    changed = None
    if model.capabilities.has_encoder:
        method = "encode"
        was_training = model.training
        model.eval()
        try:
            if adjust_ranges and isinstance(model, ImportedModel):
                changed = fix_ranges(model, x, batch_size=batch_size, cancel=cancel)
            recon_mse = _recon_mse(model, x, batch_size, cancel, progress)
        finally:
            model.train(was_training)
    else:
        method = "invert"
        result = invert(model, x, steps=invert_steps, restarts=invert_restarts, seed=seed, progress=progress,
                        cancel=cancel)
        recon_mse = float(result.errors.mean())
    ratio = recon_mse / baseline if baseline > 0 else float("inf")
    if not math.isfinite(recon_mse):
        ratio = float("nan")
    verdict, message = verdict_for(ratio, method)
    return {
        "method": method,
        "images": len(x),
        "recon_mse": recon_mse if math.isfinite(recon_mse) else None,
        "baseline_mse": baseline,
        "ratio": ratio if math.isfinite(ratio) else None,
        "verdict": verdict,
        "message": message,
        "ranges_changed": changed,
    }


def save_imported(model: ImportedModel, path: str | os.PathLike[str], *, check: dict[str, Any] | None = None,
                  **metadata: Any) -> Any:
    """Save an imported model as our own checkpoint (atomically): its weights, and the adapter settings in the
    metadata's config (the class file is referenced by path, never embedded). ``check`` (a
    :func:`round_trip_check` result) and ``import_report`` go into the metadata too."""
    from ..checkpoint import save

    extra: dict[str, Any] = {"import_report": getattr(model, "import_report", None) or None}
    if check is not None:
        extra["import_check"] = check
    return save(model, path, **extra, **metadata)
