"""A file someone sends you can't hurt you (issue 15): bounded work, one documented error type, nothing silently
wrong. Each test names the behaviour of the code before the fix that it catches."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer.core import checkpoint
from explorer.core.checkpoint import (
    CheckpointError,
    WriteError,
    atomic_write,
    clean_stale_temp_files,
)
from explorer.core.session import Session, SessionError

from . import hostile, hostile_run

HERE = Path(__file__).resolve().parent
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return hostile.tiny_checkpoint(folder / "m.safetensors"), hostile.tiny_session(folder / "s.lexsession")


def _meta(tiny, tmp_path, mutate=None, raw=None, name="x.safetensors"):
    return hostile.with_metadata(tiny[0], tmp_path / name, mutate, raw_text=raw)


# ------------------------------------------------------------------ memory-capped subprocess: bombs + fuzz
@pytest.mark.slow  # a fresh interpreter importing torch (the peak memory measured must be the loading's alone)
def test_small_files_cannot_make_us_use_memory_and_fuzzed_files_raise_only_documented_errors(tmp_path):
    """Old code: a 230 KB checkpoint asking for hidden [15000, 15000] took 2.45 GB (here: 2.8 GB peak over all
    cases), latent_dim 10^9 reached the allocator (RuntimeError), 100k-deep metadata raised RecursionError,
    sessions read an unreferenced sparse 1 GB tensor, a 12000x12000 PNG was decoded; fuzzed files escaped
    as TypeError, ValueError, RecursionError, AttributeError, OverflowError, NotImplementedError."""
    hostile_run.build(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(HERE / "hostile_run.py"), "all", str(tmp_path), "15", "120"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    mem = result["memory"]
    expected = {
        "hidden_15000": "CheckpointError: hidden_15000.safetensors: weights are missing",
        "latent_1e9": "CheckpointError: latent_1e9.safetensors: invalid vae config: latent_dim must be at most",
        "conv_channels_1e9": "CheckpointError: conv_channels_1e9.safetensors: invalid vae config: base_channels",
        "metadata_20MB": "CheckpointError: metadata_20MB.safetensors: header is 20.0 MB",
        "metadata_3MB_of_objects": "CheckpointError: metadata_3MB_of_objects.safetensors: metadata holds about",
        "metadata_nested_100k": "CheckpointError: metadata_nested_100k.safetensors: metadata is nested",
        "session_unreferenced_1GB": "loaded 1 model(s)",
        "session_cursor_1GB": "SessionError: session_cursor_1GB.lexsession: 'm0.cursor' has 268435456 values",
        "png_12000": "ValueError: huge.png is 12000x12000 pixels (144 megapixels)",
    }
    for case, start in expected.items():
        assert mem["results"][case].startswith(start), (case, mem["results"][case])
    # Loading all of them costs next to nothing beyond the interpreter with torch (measured: +18 MB).
    assert mem["peak_mb"] - mem["baseline_mb"] < 200, mem
    fuzz = result["fuzz"]
    assert fuzz["escaped"] == []
    assert sum(fuzz["outcomes"].values()) == 240
    assert fuzz["outcomes"].get("checkpoint loaded", 0) > 0 and fuzz["outcomes"].get("checkpoint CheckpointError")
    assert fuzz["outcomes"].get("session SessionError")
    assert fuzz["peak_mb"] - mem["baseline_mb"] < 400, fuzz


# ------------------------------------------------------------------ checkpoints: one documented error type
@pytest.mark.parametrize("case,mutate,message", [
    ("family list", lambda d: d.update(family=[]), "'family' must be a family name"),  # old: TypeError
    ("history text", lambda d: d.update(history="x"), "'history' must be a JSON object"),  # old: loaded
    ("per_epoch text", lambda d: d["history"].update(per_epoch="x"), "history.per_epoch"),  # old: loaded
    ("test_loss text", lambda d: d["history"].setdefault("final_metrics", {}).update(test_loss="x"),
     "history.final_metrics.test_loss"),  # old: loaded, the model list's summary raised
    ("label_names", lambda d: d.update(label_names=[1, 2]), "'label_names' must be a list of names"),
    ("dataset number", lambda d: d.update(dataset=5), "'dataset' must be a data set name"),
    ("swap count", lambda d: d.update(swap_pair={"count": "many"}), "swap_pair.count"),
    ("image_shape float", lambda d: d["config"].update(image_shape=[1, 8.5, 8]), "image_shape must be three"),
    ("hidden bool", lambda d: d["config"].update(hidden=[True]), "hidden layer size"),
])
def test_bad_metadata_values_raise_checkpoint_error(tiny, tmp_path, case, mutate, message):
    path = _meta(tiny, tmp_path, mutate)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace("[", r"\[")):
        checkpoint.load(path)
    if "config" not in case and case not in ("image_shape float", "hidden bool"):
        with pytest.raises(CheckpointError):
            checkpoint.inspect(path)


def test_infinity_and_huge_numbers_in_metadata_raise_checkpoint_error(tiny, tmp_path):
    """Old code: OverflowError for an Infinity in image_shape (int(inf))."""
    doc = json.loads(hostile.read_st(tiny[0])[0]["__metadata__"]["latent_explorer"])
    text = json.dumps(doc).replace('"image_shape": [1, 8, 8]', '"image_shape": [1, Infinity, 8]', 1)
    with pytest.raises(CheckpointError, match="Infinity is not a number JSON allows"):
        checkpoint.load(_meta(tiny, tmp_path, raw=text))
    text = json.dumps(doc).replace('"latent_dim": 2', '"latent_dim": 1e999', 1)
    with pytest.raises(CheckpointError, match="out of range"):
        checkpoint.load(_meta(tiny, tmp_path, raw=text, name="y.safetensors"))
    text = json.dumps(doc).replace('"latent_dim": 2', '"latent_dim": ' + "9" * 5000, 1)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load(_meta(tiny, tmp_path, raw=text, name="z.safetensors"))


def _rewrite_tensor(src: Path, dst: Path, key: str, dtype: str, shape: list[int]) -> Path:
    header, data = hostile.read_st(src)
    header[key]["dtype"], header[key]["shape"] = dtype, shape
    return hostile.write_st(dst, header, data)


def test_float8_weights_and_lying_shapes_are_refused_by_name(tiny, tmp_path):
    """Old code: NotImplementedError ('isfinite' not implemented for Float8) for float8 weights."""
    header, _ = hostile.read_st(tiny[0])
    key = "decoder.0.bias"  # (8,) float32: 32 bytes, also 32 float8 values
    assert header[key] == {**header[key], "dtype": "F32", "shape": [8]}
    with pytest.raises(CheckpointError, match=r"'decoder.0.bias' has dtype F8_E4M3; a floating-point tensor"):
        checkpoint.load(_rewrite_tensor(tiny[0], tmp_path / "f8.safetensors", key, "F8_E4M3", [32]))
    with pytest.raises(CheckpointError, match=r"has dtype I32"):
        checkpoint.load(_rewrite_tensor(tiny[0], tmp_path / "i32.safetensors", key, "I32", [8]))
    with pytest.raises(CheckpointError, match=r"has shape \(2, 4\) but the config .* expects \(8,\)"):
        checkpoint.load(_rewrite_tensor(tiny[0], tmp_path / "s.safetensors", key, "F32", [2, 4]))
    opt_key = next(k for k in header if k.startswith("optimizer/") and header[k]["shape"])
    n = header[opt_key]["shape"]
    f8 = _rewrite_tensor(tiny[0], tmp_path / "of8.safetensors", opt_key, "F8_E4M3", [*n[:-1], n[-1] * 4])
    checkpoint.load(f8)  # exploring ignores optimiser state
    with pytest.raises(CheckpointError, match="unsupported dtype float8_e4m3fn"):
        checkpoint.load(f8, with_optimizer_state=True)


def test_nan_in_saved_optimizer_state_is_refused(tiny, tmp_path):
    """Old code: loaded, and resuming spoilt the weights at the first step."""
    header, data = hostile.read_st(tiny[0])
    key = next(k for k in header if k.endswith("/exp_avg_sq"))
    start, _ = header[key]["data_offsets"]
    data = bytearray(data)
    data[start:start + 4] = np.float32(np.nan).tobytes()
    path = hostile.write_st(tmp_path / "nan.safetensors", header, bytes(data))
    assert checkpoint.load(path).family == "vae"
    with pytest.raises(CheckpointError, match=f"saved optimiser state '{key}' contains NaN"):
        checkpoint.load(path, with_optimizer_state=True)


def test_allocator_failure_is_a_checkpoint_error_and_the_cli_does_not_blame_the_device(tiny, monkeypatch):
    """Old code: the allocator's RuntimeError escaped load(), and the CLI said "cannot use device 'cpu'"."""
    from explorer.cli.args import CLIError, load_models

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 800000000000 bytes")

    monkeypatch.setattr(checkpoint, "build_model", no_memory)
    with pytest.raises(CheckpointError, match="m.safetensors: not enough memory to build the vae model"):
        checkpoint.load(tiny[0])
    with pytest.raises(CLIError) as info:
        load_models([str(tiny[0])], "cpu")
    assert "not enough memory" in str(info.value) and "cannot use device" not in str(info.value)
    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: no_memory())  # a failure outside load's checks
    with pytest.raises(CLIError, match="not enough memory to load the model on 'cpu'"):
        load_models([str(tiny[0])], "cpu")


