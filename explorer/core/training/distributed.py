"""Data-parallel training over several processes (``torchrun``), gloo on CPU, nccl on CUDA.

Every rank preloads the data set, draws the same epoch permutation and takes its slice of each *global*
batch (``--batch-size`` is the global batch), so an epoch still sees every image once and a run equals a
single-process run with the same batch and seed (up to float rounding, and to the noise stochastic families
draw, which is independent per rank).

Gradients are averaged in an optimiser step pre-hook: one flattened all-reduce per optimiser step, each
rank's gradient weighted by its share of the global batch (so an uneven last batch still gives the global
mean). That is DistributedDataParallel's arithmetic; its module wrapper itself does not fit here, because
our families run their own backward passes and optimiser steps inside ``train_step`` (a GAN several per
step, each network with its own optimiser: both are averaged this way).

Metrics are summed across ranks, a stop on any rank stops all at the same step (the flags travel with the
periodic finiteness check), and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    weight: float = 1.0  # this rank's share of the current global batch (set per step)
    _hooks: list[Any] = field(default_factory=list, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    # ------------------------------------------------------------ batches
    def shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's part of a global batch of indices, and its weight (its images / all images).

        A rank left without images (a global batch smaller than the world) trains on the batch's first image
        with weight 0: every rank must take part in every all-reduce.
        """
        part = torch.tensor_split(idx, self.world_size)[self.rank]
        if len(part) == 0:
            return idx[:1], 0.0
        return part, len(part) / len(idx)

    # ------------------------------------------------------------ gradients
    def attach(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """Average gradients across ranks before every optimiser step."""
        for opt in optimizers.values():
            self._hooks.append(opt.register_step_pre_hook(self._average_hook))

    def detach(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def _average_hook(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(self.weight)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    # ------------------------------------------------------------ state and metrics
    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's weights and buffers everywhere (as DDP does at construction)."""
        with torch.no_grad():
            for t in module.state_dict().values():
                dist.broadcast(t, src=0)

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Running statistics (BatchNorm) are per rank while training; average them where they are used."""
        with torch.no_grad():
            for name, buf in module.named_buffers():
                if buf.is_floating_point():
                    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                    buf.div_(self.world_size)

    def sum_tensors(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        if not tensors:
            return tensors
        flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        out, offset = [], 0
        for t in tensors:
            out.append(flat[offset : offset + t.numel()].view(t.shape).to(t.dtype))
            offset += t.numel()
        return out

    def any_flags(self, *flags: bool | torch.Tensor) -> list[bool]:
        """Logical OR of each flag over every rank (one all-reduce)."""
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        t = torch.stack([torch.as_tensor(f, dtype=torch.float32).to(device).reshape(()) for f in flags])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.cpu()]

    def sum_int(self, value: int) -> int:
        return int(self.sum_tensors([torch.tensor([float(value)])])[0].item())

    def barrier(self) -> None:
        dist.barrier()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and "RANK" in os.environ


def init_from_env(device: str = "auto", timeout_s: float = 600.0) -> DistContext | None:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    None when not launched as several processes. Backend: nccl when training on CUDA, gloo otherwise. Each
    rank trains on ``cuda:LOCAL_RANK`` when the device is CUDA.
    """
    if not launched_by_torchrun():
        return None
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank=rank, world_size=world, local_rank=local, backend=backend)


def rank_device(ctx: DistContext | None, device: str) -> str:
    """The device string a rank trains on (CUDA ranks: one GPU each, by local rank)."""
    if ctx is None or ctx.backend != "nccl":
        return device
    return f"cuda:{ctx.local_rank}"


def shutdown(ctx: DistContext | None) -> None:
    if ctx is not None and dist.is_initialized():
        dist.destroy_process_group()
