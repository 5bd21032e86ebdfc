"""Decoded image folders on disk: decode once, memory-map ever after.

A folder of JPEGs (CelebA has 202,599 of them) costs minutes to decode on two cores; the pixels it decodes
to are a plain uint8 array. The first open decodes ranges of files on worker processes (one per core,
``spawn``), each writing its rows straight into a ``.npy`` file (never the whole array in memory at once),
with progress and cancel; every later open memory-maps that file, which takes as long as listing the folder
(a ``stat`` per file: ~1-2 s for 200k files; 3.8 s measured on the loaded 2-core machine).

An entry is named by the folder's *identity* (the source path, the image size, the crop, the channels and the
row selection) and is valid while its *signature* matches: a hash of every decoded file's path, size and
modification time, in order. A folder whose files changed (added, removed, edited, touched) has the same
identity but another signature: it is noticed, decoded again, and the entry replaced; ``DecodedFiles.note``
says so.

Entries are written atomically: the pixels go to a temporary file that is renamed into place, then the JSON
metadata (the entry is valid only once it exists and names the same signature). A damaged entry is a miss,
never an error. Nothing here unpickles: ``np.load(..., allow_pickle=False, mmap_mode="c")``.

Memory: the images come back as a copy-on-write memory map (``mmap_mode="c"``: writable, so torch takes it
without a warning, but writes stay private and never reach the file). Only the pages that are read occupy
memory, so a data set larger than memory can still be opened; read it in batches (:func:`iter_batches`),
e.g. ``encode_dataset`` already converts one batch at a time.

Where the cache lives: ``$LATENT_EXPLORER_DATA_CACHE`` (``off`` disables it), else ``decoded/`` under
``$LATENT_EXPLORER_CACHE`` when that is set, else ``$XDG_CACHE_HOME/latent-explorer/decoded``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import multiprocessing
import os
import pickle
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import Cancelled, ProgressFn, Throttle
from .transforms import (
    DECODER_VERSION,
    CropFn,
    DecodedFiles,
    center_square_box,
    decode_files,
    open_image,
    to_luminance,
)

log = logging.getLogger(__name__)

__all__ = ["CACHE_FORMAT", "CachedDecode", "DecodeCache", "decode_cached", "decode_workers", "default_data_cache_dir",
           "file_signature", "fits_in_memory", "is_memory_mapped", "iter_batches"]

CACHE_FORMAT = 1  # bump when the file layout or the decode itself changes: old entries stop matching
CHUNK = 256  # files per decode task: each worker writes its rows straight into the memory map
# Worker processes pay for their start (spawn: a fresh interpreter importing numpy and Pillow, ~0.3 s; not
# torch, which explorer.core imports lazily): below this many files the decode runs on threads here instead.
PROCESS_MIN_FILES = 4096
_MAX_FAILURES_KEPT = 1000  # listed in the metadata; the count is always exact


@dataclass
class CachedDecode(DecodedFiles):
    """``DecodedFiles`` whose images are already in their final channel count, plus where they came from."""

    from_cache: bool = False
    note: str = ""  # e.g. "the folder changed since it was decoded", for ImageData.notes


def default_data_cache_dir() -> Path | None:
    """Where decoded folders go, or None when caching is switched off (``LATENT_EXPLORER_DATA_CACHE=off``)."""
    env = os.environ.get("LATENT_EXPLORER_DATA_CACHE")
    if env:
        return None if env.strip().lower() in ("off", "0", "no", "none") else Path(env).expanduser()
    projections = os.environ.get("LATENT_EXPLORER_CACHE")
    if projections:
        return Path(projections).expanduser() / "decoded"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "latent-explorer" / "decoded"


def _crop_id(crop: CropFn) -> str:
    return f"{getattr(crop, '__module__', '?')}.{getattr(crop, '__qualname__', repr(crop))}"


def file_signature(paths: Sequence[str | os.PathLike[str]]) -> str:
    """sha256 of every path with its size and modification time (ns), in order. Missing files hash as such.

    One ``stat`` per file and one hash update for all of them: ~1 s for 200k files (a hash update per file
    cost as much again)."""
    h = hashlib.sha256()
    stat = os.stat
    lines = []
    for p in paths:
        p = os.fspath(p)
        try:
            st = stat(p)
            lines.append(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n")
        except OSError:
            lines.append(f"{p}\t-\n")
        if len(lines) >= 65536:
            h.update("".join(lines).encode("utf-8", "surrogateescape"))
            lines.clear()
    h.update("".join(lines).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def decode_workers() -> int:
    """Worker processes for a first decode: ``$LATENT_EXPLORER_DECODE_WORKERS``, else the cores the thread
    budget divides (``explorer.core.threads.available_cores``: ``$LATENT_EXPLORER_THREADS`` or the cores this
    process may run on), at most 8. A one-off job: it takes every core while it runs."""
    env = os.environ.get("LATENT_EXPLORER_DECODE_WORKERS", "").strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), 64)
    from ..threads import ThreadBudgetError, available_cores

    try:
        n = available_cores()
    except ThreadBudgetError:
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _decode_into(target: str | np.ndarray, start: int, paths: Sequence[str], size: int, crop: CropFn
                 ) -> tuple[int, np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Decode ``paths`` into rows ``start...`` of ``target`` (a ``.npy`` file's path, opened here as a shared
    memory map: worker processes write the pixels themselves, nothing large is pickled back; or the array).
    Returns (start, ok, gray, [(i, why)] for the files that failed). Top level: a ``spawn`` worker imports it."""
    mm = np.load(target, mmap_mode="r+", allow_pickle=False) if isinstance(target, str) else target
    k = len(paths)
    ok = np.zeros(k, dtype=bool)
    gray = np.zeros(k, dtype=bool)
    failures: list[tuple[int, str]] = []
    for i, p in enumerate(paths):
        try:
            mm[start + i], gray[i] = open_image(p, size, crop)
            ok[i] = True
        except MemoryError:
            failures.append((i, "MemoryError: not enough memory to decode it"))
        except Exception as exc:  # noqa: BLE001 - OSError, ValueError, SyntaxError, DecompressionBombError and
            # whatever else a damaged file makes a Pillow plugin raise: one bad file must not stop the others
            failures.append((i, f"{type(exc).__name__}: {exc}"))
    del mm
    return start, ok, gray, failures


