"""The patch autoencoder as a codec at 4:1 against PCA (same components, same patches) and JPEG (same bytes).

Trains patch models with our Trainer (random patches of whole-image batches), then measures PSNR and SSIM on the
test split with explorer.core.compression.evaluate_compression:

1. procedural faces, 64x64 grey (the text's setup): 8x8 patches -> 16 tanh codes, 4:1;
2. MNIST 28x28: 7x7 patches -> 12 codes (16 tiles x 12 = 192 bytes for 784 pixels, 4.08:1).

Prints a final JSON line with all figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.core.compression import evaluate_compression  # noqa: E402
from explorer.core.data import load_dataset  # noqa: E402
from explorer.core.models import build_model  # noqa: E402
from explorer.core.training import TrainConfig, Trainer  # noqa: E402


def run(name, data, patch, code, epochs, test):
    model = build_model("patch", {"image_shape": list(data.image_shape), "patch_size": patch, "code_size": code})
    t0 = time.perf_counter()
    Trainer(model, data, TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, device="cpu", n_sample_grid=0)).run()
    train_s = time.perf_counter() - t0
    rep, _ = evaluate_compression(model, data, limit_test=test)
    doc = {**rep.to_dict(), "epochs": epochs, "train_seconds": round(train_s, 1)}
    print(name, json.dumps(doc), file=sys.stderr, flush=True)
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--test", type=int, default=300)
    args = ap.parse_args()
    torch.manual_seed(0)
    faces = load_dataset("faces", count=6000, channels=1, limit_test=args.test)
    mnist = load_dataset("mnist", limit_train=10000, limit_test=args.test)
    result = {"faces64_grey": run("faces", faces, 8, 16, args.epochs, args.test),
              "mnist": run("mnist", mnist, 7, 12, max(1, args.epochs // 3), args.test)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