@needs_fifo
def test_fifo_checkpoint_does_not_block(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="FIFO"):
        checkpoint.load(fifo)


# ------------------------------------------------------------------ atomic writes
def test_stale_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tiny, tmp_path):
    """Old code: a kill -9 during a save left '.m.safetensors.XXXX.tmp' files that nothing removed."""
    from explorer.core.checkpoint import _HOST

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".m.safetensors.{_HOST}-{dead}.abc123.tmp"
    legacy = tmp_path / ".m.safetensors.k2j3h4.tmp"  # the old naming, an hour old
    live = tmp_path / f".m.safetensors.{_HOST}-{os.getpid()}.def456.tmp"  # a writer still running (us)
    other = tmp_path / f".other.safetensors.{_HOST}-{dead}.x.tmp"
    for p in (stale, legacy, live, other):
        p.write_bytes(b"partial")
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    model = checkpoint.load(tiny[0])
    checkpoint.save(model, tmp_path / "m.safetensors")
    assert not stale.exists() and not legacy.exists()
    assert live.exists() and other.exists()  # running writer; another target (cleaned by its own save)
    assert clean_stale_temp_files(tmp_path) == [other]


def test_disk_full_and_read_only_give_one_clear_line(tiny, tmp_path, monkeypatch):
    """Old code: the serializer's internal message ('Error while serializing: I/O error: ... (os error 28)')."""
    from safetensors import SafetensorError

    def full(tmp):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(WriteError) as info:
        atomic_write(tmp_path / "a.bin", full)
    assert str(info.value) == f"no space left on the disk holding {tmp_path}: could not write a.bin"
    assert info.value.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == []  # the temp file went too

    def read_only(tmp):
        raise OSError(errno.EROFS, "Read-only file system", tmp)

    with pytest.raises(WriteError, match=f"^{tmp_path} is on a read-only file system: could not write a.bin$"):
        atomic_write(tmp_path / "a.bin", read_only)
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", lambda *a, **k: full(None))
    with pytest.raises(CheckpointError, match=r"^no space left on the disk holding .*: could not write m2"):
        checkpoint.save(checkpoint.load(tiny[0]), tmp_path / "m2.safetensors")


