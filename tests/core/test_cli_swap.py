"""``latent-explorer swap train|apply``: a shared-encoder pair on two face styles, and the swap grid it draws."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer.core import checkpoint
from explorer.core import swap as C
from explorer.core.data import load_dataset
from explorer.core.models import build_model

ROOT = Path(__file__).resolve().parents[2]
COUNT, SIZE, PAD = 600, 24, 2


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A tiny pair trained by the command in a fresh process (no display; Qt must not be imported)."""
    folder = tmp_path_factory.mktemp("swap")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["OMP_NUM_THREADS"] = "1"
    code = ("import sys; from explorer.cli import main; rc = main(['swap', *sys.argv[1:]]); "
            "assert 'PySide6' not in sys.modules, 'Qt was imported'; sys.exit(rc)")
    proc = subprocess.run(
        [sys.executable, "-c", code, "train", "--count", str(COUNT), "--image-size", str(SIZE), "--hidden", "128",
         "--epochs", "3", "--out-a", str(folder / "a.safetensors"), "--out-b", str(folder / "b.safetensors")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "step" in proc.stderr  # the progress bar
    return folder, json.loads(proc.stdout.strip().splitlines()[-1])


def _cells(path, rows, cols):
    """The (rows, cols, H, W, 3) images of an unenlarged grid (2 px padding)."""
    with Image.open(path) as im:
        x = np.asarray(im.convert("RGB"))
    assert x.shape == (rows * (SIZE + PAD) + PAD, cols * (SIZE + PAD) + PAD, 3)
    return np.stack([np.stack([x[PAD + r * (SIZE + PAD):][:SIZE, PAD + c * (SIZE + PAD):][:, :SIZE]
                               for c in range(cols)]) for r in range(rows)])


def test_swap_train_saves_a_recognisable_pair(pair):
    folder, summary = pair
    assert summary["dataset_a"] == "faces-style-a" and summary["dataset_b"] == "faces-style-b"
    assert summary["epochs"] == 3 and summary["shared_encoder"] is True
    a, b = (checkpoint.load(folder / f"{k}.safetensors") for k in "ab")
    assert C.shares_encoder(a, b)  # two files, one encoder
    assert a.metadata["swap_pair"] == {"role": "a", "style": "a", "count": COUNT, "seed": 0,
                                       "partner": "b.safetensors"}
    assert b.metadata["swap_pair"]["partner"] == "a.safetensors" and b.metadata["dataset"] == "faces-style-b"
    assert not list(folder.glob("*.tmp"))  # written atomically


def test_swap_apply_draws_a_faces_in_style_b(pair, capsys):
    from explorer import cli

    folder, _ = pair
    out = folder / "grid.png"
    n = 8
    code = cli.main(["swap", "apply", str(folder / "a.safetensors"), str(folder / "b.safetensors"),
                     "--count", str(n), "--min-size", "0", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "warning" not in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["dataset"] == "faces-style-a" and summary["shared_encoder"] is True
    cells = _cells(out, 3, n).astype(np.float32) / 255.0
    assert summary["size"] == [n * (SIZE + PAD) + PAD, 3 * (SIZE + PAD) + PAD]

    # Row 1 is A's held-out faces, as the data set is loaded by the name in A's checkpoint: the pair's data.
    data = C.face_style_dataset("a", COUNT, size=SIZE)
    named = load_dataset("faces-style-a", count=COUNT, image_size=SIZE)
    np.testing.assert_array_equal(named.images, data.images)
    assert "glasses" not in named.attribute_names and "smiling" in named.attribute_names  # only those that vary
    idx = np.asarray(summary["indices"])
    assert idx.tolist() == list(range(data.n_train, data.n_train + n))
    np.testing.assert_array_equal((cells[0] * 255).round().astype(np.uint8), data.images[idx].transpose(0, 2, 3, 1))
    # Known answer: the same people, poses and expressions rendered in style B.
    truth = C.face_style_data("b", n, size=SIZE, identity_offset=int(idx[0]), attrs=data.attributes[idx])
    truth = truth.images.transpose(0, 2, 3, 1) / 255.0
    original, own, swapped = cells
    d_input = np.abs(swapped - original).mean()
    d_truth = np.abs(swapped - truth).mean()
    assert d_input > 0.1  # the swap changed the pictures...
    assert d_truth < 0.85 * d_input  # ...towards the faces in style B
    assert np.abs(own - original).mean() < d_input  # A's own decoder keeps style A


def test_swap_apply_on_image_files(pair, tmp_path, capsys):
    from explorer import cli

    folder, _ = pair
    faces = C.face_style_data("a", 2, size=SIZE, identity_offset=5000).images
    files = []
    for i, img in enumerate(faces):
        files.append(tmp_path / f"face{i}.png")
        Image.fromarray(img.transpose(1, 2, 0)).save(files[-1])
    out = tmp_path / "files.png"
    code = cli.main(["swap", "apply", str(folder / "a.safetensors"), str(folder / "b.safetensors"),
                     *map(str, files), "--min-size", "0", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["count"] == 2 and summary["files"] == [str(f) for f in files]
    np.testing.assert_array_equal(_cells(out, 3, 2)[0], faces.transpose(0, 2, 3, 1))
    # The files may also follow the options; a stray option is still refused.
    late = tmp_path / "late.png"
    code = cli.main(["swap", "apply", str(folder / "a.safetensors"), str(folder / "b.safetensors"),
                     "--min-size", "0", "--out", str(late), *map(str, files)])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files"] == [str(f) for f in files]
    np.testing.assert_array_equal(np.asarray(Image.open(late)), np.asarray(Image.open(out)))
    code = cli.main(["swap", "apply", str(folder / "a.safetensors"), str(folder / "b.safetensors"),
                     "--out", str(late), str(files[0]), "--bogus"])
    assert code == 1 and "unrecognized arguments" in capsys.readouterr().err


def test_swap_apply_errors_and_warning(pair, tmp_path, capsys):
    from explorer import cli

    folder, _ = pair
    a, b = str(folder / "a.safetensors"), str(folder / "b.safetensors")
    out = str(tmp_path / "g.png")

    def run(*args):
        code = cli.main(["swap", "apply", *args, "--out", out, "--min-size", "0"])
        return code, capsys.readouterr()

    def model(name, family="ae", latent=16, shape=(3, SIZE, SIZE), **kw):
        path = tmp_path / f"{name}.safetensors"
        checkpoint.save(build_model(family, latent_dim=latent, image_shape=shape, **kw), path,
                        dataset="faces-style-b")
        return str(path)

    code, cap = run(a, model("small", latent=4, hidden=(8,)))
    assert code == 1 and "16-d codes but the decoder takes 4-d" in cap.err
    code, cap = run(a, model("digits", shape=(1, 8, 8), hidden=(8,)))
    assert code == 1 and "decoder draws [1, 8, 8]" in cap.err
    code, cap = run(model("gan", family="gan"), b)
    assert code == 1 and "no encoder" in cap.err
    code, cap = run(a, b, str(tmp_path / "x.png"), "--dataset", "faces-style-a")
    assert code == 1 and "not both" in cap.err
    # Two models that do not share an encoder still swap, with a warning.
    code, cap = run(a, model("stranger", hidden=(8,)))
    assert code == 0 and "warning: the two models do not share an encoder" in cap.err
    assert json.loads(cap.out.strip().splitlines()[-1])["shared_encoder"] is False


def test_swap_train_errors(tmp_path, capsys):
    from explorer import cli

    same = str(tmp_path / "a.safetensors")
    assert cli.main(["swap", "train", "--out-a", same, "--out-b", same]) == 1
    assert "same file" in capsys.readouterr().err
    other = str(tmp_path / "b.safetensors")
    assert cli.main(["swap", "train", "--style-b", "a", "--out-a", same, "--out-b", other]) == 1
    assert "two styles" in capsys.readouterr().err
    assert cli.main(["swap"]) == 1
    assert "choose train or apply" in capsys.readouterr().err
