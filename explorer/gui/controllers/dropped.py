"""Your own images: files or folders dropped on the window are encoded (GANs: inverted) and placed on the
current model's map as stars, each a named vector ``img_<file>``. They belong to that model only."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.core.explore import DroppedImages, ExplorerState

from .data import strip_exception
from .tasks import TaskRunner

MAX_DROPPED_IMAGES = 2000
INVERT_OPTIONS: dict[str, Any] = {"steps": 300, "restarts": 4}  # GAN inversion of dropped images


def image_files(paths: list[str], limit: int = MAX_DROPPED_IMAGES) -> list[Path]:
    """Regular image files among ``paths`` and inside dropped folders, at most ``limit`` (walks lazily)."""
    from explorer.core.data.folder import IMAGE_EXTENSIONS

    def walk():
        for p in map(Path, paths):
            if p.is_dir():
                yield from (f for f in sorted(p.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
            elif p.is_file():  # never a FIFO or device: reading one would block forever
                yield p

    return list(itertools.islice(walk(), limit))


class DroppedImagesController(QObject):
    busy = Signal(object, bool)
    progress = Signal(float, str)
    added = Signal(object, object)  # OpenModel, DroppedImages
    failed = Signal(str)

    def __init__(self, state: ExplorerState, tasks: TaskRunner, projector: Any) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self.projector = projector
        self.task = None

    def add_images(self, paths: list[str]) -> None:
        from explorer.core.data.transforms import convert_channels, decode_files

        entry = self.state.current
        if entry is None:
            self.failed.emit("Open a model first, then drop images onto it.")
            return
        files = image_files(paths)
        if not files:
            self.failed.emit("none of the dropped items is an image file")
            return
        from explorer.core.models.pixelcnn import has_latent_space

        if not has_latent_space(entry.model):
            self.failed.emit(f"{entry.model.family.upper()} models have no latent space to place images in")
            return
        invert = not entry.model.capabilities.has_encoder  # GANs: optimise z to reproduce each image
        c, h, _ = entry.model.image_shape
        self.busy.emit(f"{'Inverting' if invert else 'Encoding'} {len(files)} images", True)
        key, proj, projector = entry.active, entry.projection, self.projector

        def work(progress, cancel):
            import torch

            decoded = decode_files(files, h)
            if not len(decoded.images):
                reasons = "; ".join(f"{f.name}: {why}" for f, why in decoded.failures[:3])
                raise ValueError(f"none of the {len(files)} files could be read as an image ({reasons})")
            images = convert_channels(decoded.images, c)
            if invert:
                from explorer.core.inversion import images_to_latents

                z, _errors, _how = images_to_latents(
                    entry.model, images, cancel=cancel, **INVERT_OPTIONS,
                    progress=lambda done, total: progress(done / max(total, 1), "inverting the generator"))
                z = np.asarray(z, np.float32)
            else:
                with torch.inference_mode():
                    z = entry.model.encode(torch.from_numpy(images).float().div_(255.0)).numpy().astype(np.float32)
            pos = None
            if proj is not None:
                if proj.exact_inverse:
                    pos = proj.transform(z)
                elif projector.can_transform(proj):
                    pos = projector.transform(proj, z, cancel=cancel)  # openTSNE's / UMAP's own placement
                else:
                    pos = proj.locate(z)
            names = [f for f, ok in zip(files, decoded.ok) if ok]
            return images, z, pos, names, decoded.failures

        def done(result) -> None:
            self.task = None
            self.busy.emit(None, False)
            images, z, pos, names, failures = result
            if entry not in self.state.models:
                return
            from explorer.core.latent.arithmetic import NamedVectors, identifier

            if entry.vectors is None:
                entry.vectors = NamedVectors(entry.latent_dim)
            labels = []
            for f, vec in zip(names, z):
                name = identifier("img_" + f.stem)
                entry.vectors[name] = vec
                entry.vectors.info[name] = {"source": str(f), "kind": "image"}
                labels.append(name)
            dropped = DroppedImages(images=images, latents=z, names=labels, files=[str(f) for f in names],
                                    positions={key: np.asarray(pos, np.float32)} if pos is not None and key else {})
            self.state.set_dropped(entry, dropped)
            self.state.vectors_edited(entry)
            if entry is self.state.current:
                self.state.set_cursor(entry, z[0], "select")
            msg = f"Placed {len(z)} images on the map (vectors {labels[0]}…)"
            if failures:
                msg += f"; {len(failures)} files skipped ({failures[0][0].name}: {failures[0][1]})"
            self.state.notify(msg, 10000)
            self.added.emit(entry, dropped)

        def failed(msg: str) -> None:
            self.task = None
            self.busy.emit(None, False)
            self.failed.emit(strip_exception(msg))

        def cancelled() -> None:
            self.task = None
            self.busy.emit(None, False)
            self.state.notify("Adding images cancelled", 5000)

        self.task = self.tasks.start(work, on_done=done, on_error=failed, on_progress=self.progress.emit,
                                     on_cancel=cancelled)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


__all__ = ["DroppedImagesController", "INVERT_OPTIONS", "MAX_DROPPED_IMAGES", "image_files"]
