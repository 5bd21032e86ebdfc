"""The trainer's pause token and weight snapshots (no Qt)."""

import threading
import time

import torch

from explorer.core.models import build_model
from explorer.core.training import PauseToken, TrainConfig, Trainer
from explorer.core.training.snapshot import ModelSnapshot, cpu_state_dict


def _vae():
    torch.manual_seed(0)
    return build_model("vae", latent_dim=4, image_shape=(1, 8, 8), hidden=(32,))


def test_pause_blocks_between_steps_and_resume_goes_on(digits):
    token = PauseToken()
    steps, events = [], []

    def on_step(info):
        steps.append(info.step)
        if info.step == 5:
            token.pause()
            # Resume from another thread later; the loop must not step meanwhile.
            threading.Timer(0.4, token.resume).start()

    cfg = TrainConfig(epochs=1, batch_size=64, device="cpu", max_steps=10)
    trainer = Trainer(_vae(), digits, cfg, pause_token=token, callbacks={
        "step_end": on_step,
        "paused": lambda **kw: events.append(("paused", kw["global_step"], time.perf_counter())),
        "resumed": lambda **kw: events.append(("resumed", kw["global_step"], time.perf_counter(),
                                               kw["paused_seconds"])),
    })
    t0 = time.perf_counter()
    result = trainer.run()
    wall = time.perf_counter() - t0
    assert result.steps == 10 and steps == list(range(1, 11))
    (p, p_step, p_t), (r, r_step, r_t, paused_s) = events
    assert (p, r) == ("paused", "resumed") and p_step == r_step == 5  # no step taken while paused
    assert 0.3 < paused_s < 2.0 and r_t - p_t >= 0.3
    # Paused time is left out of the trainer's clock (and so of images/s).
    assert result.seconds < wall - 0.3


def test_stop_wakes_a_paused_trainer(digits):
    token = PauseToken()
    stop = threading.Event()
    token.pause()  # paused before the first step
    trainer = Trainer(_vae(), digits, TrainConfig(epochs=1, batch_size=64, device="cpu"),
                      stop_event=stop, pause_token=token)
    threading.Timer(0.2, trainer.stop).start()
    t0 = time.perf_counter()
    result = trainer.run()
    assert result.stopped and result.steps == 0
    assert time.perf_counter() - t0 < 2.0


def test_snapshot_rebuilds_an_independent_model(digits):
    model = _vae()
    Trainer(model, digits, TrainConfig(epochs=1, batch_size=64, device="cpu")).run()
    snap = ModelSnapshot(run_id="r", family=model.family, config=model.config.to_dict(),
                         state_dict=cpu_state_dict(model), epoch=1, step=24, dataset="digits",
                         label_names=list(digits.label_names))
    rebuilt = snap.build_model()
    z = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.allclose(rebuilt.decode(z), model.decode(z))
        next(rebuilt.decoder.parameters()).add_(1.0)  # the copy is private: neither model nor snapshot change
        assert not torch.allclose(rebuilt.decode(z), model.decode(z))
    assert torch.equal(snap.state_dict["decoder.0.weight"], model.state_dict()["decoder.0.weight"])
    meta = snap.metadata()
    assert meta["family"] == "vae" and meta["history"]["epochs"] == 1 and meta["dataset"] == "digits"
    assert snap.nbytes() > 0
