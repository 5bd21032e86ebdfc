"""Weight snapshots of a model in training, safe to hand to another thread.

The explorer draws the latent map of a model while it trains. It must never
touch the module being trained (its weights change under it, possibly on a
GPU), so the trainer hands over a :class:`ModelSnapshot` at each epoch end: a
CPU copy of the state dict plus the config that rebuilds the module. Whoever
receives one rebuilds a private model on demand with :meth:`ModelSnapshot.build_model`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..models.base import LatentModel
from ..models.registry import build_model, get_family


@dataclass(frozen=True)
class ModelSnapshot:
    run_id: str  # one training run; successive snapshots of a run share it
    family: str  # registry name: "ae", "vae", "gan", "pca"
    config: dict[str, Any]  # ModelConfig.to_dict(): rebuilds the module
    state_dict: dict[str, torch.Tensor]  # CPU tensors, owned by the snapshot: treat as read-only
    epoch: int  # epochs completed, counting those of a resumed checkpoint
    step: int  # optimiser steps completed
    dataset: str = ""
    label_names: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # the epoch's record (train and test figures)
    final: bool = False  # the weights the run ended with
    checkpoint: str | None = None  # where the run saves its checkpoints

    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = (int(v) for v in self.config["image_shape"])
        return c, h, w

    def build_model(self, device: str | torch.device = "cpu") -> LatentModel:
        """A fresh module with these weights, in eval mode. Each call builds a new one."""
        cls = get_family(self.family)
        model = build_model(self.family, cls.config_cls.from_dict(dict(self.config)))
        # load_state_dict copies, so the snapshot's tensors stay untouched by whatever the caller does next.
        model.load_state_dict(self.state_dict, strict=True)
        model.metadata = self.metadata()
        model.eval()
        return model.to(device)

    def metadata(self) -> dict[str, Any]:
        """The same keys a checkpoint's metadata has, so code that lists opened models can show a snapshot."""
        return {
            "family": self.family,
            "config": dict(self.config),
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "value_range": [0.0, 1.0],
            "dataset": self.dataset,
            "label_names": list(self.label_names),
            "history": {
                "epochs": self.epoch,
                "steps": self.step,
                "final": self.final,
                "final_metrics": {k: v for k, v in self.metrics.items() if not isinstance(v, list)},
            },
            "training": {"run_id": self.run_id, "live": not self.final, "checkpoint": self.checkpoint},
        }

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state_dict.values())


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's state dict (a copy even when the module is on the CPU)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class RollbackPoint:
    """The last weights (and optimiser state) known to be finite, kept on the training device.

    The trainer no longer checks every loss on the host (one GPU sync per step, and impossible inside a CUDA
    graph): it checks every N steps on the device and, on a bad check, copies this point back *in place* (a
    captured graph keeps pointing at the same tensors) and reports the step these weights are from.
    """

    def __init__(self) -> None:
        self.step = 0
        self.epochs = 0  # epochs completed when the point was taken
        self._live: list[torch.Tensor] = []
        self._saved: list[torch.Tensor] = []
        self._with_state: list[set[int]] = []  # per optimiser: ids of the parameters that had state
        self._scalars: list[tuple[dict[str, Any], str, Any]] = []

    @staticmethod
    def _tensors(model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> list[torch.Tensor]:
        live = [t for t in model.state_dict(keep_vars=True).values()]
        for opt in optimizers.values():
            for state in opt.state.values():
                live.extend(v for v in state.values() if isinstance(v, torch.Tensor))
        return live

    def take(self, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], step: int,
             epochs: int) -> None:
        live = self._tensors(model, optimizers)
        with torch.no_grad():
            same = len(live) == len(self._live) and all(a is b for a, b in zip(live, self._live))
            if same and live:
                torch._foreach_copy_(self._saved, [t.detach() for t in live])
            else:
                self._saved = [t.detach().clone() for t in live]
        self._live = live
        self._with_state = [{id(p) for p in opt.state} for opt in optimizers.values()]
        self._scalars = [(state, key, val) for opt in optimizers.values() for state in opt.state.values()
                         for key, val in state.items() if not isinstance(val, torch.Tensor)]
        self.step, self.epochs = int(step), int(epochs)

    def restore(self, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        with torch.no_grad():
            if self._live:
                torch._foreach_copy_([t.detach() for t in self._live], self._saved)
        for opt, had in zip(optimizers.values(), self._with_state):
            for p in [p for p in opt.state if id(p) not in had]:
                del opt.state[p]  # state created after the point (the first steps): as if never stepped
        for state, key, val in self._scalars:
            state[key] = val

    def cpu_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        names = list(model.state_dict().keys())
        return {k: v.to("cpu", copy=True) for k, v in zip(names, self._saved[: len(names)])}
