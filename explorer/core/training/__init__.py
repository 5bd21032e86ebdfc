from .devices import DeviceInfo, available_devices, select_device
from .trainer import EVENTS, PauseToken, StepInfo, TrainConfig, Trainer, TrainingError, TrainResult, train

__all__ = [
    "EVENTS",
    "DeviceInfo",
    "PauseToken",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "available_devices",
    "select_device",
    "train",
]