# ------------------------------------------------------------------ sessions
@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["view"].update(dim_x="abc"), "view 'dim_x' must be an integer"),  # old: restore opened nothing
    (lambda d: d["view"].update(dim_y=-3), "view 'dim_y' must be an integer"),
    (lambda d: d["view"].update(projection=["pca"]), "view 'projection' must be a name"),
    (lambda d: d.update(view="x"), "view must be a JSON object"),  # old: ValueError from dict("x")
    (lambda d: d["models"][0].update(sample_seed=-1), "sample_seed must be an integer from 0"),
    (lambda d: d["models"][0].update(sample_seed=2**70), "sample_seed must be an integer from 0"),
    (lambda d: d["models"][0].update(sample_seed="7"), "sample_seed must be an integer"),  # old: int("7")
    (lambda d: d.update(version="abc"), "version must be an integer"),  # old: raw ValueError
    (lambda d: d.update(models={"a": 1}), "models must be a list"),
    (lambda d: d["models"][0].update(path=[]), "needs the checkpoint's path"),
    (lambda d: d["models"][0].update(vectors="ab"), "vectors must be a list of names"),  # old: read 'a','b'
    (lambda d: d.update(current=5), "current must be an integer from -1 to 0"),
    (lambda d: d["models"][0].update(selected=1.5), "selected must be an integer"),
])
def test_malformed_sessions_raise_session_error(tiny, tmp_path, mutate, message):
    path = hostile.with_metadata(tiny[1], tmp_path / "bad.lexsession", mutate, key="latent_explorer_session")
    with pytest.raises(SessionError, match=message.replace("(", r"\(")):
        Session.load(path)


def test_session_raw_errors_become_session_errors(tiny, tmp_path):
    """Old code: RecursionError, ValueError for numbers JSON does not have."""
    for i, raw in enumerate(["[" * 100_000 + "]" * 100_000, '{"format": NaN}', '{"version": 1e999}']):
        path = hostile.with_metadata(tiny[1], tmp_path / f"{i}.lexsession", None, key="latent_explorer_session",
                                     raw_text=raw)
        with pytest.raises(SessionError, match="damaged session"):
            Session.load(path)


