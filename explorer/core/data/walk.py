"""Listing the images of a folder with bounded, cancellable work.

A folder can be named by a file someone sent (a checkpoint's ``"dataset": "folder:/"``), so the walk has caps
(files, folders, depth), checks a cancel event at every folder, reports progress, and never counts a file twice:
a label folder that is a symlink to the root, to one of its ancestors or to a folder already listed is skipped,
symlinked folders deeper down are not followed (no loops), and files are told apart by device and inode (a
symlinked or hard-linked copy of a listed file is the same image).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..progress import Cancelled, ProgressFn, Throttle
from .base import DataSourceError

log = logging.getLogger(__name__)

MAX_FILES = 1_000_000  # image files listed under one root
MAX_FOLDERS = 100_000  # folders visited under one root
MAX_DEPTH = 16  # folder levels below a label folder


@dataclass
class FolderListing:
    groups: dict[str, list[Any]]  # label folder name (or the caller's name for loose files) -> sorted files
    loose: list[Any]  # images directly in the root, sorted (Path, or str with strings=True)
    folders: int = 0  # folders visited
    skipped: list[str] = field(default_factory=list)  # why something was left out (symlinked duplicates...)

    @property
    def count(self) -> int:
        return len(self.loose) + sum(len(v) for v in self.groups.values())


class _Walk:
    def __init__(self, root: Path, extensions: frozenset[str], max_files: int, max_folders: int, max_depth: int,
                 cancel: threading.Event | None, progress: ProgressFn | None, stop_at_cap: bool,
                 strings: bool = False):
        self.root = root
        self.strings = strings
        self.extensions = extensions
        self.max_files, self.max_folders, self.max_depth = max_files, max_folders, max_depth
        self.cancel = cancel
        self.progress = Throttle(progress)
        self.stop_at_cap = stop_at_cap
        self.seen_files: set[tuple[int, int]] = set()
        self.seen_dirs: set[tuple[int, int]] = set()
        self.n_files = 0
        self.n_folders = 0
        self.capped = False
        self.skipped: list[str] = []

    def _tick(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("listing the folder was cancelled")
        self.n_folders += 1
        if self.n_folders > self.max_folders:
            self._cap(f"more than {self.max_folders} folders")
        self.progress(0.0, f"listing {self.root}: {self.n_files} images in {self.n_folders} folders")

    def _cap(self, what: str) -> None:
        self.capped = True
        if not self.stop_at_cap:
            raise DataSourceError(
                f"{self.root} holds {what} (listing stopped there); choose a smaller folder, or one subfolder "
                "per label with the images inside")

    def _image(self, entry: os.DirEntry, dev: int) -> bool:
        name = entry.name
        if name.startswith(".") or os.path.splitext(name)[1].lower() not in self.extensions:
            return False
        try:
            if not entry.is_file():  # regular files only (following a symlink): no FIFOs, sockets, devices
                return False
            key = ((st := entry.stat()).st_dev, st.st_ino) if entry.is_symlink() else (dev, entry.inode())
        except OSError:
            return False
        if key in self.seen_files:
            return False
        self.seen_files.add(key)
        self.n_files += 1
        if self.n_files > self.max_files:
            self._cap(f"more than {self.max_files} image files")
        return True

    def scan(self, folder: Path) -> tuple[list[Any], list[tuple[str, Path, bool]]]:
        """(images directly in folder, [(name, path, is_symlink)] of its non-hidden subfolders), sorted."""
        self._tick()
        files: list[Any] = []
        subdirs: list[tuple[str, Path, bool]] = []
        try:
            dev = os.stat(folder).st_dev
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.skipped.append(f"{folder}: cannot read ({exc.strerror or exc})")
            return files, subdirs
        for entry in entries:
            if self.capped:
                break
            try:
                if entry.is_dir():
                    if not entry.name.startswith("."):  # hidden folders (.thumbnails, .git) hold no data
                        subdirs.append((entry.name, Path(entry.path), entry.is_symlink()))
                    continue
            except OSError:
                continue
            if self._image(entry, dev):
                files.append(entry.path if self.strings else Path(entry.path))
        return files, subdirs

    def below(self, folder: Path, depth: int) -> list[Any]:
        """Every image under folder (not following symlinked folders), depth-first, sorted by path."""
        found: list[Any] = []
        stack = [(folder, depth)]
        while stack and not self.capped:
            current, d = stack.pop()
            files, subdirs = self.scan(current)
            found.extend(files)
            if d >= self.max_depth:
                if subdirs:
                    self.skipped.append(f"{current}: folders deeper than {self.max_depth} levels were not read")
                continue
            stack.extend((path, d + 1) for _, path, link in reversed(subdirs) if not link)
        return sorted(found, key=_path_key) if self.strings else sorted(found)


def _path_key(path: str) -> list[str]:
    """Strings sorted as their Paths sort (by component), so both listings give the same order."""
    return path.split(os.sep)


def _dir_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def list_folder(root: str | os.PathLike[str], extensions: frozenset[str], *, max_files: int = MAX_FILES,
                max_folders: int = MAX_FOLDERS, max_depth: int = MAX_DEPTH, cancel: threading.Event | None = None,
                progress: ProgressFn | None = None, stop_at_cap: bool = False,
                strings: bool = False) -> FolderListing:
    """Images under ``root``: one group per non-hidden subfolder (a label), plus the loose files in ``root``.

    Raises :class:`DataSourceError` when a cap is passed (``stop_at_cap=True`` returns what was found so far,
    with ``capped`` noted in ``skipped``), :class:`~explorer.core.progress.Cancelled` when ``cancel`` is set.
    ``strings=True`` lists the files as ``str`` paths: a ``Path`` costs ~10 us to build, seconds for 200k files.
    """
    root = Path(root)
    walk = _Walk(root, extensions, max_files, max_folders, max_depth, cancel, progress, stop_at_cap, strings)
    root_real = Path(os.path.realpath(root))
    loose, subdirs = walk.scan(root)
    root_key = _dir_key(root)
    if root_key is not None:
        walk.seen_dirs.add(root_key)
    groups: dict[str, list[Path]] = {}
    # Real folders first, so that a symlink to one of them is the duplicate, whatever the names' order.
    for name, path, link in sorted(subdirs, key=lambda s: (s[2], s[0])):
        if walk.capped:
            break
        key = _dir_key(path)
        if key is None:
            continue
        if link:
            target = Path(os.path.realpath(path))
            if target == root_real or root_real.is_relative_to(target):
                walk.skipped.append(f"{path}: a symlink to {target}, which holds this folder; not read twice")
                continue
            if key in walk.seen_dirs or (target.is_relative_to(root_real)):
                walk.skipped.append(f"{path}: a symlink to {target}, which is already read as a label")
                continue
        walk.seen_dirs.add(key)
        files = walk.below(path, 1)
        if files:
            groups[name] = files
    if walk.capped:
        walk.skipped.append(f"listing stopped at the cap ({max_files} files, {max_folders} folders)")
    for why in walk.skipped:
        log.info("%s", why)
    # Keep the folders' sorted order for the labels (the symlinked ones were visited last).
    ordered = {name: groups[name] for name in sorted(groups)}
    return FolderListing(ordered, loose, walk.n_folders, walk.skipped)


__all__ = ["MAX_DEPTH", "MAX_FILES", "MAX_FOLDERS", "FolderListing", "list_folder"]
