"""Building hostile files for tests: a real tiny checkpoint and session, and safetensors rewritten at the byte
level (header, metadata, shapes, dtypes) the way a sender could. Not a test module; imported by tests and run as
a script in a subprocess by the memory-capped checks."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any


def tiny_checkpoint(path: Path, *, optimizer: bool = True) -> Path:
    import torch

    from explorer.core import checkpoint
    from explorer.core.models import build_model

    torch.manual_seed(0)
    model = build_model("vae", latent_dim=2, image_shape=(1, 8, 8), hidden=(8,))
    opts = None
    if optimizer:
        opts = model.configure_optimizers(1e-3)
        x = torch.rand(4, 1, 8, 8)
        model.train_step(x, opts, 0)
    return checkpoint.save(model, path, optimizers=opts, dataset="digits", label_names=[str(i) for i in range(10)])


def tiny_session(path: Path, model_path: str = "m.safetensors") -> Path:
    import numpy as np

    from explorer.core.session import ModelState, Session

    state = ModelState(path=model_path, identity="abc", cursor=np.zeros(2, np.float32), selected=3,
                       vectors={"smile": np.ones(2, np.float32)}, vector_info={"smile": {"kind": "attribute"}},
                       keyframes=[("k0", np.ones(2, np.float32))], groups={"A": np.arange(3)}, sample_seed=7)
    return Session(models=[state], current=0, view={"projection": "pca", "dim_x": 0, "dim_y": 1,
                                                      "colour_by": "label"}).save(path)


def read_st(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path: Path, header: dict[str, Any], data: bytes, *, header_text: str | None = None) -> Path:
    text = (header_text if header_text is not None else json.dumps(header)).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data)
    return Path(path)


def with_metadata(src: Path, dst: Path, mutate: Callable[[dict[str, Any]], Any], key: str = "latent_explorer",
                  raw_text: str | None = None) -> Path:
    """Copy of a checkpoint/session whose metadata JSON document is changed by ``mutate`` (in place or by
    returning a new document), or replaced by ``raw_text``."""
    header, data = read_st(src)
    if raw_text is None:
        doc = json.loads(header["__metadata__"][key])
        out = mutate(doc)
        doc = doc if out is None else out
        raw_text = json.dumps(doc)
    header["__metadata__"][key] = raw_text
    return write_st(dst, header, data)


def peak_rss_mb() -> float:
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024
