"""Training in a QThread: a QObject worker around the Qt-free core :class:`Trainer`.

The worker is moved to its own QThread and runs the whole job there: loading
the data set (which can take seconds), building the model, the training loop,
saving checkpoints. Every signal carries plain Python / numpy / CPU tensor
payloads, never the module being trained, so receivers on the GUI thread cannot
race the optimiser.

Control comes from the GUI thread through plain thread-safe objects, not queued
slots: a queued slot would never run while the worker sits in the training loop.
``stop()`` sets a ``threading.Event`` the trainer checks before every step;
``pause()`` / ``resume()`` flip a :class:`PauseToken` the trainer sleeps on
between steps.
"""

from __future__ import annotations

import math
import sys
import threading
import traceback
import uuid
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from explorer.core.training.snapshot import ModelSnapshot, cpu_state_dict

from explorer.core.imaging import tile_float

from .spec import TrainingSpec


def tile(images: torch.Tensor | np.ndarray, cols: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> one (H', W', C) uint8 image, row-major tiles."""
    return tile_float(images, cols, pad, pad_value)


def paired_rows(originals: torch.Tensor, reconstructions: torch.Tensor, cols: int) -> torch.Tensor:
    """Interleave rows: originals 0..cols-1, their reconstructions, originals cols.., ... (for one grid)."""
    n = min(len(originals), len(reconstructions))
    rows = []
    for start in range(0, n, cols):
        rows.append(originals[start : start + cols])
        rows.append(reconstructions[start : start + cols])
    return torch.cat(rows) if rows else originals[:0]


class TrainingWorker(QObject):
    """Runs one training job. Create, ``moveToThread``, connect ``QThread.started`` to :meth:`run`.

    Signals (all payloads are plain data, emitted on the worker thread, delivered queued):

    * ``status(str)``: what it is doing before training starts ("Loading mnist…").
    * ``started(dict)``: run_id, device, family, dataset, n_train, image_shape, latent_dim,
      steps_per_epoch, first_epoch, last_epoch (1-based, inclusive), total_steps (this run), checkpoint.
    * ``progress(dict)``: epoch (1-based), last_epoch, step (1-based in the epoch), steps_per_epoch,
      global_step, run_step, total_steps, images_per_second, eta_s, metrics {name: float}
      (train means since the previous report). At most every ``spec.progress_interval_s``.
    * ``epochEnded(dict)``: epoch (1-based), partial, metrics (the trainer's record: floats, and
      lists such as ``kl_per_dim`` / ``test_kl_per_dim``).
    * ``samplesReady(dict)``: epoch, cols, n (images per grid), samples (H, W, C) uint8 square grid or None (no prior),
      reconstructions (H, W, C) uint8 grid of alternating original / reconstruction rows or None.
    * ``snapshot(object)``: a :class:`ModelSnapshot` (CPU state dict + config) at each epoch end,
      and a final one (``final=True``) with the weights the run ended with.
    * ``checkpointSaved(str)``: a path written (atomically) by the trainer.
    * ``paused(int)`` / ``resumed(int)``: the global step at which the loop blocked / went on.
    * ``failed(str)``: a message for the user; ``finished`` follows.
    * ``finished(dict)``: always last. ok, stopped, error, epochs_completed, steps, seconds,
      images_per_second, device, checkpoint, final_metrics, history.
    """

    status = Signal(str)
    started = Signal(object)  # dict
    progress = Signal(object)  # dict
    epochEnded = Signal(object)  # dict
    samplesReady = Signal(object)  # dict
    snapshot = Signal(object)
    checkpointSaved = Signal(str)
    paused = Signal(int)
    resumed = Signal(int)
    failed = Signal(str)
    finished = Signal(object)  # dict

    def __init__(self, spec: TrainingSpec, *, run_id: str | None = None) -> None:
        super().__init__()
        from explorer.core.training import PauseToken

        self.spec = spec
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.stop_event = threading.Event()
        self.pause_token = PauseToken()
        self.trainer: Any = None  # set on the worker thread once built; read-only for others
        self.last_checkpoint: str | None = None
        self.global_step = 0  # steps done so far (updated at each progress report and at the end)
        self._meta: dict[str, Any] = {}
        self._epoch = 0

    # ------------------------------------------------------------ control (any thread)
    def stop(self) -> None:
        """Stop before the next step (the current one finishes); a final checkpoint is still saved."""
        self.stop_event.set()
        self.pause_token.wake()

    def pause(self) -> None:
        self.pause_token.pause()

    def resume(self) -> None:
        self.pause_token.resume()

    @property
    def is_paused(self) -> bool:
        return self.pause_token.paused

    # ------------------------------------------------------------ the job (worker thread)
    @Slot()
    def run(self) -> None:
        result: dict[str, Any] = {"ok": False, "stopped": False, "error": None, "checkpoint": None}
        try:
            result.update(self._run())
        except Exception as exc:  # every failure becomes a message; the GUI never sees a traceback
            message = self._message_for(exc)
            result.update(error=message)
            if self._is_unexpected(exc):
                traceback.print_exc(file=sys.stderr)
            self._emit_final_snapshot()
            self.failed.emit(message)
        finally:
            result["checkpoint"] = result.get("checkpoint") or self.last_checkpoint
            result["run_id"] = self.run_id
            self.trainer = None  # drop the module, optimiser state and the data on the device
            self.finished.emit(result)
            # Back to the GUI thread, so the object outlives its thread without dangling there.
            app = QCoreApplication.instance()
            if app is not None and self.thread() is not app.thread():
                self.moveToThread(app.thread())

    def _run(self) -> dict[str, Any]:
        from explorer.core import checkpoint
        from explorer.core.data import load_dataset
        from explorer.core.models import build_model
        from explorer.core.training import TrainConfig, Trainer

        from explorer.core.threads import apply

        apply("training")  # the training thread's share of the budget, before its first parallel call
        spec = self.spec
        spec.validate()
        resume_model = None
        if spec.resume_path:
            self.status.emit(f"Reading {spec.resume_path}…")
            resume_model = checkpoint.load(spec.resume_path, with_optimizer_state=True)
        dataset = spec.dataset
        self.status.emit(f"Loading {dataset}…")
        image_size = spec.image_size
        channels = None
        if resume_model is not None:
            # The checkpoint fixes the image shape; bring the data to it.
            channels, image_size = resume_model.image_shape[0], resume_model.image_shape[1]
        data = load_dataset(dataset, image_size=image_size, channels=channels, limit_train=spec.limit_train,
                            limit_test=spec.limit_test, seed=spec.seed)
        if self.stop_event.is_set():
            return {"ok": True, "stopped": True, "epochs_completed": 0, "steps": 0}
        self.status.emit("Building the model…")
        torch.manual_seed(spec.seed)
        if resume_model is not None:
            model = build_model(resume_model.family, resume_model.config)
        else:
            model = build_model(spec.family, spec.model_config(data.image_shape))
        config = TrainConfig(
            epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.effective_lr, seed=spec.seed,
            device=spec.device, checkpoint_path=spec.checkpoint_path, checkpoint_every=spec.checkpoint_every,
            max_steps=spec.max_steps, progress_interval_s=spec.progress_interval_s,
            n_sample_grid=spec.n_sample_grid,
        )
        trainer = Trainer(model, data, config, stop_event=self.stop_event, pause_token=self.pause_token,
                          checkpoint_metadata={"dataset": data.name, "label_names": list(data.label_names)})
        if resume_model is not None:
            trainer.resume_from(resume_model)
            del resume_model
        self._meta = {
            "family": model.family, "config": model.config.to_dict(), "dataset": data.name,
            "label_names": list(data.label_names),
        }
        for event in ("train_begin", "progress", "epoch_end", "samples_ready", "checkpoint_saved", "paused",
                      "resumed"):
            trainer.on(event, getattr(self, f"_on_{event}"))
        self.trainer = trainer
        self._first_step = trainer.global_step
        res = trainer.run()
        self.global_step = trainer.global_step
        self._emit_final_snapshot()
        out = res.to_dict()
        out.update(ok=True, stopped=res.stopped)
        return out

    # ------------------------------------------------------------ trainer callbacks (worker thread)
    def _on_train_begin(self, model: Any, device: str, steps_per_epoch: int, epochs: int, start_epoch: int) -> None:
        spec = self.spec
        total = steps_per_epoch * epochs
        if spec.max_steps is not None:
            total = min(total, max(0, spec.max_steps - self.trainer.global_step))
        self._spe = steps_per_epoch
        self._last_epoch = start_epoch + epochs
        self._total_steps = total
        self.started.emit({
            "run_id": self.run_id, "device": device, "family": model.family, "dataset": self._meta["dataset"],
            "n_train": int(self.trainer.data.n_train), "image_shape": list(model.image_shape),
            "latent_dim": int(model.latent_dim), "steps_per_epoch": steps_per_epoch,
            "first_epoch": start_epoch + 1, "last_epoch": start_epoch + epochs, "total_steps": total,
            "checkpoint": spec.checkpoint_path, "closed_form": bool(model.capabilities.closed_form),
        })

    def _on_progress(self, epoch: int, step_in_epoch: int, steps_per_epoch: int, global_step: int,
                     metrics: dict[str, float], images_per_second: float, eta_seconds: float) -> None:
        self.global_step = global_step
        self.progress.emit({
            "epoch": epoch + 1, "last_epoch": self._last_epoch, "step": step_in_epoch,
            "steps_per_epoch": steps_per_epoch, "global_step": global_step,
            "run_step": global_step - self._first_step, "total_steps": self._total_steps,
            "images_per_second": float(images_per_second), "eta_s": float(eta_seconds), "metrics": dict(metrics),
        })

    def _on_epoch_end(self, epoch: int, metrics: dict[str, Any], snapshot: dict[str, torch.Tensor],
                      partial: bool) -> None:
        self.global_step = self.trainer.global_step
        self._epoch = epoch + 1
        self.epochEnded.emit({"epoch": epoch + 1, "partial": bool(partial), "metrics": dict(metrics)})
        # The trainer's snapshot is already a CPU copy it never writes to (it keeps it as the
        # last good weights): hand it over as is rather than copying again.
        self.snapshot.emit(self._snapshot(snapshot, epoch + 1, metrics, final=False))

    def _on_samples_ready(self, samples: torch.Tensor | None, originals: torch.Tensor,
                          reconstructions: torch.Tensor | None) -> None:
        cols = max(1, min(8, len(originals)))
        self.samplesReady.emit({
            "epoch": self._epoch,
            "cols": cols,
            "n": int(len(originals) if samples is None else len(samples)),
            # A square grid of samples shows them larger than one long strip would.
            "samples": None if samples is None else tile(samples, max(1, math.ceil(math.sqrt(len(samples))))),
            "reconstructions": None if reconstructions is None else tile(
                paired_rows(originals, reconstructions, cols), cols),
        })

    def _on_checkpoint_saved(self, path: str, final: bool) -> None:
        self.last_checkpoint = str(path)
        self.checkpointSaved.emit(str(path))

    def _on_paused(self, epoch: int, global_step: int) -> None:
        self.global_step = global_step
        self.paused.emit(int(global_step))

    def _on_resumed(self, epoch: int, global_step: int, paused_seconds: float) -> None:
        self.resumed.emit(int(global_step))

    # ------------------------------------------------------------ helpers
    def _snapshot(self, state: dict[str, torch.Tensor], epoch: int, metrics: dict[str, Any],
                  final: bool) -> ModelSnapshot:
        return ModelSnapshot(
            run_id=self.run_id, family=self._meta["family"], config=self._meta["config"], state_dict=state,
            epoch=epoch, step=int(self.trainer.global_step), dataset=self._meta["dataset"],
            label_names=self._meta["label_names"], metrics=dict(metrics), final=final,
            checkpoint=self.spec.checkpoint_path,
        )

    def _emit_final_snapshot(self) -> None:
        """The weights the run ends with (after a failure: the last good ones the trainer restored)."""
        trainer = self.trainer
        if trainer is None or not self._meta:
            return
        try:
            history = trainer.history
            epoch = trainer.start_epoch + len(getattr(trainer, "_new_epochs", []))
            self.snapshot.emit(self._snapshot(cpu_state_dict(trainer.model), epoch,
                                              history[-1] if history else {}, final=True))
        except Exception:  # a failed copy (e.g. a broken device) must not hide the original error
            traceback.print_exc(file=sys.stderr)

    def _message_for(self, exc: BaseException) -> str:
        from explorer.core.checkpoint import CheckpointError
        from explorer.core.data import DataSourceError
        from explorer.core.models.base import NonFiniteLossError
        from explorer.core.training import TrainingError
        from explorer.core.training.devices import is_out_of_memory

        if isinstance(exc, DataSourceError):
            return f"Could not load the data set: {exc}"
        if isinstance(exc, CheckpointError):
            return f"Could not continue from the checkpoint: {exc}"
        if isinstance(exc, TrainingError):
            cause = exc.__cause__
            saved = f" The last good weights were saved to {self.last_checkpoint}." if self.last_checkpoint else ""
            if cause is not None and is_out_of_memory(cause):
                device = getattr(self.trainer, "device", self.spec.device)
                smaller = max(1, self.spec.batch_size // 2)
                return (f"Out of memory on {device} with batch size {self.spec.batch_size}. "
                        f"Try a smaller batch size (e.g. {smaller}) or a smaller model.{saved}")
            if isinstance(cause, NonFiniteLossError):
                return f"Training stopped: {exc}{saved}"
            return f"Training stopped: {exc}"
        if isinstance(exc, ValueError):
            return f"Invalid settings: {exc}"
        if is_out_of_memory(exc):
            return (f"Out of memory with batch size {self.spec.batch_size}. "
                    f"Try a smaller batch size (e.g. {max(1, self.spec.batch_size // 2)}).")
        return f"Training failed: {type(exc).__name__}: {exc}"

    @staticmethod
    def _is_unexpected(exc: BaseException) -> bool:
        from explorer.core.checkpoint import CheckpointError
        from explorer.core.data import DataSourceError
        from explorer.core.training import TrainingError

        return not isinstance(exc, (DataSourceError, CheckpointError, TrainingError, ValueError))


class TrainingJob(QObject):
    """One worker on one QThread, with clean start and shutdown. Owned by the panel (or a test).

    ``finished`` (the worker's result dict) is delivered after the thread has ended and been
    waited for, so a receiver may drop the job right away.
    """

    finished = Signal(object)  # dict

    def __init__(self, spec: TrainingSpec, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = TrainingWorker(spec)
        self.thread = QThread()
        self.thread.setObjectName(f"latent-explorer-training-{self.worker.run_id}")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.finished.connect(self._worker_finished)
        self.result: dict[str, Any] | None = None

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    @Slot(object)
    def _worker_finished(self, result: dict) -> None:
        # Runs on the GUI thread (queued). The worker's run() has returned or is about to:
        # quit the (idle) event loop and wait, which takes microseconds, not a training step.
        self.result = result
        self.thread.quit()
        self.thread.wait()
        self.finished.emit(result)

    def stop(self) -> None:
        self.worker.stop()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread has ended (for shutdown paths and tests). True when it has."""
        self.thread.quit()  # harmless while run() is still going: the loop is left once run() returns
        return self.thread.wait(timeout_ms)
