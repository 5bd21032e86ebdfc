"""Family name -> model class. Families register themselves on import."""

from __future__ import annotations

from typing import Any

from .base import LatentModel, ModelConfig

REGISTRY: dict[str, type[LatentModel]] = {}


def register(cls: type[LatentModel]) -> type[LatentModel]:
    if not cls.family:
        raise ValueError(f"{cls.__name__} has no family name")
    REGISTRY[cls.family] = cls
    return cls


def _ensure_loaded() -> None:
    # Importing the package registers the built-in families.
    from . import ae, gan, pca, vae  # noqa: F401

    # Users' own models ("imported"): checkpoint.load must rebuild them from metadata like any family.
    from .. import adapter  # noqa: F401


def families() -> list[str]:
    _ensure_loaded()
    return sorted(REGISTRY)


def get_family(name: str) -> type[LatentModel]:
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
