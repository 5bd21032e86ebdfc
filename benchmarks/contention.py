"""Training speed on shared cores: alone vs beside a competitor, with and without the thread budget.

1. CLI training (``latent-explorer train --model vae --arch mlp --latent-dim 8 --dataset digits --batch-size
   64``) alone and beside one CPU-bound process (a pure-Python busy loop): as shipped now (the thread budget
   and ``OMP_WAIT_POLICY=PASSIVE``) and unmanaged (``LATENT_EXPLORER_OMP_WAIT=default``: OpenMP's spinning
   default, which is how the app ran before).
2. Panel training - the GUI's own :class:`explorer.gui.training.worker.TrainingWorker` in its QThread,
   offscreen - alone and while UMAP fits run in the projection child process (the window's
   :class:`ProjectionProcess`), as in a window where the user asked for a UMAP map during training.

Runs alternate (solo, contended, solo, ...) and the best of each is kept. Target: contended >= 50% of solo.
Final line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import explorer  # noqa: E402,F401  - sets the OpenMP wait policy before torch loads

CLI = [sys.executable, "-m", "explorer.cli", "train", "--model", "vae", "--arch", "mlp", "--latent-dim", "8",
       "--dataset", "digits", "--batch-size", "64", "--no-progress", "--seed", "0"]
COMPETITOR = [sys.executable, "-c", "while True: pass"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "LATENT_EXPLORER_OMP_WAIT", "GOMP_SPINCOUNT")}
    env.update(extra)
    return env


def cli_run(epochs: int, env: dict[str, str], competitor: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        comp = subprocess.Popen(COMPETITOR) if competitor else None
        try:
            time.sleep(0.2 if competitor else 0.0)
            proc = subprocess.run([*CLI, "--epochs", str(epochs), "--out", f"{tmp}/m.safetensors"],
                                  capture_output=True, text=True, env=env, timeout=900)
        finally:
            if comp is not None:
                comp.kill()
                comp.wait()
    if proc.returncode != 0:
        raise SystemExit(f"training failed: {proc.stderr}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["images_per_second"])


def panel_run(epochs: int, umap: bool, projection: object) -> float:
    """One run of the panel's worker in its QThread; with ``umap``, UMAP fits run back to back meanwhile."""
    import numpy as np
    from PySide6.QtCore import QCoreApplication, QThread, Qt

    from explorer.gui.training.spec import TrainingSpec
    from explorer.gui.training.worker import TrainingWorker

    QCoreApplication.instance() or QCoreApplication([])
    spec = TrainingSpec(kind="vae", arch="mlp", latent_dim=8, dataset="digits", epochs=epochs, batch_size=64,
                        device="cpu", n_sample_grid=16)
    worker = TrainingWorker(spec)
    thread = QThread()
    worker.moveToThread(thread)
    done = threading.Event()
    result: dict = {}
    worker.finished.connect(lambda r: (result.update(r), done.set()), Qt.ConnectionType.DirectConnection)
    thread.started.connect(worker.run)

    stop = threading.Event()
    fits = {"n": 0}

    def fit_loop() -> None:
        z = np.random.default_rng(0).standard_normal((5000, 8)).astype(np.float32)
        while not stop.is_set():
            projection.fit("umap", z, {}, inverse=False)  # not cancelled: that would kill the warm child
            fits["n"] += 1

    fitter = threading.Thread(target=fit_loop, daemon=True) if umap else None
    if fitter is not None:
        fitter.start()
        time.sleep(1.0)  # the fit is under way before training starts
    thread.start()
    while not done.wait(0.05):
        pass
    thread.quit()
    thread.wait()
    stop.set()
    if fitter is not None:
        fitter.join(60)
    if not result.get("ok"):
        raise SystemExit(f"panel training failed: {result.get('error')}")
    return float(result["images_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8, help="CLI / panel epochs (budgeted runs)")
    parser.add_argument("--unmanaged-epochs", type=int, default=1, help="epochs of the (slow) unmanaged runs")
    parser.add_argument("--skip-panel", action="store_true")
    args = parser.parse_args()

    managed, unmanaged = _clean_env(), _clean_env(LATENT_EXPLORER_OMP_WAIT="default")
    cli = {"solo": [], "contended": [], "unmanaged_solo": [], "unmanaged_contended": []}
    for r in range(args.rounds):
        cli["solo"].append(cli_run(args.epochs, managed, False))
        cli["contended"].append(cli_run(args.epochs, managed, True))
        cli["unmanaged_solo"].append(cli_run(args.epochs, unmanaged, False))
        cli["unmanaged_contended"].append(cli_run(args.unmanaged_epochs, unmanaged, True))
        print(f"round {r + 1} CLI: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in cli.items()), file=sys.stderr)
    best = {k: max(v) for k, v in cli.items()}
    out: dict = {
        "cores": os.cpu_count(),
        "cli_solo_images_per_second": round(best["solo"], 1),
        "cli_contended_images_per_second": round(best["contended"], 1),
        "cli_contended_ratio": round(best["contended"] / best["solo"], 3),
        "cli_unmanaged_solo_images_per_second": round(best["unmanaged_solo"], 1),
        "cli_unmanaged_contended_images_per_second": round(best["unmanaged_contended"], 1),
        "cli_unmanaged_contended_ratio": round(best["unmanaged_contended"] / best["unmanaged_solo"], 3),
    }
    if not args.skip_panel:
        from explorer.core.latent.isolated import ProjectionProcess

        projection = ProjectionProcess()
        t0 = time.perf_counter()
        projection.warm_up()  # numba compiles once per child (tens of seconds); not part of the figure
        print(f"UMAP warm-up {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        panel = {"solo": [], "with_umap": []}
        try:
            for r in range(args.rounds):
                panel["solo"].append(panel_run(args.epochs, False, projection))
                panel["with_umap"].append(panel_run(args.epochs, True, projection))
                print(f"round {r + 1} panel: solo {panel['solo'][-1]:.0f}, with UMAP {panel['with_umap'][-1]:.0f}",
                      file=sys.stderr)
        finally:
            projection.close()
        solo, with_umap = max(panel["solo"]), max(panel["with_umap"])
        out.update({
            "panel_driver": "explorer.gui.training.worker.TrainingWorker in a QThread (offscreen) + "
                            "ProjectionProcess UMAP fits",
            "panel_solo_images_per_second": round(solo, 1),
            "panel_with_umap_images_per_second": round(with_umap, 1),
            "panel_with_umap_ratio": round(with_umap / solo, 3),
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
