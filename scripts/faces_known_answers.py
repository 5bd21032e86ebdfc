"""Known answers of the faces demo: do attribute vectors make the attribute appear in the *decoded pixels*?

For every attribute of the procedural faces a pixel classifier (logistic regression on the pixels of the part's
``face_region`` for smiling, mouth_open, glasses and eye_size, else on the 32 px average-pooled image) is trained on real generated training faces, never on reconstructions, so it knows nothing about the
model. For held-out faces without the attribute (binary: 0; continuous: below 0.5) we add the attribute's
vector at strength +1 and decode: ``found`` is the fraction the classifier calls positive. ``before`` is the
same on the plain reconstructions. ``found_on_true_edits`` is the judge's ceiling: the same people drawn with the
attribute truly changed by the vector's unit (eye size's judge finds only ~90 % of those). ``others_flipped`` is, for each other attribute, the fraction of faces whose
classifier verdict changed between the two decodes; the table shows the largest.

    OMP_NUM_THREADS=1 python scripts/faces_known_answers.py resources/demo/faces-vae.safetensors \
        --traversal /tmp/traversals.png

prints a Markdown table and a final JSON line; ``--traversal`` also saves a PNG (one row per attribute: a
held-out face at strengths -2..+2 of that attribute's vector, 4x enlarged).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

COUNT = 2400  # 2000 training faces (vectors, classifiers), 400 held out (the checks)
POOL = 32


def pooled(images: np.ndarray) -> np.ndarray:
    """uint8 or [0, 1] float (N, C, H, W) -> (N, C * 32 * 32) float32 averages, in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if x.shape[-1] > POOL:
        x = torch.nn.functional.adaptive_avg_pool2d(x, (POOL, POOL))
    return x.flatten(1).numpy()


def decode(model, z: np.ndarray) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, len(z), 256):
            out.append(model.decode(torch.from_numpy(np.ascontiguousarray(z[s:s + 256], np.float32))).numpy())
    return np.concatenate(out)


# Small parts are judged on their own region at full resolution (face_region boxes), the rest on the whole
# image average-pooled to 32 px.
REGION_OF = {"smiling": "mouth", "mouth_open": "mouth", "glasses": "glasses", "eye_size": "eyes"}


