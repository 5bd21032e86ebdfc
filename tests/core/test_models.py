"""The model families: shapes, learning, closed-form PCA, GAN steps, failure safety, configs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from explorer.core.models import (
    CapabilityError,
    LatentModel,
    NonFiniteLossError,
    build_model,
    families,
    get_family,
)
from explorer.core.models import nets
from explorer.core.models.ae import AEConfig
from explorer.core.models.gan import GANConfig
from explorer.core.models.pca import PCAConfig
from explorer.core.models.vae import VAEConfig
from explorer.core.models import losses

DIGITS = (1, 8, 8)
LATENT = 6

# name -> (family, config overrides); small widths keep the whole file fast on 2 cores.
CASES: dict[str, tuple[str, dict]] = {
    "ae-mlp": ("ae", {"arch": "mlp", "hidden": (64,)}),
    "ae-conv": ("ae", {"arch": "conv", "base_channels": 16}),
    "ae-linear": ("ae", {"arch": "linear", "loss": "mse"}),
    "ae-linear-bce": ("ae", {"arch": "linear"}),
    "ae-mlp-mse": ("ae", {"arch": "mlp", "hidden": (64,), "loss": "mse"}),
    "dae": ("ae", {"arch": "mlp", "hidden": (64,), "denoising_std": 0.2}),
    "dae-mask": ("ae", {"arch": "mlp", "hidden": (64,), "masking_prob": 0.2}),
    "sae": ("ae", {"arch": "mlp", "hidden": (64,), "sparsity_l1": 0.01}),
    "vae-mlp-bce": ("vae", {"arch": "mlp", "hidden": (64,)}),
    "vae-mlp-mse": ("vae", {"arch": "mlp", "hidden": (64,), "loss": "mse", "beta": 0.05}),
    "vae-conv-bce": ("vae", {"arch": "conv", "base_channels": 16}),
    "vae-conv-mse": ("vae", {"arch": "conv", "base_channels": 16, "loss": "mse", "beta": 0.05}),
    "gan": ("gan", {"base_channels": 8}),
    "pca": ("pca", {}),
}
RECONSTRUCTING = [name for name, (fam, _) in CASES.items() if fam in ("ae", "vae", "pca")]
TRAINABLE = [name for name, (fam, _) in CASES.items() if fam != "pca"]


def _build(name: str, shape=DIGITS, latent: int = LATENT, **extra) -> LatentModel:
    family, overrides = CASES[name]
    torch.manual_seed(0)
    return build_model(family, latent_dim=latent, image_shape=shape, **{**overrides, **extra})


def _train(model: LatentModel, x: torch.Tensor, steps: int, lr: float = 2e-3, batch: int = 64) -> dict:
    torch.manual_seed(1)
    if model.capabilities.closed_form:
        return model.fit(x)
    opts = model.configure_optimizers(lr)
    gen = torch.Generator().manual_seed(1)
    model.train()
    metrics: dict = {}
    for step in range(steps):
        idx = torch.randint(len(x), (batch,), generator=gen)
        metrics = model.train_step(x[idx], opts, step)
    model.eval()
    return metrics


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These models are tiny: a second intra-op thread buys nothing and makes timings
    # erratic when other processes share the 2 cores (OpenMP barriers wait on a descheduled thread).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits_split() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0).unsqueeze(1)
    return x[:1500], x[1500:]


# ------------------------------------------------------------ shapes
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", ["ae-mlp", "ae-conv", "ae-linear", "vae-mlp-bce", "vae-conv-bce", "gan", "pca"])
def test_shapes_and_value_range(name, shape):
    model = _build(name, shape, base_channels=4) if "conv" in name or name == "gan" else _build(name, shape)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, LATENT, generator=gen) * 3  # well outside the typical set: still in range
    with torch.no_grad():
        images = model.decode(z)
        samples = model.sample(2, generator=gen)
        one = model.decode(z[:1])
    assert images.shape == (3, *shape) and samples.shape == (2, *shape) and one.shape == (1, *shape)
    for out in (images, samples):
        assert out.dtype == torch.float32 and 0 <= float(out.min()) and float(out.max()) <= 1
    x = torch.rand(4, *shape)
    if model.capabilities.has_encoder:
        with torch.no_grad():
            assert model.encode(x).shape == (4, LATENT)
            assert model.reconstruct(x).shape == (4, *shape)
            mu, logvar = model.encode_dist(x)
        assert mu.shape == logvar.shape == (4, LATENT)
        assert bool(torch.isfinite(logvar).all()) == model.capabilities.has_posterior
    else:
        with pytest.raises(CapabilityError):
            model.encode(x)


def test_conv_geometry():
    plans = {28: (2, 7), 64: (4, 4), 32: (3, 4), 8: (1, 4), 16: (2, 4)}
    for size, (layers, bottom) in plans.items():
        plan = nets.ConvPlan((1, size, size), 32)
        assert (plan.n_layers, plan.bottom_size) == (layers, (bottom, bottom))
        assert plan.channels == [32 * 2**i for i in range(layers)]
    enc = nets.conv_encoder((1, 28, 28), 10, base_channels=32)
    convs = [m for m in enc if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 32, (4, 4), (2, 2)),
        (32, 64, (4, 4), (2, 2)),
    ]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in enc)
    assert any(isinstance(m, nn.BatchNorm2d) for m in nets.conv_encoder((1, 28, 28), 10, 32, batchnorm=True))
    with pytest.raises(ValueError, match="even image sides"):
        build_model("ae", arch="conv", image_shape=(1, 7, 7))
    with pytest.raises(ValueError, match="even image sides"):
        build_model("gan", image_shape=(1, 5, 5))


def test_default_mlp_vae_is_the_classic_784_400_20_model():
    model = build_model("vae", latent_dim=20, image_shape=(1, 28, 28))
    linears = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == [(784, 400), (400, 40), (20, 400), (400, 784)]
    assert sum(p.numel() for p in model.parameters()) == 784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784
    assert all(isinstance(m, nn.ReLU) for m in model.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.Tanh)))


def test_linear_ae_is_one_affine_map_each_way():
    model = _build("ae-linear", hidden=(128,))  # hidden is ignored by the linear arch
    kinds = {type(m) for m in model.modules()} - {type(model), nn.Sequential}
    assert kinds == {nn.Flatten, nn.Linear, nn.Unflatten}
    assert [m.weight.shape for m in model.modules() if isinstance(m, nn.Linear)] == [(LATENT, 64), (64, LATENT)]
    # decode is the affine map, clamped only for display
    z = torch.randn(5, LATENT) * 0.1
    raw = model.decoder(z)
    assert torch.equal(model.decode(z), raw.clamp(0, 1))


def test_gan_nets_follow_dcgan():
    for shape, n_up in (((3, 64, 64), 4), ((1, 28, 28), 2), ((1, 8, 8), 1)):
        model = build_model("gan", latent_dim=16, image_shape=shape, base_channels=4)
        deconvs = [m for m in model.generator if isinstance(m, nn.ConvTranspose2d)]
        assert len(deconvs) == n_up + 1 and deconvs[-1].out_channels == shape[0]
        assert isinstance(model.generator[-1], nn.Tanh)
        d_layers = list(model.discriminator)
        assert isinstance(d_layers[1], nn.LeakyReLU) and d_layers[1].negative_slope == 0.2
        assert model.discriminator(torch.rand(2, *shape)).shape == (2,)
    assert GANConfig(image_shape=(1, 28, 28)).channels == 32 and GANConfig(image_shape=(3, 64, 64)).channels == 64


# ------------------------------------------------------------ learning
@pytest.mark.parametrize("name", RECONSTRUCTING)
def test_reconstructions_beat_the_mean_image(name, digits_split):
    train, test = digits_split
    model = _build(name)
    metrics = _train(model, train, steps=300)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values() if not isinstance(v, list))
    with torch.no_grad():
        mse = float(((model.reconstruct(test) - test) ** 2).mean())
    baseline = float(((test - train.mean(0)) ** 2).mean())
    assert mse < 0.75 * baseline, (mse, baseline)
    report = model.evaluate(test, generator=torch.Generator().manual_seed(0))
    assert {"loss", "recon", "mse"} <= set(report) and math.isfinite(report["loss"])
    assert report["mse"] == pytest.approx(mse, rel=1e-4)


def test_train_step_metrics_per_family(digits_split):
    x = digits_split[0][:64]
    expected = {
        "ae-mlp": {"loss", "recon"},
        "sae": {"loss", "recon", "l1"},
        "vae-mlp-bce": {"loss", "recon", "kl", "kl_per_dim"},
        "gan": {"loss", "d_loss", "g_loss", "d_real", "d_fake"},
    }
    for name, keys in expected.items():
        model = _build(name)
        out = model.train_step(x, model.configure_optimizers(1e-3), 0)
        assert set(out) == keys, name
        assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in out.values())
        assert all(v.ndim == 0 for k, v in out.items() if k != "kl_per_dim")


def test_sparse_ae_adds_the_l1_penalty(digits_split):
    x = digits_split[0][:64]
    model = _build("sae")
    out = model.train_step(x, model.configure_optimizers(1e-3), 0)
    assert float(out["loss"]) == pytest.approx(float(out["recon"]) + 0.01 * float(out["l1"]), rel=1e-5)


def test_denoising_corruption():
    x = torch.full((2000, 1, 8, 8), 0.5)
    noisy = _build("dae").corrupt(x)
    assert 0 <= float(noisy.min()) and float(noisy.max()) <= 1
    assert float((noisy - x).std()) == pytest.approx(0.2, rel=0.05)
    masked = _build("dae-mask").corrupt(x)
    assert float((masked == 0).float().mean()) == pytest.approx(0.2, abs=0.01)
    assert torch.equal(_build("ae-mlp").corrupt(x), x)


def test_linear_mse_ae_spans_the_pca_subspace(digits_split):
    from scipy.linalg import subspace_angles

    train, _ = digits_split
    k = 4
    model = build_model("ae", arch="linear", loss="mse", latent_dim=k, image_shape=DIGITS)
    _train(model, train, steps=2500, lr=1e-2, batch=256)
    pca = build_model("pca", latent_dim=k, image_shape=DIGITS, whiten=False)
    pca.fit(train)
    decoder = model.decoder[0].weight.detach().numpy()  # (64, k): columns span the decoded subspace
    angles = np.degrees(subspace_angles(decoder, pca.components.T.numpy()))
    assert angles.max() < 5.0, angles


# ------------------------------------------------------------ VAE
@pytest.mark.parametrize("name", ["vae-mlp-bce", "vae-conv-mse"])
def test_vae_kl_per_dim_sums_to_kl(name, digits_split):
    train, test = digits_split
    model = _build(name)
    out = _train(model, train, steps=50)
    assert out["kl_per_dim"].shape == (LATENT,)
    assert float(out["kl_per_dim"].sum()) == pytest.approx(float(out["kl"]), rel=1e-5)
    beta = model.config.beta
    assert float(out["loss"]) == pytest.approx(float(out["recon"]) + beta * float(out["kl"]), rel=1e-5)
    report = model.evaluate(test, generator=torch.Generator().manual_seed(0))
    assert len(report["kl_per_dim"]) == LATENT
    assert sum(report["kl_per_dim"]) == pytest.approx(report["kl"], rel=1e-5)
    assert report["loss"] == pytest.approx(report["recon"] + report["kl"], rel=1e-5)  # beta = 1 at test time
    assert report["active_dims"] == sum(v > 0.01 for v in report["kl_per_dim"])
    again = model.evaluate(test, generator=torch.Generator().manual_seed(0))
    assert again == report  # the generator makes the sampled z reproducible


def test_vae_encode_is_the_posterior_mean():
    model = _build("vae-mlp-bce").eval()
    x = torch.rand(3, *DIGITS)
    with torch.no_grad():
        mu, logvar = model.encode_dist(x)
    assert torch.equal(model.encode(x), mu)
    assert _kl_by_torch_distributions(mu, logvar) == pytest.approx(float(losses.kl_divergence(mu, logvar)), rel=1e-5)


def _kl_by_torch_distributions(mu: torch.Tensor, logvar: torch.Tensor) -> float:
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return float(torch.distributions.kl_divergence(q, p).sum(1).mean().detach())


# ------------------------------------------------------------ GAN
@pytest.mark.parametrize("g_loss", ["nonsaturating", "minimax"])
def test_gan_step_with_k_discriminator_steps(g_loss, digits_split):
    model = _build("gan", d_steps=2, g_loss=g_loss, label_smoothing=0.1)
    opts = model.configure_optimizers(2e-4)
    assert set(opts) == {"generator", "discriminator"}
    assert opts["generator"].defaults["betas"] == (0.5, 0.999)
    out = model.train_step(digits_split[0][:32], opts, 0)
    assert all(math.isfinite(float(v)) for v in out.values())
    assert 0 < float(out["d_real"]) < 1 and 0 < float(out["d_fake"]) < 1
    assert float(out["loss"]) == float(out["g_loss"])
    d_state = next(iter(opts["discriminator"].state.values()))
    g_state = next(iter(opts["generator"].state.values()))
    assert int(d_state["step"]) == 2 and int(g_state["step"]) == 1
    # the generator step leaves no gradients behind on D (it was frozen) and D stays trainable
    assert all(p.requires_grad for p in model.discriminator.parameters())


def test_gan_training_changes_samples(digits_split):
    model = _build("gan")
    z = torch.randn(8, LATENT, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model.eval().decode(z)
    _train(model, digits_split[0], steps=40, lr=2e-4)
    with torch.no_grad():
        after = model.decode(z)
    assert float((after - before).abs().mean()) > 0.01
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = model.evaluate(digits_split[1], generator=torch.Generator().manual_seed(0))
    assert {"d_real", "d_fake", "d_loss", "g_loss"} <= set(report)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # no BatchNorm drift


def test_gan_decode_keeps_gradients_for_inversion():
    model = _build("gan").eval()
    z = torch.randn(1, LATENT, generator=torch.Generator().manual_seed(0)).requires_grad_()
    model.decode(z).sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0


# ------------------------------------------------------------ PCA
def test_pca_matches_sklearn_and_is_exact_on_its_span(digits_split):
    from sklearn.decomposition import PCA as SkPCA

    train, _ = digits_split
    flat = train.flatten(1).numpy()
    model = _build("pca", latent=10)
    fit = model.fit(train)
    ref = SkPCA(10).fit(flat)
    cosines = np.abs((model.components.numpy() * ref.components_).sum(1))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-4)
    np.testing.assert_allclose(fit["explained_variance_ratio"], ref.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(model.scale.numpy() ** 2, ref.explained_variance_, rtol=1e-4)
    # whitened codes of the training data: zero mean, unit variance
    z = model.encode(train)
    assert z.mean(0).abs().max() < 1e-4 and torch.allclose(z.std(0), torch.ones(10), atol=1e-3)
    # a point in the fitted affine subspace is its own reconstruction
    inside = model.mean + 0.05 * torch.randn(10) @ (model.components * model.scale[:, None])
    x = inside.clamp(0, 1).reshape(1, *DIGITS)
    assert float((x.flatten() - inside).abs().max()) < 1e-6  # inside [0, 1]: the display clamp does not apply
    torch.testing.assert_close(model.reconstruct(x), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.decode(model.encode(x)), x, atol=1e-5, rtol=0)
    recon = ref.inverse_transform(ref.transform(flat))
    assert fit["recon_mse"] == pytest.approx(float(((recon - flat) ** 2).mean()), rel=1e-3)


def test_pca_state_loads_into_a_fresh_model(digits_split):
    model = _build("pca")
    model.fit(digits_split[0])
    fresh = build_model("pca", model.config)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    fresh.load_state_dict(model.state_dict())
    x = digits_split[1][:5]
    assert torch.equal(fresh.reconstruct(x), model.reconstruct(x))
    assert get_family("pca").capabilities.closed_form and not get_family("pca").capabilities.trainable
    with pytest.raises(CapabilityError):
        model.train_step(x, {}, 0)


def test_unwhitened_pca_samples_at_component_scale(digits_split):
    model = _build("pca", whiten=False)
    model.fit(digits_split[0])
    z = model.prior_sample(4000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.std(0), model.scale, rtol=0.1, atol=0)


# ------------------------------------------------------------ failure safety
@pytest.mark.parametrize(
    "name,shape,extra",
    [(n, DIGITS, {}) for n in TRAINABLE]
    + [("ae-conv", (1, 16, 16), {"batchnorm": True}), ("gan", (1, 16, 16), {"d_steps": 2})],
    ids=[*TRAINABLE, "ae-conv-bn", "gan-bn"],
)
def test_nan_batch_raises_and_keeps_weights(name, shape, extra):
    model = _build(name, shape, **extra)
    opts = model.configure_optimizers(1e-3)
    x = torch.rand(16, *shape)
    model.train_step(x, opts, 0)  # optimiser state exists, so an unwanted step would show
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = x.clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(NonFiniteLossError, match="NaN|nan"):
        model.train_step(bad, opts, 1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), [k for k in before if not torch.equal(before[k], after[k])]
    model.train_step(x, opts, 2)  # and training can go on
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["ae-conv", "vae-mlp-bce", "gan", "pca"])
def test_evaluate_restores_the_training_mode(name, digits_split):
    model = _build(name, batchnorm=True) if name == "ae-conv" else _build(name)
    x = digits_split[1][:32]
    for mode in (True, False):
        model.train(mode)
        model.evaluate(x, generator=torch.Generator().manual_seed(0))
        assert model.training == mode and all(m.training == mode for m in model.modules())


# ------------------------------------------------------------ configs and registry
CONFIGS = [
    AEConfig(latent_dim=3, image_shape=(1, 28, 28), arch="conv", base_channels=8, denoising_std=0.3),
    AEConfig(arch="linear", loss="mse", sparsity_l1=1e-3, hidden=(32, 16)),
    VAEConfig(latent_dim=2, image_shape=(3, 64, 64), arch="conv", beta=4.0, batchnorm=True),
    GANConfig(image_shape=(3, 64, 64), d_steps=3, g_loss="minimax", label_smoothing=0.1),
    GANConfig(base_channels=16),
    PCAConfig(latent_dim=5, whiten=False),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_config_round_trip(config):
    config.validate()
    d = json.loads(json.dumps(config.to_dict()))
    again = type(config).from_dict(d)
    assert again == config and again.to_dict() == config.to_dict()
    with pytest.raises(ValueError, match="unknown config field"):
        type(config).from_dict({**d, "dropout": 0.5})
    model = build_model(_family_of(config), d)
    assert model.config == config


def _family_of(config) -> str:
    return {AEConfig: "ae", VAEConfig: "vae", GANConfig: "gan", PCAConfig: "pca"}[type(config)]


@pytest.mark.parametrize(
    "family,bad",
    [
        ("ae", {"arch": "transformer"}),
        ("ae", {"loss": "l1"}),
        ("ae", {"hidden": [0]}),
        ("ae", {"denoising_std": -1}),
        ("ae", {"masking_prob": 1.0}),
        ("vae", {"arch": "linear"}),
        ("vae", {"beta": -0.5}),
        ("gan", {"d_steps": 0}),
        ("gan", {"g_loss": "wasserstein"}),
        ("gan", {"label_smoothing": 0.7}),
        ("pca", {"latent_dim": 65}),
        ("pca", {"whiten": "yes"}),
    ],
)
def test_invalid_configs_are_refused(family, bad):
    with pytest.raises(ValueError):
        build_model(family, {"latent_dim": 4, "image_shape": [1, 8, 8], **bad})


def test_registry_knows_every_family():
    assert families() == ["ae", "analogy", "dcign", "gan", "imported", "patch", "pca", "pixelcnn", "vae"]
    for name in families():
        cls = get_family(name)
        assert cls.family == name and issubclass(cls.config_cls, type(cls.config_cls()))
    assert not get_family("gan").capabilities.has_encoder
    assert get_family("vae").capabilities.has_posterior
    model = build_model("vae", {"latent_dim": 4, "image_shape": [1, 8, 8], "hidden": [16, 8]})
    assert model.config.hidden == (16, 8)


# ------------------------------------------------------------ losses
def test_losses_match_their_definitions():
    torch.manual_seed(0)
    logits, x = torch.randn(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    p = torch.sigmoid(logits)
    manual = -(x * p.log() + (1 - x) * (1 - p).log()).sum() / 4
    assert float(losses.bce_with_logits_sum(logits, x)) == pytest.approx(float(manual), rel=1e-5)
    assert float(losses.reconstruction("mse", logits, x)) == pytest.approx(float(((p - x) ** 2).sum() / 4), rel=1e-5)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    assert float(losses.kl_divergence(mu, logvar)) == pytest.approx(_kl_by_torch_distributions(mu, logvar), rel=1e-5)
    fake = torch.randn(6)
    d_fake = torch.sigmoid(fake)
    assert float(losses.generator_loss(fake, "minimax")) == pytest.approx(float((1 - d_fake).log().mean()), rel=1e-5)
    assert float(losses.generator_loss(fake, "nonsaturating")) == pytest.approx(float(-d_fake.log().mean()), rel=1e-5)
    real = torch.randn(6)
    d_real = torch.sigmoid(real)
    smoothed = -(0.9 * d_real.log() + 0.1 * (1 - d_real).log()).mean() - (1 - d_fake).log().mean()
    assert float(losses.discriminator_loss(real, fake, 0.1)) == pytest.approx(float(smoothed), rel=1e-5)
    with pytest.raises(ValueError):
        losses.reconstruction("l1", logits, x)
