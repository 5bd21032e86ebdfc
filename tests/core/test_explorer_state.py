"""The explorer state without Qt: what is shown always exists, events say what changed, sessions round-trip."""

import gc
import subprocess
import sys

import numpy as np
import pytest
import torch

from explorer.core import save_model
from explorer.core.explore import (Event, ExplorerState, OpenModel, ProjectionChoice, apply_model_state,
                                   to_session, view_choice)
from explorer.core.latent.arithmetic import NamedVectors
from explorer.core.latent.encoding import encode_dataset
from explorer.core.latent.projection import make_projection
from explorer.core.models import build_model
from explorer.core.session import Session


@pytest.fixture
def entry(tmp_path, digits):
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4, image_shape=(1, 8, 8), hidden=(16,))
    path = save_model(model, tmp_path / "m.safetensors", dataset="digits")
    e = OpenModel(path=str(path), model=model, meta={"dataset": "digits"}, identity="abc")
    return e


def _with_data(state, entry, digits):
    state.set_data(entry, digits, encode_dataset(entry.model, digits.images))
    proj = make_projection("pca")
    state.add_projection(entry, "pca", proj, proj.fit(entry.latents))


def test_the_active_projection_always_exists(entry, digits):
    state = ExplorerState()
    seen = []
    state.mapChanged.connect(lambda e: seen.append(e.active))
    state.add_model(entry)
    _with_data(state, entry, digits)
    assert entry.active == "pca" and seen[-1] == "pca"
    state.request_projection(ProjectionChoice("tsne"))
    assert state.requested.key == "tsne" and entry.active == "pca"  # asked for, not there: PCA stays shown
    assert entry.projection is entry.projections["pca"]
    state.cancel_request()  # a cancel turns the request back to what is shown
    assert state.requested.key == "pca"
    state.request_projection(ProjectionChoice("dims", 1, 2))
    proj = make_projection("dims", i=1, j=2)
    state.add_projection(entry, "dims:1:2", proj, proj.fit(entry.latents))
    assert entry.active == "dims:1:2"
    np.testing.assert_array_equal(entry.positions, entry.latents[:, [1, 2]])
    with pytest.raises(KeyError):
        state.activate(entry, "umap")


def test_an_open_file_is_not_opened_twice(entry):
    state = ExplorerState()
    first = state.add_model(entry)
    again = state.add_model(OpenModel(path=entry.path, model=entry.model, meta={}))
    assert again is first and len(state.models) == 1
    trained = OpenModel(path=entry.path, model=entry.model, meta={}, run_id="r1")  # a training run is its own
    state.add_model(trained, make_current=False)
    assert len(state.models) == 2 and state.current is first


def test_cursor_selection_and_removal_events(entry, digits):
    state = ExplorerState()
    state.add_model(entry)
    _with_data(state, entry, digits)
    events = []
    state.cursorChanged.connect(lambda e, z, src: events.append(("cursor", src, z.copy())))
    state.selectionChanged.connect(lambda e, i: events.append(("select", i)))
    state.select(entry, 12)
    state.set_cursor(entry, entry.latents[12], "select")
    assert events[0] == ("select", 12) and events[1][1] == "select"
    np.testing.assert_array_equal(events[1][2], entry.latents[12])
    state.select(entry, 10 ** 9)  # out of range: nothing selected
    assert entry.selected == -1
    with pytest.raises(ValueError, match="4-d"):
        state.set_cursor(entry, np.zeros(5), "tool")
    state.remove_model(entry)
    assert state.current is None and not state.models


def test_session_round_trip_without_qt(tmp_path, entry, digits):
    state = ExplorerState()
    state.add_model(entry)
    _with_data(state, entry, digits)
    entry.vectors = NamedVectors(4, {"up": np.array([1, 0, 0, 0], np.float32)})
    state.set_keyframes(entry, [("p5", entry.latents[5]), ("p6", entry.latents[6])])
    state.set_groups(entry, "A", np.arange(10))
    state.select(entry, 42)
    state.set_cursor(entry, entry.latents[42] + 0.5, "tool")
    state.set_sample_seed(entry, 7)
    state.request_projection(ProjectionChoice("dims", 1, 3))
    state.set_colour_by("label")
    path = tmp_path / "s.lexsession"
    to_session(state).save(path)

    loaded = Session.load(path)
    fresh = ExplorerState()
    choice, colour = view_choice(loaded)
    assert choice == ProjectionChoice("dims", 1, 3) and colour == "label"
    other = OpenModel(path=entry.path, model=entry.model, meta={"dataset": "digits"}, identity="abc")
    fresh.add_model(other)
    fresh.set_data(other, digits, entry.latents)
    notes = apply_model_state(fresh, other, loaded.models[0])
    assert notes == []
    np.testing.assert_array_equal(other.cursor_latent, entry.cursor_latent)
    assert other.selected == 42 and other.sample_seed == 7
    assert [k for k, _ in other.keyframes] == ["p5", "p6"]
    np.testing.assert_array_equal(other.groups["A"], np.arange(10))
    np.testing.assert_array_equal(other.vectors["up"], [1, 0, 0, 0])


def test_restore_skips_what_does_not_fit(tmp_path, entry, digits):
    state = ExplorerState()
    state.add_model(entry)
    state.set_data(entry, digits, encode_dataset(entry.model, digits.images))
    from explorer.core.session import ModelState

    saved = ModelState(path=entry.path, identity="changed", cursor=np.zeros(7, np.float32), selected=10 ** 6,
                       groups={"A": np.array([0, 10 ** 7])}, vectors={"bad": np.zeros(3, np.float32)})
    notes = apply_model_state(state, entry, saved)
    assert any("changed since" in n for n in notes) and any("wrong size" in n for n in notes)
    assert any("group A" in n for n in notes)
    assert entry.cursor_latent is None and entry.selected == -1 and "A" not in entry.groups


def test_events_do_not_keep_views_alive():
    class View:
        def __init__(self):
            self.calls = 0

        def on(self, *_):
            self.calls += 1

    event = Event("x")
    view = View()
    event.connect(view.on)
    event.emit(1)
    assert view.calls == 1 and len(event) == 1
    del view
    gc.collect()
    event.emit(2)  # the freed view is dropped, not called
    assert len(event) == 0


def test_the_explorer_state_imports_no_qt():
    code = "import sys, explorer.core.explore; assert 'PySide6' not in sys.modules and 'pyqtgraph' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
