"""The training panel: a real worker thread training tiny models on the 8x8 digits (CPU).

Memory bound for the start/stop cycles: resident memory may grow by at most 40 MB over 50 cycles
after a warm-up (a leak of one tiny model, optimiser, data copy or thread stack per cycle would
show as several MB per cycle); every worker and QThread object must be freed.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref

import numpy as np
import pytest
import torch
from PySide6.QtCore import QThread

from explorer.core import checkpoint
from explorer.core.models.vae import VAE
from explorer.gui.training import ModelSnapshot, TrainingPanel, TrainingSpec

TIMEOUT_MS = 30_000


def tiny(**overrides) -> TrainingSpec:
    spec = TrainingSpec(kind="vae", dataset="digits", latent_dim=4, hidden=(32,), epochs=2, batch_size=64,
                        lr=3e-3, device="cpu", progress_interval_s=0.0, n_sample_grid=8)
    return spec.replace(**overrides)


@pytest.fixture
def panel(qtbot, tmp_path):
    widget = TrainingPanel(checkpoint_dir=tmp_path / "auto", devices=[("cpu", "CPU")])
    qtbot.addWidget(widget)
    widget.resize(1200, 760)
    widget.show()
    yield widget
    widget.shutdown()
    assert widget.job is None


@pytest.fixture
def step_counter(monkeypatch):
    """Counts VAE training steps (on the worker thread) and can slow each one down."""
    state = {"calls": 0, "delay": 0.0, "poison_from": None}
    original = VAE.train_step

    def train_step(self, x, optimizers, step):
        state["calls"] += 1
        if state["delay"]:
            time.sleep(state["delay"])
        if state["poison_from"] is not None and step >= state["poison_from"]:
            x = x.clone()
            x[0, 0, 0, 0] = float("nan")
        return original(self, x, optimizers, step)

    monkeypatch.setattr(VAE, "train_step", train_step)
    return state


def wait_finished(qtbot, panel) -> dict:
    if panel.job is None and panel.last_result is not None:
        return panel.last_result
    with qtbot.waitSignal(panel.trainingFinished, timeout=TIMEOUT_MS) as blocker:
        pass
    return blocker.args[0]


def buttons(panel) -> tuple[bool, bool, bool, bool]:
    return (panel.start_button.isEnabled(), panel.pause_button.isEnabled(), panel.resume_button.isEnabled(),
            panel.stop_button.isEnabled())


def test_short_training_reports_progress_and_hands_over_weights(panel, qtbot, tmp_path):
    progress, snapshots = [], []
    panel.trainingProgress.connect(progress.append)
    panel.modelSnapshot.connect(snapshots.append)
    out = tmp_path / "run.safetensors"
    with qtbot.waitSignal(panel.trainingStarted, timeout=TIMEOUT_MS) as started:
        assert panel.start(tiny(checkpoint_path=str(out), checkpoint_every=1))
        assert buttons(panel) == (False, True, False, True)
        assert not panel.settings_boxes[0].isEnabled()
    thread = panel.job.thread
    info = started.args[0]
    assert info["steps_per_epoch"] == 24 and info["total_steps"] == 48 and info["device"] == "cpu"
    result = wait_finished(qtbot, panel)

    assert result["ok"] and not result["stopped"] and result["error"] is None
    assert result["epochs_completed"] == 2 and result["steps"] == 48
    assert not thread.isRunning() and panel.job is None and panel.state == "idle"
    assert buttons(panel) == (True, False, False, False)
    # Progress: every step here (interval 0), increasing, with speed and time left.
    steps = [p["global_step"] for p in progress]
    assert len(progress) >= 40 and steps == sorted(steps) and steps[-1] == 48
    assert all(p["images_per_second"] > 0 and p["eta_s"] >= 0 for p in progress)
    assert {"recon", "kl", "loss"} <= set(progress[-1]["metrics"])
    assert panel.progress_bar.value() == panel.progress_bar.maximum() == 48
    # Live views: both VAE terms plotted, one KL bar per latent dimension, image grids.
    assert panel.loss_plot.point_count("recon") >= 40 and panel.loss_plot.point_count("kl") >= 40
    assert len(panel.bars_plot.values) == 4 and np.all(panel.bars_plot.values >= 0)
    assert panel.samples_view.last_array is not None and panel.samples_view.last_array.dtype == np.uint8
    recon = panel.recon_view.last_array
    assert recon is not None and recon.shape[0] == 2 * 8 + 3  # an originals row and a reconstructions row
    assert "active dims" in panel.metrics_label.text()
    # Snapshots: one per epoch, then the final weights; CPU copies that rebuild a model.
    assert [s.epoch for s in snapshots] == [1, 2, 2] and [s.final for s in snapshots] == [False, False, True]
    assert all(isinstance(s, ModelSnapshot) and s.run_id == info["run_id"] for s in snapshots)
    assert all(t.device.type == "cpu" for s in snapshots for t in s.state_dict.values())
    assert snapshots[0].metrics["kl_per_dim"] and len(snapshots[0].metrics["kl_per_dim"]) == 4
    model = snapshots[-1].build_model()
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = model.decode(z)
        assert images.shape == (5, 1, 8, 8) and 0 <= float(images.min()) and float(images.max()) <= 1
        # The final snapshot is exactly what was saved.
        saved = checkpoint.load(out)
        assert torch.allclose(saved.decode(z), images)
    assert saved.metadata["history"]["epochs"] == 2 and saved.metadata["dataset"] == "digits"
    assert str(out) in panel.message_label.text()


def test_stop_is_honoured_within_one_step_and_saves(panel, qtbot, step_counter, tmp_path):
    step_counter["delay"] = 0.02
    out = tmp_path / "stopped.safetensors"
    panel.start(tiny(epochs=100, checkpoint_path=str(out)))
    qtbot.waitUntil(lambda: step_counter["calls"] >= 5, timeout=TIMEOUT_MS)
    at_stop = step_counter["calls"]
    panel.stop()
    assert buttons(panel) == (False, False, False, False) and panel.state == "stopping"
    result = wait_finished(qtbot, panel)
    assert result["stopped"] and result["ok"]
    assert step_counter["calls"] - at_stop <= 1  # the step under way, never another
    assert result["steps"] == step_counter["calls"]
    assert checkpoint.load(out).metadata["history"]["steps"] == result["steps"]
    assert buttons(panel) == (True, False, False, False)


def test_pause_blocks_without_burning_cpu_and_resume_goes_on(panel, qtbot, step_counter):
    step_counter["delay"] = 0.01
    panel.start(tiny(epochs=100))
    qtbot.waitUntil(lambda: step_counter["calls"] >= 3, timeout=TIMEOUT_MS)
    panel.pause()
    assert buttons(panel) == (False, False, True, True)
    qtbot.waitUntil(lambda: "Paused at step" in panel.stats_label.text(), timeout=TIMEOUT_MS)
    paused_at = step_counter["calls"]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    qtbot.wait(600)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert step_counter["calls"] == paused_at  # no step while paused
    assert cpu < 0.5 * wall  # the trainer sleeps; it does not spin
    assert panel.job.thread.isRunning()
    panel.resume()
    assert buttons(panel) == (False, True, False, True)
    qtbot.waitUntil(lambda: step_counter["calls"] >= paused_at + 3, timeout=TIMEOUT_MS)
    panel.stop()
    result = wait_finished(qtbot, panel)
    assert result["stopped"] and result["steps"] >= paused_at + 3


def test_nan_loss_is_reported_and_last_good_weights_kept(panel, qtbot, step_counter, tmp_path):
    step_counter["poison_from"] = 30  # after the first epoch (24 steps) completed
    out = tmp_path / "nan.safetensors"
    snapshots = []
    panel.modelSnapshot.connect(snapshots.append)
    panel.start(tiny(epochs=5, checkpoint_path=str(out)))
    result = wait_finished(qtbot, panel)
    assert not result["ok"] and "nan" in result["error"].lower()
    # Shown in the panel, as an error, with what happened to the weights.
    text = panel.message_label.text()
    assert panel.message_label.isVisible() and panel.message_label.property("kind") == "error"
    assert "last good weights" in text and str(out) in text
    assert buttons(panel) == (True, False, False, False) and panel.state == "idle"
    # The weights handed over last are the kept ones: finite, equal to what was saved.
    final = snapshots[-1]
    assert final.final and final.epoch == 1
    assert all(torch.isfinite(t).all() for t in final.state_dict.values())
    saved = checkpoint.load(out)  # load() refuses non-finite tensors
    assert saved.metadata["history"]["epochs"] == 1
    assert all(torch.equal(saved.state_dict()[k], v) for k, v in final.state_dict.items())


def test_out_of_memory_suggests_a_smaller_batch(panel, qtbot, monkeypatch):
    def oom(self, x, optimizers, step):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(VAE, "train_step", oom)
    panel.start(tiny(batch_size=64))
    wait_finished(qtbot, panel)
    text = panel.message_label.text()
    assert "Out of memory" in text and "batch size 64" in text and "e.g. 32" in text
    assert panel.message_label.property("kind") == "error"


def test_missing_data_folder_is_reported(panel, qtbot, tmp_path):
    missing = tmp_path / "no-such-folder"
    panel.start(tiny(dataset=f"folder:{missing}"))
    result = wait_finished(qtbot, panel)
    assert not result["ok"]
    assert panel.message_label.text().startswith("Could not load the data set")
    assert str(missing) in panel.message_label.text()
    assert panel.last_snapshot is None and panel.state == "idle"


def test_invalid_settings_do_not_start(panel):
    assert not panel.start(tiny(dataset=""))
    assert panel.job is None and "choose a data set" in panel.message_label.text()


def test_request_close_asks_then_stops_and_saves(panel, qtbot, step_counter, tmp_path):
    asked = []
    panel.confirm_close = lambda question: asked.append(question) or False
    assert panel.request_close() and not asked  # nothing running: no question
    step_counter["delay"] = 0.01
    out = tmp_path / "close.safetensors"
    panel.start(tiny(epochs=100, checkpoint_path=str(out)))
    qtbot.waitUntil(lambda: step_counter["calls"] >= 3, timeout=TIMEOUT_MS)
    thread = panel.job.thread
    assert not panel.request_close()  # the user said no: training goes on
    assert asked and str(out) in asked[0] and panel.is_running
    panel.confirm_close = lambda question: True
    assert panel.request_close()
    assert not thread.isRunning() and panel.job is None
    assert panel.last_result["stopped"] and checkpoint.load(out).metadata["history"]["steps"] >= 3


def test_resume_continues_a_saved_checkpoint(panel, qtbot, tmp_path):
    first = tmp_path / "first.safetensors"
    panel.start(tiny(epochs=1, checkpoint_path=str(first)))
    assert wait_finished(qtbot, panel)["ok"]
    snapshots = []
    panel.modelSnapshot.connect(snapshots.append)
    panel.choose_checkpoint = lambda: str(first)
    panel._pick_resume()  # the "…" button beside "Continue from"
    assert panel.spec().resume_path == str(first) and not panel.family_box.isEnabled()
    assert panel.checkpoint_edit.text() == str(first)  # continuing a file saves back into it
    panel.set_spec(tiny(epochs=1, kind="ae", resume_path=str(first), checkpoint_path=str(first)))
    with qtbot.waitSignal(panel.trainingStarted, timeout=TIMEOUT_MS) as started:
        panel.start()
    assert started.args[0]["family"] == "vae" and started.args[0]["first_epoch"] == 2  # the checkpoint's model
    result = wait_finished(qtbot, panel)
    assert result["ok"] and [s.epoch for s in snapshots] == [2, 2]
    assert checkpoint.load(first).metadata["history"]["epochs"] == 2


def test_gan_and_pca_runs(panel, qtbot):
    epochs = []
    panel.start(tiny(kind="gan", latent_dim=8, base_channels=8, epochs=1, batch_size=128, lr=2e-4))
    panel.job.worker.epochEnded.connect(epochs.append)
    result = wait_finished(qtbot, panel)
    assert result["ok"]
    assert {"d_loss", "g_loss"} <= set(result["final_metrics"])
    assert panel.loss_plot.point_count("d_loss") > 0 and panel.loss_plot.point_count("g_loss") > 0
    assert not panel.bars_plot.isVisible()
    assert panel.samples_view.last_array is not None and panel.recon_view.last_array is None
    assert panel.last_snapshot.build_model().decode(torch.zeros(2, 8)).shape == (2, 1, 8, 8)

    panel.start(tiny(kind="pca", latent_dim=6))
    result = wait_finished(qtbot, panel)
    assert result["ok"] and panel.bars_plot.isVisible() and len(panel.bars_plot.values) == 6
    assert panel.last_snapshot.build_model().encode(torch.rand(3, 1, 8, 8)).shape == (3, 6)


def test_form_fields_follow_the_family(panel):
    panel.family_box.setCurrentIndex(panel.family_box.findData("gan"))
    assert not panel.arch_box.isEnabled() and not panel.model_form.isRowVisible(panel.extra_spin)
    assert panel.lr_spin.value() == pytest.approx(2e-4)
    panel.family_box.setCurrentIndex(panel.family_box.findData("vae"))
    assert panel.arch_box.isEnabled() and panel.model_form.isRowVisible(panel.extra_spin)
    assert panel.extra_label.text().startswith("β") and panel.lr_spin.value() == pytest.approx(1e-3)
    panel.extra_spin.setValue(4.0)
    panel.family_box.setCurrentIndex(panel.family_box.findData("vae"))
    spec = panel.spec()
    assert spec.kind == "vae" and spec.extra == 4.0 and spec.model_config((1, 8, 8))["beta"] == 4.0
    # "Image folder…" asks for a folder and selects it.
    panel.choose_folder = lambda kind: "/data/pictures"
    panel._dataset_activated(panel.dataset_box.findData("__pick_folder__"))
    assert panel.spec().dataset == "folder:/data/pictures"
    panel.choose_folder = lambda kind: None  # cancelled: the selection stays
    panel._dataset_activated(panel.dataset_box.findData("__pick_celeba__"))
    assert panel.spec().dataset == "folder:/data/pictures"
    panel.set_spec(tiny(kind="dae", extra=0.25, epochs=7))
    spec = panel.spec()
    assert (spec.kind, spec.extra, spec.epochs, spec.dataset) == ("dae", 0.25, 7, "digits")
    assert spec.model_config((1, 8, 8))["denoising_std"] == 0.25
    assert panel.device_box.currentData() == "cpu"
    # The faces demo's loss: a VAE whose extra setting is the perceptual weight (β preset to the demo's 0.1).
    panel.family_box.setCurrentIndex(panel.family_box.findData("vae-perceptual"))
    assert panel.arch_box.isEnabled() and panel.extra_label.text() == "Perceptual weight"
    assert panel.extra_spin.value() == pytest.approx(0.25)
    spec = panel.spec()
    cfg = spec.model_config((3, 64, 64))
    assert spec.family == "vae" and cfg["perceptual"] == pytest.approx(0.25) and cfg["beta"] == pytest.approx(0.1)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.slow
def test_fifty_start_stop_cycles_leave_no_threads_and_bounded_memory(panel, qtbot):
    spec = tiny(epochs=1000)
    refs: list[weakref.ref] = []

    def cycle(i: int) -> None:
        assert panel.start(spec)
        job = panel.job
        refs.extend([weakref.ref(job), weakref.ref(job.worker), weakref.ref(job.thread)])
        thread = job.thread
        if i % 2:  # half the cycles stop mid-training, half while the data is still loading
            qtbot.waitUntil(lambda: panel.last_progress is not None, timeout=TIMEOUT_MS)
        panel.stop()
        result = wait_finished(qtbot, panel)
        assert result["stopped"] or result["ok"]
        assert not thread.isRunning() and thread.isFinished()

    for i in range(4):  # warm-up: imports, allocator pools, torch's thread pool
        cycle(i)
    gc.collect()
    py_threads, os_threads, rss = threading.active_count(), _os_threads(), _rss_mb()
    for i in range(50):
        cycle(i)
    del refs[:12]
    gc.collect()
    qtbot.wait(50)
    gc.collect()
    assert threading.active_count() == py_threads
    assert _os_threads() <= os_threads  # every QThread ended, none left behind
    assert all(r() is None for r in refs), "a TrainingJob, worker or QThread outlived its run"
    assert not any(type(o) is QThread and o.isRunning() for o in gc.get_objects())
    growth = _rss_mb() - rss
    print(f"50 cycles: RSS {rss:.0f} -> {rss + growth:.0f} MB, OS threads {os_threads} -> {_os_threads()}, "
          f"Python threads {py_threads} -> {threading.active_count()}")
    assert growth < 40, f"resident memory grew by {growth:.1f} MB over 50 cycles"
