"""Other people's models, imported first time? The figure of issue 14.

For each kind of model (tests/core/import_fixtures.py: written the way their authors write them, saved with
plain PyTorch), build it in a temporary folder, run the real ``latent-explorer import`` command path
(``explorer.cli.main(["import", ...])``) exactly once with the command a user types, and compare the saved
checkpoint's decode with the original module's own decode on prior samples.

Then the inversion verdict's calibration (``--calibrate``, slower): a DCGAN generator (the PyTorch tutorial's
architecture) trained adversarially on digits, checked by inversion as imported correctly, and as imported
wrongly (output range taken as [0, 1] instead of tanh; the untrained weights), so that the thresholds in
``explorer.core.adapter.check.THRESHOLDS["invert"]`` sit between them.

    .venv/bin/python benchmarks/imports.py [--calibrate]

Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from explorer import cli
from explorer.core import checkpoint
from tests.core import import_fixtures as F


def run_kind(key: str, build, workdir: Path) -> dict:
    folder = workdir / key
    folder.mkdir()
    fx = build(folder)
    out = folder / "model.safetensors"
    stdout, stderr = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    t0 = time.perf_counter()
    try:
        os.chdir(folder)  # the user runs it in the model's folder
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(fx.cli(out))
    finally:
        os.chdir(cwd)
    seconds = time.perf_counter() - t0
    row = {"kind": fx.kind, "command": fx.command(), "exit": code, "seconds": round(seconds, 2)}
    if code != 0:
        row.update(first_time=False, error=stderr.getvalue().strip().splitlines()[-1:])
        return row
    summary = json.loads(stdout.getvalue().strip().splitlines()[-1])
    model = checkpoint.load(out)
    diff = F.max_decode_difference(model, fx, n=16)
    right_shape = (tuple(summary["image_shape"]) == fx.image_shape
                   and tuple(summary["latent_shape"]) == tuple(fx.latent_shape))
    row.update(first_time=bool(right_shape and diff <= 1e-5), image_shape=summary["image_shape"],
               latent_shape=summary["latent_shape"], max_decode_diff=diff, warnings=summary["warnings"],
               verdict=(summary.get("check") or {}).get("verdict"),
               markers=sorted(p.name for p in folder.rglob("*") if p.name in ("TRAINING_RAN", "DATA_LOADED")))
    return row


def calibrate(workdir: Path, steps: int) -> dict:
    """Inversion ratios of a trained DCGAN imported right, and imported wrong."""
    from explorer.core.adapter import import_model, round_trip_check
    from explorer.core.data import load_dataset

    data = load_dataset("digits", image_size=16)
    x = torch.from_numpy(data.images[: data.n_train]).float() / 255 * 2 - 1
    test = data.images[data.n_train:]
    folder = workdir / "calibrate"
    folder.mkdir()
    fx = F.make_dcgan_script(folder)
    gen = fx.original
    torch.save(gen.state_dict(), folder / "untrained.pth")
    nz, ndf = 12, 16
    disc = torch.nn.Sequential(
        torch.nn.Conv2d(1, ndf, 4, 2, 1), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(ndf, ndf * 2, 4, 2, 1), torch.nn.BatchNorm2d(ndf * 2), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(ndf * 2, 1, 4, 1, 0), torch.nn.Flatten())
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(0)
    gen.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        real = x[torch.randint(0, len(x), (64,), generator=g)]
        fake = gen(torch.randn(64, nz, 1, 1, generator=g))
        loss_d = bce(disc(real), torch.ones(64, 1)) + bce(disc(fake.detach()), torch.zeros(64, 1))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(disc(fake), torch.ones(64, 1))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    train_s = time.perf_counter() - t0
    print(f"calibration: trained the DCGAN for {steps} steps in {train_s:.0f} s", file=sys.stderr, flush=True)
    gen.eval()
    torch.save(gen.state_dict(), folder / "trained.pth")
    cases = {
        "trained, imported right (tanh)": ("trained.pth", {}),
        "trained, output range wrong (01)": ("trained.pth", {"output_range": "01"}),
        "untrained weights": ("untrained.pth", {}),
    }
    out = {"steps": steps, "train_seconds": round(train_s, 1)}
    for name, (weights, opts) in cases.items():
        model = import_model(folder / weights, fx.class_ref, **opts)
        check = round_trip_check(model, test, max_images=32)
        out[name] = {"ratio": round(check["ratio"], 3), "verdict": check["verdict"]}
        print(f"calibration: {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true", help="also train a DCGAN and calibrate the "
                                                                 "inversion verdict (about a minute)")
    parser.add_argument("--gan-steps", type=int, default=800)
    parser.add_argument("--only-calibrate", action="store_true", help="skip the table")
    opts = parser.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LATENT_EXPLORER_CONFIG"] = str(Path(tmp) / "config")  # keep the user's trust list clean
        rows = [] if opts.only_calibrate else [run_kind(key, build, Path(tmp)) for key, build in F.BUILDERS.items()]
        cal = calibrate(Path(tmp), opts.gan_steps) if opts.calibrate else None
    print("| kind of model | command | first time | max decode difference |")
    print("|---|---|---|---|")
    for r in rows:
        diff = f"{r['max_decode_diff']:.1e}" if "max_decode_diff" in r else "-"
        ok = "yes" if r["first_time"] else f"no ({'; '.join(r.get('error', []) or r.get('warnings', []))})"
        print(f"| {r['kind']} | `{r['command']}` | {ok} | {diff} |")
    if cal:
        print()
        for k, v in cal.items():
            print(f"{k}: {v}")
    print(json.dumps({"kinds": rows, "first_time": sum(r["first_time"] for r in rows), "of": len(rows),
                      "calibration": cal}))


if __name__ == "__main__":
    main()
