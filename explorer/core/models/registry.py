"""Family name -> model class.

A leaf module: it imports no family. Built-in families are listed by module path and imported on first use, so
``registry`` never imports its families statically (the old import cycle registry <-> every family). A new family
adds one line to ``FAMILY_MODULES`` and decorates its class with :func:`register`.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import LatentModel, ModelConfig

REGISTRY: dict[str, type[LatentModel]] = {}

# Family name -> the module that defines (and registers) it.
FAMILY_MODULES: dict[str, str] = {
    "ae": "explorer.core.models.ae",
    "vae": "explorer.core.models.vae",
    "gan": "explorer.core.models.gan",
    "pca": "explorer.core.models.pca",
    "patch": "explorer.core.models.patch",
    "pixelcnn": "explorer.core.models.pixelcnn",
    "dcign": "explorer.core.models.dcign",
    "analogy": "explorer.core.models.analogy",
    # Users' own models: checkpoint.load must rebuild them from metadata like any family.
    "imported": "explorer.core.adapter",
}


def register(cls: type[LatentModel]) -> type[LatentModel]:
    if not cls.family:
        raise ValueError(f"{cls.__name__} has no family name")
    REGISTRY[cls.family] = cls
    return cls


def _ensure_loaded() -> None:
    for module in dict.fromkeys(FAMILY_MODULES.values()):
        importlib.import_module(module)


def families() -> list[str]:
    _ensure_loaded()
    return sorted(REGISTRY)


def get_family(name: str) -> type[LatentModel]:
    if name not in REGISTRY and name in FAMILY_MODULES:
        importlib.import_module(FAMILY_MODULES[name])
    if name not in REGISTRY:
        _ensure_loaded()
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def build_model(family: str, config: ModelConfig | dict[str, Any] | None = None, **overrides: Any) -> LatentModel:
    """Build a fresh (untrained) model of a family from a config object or dict."""
    cls = get_family(family)
    if config is None:
        cfg = cls.config_cls(**overrides)
    elif isinstance(config, dict):
        cfg = cls.config_cls.from_dict({**config, **overrides})
    else:
        cfg = config.replace(**overrides) if overrides else config
    if not isinstance(cfg, cls.config_cls):
        raise TypeError(f"{family} models need a {cls.config_cls.__name__}, got {type(cfg).__name__}")
    cfg.validate()
    return cls(cfg)
