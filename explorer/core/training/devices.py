"""Training device selection: CUDA -> MPS -> CPU unless the user asks for one."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceInfo:
    id: str  # what torch.device() takes: "cuda:0", "mps", "cpu"
    name: str  # for people: "NVIDIA H100 80GB HBM3 (cuda:0)"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def available_devices() -> list[DeviceInfo]:
    """Every device training can use, best first."""
    found: list[DeviceInfo] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            found.append(DeviceInfo(f"cuda:{i}", f"{torch.cuda.get_device_name(i)} (cuda:{i})"))
    if _mps_available():
        found.append(DeviceInfo("mps", "Apple GPU (mps)"))
    found.append(DeviceInfo("cpu", f"CPU ({torch.get_num_threads()} threads)"))
    return found


def select_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Resolve 'auto' (best available) or check that the requested device exists."""
    pref = "auto" if preference is None else str(preference)
    if pref == "auto":
        return torch.device(available_devices()[0].id)
    try:
        dev = torch.device(pref)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {pref!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {pref!r} requested but no CUDA GPU is available; use --device cpu")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {pref!r} requested but only {torch.cuda.device_count()} CUDA GPU(s) exist")
        return torch.device("cuda", index)
    if dev.type == "mps" and not _mps_available():
        raise ValueError("device 'mps' requested but the Apple GPU backend is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {pref!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
