"""Pretraining: test accuracy per label count, encoder (frozen / fine-tuned) vs the same network from scratch.

The bundled MNIST demo VAE and AE (resources/demo) and a PCA of the same size (16) fitted on the training split,
1 / 10 / 100 labels per class, 5 seeds (label draws), 300 Adam steps each, 2000 test digits
(explorer.core.pretrain.pretrain_curve). Writes pretrain.csv and pretrain.png to --out. Prints a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.core import checkpoint  # noqa: E402
from explorer.core.data import load_dataset  # noqa: E402
from explorer.core.models import build_model  # noqa: E402
from explorer.core.pretrain import plot_curves, pretrain_curve, write_csv, write_png  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--labels", default="1,10,100")
    ap.add_argument("--models", default="mnist-vae,mnist-ae,pca")
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "latent-explorer-pretrain"))
    args = ap.parse_args()
    data = load_dataset("mnist")
    ks = [int(v) for v in args.labels.split(",")]
    curves, result = [], {"seeds": args.seeds, "steps": args.steps, "labels_per_class": ks}
    for name in args.models.split(","):
        if name == "pca":
            model = build_model("pca", latent_dim=16, image_shape=(1, 28, 28))
            model.fit(torch.from_numpy(data.images[: data.n_train]).float() / 255)
        else:
            model = checkpoint.load(ROOT / "resources" / "demo" / f"{name}.safetensors")
        curve = pretrain_curve(model, data, labels_per_class=ks, seeds=args.seeds, steps=args.steps, limit_test=2000)
        curve.model_name = name
        curves.append(curve)
        d = curve.to_dict()
        result[name] = {"mean": d["mean_accuracy"], "std": d["std_accuracy"]}
        print(name, json.dumps(result[name]), file=sys.stderr, flush=True)
    out = Path(args.out)
    write_csv(curves, out / "pretrain.csv")
    write_png(plot_curves(curves), out / "pretrain.png")
    result["csv"], result["png"] = str(out / "pretrain.csv"), str(out / "pretrain.png")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
