"""Data-parallel training (torchrun's environment, gloo on 127.0.0.1) equals a single-process run."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

# The launcher each process runs: the real CLI, after two test-only changes that are the same in every run.
# The VAE's reparameterisation noise is zeroed (ranks draw their own noise, so a noisy run could only be
# compared statistically); STOP_RANK/STOP_AT ask one rank to stop, as a signal would.
LAUNCHER = """
import os, sys, torch
torch.randn_like = lambda t, **kw: torch.zeros_like(t, **kw)
from explorer.core.training import trainer as tr
rank = int(os.environ.get("RANK", "0"))
if os.environ.get("STOP_RANK") == str(rank):
    init = tr.Trainer.__init__
    def patched(self, *a, **k):
        init(self, *a, **k)
        at = int(os.environ["STOP_AT"])
        self.on("step_end", lambda info: self.stop() if info.step == at else None)
    tr.Trainer.__init__ = patched
from explorer.cli import main
raise SystemExit(main(sys.argv[1:]))
"""

TRAIN = ["train", "--model", "vae", "--arch", "mlp", "--latent-dim", "4", "--hidden", "32", "--dataset", "digits",
         "--batch-size", "63", "--seed", "3", "--device", "cpu", "--no-progress", "--finite-check-every", "5"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "STOP_RANK", "STOP_AT"):
        env.pop(key, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _single(args, **extra):
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *args], env=_env(**extra), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ranks(args, world=2, **extra):
    """What torchrun does for one node: the same command with RANK/WORLD_SIZE/MASTER_* set per process."""
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, "-c", LAUNCHER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=_env(RANK=r, LOCAL_RANK=r, WORLD_SIZE=world, MASTER_ADDR="127.0.0.1",
                                             MASTER_PORT=port, **extra))
        for r in range(world)
    ]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err
        outs.append(out)
    return outs


def test_two_gloo_ranks_equal_one_process(tmp_path):
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    # Two epochs of the digits' 1500 training images in global batches of 63 (split 32/31, the last one of 51
    # split 26/25): uneven shards, so the gradient weighting matters.
    single = _single([*TRAIN, "--epochs", "2", "--out", str(one)])
    outs = _ranks([*TRAIN, "--epochs", "2", "--out", str(two)])
    assert outs[1].strip() == ""  # only rank 0 reports
    ddp = json.loads(outs[0].strip().splitlines()[-1])
    assert ddp["world_size"] == 2 and ddp["steps"] == single["steps"] == 48
    a, b = load_file(one), load_file(two)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    for key in ("loss", "recon", "kl", "test_loss"):  # train metrics summed over ranks, as one process sees them
        assert ddp["final_metrics"][key] == pytest.approx(single["final_metrics"][key], rel=1e-4)


def test_a_stop_on_one_rank_stops_all_and_resume_goes_on(tmp_path):
    out = tmp_path / "stop.safetensors"
    outs = _ranks([*TRAIN, "--epochs", "50", "--out", str(out)], STOP_RANK=1, STOP_AT=7)
    first = json.loads(outs[0].strip().splitlines()[-1])
    # Rank 1 asked at step 7; the ranks agree at the next check (every 5 steps) and stop together.
    assert first["stopped_early"] and first["steps"] == 10
    outs = _ranks([*TRAIN, "--epochs", "1", "--resume", str(out), "--out", str(out)])
    resumed = json.loads(outs[0].strip().splitlines()[-1])
    assert resumed["steps"] == 10 + 24 and resumed["world_size"] == 2


def test_shards_cover_the_global_batch_with_weights_summing_to_one():
    from explorer.core.training.distributed import DistContext

    idx = torch.arange(7)
    parts = [DistContext(rank=r, world_size=3, local_rank=r, backend="gloo").shard(idx) for r in range(3)]
    assert torch.equal(torch.cat([p for p, _ in parts]), idx)
    assert [len(p) for p, _ in parts] == [3, 2, 2] and sum(w for _, w in parts) == pytest.approx(1.0)
    # A global batch smaller than the world: the rank left over trains on one image with weight 0.
    tiny = [DistContext(rank=r, world_size=3, local_rank=r, backend="gloo").shard(torch.arange(2)) for r in range(3)]
    assert [(p.tolist(), w) for p, w in tiny] == [([0], 0.5), ([1], 0.5), ([0], 0.0)]
