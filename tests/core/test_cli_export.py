"""`latent-explorer export interpolate|traverse` end to end, headless, on the bundled faces demo model.

Most cases call ``cli.main`` in-process (a subprocess costs seconds of imports per call on a small machine);
one runs the real console entry point in a subprocess and checks that no Qt module was imported.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from explorer import cli

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "faces-vae.safetensors"
pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="the faces demo checkpoint is not built")
COUNT = "600"  # faces drawn per call: enough rows for a vector, cheap to draw


def _demo_side():
    from explorer.core import checkpoint

    return checkpoint.load(DEMO).image_shape[1]


def run(capsys, *args):
    code = cli.main([*args])
    out, err = capsys.readouterr()
    return code, out, err


def _gif(path):
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def test_interpolate_gif(tmp_path, capsys):
    out = tmp_path / "walk.gif"
    code, stdout, err = run(capsys, "export", "interpolate", str(DEMO), "--dataset", "faces", "--count", COUNT,
                            "--from", "3", "--to", "590", "--steps", "7", "--method", "slerp", "--out", str(out))
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["frames"] == 7 and summary["keyframes"]["indices"] == [3, 590]
    frames = _gif(out)
    assert len(frames) == 7
    assert frames[0].shape[:2] == (summary["size"][1], summary["size"][0]) and min(frames[0].shape[:2]) >= 112
    # the walk goes somewhere: first and last frames differ, neighbours differ less than the ends
    ends = np.abs(frames[0].astype(int) - frames[-1]).mean()
    step = np.abs(frames[3].astype(int) - frames[4]).mean()
    assert ends > 5 and step < ends


def test_interpolate_png_strip_with_keyframe_via(tmp_path, capsys):
    out = tmp_path / "strip.png"
    code, stdout, err = run(capsys, "export", "interpolate", str(DEMO), "--count", COUNT, "--from", "1",
                            "--via", "2", "--to", "4", "--steps", "5", "--method", "lerp", "--min-size", "0",
                            "--out", str(out))
    assert code == 0, err  # the dataset defaults to the one in the checkpoint
    with Image.open(out) as im:
        side = _demo_side()
        h = side + 4  # one row of images with 2 px padding around
        assert im.size == (5 * (side + 2) + 2, h)


def test_traverse_smiling_gif_and_png(tmp_path, capsys):
    gif = tmp_path / "smile.gif"
    code, stdout, err = run(capsys, "export", "traverse", str(DEMO), "--dataset", "faces", "--count", COUNT,
                            "--attribute", "smiling", "--steps", "5", "--rows", "3", "--seed", "1",
                            "--out", str(gif))
    assert code == 0, err
    s = json.loads(stdout.strip().splitlines()[-1])
    assert s["rows"] == 3 and s["steps"] == 5 and s["values"] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert s["attribute"]["source"] == "smiling" and s["attribute"]["kind"] == "binary"
    assert all(i >= 500 for i in s["starts"]["indices"])  # random starts come from the test split
    frames = _gif(gif)
    assert len(frames) == 5
    assert frames[0].shape[1] > 3 * frames[0].shape[0] * 0.9  # three faces side by side in each frame
    png = tmp_path / "smile.png"
    code, _, err = run(capsys, "export", "traverse", str(DEMO), "--count", COUNT, "--attribute", "Smiling",
                       "--steps", "4", "--start", "5,7", "--range", "-1", "1", "--min-size", "0", "--out", str(png))
    assert code == 0, err
    with Image.open(png) as im:
        side = _demo_side() + 2
        assert im.size == (4 * side + 2, 2 * side + 2)  # rows = starting points, columns = strengths


def test_traverse_dim_and_label(tmp_path, capsys):
    code, stdout, err = run(capsys, "export", "traverse", str(DEMO), "--count", COUNT, "--dim", "0",
                            "--steps", "3", "--rows", "2", "--out", str(tmp_path / "d.gif"))
    assert code == 0, err
    assert json.loads(stdout.splitlines()[-1])["values"] == [-3.0, 0.0, 3.0]
    code, _, err = run(capsys, "export", "traverse", str(DEMO), "--count", COUNT, "--attribute", "label=smiling",
                       "--steps", "3", "--rows", "1", "--out", str(tmp_path / "l.png"))
    assert code == 0, err


@pytest.mark.parametrize("args,pattern", [
    (["interpolate", "--from", "0", "--to", "600", "--out", "x.gif"],
     r"--to 600 is out of range: faces has 600 images \(0 to 599\)"),
    (["interpolate", "--from", "0", "--to", "1", "--out", "x.jpg"], r"\.png, \.gif, \.mp4"),
    (["interpolate", "--from", "0", "--to", "1", "--steps", "1", "--out", "x.gif"], "fewer than the 2 keyframes"),
    (["interpolate", "--from", "-1", "--to", "1", "--out", "x.gif"], "integer >= 0"),
    (["traverse", "--attribute", "smilng", "--out", "x.gif"],
     r"unknown attribute 'smilng' for faces\. Did you mean 'smiling'\? Known: smiling, mouth_open, glasses"),
    (["traverse", "--attribute", "label=happy", "--out", "x.gif"], "unknown label 'happy'.*neutral, smiling"),
    (["traverse", "--dim", "32", "--out", "x.gif"], r"--dim 32 is out of range: the latent space has 32"),
    (["traverse", "--attribute", "smiling", "--start", "9999", "--out", "x.gif"], "--start 9999 is out of range"),
    (["traverse", "--out", "x.gif"], "one of the arguments --attribute --dim is required"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, monkeypatch, args, pattern):
    import re

    monkeypatch.chdir(tmp_path)
    kind, rest = args[0], args[1:]
    code, stdout, err = run(capsys, "export", kind, str(DEMO), "--count", COUNT, *rest)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert re.search(pattern, lines[0]), lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_mp4_without_ffmpeg_fails_early(tmp_path, capsys, monkeypatch):
    from explorer.core import export

    monkeypatch.setattr(export, "ffmpeg_executable", lambda: None)
    code, _, err = run(capsys, "export", "interpolate", str(DEMO), "--from", "0", "--to", "1",
                       "--out", str(tmp_path / "a.mp4"))
    assert code == 1 and "ffmpeg" in err and "gif" in err


def test_console_script_runs_headless_without_qt(tmp_path):
    out = tmp_path / "w.gif"
    code = (
        "import sys\n"
        "from explorer.cli import main\n"
        f"rc = main(['export', 'interpolate', {str(DEMO)!r}, '--count', '60', '--from', '0', '--to', '59',"
        f" '--steps', '3', '--out', {str(out)!r}])\n"
        "assert rc == 0, rc\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph')]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert len(_gif(out)) == 3


@pytest.fixture(scope="module")
def gan_file(tmp_path_factory):
    from explorer.core import checkpoint
    from explorer.core.models import build_model, get_family

    cls = get_family("gan")
    model = build_model("gan", cls.config_cls.from_dict({"latent_dim": 8, "image_shape": [1, 8, 8],
                                                          "base_channels": 4}))
    path = tmp_path_factory.mktemp("gan") / "gan.safetensors"
    checkpoint.save(model, path, dataset="digits")
    return path


def test_gan_interpolates_between_prior_seeds_and_refuses_attributes(gan_file, tmp_path, capsys):
    code, stdout, err = run(capsys, "export", "interpolate", str(gan_file), "--from", "3", "--to", "4",
                            "--steps", "4", "--min-size", "0", "--out", str(tmp_path / "g.gif"))
    assert code == 0, err
    assert json.loads(stdout.splitlines()[-1])["keyframes"] == {"prior_seeds": [3, 4]}
    assert len(_gif(tmp_path / "g.gif")) == 4
    code, _, err = run(capsys, "export", "traverse", str(gan_file), "--attribute", "x",
                       "--out", str(tmp_path / "t.gif"))
    assert code == 1 and "no encoder" in err and "--dim" in err
    code, _, err = run(capsys, "export", "traverse", str(gan_file), "--dim", "2", "--steps", "3", "--rows", "2",
                       "--out", str(tmp_path / "t.png"))
    assert code == 0, err
