"""Search, nearest neighbours in latent space and colouring by a number: the projector's conveniences."""

import threading

import numpy as np
import pytest
import torch

from explorer.core.latent.colouring import (VIRIDIS, attribute_values, colour_values, posterior_spread,
                                            reconstruction_errors)
from explorer.core.latent.neighbours import nearest_neighbours
from explorer.core.latent.search import SearchError, search
from explorer.core.models.base import CapabilityError
from explorer.core.progress import Cancelled

LABELS = np.array([0, 1, 1, 0, 2, 2, 1])
NAMES_L = ["neutral", "smiling", "7"]
ATTRS = np.array([[0.1], [0.9], [0.5], [0.7], [0.2], [0.95], [0.6]])


def s(q, **kw):
    return search(q, 7, labels=LABELS, label_names=NAMES_L, attributes=ATTRS, attribute_names=["eye_size"],
                  names=[None] * 5 + ["cat.png", "my dog.jpg"], **kw).indices.tolist()


def test_search_by_label_index_attribute_and_name():
    assert s("label:smiling") == [1, 2, 6]
    assert s("SMILING") == [1, 2, 6]  # a bare word is a label name first
    assert s("label:0") == [0, 3]  # by number
    assert s("7") == [4, 5]  # "7" is a label name here, so it means the label, not the index
    assert s("#3") == [3] and s("#2-4") == [2, 3, 4]
    assert s("eye_size>0.6") == [1, 3, 5] and s("eye_size<=0.2") == [0, 4]
    assert s("name:CAT") == [5] and s("dog") == [6]
    assert s("label:smiling eye_size>0.55") == [1, 6]  # terms are ANDed
    assert s("") == [] and s("#100") == []
    # without label names a bare number is an index
    assert search("3", 5).indices.tolist() == [3]
    assert "label smiling" in search("label:smiling", 7, labels=LABELS, label_names=NAMES_L).description


@pytest.mark.parametrize("query,needle", [("nose>1", "unknown attribute"), ("label:happy", "no label"),
                                           ("eye_size>big", "not a number"), ("#5-2", "before"),
                                           ("zebra", "matches no"), ("x" * 2000, "too long")])
def test_search_refuses_what_it_cannot_read(query, needle):
    with pytest.raises(SearchError, match=needle):
        s(query)


def test_nearest_neighbours_known_answer():
    z = np.array([[0, 0], [1, 0], [0, 2], [3, 0], [0.5, 0]], np.float32)
    idx, d = nearest_neighbours(z, 0, k=3)
    assert idx.tolist() == [4, 1, 2] and np.allclose(d, [0.5, 1, 2])
    idx, d = nearest_neighbours(z, 0, k=2, exclude_self=False)
    assert idx.tolist() == [0, 4] and d[0] == 0
    idx, d = nearest_neighbours(z, np.array([2.9, 0.1]), k=1)
    assert idx.tolist() == [3]
    idx, d = nearest_neighbours(z, 1, k=10)  # more than there are: all the others
    assert sorted(idx.tolist()) == [0, 2, 3, 4]
    idx, d = nearest_neighbours(z, np.array([0.0, 1.0]), k=2, metric="cosine")
    assert idx.tolist()[0] == 2 and d[0] == pytest.approx(0)
    with pytest.raises(ValueError, match="dimensions"):
        nearest_neighbours(z, np.zeros(3))
    with pytest.raises(ValueError, match="out of range"):
        nearest_neighbours(z, 9)


def test_nearest_neighbours_agree_with_sklearn():
    from sklearn.neighbors import NearestNeighbors

    z = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    idx, d = nearest_neighbours(z, 42, k=10)
    ref_d, ref_i = NearestNeighbors(n_neighbors=11).fit(z).kneighbors(z[42:43])
    assert idx.tolist() == ref_i[0, 1:].tolist() and np.allclose(d, ref_d[0, 1:], atol=1e-4)


def test_colour_values_ramp_range_and_bar():
    v = np.array([0.0, 0.5, 1.0, np.nan])
    c, bar = colour_values(v, title="eye size", robust=False)
    assert c.shape == (4, 3) and c.dtype == np.uint8
    assert c[0].tolist() == VIRIDIS[0].tolist() and c[2].tolist() == VIRIDIS[-1].tolist()
    assert c[3].tolist() == [160, 160, 160]
    assert (bar.vmin, bar.vmax) == (0.0, 1.0) and bar.gradient.shape == (256, 3) and len(bar.ticks) == 5
    # robust range: one huge outlier does not squash the rest
    errs = np.concatenate([np.linspace(0, 1, 200), [1000.0]])
    c, bar = colour_values(errs)
    assert bar.vmax < 2 and len({tuple(x) for x in c[:200]}) > 50
    with pytest.raises(ValueError, match="range"):
        colour_values(v, vmin=2, vmax=1)
    assert attribute_values(ATTRS, ["eye_size"], "Eye_Size").tolist() == ATTRS[:, 0].astype(np.float32).tolist()
    with pytest.raises(ValueError, match="known: eye_size"):
        attribute_values(ATTRS, ["eye_size"], "nose")


@pytest.fixture(scope="module")
def digits():
    from explorer.core.data.digits import load_digits_data

    return load_digits_data()


def test_reconstruction_error_known_answer_from_pca(digits):
    from explorer.core.models.pca import PCA, PCAConfig

    model = PCA(PCAConfig(latent_dim=8, image_shape=tuple(digits.images.shape[1:])))
    x = torch.from_numpy(digits.images).float() / 255
    model.fit(x)
    err = reconstruction_errors(model, digits.images[:300], batch_size=64)
    with torch.no_grad():
        ref = (model.reconstruct(x[:300]) - x[:300]).square().flatten(1).mean(1).numpy()
    np.testing.assert_allclose(err, ref, rtol=1e-5, atol=1e-7)
    full = PCA(PCAConfig(latent_dim=64, image_shape=model.image_shape))
    full.fit(x)
    assert reconstruction_errors(full, digits.images[:300]).max() < 1e-6  # all components: exact
    with pytest.raises(CapabilityError):
        posterior_spread(model, digits.images[:4])


def test_posterior_spread_is_the_encoders_sigma(digits):
    from explorer.core.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=4, image_shape=tuple(digits.images.shape[1:]), hidden=(32,)))
    x = torch.from_numpy(digits.images[:50]).float() / 255
    with torch.no_grad():
        _, logvar = model.encode_dist(x)
    ref = torch.exp(0.5 * logvar).mean(1).numpy()
    np.testing.assert_allclose(posterior_spread(model, digits.images[:50], batch_size=7), ref, rtol=1e-5)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        posterior_spread(model, digits.images[:50], cancel=stop)
