"""Vector arithmetic on synthetic latents with known answers (fast, no model)."""

import numpy as np
import pytest

from explorer.core.data.base import ImageData
from explorer.core.latent.arithmetic import (
    AttributeProbes,
    NamedVectors,
    VectorError,
    analogy,
    apply_vector,
    attribute_vectors,
    dataset_vectors,
    group_vector,
    identifier,
    label_vectors,
)

D = 12


def _unit(i):
    v = np.zeros(D)
    v[i] = 1.0
    return v


@pytest.fixture(scope="module")
def correlated():
    """z = 2*a0*e0 + 3*a1*e1 + 1.5*(c - mean)*e2 + noise, with a1 strongly correlated with a0."""
    rng = np.random.default_rng(0)
    n = 4000
    a0 = (rng.random(n) < 0.5).astype(float)
    a1 = np.where(rng.random(n) < 0.8, a0, 1 - a0)  # agrees with a0 80% of the time
    c = rng.random(n)
    z = (2 * a0[:, None] * _unit(0) + 3 * a1[:, None] * _unit(1) + 1.5 * (c - 0.5)[:, None] * _unit(2)
         + 0.3 * rng.standard_normal((n, D)))
    attrs = np.stack([a0, a1, c], axis=1).astype(np.float32)
    return z.astype(np.float32), attrs, ["Smiling", "Mouth-Open", "5_o_Clock"]


def test_regression_removes_the_correlated_attribute(correlated):
    z, attrs, names = correlated
    plain = attribute_vectors(z, attrs, names, method="mean_difference")
    fixed = attribute_vectors(z, attrs, names, method="regression")
    assert list(fixed) == ["Smiling", "Mouth_Open", "v_5_o_Clock"]
    assert fixed["Mouth_Open"].source == "Mouth-Open" and fixed["Smiling"].kind == "binary"
    # The plain difference of "Smiling" also carries 0.6 * 3 of "Mouth-Open" (E[a1|a0=1] - E[a1|a0=0] = 0.6).
    assert plain["Smiling"].vector[1] == pytest.approx(1.8, abs=0.15)
    # The bias-corrected one is the true 0 -> 1 effect, 2 * e0, and nothing else.
    assert np.allclose(fixed["Smiling"].vector, 2 * _unit(0), atol=0.06)
    assert np.allclose(fixed["Mouth_Open"].vector, 3 * _unit(1), atol=0.06)


def test_continuous_attribute_is_scaled_to_two_standard_deviations(correlated):
    z, attrs, names = correlated
    sd = attrs[:, 2].std()
    for method in ("regression", "mean_difference"):
        v = attribute_vectors(z, attrs, names, method=method)["v_5_o_Clock"]
        assert v.kind == "continuous"
        assert v.vector[2] == pytest.approx(1.5 * 2 * sd, rel=0.08), method
        assert abs(v.vector[0]) < 0.1


def test_separation_tells_encoded_from_unencoded():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2000, D))
    real = (rng.random(2000) < 0.5).astype(float)
    noise = (rng.random(2000) < 0.5).astype(float)
    z[:, 3] += 3 * real
    vecs = attribute_vectors(z, np.stack([real, noise], 1), ["real", "noise"])
    assert vecs["real"].separation > 2.5 and abs(vecs["noise"].separation) < 0.5


def test_label_and_dataset_vectors():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 900)
    centres = rng.standard_normal((3, D)) * 4
    z = centres[labels] + 0.1 * rng.standard_normal((900, D))
    vecs = label_vectors(z, labels, ["T-shirt/top", "3", "bag"])
    assert list(vecs) == ["label_T_shirt_top", "label_3", "label_bag"]
    expected = centres[0] - z[labels != 0].mean(0)
    assert np.allclose(vecs["label_T_shirt_top"].vector, expected, atol=0.05)
    data = ImageData(name="toy", images=np.zeros((900, 1, 2, 2), np.uint8), labels=labels.astype(np.int64),
                     label_names=["a", "b", "c"], n_train=800)
    assert list(dataset_vectors(z, data)) == ["label_a", "label_b", "label_c"]
    with pytest.raises(VectorError, match="900 images"):
        dataset_vectors(z[:10], data)


