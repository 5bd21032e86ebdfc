"""Opening models and encoding their data sets, in the background, into the explorer state.

The one rule that the first version missed: a current model that has an encoder but no latents, no encoding in
flight and no error *always* gets its data encoded — whichever path made it current (opened, trained, switched
to, restored). So a model trained in the window shows its map when selected after training ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from explorer.core.explore import ExplorerState, OpenModel, apply_model_state

from .tasks import TaskRunner


def file_identity(path: str) -> str:
    """sha256 of a checkpoint's bytes: names its cached maps, and changes whenever the weights do."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def strip_exception(msg: str) -> str:
    """'explorer.core.checkpoint.CheckpointError: x.safetensors: ...' -> 'x.safetensors: ...'."""
    head, sep, tail = msg.partition(": ")
    if sep and ("Error" in head or "Exception" in head) and " " not in head:
        return tail
    return msg


class DataController(QObject):
    opened = Signal(object)  # OpenModel, just added to the state
    openFailed = Signal(str, str)  # path, message
    busy = Signal(object, bool)  # message or None, cancellable
    progress = Signal(float, str)

    def __init__(self, state: ExplorerState, tasks: TaskRunner) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self._datasets: dict[tuple, Any] = {}
        self._datasets_lock = threading.Lock()
        self._pending_states: dict[str, Any] = {}  # resolved path -> session ModelState
        self._focus: dict[str, Any] | None = None  # while a group of files loads: which one to show
        # Asked before running a model's own code: (code path, checkpoint path, details) -> yes?
        self.confirm_trust: Callable[[str, str, Any], bool] = lambda code, ckpt, details: False
        self.on_loaded: list[Callable[[str], None]] = []  # e.g. remember in the recent files
        # Asked before loading data that a file names when it is large or lies outside the file's folder.
        self.confirm_data: Callable[[str, str], bool] = lambda title, question: False
        self.task = None  # the load + encode in flight (cancellable)
        self._allowed: set[tuple[str, str]] = set()  # (checkpoint, dataset) the user agreed to load
        state.currentChanged.connect(lambda entry: self.ensure_encoded(entry))

    # ------------------------------------------------------------ opening
    def open_many(self, paths: list[str], focus: str | None = None) -> None:
        paths = [str(p) for p in paths]
        self._focus = {"path": focus or paths[0], "pending": len(paths)} if paths else None
        for p in paths:
            self.open_model(p)

    def open_model(self, path: str) -> bool:
        """Load a checkpoint in the background. A file that is already open is shown, not opened again."""
        path = str(path)
        existing = self.state.find(path)
        if existing is not None:
            self._settle()
            saved = self._pending_states.pop(_key(path), None)
            if saved is not None and existing.data is not None:
                self._apply(existing, saved)
            if self._focus is None or _key(self._focus["path"]) == _key(path):
                self.state.set_current(existing)
            return True
        if not Path(path).exists():
            self._settle()
            self.openFailed.emit(path, f"{path}: file not found")
            return False
        self.state.notify(f"Loading {Path(path).name}…", 0)
        untrusted: dict[str, Any] = {}
        result = {"ok": True}

        def work(progress, cancel):
            from explorer.core import checkpoint

            try:
                model = checkpoint.load(path)
            except Exception as exc:
                from explorer.core.adapter import UntrustedCodeError

                if isinstance(exc, UntrustedCodeError):
                    untrusted["path"] = exc.path
                    untrusted["error"] = exc
                raise
            return model, file_identity(path)

        def failed(msg: str) -> None:
            result["ok"] = False
            self._settle()
            self.state.notify("", 1)
            if "path" in untrusted and self.confirm_trust(untrusted["path"], path, untrusted.get("error")):
                from explorer.core.adapter import trust_code

                trust_code(untrusted["path"])
                self.open_model(path)
                return
            self.openFailed.emit(path, strip_exception(msg))

        self.tasks.start(work, on_done=lambda r: self._loaded(path, *r), on_error=failed)
        return result["ok"]

    def _settle(self) -> None:
        if self._focus is not None:
            self._focus["pending"] -= 1
            if self._focus["pending"] <= 0:
                self._focus = None

    def _loaded(self, path: str, model, identity: str) -> None:
        meta = dict(getattr(model, "metadata", {}) or {})
        meta.setdefault("path", path)
        entry = OpenModel(path=path, model=model, meta=meta, identity=identity)
        focus = self._focus is None or _key(path) == _key(self._focus["path"])
        self._settle()
        entry.restore = self._pending_states.pop(_key(path), None)
        entry = self.state.add_model(entry, make_current=focus)
        for fn in self.on_loaded:
            fn(path)
        self.state.notify(f"Opened {entry.name}", 3000)
        self.opened.emit(entry)
        self.ensure_encoded(entry, force=True)

    # ------------------------------------------------------------ sessions
    def open_session(self, session) -> None:
        from explorer.core.explore import view_choice

        choice, colour = view_choice(session)
        self.state.request_projection(choice)
        self.state.set_colour_by(colour)
        present = [s for s in session.models if Path(s.path).exists()]
        missing = [s.path for s in session.models if not Path(s.path).exists()]
        if missing:
            self.openFailed.emit(missing[0], "These checkpoints are no longer there:\n" + "\n".join(missing))
        if not present:
            return
        shown = session.models[session.current] if 0 <= session.current < len(session.models) else present[0]
        for s in present:
            self._pending_states[_key(s.path)] = s
        self.open_many([s.path for s in present], focus=shown.path if shown in present else present[0].path)

    def _apply(self, entry: OpenModel, saved) -> None:
        for note in apply_model_state(self.state, entry, saved):
            self.state.notify(note, 10000)

    # ------------------------------------------------------------ data + latents
    def dataset_for(self, entry: OpenModel, progress=None, cancel=None):
        """The model's data set at its image shape (cached; safe to call from worker threads)."""
        from explorer.core.data import load_dataset

        name = entry.meta.get("dataset")
        if not name or not isinstance(name, str):
            raise ValueError("this checkpoint does not say which dataset it was trained on")
        c, h, w = entry.model.image_shape
        # A face-style pair was trained on `count` generated faces: draw the same ones, so that its held-out
        # split is held out here too (as `swap apply` does).
        pair = entry.meta.get("swap_pair") if isinstance(entry.meta.get("swap_pair"), dict) else {}
        count = pair.get("count") if isinstance(pair.get("count"), int) else None
        key = (name, c, h, w, count)
        with self._datasets_lock:
            cached = self._datasets.get(key)
        if cached is None:
            cached = load_dataset(name, image_size=h if h == w else None, channels=c, count=count,
                                  progress=progress, cancel=cancel)
            with self._datasets_lock:
                self._datasets[key] = cached
        return cached

    def ensure_encoded(self, entry: OpenModel | None, force: bool = False) -> None:
        """Start loading + encoding ``entry``'s data unless it has latents, is being encoded or failed."""
        if entry is None or entry.encoding:
            return
        if not force and (entry.data is not None and (entry.latents is not None
                                                      or not entry.model.capabilities.has_encoder)):
            return
        if not force and entry.status:
            return
        entry.encoding = True
        entry.status = ""
        self.state.dataChanged.emit(entry)
        if entry.run_id or (entry.path, str(entry.meta.get("dataset"))) in self._allowed:
            self._load_and_encode(entry)
            return

        # First ask what the data named by the file would cost (cheap, bounded, off the GUI thread): a file
        # someone sent may name "folder:/" or ten million faces.
        def assess(progress, cancel):
            from explorer.core.data.assess import assess_checkpoint_data

            return assess_checkpoint_data(entry.path, entry.meta, image_shape=entry.model.image_shape,
                                          cancel=cancel)

        def assessed(result) -> None:
            if entry not in self.state.models:
                entry.encoding = False
                return
            if result is not None and result.error:
                self.state.set_status(entry, result.error)
                return
            if result is not None and result.needs_confirmation and \
                    not self.confirm_data("Load this data set?", result.question):
                self.state.set_status(entry, f"its data set ({result.name}) was not loaded")
                return
            self._allowed.add((entry.path, str(entry.meta.get("dataset"))))
            self._load_and_encode(entry)

        def assess_failed(msg: str) -> None:
            self.state.set_status(entry, strip_exception(msg))

        self.tasks.start(assess, on_done=assessed, on_error=assess_failed)

    def _load_and_encode(self, entry: OpenModel) -> None:
        model = entry.model  # a training run may swap in newer weights meanwhile
        self.busy.emit("Encoding the dataset", True)

        def work(progress, cancel):
            from explorer.core.latent.encoding import encode_dataset

            data = self.dataset_for(entry, progress=lambda f, msg="": progress(0.5 * f, msg or "loading"),
                                    cancel=cancel)
            if not model.capabilities.has_encoder:
                return data, None
            latents = encode_dataset(model, data.images,
                                     progress=lambda done, total: progress(0.5 + 0.5 * done / max(total, 1),
                                                                           "encoding"),
                                     cancel=cancel)
            return data, latents

        def done(result) -> None:
            self.task = None
            self.busy.emit(None, False)
            entry.encoding = False
            if entry not in self.state.models:
                return
            if entry.model is not model:  # newer weights arrived meanwhile: encode those
                self.ensure_encoded(entry, force=True)
                return
            data, latents = result
            self.state.set_data(entry, data, latents)
            saved, entry.restore = entry.restore, None
            if saved is not None:
                self._apply(entry, saved)

        def failed(msg: str) -> None:
            self.task = None
            self.busy.emit(None, False)
            self.state.set_status(entry, strip_exception(msg))
            self.state.notify(f"{entry.name}: no map ({entry.status})", 10000)

        def cancelled() -> None:
            self.task = None
            self.busy.emit(None, False)
            self.state.set_status(entry, "loading its data set was cancelled")

        self.task = self.tasks.start(work, on_done=done, on_error=failed, on_progress=self.progress.emit,
                                     on_cancel=cancelled)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


def _key(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)


__all__ = ["DataController", "file_identity", "strip_exception"]