_MAIN_GUARD = re.compile(r"""if\s+__name__\s*==\s*['"]__main__['"]""")


def _main_is_importable() -> bool:
    """Whether ``spawn`` workers may import this program's main module: a ``spawn`` child runs it again
    (as ``__mp_main__``), so a script without an ``if __name__ == "__main__":`` guard would run its top
    level twice. Packages' ``__main__`` (``python -m explorer``) and interactive sessions are never re-run."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.split(".")[-1] == "__main__":
        return True
    path = getattr(main, "__file__", None)
    if not path:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return False
    return _MAIN_GUARD.search(head) is not None


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:  # noqa: BLE001 - lambdas, closures, local classes: decoded on threads instead
        return False
    return True


def _decode_all(mm: np.ndarray, mm_path: Path, paths: Sequence[str | Path], size: int, crop: CropFn, ok: np.ndarray,
                gray: np.ndarray, failed: dict[int, str], throttle: Throttle, cancel: threading.Event | None,
                chunk: int, workers: int | None = None) -> None:
    """Decode every path into its row of ``mm`` (the file at ``mm_path``), filling ``ok``, ``gray``, ``failed``.

    Ranges of ``chunk`` files go to worker processes (``spawn``: safe beside Qt's threads) that write into
    the memory-mapped file themselves; at most two ranges per worker are in flight, so memory stays bounded
    whatever the folder's size. Small jobs, crops that cannot be pickled, a single core, or a pool that
    cannot start (or breaks) decode on threads here instead (Pillow releases the GIL while it decodes).
    ``cancel`` is checked every 0.25 s; running ranges finish first (a fraction of a second)."""
    n = len(paths)
    names = [os.fspath(p) for p in paths]
    left = set(range(0, n, chunk))
    workers = decode_workers() if workers is None else max(1, workers)
    done = 0

    def run(ex: Executor, target: str | np.ndarray, slots: int) -> None:
        nonlocal done
        queue = sorted(left, reverse=True)
        pending: dict[Future, int] = {}
        try:
            while queue or pending:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("decoding cancelled")
                while queue and len(pending) < slots:
                    start = queue.pop()
                    pending[ex.submit(_decode_into, target, start, names[start:start + chunk], size, crop)] = start
                finished, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                for fut in finished:
                    del pending[fut]
                    start, ok_part, gray_part, fails = fut.result()
                    ok[start:start + len(ok_part)] = ok_part
                    gray[start:start + len(gray_part)] = gray_part
                    for i, why in fails:
                        failed[start + i] = why
                    left.discard(start)
                    done += len(ok_part)
                    throttle(0.97 * done / max(n, 1), f"decoding images {done}/{n} (first open only)")
        finally:
            for fut in pending:
                fut.cancel()
            ex.shutdown(wait=True, cancel_futures=True)

    if workers > 1 and n >= PROCESS_MIN_FILES and _picklable(crop) and _main_is_importable():
        try:
            run(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")), os.fspath(mm_path),
                2 * workers)
        except (BrokenProcessPool, OSError, pickle.PicklingError) as exc:
            # e.g. a frozen app without a multiprocessing entry point: the rest is decoded here
            log.warning("decode workers failed (%s: %s); decoding %d remaining images on threads",
                        type(exc).__name__, exc, sum(min(chunk, n - s) for s in left))
    if left:
        run(ThreadPoolExecutor(min(workers, 4)), mm, 2 * workers)


class DecodeCache:
    """Decoded folders under one cache folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else (default_data_cache_dir() or Path("."))

    @staticmethod
    def identity(source: str, size: int, crop: CropFn, channels: int | None, extra: Any = None) -> str:
        doc = json.dumps({"format": CACHE_FORMAT, "source": str(source), "size": int(size), "crop": _crop_id(crop),
                          "channels": channels, "extra": extra, "decoder": DECODER_VERSION},
                         sort_keys=True, default=str)
        return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:40]

    def _paths(self, ident: str) -> tuple[Path, Path]:
        return self.folder / f"{ident}.npy", self.folder / f"{ident}.json"

    # ---- reading
    def _read(self, ident: str) -> tuple[dict[str, Any], np.ndarray] | None:
        npy, meta_path = self._paths(ident)
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            if meta.get("format") != CACHE_FORMAT:
                raise ValueError(f"format {meta.get('format')}")
            mm = np.load(npy, mmap_mode="c", allow_pickle=False)
            n_ok, c, s = int(meta["n_ok"]), int(meta["channels"]), int(meta["size"])
            if mm.dtype != np.uint8 or mm.ndim != 4 or mm.shape[1:] != (c, s, s) or len(mm) < n_ok:
                raise ValueError(f"array {mm.dtype} {mm.shape} does not match the metadata")
            if len(meta["ok"]) != int(meta["n_files"]):
                raise ValueError("ok mask length")
            return meta, mm[:n_ok]
        except Exception as exc:  # noqa: BLE001 - any damaged entry is a miss: the folder is decoded again
            log.warning("decode cache: ignoring damaged entry %s (%s: %s)", ident, type(exc).__name__, exc)
            self.remove(ident)
            return None

    def remove(self, ident: str) -> None:
        for p in self._paths(ident):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    # ---- the one entry point
    def decode(self, paths: Sequence[str | Path], size: int, crop: CropFn = center_square_box, *, source: str,
               channels: int | None = None, extra: Any = None, progress: ProgressFn | None = None,
               cancel: threading.Event | None = None, chunk: int = CHUNK) -> CachedDecode:
        """Decoded ``paths`` (as :func:`~explorer.core.data.transforms.decode_files`, but with the images already
        in their final channel count: ``channels``, or 1 when every image is grayscale, else 3), from the
        cache when the files are unchanged, else decoded into it. ``DecodedFiles.from_cache`` and ``note``
        say which happened."""
        paths = list(paths)  # str or Path: 200k Path objects cost seconds to build
        ident = self.identity(source, size, crop, channels, extra)
        signature = file_signature(paths)
        found = self._read(ident)
        note = ""
        if found is not None:
            meta, images = found
            if meta.get("signature") == signature and int(meta["n_files"]) == len(paths):
                if progress is not None:
                    progress(1.0, f"{len(images)} decoded images from the cache")
                failures = [(Path(p), why) for p, why in meta.get("failures", [])]
                ok = np.frombuffer(meta["ok"].encode("ascii"), dtype=np.uint8) == ord("1")
                return CachedDecode(images, ok, bool(meta["all_gray"]), failures, from_cache=True)
            note = (f"{source} changed since it was decoded ({meta['n_files']} files then, {len(paths)} now, or "
                    "files edited): decoded again")
            log.info("decode cache: %s", note)
            del images, found
        out = self._build(ident, paths, size, crop, channels, signature, progress, cancel, chunk)
        out.note = note
        return out

    def _build(self, ident: str, paths: list[str | Path], size: int, crop: CropFn, channels: int | None, signature: str,
               progress: ProgressFn | None, cancel: threading.Event | None, chunk: int) -> CachedDecode:
        # Deferred: checkpoint imports torch and safetensors.
        from ..checkpoint import atomic_write

        self.folder.mkdir(parents=True, exist_ok=True)
        npy, meta_path = self._paths(ident)
        self.remove(ident)  # metadata first: a crash mid-build must leave no entry that looks valid
        n = len(paths)
        tmp_rgb = self.folder / f".{ident}.{os.getpid()}.{threading.get_ident()}.rgb.npy"
        tmp_final = self.folder / f".{ident}.{os.getpid()}.{threading.get_ident()}.npy"
        throttle = Throttle(progress)
        ok = np.zeros(n, dtype=bool)
        gray_each = np.zeros(n, dtype=bool)
        failed: dict[int, str] = {}
        mm: Any = None
        try:
            mm = np.lib.format.open_memmap(tmp_rgb, mode="w+", dtype=np.uint8, shape=(max(n, 1), 3, size, size))
            _decode_all(mm, tmp_rgb, paths, size, crop, ok, gray_each, failed, throttle, cancel, chunk)
            filled = int(ok.sum())
            if filled < n:  # the decoded rows move up over the failed ones, in order (rows only move up)
                dst = 0
                for start in range(0, n, 4 * chunk):
                    keep = ok[start:start + 4 * chunk]
                    block = mm[start:start + len(keep)][keep]  # a copy: read before the rows are overwritten
                    mm[dst:dst + len(block)] = block
                    dst += len(block)
            failures = [(Path(paths[i]), failed[i]) for i in sorted(failed)]
            gray = bool(filled > 0 and gray_each[ok].all())
            final_c = channels or (1 if gray else 3)
            if final_c == 3:
                mm.flush()
                del mm
                mm = None
                os.replace(tmp_rgb, tmp_final)
            else:
                throttle(0.98, "converting to grayscale")
                out = np.lib.format.open_memmap(tmp_final, mode="w+", dtype=np.uint8,
                                                shape=(max(filled, 1), 1, size, size))
                for i in range(0, filled, 4 * chunk):
                    out[i:i + 4 * chunk] = to_luminance(np.asarray(mm[i:min(i + 4 * chunk, filled)]))
                out.flush()
                del out, mm
                mm = None
                tmp_rgb.unlink()
            os.replace(tmp_final, npy)
            meta = {
                "format": CACHE_FORMAT, "signature": signature, "n_files": n, "n_ok": filled, "size": int(size),
                "channels": int(final_c), "all_gray": bool(gray),
                "ok": (ok.astype(np.uint8) + ord("0")).tobytes().decode("ascii"),
                "failures": [[str(p), why] for p, why in failures[:_MAX_FAILURES_KEPT]],
                "n_failures": len(failures),
            }
            atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta), "utf-8"))
        except BaseException:
            del mm
            for p in (tmp_rgb, tmp_final):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
            raise
        found = self._read(ident)
        if found is None:  # unreadable right after writing (disk full?): the caller still gets its pixels
            raise OSError(f"the decode cache in {self.folder} could not be read back")
        result = CachedDecode(found[1], ok, bool(gray), failures)
        throttle(1.0, f"decoded {filled} images")
        return result


