"""The patch autoencoder and its measurement as a codec (PSNR / SSIM against PCA and JPEG at one byte budget)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explorer.core.compression import (
    evaluate_compression,
    fit_patch_pca,
    jpeg_at_budget,
    patch_code_sample,
    psnr,
    reconstruct_pair,
    ssim,
)
from explorer.core.models import build_model


def test_tiling_round_trips_with_padding_and_random_patches_are_windows():
    model = build_model("patch", {"image_shape": [1, 28, 28]})  # 28 = 3.5 tiles of 8: padded to 32
    assert model.tiles == 16 and model.latent_dim == 16 * 16
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model.untile(model.tile(x)), x)
    tiles = model.tile(x)
    assert torch.equal(tiles[1], x[0, :, 0:8, 8:16])  # row-major: the second tile is the top row's second
    gen = torch.Generator().manual_seed(0)
    patches = model.random_patches(x, 5, gen)
    assert patches.shape == (15, 1, 8, 8)
    # Every random patch is a real 8x8 window of its own image, at some offset.
    windows = x.unfold(2, 8, 1).unfold(3, 8, 1)  # (3, 1, 21, 21, 8, 8)
    for i, p in enumerate(patches):
        img = windows[i // 5, 0].reshape(-1, 8, 8)
        assert torch.isclose(img, p[0]).all((1, 2)).any()
    rgb = build_model("patch", {"image_shape": [3, 16, 16], "patch_size": 4, "code_size": 12})
    assert rgb.latent_dim == 16 * 12 and rgb.config.patch_dim == 48
    xr = torch.rand(2, 3, 16, 16)
    assert torch.equal(rgb.untile(rgb.tile(xr)), xr)
    assert rgb.decode(rgb.encode(xr)).shape == xr.shape


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="larger than"):
        build_model("patch", {"image_shape": [1, 8, 8], "patch_size": 9})
    with pytest.raises(ValueError, match="activation"):
        build_model("patch", {"image_shape": [1, 8, 8], "activation": "swish"})
    with pytest.raises(ValueError, match="code_size"):
        build_model("patch", {"image_shape": [1, 8, 8], "code_size": 0})


def test_quality_measures_have_their_known_values():
    a = np.zeros((1, 1, 16, 16), np.float32)
    b = a + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(a, b)[0] == pytest.approx(20.0, abs=1e-6)
    assert ssim(b, b)[0] == pytest.approx(1.0, abs=1e-9)
    # Constant images: SSIM = (2ab + C1) / (a^2 + b^2 + C1), the variance terms cancel.
    x, y = np.full((1, 1, 16, 16), 0.3), np.full((1, 1, 16, 16), 0.5)
    c1 = 0.01**2
    assert ssim(x, y)[0] == pytest.approx((2 * 0.15 + c1) / (0.09 + 0.25 + c1), rel=1e-9)
    rng = np.random.default_rng(0)
    img = rng.random((1, 1, 32, 32))
    noisy = np.clip(img + rng.normal(0, 0.1, img.shape), 0, 1)
    assert 0.0 < ssim(img, noisy)[0] < 0.95


def test_jpeg_stays_within_the_budget_and_improves_with_it():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    img = (np.clip(0.5 + 0.3 * np.sin(xx / 4) * np.cos(yy / 5) + rng.normal(0, 0.02, (32, 32)), 0, 1)
           * 255).astype(np.uint8)[None]
    small, q_small, n_small = jpeg_at_budget(img, 150)
    large, q_large, n_large = jpeg_at_budget(img, 600)
    assert n_small <= 150 and n_large <= 600 and q_large > q_small
    f = img.astype(np.float32)[None] / 255
    assert psnr(large[None] / 255.0, f)[0] > psnr(small[None] / 255.0, f)[0]


def test_pca_on_patches_is_exact_with_all_components():
    x = torch.rand(200, 1, 4, 4)
    pca = fit_patch_pca(x, 16)
    assert torch.allclose(pca.decode(pca.encode(x), (1, 4, 4)), x, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from explorer.core import checkpoint
    from explorer.core.data import load_dataset
    from explorer.core.training import TrainConfig, Trainer

    data = load_dataset("faces", count=900, image_size=32, channels=1, limit_test=60)
    model = build_model("patch", {"image_shape": list(data.image_shape)})  # 8x8 -> 16 codes: 4:1
    path = tmp_path_factory.mktemp("patch") / "patch.safetensors"
    Trainer(model, data, TrainConfig(epochs=25, batch_size=64, lr=3e-3, device="cpu", n_sample_grid=0,
                                     checkpoint_path=str(path))).run()
    return model, data, path


def test_trained_patch_model_compresses_4_to_1_near_pca_and_loads_back(trained):
    from explorer.core import checkpoint

    model, data, path = trained
    rep, recon = evaluate_compression(model, data, limit_test=40, pca_patches=5000)
    assert rep.ratio == 4.0 and rep.code_bytes == 16 * 16
    m = rep.methods
    print(json.dumps(rep.to_dict()))
    # A linear code is what a tanh MLP of one layer approximates: it must come close to PCA (measured on
    # 32 px grey faces after 25 epochs: 25.2 dB vs PCA's 26.3 dB), and 8-bit codes cost almost nothing.
    assert m["patch"].psnr > 24.0
    assert m["patch"].psnr > m["pca"].psnr - 2.0
    assert m["patch_float"].psnr - m["patch"].psnr < 0.3
    assert m["jpeg"].bytes_per_image <= rep.code_bytes or rep.jpeg_over_budget > 0
    assert recon["patch"].shape == (40, 1, 32, 32)
    loaded = checkpoint.load(path)
    x = torch.from_numpy(data.images[-5:]).float() / 255
    with torch.no_grad():
        assert torch.allclose(loaded.reconstruct(x), model.reconstruct(x), atol=1e-6)
    orig, rec, q = reconstruct_pair(model, data.images[-1])
    assert orig.shape == rec.shape == (1, 32, 32) and q["psnr"] > 20
    codes, patches = patch_code_sample(model, data.images[:100], n=300)
    assert codes.shape == (300, 16) and patches.shape == (300, 1, 8, 8)
    assert np.abs(codes).max() <= 1.0  # tanh codes


def test_cli_train_arch_patch_and_compress(tmp_path, capsys):
    from explorer.cli import main

    ckpt = tmp_path / "p.safetensors"
    assert main(["train", "--arch", "patch", "--model", "ae", "--patch-size", "4", "--code-size", "4",
                 "--dataset", "digits", "--epochs", "2", "--device", "cpu", "--no-progress", "--out", str(ckpt)]) == 0
    capsys.readouterr()
    assert main(["compress", str(ckpt), "--out", str(tmp_path / "c"), "--limit-test", "20"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["ratio"] == 4.0 and set(doc["methods"]) == {"patch", "patch_float", "pca", "jpeg"}
    assert json.loads((tmp_path / "c" / "compress-metrics.json").read_text())["code_bytes"] == 16
    assert (tmp_path / "c" / "compress-grid.png").stat().st_size > 0
    assert main(["train", "--arch", "patch", "--model", "gan", "--dataset", "digits", "--out",
                 str(tmp_path / "x.safetensors")]) == 1
    assert "--arch patch" in capsys.readouterr().err
