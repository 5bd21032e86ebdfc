"""The decoder swap: two autoencoders that share one encoder, each decoding into its own face style.

:func:`train_face_style_pair` trains the pair on :mod:`explorer.core.data.face_styles`; :func:`swap_rows` encodes
with A and decodes with B. Qt-free.
"""

from __future__ import annotations

from ..data.face_styles import (
    FACE_STYLE_COUNT,
    FACE_STYLE_SIZE,
    FACE_STYLES,
    FaceStyleError,
    face_style_data,
    face_style_dataset,
    face_style_pair,
)
from .pair import (
    NO_SHARED_ENCODER,
    decoder_swap,
    save_swap_pair,
    shares_encoder,
    swap_examples,
    swap_rows,
    train_face_style_pair,
    train_shared_encoder,
    write_swap_grid,
)

__all__ = [
    "FACE_STYLES", "FACE_STYLE_COUNT", "FACE_STYLE_SIZE", "FaceStyleError", "NO_SHARED_ENCODER", "decoder_swap",
    "face_style_data", "face_style_dataset", "face_style_pair", "save_swap_pair", "shares_encoder", "swap_examples",
    "swap_rows", "train_face_style_pair", "train_shared_encoder", "write_swap_grid",
]