def decode_cached(paths: Sequence[str | Path], size: int, crop: CropFn = center_square_box, *, source: str,
                  channels: int | None = None, extra: Any = None, progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None, cache: DecodeCache | None | bool = True) -> CachedDecode:
    """``decode_files`` through the on-disk cache (``cache=True``: the default folder, unless switched off;
    ``False``/``None``: no cache). The images come back in their final channel count either way."""
    if cache is True:
        folder = default_data_cache_dir()
        cache = DecodeCache(folder) if folder is not None else None
    if isinstance(cache, DecodeCache):
        try:
            return cache.decode(paths, size, crop, source=source, channels=channels, extra=extra,
                                progress=progress, cancel=cancel)
        except OSError as exc:  # an unwritable cache folder must not stop a folder from opening
            log.warning("decode cache unavailable (%s); decoding in memory", exc)
    decoded = decode_files(list(paths), size, crop)
    images = decoded.images
    if (channels or (1 if decoded.all_gray else 3)) == 1 and images.shape[1] == 3:
        images = to_luminance(images)
    if progress is not None:
        progress(1.0, f"decoded {len(images)} images")
    return CachedDecode(images, decoded.ok, decoded.all_gray, decoded.failures)


def is_memory_mapped(array: Any) -> bool:
    """Whether ``array`` (a numpy array, or a view of one) reads its pixels from a memory-mapped file."""
    seen = 0
    while array is not None and seen < 64:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
        seen += 1
    return False


def fits_in_memory(nbytes: int, fraction: float = 0.5) -> bool:
    """Whether ``nbytes`` fit in ``fraction`` of the memory available now (Linux; elsewhere: physical memory)."""
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return True
    return nbytes <= fraction * avail


def iter_batches(images: np.ndarray, batch_size: int, indices: np.ndarray | None = None
                 ) -> Iterator[tuple[int, np.ndarray]]:
    """(start, contiguous in-memory batch) over ``images`` (e.g. a memory map), in order or by ``indices``.

    For training on data larger than memory: shuffle ``indices`` per epoch and read sorted runs per batch
    (a memory map reads sorted rows far faster than scattered ones)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = len(images) if indices is None else len(indices)
    for start in range(0, n, batch_size):
        if indices is None:
            yield start, np.ascontiguousarray(images[start:start + batch_size])
        else:
            idx = np.asarray(indices[start:start + batch_size], np.int64)
            order = np.argsort(idx, kind="stable")
            batch = np.empty((len(idx), *images.shape[1:]), images.dtype)
            batch[order] = images[idx[order]]
            yield start, batch
