"""Prior samples: 64 images decoded from N(0, I) with the model's sample seed, off the GUI thread."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.core.explore import ExplorerState, OpenModel
from explorer.core.imaging import tile

from .tasks import TaskRunner

N_SAMPLES = 64


def prior_latents(latent_dim: int, seed: int, n: int = N_SAMPLES) -> np.ndarray:
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, latent_dim, generator=gen).numpy()


class SamplesController(QObject):
    ready = Signal(object, object, str)  # OpenModel, (H, W, C) uint8 grid, caption
    failed = Signal(str)
    progress = Signal(float, str)

    def __init__(self, state: ExplorerState, tasks: TaskRunner) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self._generation = 0
        state.samplesChanged.connect(self._render)
        state.currentChanged.connect(lambda entry: entry is not None and self._render(entry))

    def reroll(self, reset: bool = False, seed: int | None = None) -> None:
        entry = self.state.current
        if entry is None:
            return
        if seed is None:
            seed = 0 if reset else entry.sample_seed + 1
        self.state.set_sample_seed(entry, seed)

    def _render(self, entry: OpenModel) -> None:
        if entry is not self.state.current:
            return
        self._generation += 1
        gen, seed = self._generation, entry.sample_seed
        z = prior_latents(entry.latent_dim, seed)

        def work(progress, cancel):
            from explorer.core.models.pixelcnn import is_autoregressive, sample_images

            if is_autoregressive(entry.model):  # drawn pixel by pixel: seconds, with progress and Cancel
                import torch

                from explorer.core.imaging import to_hwc

                x = sample_images(entry.model, len(z), generator=torch.Generator().manual_seed(int(seed)),
                                  progress=progress, cancel=cancel)
                return to_hwc(x.clamp(0, 1))
            return entry.decode_batch_uint8(z)

        def done(images) -> None:
            if gen != self._generation or entry is not self.state.current:
                return  # a newer draw (or another model) wins
            note = "" if entry.model.capabilities.is_generative else (
                " — a plain AE was never trained to decode N(0, I) samples: expect holes and blur")
            self.ready.emit(entry, tile(images, 8), f"{N_SAMPLES} samples, seed {seed}{note}")

        self.tasks.start(work, on_done=done, on_error=self.failed.emit, on_progress=self.progress.emit)


__all__ = ["N_SAMPLES", "SamplesController", "prior_latents"]
