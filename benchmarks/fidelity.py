"""Fidelity on real MNIST: do our models learn what the literature says they should?

1. MLP VAE 784-400-20, batch 128, Adam 1e-3, 10 epochs: test loss (BCE sum + KL,
   nats per image, 10k test split) should be <= 106.5 (the PyTorch example: ~105.6).
2. Conv VAE of the same latent size, same schedule: test loss below the MLP VAE's.
3. A linear AE (MSE) spans the same subspace as PCA of the same size: largest
   principal angle < 5 degrees.

Runs 1 and 2 go through the real CLI (``latent-explorer train``) and read its final
JSON line. Prints a final JSON line with all figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import subspace_angles

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.core.data import load_dataset  # noqa: E402
from explorer.core.models import build_model  # noqa: E402
from explorer.core.training import TrainConfig, Trainer  # noqa: E402


def cli_train(out: Path, *args: str) -> dict:
    cmd = [sys.executable, "-m", "explorer", "train", "--dataset", "mnist", "--batch-size", "128",
           "--out", str(out), "--no-progress", *args]
    print("+", " ".join(cmd[2:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def linear_ae_vs_pca(latent: int, epochs: int) -> dict:
    data = load_dataset("mnist")
    train = data.train()
    x = torch.from_numpy(train.as_float()).flatten(1)
    centred = x - x.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    pca_basis = vh[:latent].T.numpy()  # (784, k)

    torch.manual_seed(0)
    model = build_model("ae", arch="linear", loss="mse", latent_dim=latent, image_shape=(1, 28, 28))
    result = Trainer(model, data, TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, device="cpu",
                                              n_sample_grid=0)).run()
    weights = [p.detach() for n, p in model.named_parameters() if "dec" in n and p.ndim == 2]
    decoder = weights[-1].numpy()  # (784, k): its columns span the decoded subspace
    angles = np.degrees(subspace_angles(decoder, pca_basis))
    return {
        "linear_ae_latent_dim": latent,
        "linear_ae_epochs": epochs,
        "linear_ae_test_mse": result.final_metrics.get("test_loss"),
        "largest_principal_angle_deg": round(float(angles.max()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--skip-conv", action="store_true")
    parser.add_argument("--linear-latent", type=int, default=10)
    parser.add_argument("--linear-epochs", type=int, default=20)
    args = parser.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        mlp = cli_train(Path(tmp) / "mlp.safetensors", "--model", "vae", "--arch", "mlp", "--latent-dim", "20",
                        "--epochs", str(args.epochs))
        figures["mlp_vae_test_loss"] = round(mlp["final_metrics"]["test_loss"], 2)
        figures["mlp_vae_images_per_second"] = mlp["images_per_second"]
        print(figures, file=sys.stderr, flush=True)
        if not args.skip_conv:
            conv = cli_train(Path(tmp) / "conv.safetensors", "--model", "vae", "--arch", "conv", "--latent-dim",
                             "20", "--epochs", str(args.epochs))
            figures["conv_vae_test_loss"] = round(conv["final_metrics"]["test_loss"], 2)
            figures["conv_vae_images_per_second"] = conv["images_per_second"]
            figures["conv_beats_mlp"] = figures["conv_vae_test_loss"] < figures["mlp_vae_test_loss"]
            print(figures, file=sys.stderr, flush=True)
    figures.update(linear_ae_vs_pca(args.linear_latent, args.linear_epochs))
    figures["epochs"] = args.epochs
    figures["mlp_vae_target_met"] = figures["mlp_vae_test_loss"] <= 106.5
    figures["pca_subspace_target_met"] = figures["largest_principal_angle_deg"] < 5.0
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
