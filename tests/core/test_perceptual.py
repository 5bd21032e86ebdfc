"""The perceptual term: a feature net trained on generated faces, deterministic, and wired into the VAE."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from explorer.core.models import build_model, perceptual as P
from explorer.core.models.vae import VAEConfig

SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def net():
    return P.train_feature_net(SHAPE, count=512, epochs=8, lr=5e-3)


def test_feature_net_training_is_deterministic_and_frozen(net):
    again = P.train_feature_net(SHAPE, count=512, epochs=8, lr=5e-3)
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def test_feature_net_learns_the_attributes(net):
    # Known answer: held-out faces' binary attributes are predicted far above chance (glasses, long hair are
    # the large parts, visible even at 16 px).
    x, y = P._face_images(300, 77, SHAPE)
    with torch.no_grad():
        pred = torch.sigmoid(net(x)) > 0.5
    acc = (pred[:, :5] == (y[:, :5] > 0.5)).float().mean(0)
    assert acc[2] > 0.8 and acc[4] > 0.8, acc  # glasses, long_hair


def test_perceptual_loss_is_zero_for_equal_images_and_grows_with_the_difference(net):
    x, _ = P._face_images(8, 5, SHAPE)
    assert float(P.perceptual_loss(x, x, net)) == 0.0
    near = P.perceptual_loss((x + 0.02).clamp(0, 1), x, net)
    far = P.perceptual_loss((x + 0.2).clamp(0, 1), x, net)
    assert 0 < float(near) < float(far)
    d = x.clone().requires_grad_(True)
    P.perceptual_loss(d * 0.5, x, net).backward()
    assert d.grad is not None and float(d.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="shape"):
        P.perceptual_loss(x[:, :1], x, net)


def test_vae_with_the_perceptual_term_trains_and_reports_it(net, monkeypatch):
    monkeypatch.setitem(P._CACHE, SHAPE, net)
    model = build_model("vae", VAEConfig(latent_dim=4, image_shape=SHAPE, arch="conv", base_channels=8,
                                         perceptual=0.5))
    x, _ = P._face_images(32, 9, SHAPE)
    opt = {"model": torch.optim.Adam(model.parameters(), lr=1e-3)}
    out = model.train_step(x, opt, 0)
    assert float(out["perceptual"]) > 0
    assert float(out["loss"]) > float(out["recon"]) + 0.1 * float(out["kl"])
    plain = build_model("vae", VAEConfig(latent_dim=4, image_shape=SHAPE, arch="conv", base_channels=8))
    assert "perceptual" not in plain.train_step(x, {"model": torch.optim.Adam(plain.parameters())}, 0)
    with pytest.raises(ValueError, match="perceptual"):
        VAEConfig(latent_dim=4, image_shape=SHAPE, perceptual=-1.0).validate()


@pytest.mark.slow  # three CLI runs, each training the feature net (~15 s on a quiet 2-core machine)
def test_cli_trains_with_perceptual_and_keeps_it_in_the_checkpoint(tmp_path):
    out = tmp_path / "p.safetensors"
    cmd = [sys.executable, "-m", "explorer", "train", "--model", "vae", "--arch", "conv", "--base-channels", "8",
           "--latent-dim", "4", "--dataset", "faces", "--image-size", "16", "--count", "240", "--epochs", "1",
           "--batch-size", "64", "--perceptual", "0.5", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from explorer.core import checkpoint

    model = checkpoint.load(out)
    assert model.config.perceptual == 0.5
    # resuming can switch it off and change beta (the checkpoint records what the next stage used)
    out2 = tmp_path / "q.safetensors"
    cmd2 = [sys.executable, "-m", "explorer", "train", "--resume", str(out), "--dataset", "faces", "--image-size",
            "16", "--count", "240", "--epochs", "1", "--batch-size", "64", "--perceptual", "0", "--beta", "0.5",
            "--no-progress",
            "--out", str(out2)]
    proc = subprocess.run(cmd2, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    resumed = checkpoint.load(out2).config
    assert resumed.perceptual == 0.0 and resumed.beta == 0.5 and resumed.base_channels == 8
    assert json.loads(proc.stdout.strip().splitlines()[-1])["total_epochs"] == 2
    bad = subprocess.run(cmd[:-2] + ["--perceptual", "-1", "--out", str(tmp_path / "r.safetensors")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "perceptual" in bad.stderr
    assert np.isfinite(model.config.beta)
