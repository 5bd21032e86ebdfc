"""Image completion and the patch codec in the window: the background work behind the Complete dock and the
Patches tab (views in ``views/completion_panel.py``).

:class:`CompletionController` completes one image (the selected datum or a dropped image) over a painted mask
with :func:`explorer.core.completion.complete` on the task runner, with progress and Cancel; each completion's
latent can be put on the map. :class:`PatchController` measures a patch model on one datum
(:func:`explorer.core.compression.reconstruct_pair`) and samples patch codes for the map of codes
(:func:`explorer.core.compression.patch_code_sample`, projected to 2-D by PCA).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from .data import strip_exception

if TYPE_CHECKING:
    from explorer.core.explore import OpenModel

    from .explorer import ExplorerController

# What Run uses; tests shrink them. 300 steps of a 28x28 MLP with 4 restarts take ~1 s on one core.
COMPLETION_DEFAULTS: dict[str, Any] = {"restarts": 4, "steps": 300}
MAX_RESTARTS = 16
PATCH_SAMPLE = 1500  # patches on the map of codes: enough for its shape, few enough to draw as images


@dataclass
class CompletionSource:
    """The image to complete: pixels, a caption, and the dataset index when it is a datum (-1 otherwise)."""

    image: np.ndarray  # (C, H, W) uint8
    label: str
    index: int = -1


@dataclass
class CompletionRun:
    """A finished run: the result plus what the panel shows next to it."""

    source: CompletionSource
    mask: np.ndarray  # (H, W) bool, True in the hole
    result: Any  # explorer.core.completion.CompletionResult
    masked: np.ndarray  # (C, H, W) float32: what the encoder saw (hole filled with the visible mean)
    hole_mse: np.ndarray | None  # (K,) MSE inside the hole against the original, for each blended completion
    mean_fill_mse: float | None  # the same for filling the hole with the mean training image


def _task_model(model: Any) -> Any:
    """A private copy for the search: it toggles eval/frozen flags that the live decoder must not see change."""
    try:
        return copy.deepcopy(model)
    except Exception:  # an imported model that cannot be copied: search on the shared one
        return model


def code_stats(entry: "OpenModel") -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, std) of the training split's codes: the prior a plain AE's search needs (as the CLI passes)."""
    if entry.latents is None or entry.data is None or not len(entry.latents):
        return None
    n = int(getattr(entry.data, "n_train", 0)) or len(entry.latents)
    z = np.asarray(entry.latents[:n], np.float64)
    return z.mean(0).astype(np.float32), z.std(0).astype(np.float32)


def mean_image(entry: "OpenModel") -> np.ndarray | None:
    """The mean training image (C, H, W) float32 in [0, 1] (the mean-fill baseline)."""
    if entry.data is None or not len(entry.data.images):
        return None
    n = int(getattr(entry.data, "n_train", 0)) or len(entry.data.images)
    rows = entry.data.images[: min(n, 5000)]
    return (rows.astype(np.float64).mean(0) / 255.0).astype(np.float32)


