"""The VAE's bounds beside an exact likelihood; MIG and DCI with known answers; their Compare columns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.core.compare import METRIC_COLUMNS, CompareError, model_metrics
from explorer.core.compare.disentanglement import dci, importance_heatmap, mig
from explorer.core.compare.likelihood import binarized, likelihood_metrics, vae_bounds
from explorer.core.models import build_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def binary_digits(digits):
    return binarized(digits)


@pytest.fixture(scope="module")
def trained_vae(binary_digits):
    torch.manual_seed(0)
    model = build_model("vae", {"latent_dim": 4, "image_shape": [1, 8, 8], "hidden": [64]})
    x = torch.from_numpy(binary_digits.images[: binary_digits.n_train]).float() / 255
    opts = model.configure_optimizers(3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for step in range(300):
        model.train_step(x[torch.randint(len(x), (64,), generator=gen)], opts, step)
    return model.eval()


def test_iwae_bound_is_below_the_elbo_and_tightens_with_k(trained_vae, binary_digits):
    """Measured: -ELBO 21.6, IWAE k=1 21.6, k=8 20.4, k=64 20.1 nats/image (seed 0)."""
    test = binary_digits.images[binary_digits.n_train:]
    one = vae_bounds(trained_vae, test, k=1)
    assert one["nll_iwae"] == pytest.approx(one["neg_elbo"], rel=0.03)  # k = 1 is the ELBO (sampled KL)
    eight = vae_bounds(trained_vae, test, k=8)
    many = vae_bounds(trained_vae, test, k=64)
    assert many["nll_iwae"] < eight["nll_iwae"] < eight["neg_elbo"] - 0.3
    assert many["nll_iwae"] <= many["neg_elbo"]
    # The ELBO is the VAE's own test loss (one sample there, many here: same value within noise).
    assert many["neg_elbo"] == pytest.approx(trained_vae.evaluate(torch.from_numpy(test).float() / 255)["loss"],
                                             rel=0.03)


def test_bounds_need_a_posterior_and_a_sane_k(trained_vae, binary_digits):
    ae = build_model("ae", {"latent_dim": 4, "image_shape": [1, 8, 8], "hidden": [16]})
    assert likelihood_metrics(ae, binary_digits.images[:10])["nll_iwae"] is None
    with pytest.raises(CompareError, match="posterior"):
        vae_bounds(ae, binary_digits.images[:10])
    with pytest.raises(CompareError, match="k"):
        vae_bounds(trained_vae, binary_digits.images[:10], k=0)


def test_mig_and_dci_known_answers():
    rng = np.random.default_rng(0)
    factors = np.column_stack([rng.random(2000), (rng.random(2000) < 0.5).astype(float), rng.random(2000)])
    # Each factor in its own unit (permuted, rescaled), plus one unit of noise: as disentangled as it gets.
    codes = np.column_stack([3 * factors[:, 2], rng.normal(size=2000), -factors[:, 0], factors[:, 1] + 5])
    m = mig(codes, factors)
    assert m["mig"] > 0.85
    d = dci(codes, factors)
    assert d["dci_disentanglement"] > 0.9 and d["dci_completeness"] > 0.9 and d["dci_informativeness"] > 0.95
    imp = np.array(d["importance"])
    assert imp.shape == (4, 3) and [int(np.argmax(imp[:, f])) for f in range(3)] == [2, 3, 0]
    # Every unit a mixture of all factors: entangled, yet just as informative.
    mixed = np.column_stack([factors @ rng.normal(size=3) for _ in range(4)])
    assert mig(mixed, factors)["mig"] < 0.3
    dm = dci(mixed, factors)
    assert dm["dci_disentanglement"] < 0.75 and dm["dci_completeness"] < 0.75
    # Factors plus a little noise (each in its own unit) score near 1; codes independent of the factors near 0
    # (measured 0.89 and 0.0007: the plug-in MI's bias over 2000 images is ~0.02 nats).
    noisy = np.column_stack([factors + 0.01 * rng.normal(size=factors.shape), rng.normal(size=(2000, 2))])
    assert mig(noisy, factors)["mig"] > 0.85
    random_codes = rng.normal(size=(2000, 5))
    assert mig(random_codes, factors)["mig"] < 0.02
    assert dci(random_codes, factors)["dci_informativeness"] < 0.05
    img = importance_heatmap(d, cell=5)
    assert img.shape == (15, 20, 3) and img.dtype == np.uint8
    with pytest.raises(CompareError):
        mig(codes[:5], factors[:5])


def test_compare_metrics_hold_the_likelihood_columns(trained_vae, binary_digits):
    """One table: the VAE's two bounds beside a PixelCNN's exact NLL, all in nats/image and bits/dim."""
    names = [c.name for c in METRIC_COLUMNS]
    for name in ("neg_elbo", "nll_iwae", "nll_exact", "bits_per_dim", "mig", "dci_completeness"):
        assert name in names
    pcnn = build_model("pixelcnn", {"image_shape": [1, 8, 8], "channels": 8, "n_layers": 1})
    data = binary_digits.limit(200, 50)
    for model in (trained_vae, pcnn):
        row = model_metrics(model, data, n_samples=4, judge=False, likelihood_k=4, max_train=200)
        assert row["mig"] is None  # digits have no factors
        if model is pcnn:
            assert row["neg_elbo"] is None and row["nll_exact"] > 0
            assert row["bits_per_dim"] == pytest.approx(row["nll_exact"] / (64 * math.log(2)))
        else:
            assert row["nll_exact"] is None and row["nll_iwae"] <= row["neg_elbo"] + 0.5


def test_compare_writes_disentanglement_columns_and_heat_map(tmp_path):
    from explorer.core.compare import write_comparison
    from explorer.core.data.faces import make_faces
    from explorer.core.data.transforms import transform_data

    data = transform_data(make_faces(300, seed=0, size=16), channels=1)
    torch.manual_seed(0)
    models = [build_model("vae", {"latent_dim": 3, "image_shape": [1, 16, 16], "hidden": [16]}) for _ in range(2)]
    summary = write_comparison(models, data, tmp_path, ["a", "b"], n_samples=8, n_grid=4, pca_baseline=False,
                               map_size=120)
    row = summary["metrics"][0]
    assert 0 <= row["mig"] <= 1 and 0 <= row["dci_disentanglement"] <= 1
    assert row["disentanglement"]["factor_names"][0] == "smiling"
    assert (tmp_path / "importance-a.png").exists()
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "nll_iwae"} <= set(header)
