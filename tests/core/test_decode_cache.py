"""The on-disk decode cache of image folders: decoded once, memory-mapped after, a changed folder noticed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer.core.data.cache import DecodeCache, decode_cached, iter_batches
from explorer.core.data.folder import load_folder
from explorer.core.data.transforms import decode_files
from explorer.core.progress import Cancelled


def _write_folder(root: Path, n: int = 40, size: tuple[int, int] = (20, 24), gray: bool = False) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        label = root / ("a" if i % 2 else "b")
        label.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        if gray:
            arr[:] = arr[..., :1]
        p = label / f"{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("LATENT_EXPLORER_DATA_CACHE", str(folder))
    return DecodeCache(folder)


def test_second_open_is_memory_mapped_and_identical(tmp_path, cache):
    _write_folder(tmp_path / "pics")
    seen: list[tuple[float, str]] = []
    first = load_folder(tmp_path / "pics", image_size=16, progress=lambda f, m: seen.append((f, m)))
    assert seen and seen[-1][0] == 1.0
    assert any(p.suffix == ".npy" for p in cache.folder.iterdir())
    second = load_folder(tmp_path / "pics", image_size=16)
    assert isinstance(second.images.base, np.memmap) or isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert second.n_train == first.n_train and second.images.shape == (40, 3, 16, 16)
    # The pixels are those of an uncached decode.
    direct = decode_files(sorted((tmp_path / "pics").rglob("*.png")), 16)
    assert sorted(map(bytes, direct.images)) == sorted(map(bytes, np.asarray(second.images)))
    # Copy-on-write: writing to the array never reaches the cache file.
    second.images[0] = 0
    third = load_folder(tmp_path / "pics", image_size=16)
    np.testing.assert_array_equal(third.images[0], first.images[0])


def test_a_changed_folder_is_noticed(tmp_path, cache):
    paths = _write_folder(tmp_path / "pics", n=20)
    before = load_folder(tmp_path / "pics", image_size=8)
    assert before.notes == []
    Image.fromarray(np.zeros((24, 20, 3), np.uint8)).save(paths[0])
    os.utime(paths[0], ns=(1, 1))  # a different mtime even on coarse file systems
    after = load_folder(tmp_path / "pics", image_size=8)
    assert any("changed" in n for n in after.notes)
    assert not np.array_equal(before.images, after.images)
    assert (np.asarray(after.images) == 0).all(axis=(1, 2, 3)).sum() == 1  # the black image is there
    again = load_folder(tmp_path / "pics", image_size=8)
    assert again.notes == []
    np.testing.assert_array_equal(after.images, again.images)


def test_size_crop_and_channels_are_separate_entries(tmp_path, cache):
    paths = _write_folder(tmp_path / "pics", n=10, gray=True)
    gray = decode_cached(paths, 8, source="x", cache=cache)
    assert gray.images.shape == (10, 1, 8, 8) and gray.all_gray
    rgb = decode_cached(paths, 8, source="x", channels=3, cache=cache)
    assert rgb.images.shape == (10, 3, 8, 8) and not rgb.from_cache
    np.testing.assert_array_equal(rgb.images[:, 0], gray.images[:, 0])
    assert decode_cached(paths, 12, source="x", cache=cache).images.shape == (10, 1, 12, 12)
    assert decode_cached(paths, 8, source="x", cache=cache).from_cache
    assert decode_cached(paths, 8, source="x", channels=3, cache=cache).from_cache


def test_unreadable_files_are_remembered_and_damaged_entries_are_misses(tmp_path, cache):
    paths = _write_folder(tmp_path / "pics", n=12)
    paths[3].write_bytes(b"not an image")
    first = decode_cached(paths, 8, source="x", cache=cache)
    assert len(first.images) == 11 and not first.ok[3] and first.failures[0][0] == paths[3]
    second = decode_cached(paths, 8, source="x", cache=cache)
    assert second.from_cache and second.failures == first.failures and not second.ok[3]
    for p in cache.folder.glob("*.json"):
        p.write_text("{not json")
    third = decode_cached(paths, 8, source="x", cache=cache)
    assert not third.from_cache
    np.testing.assert_array_equal(third.images, first.images)


def test_cancel_leaves_no_entry_and_progress_moves(tmp_path, cache):
    paths = _write_folder(tmp_path / "pics", n=30)
    cancel = threading.Event()
    seen: list[float] = []

    def progress(f: float, m: str) -> None:
        seen.append(f)
        cancel.set()

    with pytest.raises(Cancelled):
        cache.decode(paths, 8, source="x", progress=progress, cancel=cancel, chunk=8)
    assert seen  # progress arrived before the cancel took effect
    assert list(cache.folder.iterdir()) == []  # no entry, no temporary files left behind
    done = cache.decode(paths, 8, source="x", chunk=8)
    assert len(done.images) == 30 and not done.from_cache


def test_cache_can_be_switched_off(tmp_path, monkeypatch):
    paths = _write_folder(tmp_path / "pics", n=6)
    monkeypatch.setenv("LATENT_EXPLORER_DATA_CACHE", "off")
    out = decode_cached(paths, 8, source="x")
    assert len(out.images) == 6 and not isinstance(out.images, np.memmap) and not out.from_cache


def test_iter_batches_reads_a_memmap_in_order_or_by_index(tmp_path):
    mm = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.uint8, shape=(25, 1, 2, 2))
    mm[:] = np.arange(25, dtype=np.uint8)[:, None, None, None]
    starts = [s for s, b in iter_batches(mm, 10)]
    assert starts == [0, 10, 20]
    idx = np.random.default_rng(0).permutation(25)
    got = np.concatenate([b for _, b in iter_batches(mm, 7, idx)])
    np.testing.assert_array_equal(got[:, 0, 0, 0], idx)
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_batches(mm, 0))


def test_encode_dataset_streams_from_the_memmap(tmp_path, cache):
    import torch

    from explorer.core.latent import encode_dataset
    from explorer.core.models import build_model

    _write_folder(tmp_path / "pics", n=24, gray=True)
    data = load_folder(tmp_path / "pics", image_size=8)
    torch.manual_seed(0)
    model = build_model("ae", image_shape=(1, 8, 8), latent_dim=3)
    z_map = encode_dataset(model, data.images, batch_size=5)
    z_mem = encode_dataset(model, np.array(data.images), batch_size=24)
    np.testing.assert_allclose(z_map, z_mem, rtol=1e-5, atol=1e-6)


def test_load_dataset_keeps_the_memory_map(tmp_path, cache):
    from explorer.core.data import load_dataset

    _write_folder(tmp_path / "pics", n=30)
    first = load_dataset(f"folder:{tmp_path / 'pics'}", image_size=16)
    second = load_dataset(f"folder:{tmp_path / 'pics'}", image_size=16)
    np.testing.assert_array_equal(first.images, second.images)
    base = second.images
    while not isinstance(base, np.memmap) and getattr(base, "base", None) is not None:
        base = base.base
    assert isinstance(base, np.memmap)  # not copied into memory on the way through load_dataset
    part = load_dataset(f"folder:{tmp_path / 'pics'}", image_size=16, count=10)
    assert len(part) == 10
    np.testing.assert_array_equal(load_dataset(f"folder:{tmp_path / 'pics'}", image_size=16).images, first.images)