class CompletionController(QObject):
    started = Signal()
    progress = Signal(float, str)
    finished = Signal(object)  # CompletionRun
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, explorer: "ExplorerController") -> None:
        super().__init__()
        self.ctx = explorer
        self.options: dict[str, Any] = dict(COMPLETION_DEFAULTS)
        self._running = False
        self.last: CompletionRun | None = None
        self._entry: "OpenModel | None" = None
        self._cancel: threading.Event | None = None

    # ------------------------------------------------------------ sources
    def sources(self) -> list[tuple[str, Any]]:
        """(caption, key) for each image that can be completed: the selected datum, then the dropped images."""
        entry = self.ctx.state.current
        out: list[tuple[str, Any]] = []
        if entry is None or entry.data is None:
            return out
        if 0 <= entry.selected < len(entry.data):
            out.append((f"Selected datum #{entry.selected}", ("datum", entry.selected)))
        if entry.dropped is not None:
            for i, name in enumerate(entry.dropped.names):
                out.append((f"Dropped: {name}", ("dropped", i)))
        return out

    def source(self, key: Any) -> CompletionSource | None:
        entry = self.ctx.state.current
        if entry is None or key is None:
            return None
        kind, i = key
        if kind == "datum" and entry.data is not None and 0 <= i < len(entry.data):
            return CompletionSource(np.asarray(entry.data.images[i]), f"datum #{i}", int(i))
        if kind == "dropped" and entry.dropped is not None and 0 <= i < len(entry.dropped.images):
            return CompletionSource(np.asarray(entry.dropped.images[i]), entry.dropped.names[i])
        return None

    # ------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self._running

    def run(self, source: CompletionSource, mask: np.ndarray) -> bool:
        """Complete ``source`` over ``mask`` in the background; False (and ``failed``) when it cannot start."""
        from explorer.core.completion import masked_input

        entry = self.ctx.state.current
        if entry is None:
            self.failed.emit("Open a model first.")
            return False
        if self._running:
            self.failed.emit("A completion is already running: cancel it first.")
            return False
        mask = np.asarray(mask, bool)
        if tuple(mask.shape) != tuple(entry.model.image_shape[1:]):
            self.failed.emit(f"the mask is {mask.shape} but the model's images are {tuple(entry.model.image_shape[1:])}")
            return False
        if not mask.any():
            self.failed.emit("Paint the region to complete first (brush or rectangle).")
            return False
        if mask.all():
            self.failed.emit("The mask hides every pixel: leave some of the image visible.")
            return False
        restarts = max(1, min(int(self.options["restarts"]), MAX_RESTARTS))
        steps = max(1, int(self.options["steps"]))
        model = entry.model
        stats = code_stats(entry) if model.capabilities.has_encoder else None
        mean = mean_image(entry) if source.index >= 0 else None
        image = np.array(source.image, copy=True)
        self._entry = entry

        def work(progress, cancel: threading.Event) -> CompletionRun:
            import torch

            # Held here, not via the Task that start() returns: a synchronous runner finishes before it returns.
            self._cancel = cancel

            from explorer.core.completion import complete, mean_fill

            result = complete(_task_model(model), image, mask, restarts=restarts, steps=steps, code_stats=stats,
                              progress=progress, cancel=cancel, generator=torch.Generator().manual_seed(0))
            x = image.astype(np.float32) / 255.0
            masked = masked_input(torch.from_numpy(x)[None], torch.from_numpy(mask[None, None].astype(np.float32)))
            hole_mse = fill_mse = None
            if source.index >= 0:  # a datum: the hidden truth is known, so say how close each fill is
                hole_mse = np.array([float(np.square(b - x)[:, mask].mean()) for b in result.blended], np.float32)
                if mean is not None:
                    fill_mse = float(np.square(mean_fill(image, mask, mean)[0] - x)[:, mask].mean())
            return CompletionRun(source, mask.copy(), result, masked[0].numpy(), hole_mse, fill_mse)

        self.started.emit()
        self._running = True
        self.ctx.tasks.start(work, on_done=self._done, on_error=self._failed,
                                         on_progress=self.progress.emit, on_cancel=self._cancelled)
        return True

    def _done(self, run: CompletionRun) -> None:
        self._running, self._cancel = False, None
        self.last = run
        self.finished.emit(run)

    def _failed(self, message: str) -> None:
        self._running, self._cancel = False, None
        self.failed.emit(strip_exception(message))

    def _cancelled(self) -> None:
        self._running, self._cancel = False, None
        self.cancelled.emit()

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    # ------------------------------------------------------------ results -> map
    def place(self, k: int) -> bool:
        """Put the cursor on completion ``k``'s latent (the model that completed must still be current)."""
        run = self.last
        entry = self.ctx.state.current
        if run is None or not 0 <= k < len(run.result.latents):
            return False
        if entry is None or entry is not self._entry:
            self.failed.emit("The completion belongs to another model: run it again for this one.")
            return False
        self.ctx.set_cursor_latent(np.asarray(run.result.latents[k], np.float32))
        self.ctx.notify(f"Cursor on completion {k + 1} of {run.source.label}", 4000)
        return True


