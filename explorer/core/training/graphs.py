"""The GPU fast path: the whole training step captured as one CUDA graph.

A small model's step on a GPU is bound by kernel launches (the MLP VAE: ~45k images/s eagerly, ~346k with
the step captured on an H100). A captured step needs a static batch shape, static input tensors, optimisers
made ``capturable`` and no host syncs inside: the trainer copies each batch's *indices* into a static tensor
and the graph gathers, converts, steps and accumulates the metrics on the device.

:func:`plan` decides whether to try (CUDA, one process, a family whose ``train_step`` does the same work
whatever the step number, optimisers that can be captured); :class:`GraphStep` warms up eagerly, captures,
and falls back to eager steps for good when the capture fails, with the reason logged and reported. Batches
of another size (an epoch's last one) run eagerly on the same weights and optimiser state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .snapshot import RollbackPoint

log = logging.getLogger("explorer.training")

SETTINGS = ("auto", "on", "off")
# Families whose train_step launches the same kernels at every step (the step number only names errors).
GRAPH_SAFE_FAMILIES = frozenset({"ae", "vae", "gan"})
WARMUP_STEPS = 3  # eager steps on a side stream before capture (lazy state: optimiser moments, autograd)
CAPTURABLE_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)  # the ones with a capturable (device-step) mode


@dataclass(frozen=True)
class GraphPlan:
    use: bool
    reason: str  # why not (or "captured"/"will capture"), for the log and the result


def plan(setting: str, device: torch.device, model: Any, optimizers: dict[str, torch.optim.Optimizer],
         world_size: int = 1) -> GraphPlan:
    """Whether to try a CUDA-graph step. ``setting``: auto (when known to be safe), on (try any model), off."""
    if setting not in SETTINGS:
        raise ValueError(f"cuda_graphs must be one of {', '.join(SETTINGS)}, got {setting!r}")
    if setting == "off":
        return GraphPlan(False, "CUDA graphs are turned off")
    if device.type != "cuda":
        return GraphPlan(False, f"device {device} is not a CUDA GPU")
    if world_size > 1:
        return GraphPlan(False, "distributed training steps eagerly (gradients are all-reduced between steps)")
    if setting == "auto" and not (getattr(model, "cuda_graph_safe", False)
                                  or getattr(model, "family", "") in GRAPH_SAFE_FAMILIES):
        return GraphPlan(False, f"the {getattr(model, 'family', '?')!r} family's step is not known to be "
                                "capturable (cuda_graphs='on' tries anyway)")
    for name, opt in optimizers.items():
        if not isinstance(opt, CAPTURABLE_OPTIMIZERS):
            return GraphPlan(False, f"optimizer {name!r} ({type(opt).__name__}) cannot be captured")
    return GraphPlan(True, "will capture")


def cuda_capture(body: Callable[[], None], pool: Any = None) -> Callable[[], None]:
    """Capture ``body`` as a CUDA graph; returns its replay."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        body()
    return graph.replay


class EagerStep:
    """One eager training step on a batch of indices into the preloaded uint8 images; metrics accumulate on
    the device (no host sync)."""

    mode = "eager"
    reason = ""

    def __init__(self, model: Any, optimizers: dict[str, torch.optim.Optimizer], images: torch.Tensor,
                 accumulator: "Accumulator") -> None:
        self.model, self.optimizers, self.images, self.acc = model, optimizers, images, accumulator

    def _body(self, idx: torch.Tensor, step: int, weight: float) -> dict[str, torch.Tensor]:
        x = self.images.index_select(0, idx).float().div_(255)
        metrics = self.model.train_step(x, self.optimizers, step)
        self.acc.add(metrics, weight)
        return metrics

    def __call__(self, idx: torch.Tensor, step: int, weight: float | None = None) -> dict[str, torch.Tensor]:
        return self._body(idx, step, float(len(idx)) if weight is None else weight)


