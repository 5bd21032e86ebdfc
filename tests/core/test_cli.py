import json
import subprocess
import sys

import pytest


def run_cli(*args, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "vae.safetensors"
    code, stdout, stderr = run_cli("train", "--model", "vae", "--hidden", "64", "--latent-dim", "4",
                                   "--dataset", "digits", "--epochs", "2", "--batch-size", "64",
                                   "--out", str(out), "--no-progress")
    assert code == 0, stderr
    return out, stdout


def test_train_prints_final_json_line(trained):
    out, stdout = trained
    summary = json.loads(stdout.strip().splitlines()[-1])
    for key in ("images_per_second", "epochs", "final_metrics", "device"):
        assert key in summary
    assert summary["epochs"] == 2 and summary["device"] == "cpu"
    assert summary["final_metrics"]["test_loss"] > 0
    assert out.exists()


def test_info_prints_metadata(trained):
    out, _ = trained
    code, stdout, _ = run_cli("info", str(out))
    assert code == 0
    doc = json.loads(stdout)
    assert doc["family"] == "vae" and doc["dataset"] == "digits" and doc["config"]["hidden"] == [64]
    assert doc["history"]["epochs"] == 2


def test_resume_adds_epochs(trained, tmp_path):
    out, _ = trained
    new = tmp_path / "more.safetensors"
    code, stdout, stderr = run_cli("train", "--resume", str(out), "--dataset", "digits", "--epochs", "1",
                                   "--batch-size", "64", "--out", str(new), "--no-progress")
    assert code == 0, stderr
    assert json.loads(stdout.splitlines()[-1])["total_epochs"] == 3


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["train", "--dataset", "nope", "--out", "x.safetensors"], "unknown data ?set"),
        (["train", "--dataset", "folder:/no/such/folder", "--out", "x.safetensors"], "/no/such/folder"),
        (["train", "--epochs", "0", "--out", "x.safetensors"], "positive integer"),
        (["train", "--model", "pca", "--beta", "2", "--dataset", "digits", "--out", "x.safetensors"],
         "does not apply"),
        (["info", "/no/such/file.safetensors"], "not found"),
        (["frobnicate"], "invalid choice|not found"),
    ],
)
def test_errors_are_one_clear_line(args, pattern, tmp_path):
    code, stdout, stderr = run_cli(*args)
    assert code != 0
    lines = [line for line in stderr.strip().splitlines() if line]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in stderr
    import re

    assert re.search(pattern, lines[0]), lines[0]


def test_corrupt_file_info(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 3)
    code, _, stderr = run_cli("info", str(bad))
    assert code == 1 and "truncated" in stderr and "Traceback" not in stderr


def test_debug_shows_traceback(tmp_path):
    code, _, stderr = run_cli("--debug", "info", str(tmp_path / "missing.safetensors"))
    assert code != 0 and "Traceback" in stderr
