"""Image completion by latent search (explorer.core.completion) against its two baselines.

1. MNIST (bundled demo VAE and AE), bottom half masked, held-out test digits: hole MSE of the completion vs
   filling with the mean training image vs decoding the encoder's code of the masked image; accuracy of a pixel
   classifier (logistic regression on 5000 real training digits) on each.
2. Faces (bundled demo VAE), mouth masked (explorer.core.data.faces.face_region("mouth", size) where it exists,
   else rows 0.55-0.80 / columns 0.28-0.72 of the image), on people never seen (seed 7): the same hole MSEs, and
   the agreement of the completed mouth's smile with the hidden truth (logistic regression on the mouth region of
   1500 real faces decides; chance 0.5).

Prints a final JSON line with all figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.core import checkpoint  # noqa: E402
from explorer.core.completion import box_mask, complete_batch, encoder_pass, mean_fill  # noqa: E402

DEMO = ROOT / "resources" / "demo"


def _figures(model, images, mask, mean, restarts, steps, code_stats=None):
    t0 = time.perf_counter()
    res = complete_batch(model, images, mask, restarts=restarts, steps=steps, code_stats=code_stats,
                         batch_size=100, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - t0
    x = images.astype(np.float32) / 255
    out = {"completion": np.stack([r.blended[0] for r in res]),
           "completion_unblended": np.where(mask, np.stack([r.images[0] for r in res]), x),
           "encoder_pass": np.where(mask, encoder_pass(model, images, mask), x),
           "mean_image": mean_fill(images, mask, mean)}
    hole = np.broadcast_to(mask, x.shape)
    mse = {k: round(float(np.square(v - x)[hole].mean()), 5) for k, v in out.items()}
    return out, mse, seconds


def mnist(args):
    from sklearn.linear_model import LogisticRegression

    from explorer.core.data import load_dataset

    data = load_dataset("mnist")
    clf = LogisticRegression(C=0.05, max_iter=500).fit(data.images[:5000].reshape(5000, -1) / 255.0,
                                                       data.labels[:5000])
    rows = np.arange(data.n_train, data.n_train + args.mnist_count)
    images, y = data.images[rows], data.labels[rows]
    mean = data.images[:5000].astype(np.float32).mean(0) / 255
    result = {"images": len(rows), "intact_accuracy": round(float(clf.score(images.reshape(len(rows), -1) / 255, y)), 4)}
    for name in ("mnist-vae", "mnist-ae"):
        model = checkpoint.load(DEMO / f"{name}.safetensors")
        mask = box_mask(model.image_shape, 0, 14, 28, 28)
        stats = None
        if model.family == "ae":
            with torch.no_grad():
                z = model.encode(torch.from_numpy(data.images[:2000]).float() / 255).numpy()
            stats = (z.mean(0), z.std(0))
        out, mse, seconds = _figures(model, images, mask, mean, args.restarts, args.steps, stats)
        acc = {k: round(float((clf.predict(v.reshape(len(v), -1)) == y).mean()), 4) for k, v in out.items()}
        result[name] = {"hole_mse": mse, "accuracy": acc, "seconds": round(seconds, 1)}
        print(name, json.dumps(result[name]), file=sys.stderr, flush=True)
    return result


def faces(args):
    from sklearn.linear_model import LogisticRegression

    from explorer.core.data import faces as faces_mod

    model = checkpoint.load(DEMO / "faces-vae.safetensors")
    size = model.image_shape[1]
    if hasattr(faces_mod, "face_region"):
        x0, y0, x1, y1 = faces_mod.face_region("mouth", size)
        box_from = "face_region"
    else:
        x0, y0, x1, y1 = int(0.28 * size), int(0.55 * size), int(np.ceil(0.72 * size)), int(np.ceil(0.80 * size))
        box_from = "fallback fractions"
    mask = box_mask(model.image_shape, x0, y0, x1, y1)
    real = faces_mod.make_faces(1500, seed=0, size=size)
    test = faces_mod.make_faces(args.faces_count, seed=7, size=size)
    k = real.attribute_names.index("smiling")

    def crop(a):
        a = a.astype(np.float32) / 255 if a.dtype == np.uint8 else a
        return a[..., y0:y1, x0:x1].reshape(len(a), -1)

    judge = LogisticRegression(C=0.1, max_iter=3000).fit(crop(real.images), real.attributes[:, k])
    truth = test.attributes[:, k]
    mean = real.images.astype(np.float32).mean(0) / 255
    out, mse, seconds = _figures(model, test.images, mask, mean, args.restarts, args.steps)
    agree = {kk: round(float((judge.predict(crop(v)) == truth).mean()), 4) for kk, v in out.items()}
    return {"images": len(test.images), "size": size, "mouth_box": [x0, y0, x1, y1], "box_from": box_from,
            "judge_on_real": round(float(judge.score(crop(test.images), truth)), 4), "hole_mse": mse,
            "smile_agreement": agree, "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-count", type=int, default=500)
    ap.add_argument("--faces-count", type=int, default=200)
    ap.add_argument("--restarts", type=int, default=2)
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    torch.manual_seed(0)
    result = {"restarts": args.restarts, "steps": args.steps, "mnist": mnist(args)}
    result["faces"] = faces(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