class GraphStep(EagerStep):
    """Eager warm-up, then replays of one captured step for full batches; eager for any other size."""

    def __init__(self, model: Any, optimizers: dict[str, torch.optim.Optimizer], images: torch.Tensor,
                 accumulator: "Accumulator", batch_size: int, *,
                 capture: Callable[[Callable[[], None]], Callable[[], None]] = cuda_capture,
                 on_mode: Callable[[str, str], None] | None = None) -> None:
        super().__init__(model, optimizers, images, accumulator)
        self.batch_size = batch_size
        self.capture = capture
        self.on_mode = on_mode
        self.mode = "warmup"
        self.reason = ""
        self._warm = 0
        self._replay: Callable[[], None] | None = None
        self._static_idx: torch.Tensor | None = None
        self._static_metrics: dict[str, torch.Tensor] = {}
        self._cuda = images.device.type == "cuda"
        self._stream = torch.cuda.Stream(images.device) if self._cuda else None
        if self._cuda:
            for opt in optimizers.values():
                for group in opt.param_groups:
                    group["capturable"] = True  # state 'step' on the device, no host reads in step()
                # Warm-up steps and an epoch's smaller last batch run uncaptured on purpose.
                opt._warned_capturable_if_run_uncaptured = True

    def _side_stream(self) -> contextlib.AbstractContextManager[Any]:
        if self._stream is None:
            return contextlib.nullcontext()
        self._stream.wait_stream(torch.cuda.current_stream(self.images.device))
        return torch.cuda.stream(self._stream)

    def _join(self) -> None:
        if self._stream is not None:
            torch.cuda.current_stream(self.images.device).wait_stream(self._stream)

    def _fallback(self, reason: str) -> None:
        self.mode, self.reason, self._replay = "eager", reason, None
        log.warning("CUDA graph capture failed, training eagerly: %s", reason)
        if self.on_mode is not None:
            self.on_mode("eager", reason)

    def _try_capture(self, step: int) -> None:
        point = RollbackPoint()  # capture runs no kernels, but a failure may leave half-updated state
        point.take(self.model, self.optimizers, step, 0)
        rng = torch.cuda.get_rng_state(self.images.device) if self._cuda else torch.get_rng_state()
        self._static_idx = torch.zeros(self.batch_size, dtype=torch.long, device=self.images.device)
        weight = float(self.batch_size)

        def body() -> None:
            self._static_metrics = self._body(self._static_idx, step, weight)

        try:
            with self._side_stream():
                for opt in self.optimizers.values():
                    opt.zero_grad(set_to_none=True)
                self._replay = self.capture(body)
            self._join()
        except Exception as exc:  # noqa: BLE001 - any capture failure means: train eagerly
            self._join()
            point.restore(self.model, self.optimizers)
            if self._cuda:
                torch.cuda.set_rng_state(rng, self.images.device)
            else:
                torch.set_rng_state(rng)
            self._fallback(f"{type(exc).__name__}: {exc}".strip())
            return
        self.mode, self.reason = "graph", "captured"
        log.info("training step captured as a CUDA graph (batch %d)", self.batch_size)
        if self.on_mode is not None:
            self.on_mode("graph", "captured")

    def __call__(self, idx: torch.Tensor, step: int, weight: float | None = None) -> dict[str, torch.Tensor]:
        full = len(idx) == self.batch_size and weight is None
        if self.mode == "warmup" and full:
            if self._warm < WARMUP_STEPS:
                self._warm += 1
                with self._side_stream():
                    out = self._body(idx, step, float(len(idx)))
                self._join()
                return out
            self._try_capture(step)
        if self.mode == "graph" and full:
            assert self._static_idx is not None and self._replay is not None
            self._static_idx.copy_(idx, non_blocking=True)
            self._replay()
            return self._static_metrics
        return super().__call__(idx, step, weight)


class Accumulator:
    """Weighted metric sums and a 'something was not finite' flag, all on the device, updated in place (a
    captured graph keeps writing to the same tensors)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.bad = torch.zeros((), dtype=torch.bool, device=device)

    def add(self, metrics: dict[str, torch.Tensor], weight: float) -> None:
        for key, val in metrics.items():
            val = val.detach()
            acc = self.sums.get(key)
            if acc is None:
                acc = self.sums[key] = torch.zeros(val.shape, dtype=torch.float32, device=val.device)
            acc.add_(val, alpha=weight)
            self.bad.logical_or_(~torch.isfinite(val).all())

    def take_sums(self) -> dict[str, torch.Tensor]:
        """Copies of the sums, then zeroes them in place."""
        out = {k: v.clone() for k, v in self.sums.items()}
        for v in self.sums.values():
            v.zero_()
        return out

    def copy_sums(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.sums.items()}
