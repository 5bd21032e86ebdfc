"""Decoded image folders on disk: decode once, memory-map ever after.

A folder of JPEGs (CelebA has 202,599 of them) costs minutes to decode on two cores; the pixels it decodes
to are a plain uint8 array. The first open decodes in chunks straight into a ``.npy`` file (never the whole
array in memory at once) with progress and cancel; every later open memory-maps that file, which takes as
long as listing the folder (a ``stat`` per file: ~1-2 s for 200k files).

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
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import Cancelled, ProgressFn, Throttle
from .transforms import DECODER_VERSION, CropFn, DecodedFiles, center_square_box, decode_files, to_luminance

log = logging.getLogger(__name__)

__all__ = ["CACHE_FORMAT", "CachedDecode", "DecodeCache", "default_data_cache_dir", "decode_cached", "fits_in_memory",
           "iter_batches"]

CACHE_FORMAT = 1  # bump when the file layout or the decode itself changes: old entries stop matching
CHUNK = 1024  # files per decode call: bounds the in-memory working set (1024 x 3 x 64 x 64 = 12 MB)
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


def file_signature(paths: Sequence[Path]) -> str:
    """sha256 of every path with its size and modification time (ns), in order. Missing files hash as such."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{p}\t-\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


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
    def decode(self, paths: Sequence[Path], size: int, crop: CropFn = center_square_box, *, source: str,
               channels: int | None = None, extra: Any = None, progress: ProgressFn | None = None,
               cancel: threading.Event | None = None, chunk: int = CHUNK) -> CachedDecode:
        """Decoded ``paths`` (as :func:`~explorer.core.data.transforms.decode_files`, but with the images already
        in their final channel count: ``channels``, or 1 when every image is grayscale, else 3), from the
        cache when the files are unchanged, else decoded into it. ``DecodedFiles.from_cache`` and ``note``
        say which happened."""
        paths = [Path(p) for p in paths]
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

    def _build(self, ident: str, paths: list[Path], size: int, crop: CropFn, channels: int | None, signature: str,
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
        gray = True
        failures: list[tuple[Path, str]] = []
        filled = 0
        mm: Any = None
        try:
            mm = np.lib.format.open_memmap(tmp_rgb, mode="w+", dtype=np.uint8, shape=(max(n, 1), 3, size, size))
            for start in range(0, n, chunk):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("decoding cancelled")
                part = decode_files(paths[start:start + chunk], size, crop)
                k = len(part.images)
                mm[filled:filled + k] = part.images
                filled += k
                ok[start:start + len(part.ok)] = part.ok
                gray = gray and (part.all_gray or not part.ok.any())
                failures.extend(part.failures)
                done = min(start + chunk, n)
                throttle(0.97 * done / max(n, 1), f"decoding images {done}/{n} (first open only)")
            gray = gray and filled > 0
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
                "ok": "".join("1" if v else "0" for v in ok),
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


def decode_cached(paths: Sequence[Path], size: int, crop: CropFn = center_square_box, *, source: str,
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