# ====================================================================== patches
@dataclass
class PatchPair:
    index: int
    original: np.ndarray  # (C, H, W) float32
    reconstruction: np.ndarray
    psnr: float
    ssim: float
    ratio: float  # raw bytes / code bytes (8-bit codes)
    raw_bytes: int
    code_bytes: int


@dataclass
class PatchCodes:
    codes: np.ndarray  # (N, code_size)
    patches: np.ndarray  # (N, C, p, p) float32
    positions: np.ndarray  # (N, 2): PCA of the codes
    explained: float  # share of the codes' variance the two axes keep


def is_patch_model(entry: "OpenModel | None") -> bool:
    return entry is not None and getattr(entry.model, "family", None) == "patch"


def codec_bytes(model: Any) -> tuple[int, int]:
    """(raw bytes, code bytes) of one image: C*H*W uint8 pixels against one byte per code of every tile."""
    c, h, w = model.image_shape
    return int(c * h * w), int(model.tiles * model.code_size)


class PatchController(QObject):
    pairReady = Signal(object)  # PatchPair
    codesReady = Signal(object)  # PatchCodes
    failed = Signal(str)

    def __init__(self, explorer: "ExplorerController") -> None:
        super().__init__()
        self.ctx = explorer
        self.sample_size = PATCH_SAMPLE
        self.codes: PatchCodes | None = None
        self._codes_for: Any = None  # the model the codes belong to
        self._generation = 0

    def pair(self, entry: "OpenModel", index: int) -> PatchPair:
        """Original, reconstruction and the codec's figures for datum ``index`` (one image: instant)."""
        from explorer.core.compression import reconstruct_pair

        orig, rec, scores = reconstruct_pair(entry.model, entry.data.images[index])
        raw, code = codec_bytes(entry.model)
        return PatchPair(int(index), orig, rec, scores["psnr"], scores["ssim"], raw / code, raw, code)

    def show_pair(self, entry: "OpenModel", index: int) -> None:
        try:
            self.pairReady.emit(self.pair(entry, index))
        except (ValueError, RuntimeError) as exc:
            self.failed.emit(str(exc))

    def sample_codes(self, entry: "OpenModel") -> None:
        """Encode a sample of patches of the data set in the background; ``codesReady`` with their PCA map."""
        if self._codes_for is entry.model and self.codes is not None:
            self.codesReady.emit(self.codes)
            return
        self._generation += 1
        gen, model, images, n = self._generation, entry.model, entry.data.images, self.sample_size

        def work(progress, cancel) -> PatchCodes:
            from explorer.core.compression import patch_code_sample

            codes, patches = patch_code_sample(model, images, n, seed=0, progress=progress, cancel=cancel)
            c = codes.astype(np.float64) - codes.mean(0)
            _, s, vt = np.linalg.svd(c, full_matrices=False)
            axes = vt[:2] if len(vt) >= 2 else np.vstack([vt, np.zeros_like(vt)])[:2]
            pos = (c @ axes.T).astype(np.float32)
            var = float(np.square(s).sum())
            return PatchCodes(codes, patches, pos, float(np.square(s[:2]).sum() / var) if var > 0 else 1.0)

        def done(codes: PatchCodes) -> None:
            if gen != self._generation:
                return  # another model's request overtook this one
            self.codes, self._codes_for = codes, model
            self.codesReady.emit(codes)

        def failed(msg: str) -> None:
            if gen == self._generation:
                self.failed.emit(strip_exception(msg))

        self.ctx.run_tracked("Encoding patches", work, on_done=done, on_error=failed)


__all__ = ["COMPLETION_DEFAULTS", "CompletionController", "CompletionRun", "CompletionSource", "PatchCodes",
           "PatchController", "PatchPair", "code_stats", "codec_bytes", "is_patch_model", "mean_image"]
