"""The session file is the explorer state serialised: :func:`to_session` and :func:`apply_model_state`.

File I/O and validation are :class:`explorer.core.session.Session`'s; this module maps between it and
:class:`~explorer.core.explore.state.ExplorerState`, so saving and restoring are tested without Qt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..session import ModelState, Session
from .state import ExplorerState, OpenModel, ProjectionChoice


def to_session(state: ExplorerState) -> Session:
    """Everything needed to reproduce this exploration. Models being trained (no file yet) are left out."""
    states = []
    saved = [m for m in state.models if not m.run_id or Path(m.path).is_file()]
    for entry in saved:
        vecs = entry.vectors or {}
        states.append(ModelState(
            path=str(Path(entry.path).resolve()), identity=entry.identity,
            cursor=None if entry.cursor_latent is None else entry.cursor_latent.copy(),
            selected=int(entry.selected),
            vectors={k: np.asarray(vecs[k]) for k in vecs},
            vector_info={k: dict(entry.vectors.info.get(k, {})) for k in vecs} if vecs else {},
            keyframes=list(entry.keyframes),
            groups={g: np.asarray(idx) for g, idx in entry.groups.items() if idx is not None and len(idx)},
            sample_seed=int(entry.sample_seed)))
    req = state.requested
    view = {"projection": req.method, "dim_x": req.dim_x, "dim_y": req.dim_y, "colour_by": state.colour_by}
    current = saved.index(state.current) if state.current in saved else -1
    return Session(models=states, current=current, view=view)


def view_choice(session: Session) -> tuple[ProjectionChoice, str]:
    """The projection and colouring a session was saved with (unknown values fall back to the defaults)."""
    view = session.view if isinstance(session.view, dict) else {}
    method = view.get("projection")
    if method not in ("pca", "tsne", "umap", "dims"):
        method = "pca"

    def dim(key: str, default: int) -> int:
        value = view.get(key, default)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000 \
            else default

    colour = view.get("colour_by")
    return ProjectionChoice(method, dim("dim_x", 0), dim("dim_y", 1)), colour if isinstance(colour, str) else "label"


def apply_model_state(state: ExplorerState, entry: OpenModel, saved: ModelState) -> list[str]:
    """Put a saved model state on an open model (its data must be in); returns what had to be skipped."""
    from ..latent.arithmetic import NamedVectors

    skipped: list[str] = []
    dim = entry.latent_dim
    if saved.identity and entry.identity and saved.identity != entry.identity:
        skipped.append(f"{entry.name} has changed since the session was saved: its images will differ")
    if saved.vectors:
        good = {k: v for k, v in saved.vectors.items() if np.shape(v) == (dim,)}
        if len(good) < len(saved.vectors):
            skipped.append(f"{len(saved.vectors) - len(good)} vector(s) of the wrong size")
        entry.vectors = NamedVectors(dim, good)
        for name, info in saved.vector_info.items():
            if name in entry.vectors and isinstance(info, dict):
                entry.vectors.info[name] = info
        state.vectors_edited(entry)
    frames = [(label, z) for label, z in saved.keyframes if np.shape(z) == (dim,)]
    state.set_keyframes(entry, frames)
    n = len(entry.data) if entry.data is not None else 0
    for group, idx in (saved.groups or {}).items():
        idx = np.asarray(idx, np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            skipped.append(f"group {group} refers to points this data set does not have")
            continue
        state.set_groups(entry, str(group), idx)
    state.set_sample_seed(entry, saved.sample_seed)
    if 0 <= saved.selected < n:
        state.select(entry, saved.selected)
    if saved.cursor is not None and np.shape(saved.cursor) == (dim,):
        state.set_cursor(entry, saved.cursor, "restore")
    return skipped


__all__ = ["apply_model_state", "to_session", "view_choice"]
