"""Reading files someone may have sent: bounded JSON, safetensors headers checked before parsing, and only
regular files opened.

A small file must not make us do large work. Every reader of an outside file (checkpoints, sessions, images)
goes through these helpers, which raise :class:`BoundsError` (a ``ValueError``) with a message naming the
problem; each caller turns it into its own documented error type (``CheckpointError``, ``SessionError``...).
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from pathlib import Path
from typing import Any, BinaryIO

# A safetensors header is JSON: tensor names, dtypes, shapes, offsets, plus our metadata. Ours are a few KB
# (a VAE with optimiser state: ~8 KB); the format itself allows 100 MB, which Python would turn into GBs.
MAX_HEADER_BYTES = 16 * 1024 * 1024
# Our metadata document: ~5-25 KB for a trained model (200 epochs of history at most).
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_JSON_CONTAINERS = 100_000  # lists + objects


class BoundsError(ValueError):
    """An outside file asks for more than we read, or is not a file we read. ``str(err)`` names the problem."""


def safetensors_header_size(path: str | os.PathLike[str], file_size: int | None = None) -> int:
    """The declared header length of a ``.safetensors`` file, checked against the file and our limit.

    Reads 8 bytes; the header itself is left to safetensors, which then parses at most ``MAX_HEADER_BYTES``.
    """
    with open_regular(path) as fh:
        head = fh.read(8)
        size = os.fstat(fh.fileno()).st_size if file_size is None else file_size
    if len(head) < 8:
        raise BoundsError(f"file is empty or truncated ({len(head)} bytes)")
    (n,) = struct.unpack("<Q", head)
    if n > size - 8:
        raise BoundsError(f"not a valid .safetensors file or truncated (header of {n} bytes declared, "
                          f"file has {size} bytes)")
    if n > MAX_HEADER_BYTES:
        raise BoundsError(f"header is {n / 2**20:.1f} MB, above the {MAX_HEADER_BYTES // 2**20} MB we read "
                          "(real checkpoints have a few KB)")
    return n


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a file for reading only if it is a regular file: a FIFO, socket or device would block or never end.

    O_NONBLOCK makes opening a FIFO return at once (it has no effect on regular files), and the type is checked
    on the opened descriptor, so a file swapped for a FIFO between a check and the open is refused too.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(os.fspath(path), flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise BoundsError(f"{Path(path).name} is {kind}, not a regular file")
        if flags & getattr(os, "O_NONBLOCK", 0) and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file (following symlinks); never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BoundsError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise BoundsError(f"{name} is not a number JSON allows")


def load_json(text: str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH,
              max_containers: int = MAX_JSON_CONTAINERS) -> Any:
    """``json.loads`` with bounded work: size, number of lists/objects and nesting depth are checked, and
    NaN / Infinity / out-of-range numbers are refused. Raises :class:`BoundsError` (also for invalid JSON)."""
    if not isinstance(text, str):
        raise BoundsError(f"expected JSON text, got {type(text).__name__}")
    if len(text) > max_bytes:
        raise BoundsError(f"metadata is {len(text) / 2**20:.1f} MB, above the {max_bytes / 2**20:g} MB we read")
    # Braces inside strings count too: an upper bound, computed at C speed before any object is built.
    containers = text.count("{") + text.count("[")
    if containers > max_containers:
        raise BoundsError(f"metadata holds about {containers} lists/objects, above the {max_containers} we read")
    try:
        doc = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise BoundsError(f"metadata is nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise BoundsError(f"metadata is not valid JSON ({exc.msg} at char {exc.pos})") from None
    except BoundsError:
        raise
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise BoundsError(f"metadata is not valid JSON ({str(exc)[:120]})") from None
    depth = json_depth(doc)
    if depth > max_depth:
        raise BoundsError(f"metadata is nested {depth} levels deep, above the {max_depth} we read")
    return doc


def json_depth(doc: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list)))
    return deepest


__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "BoundsError",
    "is_regular_file",
    "json_depth",
    "load_json",
    "open_regular",
    "safetensors_header_size",
]
