import numpy as np
import pytest
from PIL import Image, ImageSequence

from explorer.core import export
from explorer.core.export import ExportError, export_frames, grid, save_gif, save_png_grid, to_frames, upscale


def _frames(n=6, h=28, w=28, c=3):
    # Distinct frames (Pillow merges identical consecutive GIF frames): a bar that moves right.
    x = np.zeros((n, h, w, c), np.uint8)
    for i in range(n):
        x[i, :, (i * w) // n : (i * w) // n + 3] = 255
        x[i, ..., 0] = np.maximum(x[i, ..., 0], 40 * i)
    return x


def _gif_frames(path):
    with Image.open(path) as im:
        return [(f.size, np.asarray(f.convert("RGB"))) for f in ImageSequence.Iterator(im)]


def test_gif_has_the_right_frame_count_size_and_timing(tmp_path):
    x = _frames(6)
    out = save_gif(tmp_path / "walk.gif", x, duration_ms=80)
    frames = _gif_frames(out)
    assert len(frames) == 6
    assert all(size == (112, 112) for size, _ in frames)  # 28 px enlarged 4x to reach 112
    with Image.open(out) as im:
        assert im.info["duration"] == 80 and im.info.get("loop") == 0
    # nearest neighbour: the enlarged first frame is the original, pixel for pixel, in 4x4 blocks
    first = frames[0][1]
    assert np.array_equal(first[::4, ::4], x[0])


def test_gif_bounce_and_grayscale(tmp_path):
    x = _frames(5, c=1)[..., 0]  # (N, H, W) grayscale
    out = save_gif(tmp_path / "b.gif", x, bounce=True, min_size=0)
    frames = _gif_frames(out)
    assert len(frames) == 8  # 0 1 2 3 4 3 2 1
    assert frames[0][0] == (28, 28)
    assert np.array_equal(frames[5][1][..., 0], x[3]) and np.array_equal(frames[7][1][..., 0], x[1])


def test_png_grid_layout(tmp_path):
    x = _frames(5, h=10, w=12)
    g = grid(x, nrow=3, padding=1, pad_value=7)
    assert g.shape == (2 * 11 + 1, 3 * 13 + 1, 3)
    assert np.array_equal(g[1:11, 1:13], x[0]) and np.array_equal(g[12:22, 14:26], x[4])
    assert (g[0] == 7).all() and (g[12:22, 27:] == 7).all()  # padding and the empty sixth cell
    out = save_png_grid(tmp_path / "grid.png", x, nrow=5, padding=2, min_size=0)
    with Image.open(out) as im:
        assert im.size == (5 * 14 + 2, 14) and im.mode == "RGB"


def test_upscale_and_to_frames():
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    big = upscale(x, 10)  # smaller side 3 -> factor 4
    assert big.shape == (2, 12, 16) and big[1, 5, 7] == x[1, 1, 1]
    assert upscale(x, 2) is x
    imgs = np.random.default_rng(0).random((3, 1, 5, 5)).astype(np.float32)
    f = to_frames(imgs)
    assert f.shape == (3, 5, 5, 1) and f.dtype == np.uint8
    assert np.allclose(f[..., 0] / 255.0, imgs[:, 0], atol=1 / 255)


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path, monkeypatch):
    target = tmp_path / "keep.gif"
    save_gif(target, _frames(3))
    before = target.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(ExportError, match="^cannot write .*keep.gif: no space left on the disk holding "):
        save_gif(target, _frames(4))
    assert target.read_bytes() == before  # the old file survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gif"]


def test_mp4_without_an_encoder_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "ffmpeg_executable", lambda: None)
    with pytest.raises(ExportError, match="ffmpeg.*install|install.*ffmpeg"):
        export_frames(tmp_path / "a.mp4", _frames(3))
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(export.ffmpeg_executable() is None, reason="no ffmpeg on this machine")
def test_mp4_with_ffmpeg(tmp_path):
    out = export_frames(tmp_path / "a.mp4", _frames(5, h=27, w=29), min_size=0)
    assert out.stat().st_size > 100


@pytest.mark.parametrize("frames,kwargs,match", [
    (np.zeros((2, 4, 4, 3), np.float32), {}, "uint8"),
    (np.zeros((2, 4, 4, 2), np.uint8), {}, "C = 1, 3 or 4"),
    (np.zeros((0, 4, 4, 3), np.uint8), {}, "no frames"),
    (np.zeros((2, 4, 4, 3), np.uint8), {"duration_ms": 0}, "duration_ms"),
])
def test_bad_frames_raise(tmp_path, frames, kwargs, match):
    with pytest.raises(ExportError, match=match):
        export_frames(tmp_path / "x.gif", frames, **kwargs)


def test_unknown_format(tmp_path):
    with pytest.raises(ExportError, match=r"unknown format '\.jpg'"):
        export_frames(tmp_path / "x.jpg", _frames(2))
