import threading

import numpy as np
import pytest
import torch

from explorer.core import checkpoint
from explorer.core.models import build_model
from explorer.core.training import EVENTS, TrainConfig, Trainer, TrainingError, select_device

SHAPE = (1, 8, 8)


def _vae(**kw):
    torch.manual_seed(0)
    return build_model("vae", latent_dim=4, image_shape=SHAPE, hidden=(64,), **kw)


def _mse(model, data):
    x = torch.from_numpy(data.test().as_float())
    with torch.no_grad():
        return float(((model.reconstruct(x) - x) ** 2).mean())


def test_training_reduces_loss_and_beats_mean_image(digits):
    model = _vae()
    result = Trainer(model, digits, TrainConfig(epochs=20, batch_size=64, lr=3e-3, device="cpu", seed=1)).run()
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0] * 0.8
    assert all(h["epoch"] == i + 1 for i, h in enumerate(result.history))
    assert "test_loss" in result.final_metrics and "test_kl" in result.final_metrics
    test_x = digits.test().as_float()
    baseline = float(((test_x - digits.train().as_float().mean(0)) ** 2).mean())
    assert _mse(model, digits) < baseline * 0.8
    assert result.images_per_second > 0 and result.device == "cpu"
    assert not model.training


def test_events_fire_in_order(digits):
    seen = []
    callbacks = {name: (lambda name=name, **kw: seen.append(name)) for name in EVENTS}
    cfg = TrainConfig(epochs=2, batch_size=256, device="cpu", progress_interval_s=0.0)
    Trainer(_vae(), digits, cfg, callbacks=callbacks).run()
    assert seen[0] == "train_begin" and seen[-1] == "train_end"
    assert seen.count("epoch_end") == 2 and seen.count("samples_ready") == 2
    assert seen.count("step_end") == 2 * int(np.ceil(digits.n_train / 256))
    assert "progress" in seen
    with pytest.raises(ValueError, match="unknown trainer event"):
        Trainer(_vae(), digits).on("nope", print)


def test_samples_ready_gives_images(digits):
    got = {}
    cfg = TrainConfig(epochs=1, batch_size=256, device="cpu", n_sample_grid=9)
    Trainer(_vae(), digits, cfg, callbacks={"samples_ready": lambda **kw: got.update(kw)}).run()
    assert got["samples"].shape == (9, *SHAPE) and got["reconstructions"].shape == (9, *SHAPE)
    assert 0 <= float(got["samples"].min()) and float(got["samples"].max()) <= 1


def test_stop_token_is_honoured_within_one_step(digits):
    stop = threading.Event()
    steps = []

    def on_step(info):
        steps.append(info.step)
        if info.step == 3:
            stop.set()

    cfg = TrainConfig(epochs=5, batch_size=16, device="cpu")
    result = Trainer(_vae(), digits, cfg, stop_event=stop, callbacks={"step_end": on_step}).run()
    assert result.stopped and result.steps == 3 and len(steps) == 3


def test_same_seed_same_weights(digits):
    def run(seed):
        model = _vae()
        Trainer(model, digits, TrainConfig(epochs=1, batch_size=64, device="cpu", seed=seed)).run()
        return model.state_dict()

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_nan_loss_stops_with_clear_error_and_keeps_good_weights(digits, tmp_path):
    model = _vae()
    out = tmp_path / "nan.safetensors"
    poison = {"armed": False}
    original = model.train_step

    def train_step(x, optimizers, step):
        if step >= 25:  # after the first epoch (23 steps of 64) completed
            x = x.clone()
            x[0, 0, 0, 0] = float("nan")
        return original(x, optimizers, step)

    model.train_step = train_step
    trainer = Trainer(model, digits, TrainConfig(epochs=3, batch_size=64, device="cpu", checkpoint_path=str(out)))
    with pytest.raises(TrainingError, match="NaN|nan") as err:
        trainer.run()
    assert "last good weights" in str(err.value)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    saved = checkpoint.load(out)  # the completed epoch was kept on disk
    assert saved.metadata["history"]["epochs"] == 1


def test_nan_weights_are_rolled_back(digits):
    model = _vae()
    original = model.train_step

    def train_step(x, optimizers, step):
        out = original(x, optimizers, step)
        if step == 30:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return out

    model.train_step = train_step
    with pytest.raises(TrainingError):
        Trainer(model, digits, TrainConfig(epochs=3, batch_size=64, device="cpu")).run()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_out_of_memory_suggests_smaller_batch(digits):
    model = _vae()

    def train_step(x, optimizers, step):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.train_step = train_step
    with pytest.raises(TrainingError, match=r"smaller batch.*--batch-size 64"):
        Trainer(model, digits, TrainConfig(epochs=1, batch_size=128, device="cpu")).run()


def test_resume_continues_history_and_optimizer(digits, tmp_path):
    path = tmp_path / "r.safetensors"
    model = _vae()
    Trainer(model, digits, TrainConfig(epochs=2, batch_size=64, device="cpu", checkpoint_path=str(path))).run()
    loaded = checkpoint.load(path, with_optimizer_state=True)
    fresh = build_model(loaded.family, loaded.config)
    trainer = Trainer(fresh, digits, TrainConfig(epochs=1, batch_size=64, device="cpu", checkpoint_path=str(path)))
    trainer.resume_from(loaded)
    result = trainer.run()
    assert result.history[-1]["epoch"] == 3
    assert checkpoint.inspect(path)["history"]["epochs"] == 3
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_periodic_checkpoints(digits, tmp_path):
    path = tmp_path / "p.safetensors"
    saves = []
    cfg = TrainConfig(epochs=3, batch_size=256, device="cpu", checkpoint_path=str(path), checkpoint_every=1)
    Trainer(_vae(), digits, cfg, callbacks={"checkpoint_saved": lambda path, final: saves.append(final)}).run()
    assert saves == [False, False, False, True]


def test_pca_trains_in_closed_form(digits):
    model = build_model("pca", latent_dim=6, image_shape=SHAPE)
    result = Trainer(model, digits, TrainConfig(epochs=1, device="cpu")).run()
    assert result.epochs_completed == 1 and "test_loss" in result.final_metrics


def test_mismatched_image_shape_is_refused(digits):
    model = build_model("vae", latent_dim=4, image_shape=(1, 28, 28))
    with pytest.raises(TrainingError, match=r"\[1, 8, 8\].*\[1, 28, 28\]"):
        Trainer(model, digits)


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            select_device("cuda")
    with pytest.raises(ValueError, match="unknown device|unsupported"):
        select_device("tpu9")
