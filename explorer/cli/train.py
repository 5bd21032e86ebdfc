"""``latent-explorer train``: train a model headless and save a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .args import CLIError, int_list, positive_float, positive_int

MODEL_CHOICES = {
    # CLI name -> (family, config overrides)
    "ae": ("ae", {}),
    "dae": ("ae", {"denoising_std": 0.3}),
    "sae": ("ae", {"sparsity_l1": 1e-3}),
    "vae": ("vae", {}),
    "gan": ("gan", {}),
    "pca": ("pca", {}),
}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    tr = sub.add_parser("train", help="train a model headless and save a checkpoint")
    tr.add_argument("--model", choices=sorted(MODEL_CHOICES), default="vae",
                    help="family: ae, dae (denoising AE), sae (sparse AE), vae, gan, pca")
    tr.add_argument("--arch", choices=["mlp", "conv", "linear"], default="mlp")
    tr.add_argument("--latent-dim", type=positive_int, default=20)
    tr.add_argument("--hidden", type=int_list, default=None, help="MLP hidden sizes, e.g. 400 or 512,256")
    tr.add_argument("--base-channels", type=positive_int, default=None, help="conv/GAN width")
    tr.add_argument("--loss", choices=["bce", "mse"], default=None, help="reconstruction loss (AE/VAE)")
    tr.add_argument("--beta", type=float, default=None, help="VAE KL weight")
    tr.add_argument("--denoise-std", type=float, default=None, help="denoising AE input noise std")
    tr.add_argument("--sparsity", type=float, default=None, help="sparse AE L1 weight on the code")
    tr.add_argument("--d-steps", type=positive_int, default=None, help="GAN discriminator steps per G step")
    tr.add_argument("--g-loss", choices=["nonsaturating", "minimax"], default=None)
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
    tr.add_argument("--checkpoint-every", type=int, default=0, help="also save every N epochs")
    tr.add_argument("--resume", default=None, help="continue training from this checkpoint")
    tr.add_argument("--out", required=True, help="output .safetensors path")
    tr.add_argument("--weights-only", action="store_true",
                    help="leave the optimizer state out of the checkpoint (smaller; resume restarts Adam)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    return tr


def _model_from_args(args: argparse.Namespace, image_shape: tuple[int, int, int]):
    from explorer.core.models import build_model, get_family

    family, preset = MODEL_CHOICES[args.model]
    cls = get_family(family)
    fields = set(cls.config_cls.__dataclass_fields__)
    wanted: dict[str, Any] = {"latent_dim": args.latent_dim, "image_shape": image_shape, **preset}
    optional = {
        "arch": args.arch,
        "hidden": args.hidden,
        "base_channels": args.base_channels,
        "loss": args.loss,
        "beta": args.beta,
        "denoising_std": args.denoise_std,
        "sparsity_l1": args.sparsity,
        "d_steps": args.d_steps,
        "g_loss": args.g_loss,
    }
    for key, val in optional.items():
        if val is None:
            continue
        if key not in fields:
            if key == "arch" and val == "mlp":
                continue  # the default; families without an arch choice ignore it
            raise CLIError(f"--{key.replace('_', '-')} does not apply to {args.model} models")
        wanted[key] = val
    try:
        return build_model(family, cls.config_cls.from_dict(wanted))
    except (TypeError, ValueError) as exc:
        raise CLIError(f"invalid model options: {exc}") from exc


def cmd_train(args: argparse.Namespace) -> int:
    import torch

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

        model = build_model(resume_model.family, resume_model.config)
    else:
        model = _model_from_args(args, data.image_shape)
    lr = args.lr if args.lr is not None else (2e-4 if model.family == "gan" else 1e-3)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=lr, seed=args.seed, device=args.device,
        checkpoint_path=args.out, checkpoint_every=args.checkpoint_every, max_steps=args.max_steps,
        save_optimizer=not args.weights_only,
    )
    try:
        trainer = Trainer(model, data, config)
    except (TrainingError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    if resume_model is not None:
        trainer.resume_from(resume_model)

    bar = _progress_bar(trainer, disable=args.no_progress)
    try:
        result = trainer.run()
    except TrainingError as exc:
        raise CLIError(str(exc)) from exc
    except KeyboardInterrupt:
        raise CLIError("interrupted") from None
    finally:
        bar.close()
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
    }
    print(json.dumps(summary, default=float))
    return 0


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
