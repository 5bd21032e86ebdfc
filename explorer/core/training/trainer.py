"""The family-agnostic training loop.

Knows nothing of Qt: the GUI talks to it through named callback events, a
``threading.Event`` stop token (checked before every step, so a stop is
honoured within one step) and an optional :class:`PauseToken` (the loop blocks
between steps while paused, without using the CPU).

Speed comes from keeping the whole training split as one uint8 tensor on the
training device and slicing batches out of it: no Dataset, no DataLoader, no
per-item transforms. Metrics stay on the device between progress reports so
the loop does not synchronise with a GPU on every step.

A memory-mapped data set (a decoded folder from the on-disk cache) is never
copied whole: on the CPU the tensor shares the map's pages, and on an
accelerator it stays on the host when it would not fit comfortably in the
device's free memory, each batch gathered from the map (sorted rows) and moved
on its own (:class:`HostBatchStep`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.base import ImageData
from ..models.base import LatentModel, NonFiniteLossError, deferred_finite_checks
from . import graphs
from .devices import is_out_of_memory, select_device
from .distributed import DistContext
from .snapshot import RollbackPoint

EVENTS = (
    "train_begin",
    "epoch_begin",
    "step_begin",
    "step_end",
    "progress",  # throttled (progress_interval_s): floats, safe to show
    "epoch_end",
    "samples_ready",
    "checkpoint_saved",
    "train_end",
    "paused",  # the loop is now blocked between steps (PauseToken); payload: epoch, global_step
    "resumed",  # payload: epoch, global_step, paused_seconds
    "step_mode",  # how steps run: mode ("eager" / "graph"), reason (why not a CUDA graph, or "captured")
)


class TrainingError(RuntimeError):
    """Training could not go on (non-finite loss, out of memory, bad data). The message is for users."""


class PauseToken:
    """Pause/resume switch, set from any thread; the trainer waits on it between steps.

    The waiting thread sleeps on a condition variable (no polling of the CPU) and
    wakes on :meth:`resume` or :meth:`wake` (a stop). Paused time is left out of
    images/s and the time-remaining estimate.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake a waiting trainer without resuming (call after setting the stop token)."""
        with self._cond:
            self._cond.notify_all()

    def wait_while_paused(self, stop_event: threading.Event) -> float:
        """Block while paused and not stopped; returns the seconds spent waiting."""
        if not self._paused:
            return 0.0
        t0 = time.perf_counter()
        with self._cond:
            while self._paused and not stop_event.is_set():
                # The timeout is only a safety net for a stop set without wake(): a plain
                # threading.Event cannot notify this condition.
                self._cond.wait(timeout=0.25)
        return time.perf_counter() - t0


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    checkpoint_path: str | None = None  # saved at the end (and every checkpoint_every epochs)
    checkpoint_every: int = 0
    max_steps: int | None = None  # stop after this many steps in total (for quick runs)
    progress_interval_s: float = 0.1
    eval_batch_size: int = 1000
    n_sample_grid: int = 16  # images in the samples_ready grids; 0 disables
    save_optimizer: bool = True  # store optimiser state in checkpoints (needed for an exact resume)
    # Non-finite losses and weights are checked on the device every N steps (and at epoch ends), not after
    # every step: a host sync per step costs a GPU most of its speed. A bad check rolls back to the weights
    # of the last good one.
    finite_check_every: int = 50
    cuda_graphs: str = "auto"  # auto: capture the step as a CUDA graph where known to work; on: try; off

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be a positive number, got {self.lr}")
        if isinstance(self.checkpoint_every, bool) or not isinstance(self.checkpoint_every, int) \
                or self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be 0 (only at the end) or a positive number of epochs, "
                             f"got {self.checkpoint_every!r}")
        if self.checkpoint_path is not None and not str(self.checkpoint_path).strip():
            raise ValueError("the checkpoint path is empty; give a file name ending in .safetensors")
        if isinstance(self.finite_check_every, bool) or not isinstance(self.finite_check_every, int) \
                or self.finite_check_every < 1:
            raise ValueError(f"finite_check_every must be a positive number of steps, got {self.finite_check_every!r}")
        if self.cuda_graphs not in ("auto", "on", "off"):
            raise ValueError(f"cuda_graphs must be auto, on or off, got {self.cuda_graphs!r}")


@dataclass
class TrainResult:
    epochs_completed: int
    steps: int
    seconds: float
    images_per_second: float
    device: str
    stopped: bool  # stopped early by the stop token or max_steps
    history: list[dict[str, Any]] = field(default_factory=list)
    final_metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    step_mode: str = "eager"  # "graph" when the step ran as a captured CUDA graph
    step_mode_reason: str = ""
    world_size: int = 1  # processes that trained together (torchrun); images_per_second counts them all

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepInfo:
    epoch: int  # 0-based
    step: int  # global step count (0-based, before this step)
    step_in_epoch: int
    steps_per_epoch: int
    metrics: dict[str, torch.Tensor] | None = None


def _to_float(value: torch.Tensor | float) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in metrics.items():
        if isinstance(val, torch.Tensor):
            val = val.detach().cpu()
            out[key] = float(val) if val.ndim == 0 else [float(v) for v in val.flatten()]
        elif isinstance(val, (list, tuple, np.ndarray)):
            out[key] = [float(v) for v in val]
        else:
            out[key] = float(val) if isinstance(val, (int, float, np.floating)) else val
    return out


class Trainer:
    def __init__(
        self,
        model: LatentModel,
        data: ImageData,
        config: TrainConfig | None = None,
        *,
        stop_event: threading.Event | None = None,
        callbacks: dict[str, Callable[..., Any]] | None = None,
        checkpoint_metadata: dict[str, Any] | None = None,
        pause_token: PauseToken | None = None,
        distributed: DistContext | None = None,
    ):
        self.config = config or TrainConfig()
        self.config.validate()
        if tuple(data.image_shape) != tuple(model.image_shape):
            raise TrainingError(
                f"dataset {data.name!r} has images of shape {list(data.image_shape)} but the model expects "
                f"{list(model.image_shape)}; choose a matching image size/channels"
            )
        if data.n_train == 0:
            raise TrainingError(f"dataset {data.name!r} has no training images")
        self.model = model
        self.data = data
        self.stop_event = stop_event or threading.Event()
        self.pause_token = pause_token
        self._listeners: dict[str, list[Callable[..., Any]]] = {name: [] for name in EVENTS}
        for name, fn in (callbacks or {}).items():
            self.on(name, fn)
        self.checkpoint_metadata = dict(checkpoint_metadata or {})
        self.device = select_device(self.config.device)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.global_step = 0
        self._last_good: dict[str, torch.Tensor] | None = None
        self._good = RollbackPoint()
        self.distributed = distributed
        self.step_mode, self.step_mode_reason = "eager", ""
        self._graph_capture = graphs.cuda_capture  # replaced by tests to exercise the fallback on a CPU

    # ---------------------------------------------------------- events
    def on(self, event: str, fn: Callable[..., Any]) -> None:
        if event not in self._listeners:
            raise ValueError(f"unknown trainer event {event!r}; known: {', '.join(EVENTS)}")
        self._listeners[event].append(fn)

    def _emit(self, event: str, **payload: Any) -> None:
        for fn in self._listeners[event]:
            fn(**payload)

    def stop(self) -> None:
        self.stop_event.set()
        if self.pause_token is not None:
            self.pause_token.wake()

    def _pause_point(self, epoch: int) -> float:
        """Block here while paused; returns the seconds paused (0 when not paused)."""
        token = self.pause_token
        if token is None or not token.paused or self.stop_event.is_set():
            return 0.0
        self._emit("paused", epoch=epoch, global_step=self.global_step)
        waited = token.wait_while_paused(self.stop_event)
        self._emit("resumed", epoch=epoch, global_step=self.global_step, paused_seconds=waited)
        return waited

    # ---------------------------------------------------------- resume
    def resume_from(self, checkpoint_model: LatentModel) -> None:
        """Continue from a model loaded with ``checkpoint.load(..., with_optimizer_state=True)``."""
        self.model.load_state_dict(checkpoint_model.state_dict())
        hist = (getattr(checkpoint_model, "metadata", {}) or {}).get("history", {}) or {}
        self.history = list(hist.get("per_epoch", []))
        self.start_epoch = int(hist.get("epochs", len(self.history)))
        self.global_step = int(hist.get("steps", 0))
        self._resume_source = checkpoint_model

    # ---------------------------------------------------------- helpers
    def snapshot(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the weights, safe to hand to another thread."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def _weights_finite(self) -> bool:
        # Buffers too: a NaN batch poisons BatchNorm running statistics in the forward pass.
        return all(bool(torch.isfinite(t).all()) for t in self.model.state_dict().values() if t.is_floating_point())

    def _evaluate(self, images: torch.Tensor) -> dict[str, Any]:
        if len(images) == 0:
            return {}
        gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 12345)
        sums: dict[str, Any] = {}
        for start in range(0, len(images), self.config.eval_batch_size):
            x = images[start : start + self.config.eval_batch_size].to(self.device).float().div_(255)
            metrics = self.model.evaluate(x, generator=gen)
            for key, val in metrics.items():
                arr = np.asarray(val, dtype=np.float64) * len(x)
                sums[key] = sums[key] + arr if key in sums else arr
        return {
            f"test_{k}": (float(v) if np.ndim(v) == 0 else [float(t) for t in v]) for k, v in
            ((k, s / len(images)) for k, s in sums.items())
        }

    def _sample_grids(self, fixed_z: torch.Tensor, fixed_x: torch.Tensor) -> None:
        if not self._listeners["samples_ready"]:
            return
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            samples = self.model.decode(fixed_z).cpu() if self.model.capabilities.is_generative else None
            recon = self.model.reconstruct(fixed_x).cpu() if self.model.capabilities.has_encoder else None
        self.model.train(was_training)
        self._emit("samples_ready", samples=samples, originals=fixed_x.cpu(), reconstructions=recon)

    def _save(self, path: str, final: bool) -> str:
        from .. import checkpoint

        meta = dict(self.checkpoint_metadata)
        meta.setdefault("dataset", self.data.name)
        meta.setdefault("label_names", list(self.data.label_names))
        if self.data.attribute_names:
            meta.setdefault("attribute_names", list(self.data.attribute_names))
        meta["history"] = self._history_summary(final)
        was_training = self.model.training
        self.model.eval()
        try:
            checkpoint.save(self.model, path, optimizers=(self.optimizers or None) if self.config.save_optimizer else None,
                            **meta)
        finally:
            self.model.train(was_training)
        self._emit("checkpoint_saved", path=path, final=final)
        return path

    def _history_summary(self, final: bool) -> dict[str, Any]:
        return {
            "epochs": self.start_epoch + len(self._new_epochs),
            "steps": self.global_step,
            "final": final,
            "train_config": {k: v for k, v in asdict(self.config).items() if k != "checkpoint_path"},
            "per_epoch": [
                {k: v for k, v in e.items() if not isinstance(v, list)} for e in self.history
            ][-200:],
            "final_metrics": self.history[-1] if self.history else {},
        }

    # ---------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        cfg = self.config
        self._new_epochs: list[int] = []
        dist_ctx = self.distributed
        # Ranks draw independent noise (VAE sampling, denoising); the epoch permutation has its own generator.
        torch.manual_seed(cfg.seed + self.start_epoch + (1_000_003 * dist_ctx.rank if dist_ctx else 0))
        try:
            self.model.to(self.device)
            # from_numpy shares memory: a memory-mapped data set stays one (only the pages read are loaded).
            images = torch.from_numpy(self.data.images)
            self._host_images = self._keep_on_host() and not self.model.capabilities.closed_form
            if not self._host_images:
                images = images.to(self.device)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise TrainingError(
                    f"out of memory on {self.device} while loading the dataset ({self.data.images.nbytes / 2**20:.0f} MB); "
                    "use fewer images or train on the CPU"
                ) from exc
            raise
        train_images = images[: self.data.n_train]
        test_images = images[self.data.n_train :]

        if self.model.capabilities.closed_form:
            return self._run_closed_form(train_images, test_images)

        self.optimizers = self.model.configure_optimizers(cfg.lr)
        source = getattr(self, "_resume_source", None)
        if source is not None:
            from ..checkpoint import restore_optimizers

            restore_optimizers(source, self.optimizers)
            self._move_optimizer_state()
            # The learning rate asked for now wins over the one stored with the optimiser state (the
            # checkpoint records cfg.lr, so it must be the one used).
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = cfg.lr
        if dist_ctx is not None and dist_ctx.active:
            dist_ctx.broadcast_module(self.model)
            dist_ctx.attach(self.optimizers)

        gen = torch.Generator(device=self.device).manual_seed(cfg.seed + self.start_epoch)
        n = len(train_images)
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        fixed_gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        fixed_z = torch.randn(cfg.n_sample_grid, self.model.latent_dim, generator=fixed_gen, device=self.device)
        pool = test_images if len(test_images) else train_images
        fixed_x = pool[: cfg.n_sample_grid].to(self.device).float().div_(255)

        acc = graphs.Accumulator(self.device)
        self._step_fn = self._make_step_fn(train_images, acc)
        self._good = RollbackPoint()
        self._good.take(self.model, self.optimizers, self.global_step, 0)
        self._last_good = self.snapshot()
        self._emit("train_begin", model=self.model, device=str(self.device), steps_per_epoch=steps_per_epoch,
                   epochs=cfg.epochs, start_epoch=self.start_epoch)
        if self.step_mode == "eager":
            self._emit("step_mode", mode="eager", reason=self.step_mode_reason)
        want_step_events = bool(self._listeners["step_begin"] or self._listeners["step_end"])
        sharded = dist_ctx is not None and dist_ctx.active
        check_every = cfg.finite_check_every
        t_start = time.perf_counter()
        images_seen = 0
        stopped = False
        last_progress = 0.0
        epoch = self.start_epoch
        self.model.train()
        try:
            with deferred_finite_checks():
                for epoch in range(self.start_epoch, self.start_epoch + cfg.epochs):
                    self._emit("epoch_begin", epoch=epoch, steps_per_epoch=steps_per_epoch)
                    t_epoch = time.perf_counter()
                    perm = torch.randperm(n, generator=gen, device=self.device)
                    count = 0
                    since_base = acc.copy_sums()
                    since_count = 0
                    for i in range(steps_per_epoch):
                        if self.pause_token is not None and self.pause_token.paused:
                            waited = self._pause_point(epoch)
                            t_start += waited  # paused time counts for neither images/s nor the ETA
                            t_epoch += waited
                        want_stop = self.stop_event.is_set() or (
                            cfg.max_steps is not None and self.global_step >= cfg.max_steps)
                        if sharded:
                            # Every rank decides at the same step; max_steps is the same everywhere.
                            if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
                                stopped = True
                                break
                            if self.global_step % check_every == 0 and dist_ctx.any_flags(want_stop)[0]:
                                self.stop_event.set()
                                stopped = True
                                break
                        elif want_stop:
                            stopped = True
                            break
                        idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                        global_b = len(idx)
                        weight = None
                        if sharded:
                            idx, share = dist_ctx.shard(idx)
                            dist_ctx.weight = share
                            weight = float(len(idx)) if share > 0 else 0.0
                        if want_step_events:
                            self._emit("step_begin", info=StepInfo(epoch, self.global_step, i, steps_per_epoch))
                        metrics = self._step_fn(idx, self.global_step, weight)
                        self.global_step += 1
                        b = int(weight) if weight is not None else global_b
                        images_seen += b
                        count += b
                        since_count += b
                        if want_step_events:
                            self._emit("step_end", info=StepInfo(epoch, self.global_step, i, steps_per_epoch, metrics))
                        if self.global_step % check_every == 0:
                            self._check(acc, epochs_done=len(self._new_epochs))
                        now = time.perf_counter()
                        if self._listeners["progress"] and now - last_progress >= cfg.progress_interval_s:
                            last_progress = now
                            elapsed = now - t_start
                            current = acc.copy_sums()
                            self._emit(
                                "progress",
                                epoch=epoch,
                                step_in_epoch=i + 1,
                                steps_per_epoch=steps_per_epoch,
                                global_step=self.global_step,
                                metrics={k: _to_float(v - since_base.get(k, 0)) / max(since_count, 1)
                                         for k, v in current.items() if v.ndim == 0},
                                images_per_second=images_seen / elapsed if elapsed > 0 else 0.0,
                                eta_seconds=self._eta(elapsed, images_seen, n, epoch, i + 1, steps_per_epoch),
                            )
                            since_base, since_count = current, 0
                    sums = acc.take_sums()
                    if sharded:
                        keys = list(sums)
                        reduced = dist_ctx.sum_tensors([sums[k] for k in keys] + [torch.tensor(float(count))])
                        sums = dict(zip(keys, reduced[:-1]))
                        count = int(round(float(reduced[-1])))
                    if count == 0:
                        break
                    self._check(acc, epochs_done=len(self._new_epochs), weights=True, take=False)
                    record: dict[str, Any] = {"epoch": epoch + 1}
                    record.update({k: _to_float(v) / count for k, v in sums.items() if v.ndim == 0})
                    record.update({k: (v / count).cpu().tolist() for k, v in sums.items() if v.ndim > 0})
                    record["seconds"] = time.perf_counter() - t_epoch
                    record["images_per_second"] = count / record["seconds"] if record["seconds"] > 0 else 0.0
                    partial = count < n
                    if sharded:
                        dist_ctx.average_buffers(self.model)
                    if not partial:
                        self.model.eval()
                        record.update(self._evaluate(test_images))
                        self.model.train()
                    self.history.append(record)
                    self._new_epochs.append(epoch)
                    self._good.take(self.model, self.optimizers, self.global_step, len(self._new_epochs))
                    self._last_good = self.snapshot()
                    self._emit("epoch_end", epoch=epoch, metrics=record, snapshot=self._last_good, partial=partial)
                    self._sample_grids(fixed_z, fixed_x)
                    if (
                        cfg.checkpoint_path
                        and self._writes_checkpoints
                        and cfg.checkpoint_every
                        and (epoch + 1 - self.start_epoch) % cfg.checkpoint_every == 0
                        and not partial
                    ):
                        self._save(cfg.checkpoint_path, final=False)
                    if stopped:
                        break
        except NonFiniteLossError as exc:
            found = self.global_step
            self._roll_back()
            self._save_after_failure()
            raise TrainingError(
                f"{exc} (found at step {found}; checked every {cfg.finite_check_every} steps, so the weights "
                f"kept are those of step {self.global_step})"
            ) from exc
        except Exception as exc:
            if is_out_of_memory(exc):
                self._release_device_memory()
                self._roll_back()
                self._save_after_failure()
                raise TrainingError(
                    f"out of memory on {self.device} with batch size {cfg.batch_size}; "
                    f"try a smaller batch (e.g. --batch-size {max(1, cfg.batch_size // 2)})"
                ) from exc
            raise
        finally:
            self.model.eval()
            if dist_ctx is not None:
                dist_ctx.detach()

        seconds = time.perf_counter() - t_start
        if sharded:
            images_seen = dist_ctx.sum_int(images_seen)
        result = TrainResult(
            epochs_completed=len(self._new_epochs),
            steps=self.global_step,
            seconds=seconds,
            images_per_second=images_seen / seconds if seconds > 0 else 0.0,
            device=str(self.device),
            stopped=stopped,
            history=self.history,
            final_metrics=self.history[-1] if self.history else {},
            step_mode=self.step_mode,
            step_mode_reason=self.step_mode_reason,
            world_size=dist_ctx.world_size if dist_ctx else 1,
        )
        if cfg.checkpoint_path and self._writes_checkpoints:
            result.checkpoint = self._save(cfg.checkpoint_path, final=True)
        self._emit("train_end", result=result)
        return result

    @property
    def _writes_checkpoints(self) -> bool:
        return self.distributed is None or self.distributed.is_main

    def _make_step_fn(self, train_images: torch.Tensor, acc: "graphs.Accumulator") -> graphs.EagerStep:
        world = self.distributed.world_size if self.distributed else 1
        if getattr(self, "_host_images", False):
            self.step_mode, self.step_mode_reason = "eager", "the data set is read from its memory map per batch"
            return HostBatchStep(self.model, self.optimizers, train_images, acc, self.device)
        plan = graphs.plan(self.config.cuda_graphs, self.device, self.model, self.optimizers, world)
        if not plan.use:
            self.step_mode, self.step_mode_reason = "eager", plan.reason
            return graphs.EagerStep(self.model, self.optimizers, train_images, acc)
        self.step_mode, self.step_mode_reason = "warmup", plan.reason
        return graphs.GraphStep(self.model, self.optimizers, train_images, acc, self.config.batch_size,
                                capture=self._graph_capture, on_mode=self._set_step_mode)

    def _keep_on_host(self) -> bool:
        """Whether the images stay in host memory (a memory map) and batches move to the device one by one:
        for memory-mapped data sets on an accelerator whose free memory they would fill more than half of."""
        from ..data.cache import is_memory_mapped

        if self.device.type == "cpu" or not is_memory_mapped(self.data.images):
            return False
        nbytes = self.data.images.nbytes
        if self.device.type == "cuda":
            try:
                free, _ = torch.cuda.mem_get_info(self.device)
            except RuntimeError:
                return False
            return nbytes > 0.5 * free
        return False

    def _set_step_mode(self, mode: str, reason: str) -> None:
        self.step_mode, self.step_mode_reason = mode, reason
        self._emit("step_mode", mode=mode, reason=reason)

    def _check(self, acc: "graphs.Accumulator", epochs_done: int, weights: bool = False, take: bool = True) -> None:
        """The one host sync of the finiteness guard: every ``finite_check_every`` steps and at epoch ends."""
        bad = acc.bad
        if weights:
            # Buffers too: a NaN batch poisons BatchNorm running statistics in the forward pass.
            floats = [t for t in self.model.state_dict().values() if t.is_floating_point()]
            if floats:
                bad = bad | ~torch.stack([torch.isfinite(t).all() for t in floats]).all()
        if self.distributed is not None and self.distributed.active:
            is_bad = self.distributed.any_flags(bad)[0]
        else:
            is_bad = bool(bad)
        if is_bad:
            raise NonFiniteLossError("training loss", float("nan"))
        if take:
            self._good.take(self.model, self.optimizers, self.global_step, epochs_done)

    def _eta(self, elapsed: float, seen: int, n: int, epoch: int, step: int, steps_per_epoch: int) -> float:
        if seen == 0:
            return float("nan")
        total_steps = self.config.epochs * steps_per_epoch
        done = (epoch - self.start_epoch) * steps_per_epoch + step
        if self.config.max_steps is not None:
            total_steps = min(total_steps, self.config.max_steps)
        return max(0.0, elapsed / max(done, 1) * (total_steps - done))

    def _run_closed_form(self, train_images: torch.Tensor, test_images: torch.Tensor) -> TrainResult:
        self._new_epochs = []
        self._emit("train_begin", model=self.model, device=str(self.device), steps_per_epoch=1, epochs=1,
                   start_epoch=0)
        t0 = time.perf_counter()
        fit = self.model.fit(train_images.float().div_(255))
        seconds = time.perf_counter() - t0
        self.model.eval()
        record: dict[str, Any] = {"epoch": 1, **_jsonable(fit), "seconds": seconds}
        record.update(self._evaluate(test_images))
        self.history.append(record)
        self._new_epochs.append(0)
        self.global_step = 1
        self._emit("epoch_end", epoch=0, metrics=record, snapshot=self.snapshot(), partial=False)
        result = TrainResult(1, 1, seconds, len(train_images) / seconds if seconds > 0 else 0.0,
                             str(self.device), False, self.history, record)
        if self.config.checkpoint_path:
            result.checkpoint = self._save(self.config.checkpoint_path, final=True)
        self._emit("train_end", result=result)
        return result

    def _restore_last_good(self) -> None:
        if self._last_good is not None and not self._weights_finite():
            self.model.load_state_dict(self._last_good)

    def _roll_back(self) -> None:
        """Back to the last good check: weights, optimiser state and the step count they belong to."""
        if self.optimizers:
            self._good.restore(self.model, self.optimizers)
            self.global_step = self._good.step
        else:
            self._restore_last_good()

    def _save_after_failure(self) -> None:
        # The user asked for a checkpoint: keep the last good weights on disk rather than lose the run (even
        # the initial ones: a NaN in the first epoch still leaves the weights it started from).
        if self.config.checkpoint_path and self._writes_checkpoints:
            try:
                self._save(self.config.checkpoint_path, final=False)
            except Exception:  # the original failure is the one to report
                pass

    def _release_device_memory(self) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _move_optimizer_state(self) -> None:
        for opt in self.optimizers.values():
            for state in opt.state.values():
                for key, val in state.items():
                    if isinstance(val, torch.Tensor) and key != "step":
                        state[key] = val.to(self.device)


class HostBatchStep(graphs.EagerStep):
    """An eager step whose images stay in host memory (a memory map): each batch's rows are read in sorted
    order (sequential pages, not random ones) and moved to the device alone."""

    def __init__(self, model: Any, optimizers: dict[str, torch.optim.Optimizer], images: torch.Tensor,
                 accumulator: graphs.Accumulator, device: torch.device) -> None:
        super().__init__(model, optimizers, images, accumulator)
        self.device = device

    def _body(self, idx: torch.Tensor, step: int, weight: float) -> dict[str, torch.Tensor]:
        rows = idx.cpu().sort().values  # the order within a batch does not matter to the step
        x = self.images.index_select(0, rows).to(self.device, non_blocking=True).float().div_(255)
        metrics = self.model.train_step(x, self.optimizers, step)
        self.acc.add(metrics, weight)
        return metrics


def train(model: LatentModel, data: ImageData, **kwargs: Any) -> TrainResult:
    """Convenience wrapper: ``train(model, data, epochs=2, batch_size=64)``."""
    callbacks = kwargs.pop("callbacks", None)
    stop_event = kwargs.pop("stop_event", None)
    return Trainer(model, data, TrainConfig(**kwargs), callbacks=callbacks, stop_event=stop_event).run()
