"""PixelCNN vs the VAE's bounds on binarised MNIST; MIG / DCI of VAE, beta-VAE, DC-IGN on faces; analogies.

    OMP_NUM_THREADS=2 python benchmarks/families.py            # the default sizes (CPU: tens of minutes)
    OMP_NUM_THREADS=2 python benchmarks/families.py --quick    # a few minutes, the figures are rougher

Prints one line per figure on stderr and a final JSON line on stdout:

* ``likelihood``: test NLL on binarised MNIST in nats/image and bits/dim: PixelCNN's exact figure, the VAE's
  -ELBO and its IWAE bound (k samples), and the independent per-pixel baseline;
* ``disentanglement``: MIG and DCI (disentanglement, completeness, informativeness) of a VAE, a beta-VAE and a
  DC-IGN of the same size on the procedural faces, against their true attributes;
* ``analogy``: held-out analogy error (per-pixel MSE of decode(f(c) + f(b) - f(a)) against d) of plain vector
  arithmetic in the VAE vs the analogy-trained VAE, and of answering with c unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(model, data, epochs: int, batch: int, seed: int, lr: float = 1e-3, max_steps: int | None = None):
    from explorer.core.training import TrainConfig, Trainer

    t0 = time.perf_counter()
    Trainer(model, data, TrainConfig(epochs=epochs, batch_size=batch, lr=lr, seed=seed, device="cpu",
                                     n_sample_grid=0, max_steps=max_steps)).run()
    return time.perf_counter() - t0


def likelihood(args) -> dict:
    from explorer.core.compare.likelihood import binarized, likelihood_metrics
    from explorer.core.data import load_dataset
    from explorer.core.models import build_model
    from explorer.core.models.pixelcnn import independent_pixel_nll

    data = binarized(load_dataset("mnist", limit_train=args.mnist_train, limit_test=args.mnist_test))
    test = data.images[data.n_train:]
    dims = 784 * math.log(2)
    torch.manual_seed(args.seed)
    vae = build_model("vae", {"latent_dim": 20, "image_shape": [1, 28, 28], "hidden": [400]})
    t_vae = train(vae, data, args.epochs, 128, args.seed)
    bounds = likelihood_metrics(vae, test, k=args.k)
    torch.manual_seed(args.seed)
    pcnn = build_model("pixelcnn", {"image_shape": [1, 28, 28], "channels": args.pixel_channels,
                                    "n_layers": args.pixel_layers})
    t_pcnn = train(pcnn, data, args.pixel_epochs, 64, args.seed)
    exact = likelihood_metrics(pcnn, test)
    base = independent_pixel_nll(data.images[:data.n_train], test)
    out = {
        "data": f"binarised MNIST, {data.n_train} train / {len(test)} test",
        "pixelcnn_nll": exact["nll_exact"], "pixelcnn_bits_per_dim": exact["bits_per_dim"],
        "vae_neg_elbo": bounds["neg_elbo"], "vae_neg_elbo_bits_per_dim": bounds["neg_elbo"] / dims,
        "vae_iwae_nll": bounds["nll_iwae"], "vae_iwae_bits_per_dim": bounds["bits_per_dim"], "iwae_k": args.k,
        "independent_pixels_nll": base, "independent_pixels_bits_per_dim": base / dims,
        "train_seconds": {"vae": round(t_vae, 1), "pixelcnn": round(t_pcnn, 1)},
        "epochs": {"vae": args.epochs, "pixelcnn": args.pixel_epochs},
    }
    log(f"likelihood: {json.dumps(out)}")
    return out


def faces_models(args) -> dict:
    from explorer.core.compare.disentanglement import disentanglement
    from explorer.core.data.faces import make_faces
    from explorer.core.models import build_model
    from explorer.core.models.analogy import analogy_error

    size = args.face_size
    data = make_faces(args.face_count, seed=0, size=size)
    common = {"latent_dim": args.face_latent, "image_shape": [3, size, size], "arch": args.face_arch,
              "base_channels": 32, "hidden": [128]}
    specs = {
        "vae": ("vae", {}),
        "beta_vae": ("vae", {"beta": 4.0}),
        "dcign": ("dcign", {"seed": args.seed}),
        "dcign_invariance_10": ("dcign", {"seed": args.seed, "invariance_weight": 10.0}),
        "analogy": ("analogy", {"seed": args.seed}),
    }
    dis, ana, secs = {}, {}, {}
    models = {}
    for name, (family, extra) in specs.items():
        torch.manual_seed(args.seed)
        model = build_model(family, {**common, **extra})
        secs[name] = round(train(model, data, 1000, 64, args.seed, max_steps=args.face_steps), 1)
        models[name] = model
        if name != "analogy":
            d = disentanglement(model, data, split="test", max_items=2000, seed=args.seed)
            dis[name] = {k: d[k] for k in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness")}
            if family == "dcign":
                mi = np.array(d["mutual_information"])
                units = {}
                for factor, unit in model.config.factor_units.items():
                    col = mi[:, d["factor_names"].index(factor)]
                    units[factor] = {"unit": unit, "mi_own": float(col[unit]),
                                     "mi_best_other": float(np.max(np.delete(col, unit)))}
                dis[name]["assigned_units"] = units
            log(f"disentanglement {name}: {json.dumps(dis[name])}")
        if name in ("vae", "analogy"):
            err = analogy_error(model, args.analogies, seed=args.seed)
            ana[name] = {"analogy_mse": err["analogy_mse"], "copy_mse": err["copy_mse"]}
            log(f"analogy {name}: {json.dumps(ana[name])}")
    return {"data": f"faces {size}px RGB, {data.n_train} train / {data.n_test} test, {args.face_arch}, "
                    f"latent {args.face_latent}, {args.face_steps} steps of 64",
            "disentanglement": dis,
            "analogy": {"arithmetic_in_vae": ana["vae"]["analogy_mse"],
                        "analogy_trained": ana["analogy"]["analogy_mse"],
                        "copy_c": ana["vae"]["copy_mse"], "quadruples": args.analogies},
            "train_seconds": secs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cpu", action="store_true", help="sizes for a shared 2-core CPU (the figures quoted in README)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: only checks that the script runs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    quick = args.quick
    args.mnist_train = 10000 if quick else 60000
    args.mnist_test = 1000 if quick else 10000
    args.epochs = 5 if quick else 20
    args.pixel_epochs = 1 if quick else 5
    args.pixel_channels = 32 if quick else 64
    args.pixel_layers = 4 if quick else 6
    args.k = 64 if quick else 256
    args.face_size = 32
    args.face_count = 3000 if quick else 12000
    args.face_latent = 10
    args.face_steps = 1000 if quick else 6000
    args.analogies = 500
    args.face_arch = "conv"
    if args.cpu:
        args.mnist_train, args.mnist_test, args.epochs, args.pixel_epochs, args.k = 3000, 500, 10, 3, 64
        args.pixel_channels, args.pixel_layers = 16, 3
        args.face_count, args.face_steps, args.face_size, args.face_latent = 2400, 1500, 16, 8
        args.face_arch, args.analogies = "mlp", 300
    if args.smoke:
        args.mnist_train, args.mnist_test, args.epochs, args.pixel_epochs, args.k = 500, 100, 1, 1, 8
        args.pixel_channels, args.pixel_layers = 8, 1
        args.face_count, args.face_steps, args.analogies, args.face_size = 300, 10, 20, 16
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    result = {"benchmark": "families", "quick": quick, "smoke": args.smoke, "cpu": args.cpu, "torch_threads": torch.get_num_threads()}
    result["likelihood"] = likelihood(args)
    result["faces"] = faces_models(args)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
