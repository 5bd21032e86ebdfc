"""Run hostile-file checks in a fresh process and print one JSON line: outcomes and peak memory.

    python tests/core/hostile_run.py build DIR     (writes the hostile files)
    python tests/core/hostile_run.py memory DIR    (loads them: peak memory of the loading alone)
    python tests/core/hostile_run.py fuzz DIR SEED COUNT
    python tests/core/hostile_run.py all DIR SEED COUNT   (memory, then fuzz)

Run by test_hostile_files.py in a subprocess so that the peak RSS measured is that of these checks alone.
"""

from __future__ import annotations

import json
import os
import random
import struct
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import hostile


def flat_png(path: Path, w: int, h: int) -> Path:
    """A w x h grayscale PNG of zeros written row by row: a few KB on disk however large it claims to be."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(1)
    rows = b"\x00" * ((w + 1) * 100)  # filter byte 0 + w zero pixels, 100 rows at a time
    parts = [comp.compress(rows) for _ in range(h // 100)] + [comp.compress(b"\x00" * ((w + 1) * (h % 100)))]
    idat = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def sparse_session(src: Path, dst: Path, nbytes: int, referenced: bool) -> Path:
    """A session with one more tensor of ``nbytes`` (sparse on disk): unreferenced, or as the cursor."""
    header, data = hostile.read_st(src)
    n = nbytes // 4
    start = len(data)
    name = "m0.cursor" if referenced else "junk"
    if referenced:  # the real cursor stays in the file under another name; the session's cursor is huge
        header["m0.cursor_orig"] = header.pop("m0.cursor")
    header[name] = {"dtype": "F32", "shape": [n], "data_offsets": [start, start + n * 4]}
    hostile.write_st(dst, header, data)
    with open(dst, "r+b") as fh:
        fh.truncate(fh.seek(0, 2) + n * 4)
    return dst


_CASES = {  # file -> what is changed in the tiny checkpoint's metadata (None: raw text below)
    "hidden_15000.safetensors": lambda d: d["config"].update(hidden=[15000, 15000]),
    "latent_1e9.safetensors": lambda d: d["config"].update(latent_dim=10**9),
    "conv_channels_1e9.safetensors": lambda d: d["config"].update(arch="conv", base_channels=10**9),
}
_RAW_CASES = {
    "metadata_20MB.safetensors": lambda: "[" + "{}," * 7_000_000 + "{}]",
    "metadata_3MB_of_objects.safetensors": lambda: "[" + "{}," * 1_000_000 + "{}]",
    "metadata_nested_100k.safetensors": lambda: "[" * 100_000 + "]" * 100_000,
}
_SESSIONS = {"session_unreferenced_1GB.lexsession": False, "session_cursor_1GB.lexsession": True}


def build(folder: Path) -> dict:
    """Write the hostile files (in a process of its own: building them must not count as loading them)."""
    folder.mkdir(parents=True, exist_ok=True)
    ck = hostile.tiny_checkpoint(folder / "m.safetensors")
    ses = hostile.tiny_session(folder / "s.lexsession")
    flat_png(folder / "huge.png", 12000, 12000)
    for name, mutate in _CASES.items():
        hostile.with_metadata(ck, folder / name, mutate)
    for name, text in _RAW_CASES.items():
        hostile.with_metadata(ck, folder / name, None, raw_text=text())
    for name, referenced in _SESSIONS.items():
        sparse_session(ses, folder / name, 2**30, referenced)
    return {"built": sorted(p.name for p in folder.iterdir())}


def memory(folder: Path) -> dict:
    import torch  # noqa: F401  (the baseline includes torch)

    from explorer.core import checkpoint
    from explorer.core.data.transforms import open_image
    from explorer.core.session import Session, SessionError

    png = folder / "huge.png"
    cases = {Path(n).stem: folder / n for n in [*_CASES, *_RAW_CASES]}
    sessions = {Path(n).stem: folder / n for n in _SESSIONS}
    baseline = hostile.peak_rss_mb()
    out: dict = {"baseline_mb": round(baseline, 1), "results": {}, "seconds": {}}
    for name, path in cases.items():
        t0 = time.perf_counter()
        try:
            checkpoint.load(path)
            out["results"][name] = "loaded"
        except checkpoint.CheckpointError as exc:
            out["results"][name] = f"CheckpointError: {exc}"
        except BaseException as exc:  # noqa: BLE001 - the point is to see what escapes
            out["results"][name] = f"OTHER {type(exc).__name__}: {str(exc)[:200]}"
        out["seconds"][name] = round(time.perf_counter() - t0, 3)
    for name, path in sessions.items():
        t0 = time.perf_counter()
        try:
            s = Session.load(path)
            out["results"][name] = f"loaded {len(s.models)} model(s)"
        except SessionError as exc:
            out["results"][name] = f"SessionError: {exc}"
        except BaseException as exc:  # noqa: BLE001
            out["results"][name] = f"OTHER {type(exc).__name__}: {str(exc)[:200]}"
        out["seconds"][name] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    try:
        open_image(png, 64)
        out["results"]["png_12000"] = "decoded"
    except ValueError as exc:
        out["results"]["png_12000"] = f"ValueError: {exc}"
    except BaseException as exc:  # noqa: BLE001
        out["results"]["png_12000"] = f"OTHER {type(exc).__name__}: {str(exc)[:200]}"
    out["seconds"]["png_12000"] = round(time.perf_counter() - t0, 3)
    out["peak_mb"] = round(hostile.peak_rss_mb(), 1)
    return out


# ------------------------------------------------------------------ fuzz
_VALUES = [None, True, False, -1, 0, 1, 2**31, 10**30, -(10**30), 1.5, -0.0, 1e308, "", "x", "folder:/", [], {},
           [1, 2, 3], [0, 0, 0], [3, 10**9, 10**9], {"a": 1}, [[[[[]]]]], "é" * 50, list(range(50))]
_RAW = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, "[" * 5000 + "]" * 5000, '"' + "a" * 200_000 + '"']


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:5]):
            yield from _paths(v, prefix + (i,))


def _mutate_doc(text: str, rng: random.Random) -> str:
    doc = json.loads(text)
    paths = [p for p in _paths(doc) if p]
    path = rng.choice(paths)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if rng.random() < 0.25:
        marker = "__RAW_MARKER__"
        parent[path[-1]] = marker
        return json.dumps(doc).replace(f'"{marker}"', rng.choice(_RAW))
    if rng.random() < 0.15 and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(_VALUES)
    return json.dumps(doc)


def _lie_about_tensor(header: dict, rng: random.Random) -> None:
    names = [k for k in header if k != "__metadata__"]
    info = header[rng.choice(names)]
    shape, dtype = list(info["shape"]), info["dtype"]
    choice = rng.randrange(6)
    if choice == 0 and len(shape) >= 2:
        info["shape"] = shape[::-1]  # same size, transposed
    elif choice == 1 and shape:
        info["shape"] = [1, *shape]
    elif choice == 2 and dtype == "F32":
        info["dtype"] = rng.choice(["I32", "U32"] if False else ["I32"])
    elif choice == 3 and dtype == "F32" and shape:
        info["dtype"] = rng.choice(["F8_E4M3", "F8_E5M2", "U8", "I8", "BOOL"])
        info["shape"] = [*shape[:-1], shape[-1] * 4]
    elif choice == 4 and dtype == "F32" and shape:
        info["dtype"] = rng.choice(["F16", "BF16", "I16"])
        info["shape"] = [*shape[:-1], shape[-1] * 2]
    else:
        info["shape"] = [*shape[:-1], (shape[-1] if shape else 1) * 10**6]  # offsets no longer fit


def _mutants(src: Path, key: str, rng: random.Random, count: int, folder: Path, ext: str):
    raw = src.read_bytes()
    header, data = hostile.read_st(src)
    (hlen,) = struct.unpack("<Q", raw[:8])
    for i in range(count):
        kind = rng.choice(["truncate", "flip", "flip_header", "metadata", "metadata", "tensor", "nan"])
        dst = folder / f"{i}{ext}"
        if kind == "truncate":
            dst.write_bytes(raw[: rng.randrange(len(raw))])
        elif kind in ("flip", "flip_header"):
            b = bytearray(raw)
            hi = 8 + hlen if kind == "flip_header" else len(b)
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(hi)
                b[pos] ^= 1 << rng.randrange(8)
            dst.write_bytes(bytes(b))
        elif kind == "metadata":
            h = json.loads(json.dumps(header))
            h["__metadata__"][key] = _mutate_doc(h["__metadata__"][key], rng)
            hostile.write_st(dst, h, data)
        elif kind == "tensor":
            h = json.loads(json.dumps(header))
            _lie_about_tensor(h, rng)
            hostile.write_st(dst, h, data)
        else:  # a NaN payload in one tensor's bytes
            h = json.loads(json.dumps(header))
            names = [k for k in h if k != "__metadata__" and h[k]["dtype"] == "F32" and h[k]["shape"]]
            b = bytearray(data)
            start, _ = h[rng.choice(names)]["data_offsets"]
            b[start:start + 4] = struct.pack("<f", float("nan"))
            hostile.write_st(dst, h, bytes(b))
        yield kind, dst


def fuzz(folder: Path, seed: int, count: int) -> dict:
    from explorer.core import checkpoint
    from explorer.core.session import Session, SessionError

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    # The files built beside (``build``), when there: training a step in a cold interpreter costs seconds.
    ck, ses = folder.parent / "m.safetensors", folder.parent / "s.lexsession"
    if not (ck.is_file() and ses.is_file()):
        ck = hostile.tiny_checkpoint(folder / "m.safetensors")
        ses = hostile.tiny_session(folder / "s.lexsession")
    (folder / "ck").mkdir(exist_ok=True)
    (folder / "ses").mkdir(exist_ok=True)
    outcomes: dict[str, int] = {}
    escaped: list[str] = []
    t0 = time.perf_counter()
    for kind, path in _mutants(ck, "latent_explorer", rng, count, folder / "ck", ".safetensors"):
        try:
            checkpoint.inspect(path)
            model = checkpoint.load(path, with_optimizer_state=True)
            checkpoint.restore_optimizers(model, model.configure_optimizers(1e-3))
            result = "loaded"
        except checkpoint.CheckpointError:
            result = "CheckpointError"
        except BaseException as exc:  # noqa: BLE001 - the point is to see what escapes
            result = "OTHER"
            escaped.append(f"checkpoint {kind} {path.name}: {type(exc).__name__}: {str(exc)[:160]}")
        outcomes[f"checkpoint {result}"] = outcomes.get(f"checkpoint {result}", 0) + 1
    for kind, path in _mutants(ses, "latent_explorer_session", rng, count, folder / "ses", ".lexsession"):
        try:
            Session.load(path)
            result = "loaded"
        except SessionError:
            result = "SessionError"
        except BaseException as exc:  # noqa: BLE001
            result = "OTHER"
            escaped.append(f"session {kind} {path.name}: {type(exc).__name__}: {str(exc)[:160]}")
        outcomes[f"session {result}"] = outcomes.get(f"session {result}", 0) + 1
    return {"outcomes": outcomes, "escaped": escaped, "seconds": round(time.perf_counter() - t0, 2),
            "peak_mb": round(hostile.peak_rss_mb(), 1)}


if __name__ == "__main__":
    mode, where = sys.argv[1], Path(sys.argv[2])
    if mode == "build":
        result = build(where)
    elif mode == "memory":
        result = memory(where)
    elif mode == "all":  # the memory cases, then the fuzz: one interpreter start for the test suite
        result = {"memory": memory(where), "fuzz": fuzz(where / "fuzz", int(sys.argv[3]), int(sys.argv[4]))}
    else:
        result = fuzz(where, int(sys.argv[3]), int(sys.argv[4]))
    print(json.dumps(result))
