"""Exact neighbours by blocks (the t-SNE index): the same answer as scikit-learn's exact search."""

import threading

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from explorer.core.latent.projection import knn
from explorer.core.progress import Cancelled


def test_exact_knn_matches_sklearn_on_the_data_and_new_points(monkeypatch):
    monkeypatch.setattr(knn, "BLOCK", 97)  # several blocks, the last one short
    rng = np.random.default_rng(0)
    data = rng.normal(size=(600, 7)).astype(np.float32)
    seen = []
    idx, dist = knn.exact_knn(data, 12, progress=seen.append)
    ref_d, ref_i = NearestNeighbors(n_neighbors=12).fit(data).kneighbors()
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, atol=1e-4)
    assert not (idx == np.arange(600)[:, None]).any()  # a point is never its own neighbour
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) == 7
    new = rng.normal(size=(50, 7)).astype(np.float32)
    qi, qd = knn.exact_knn(data, 5, new)
    ref_d, ref_i = NearestNeighbors(n_neighbors=5).fit(data).kneighbors(new)
    np.testing.assert_array_equal(qi, ref_i)
    np.testing.assert_allclose(qd, ref_d, atol=1e-4)
    # openTSNE's index interface: build on the data, query new points
    index = knn.opentsne_index(data, 12)
    bi, _ = index.build()
    np.testing.assert_array_equal(bi, idx)
    np.testing.assert_array_equal(index.query(new, 5)[0], qi)


def test_exact_knn_refuses_bad_k_and_stops_when_cancelled():
    data = np.zeros((10, 2), np.float32)
    for k in (0, 10):
        with pytest.raises(ValueError, match="k must be between 1 and 9"):
            knn.exact_knn(data, k)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        knn.exact_knn(data, 3, cancel=cancel)