def test_session_round_trip_and_referenced_tensor_checks(tiny, tmp_path):
    s = Session.load(tiny[1])
    m = s.models[0]
    assert (s.current, s.view["dim_y"], m.sample_seed, m.selected) == (0, 1, 7, 3)
    assert m.vectors["smile"].tolist() == [1.0, 1.0] and m.groups["A"].tolist() == [0, 1, 2]
    header, data = hostile.read_st(tiny[1])
    header["m0.group.A"]["dtype"] = "F64"  # 3 int64 -> 3 float64: same bytes, wrong kind
    with pytest.raises(SessionError, match="'m0.group.A' has dtype F64, expected an integer array"):
        Session.load(hostile.write_st(tmp_path / "g.lexsession", header, data))


# ------------------------------------------------------------------ expressions
def test_expression_depth_and_odd_digits_give_expression_errors():
    """Old code: RecursionError for 1*1*...*p0 (within the length limit), AssertionError for 'p0 * ²'."""
    from explorer.core.latent.expression import (
        MAX_EXPRESSION_LENGTH,
        ExpressionError,
        evaluate,
    )

    points = np.arange(6, dtype=np.float32).reshape(2, 3)
    text = "1*" * ((MAX_EXPRESSION_LENGTH - 2) // 2) + "p1"
    assert len(text) <= MAX_EXPRESSION_LENGTH
    assert evaluate(text, points=points).tolist() == [3.0, 4.0, 5.0]
    assert evaluate("2*" * 200 + "p1/" + "2/" * 199 + "2", points=points).tolist() == [3.0, 4.0, 5.0]
    with pytest.raises(ExpressionError, match=r"unexpected character '²'; numbers use the digits 0-9 \(column 6\)"):
        evaluate("p0 * ²", points=points)
    with pytest.raises(ExpressionError, match="unexpected character '٣'"):
        evaluate("p0 * ٣", points=points)  # old code read it as 3


# ------------------------------------------------------------------ images
def test_16_bit_png_and_float_tiff_are_scaled_by_their_range(tmp_path):
    """Old code: 16-bit 30000 saturated to 255, a float TIFF of 0.5 became 0 (black)."""
    from explorer.core.data.transforms import open_image

    Image.fromarray(np.full((20, 20), 30000, np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(np.full((20, 20), 0.5, np.float32)).save(tmp_path / "f.tif")
    arr, gray = open_image(tmp_path / "g16.png", 8)
    assert gray and abs(int(arr[0, 4, 4]) - round(30000 / 65535 * 255)) <= 1  # 117
    arr, gray = open_image(tmp_path / "f.tif", 8)
    assert gray and abs(int(arr[0, 4, 4]) - 128) <= 1


@needs_fifo
def test_fifo_named_png_never_blocks(tmp_path):
    """Old code: open() on the FIFO blocked for ever (no writer), the task could not be cancelled."""
    from explorer.core.data.transforms import decode_files, open_image

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    Image.new("L", (8, 8), 200).save(tmp_path / "ok.png")
    done: dict = {}

    def work():
        try:
            open_image(fifo, 8)
        except ValueError as exc:
            done["error"] = str(exc)
        done["decoded"] = decode_files([fifo, tmp_path / "ok.png"], 8)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the old code's open() so the thread ends
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert done["error"] == "pipe.png is a FIFO (named pipe), not a regular file"
    assert done["decoded"].ok.tolist() == [False, True]


def test_large_images_pixel_limit_and_jpeg_draft(tmp_path):
    """Old code decoded a 7000x7000 PNG in full (~150 MB per copy); now: refused by a limit chosen on
    purpose. A JPEG above the limit still opens: libjpeg decodes it at 1/8 scale."""
    from explorer.core.data.transforms import MAX_IMAGE_PIXELS, open_image

    Image.new("L", (7000, 7000), 90).save(tmp_path / "big.png")
    assert 7000 * 7000 > MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match=r"big.png is 7000x7000 pixels \(49 megapixels\), above the 40-megapixel"):
        open_image(tmp_path / "big.png", 16)
    Image.new("L", (8000, 6000), 90).save(tmp_path / "big.jpg", quality=90)
    arr, gray = open_image(tmp_path / "big.jpg", 16)
    assert gray and arr.shape == (3, 16, 16) and abs(int(arr[0].mean()) - 90) <= 2
    # reduce() after the crop keeps the result right: a left/right split stays split
    half = np.zeros((1200, 1200), np.uint8)
    half[:, 600:] = 255
    Image.fromarray(half).save(tmp_path / "half.png")
    arr, _ = open_image(tmp_path / "half.png", 8)
    assert arr[0, :, :3].max() <= 5 and arr[0, :, 5:].min() >= 250


# ------------------------------------------------------------------ folders
def _folder(root: Path) -> Path:
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (8, 8), 20 * i + (100 if label == "dogs" else 0)).save(root / label / f"{i}.png")
    return root


@needs_fifo
def test_label_folder_symlinked_to_root_counts_nothing_twice(tmp_path):
    """Old code: a label folder that is a symlink to the root listed every file again (in both splits)."""
    from explorer.core.data import load_dataset
    from explorer.core.data.folder import list_image_files

    root = _folder(tmp_path / "pics")
    os.symlink(root, root / "all")  # a label pointing at the root
    os.symlink(root / "cats", root / "aaa_cats")  # an alias of another label, sorted first
    os.symlink(root / "cats" / "0.png", root / "dogs" / "copy.png")  # a file listed twice
    os.symlink("..", root / "dogs" / "up")  # a loop further down
    os.mkfifo(root / "dogs" / "pipe.png")
    files, labels, names = list_image_files(root)
    assert names == ["cats", "dogs"] and np.bincount(labels).tolist() == [5, 5]
    assert len({os.path.realpath(f) for f in files}) == len(files) == 10
    data = load_dataset(f"folder:{root}", image_size=8)
    assert len(data) == 10


def test_folder_walk_is_capped_and_cancellable(tmp_path):
    from explorer.core.data.base import DataSourceError
    from explorer.core.data.folder import IMAGE_EXTENSIONS
    from explorer.core.data.walk import list_folder
    from explorer.core.progress import Cancelled

    root = _folder(tmp_path / "pics")
    deep = root / "cats"
    for i in range(20):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    Image.new("L", (8, 8)).save(deep / "deep.png")
    with pytest.raises(DataSourceError, match="holds more than 6 image files"):
        list_folder(root, IMAGE_EXTENSIONS, max_files=6)
    capped = list_folder(root, IMAGE_EXTENSIONS, max_files=6, stop_at_cap=True)
    assert capped.count <= 7 and any("stopped at the cap" in s for s in capped.skipped)
    listing = list_folder(root, IMAGE_EXTENSIONS)  # depth 16 below a label: the deep file is left out
    assert listing.count == 10 and any("deeper than 16" in s for s in listing.skipped)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        list_folder(root, IMAGE_EXTENSIONS, cancel=cancel)
    messages = []
    list_folder(root, IMAGE_EXTENSIONS, progress=lambda f, m: messages.append(m))
    assert messages and messages[0].startswith("listing")


def test_assess_data_named_by_a_file(tmp_path):
    """The window asks before loading what a checkpoint names when it is large or outside the file's folder."""
    from explorer.core.data.assess import assess_checkpoint_data, assess_dataset

    root = _folder(tmp_path / "project" / "pics")
    inside = assess_dataset(f"folder:{root}", source_file=tmp_path / "project" / "m.safetensors",
                            image_shape=(1, 8, 8))
    assert (inside.images, inside.bytes, inside.bounded, inside.outside) == (10, 640, True, False)
    assert not inside.needs_confirmation and inside.question == ""
    elsewhere = tmp_path / "elsewhere" / "m.safetensors"
    outside = assess_dataset(f"folder:{root}", source_file=elsewhere)
    assert outside.outside and outside.needs_confirmation
    assert "outside the folder of m.safetensors" in outside.question and str(root) in outside.question
    pair = assess_checkpoint_data(elsewhere, {"dataset": "faces-style-a", "swap_pair": {"count": 10**7},
                                              "image_shape": [3, 32, 32]})
    assert pair.large and pair.images == 10**7 and pair.bytes == 10**7 * 3 * 32 * 32
    assert pair.question.startswith("m.safetensors names the data set 'faces-style-a': loading it reads "
                                    "10,000,000 images (about 28.6 GB in memory)")
    assert not assess_dataset("mnist").needs_confirmation
    assert assess_dataset("nonsense").error.startswith("unknown data set 'nonsense'")
    assert assess_checkpoint_data(elsewhere, {"dataset": None}) is None


def test_load_dataset_takes_cancel_for_folders(tmp_path):
    from explorer.core.data import load_dataset
    from explorer.core.progress import Cancelled

    root = _folder(tmp_path / "pics")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        load_dataset(f"folder:{root}", cancel=cancel)

