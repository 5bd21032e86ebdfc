"""The one thread budget and the OpenMP wait policy."""

import os
import subprocess
import sys
import threading

import pytest

from explorer.core import threads


@pytest.fixture
def budget(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LATENT_EXPLORER_THREADS", raising=False)


@pytest.mark.parametrize("cores, expected", [
    (1, {"cli-train": 1, "training": 1, "projection": 1, "projection-child": 1, "task": 1, "decode": 1, "gui": 1}),
    (2, {"cli-train": 2, "training": 1, "projection": 1, "projection-child": 2, "task": 1, "decode": 1, "gui": 1}),
    (4, {"cli-train": 4, "training": 2, "projection": 1, "projection-child": 4, "task": 1, "decode": 1, "gui": 1}),
    (16, {"cli-train": 16, "training": 8, "projection": 7, "projection-child": 16, "task": 7, "decode": 1,
          "gui": 1}),
])
def test_shares(budget, cores, expected):
    assert {job: threads.share(job, cores) for job in threads.JOBS} == expected
    # The window's jobs that run together never ask for more than the cores (GUI + training + projection).
    if cores > 2:
        assert threads.share("gui", cores) + threads.share("training", cores) + threads.share("projection", cores) <= cores


def test_environment_sets_and_caps_the_budget(budget, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_THREADS", "6")
    assert threads.available_cores() == 6 and threads.share("training") == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.share("cli-train") == 2 and threads.share("training") == 2
    monkeypatch.setenv("LATENT_EXPLORER_THREADS", "lots")
    with pytest.raises(threads.ThreadBudgetError, match="LATENT_EXPLORER_THREADS.*'lots'"):
        threads.share("training")
    with pytest.raises(threads.ThreadBudgetError, match="unknown job 'gpu'"):
        threads.share("gpu", 4)


def test_apply_sets_the_calling_threads_team(budget, monkeypatch):
    import torch

    monkeypatch.setenv("LATENT_EXPLORER_THREADS", "5")
    seen = {}

    def job(name):
        threads.apply(name)
        seen[name] = torch.get_num_threads()

    before = torch.get_num_threads()
    try:
        for name in ("training", "decode"):
            t = threading.Thread(target=job, args=(name,))
            t.start()
            t.join()
    finally:
        torch.set_num_threads(before)
    assert seen == {"training": 2, "decode": 1}


def _python(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "LATENT_EXPLORER_OMP_WAIT")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120,
                          check=True).stdout.split()


def test_wait_policy_is_set_before_torch_loads_and_reaches_child_processes():
    code = ("import sys, explorer, os, subprocess; assert 'torch' not in sys.modules; "
            "print(os.environ.get('OMP_WAIT_POLICY')); "
            "print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"OMP_WAIT_POLICY\"))'], "
            "capture_output=True, text=True).stdout.strip())")
    assert _python(code) == ["PASSIVE", "PASSIVE"]
    assert _python(code, OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "ACTIVE"]  # the user's choice wins
    assert _python(code, LATENT_EXPLORER_OMP_WAIT="default") == ["None", "None"]


def test_projection_child_sizes_numba_before_importing_it():
    code = ("import sys, os; from explorer.core import threads; n = threads.configure_child('projection'); "
            "import numba; print(n, os.environ['NUMBA_NUM_THREADS'], numba.config.NUMBA_NUM_THREADS, "
            "numba.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         env={**env, "LATENT_EXPLORER_THREADS": "5"}).stdout.split()
    assert out == ["2", "2", "2", "2"]
