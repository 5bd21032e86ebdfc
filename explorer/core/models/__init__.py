from .base import Capabilities, CapabilityError, LatentModel, ModelConfig, NonFiniteLossError
from .registry import build_model, families, get_family, register

__all__ = [
    "Capabilities",
    "CapabilityError",
    "LatentModel",
    "ModelConfig",
    "NonFiniteLossError",
    "build_model",
    "families",
    "get_family",
    "register",
]
