"""One thread budget for the whole application.

Why: PyTorch's OpenMP teams (and numba's, in the projection child) are sized to every core by default and
spin-wait at each barrier. Two such teams on the same cores, or one beside any other busy process, wait a
whole scheduler time slice at every barrier: the same small CLI training ran 36x slower beside one CPU-bound
process (206 vs 7,481 images/s with ``OMP_WAIT_POLICY=PASSIVE``, 9,160 with one thread). So:

* the OpenMP wait policy is PASSIVE (threads sleep at barriers instead of spinning). libgomp reads it once,
  when torch loads it, so :mod:`explorer` (the package ``__init__``, which every entry point, child process
  and script imports before ``explorer.core``) puts it in the environment before torch is imported; child
  processes inherit it. A user's own ``OMP_WAIT_POLICY`` wins; ``LATENT_EXPLORER_OMP_WAIT=default`` leaves
  OpenMP's own default.
* every concurrent job gets a share of the cores (:func:`share`) and sets it in its own thread before its
  first parallel call (:func:`apply`). ``torch.set_num_threads`` sets the *calling thread's* OpenMP team size
  (and the default for threads that have not made a parallel call yet), so each job calls it where it runs.

Jobs:

========== ======================================================================================
cli-train  the ``train`` command: the process's only job, every core
training   the GUI's training thread, beside the GUI thread and a projection fit
projection a projection fitted inside the window's process
projection-child the projection child process: every core, since the child runs niced (it takes only cores
           the GUI and a training run leave idle; on 2 cores one thread made UMAP 43 s instead of 22)
task       background tasks of the window (encoding a data set, metrics, comparisons)
decode     the live decode worker (batch-1 decodes do not parallelise; latency matters)
gui        the GUI thread itself (small inline decodes, painting)
========== ======================================================================================

``LATENT_EXPLORER_THREADS=N`` sets the cores the budget divides (default: the cores this process may run
on); a user's ``OMP_NUM_THREADS`` caps every share.
"""

from __future__ import annotations

import os
import sys

JOBS = ("cli-train", "training", "projection", "projection-child", "task", "decode", "gui")
WAIT_POLICY = "PASSIVE"  # see explorer/__init__.py, which applies it before torch is imported


class ThreadBudgetError(ValueError):
    """A bad job name or a bad LATENT_EXPLORER_THREADS value."""


def _positive_env(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ThreadBudgetError(f"{name} must be a positive whole number, got {raw!r}") from None
    if value < 1:
        raise ThreadBudgetError(f"{name} must be a positive whole number, got {raw!r}")
    return value


def available_cores() -> int:
    """Cores the budget divides: LATENT_EXPLORER_THREADS, else the cores this process may run on."""
    configured = _positive_env("LATENT_EXPLORER_THREADS")
    if configured is not None:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def share(job: str, cores: int | None = None) -> int:
    """Threads for ``job`` (one of :data:`JOBS`) out of ``cores`` (default :func:`available_cores`).

    One core is left to the GUI thread and the decode worker; the background jobs that may run together in
    a window (training, a projection fit, a task) split the rest, training taking the larger half.
    """
    if job not in JOBS:
        raise ThreadBudgetError(f"unknown job {job!r}; known: {', '.join(JOBS)}")
    total = available_cores() if cores is None else max(1, int(cores))
    background = max(1, total - 1)
    if job in ("cli-train", "projection-child"):
        n = total
    elif job == "training":
        n = background - background // 2
    elif job in ("projection", "task"):
        n = background // 2
    else:  # decode, gui
        n = 1
    cap = _positive_env("OMP_NUM_THREADS")
    if cap is not None:
        n = min(n, cap)
    return max(1, n)


def apply(job: str, cores: int | None = None) -> int:
    """Give the calling thread ``job``'s share before its first parallel call; returns the thread count.

    Sets torch's intra-op threads for this thread, and numba's when numba is loaded (numba's count is per
    thread as well). Cheap enough to call at the start of every task.
    """
    n = share(job, cores)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            numba.set_num_threads(min(n, int(numba.config.NUMBA_NUM_THREADS)))
        except (ValueError, AttributeError):  # numba's pool is smaller or not configurable
            pass
    return n


def configure_child(job: str = "projection-child") -> int:
    """First call in a child process: size numba's pool before numba is imported, then :func:`apply`."""
    n = share(job)
    if "numba" not in sys.modules and _positive_env("NUMBA_NUM_THREADS") is None:
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    return apply(job)


def wait_policy() -> str | None:
    """The OpenMP wait policy this process was started with (None: OpenMP's own default)."""
    return os.environ.get("OMP_WAIT_POLICY") or None


__all__ = ["JOBS", "WAIT_POLICY", "ThreadBudgetError", "apply", "available_cores", "configure_child", "share",
           "wait_policy"]
