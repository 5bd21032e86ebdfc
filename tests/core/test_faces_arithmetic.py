"""Known answers from the procedural faces and the bundled faces demo VAE.

The faces generator draws every face from its attributes plus an identity, so the truth is known: an attribute
vector added to faces without the attribute must make it appear in the *decoded images*. A detector that never
looks at latents (logistic regression on the pixels of the attribute's region, trained on the model's
reconstructions of labelled training faces) judges the edited images, and the generator renders the same
person with and without the attribute for the ground-truth direction of change.

The smile is drawn where a real one shows (a wider, deeper mouth curve, flushed cheeks, narrowed eyes): a
~2 px lift of thin mouth corners alone, as the generator once drew it, was invisible to a linear pixel
classifier (~65 %) and to the CPU-trained demo VAE, whose smiling vector was then noise.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.core.latent.arithmetic import AttributeProbes, analogy, apply_vector, dataset_vectors
from explorer.core.latent.encoding import encode_dataset

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "faces-vae.safetensors"
pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="the faces demo checkpoint is not built")
COUNT = 2400  # 2000 training faces (vectors, detectors), 400 held-out faces (the checks)
# Where each attribute shows: the generator's own part boxes (the smile shows at the mouth, the cheeks and
# the eyes: the box from the eyes' top to the mouth's bottom).
REGIONS = {"mouth_open": ("mouth",), "glasses": ("glasses",), "smiling": ("eyes", "mouth")}
ATTRS = sorted(REGIONS)


def _decode(model, z):
    with torch.no_grad():
        return model.decode(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))).numpy()


def _crop(images, attr):
    from explorer.core.data.faces import face_region

    boxes = [face_region(name, images.shape[-1]) for name in REGIONS[attr]]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    return images[..., y0:y1, x0:x1].reshape(len(images), -1)


@pytest.fixture(scope="module")
def faces():
    from sklearn.linear_model import LogisticRegression

    from explorer.core import checkpoint
    from explorer.core.data.faces import make_faces

    model = checkpoint.load(DEMO)
    assert model.family == "vae" and model.image_shape[0] == 3
    data = make_faces(COUNT, seed=0, size=model.image_shape[1])
    z = encode_dataset(model, data.images)
    train = np.arange(data.n_train)
    recon = _decode(model, z)
    detectors = {}
    for attr in ATTRS:
        y = data.attributes[train, data.attribute_names.index(attr)]
        detectors[attr] = LogisticRegression(C=0.1, max_iter=3000).fit(_crop(recon[train], attr), y)
    return {"model": model, "data": data, "z": z, "vecs": dataset_vectors(z[train], data.subset(train)),
            "detectors": detectors, "train": train, "test": np.arange(data.n_train, len(data)), "recon": recon}


def _has(f, attr, rows=None):
    a = f["data"].attributes[:, f["data"].attribute_names.index(attr)]
    return a if rows is None else a[rows]


def _rate(f, attr, images):
    return float(f["detectors"][attr].predict(_crop(images, attr)).mean())


@pytest.mark.parametrize("attr", ATTRS)
def test_the_detector_itself_works(faces, attr):
    # Without this the checks below would prove nothing: the detector must see the attribute in decoded images.
    f = faces
    acc = f["detectors"][attr].score(_crop(f["recon"][f["test"]], attr), _has(f, attr, f["test"]))
    assert acc > 0.85, acc


@pytest.mark.parametrize("attr", ATTRS)
def test_adding_the_vector_makes_the_attribute_appear(faces, attr):
    f = faces
    without = f["test"][_has(f, attr, f["test"]) == 0]
    assert len(without) > 150
    v = f["vecs"][attr]
    assert v.separation > 1.0  # the latent space encodes the attribute at all
    before = _rate(f, attr, _decode(f["model"], f["z"][without]))
    after = _rate(f, attr, _decode(f["model"], apply_vector(f["z"][without], v.vector, 1.0)))
    assert before < 0.25, before
    assert after > 0.75, after
    # and the reverse: subtracting it takes the attribute away
    with_ = f["test"][_has(f, attr, f["test"]) == 1]
    removed = _rate(f, attr, _decode(f["model"], apply_vector(f["z"][with_], v.vector, -1.0)))
    assert removed < 0.35, removed


@pytest.mark.parametrize("attr", ATTRS)
def test_decoded_change_points_the_way_of_the_true_change(faces, attr):
    """Ground truth: the generator renders the same person with the attribute 0 and 1."""
    from explorer.core.data.faces import render_faces

    f = faces
    rows = f["test"][_has(f, attr, f["test"]) == 0][:100]
    attrs = f["data"].attributes[rows].copy()
    attrs[:, f["data"].attribute_names.index(attr)] = 1.0
    truth = render_faces(attrs, 0, identity=rows, size=f["model"].image_shape[1]).astype(np.float32) / 255
    real = f["data"].images[rows].astype(np.float32) / 255
    z = f["z"][rows]
    change = _decode(f["model"], apply_vector(z, f["vecs"][attr].vector, 1.0)) - _decode(f["model"], z)
    a, b = _crop(change, attr), _crop(truth - real, attr)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    corr = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert np.mean(corr > 0.2) > 0.85, np.mean(corr > 0.2)


@pytest.mark.parametrize("attr", ATTRS)
def test_analogy_with_a_generated_pair(faces, attr):
    """A : B :: C : D, with A and B the same person without and with the attribute (drawn by the generator)."""
    from explorer.core.data.faces import render_faces

    f = faces
    without = f["test"][_has(f, attr, f["test"]) == 0]
    people, others = without[:40], without[40:120]
    attrs = f["data"].attributes[people].copy()
    attrs[:, f["data"].attribute_names.index(attr)] = 1.0
    zb = encode_dataset(f["model"], render_faces(attrs, 0, identity=people, size=f["model"].image_shape[1]))
    za = f["z"][people]
    # One pair per face: D = C + (B - A), pairing each other face with one person.
    d = analogy(za[np.arange(80) % 40], zb[np.arange(80) % 40], f["z"][others])
    assert _rate(f, attr, _decode(f["model"], d)) > 0.7
    # The mean over the pairs is the usual, less noisy analogy vector.
    d_mean = f["z"][others] + (zb - za).mean(0)
    assert _rate(f, attr, _decode(f["model"], d_mean)) > 0.8


def test_probes_see_the_target_change_and_little_else(faces):
    f = faces
    train = f["train"]
    probes = AttributeProbes.fit(f["z"][train], f["data"].attributes[train], f["data"].attribute_names)
    for attr in ATTRS:
        without = f["test"][_has(f, attr, f["test"]) == 0]
        z = f["z"][without]
        report = probes.entanglement(z, apply_vector(z, f["vecs"][attr].vector, 1.0), target=attr)
        assert report["target"]["flipped"] > 0.8, (attr, report["target"])
        # the generator draws the attributes independently: the bias-corrected vector leaves the others alone
        for row in report["all"]:
            if row["name"] != attr and row["probe_score"] > 0.8:
                assert abs(row["change_sd"]) < 0.3, (attr, row)
