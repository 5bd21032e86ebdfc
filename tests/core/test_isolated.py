"""Slow projections fitted in a child process: results, cancel, errors, a dead child."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from explorer.core.latent import Cancelled
from explorer.core.latent.isolated import ProjectionProcess, ProjectionProcessError

TSNE = {"n_iter": 150, "early_exaggeration_iter": 50, "seed": 0, "inverse_steps": 300}


@pytest.fixture(scope="module")
def latents():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(4, 6))
    return (centres[np.arange(800) % 4] + rng.normal(size=(800, 6))).astype(np.float32)


@pytest.fixture(scope="module")
def proc():
    p = ProjectionProcess()
    yield p
    p.close()


@pytest.fixture(scope="module")
def fitted(proc, latents):
    seen = []
    proj = proc.fit("tsne", latents, TSNE, progress=lambda f, m: seen.append(f))
    return proj, seen


def test_tsne_in_child_matches_the_interface(proc, latents, fitted):
    proj, seen = fitted
    assert proj.method == "tsne" and proj.embedding.shape == (800, 2)
    assert proj.inverse_ready and proj.inverse_error < 0.9
    # The four clusters stay apart on the map: neighbours on the map share a cluster.
    _, idx = proj.nearest(proj.embedding[:50] + 1e-3, k=1)
    assert np.mean(np.ravel(idx) % 4 == np.arange(50) % 4) > 0.9
    z = proj.inverse(proj.embedding[:5])
    assert z.shape == (5, 6) and np.isfinite(z).all()
    assert seen and max(seen) <= 1.0
    assert proc.alive  # the child stays for the next request


def test_new_points_are_placed_by_the_library_transform(proc, latents, fitted):
    proj, _ = fitted  # the child that fitted it is still running
    assert proc.can_transform(proj)
    new = latents[:3] + 0.01
    pos = proc.transform(proj, new)
    assert pos.shape == (3, 2) and np.isfinite(pos).all()
    # openTSNE places a point next to its near-duplicate in the data.
    spread = np.ptp(proj.embedding, axis=0).max()
    assert np.linalg.norm(pos - proj.embedding[:3], axis=1).max() < 0.1 * spread


def test_cancel_kills_the_child_quickly(proc, latents, fitted):
    cancel = threading.Event()
    big = np.repeat(latents, 20, axis=0) + np.random.default_rng(1).normal(size=(16000, 6)).astype(np.float32)
    threading.Timer(1.0, cancel.set).start()
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        proc.fit("tsne", big, {"seed": 0}, cancel=cancel)
    assert time.perf_counter() - t0 < 6.0
    assert not proc.alive
    assert not proc.can_transform(fitted[0])  # the killed child's maps are gone with it
    # ...and the next request starts a fresh child.
    proj = proc.fit("dims", latents, {"i": 0, "j": 2})
    np.testing.assert_array_equal(proj.embedding, latents[:, [0, 2]])


def test_errors_name_the_problem(proc, latents):
    with pytest.raises(ValueError, match="unknown projection"):
        proc.fit("nope", latents)
    with pytest.raises(ProjectionProcessError, match="tsne"):
        proc.fit("tsne", np.full((50, 3), np.nan, np.float32), TSNE)


def test_a_dead_child_is_reported(proc, latents):
    proc.fit("pca", latents)  # make sure it is running
    cancel = threading.Event()
    big = np.repeat(latents, 20, axis=0)
    threading.Timer(0.8, proc.kill).start()
    with pytest.raises(ProjectionProcessError, match="stopped"):
        proc.fit("tsne", big, {"seed": 0}, cancel=cancel)


PARENT = """
import os, signal, sys, threading, time
from explorer.core.latent.isolated import ProjectionProcess
proc = ProjectionProcess()
threading.Thread(target=proc.warm_up, daemon=True).start()  # the child is busy compiling numba's kernels
while proc._proc is None:
    time.sleep(0.05)
print(proc._proc.pid, flush=True)
time.sleep(2.0)
os.kill(os.getpid(), signal.SIGKILL)  # no clean-up runs: as when the window is killed or crashes
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_child_exits_when_its_parent_is_killed_mid_fit():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert parent.wait(30) == -signal.SIGKILL
    deadline = time.monotonic() + 15
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the projection child outlived its killed parent")


def test_partial_tsne_maps_stream_from_the_child(proc, latents):
    frames = []
    proj = proc.fit("tsne", latents, {**TSNE, "n_iter": 400, "callbacks_every": 5}, inverse=False,
                    preview=frames.append)
    assert frames, "no partial map arrived from the child"
    assert all(f.shape == (800, 2) and np.isfinite(f).all() for f in frames)
    assert not np.allclose(frames[0], proj.embedding)


def test_progress_moves_while_waiting_for_a_busy_child(proc, latents):
    seen = []
    proc._lock.acquire()  # as a UMAP warm-up holding the child would
    releaser = threading.Timer(1.2, proc._lock.release)
    releaser.start()
    try:
        proc.fit("pca", latents, progress=lambda f, m: seen.append((f, m)))
    finally:
        releaser.join()
    waiting = [f for f, m in seen if m.startswith("waiting")]
    assert len(waiting) >= 3 and waiting == sorted(waiting) and 0 < waiting[-1] < 0.3
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # the fit continues from the wait
