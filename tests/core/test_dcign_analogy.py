"""DC-IGN and analogy training: controlled face batches, clamping, named units, checkpoints, analogy error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.core import checkpoint
from explorer.core.data import face_batches
from explorer.core.data.faces import ATTRIBUTE_NAMES
from explorer.core.models import build_model
from explorer.core.models.analogy import analogy_error
from explorer.core.models.dcign import DEFAULT_FACTOR_UNITS, parse_factor_units, unit_names


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_varying_batch_changes_only_its_attribute():
    x, attrs = face_batches.varying_batch("smiling", 8, 16, seed=3)
    assert x.shape == (8, 3, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1
    col = ATTRIBUTE_NAMES.index("smiling")
    others = np.delete(attrs, col, axis=1)
    assert (others == others[0]).all() and len(np.unique(attrs[:, col])) == 2
    same = attrs[:, col] == attrs[0, col]
    assert torch.equal(x[same][0], x[same][-1])  # one person: same attribute value, same image
    free, fattrs = face_batches.varying_batch(None, 8, 16, seed=3, fixed=("smiling", "glasses"), channels=1)
    assert free.shape == (8, 1, 16, 16)
    for name in ("smiling", "glasses"):
        assert len(np.unique(fattrs[:, ATTRIBUTE_NAMES.index(name)])) == 1
    assert len(np.unique(fattrs[:, ATTRIBUTE_NAMES.index("hair_colour")])) == 8


def test_analogy_quadruples_are_exact():
    """d is c after a's change to b: rendering c's person with b's value of the changed attribute gives d."""
    a, b, c, d, changed = face_batches.analogy_quadruples(6, 16, seed=1)
    assert a.shape == d.shape == (6, 3, 16, 16) and len(changed) == 6
    assert not torch.equal(a, c)
    again = face_batches.analogy_quadruples(6, 16, seed=1)
    assert all(torch.equal(p, q) for p, q in zip((a, b, c, d), again[:4]))


def test_dcign_clamps_all_but_the_factor_unit_and_names_units(tmp_path):
    torch.manual_seed(0)
    model = build_model("dcign", {"latent_dim": 6, "image_shape": [1, 16, 16], "arch": "mlp", "hidden": [32],
                                  "factor_units": {"smiling": 0, "head_turn": 3}})
    assert model.clamp_mask("smiling").tolist() == [False, True, True, True, True, True]
    assert model.clamp_mask(None).tolist() == [True, False, False, True, False, False]
    x, factor = model.draw_batch(8, step=5)
    assert x.shape == (8, 1, 16, 16) and factor in ("smiling", "head_turn", None)
    assert torch.equal(model.draw_batch(8, step=5)[0], x)  # deterministic per step
    opts = model.configure_optimizers(1e-3)
    out = model.train_step(torch.zeros(8, 1, 16, 16), opts, 0)  # the trainer's batch only sets the size
    assert {"loss", "recon", "kl", "invariance"} <= set(out)
    # Clamped units are pulled towards their batch mean: no pull once the batch shows one image only.
    batch, _ = face_batches.varying_batch("smiling", 8, 16, seed=0, channels=1)
    with torch.no_grad():
        assert float(model.dcign_loss(batch, "smiling")["invariance"]) > 0
        assert float(model.dcign_loss(batch[:1].expand(8, -1, -1, -1), "smiling")["invariance"]) < 1e-10
    assert unit_names(model) == {0: "smiling", 3: "head_turn"}
    path = tmp_path / "dcign.safetensors"
    checkpoint.save(model, path, dataset="faces")
    loaded = checkpoint.load(path)
    assert loaded.config == model.config and unit_names(loaded) == {0: "smiling", 3: "head_turn"}
    assert unit_names(build_model("vae", {"latent_dim": 2, "image_shape": [1, 8, 8]})) == {}


def test_factor_unit_errors():
    assert parse_factor_units("smiling=0, glasses=2") == {"smiling": 0, "glasses": 2}
    for bad in ("smiling", "smiling=x", "smiling=0,smiling=1", ""):
        with pytest.raises(ValueError):
            parse_factor_units(bad)
    base = {"latent_dim": 4, "image_shape": [1, 16, 16], "arch": "mlp"}
    for units, pattern in (({"smile": 0}, "unknown face attribute"), ({"smiling": 4}, "not a unit"),
                           ({"smiling": 1, "glasses": 1}, "assigned to both")):
        with pytest.raises(ValueError, match=pattern):
            build_model("dcign", {**base, "factor_units": units})
    assert len(DEFAULT_FACTOR_UNITS) == 4 and set(DEFAULT_FACTOR_UNITS) <= set(ATTRIBUTE_NAMES)


def test_analogy_training_step_and_error(tmp_path):
    torch.manual_seed(0)
    model = build_model("analogy", {"latent_dim": 4, "image_shape": [1, 16, 16], "arch": "mlp", "hidden": [32],
                                    "analogy_batch": 4})
    opts = model.configure_optimizers(1e-3)
    x = face_batches.varying_batch(None, 8, 16, seed=0, channels=1)[0]
    out = model.train_step(x, opts, 0)
    assert {"loss", "recon", "kl", "analogy"} <= set(out) and float(out["analogy"]) > 0
    err = analogy_error(model, 6, batch_size=4)
    assert err["count"] == 6 and err["analogy_mse"] > 0 and err["copy_mse"] > 0
    assert err == analogy_error(model, 6, batch_size=4)  # held-out quadruples are fixed
    path = tmp_path / "analogy.safetensors"
    checkpoint.save(model, path)
    assert checkpoint.load(path).config == model.config


