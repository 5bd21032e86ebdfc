"""The finiteness guard without a per-step host sync, the CUDA-graph step's selection and fallback (on a CPU),
and training options that used to be silently wrong."""

import json
import logging
import os
import stat
import subprocess
import sys

import pytest
import torch

from explorer.core import checkpoint
from explorer.core.models import build_model
from explorer.core.models import base as model_base
from explorer.core.training import TrainConfig, Trainer, TrainingError, graphs

SHAPE = (1, 8, 8)


def _vae():
    torch.manual_seed(0)
    return build_model("vae", latent_dim=4, image_shape=SHAPE, hidden=(32,))


def _poison_at(model, first_bad_step):
    original = model.train_step

    def train_step(x, optimizers, step):
        if step >= first_bad_step:
            x = x.clone()
            x[0, 0, 0, 0] = float("nan")
        return original(x, optimizers, step)

    model.train_step = train_step


def test_no_host_sync_per_step(digits, monkeypatch):
    """guarded_step's check (a GPU sync per step) is off inside the trainer; the trainer syncs every N steps."""
    calls = {"n": 0}
    real = torch.Tensor.__bool__

    def counting_bool(self):
        calls["n"] += 1
        return real(self)

    monkeypatch.setattr(torch.Tensor, "__bool__", counting_bool)
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", max_steps=40, finite_check_every=20, n_sample_grid=0)
    Trainer(_vae(), digits, cfg).run()
    assert calls["n"] <= 6  # two periodic checks + the end of the (partial) epoch, not one per step
    with pytest.raises(model_base.NonFiniteLossError):  # outside the trainer the per-step guard still holds
        model = _vae()
        opt = model.configure_optimizers(1e-3)
        model.train_step(torch.full((2, *SHAPE), float("nan")), opt, 0)


def test_nan_mid_run_saves_the_weights_and_the_step_they_are_from(digits, tmp_path):
    out = tmp_path / "nan.safetensors"
    model = _vae()
    _poison_at(model, 32)  # epoch 1 is steps 0-23 (1500 images / 64); checks every 5 steps: 25, 30, 35
    cfg = TrainConfig(epochs=3, batch_size=64, device="cpu", checkpoint_path=str(out), finite_check_every=5)
    with pytest.raises(TrainingError, match=r"nan.*found at step 35.*weights kept are those of step 30"):
        Trainer(model, digits, cfg).run()
    saved = checkpoint.load(out)
    assert saved.metadata["history"]["steps"] == 30 and saved.metadata["history"]["epochs"] == 1
    # Those are exactly the weights of a clean run stopped at step 30.
    clean = _vae()
    Trainer(clean, digits, TrainConfig(epochs=3, batch_size=64, device="cpu", max_steps=30)).run()
    for key, val in clean.state_dict().items():
        torch.testing.assert_close(saved.state_dict()[key], val, rtol=0, atol=0, msg=key)
        torch.testing.assert_close(model.state_dict()[key], val, rtol=0, atol=0, msg=key)


def test_nan_in_the_first_epoch_still_leaves_the_initial_weights(digits, tmp_path):
    out = tmp_path / "first.safetensors"
    model = _vae()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    _poison_at(model, 2)
    with pytest.raises(TrainingError, match="step 0"):
        Trainer(model, digits, TrainConfig(epochs=2, batch_size=64, device="cpu", checkpoint_path=str(out))).run()
    saved = checkpoint.load(out, with_optimizer_state=True)
    assert saved.metadata["history"]["steps"] == 0 and saved.metadata["history"]["epochs"] == 0
    for key, val in initial.items():
        assert torch.equal(saved.state_dict()[key], val), key


def test_resume_uses_the_new_learning_rate_it_records(digits, tmp_path):
    path = tmp_path / "r.safetensors"
    Trainer(_vae(), digits, TrainConfig(epochs=1, batch_size=128, lr=1e-3, device="cpu",
                                        checkpoint_path=str(path))).run()
    loaded = checkpoint.load(path, with_optimizer_state=True)
    trainer = Trainer(build_model(loaded.family, loaded.config), digits,
                      TrainConfig(epochs=1, batch_size=128, lr=5e-4, device="cpu", checkpoint_path=str(path)))
    trainer.resume_from(loaded)
    trainer.run()
    assert {g["lr"] for opt in trainer.optimizers.values() for g in opt.param_groups} == {5e-4}
    assert checkpoint.inspect(path)["history"]["train_config"]["lr"] == 5e-4


@pytest.mark.parametrize("bad", [{"checkpoint_every": -1}, {"checkpoint_path": ""}, {"finite_check_every": 0},
                                 {"cuda_graphs": "maybe"}])
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad).validate()


# ------------------------------------------------------------------ the CUDA-graph step, on a CPU
def test_graph_plan_selection():
    model = _vae()
    opts = model.configure_optimizers(1e-3)
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert graphs.plan("auto", cpu, model, opts) == graphs.GraphPlan(False, "device cpu is not a CUDA GPU")
    assert graphs.plan("auto", cuda, model, opts).use
    assert not graphs.plan("off", cuda, model, opts).use
    assert "distributed" in graphs.plan("auto", cuda, model, opts, world_size=2).reason
    pixel = build_model("vae", latent_dim=4, image_shape=SHAPE, hidden=(32,))
    pixel.family = "someone-elses"
    assert "not known to be capturable" in graphs.plan("auto", cuda, pixel, opts).reason
    assert graphs.plan("on", cuda, pixel, opts).use
    lbfgs = {"model": torch.optim.LBFGS(model.parameters())}
    assert "cannot be captured" in graphs.plan("auto", cuda, model, lbfgs).reason
    with pytest.raises(ValueError):
        graphs.plan("sometimes", cuda, model, opts)


