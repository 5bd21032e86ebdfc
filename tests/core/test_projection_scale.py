"""Projections that keep up: t-SNE streams partial maps, bars move through silent phases, time estimates,
and the parametric map (an exact method on a sample, a network for all points)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from explorer.core.latent import Cancelled, Projection, make_projection
from explorer.core.latent.projection import (
    ESTIMATE_FROM,
    ParametricProjection,
    describe_estimate,
    estimate_seconds,
    suggest_parametric,
)
from explorer.core.latent.projection.base import _Reporter


def blobs(n: int = 1200, d: int = 6, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8.0, size=(k, d))
    labels = np.arange(n) % k
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def test_tsne_streams_partial_maps_while_it_optimises():
    z, _ = blobs(400)
    frames: list[np.ndarray] = []
    proj = make_projection("tsne", n_iter=80, early_exaggeration_iter=40, callbacks_every=5, inverse_steps=50)
    rep_interval = 0.0  # every callback may preview: the test machine is fast for 400 points

    def preview(emb: np.ndarray) -> None:
        frames.append(emb)

    import explorer.core.latent.projection.base as base

    original = base._Reporter.__init__

    def fast(self, *a, **k):
        original(self, *a, **k)
        self._preview_interval = rep_interval

    base._Reporter.__init__ = fast
    try:
        final = proj.fit(z, preview=preview)
    finally:
        base._Reporter.__init__ = original
    assert len(frames) >= 5
    assert all(f.shape == (400, 2) and f.dtype == np.float32 for f in frames)
    # The frames are snapshots (copies), and they converge on the final map.
    assert not np.array_equal(frames[0], frames[-1])
    dist = [float(np.abs(f - final).mean()) for f in frames]
    assert dist[-1] < dist[0]


def test_progress_creeps_through_a_phase_that_cannot_report():
    seen: list[tuple[float, str]] = []
    rep = _Reporter(lambda f, m: seen.append((f, m)), None)
    rep.creep(0.1, 0.5, seconds=0.5, message="finding neighbours")
    time.sleep(1.2)
    rep(0.5, "layout")
    n_at_end = len(seen)
    time.sleep(0.4)
    assert len(seen) == n_at_end  # the creep stopped with the first real report
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    creeping = [f for f, m in seen if m == "finding neighbours"]
    assert len(creeping) >= 3 and 0.1 < creeping[-1] < 0.5  # it moved, and never claimed the phase was done


def test_parametric_map_places_all_points_like_its_sample():
    z, labels = blobs(3000)
    proj = make_projection("parametric", base="umap", sample=600, steps=800, max_seconds=10,
                           base_options={"n_epochs": 60, "n_neighbors": 10}, inverse_steps=200)
    assert isinstance(proj, ParametricProjection)
    seen: list[float] = []
    xy = proj.fit(z, progress=lambda f, m: seen.append(f))
    assert xy.shape == (3000, 2) and np.isfinite(xy).all() and seen[-1] == 1.0
    assert proj.info["sample"] == 600 and proj.info["parametric_error"] < 0.3
    # The clusters stay apart for the points the network placed (not in the sample) too.
    _, idx = proj.nearest(xy + 1e-4, k=6)
    assert np.mean(labels[idx[:, 1:]] == labels[:, None]) > 0.95
    # transform is the network: exact for the data, instant for new points, kept through a cache restore.
    np.testing.assert_allclose(proj.transform(z[:50]), xy[:50], atol=1e-5)
    back = Projection.from_state(proj.state_dict())
    np.testing.assert_allclose(back.transform(z[:50]), xy[:50], atol=1e-5)
    np.testing.assert_allclose(back.locate(z[:5]), xy[:5], atol=1e-5)
    assert proj.fit_inverse() < 1.0
    with pytest.raises(ValueError, match="base must be"):
        make_projection("parametric", base="isomap")


def test_parametric_map_cancels():
    z, _ = blobs(800)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        make_projection("parametric", base="pca", sample=200).fit(z, cancel=cancel)


def test_time_estimates_grow_with_size_and_offer_the_parametric_map():
    small, big = estimate_seconds("tsne", 70_000), estimate_seconds("tsne", 1_000_000)
    assert 30 < small < 300 and big > 10 * small
    assert estimate_seconds("umap", 70_000, umap_warm=False) > estimate_seconds("umap", 70_000) + 30
    assert estimate_seconds("tsne", 70_000, cores=4) < small
    assert not suggest_parametric("umap", 70_000) and suggest_parametric("tsne", 1_000_000)
    assert not suggest_parametric("pca", 10_000_000)
    assert estimate_seconds("parametric", 1_000_000, {"base": "tsne"}) < big / 10
    text = describe_estimate("tsne", 1_000_000)
    assert "1,000,000 points" in text and "min" in text and "parametric" in text
    assert "parametric" not in describe_estimate("umap", 70_000)
    assert ESTIMATE_FROM == 200_000
    with pytest.raises(ValueError, match="no time estimate"):
        estimate_seconds("isomap", 10)