def _train(model, x: torch.Tensor, steps: int, batch: int, lr: float, seed: int):
    opts = model.configure_optimizers(lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        model.train_step(x[torch.randint(len(x), (batch,), generator=gen)], opts, step)
    return model.eval()


DCIGN_UNITS = {"hair_colour": 0, "skin_tone": 1, "long_hair": 2}


def dcign_figures(seed: int, steps: int = 1500) -> dict:
    """DC-IGN and a plain VAE of the same size (16 px RGB faces, MLP 128, latent 8, ``steps`` of 64), scored on
    2000 faces of people neither saw: per assigned factor the mutual information of its own unit and of the
    best other unit, and MIG over the assigned factors and over all ten."""
    from explorer.core.compare.disentanglement import mig
    from explorer.core.data.faces import make_faces

    data = make_faces(1500, seed=0, size=16)
    x = torch.from_numpy(data.images[: data.n_train]).float() / 255
    held = make_faces(2000, seed=99, size=16)
    x_held = torch.from_numpy(held.images).float() / 255
    cols = [ATTRIBUTE_NAMES.index(n) for n in DCIGN_UNITS]
    out: dict = {}
    for family, extra in (("vae", {}), ("dcign", {"seed": seed, "factor_units": DCIGN_UNITS,
                                                  "invariance_weight": 10.0})):
        torch.manual_seed(seed)
        model = build_model(family, {"latent_dim": 8, "image_shape": [3, 16, 16], "arch": "mlp", "hidden": [128],
                                     **extra})
        _train(model, x, steps, 64, 1e-3, seed)
        with torch.no_grad():
            codes = model.encode(x_held).numpy()
        m = mig(codes, held.attributes)
        mi = np.array(m["mutual_information"])
        out[family] = {"mig": m["mig"], "mig_assigned": float(np.mean([m["mig_per_factor"][c] for c in cols])),
                       "units": {n: (float(mi[u, c]), float(np.delete(mi[:, c], u).max()), int(mi[:, c].argmax()))
                                 for (n, u), c in zip(DCIGN_UNITS.items(), cols)}}
    return out


@pytest.mark.slow
def test_dcign_assigned_units_hold_their_factors_and_beat_the_vae_on_mig():
    """Known answer: the assigned units hold their factors, far better than any other unit for hair colour, and
    DC-IGN's MIG beats the plain VAE's of the same size. Measured over seeds 0-2 (own unit vs the best other unit,
    nats; the factor's entropy is 2.30 for hair colour and skin tone, 0.69 for long hair):
    hair colour 0.87-0.95 vs 0.11-0.17, long hair 0.29-0.42 vs 0.06-0.25, skin tone 0.43-0.54 vs 0.16-0.46
    (seed 1: a free unit held 0.46; 3000 steps: 0.75 vs 0.48). MIG over the three factors: DC-IGN 0.16-0.33,
    VAE 0.06-0.10; over all ten: 0.050-0.109 vs 0.041-0.050. The test runs seed 0."""
    f = dcign_figures(0)
    units = f["dcign"]["units"]
    for name, (own, other, best) in units.items():
        assert own > 0.25, (name, f)  # each assigned unit carries its factor (min over seeds 0.29)
    for name in ("hair_colour", "long_hair"):
        assert units[name][2] == DCIGN_UNITS[name] and units[name][0] > 1.25 * units[name][1], (name, f)
    assert units["hair_colour"][0] > 3 * units["hair_colour"][1], f
    assert units["skin_tone"][0] > 0.8 * units["skin_tone"][1], f
    assert f["dcign"]["mig_assigned"] > f["vae"]["mig_assigned"] + 0.05, f
    assert f["dcign"]["mig"] > f["vae"]["mig"], f


def analogy_figures(seed: int, steps: int = 600) -> dict:
    """Held-out analogy errors of plain arithmetic in a VAE and of the analogy-trained VAE of the same size
    (8 px grey faces, latent 8, beta 0.25, ``steps`` of 32; analogy weight 10 on 16 quadruples a step)."""
    from explorer.core.data.faces import make_faces
    from explorer.core.data.transforms import transform_data

    data = transform_data(make_faces(1200, seed=0, size=8), channels=1)
    x = torch.from_numpy(data.images[: data.n_train]).float() / 255
    out = {}
    for family, extra in (("vae", {}), ("analogy", {"seed": seed, "analogy_batch": 16, "analogy_weight": 10.0})):
        torch.manual_seed(seed)
        model = build_model(family, {"latent_dim": 8, "image_shape": [1, 8, 8], "arch": "mlp", "hidden": [64],
                                     "beta": 0.25, **extra})
        out[family] = analogy_error(_train(model, x, steps, 32, 2e-3, seed), 300)
    return out


@pytest.mark.slow
def test_analogy_training_beats_plain_arithmetic_and_copying_c():
    """Known answer on held-out quadruples: the analogy-trained VAE beats plain vector arithmetic in the same VAE
    without the objective, and its applied answer (the decoded change added to c) beats answering with c
    unchanged. Measured over seeds 0-2 (per-pixel MSE on 300 quadruples): direct answer decode(f(c) + f(b) - f(a))
    plain 0.0077-0.0087, trained 0.0049-0.0052 (ratio 0.57-0.65); applied to c, plain 0.0033-0.0035, trained
    0.00263-0.00266 (ratio 0.76-0.81); copying c 0.0039 (trained applied / copy 0.68). The direct answer does not
    beat copying c at this size: it cannot beat the model's reconstruction of d. The test runs seed 0."""
    f = analogy_figures(0)
    vae, trained = f["vae"], f["analogy"]
    assert trained["analogy_mse"] < 0.8 * vae["analogy_mse"], f
    assert trained["applied_mse"] < 0.9 * vae["applied_mse"], f
    assert trained["applied_mse"] < 0.8 * trained["copy_mse"], f