def _graph_trainer(digits, capture, **cfg):
    trainer = Trainer(_vae(), digits, TrainConfig(epochs=2, batch_size=64, device="cpu", **cfg))
    trainer._graph_capture = capture
    # Stand in for a CUDA device: the plan is the only place that looks at the device type.
    trainer._make_step_fn = _forced_graph_step(trainer)
    return trainer


def _forced_graph_step(trainer):
    def make(images, acc):
        trainer.step_mode, trainer.step_mode_reason = "warmup", "forced for the test"
        return graphs.GraphStep(trainer.model, trainer.optimizers, images, acc, trainer.config.batch_size,
                                capture=trainer._graph_capture, on_mode=trainer._set_step_mode)
    return make


def test_failed_capture_falls_back_to_eager_with_the_reason_logged(digits, caplog):
    eager = Trainer(_vae(), digits, TrainConfig(epochs=2, batch_size=64, device="cpu"))
    ref = eager.run()
    assert ref.step_mode == "eager" and ref.step_mode_reason == "device cpu is not a CUDA GPU"

    def failing_capture(body):
        body()  # a capture that ran part of the step, then failed: the state must be put back
        raise RuntimeError("operation not permitted when stream is capturing")

    modes = []
    trainer = _graph_trainer(digits, failing_capture)
    trainer.on("step_mode", lambda mode, reason: modes.append((mode, reason)))
    with caplog.at_level(logging.WARNING, logger="explorer.training"):
        result = trainer.run()
    assert result.step_mode == "eager" and "not permitted when stream is capturing" in result.step_mode_reason
    assert modes == [("eager", result.step_mode_reason)]
    assert "CUDA graph capture failed" in caplog.text and "stream is capturing" in caplog.text
    for key, val in eager.model.state_dict().items():  # the same run as one that never tried
        torch.testing.assert_close(trainer.model.state_dict()[key], val, rtol=0, atol=0, msg=key)
    assert result.history[-1]["loss"] == pytest.approx(ref.history[-1]["loss"], rel=1e-6)


def test_replayed_step_trains_like_the_eager_one(digits):
    """A stand-in capture whose replay re-runs the captured body: static indices, in-graph metric sums and the
    eager last (smaller) batch give the eager run's result."""
    ref = Trainer(_vae(), digits, TrainConfig(epochs=2, batch_size=64, device="cpu"))
    ref_result = ref.run()
    replays = {"n": 0}

    def fake_capture(body):
        def replay():
            replays["n"] += 1
            body()
        return replay

    trainer = _graph_trainer(digits, fake_capture)
    result = trainer.run()
    assert result.step_mode == "graph"
    # 2 epochs x 24 steps: 3 warm-up steps, 2 last batches of 28 eager, the rest replayed.
    assert replays["n"] == 48 - graphs.WARMUP_STEPS - 2
    for key, val in ref.model.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[key], val, rtol=1e-6, atol=1e-7, msg=key)
    for key in ("loss", "recon", "kl", "test_loss"):
        assert result.history[-1][key] == pytest.approx(ref_result.history[-1][key], rel=1e-5)


# ------------------------------------------------------------------ CLI: nothing silently wrong
def _cli(*args):
    """The CLI in this process (a subprocess per case costs seconds of torch import)."""
    import contextlib
    import io

    from explorer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


BASE = ["train", "--model", "vae", "--dataset", "digits", "--latent-dim", "4", "--hidden", "32", "--batch-size", "256",
        "--epochs", "1", "--no-progress"]


def test_cli_refuses_bad_outputs_and_options_before_training(tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
    cases = {
        "--out is empty": [*BASE, "--out", ""],
        "does not exist": [*BASE, "--out", str(tmp_path / "missing" / "m.safetensors")],
        "--checkpoint-every": [*BASE, "--out", str(tmp_path / "m.safetensors"), "--checkpoint-every", "-1"],
        "hidden size": [*BASE, "--out", str(tmp_path / "m.safetensors"), "--hidden", ","],
    }
    if os.geteuid() != 0:  # root writes anywhere
        cases["read-only"] = [*BASE, "--out", str(readonly / "m.safetensors")]
    for needle, args in cases.items():
        proc = _cli(*args)
        assert proc.returncode != 0, needle
        assert needle in proc.stderr and "Traceback" not in proc.stderr, (needle, proc.stderr)
        assert "images_per_second" not in proc.stdout  # refused before the first step, nothing trained
    readonly.chmod(stat.S_IRWXU)


def test_cli_resume_without_lr_keeps_the_checkpoint_rate(tmp_path):
    path = tmp_path / "m.safetensors"
    assert _cli(*BASE, "--lr", "0.002", "--out", str(path)).returncode == 0
    proc = _cli("train", "--resume", str(path), "--dataset", "digits", "--epochs", "1", "--batch-size", "256",
                "--no-progress",
                "--out", str(path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["total_epochs"] == 2
    assert checkpoint.inspect(path)["history"]["train_config"]["lr"] == 0.002
