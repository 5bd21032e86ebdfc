"""Controllers with fake views (no widgets, no screen): intents in, state changes and results out."""

import threading
import time

import numpy as np
import pytest
import torch

from explorer.core.explore import OpenModel, ProjectionChoice
from explorer.core.latent.encoding import encode_dataset
from explorer.core.models import build_model
from explorer.gui.controllers.cursor import CursorController
from explorer.gui.controllers.explorer import ExplorerController
from explorer.gui.controllers.tasks import LatestWinsWorker


class FakeImageView:
    """Stands in for the cursor's ImagePanel: records what it was asked to show."""

    def __init__(self):
        self.shown = []
        self.cleared = 0

    def show(self, result):
        self.shown.append(result)

    def clear(self):
        self.cleared += 1


@pytest.fixture
def explorer(qapp, digits):
    ex = ExplorerController(synchronous=True, warm_up=False)
    torch.manual_seed(0)
    model = build_model("ae", latent_dim=3, image_shape=(1, 8, 8), hidden=(16,))
    entry = OpenModel(path="ae.safetensors", model=model, meta={"dataset": "digits"})
    ex.state.add_model(entry)
    ex.state.set_data(entry, digits, encode_dataset(model, digits.images))
    yield ex
    ex.shutdown()


def test_drag_intent_decodes_through_the_active_projection(explorer):
    view = FakeImageView()
    explorer.cursor.decoded.connect(view.show)
    entry = explorer.state.current
    assert entry.active == "pca"  # the projection controller fitted the requested default
    explorer.cursor.drag_to(0.5, -0.25)
    result = view.shown[-1]
    z = entry.projection.inverse(np.array([[0.5, -0.25]], np.float32))[0]
    np.testing.assert_allclose(result.request.latent, z, atol=1e-6)
    np.testing.assert_array_equal(result.image, entry.decode_uint8(z))
    assert result.request.position == (0.5, -0.25) and "map (0.50, -0.25)" in result.caption


def test_requesting_a_projection_switches_the_map_and_keeps_the_cursor_usable(explorer):
    entry = explorer.state.current
    maps = []
    explorer.state.mapChanged.connect(lambda e: maps.append(e.active))
    explorer.projections.request(ProjectionChoice("dims", 0, 2))
    assert entry.active == "dims:0:2" and maps[-1] == "dims:0:2"
    np.testing.assert_array_equal(entry.positions, entry.latents[:, [0, 2]])
    explorer.projections.request(ProjectionChoice("pca"))  # already fitted: no refit, just shown
    assert entry.active == "pca"


def test_selecting_shows_the_datum_and_moves_the_cursor(explorer):
    shown = []
    explorer.datum.shown.connect(shown.append)
    explorer.select_datum(33)
    entry = explorer.state.current
    np.testing.assert_array_equal(entry.cursor_latent, entry.latents[33])
    assert shown[-1].index == 33 and shown[-1].reconstruction is not None
    assert "#33" in shown[-1].caption


def test_switching_to_a_model_without_a_cursor_clears_the_image(explorer):
    view = FakeImageView()
    explorer.cursor.cleared.connect(view.clear)
    other = OpenModel(path="b.safetensors", model=build_model("ae", latent_dim=2, image_shape=(1, 8, 8),
                                                              hidden=(8,)), meta={})
    explorer.state.add_model(other)
    assert view.cleared == 1


def test_latest_wins_worker_drops_stale_results_on_its_thread(qapp, qtbot):
    """The threaded path: requests arriving while one is served replace each other; only the newest is shown."""
    started = threading.Event()
    served = []

    def slow(request):
        started.set()
        served.append(request)
        time.sleep(0.05)
        return request * 10

    worker = LatestWinsWorker(slow, synchronous=False)
    results = []
    worker.result.connect(lambda gen, req, out: results.append((gen, req, out)))
    try:
        worker.submit(0)
        assert started.wait(2)
        for i in range(1, 21):  # all arrive while request 0 is being served
            worker.submit(i)
        qtbot.waitUntil(lambda: bool(results) and results[-1][1] == 20, timeout=5000)
        qtbot.wait(150)
        assert [r[1] for r in results] == [20]  # 0 went stale the moment 1 arrived; 1..19 were never served
        assert served == [0, 20]
        assert results[-1] == (worker.generation, 20, 200)
    finally:
        worker.close()


def test_cursor_controller_threaded_delivers_the_newest_position(qapp, qtbot, digits):
    from explorer.core.explore import ExplorerState
    from explorer.core.latent.projection import make_projection

    state = ExplorerState()
    model = build_model("ae", latent_dim=3, image_shape=(1, 8, 8), hidden=(16,))
    entry = OpenModel(path="x", model=model, meta={})
    state.add_model(entry)
    state.set_data(entry, digits, encode_dataset(model, digits.images))
    proj = make_projection("pca")
    state.add_projection(entry, "pca", proj, proj.fit(entry.latents))
    cursor = CursorController(state, synchronous=False)
    got = []
    cursor.decoded.connect(got.append)
    try:
        for k in range(30):
            cursor.drag_to(0.01 * k, 0.0)
        qtbot.waitUntil(lambda: bool(got) and got[-1].request.position == (0.29, 0.0), timeout=5000)
        positions = [g.request.position[0] for g in got]
        assert positions == sorted(positions)  # never an older position after a newer one
    finally:
        cursor.close()