def features(images: np.ndarray, name: str) -> np.ndarray:
    from explorer.core.data.faces import face_region

    if name not in REGION_OF:
        return pooled(images)
    x0, y0, x1, y1 = face_region(REGION_OF[name], images.shape[-1])
    crop = images[..., y0:y1, x0:x1]
    crop = crop.astype(np.float32) / 255 if crop.dtype == np.uint8 else crop.astype(np.float32)
    return crop.reshape(len(crop), -1)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM (Wang et al. 2004: 11 px Gaussian window, sigma 1.5, K1 0.01, K2 0.03) per pixel, averaged over
    channels: (N, C, H, W) images in [0, 1] -> (N, H, W)."""
    x, y = torch.from_numpy(np.ascontiguousarray(a, np.float32)), torch.from_numpy(np.ascontiguousarray(b, np.float32))
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g = (g[:, None] * g[None, :]) / g.sum() ** 2
    c = x.shape[1]
    w = g.expand(c, 1, 11, 11)

    def blur(t):
        return torch.nn.functional.conv2d(t, w, padding=5, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(1).numpy()


def sharpness(real: np.ndarray, recon: np.ndarray) -> dict:
    """Reconstruction figures of held-out faces: MSE and SSIM over the image and inside the mouth and eye boxes."""
    from explorer.core.data.faces import face_region

    r = real.astype(np.float32) / 255 if real.dtype == np.uint8 else real.astype(np.float32)
    d = recon.astype(np.float32)
    sq = ((d - r) ** 2).mean(1)
    ss = ssim_map(d, r)
    out = {"mse": float(sq.mean()), "ssim": float(ss.mean())}
    for part in ("mouth", "eyes"):
        x0, y0, x1, y1 = face_region(part, r.shape[-1])
        out[f"mse_{part}"] = float(sq[:, y0:y1, x0:x1].mean())
        out[f"ssim_{part}"] = float(ss[:, y0:y1, x0:x1].mean())
    return out


def positive(values: np.ndarray, name: str) -> np.ndarray:
    return values > 0.5


def evaluate(model, count: int = COUNT, seed: int = 0) -> dict:
    """Everything the table and the tests need: per attribute found / before / others_flipped, and more."""
    from sklearn.linear_model import LogisticRegression

    from explorer.core.data.faces import ATTRIBUTE_NAMES, BINARY_ATTRIBUTES, make_faces, render_faces
    from explorer.core.latent.arithmetic import apply_vector, dataset_vectors
    from explorer.core.latent.encoding import encode_dataset

    data = make_faces(count, seed=seed, size=model.image_shape[1])
    train, test = np.arange(data.n_train), np.arange(data.n_train, len(data))
    z = encode_dataset(model, data.images)
    vecs = dataset_vectors(z[train], data.subset(train))
    recon_images = decode(model, z[test])
    classifiers, real, recon = {}, {}, {}
    for i, name in enumerate(ATTRIBUTE_NAMES):
        real[name] = features(data.images, name)
        recon[name] = features(recon_images, name)
        a = data.attributes[train, i]
        keep = np.ones(len(a), bool) if name in BINARY_ATTRIBUTES else np.abs(a - 0.5) > 0.1
        classifiers[name] = LogisticRegression(C=0.05, max_iter=2000).fit(real[name][train][keep],
                                                                          positive(a[keep], name))
    rows = {}
    for i, name in enumerate(ATTRIBUTE_NAMES):
        a = data.attributes[test, i]
        without = np.flatnonzero(~positive(a, name))
        clear = np.ones(len(a), bool) if name in BINARY_ATTRIBUTES else np.abs(a - 0.5) > 0.1
        edited_images = decode(model, apply_vector(z[test][without], vecs[name].vector, 1.0))
        # The judge's own ceiling: the same people drawn with the attribute truly changed by the vector's unit
        # (binary: to 1; continuous: +2 sd, the unit of attribute_vectors).
        truly = data.attributes[test][without].copy()
        step = 1.0 if name in BINARY_ATTRIBUTES else 2.0 * float(data.attributes[:, i].std())
        truly[:, i] = np.clip(truly[:, i] + step, 0.0, 1.0)
        truly_images = render_faces(truly, seed, identity=test[without], size=model.image_shape[1])
        edited = {other: features(edited_images, other) for other in ATTRIBUTE_NAMES}
        flips = {}
        for other in ATTRIBUTE_NAMES:
            if other == name:
                continue
            c = classifiers[other]
            flips[other] = float((c.predict(recon[other][without]) != c.predict(edited[other])).mean())
        worst = max(flips, key=flips.get)
        rows[name] = {
            "n": int(len(without)),
            "classifier_accuracy_real": float(classifiers[name].score(real[name][test], positive(a, name))),
            # Continuous attributes: also on the held-out faces clearly on one side (|a - 0.5| > 0.1, the
            # margin the judge was trained with); a face at 0.49 vs 0.51 is a coin toss for any judge.
            "classifier_accuracy_real_clear": float(classifiers[name].score(
                real[name][test][clear], positive(a[clear], name))),
            "classifier_accuracy_recon": float(classifiers[name].score(recon[name], positive(a, name))),
            "before": float(classifiers[name].predict(recon[name][without]).mean()),
            "found": float(classifiers[name].predict(edited[name]).mean()),
            "found_on_true_edits": float(classifiers[name].predict(features(truly_images, name)).mean()),
            "others_flipped_max": flips[worst],
            "others_flipped_worst": worst,
            "others_flipped": flips,
            "separation": float(vecs[name].separation),
        }
    return {"rows": rows, "sharpness": sharpness(data.images[test], recon_images), "data": data, "z": z, "vecs": vecs, "classifiers": classifiers, "test": test}


def traversal_png(model, result: dict, path: str, strengths=(-2, -1, 0, 1, 2), scale: int = 4, face: int = 7) -> None:
    from PIL import Image

    from explorer.core.data.faces import ATTRIBUTE_NAMES
    from explorer.core.imaging import tile, to_hwc, upscale_nearest
    from explorer.core.latent.arithmetic import apply_vector

    test, z, vecs = result["test"], result["z"], result["vecs"]
    face = z[test[face]]
    images = []
    for name in ATTRIBUTE_NAMES:
        images.append(decode(model, apply_vector(face, vecs[name].vector, np.array(strengths, float))))
    grid = tile(to_hwc(np.concatenate(images)), len(strengths), pad=2)
    Image.fromarray(upscale_nearest(grid, scale)).save(path)


def table(rows: dict) -> str:
    lines = ["| attribute | faces | classifier acc. (real / recon.) | before | found at +1 | on true edits | other "
             "classifiers flipped (max) |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['n']} | {r['classifier_accuracy_real']:.2f} / {r['classifier_accuracy_recon']:.2f}"
                     f" | {r['before']:.2f} | **{r['found']:.2f}** | {r['found_on_true_edits']:.2f} | "
                     f"{r['others_flipped_max']:.2f} ({r['others_flipped_worst']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--count", type=int, default=COUNT)
    p.add_argument("--traversal", default=None, help="save a traversal PNG here")
    p.add_argument("--face", type=int, default=7, help="the held-out face the traversal shows (default 7)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from explorer.core import checkpoint

    t0 = time.perf_counter()
    model = checkpoint.load(args.model)
    result = evaluate(model, args.count)
    print(table(result["rows"]))
    print("\nheld-out reconstructions: " + ", ".join(f"{k} {v:.4f}" for k, v in result["sharpness"].items()))
    if args.traversal:
        traversal_png(model, result, args.traversal, face=args.face)
    print(json.dumps({"rows": {k: {kk: vv for kk, vv in v.items() if kk != "others_flipped"}
                               for k, v in result["rows"].items()}, "sharpness": result["sharpness"],
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
