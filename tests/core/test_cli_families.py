"""`train --model pixelcnn / dcign / analogy` and the options they take (in-process: no interpreter start)."""

from __future__ import annotations

import json

import pytest

from explorer.cli import main
from explorer.core import checkpoint
from explorer.core.models.dcign import unit_names


def _train(tmp_path, *args):
    out = tmp_path / "m.safetensors"
    code = main(["train", *args, "--epochs", "1", "--batch-size", "64", "--out", str(out), "--no-progress"])
    return code, out


def test_train_pixelcnn(tmp_path, capsys):
    code, out = _train(tmp_path, "--model", "pixelcnn", "--dataset", "digits", "--limit-train", "128",
                       "--limit-test", "32", "--pixel-layers", "1", "--pixel-channels", "8", "--plain")
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["final_metrics"]["test_bits_per_dim"] > 0
    model = checkpoint.load(out)
    assert model.family == "pixelcnn" and model.config.gated is False and model.config.n_layers == 1


def test_train_dcign_names_its_units(tmp_path, capsys):
    code, out = _train(tmp_path, "--model", "vae", "--dcign", "--factor-units", "smiling=0,glasses=2",
                       "--dataset", "faces", "--count", "96", "--image-size", "16", "--latent-dim", "4",
                       "--hidden", "16")
    assert code == 0
    model = checkpoint.load(out)
    assert model.family == "dcign" and unit_names(model) == {0: "smiling", 2: "glasses"}
    assert checkpoint.inspect(out)["extra"]["unit_names"] == {"0": "smiling", "2": "glasses"}


@pytest.mark.parametrize("args,message", [
    (["--model", "vae", "--dcign", "--factor-units", "smile=0"], "unknown face attribute 'smile'"),
    (["--model", "dcign", "--factor-units", "smiling"], "--factor-units"),
    (["--model", "gan", "--dcign"], "--dcign is a training mode of VAEs"),
    (["--model", "vae", "--pixel-output", "logistic"], "--pixel-output does not apply to vae"),
    (["--model", "analogy", "--analogy-weight", "-1"], "analogy_weight"),
])
def test_family_option_errors(tmp_path, capsys, args, message):
    code, _ = _train(tmp_path, *args, "--dataset", "faces", "--count", "12", "--image-size", "16",
                     "--latent-dim", "4", "--hidden", "8")
    assert code != 0
    assert message in capsys.readouterr().err
