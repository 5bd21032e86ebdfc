"""Real-size folders: a fast first decode (JPEG draft, worker processes), a second open that reads no pixels,
and training / encoding that read a memory-mapped data set batch by batch instead of copying it."""

from __future__ import annotations

import logging
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from PIL.JpegImagePlugin import JpegImageFile

import explorer.core.data.cache as cache_mod
from explorer.core.data.base import ImageData
from explorer.core.data.cache import DecodeCache, is_memory_mapped
from explorer.core.data.celeba import celeba_box
from explorer.core.data.folder import load_folder
from explorer.core.data.transforms import center_square_box, open_image
from explorer.core.progress import Cancelled


def _celeba_like(path: Path, seed: int, frame: bool = False) -> None:
    """A 178x218 JPEG like an aligned CelebA photo: smooth background, a face-sized ellipse. ``frame``: black
    outside CelebA's centred 140x140 box, white inside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:218, 0:178].astype(np.float32)
    a, b, c = rng.uniform(-1, 1, 3)
    base = (128 + 60 * np.sin(a * xx / 30 + b * yy / 40 + c)).astype(np.uint8)
    im = Image.fromarray(np.stack([base, np.roll(base, 7, 1), np.roll(base, 13, 0)], axis=-1))
    d = ImageDraw.Draw(im)
    d.ellipse((49, 54, 129, 164), fill=tuple(int(v) for v in rng.integers(60, 230, 3)))
    if frame:
        im = Image.new("RGB", (178, 218), (0, 0, 0))
        ImageDraw.Draw(im).rectangle((19, 39, 158, 178), fill=(255, 255, 255))
    im.save(path, quality=90)


def test_jpeg_draft_keeps_the_crop_and_is_close_to_a_full_decode(tmp_path, monkeypatch):
    paths = []
    for i in range(12):
        p = tmp_path / f"{i:02d}.jpg"
        _celeba_like(p, i)
        paths.append(p)
    drafts: list[tuple[int, int]] = []
    real_draft = JpegImageFile.draft

    def spy(self, mode, size):
        out = real_draft(self, mode, size)
        drafts.append(self.size)
        return out

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    for crop in (center_square_box, celeba_box):
        drafts.clear()
        fast = np.stack([open_image(p, 64, crop)[0] for p in paths]).astype(np.float64)
        assert drafts and set(drafts) == {(89, 109)}  # decoded at half scale: the crop is still >= 64 px
        drafts.clear()
        full = np.stack([open_image(p, 64, crop, draft=False)[0] for p in paths]).astype(np.float64)
        assert not drafts
        mse = float(((fast - full) ** 2).mean())
        assert np.abs(fast - full).mean() < 1.0 and 10 * np.log10(255**2 / mse) > 40, (crop.__name__, mse)
    # No draft when it would take the crop below the target size (128 px from a 140 px crop).
    drafts.clear()
    open_image(paths[0], 128, celeba_box)
    assert drafts == []
    # Crop semantics: CelebA's box (white) and not the black frame around it. At half scale the box's edge
    # (x=19) falls inside a pixel that is half frame, so the border may be grey, never mostly frame; rounding
    # the edges instead shifted the picture a pixel right and down (a black last column, min 73).
    framed = tmp_path / "framed.jpg"
    _celeba_like(framed, 0, frame=True)
    for draft, ring_min, pixel_min in ((False, 250, 240), (True, 180, 128)):
        arr, _ = open_image(framed, 64, celeba_box, draft=draft)
        ring = np.concatenate([arr[:, 0], arr[:, -1], arr[:, :, 0], arr[:, :, -1]], axis=1)
        assert arr[:, 1:-1, 1:-1].min() > 240 and ring.mean() > ring_min and arr.min() > pixel_min, \
            (draft, ring.mean(), arr.min())
        sides = [arr[:, :, 0].mean(), arr[:, :, -1].mean(), arr[:, 0].mean(), arr[:, -1].mean()]
        assert max(sides) - min(sides) < 12, sides  # centred: the four edges alike


def _mixed_folder(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    for i in range(n):
        _celeba_like(root / f"{i:03d}.jpg", i)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    # Flat, so tiny on disk, but 49 megapixels decoded: over the one-image limit, refused by the worker.
    Image.new("L", (7000, 7000), 128).save(root / "huge.png")


def test_worker_processes_decode_into_the_memory_map_like_threads_do(tmp_path, monkeypatch, caplog):
    _mixed_folder(tmp_path / "pics", 30)
    paths = sorted((tmp_path / "pics").iterdir())
    pools: list[object] = []

    class Counting(cache_mod.ProcessPoolExecutor):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            pools.append(self)

    monkeypatch.setattr(cache_mod, "PROCESS_MIN_FILES", 8)
    monkeypatch.setattr(cache_mod, "ProcessPoolExecutor", Counting)
    monkeypatch.setenv("LATENT_EXPLORER_DECODE_WORKERS", "2")
    seen: list[float] = []
    with caplog.at_level(logging.WARNING, logger="explorer.core.data.cache"):
        procs = DecodeCache(tmp_path / "c1").decode(paths, 32, celeba_box, source="p", chunk=4,
                                                    progress=lambda f, m: seen.append(f))
    assert len(pools) == 1 and "decode workers failed" not in caplog.text
    assert seen[-1] == 1.0 and len(seen) >= 2
    monkeypatch.setenv("LATENT_EXPLORER_DECODE_WORKERS", "1")  # one thread, in this process
    threads = DecodeCache(tmp_path / "c2").decode(paths, 32, celeba_box, source="p", chunk=4)
    assert len(pools) == 1
    assert procs.images.shape == threads.images.shape == (30, 3, 32, 32)
    np.testing.assert_array_equal(np.asarray(procs.images), np.asarray(threads.images))
    np.testing.assert_array_equal(procs.ok, threads.ok)
    assert [p.name for p, _ in procs.failures] == ["broken.jpg", "huge.png"]
    assert "megapixel" in {p.name: w for p, w in procs.failures}["huge.png"]
    assert [w for _, w in procs.failures] == [w for _, w in threads.failures]
    # The failed rows were squeezed out in order: row k is the k-th readable file.
    ok_paths = [p for p, good in zip(paths, procs.ok) if good]
    np.testing.assert_array_equal(procs.images[7], open_image(ok_paths[7], 32, celeba_box)[0])


def test_cancelling_the_worker_pool_leaves_no_entry(tmp_path, monkeypatch):
    _mixed_folder(tmp_path / "pics", 24)
    paths = sorted((tmp_path / "pics").iterdir())
    monkeypatch.setattr(cache_mod, "PROCESS_MIN_FILES", 8)
    monkeypatch.setenv("LATENT_EXPLORER_DECODE_WORKERS", "2")
    cancel = threading.Event()
    cache = DecodeCache(tmp_path / "c")
    with pytest.raises(Cancelled):
        cache.decode(paths, 16, source="p", chunk=2, cancel=cancel,
                     progress=lambda f, m: cancel.set() if f > 0 else None)
    assert list(cache.folder.iterdir()) == []


def test_second_open_reads_no_pixels_and_stays_memory_mapped(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_DATA_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "pics"
    root.mkdir()
    for i in range(150):
        _celeba_like(root / f"{i:03d}.jpg", i)
    first = load_folder(root, image_size=64)
    import explorer.core.data.cache as c

    def no_decoding(*a, **kw):
        raise AssertionError("the second open decoded a file")

    monkeypatch.setattr(c, "open_image", no_decoding)
    tracemalloc.start()
    try:
        second = load_folder(root, image_size=64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert is_memory_mapped(second.images) and not is_memory_mapped(np.array(second.images[:2]))
    assert peak < 0.25 * second.images.nbytes, peak  # 1.8 MB of pixels, not copied
    np.testing.assert_array_equal(first.images, second.images)


@pytest.mark.parametrize("host_batches", [False, True])
def test_training_and_encoding_read_a_memory_map_batch_by_batch(tmp_path, monkeypatch, host_batches):
    import torch

    from explorer.core.latent.encoding import encode_dataset
    from explorer.core.models import build_model
    from explorer.core.training import TrainConfig, Trainer

    n, size = 24_000, 64  # 94 MB of uint8 pixels on disk
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(n, 1, size, size))
    ramp = np.arange(size * size, dtype=np.uint8).reshape(1, 1, size, size)
    for i in range(0, n, 2000):
        mm[i:i + 2000] = ramp + (np.arange(i, i + 2000) % 256).astype(np.uint8).reshape(-1, 1, 1, 1)
    mm.flush()
    del mm
    images = np.load(tmp_path / "x.npy", mmap_mode="c")
    data = ImageData("mapped", images, np.zeros(n, np.int64), [], n_train=n - 1000)
    nbytes_mb = images.nbytes / 2**20
    if host_batches:  # the path an accelerator takes for a data set larger than its free memory
        monkeypatch.setattr(Trainer, "_keep_on_host", lambda self: True)
    torch.manual_seed(0)
    model = build_model("ae", image_shape=(1, size, size), latent_dim=4, hidden=(16,))
    cfg = TrainConfig(epochs=1, batch_size=128, device="cpu", n_sample_grid=4, eval_batch_size=500,
                      progress_interval_s=0.0)
    # Warm up on a small in-memory set: the first run imports modules (torch's optimisers pull in sympy,
    # ~70 MB of Python objects that tracemalloc would count).
    Trainer(model, ImageData("small", np.zeros((600, 1, size, size), np.uint8), np.zeros(600, np.int64), [],
                             n_train=500), cfg).run()
    tracemalloc.start()  # numpy reports its buffers to tracemalloc: a copy of the pixels would show
    try:
        trainer = Trainer(model, data, cfg)
        result = trainer.run()
        train_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0] / 2**20
        z = encode_dataset(model, data.images, batch_size=500)
        encode_peak = tracemalloc.get_traced_memory()[1] / 2**20 - base
    finally:
        tracemalloc.stop()
    assert result.steps == 180
    assert trainer.step_mode == "eager" and (trainer.step_mode_reason.startswith("the data set is read")
                                             == host_batches)
    # The tensor the steps gathered their batches from is the memory map itself, not a copy (torch's own
    # allocations are invisible to tracemalloc, so look at the storage).
    start = images.ctypes.data
    assert start <= trainer._step_fn.images.data_ptr() < start + images.nbytes
    assert z.shape == (n, 4) and np.isfinite(z).all()
    # A whole copy (uint8: 94 MB, float: 375 MB) would show; a batch is 2 MB (uint8) or 8 MB (float).
    assert train_peak < 0.25 * nbytes_mb and encode_peak < 0.25 * nbytes_mb, (train_peak, encode_peak, nbytes_mb)