def test_group_vector_apply_and_analogy():
    z = np.arange(40, dtype=np.float32).reshape(10, 4)
    g = group_vector(z, [0, 1], [8, 9], name="up")
    assert np.allclose(g.vector, z[[0, 1]].mean(0) - z[[8, 9]].mean(0)) and g.kind == "group"
    with pytest.raises(VectorError, match="empty"):
        group_vector(z, [], [1])
    with pytest.raises(VectorError, match="outside the 10 points"):
        group_vector(z, [1], [10])
    with pytest.raises(VectorError, match="same points"):
        group_vector(z, [1, 2], [2, 1])
    with pytest.raises(VectorError, match="reserved"):
        group_vector(z, [1], [2], name="p3")
    assert np.allclose(apply_vector(z[0], g.vector, 0.5), z[0] + 0.5 * g.vector)
    sweep = apply_vector(z[:3], g.vector, np.linspace(-3, 3, 7))
    assert sweep.shape == (3, 7, 4) and np.allclose(sweep[2, 6], z[2] + 3 * g.vector)
    assert np.allclose(analogy(z[0], z[1], z[5]), z[5] + z[1] - z[0])
    with pytest.raises(VectorError, match="one size"):
        analogy(z[0], z[1], np.zeros(5))


def test_identifiers():
    assert identifier("T-shirt/top") == "T_shirt_top"
    assert identifier("5_o_Clock_Shadow") == "v_5_o_Clock_Shadow"
    assert identifier("p12") == "v_p12" and identifier("lambda") == "v_lambda"
    assert identifier("__class__") == "v_class"  # 'class' is a keyword
    assert identifier("") == "v_"


def test_probes_report_entanglement(correlated):
    z, attrs, names = correlated
    probes = AttributeProbes.fit(z, attrs, names)
    assert probes.kinds == ["binary", "binary", "continuous"]
    assert min(probes.scores[:2]) > 0.95 and probes.scores[2] > 0.6  # accuracy, accuracy, R^2 (noise caps it at ~0.68)
    neutral = z[attrs[:, 0] == 0][:200]
    # Moving along e1 ("Mouth-Open") only: the probes must see Mouth-Open change and Smiling stay.
    moved = probes.entanglement(neutral, neutral + 3 * _unit(1), target="Mouth-Open")
    assert moved["target"]["change_sd"] > 0.5
    assert [r["name"] for r in moved["entangled"]] == []
    # The plain (biased) Smiling vector drags Mouth-Open along: the entanglement report must say so.
    plain = attribute_vectors(z, attrs, names, method="mean_difference")["Smiling"].vector
    report = probes.entanglement(neutral, neutral + plain, target="Smiling")
    assert report["target"]["flipped"] > 0.8
    assert "Mouth-Open" in [r["name"] for r in report["entangled"]]
    with pytest.raises(VectorError, match="fitted on 12-d"):
        probes.predict(np.zeros((1, 3)))


def test_named_vectors_round_trip(tmp_path, correlated):
    z, attrs, names = correlated
    store = NamedVectors(D, source={"model": "toy.safetensors"})
    store.update_from(attribute_vectors(z, attrs, names))
    store["custom"] = np.ones(D)
    path = store.save(tmp_path / "vectors.safetensors")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the atomic write cleaned up
    back = NamedVectors.load(path, latent_dim=D)
    assert list(back) == list(store) and back.source == {"model": "toy.safetensors"}
    for k in store:
        assert np.array_equal(back[k], store[k])
    assert back.info["Smiling"]["kind"] == "binary" and back.info["Smiling"]["source"] == "Smiling"
    with pytest.raises(VectorError, match="vectors are 12-d but the model's latent space is 16-d"):
        NamedVectors.load(path, latent_dim=16)
    with pytest.raises(VectorError, match="has shape"):
        store["short"] = np.ones(D - 1)
    for bad in ("p1", "a.b", "__x", "1abc", "class"):
        with pytest.raises(VectorError):
            store[bad] = np.ones(D)
    with pytest.raises(VectorError, match="NaN"):
        store["bad"] = np.full(D, np.nan)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file at all")
    with pytest.raises(VectorError, match="not a valid"):
        NamedVectors.load(tmp_path / "junk.safetensors")
    with pytest.raises(VectorError, match="not found"):
        NamedVectors.load(tmp_path / "missing.safetensors")


def test_named_vectors_feed_expressions(correlated):
    from explorer.core.latent.expression import evaluate

    z, attrs, names = correlated
    store = NamedVectors(D)
    store.update_from(attribute_vectors(z, attrs, names))
    got = evaluate("p0 + Smiling - 0.5*mouth_open", store, z)
    assert np.allclose(got, z[0] + store["Smiling"] - 0.5 * store["Mouth_Open"], atol=1e-6)
