"""``latent-explorer train``: train a model headless and save a checkpoint."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .args import CLIError, int_list, nonnegative_int, positive_float, positive_int

MODEL_CHOICES = {
    # CLI name -> (family, config overrides)
    "ae": ("ae", {}),
    "dae": ("ae", {"denoising_std": 0.3}),
    "sae": ("ae", {"sparsity_l1": 1e-3}),
    "vae": ("vae", {}),
    "gan": ("gan", {}),
    "pca": ("pca", {}),
    "pixelcnn": ("pixelcnn", {}),  # no latent space; --latent-dim is ignored
    "dcign": ("dcign", {}),  # a VAE trained on fixed-factor face batches (train on --dataset faces)
    "analogy": ("analogy", {}),  # a VAE plus the visual-analogy objective on face quadruples
}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    tr = sub.add_parser("train", help="train a model headless and save a checkpoint")
    tr.add_argument("--model", choices=sorted(MODEL_CHOICES), default="vae",
                    help="family: ae, dae (denoising AE), sae (sparse AE), vae, gan, pca, pixelcnn, dcign "
                         "(named face units), analogy (VAE + visual-analogy objective)")
    tr.add_argument("--arch", choices=["mlp", "conv", "linear", "patch"], default="mlp",
                    help="mlp, conv, linear; patch: the patch autoencoder (an MLP on p x p patches, tiled)")
    tr.add_argument("--latent-dim", type=positive_int, default=20)
    tr.add_argument("--hidden", type=_hidden_sizes, default=None, help="MLP hidden sizes, e.g. 400 or 512,256")
    tr.add_argument("--base-channels", type=positive_int, default=None, help="conv/GAN width")
    tr.add_argument("--loss", choices=["bce", "mse"], default=None, help="reconstruction loss (AE/VAE)")
    tr.add_argument("--beta", type=float, default=None, help="VAE KL weight")
    tr.add_argument("--perceptual", type=float, default=None,
                    help="VAE: weight of a feature-matching term from a small net trained on the faces "
                         "(0 = off; also overrides a resumed checkpoint's weight)")
    tr.add_argument("--denoise-std", type=float, default=None, help="denoising AE input noise std")
    tr.add_argument("--sparsity", type=float, default=None, help="sparse AE L1 weight on the code")
    tr.add_argument("--d-steps", type=positive_int, default=None, help="GAN discriminator steps per G step")
    tr.add_argument("--g-loss", choices=["nonsaturating", "minimax"], default=None)
    tr.add_argument("--patch-size", type=positive_int, default=None, help="patch AE: patch side (default 8)")
    tr.add_argument("--code-size", type=positive_int, default=None, help="patch AE: codes per patch (default 16)")
    tr.add_argument("--activation", choices=["tanh", "sigmoid", "relu", "linear"], default=None,
                    help="patch AE: code activation (default tanh)")
    tr.add_argument("--pixel-output", choices=["bernoulli", "softmax256", "logistic"], default=None,
                    help="PixelCNN per-pixel distribution (default bernoulli: binarised images)")
    tr.add_argument("--pixel-layers", type=positive_int, default=None, help="PixelCNN residual layers (default 6)")
    tr.add_argument("--pixel-channels", type=positive_int, default=None, help="PixelCNN width (default 64)")
    tr.add_argument("--plain", action="store_true", help="PixelCNN: ReLU layers instead of gated ones")
    tr.add_argument("--dcign", action="store_true", help="with --model vae: train it as a DC-IGN (same as --model dcign)")
    tr.add_argument("--factor-units", default=None,
                    help="DC-IGN: face attribute -> latent unit, e.g. smiling=0,glasses=1 "
                         "(default head_turn=0,smiling=1,glasses=2,hair_colour=3)")
    tr.add_argument("--invariance-weight", type=float, default=None,
                    help="DC-IGN: pull of the clamped units towards their batch mean "
                         "(default 10; the paper's gradient is 1)")
    tr.add_argument("--analogy-weight", type=float, default=None, help="analogy: weight of the analogy loss (default 1)")
    tr.add_argument("--analogy-batch", type=positive_int, default=None, help="analogy: quadruples per step (default 32)")
    tr.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist, digits, faces, folder:PATH, celeba:PATH")
    tr.add_argument("--image-size", type=positive_int, default=None, help="resize images to this size")
    tr.add_argument("--channels", type=int, choices=[1, 3], default=None)
    tr.add_argument("--limit-train", type=positive_int, default=None, help="use at most N training images")
    tr.add_argument("--limit-test", type=positive_int, default=None, help="use at most N test images")
    tr.add_argument("--count", type=positive_int, default=None, help="images to generate (faces)")
    tr.add_argument("--epochs", type=positive_int, default=10)
    tr.add_argument("--batch-size", type=positive_int, default=128)
    tr.add_argument("--lr", type=positive_float, default=None, help="learning rate (default 1e-3; GAN 2e-4)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    tr.add_argument("--max-steps", type=positive_int, default=None)
    tr.add_argument("--checkpoint-every", type=nonnegative_int, default=0, help="also save every N epochs")
    tr.add_argument("--resume", default=None, help="continue training from this checkpoint")
    tr.add_argument("--out", required=True, help="output .safetensors path")
    tr.add_argument("--weights-only", action="store_true",
                    help="leave the optimizer state out of the checkpoint (smaller; resume restarts Adam)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--cuda-graphs", choices=["auto", "on", "off"], default="auto",
                    help="capture the training step as a CUDA graph (auto: where known to work; falls back "
                         "to eager steps with the reason logged)")
    tr.add_argument("--finite-check-every", type=positive_int, default=50,
                    help="check for NaN/inf on the device every N steps (a bad check rolls back to the last good)")
    return tr


def _hidden_sizes(text: str) -> tuple[int, ...]:
    sizes = int_list(text)
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected at least one hidden size, e.g. 400 or 512,256, got {text!r}")
    return sizes


def _check_out(path: str) -> str:
    """The output file must be writable *before* training starts, not found unwritable after it."""
    from pathlib import Path

    if not path or not path.strip():
        raise CLIError("--out is empty; give the checkpoint file to write, e.g. --out model.safetensors")
    out = Path(path).expanduser()
    if out.is_dir():
        raise CLIError(f"--out {path} is a folder; give a file name, e.g. {out / 'model.safetensors'}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(f"the output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise CLIError(f"cannot write {out}: the folder or file is read-only")
    return str(out)


def _model_from_args(args: argparse.Namespace, image_shape: tuple[int, int, int]):
    from explorer.core.models import build_model, get_family

    family, preset = MODEL_CHOICES[args.model]
    if args.arch == "patch":  # the patch autoencoder is a family of its own; its latent_dim is derived
        if args.model not in ("ae", "vae"):  # vae: the --model default
            raise CLIError(f"--arch patch is an autoencoder of its own; use it with --model ae, not {args.model}")
        family, preset = "patch", {}
    if getattr(args, "dcign", False):
        if args.model not in ("vae", "dcign"):
            raise CLIError(f"--dcign is a training mode of VAEs; use it with --model vae, not {args.model}")
        family = "dcign"
    cls = get_family(family)
    fields = set(cls.config_cls.__dataclass_fields__)
    wanted: dict[str, Any] = {"latent_dim": args.latent_dim, "image_shape": image_shape, **preset}
    if family == "pixelcnn":
        wanted["latent_dim"] = 1  # a placeholder: the family has no latent space
    if "seed" in fields:  # families that draw their own batches (DC-IGN, analogy)
        wanted["seed"] = max(0, args.seed)
    factor_units = None
    if getattr(args, "factor_units", None):
        from explorer.core.models.dcign import parse_factor_units

        try:
            factor_units = parse_factor_units(args.factor_units)
        except ValueError as exc:
            raise CLIError(f"--factor-units: {exc}") from exc
    optional = {
        "arch": args.arch,
        "hidden": args.hidden,
        "base_channels": args.base_channels,
        "loss": args.loss,
        "beta": args.beta,
        "perceptual": getattr(args, "perceptual", None),
        "denoising_std": args.denoise_std,
        "sparsity_l1": args.sparsity,
        "d_steps": args.d_steps,
        "g_loss": args.g_loss,
        "patch_size": getattr(args, "patch_size", None),
        "code_size": getattr(args, "code_size", None),
        "activation": getattr(args, "activation", None),
        "output": getattr(args, "pixel_output", None),
        "n_layers": getattr(args, "pixel_layers", None),
        "channels": getattr(args, "pixel_channels", None),
        "gated": False if getattr(args, "plain", False) else None,
        "factor_units": factor_units,
        "invariance_weight": getattr(args, "invariance_weight", None),
        "analogy_weight": getattr(args, "analogy_weight", None),
        "analogy_batch": getattr(args, "analogy_batch", None),
    }
    for key, val in optional.items():
        if val is None:
            continue
        if key not in fields:
            if key == "arch" and val == "mlp":
                continue  # the default; families without an arch choice ignore it
            flag = {"output": "pixel-output", "n_layers": "pixel-layers", "channels": "pixel-channels",
                    "gated": "plain"}.get(key, key.replace("_", "-"))
            raise CLIError(f"--{flag} does not apply to {'patch' if family == 'patch' else args.model} models")
        wanted[key] = val
    try:
        return build_model(family, cls.config_cls.from_dict(wanted))
    except (TypeError, ValueError) as exc:
        raise CLIError(f"invalid model options: {exc}") from exc


def cmd_train(args: argparse.Namespace) -> int:
    from explorer.core import threads

    threads.apply("cli-train")  # the whole budget: this process trains and does nothing else
    import torch

    from explorer.core.training import distributed

    if os.environ.get("RANK", "0") == "0":  # only rank 0 writes; it checks before any rank waits for it
        args.out = _check_out(args.out)
    try:
        dist_ctx = distributed.init_from_env(args.device)
    except (RuntimeError, ValueError) as exc:
        raise CLIError(f"could not join the torchrun process group: {exc}") from exc
    main_rank = dist_ctx is None or dist_ctx.is_main
    try:
        code = _train(args, dist_ctx, main_rank)
        if dist_ctx is not None:
            # Leave the group together: a rank that tore it down and exited while rank 0 still wrote the
            # checkpoint made gloo abort rank 0 ("terminate called without an active exception", 1 run in 6).
            dist_ctx.barrier()
        return code
    finally:
        distributed.shutdown(dist_ctx)


def _train(args: argparse.Namespace, dist_ctx: Any, main_rank: bool) -> int:
    import torch

    from explorer.core.training import distributed

    from explorer.core import checkpoint
    from explorer.core.data import DataSourceError, load_dataset
    from explorer.core.training import TrainConfig, Trainer, TrainingError

    try:
        data = load_dataset(
            args.dataset, image_size=args.image_size, channels=args.channels,
            limit_train=args.limit_train, limit_test=args.limit_test, seed=args.seed, count=args.count,
        )
    except DataSourceError as exc:
        raise CLIError(str(exc)) from exc

    torch.manual_seed(args.seed)
    resume_model = None
    if args.resume:
        try:
            resume_model = checkpoint.load(args.resume, with_optimizer_state=True)
        except checkpoint.CheckpointError as exc:
            raise CLIError(str(exc)) from exc
        from explorer.core.models import build_model

        config = resume_model.config
        # Loss weights may change between stages of a resumed run (the checkpoint records the last one used);
        # the architecture comes from the checkpoint.
        weights = {k: getattr(args, k, None) for k in ("perceptual", "beta")}
        weights = {k: v for k, v in weights.items() if v is not None}
        if weights:
            import dataclasses

            for key in weights:
                if key not in getattr(config, "__dataclass_fields__", {}):
                    raise CLIError(f"--{key} does not apply to {resume_model.family} models")
            config = dataclasses.replace(config, **weights)
            try:
                config.validate()
            except ValueError as exc:
                raise CLIError(f"invalid model options: {exc}") from exc
        model = build_model(resume_model.family, config)
    else:
        model = _model_from_args(args, data.image_shape)
    lr = args.lr
    if lr is None and resume_model is not None:
        # Resuming without --lr continues at the rate the checkpoint was trained with (what it records).
        meta = getattr(resume_model, "metadata", None) or {}
        stored = ((meta.get("history") or {}).get("train_config") or {}).get("lr")
        lr = float(stored) if isinstance(stored, (int, float)) and stored > 0 else None
    if lr is None:
        lr = 2e-4 if model.family == "gan" else 1e-3
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=lr, seed=args.seed,
        device=distributed.rank_device(dist_ctx, args.device),
        checkpoint_path=args.out, checkpoint_every=args.checkpoint_every, max_steps=args.max_steps,
        save_optimizer=not args.weights_only, cuda_graphs=args.cuda_graphs,
        finite_check_every=args.finite_check_every,
    )
    try:
        trainer = Trainer(model, data, config, distributed=dist_ctx)
    except (TrainingError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    if resume_model is not None:
        trainer.resume_from(resume_model)

    bar = _progress_bar(trainer, disable=args.no_progress or not main_rank)
    restore_signals = _stop_on_signals(trainer) if dist_ctx is not None else (lambda: None)
    try:
        result = trainer.run()
    except TrainingError as exc:
        raise CLIError(str(exc)) from exc
    except KeyboardInterrupt:
        raise CLIError("interrupted") from None
    finally:
        restore_signals()
        bar.close()
    if not main_rank:
        return 0
    summary = {
        "images_per_second": round(result.images_per_second, 1),
        "epochs": result.epochs_completed,
        "total_epochs": trainer.start_epoch + result.epochs_completed,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "device": result.device,
        "final_metrics": result.final_metrics,
        "out": result.checkpoint,
        "stopped_early": result.stopped,
        "step_mode": result.step_mode,
        "world_size": result.world_size,
    }
    print(json.dumps(summary, default=float))
    return 0


def _stop_on_signals(trainer: Any) -> Any:
    """Under torchrun, SIGINT/SIGTERM stop every rank at the same step (rank 0 saves) instead of killing one
    rank in the middle of an all-reduce. Returns the function that puts the old handlers back."""
    import signal

    old = {}

    def handler(signum: int, _frame: Any) -> None:
        trainer.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


def _progress_bar(trainer: Any, disable: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=0, unit="step", file=sys.stderr, disable=disable, dynamic_ncols=True)
    start = {"step": 0}

    def on_begin(steps_per_epoch: int, epochs: int, **_: Any) -> None:
        total = steps_per_epoch * epochs
        if trainer.config.max_steps:
            total = min(total, trainer.config.max_steps)
        start["step"] = trainer.global_step
        bar.reset(total=total)

    def on_progress(global_step: int, epoch: int, metrics: dict[str, float], images_per_second: float,
                    **_: Any) -> None:
        bar.n = global_step - start["step"]
        shown = {k: f"{v:.4g}" for k, v in list(metrics.items())[:3]}
        bar.set_postfix(epoch=epoch + 1, img_s=f"{images_per_second:.0f}", **shown, refresh=False)
        bar.refresh()

    def on_end(result: Any) -> None:
        bar.n = result.steps - start["step"]
        bar.refresh()

    trainer.on("train_begin", on_begin)
    if not disable:
        trainer.on("progress", on_progress)
        trainer.on("train_end", on_end)
    return bar


run = cmd_train
