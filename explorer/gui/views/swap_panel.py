"""The Compare tab's "Decoder swap" section: encode with one open model, decode with another.

The classic face-swap construction: two autoencoders trained with one shared encoder on two data sets (two
face styles) share one code space, so B's decoder draws A's faces in B's style. The strip shows images of
A's data set (held-out ones first), A's own reconstruction and the swap into B, computed in the background
(:func:`explorer.core.compare.swap_rows`). "Train face-style pair…" trains such a pair on the two procedural
face styles in the background (progress, cancel), saves both checkpoints next to the training panel's and
opens them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QVBoxLayout)

from ..theme import error_css, muted_css
from .image_panel import ImagePanel, grid

if TYPE_CHECKING:
    from ..controllers.explorer import ExplorerController
    from explorer.core.explore import OpenModel as ModelEntry

SWAP_COUNT = 8  # images in the strip
# The pair "Train face-style pair…" trains: the CLI's defaults (`latent-explorer swap train`), ~15 s on one CPU
# core; tests shrink them.
PAIR_DEFAULTS: dict[str, Any] = {"count": 4000, "size": 32, "latent_dim": 16, "hidden": (256,), "epochs": 10}


class SwapPanel(QGroupBox):
    def __init__(self, explorer: "ExplorerController") -> None:
        super().__init__("Decoder swap")
        self.ctx = explorer
        self.pair_options: dict[str, Any] = dict(PAIR_DEFAULTS)
        self.count = SWAP_COUNT
        self.rows: np.ndarray | None = None  # (3, N, H, W, C) uint8: images, A's reconstruction, swapped
        self.shared: bool | None = None
        self.indices: list[int] = []
        self._a_entries: list["ModelEntry"] = []
        self._b_entries: list["ModelEntry"] = []
        self._generation = 0
        self._train_task = None
        self._stop = threading.Event()  # set by Cancel: the training loop stops after its current step
        self.training = False
        self._pending_pair: tuple[str, str] | None = None  # paths of a trained pair, selected once both are open

        outer = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Encoder (A)"))
        self.combo_a = QComboBox()
        # Long file names must not widen the whole Compare tab past a laptop screen.
        self.combo_a.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo_a.setMinimumContentsLength(14)
        self.combo_a.setToolTip("Its encoder encodes images of its own data set")
        self.combo_a.activated.connect(lambda _i: self.compute())
        row.addWidget(self.combo_a, 1)
        row.addWidget(QLabel("Decoder (B)"))
        self.combo_b = QComboBox()
        # Long file names must not widen the whole Compare tab past a laptop screen.
        self.combo_b.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo_b.setMinimumContentsLength(14)
        self.combo_b.setToolTip("Its decoder draws the codes from A's encoder")
        self.combo_b.activated.connect(self._b_picked)
        self._b_by_user = False  # B picked by hand stays; a default B moves off A once another model opens
        row.addWidget(self.combo_b, 1)
        outer.addLayout(row)
        row = QHBoxLayout()
        self.swap_button = QPushButton("Swap")
        self.swap_button.setToolTip("Encode A's images with A's encoder and decode them with B's decoder")
        self.swap_button.clicked.connect(self.compute)
        row.addWidget(self.swap_button)
        self.train_button = QPushButton("Train face-style pair…")
        self.train_button.setToolTip(
            "Train two autoencoders with one shared encoder on two procedural face styles (A: glasses, beard, "
            "short black hair, light skin; B: other people with long blond hair and dark skin), in the "
            "background (~15 s on a CPU), then open both")
        self.train_button.clicked.connect(self.train_pair)
        row.addWidget(self.train_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMinimumWidth(220)
        self.progress.setVisible(False)
        row.addWidget(self.progress)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_training)
        self.cancel_button.setVisible(False)
        row.addWidget(self.cancel_button)
        self.export_button = QPushButton("Export swap…")
        self.export_button.setToolTip("The strip as a PNG grid, as `latent-explorer swap apply` writes it")
        self.export_button.clicked.connect(self._ask_export)
        row.addWidget(self.export_button)
        row.addStretch(1)
        outer.addLayout(row)
        self.note = QLabel("Pick an encoder model A and a decoder model B, or train a face-style pair. The swap "
                           "means most for two autoencoders trained with one shared encoder.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet(muted_css())
        outer.addWidget(self.note)
        self.error = QLabel("")
        self.error.setStyleSheet(error_css())
        outer.addWidget(self.error)
        self.strip = ImagePanel("", min_size=240)
        self.strip.setVisible(False)  # an empty black box until there is a swap to show
        outer.addWidget(self.strip, 1)

    def _b_picked(self, _index: int) -> None:
        self._b_by_user = True
        self.compute()

    # ------------------------------------------------------------ the two models
    def entry_a(self) -> "ModelEntry | None":
        i = self.combo_a.currentIndex()
        return self._a_entries[i] if 0 <= i < len(self._a_entries) else None

    def entry_b(self) -> "ModelEntry | None":
        i = self.combo_b.currentIndex()
        return self._b_entries[i] if 0 <= i < len(self._b_entries) else None

    def select(self, entry_a: "ModelEntry", entry_b: "ModelEntry", compute: bool = True) -> None:
        """Pick A and B (open models) and, by default, show their swap."""
        self.models_changed()
        self.combo_a.setCurrentIndex(self._a_entries.index(entry_a))
        self.combo_b.setCurrentIndex(self._b_entries.index(entry_b))
        if compute:
            self.compute()

    def models_changed(self) -> None:
        """Refill the combo boxes from the open models, keeping the choices that are still open."""
        entries = list(self.ctx.state.models)
        prev_a, prev_b = self.entry_a(), self.entry_b()
        self._a_entries = [e for e in entries if e.model.capabilities.has_encoder]
        self._b_entries = entries
        for combo, items in ((self.combo_a, self._a_entries), (self.combo_b, self._b_entries)):
            combo.blockSignals(True)
            combo.clear()
            for e in items:
                combo.addItem(f"{e.name} · {e.model.family.upper()} {e.model.latent_dim}-d")
                combo.setItemData(combo.count() - 1, e.path)
                combo.setItemData(combo.count() - 1, f"{e.path}\n{e.summary()}", Qt.ItemDataRole.ToolTipRole)
            combo.blockSignals(False)
        a = prev_a if prev_a in self._a_entries else self._default_a()
        keep_b = prev_b in self._b_entries and (prev_b is not a or self._b_by_user)
        b = prev_b if keep_b else self._default_b(a)
        if a is not None:
            self.combo_a.setCurrentIndex(self._a_entries.index(a))
        if b is not None:
            self.combo_b.setCurrentIndex(self._b_entries.index(b))
        pair = self._open_pair()
        if pair is not None and self._pending_pair is None and (prev_a, prev_b) != pair:
            # A saved pair opened from disk: show it as a pair straight away, as after "Train face-style pair…".
            if prev_a is None or prev_b is None or prev_a is prev_b or prev_a not in pair:
                self.combo_a.setCurrentIndex(self._a_entries.index(pair[0]))
                self.combo_b.setCurrentIndex(self._b_entries.index(pair[1]))
                self.compute()
        if self._pending_pair is not None:
            by_path = {str(Path(e.path)): e for e in entries}
            pa, pb = (by_path.get(str(Path(p))) for p in self._pending_pair)
            if pa is not None and pb is not None:
                self._pending_pair = None
                self.combo_a.setCurrentIndex(self._a_entries.index(pa))
                self.combo_b.setCurrentIndex(self._b_entries.index(pb))
                self.compute()

    def _open_pair(self) -> "tuple[ModelEntry, ModelEntry] | None":
        """The last opened (A, B) of a saved face-style pair whose two files are both open, if any."""
        by_name = {Path(e.path).name: e for e in self._b_entries if e.path}
        for e in reversed(self._a_entries):
            info = (getattr(e.model, "metadata", None) or {}).get("swap_pair") or {}
            partner = by_name.get(str(info.get("partner", "")))
            if info.get("role") == "a" and partner is not None and partner is not e:
                return e, partner
        return None

    def _default_a(self) -> "ModelEntry | None":
        current = self.ctx.state.current
        if current in self._a_entries:
            return current
        return self._a_entries[0] if self._a_entries else None

    def _default_b(self, a: "ModelEntry | None") -> "ModelEntry | None":
        others = [e for e in self._b_entries if e is not a]
        same_size = [e for e in others if a is not None and e.model.latent_dim == a.model.latent_dim]
        return (same_size or others or self._b_entries or [None])[0]

    # ------------------------------------------------------------ the swap
    def compute(self) -> None:
        """Swap ``count`` images of A's data set through B's decoder, in the background."""
        from explorer.core.swap import NO_SHARED_ENCODER, shares_encoder, swap_examples, swap_rows

        a, b = self.entry_a(), self.entry_b()
        self.error.setText("")
        if a is None or b is None:
            self.error.setText("Open a model with an encoder (A) and a model to decode with (B), e.g. a "
                               "face-style pair.")
            return
        self._generation += 1
        gen = self._generation
        model_a, model_b, data, count = a.model, b.model, a.data, self.count
        dataset_for = self.ctx.dataset_for

        def work(progress, cancel):
            d = data if data is not None else dataset_for(a)  # A's data set may still be loading
            rows = swap_examples(d, count)
            return swap_rows(model_a, model_b, d.images[rows]), shares_encoder(model_a, model_b), rows.tolist()

        def done(result) -> None:
            if gen != self._generation:  # the user picked other models meanwhile
                return
            self.rows, self.shared, self.indices = result
            n = self.rows.shape[1]
            strip = grid(self.rows.reshape(3 * n, *self.rows.shape[2:]), n)
            self.strip.setVisible(True)
            self.strip.show_array(strip, f"Top: {n} images of {a.name}'s data set (held-out first) · middle: A's "
                                         f"own reconstruction · bottom: A's codes drawn by {b.name}'s decoder")
            if a is b:
                self.note.setText("A and B are the same model: the bottom row is its own reconstruction.")
            elif self.shared:
                self.note.setText("A and B share one encoder, so they share one code space: B's decoder draws "
                                  "A's faces in B's style (pose and expression kept).")
            else:
                self.note.setText(f"Note: {NO_SHARED_ENCODER[0].upper()}{NO_SHARED_ENCODER[1:]}. Train a pair "
                                  "with 'Train face-style pair…'.")

        def failed(msg: str) -> None:
            if gen == self._generation:
                self.rows = None
                self.strip.clear()
                self.strip.setVisible(False)
                self.error.setText(msg.partition(": ")[2] or msg)

        self.ctx.tasks.start(work, on_done=done, on_error=failed)

    # ------------------------------------------------------------ training a pair
    def _pair_paths(self) -> tuple[Path, Path]:
        folder = Path(self.ctx.checkpoint_dir()) / "face-styles"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for k in range(1, 1000):
            tag = stamp if k == 1 else f"{stamp}-{k}"
            a, b = folder / f"faces-style-a-{tag}.safetensors", folder / f"faces-style-b-{tag}.safetensors"
            if not a.exists() and not b.exists():
                return a, b
        raise RuntimeError(f"no free file name in {folder}")

    def train_pair(self) -> None:
        """Train a shared-encoder pair on the two face styles in the background, save both, open both."""
        from explorer.core.swap import save_swap_pair, train_face_style_pair
        from explorer.core.latent import Cancelled

        if self.training:
            return
        path_a, path_b = self._pair_paths()
        options = dict(self.pair_options)
        self.error.setText("")
        self.train_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.setFormat("Training the pair… %p%")
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.training = True
        self._stop = stop = threading.Event()

        def work(progress, cancel):
            def report(step: int, total: int, metrics: dict[str, float]) -> None:
                losses = ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in metrics.items())
                progress(step / max(total, 1), f"step {step}/{total}|{losses}")  # bar text | its tooltip

            progress(0.0, "drawing the faces")
            model_a, model_b = train_face_style_pair(stop_event=stop, progress=report, **options)
            if stop.is_set() or cancel.is_set():
                raise Cancelled("training cancelled")
            save_swap_pair(model_a, model_b, path_a, path_b)
            return str(path_a), str(path_b)

        def finish() -> None:
            self.training = False
            self._train_task = None
            self.train_button.setEnabled(True)
            self.progress.setVisible(False)
            self.cancel_button.setVisible(False)

        def done(paths) -> None:
            finish()
            self.note.setText(f"Trained and saved {Path(paths[0]).name} and {Path(paths[1]).name} in "
                              f"{Path(paths[0]).parent}; opening both.")
            self._pending_pair = paths
            for p in paths:
                self.ctx.open_model(p)
            self.models_changed()

        def failed(msg: str) -> None:
            finish()
            self.error.setText(f"Training the pair failed: {msg.partition(': ')[2] or msg}")

        def cancelled() -> None:
            finish()
            self.note.setText("Training of the face-style pair cancelled; nothing was saved.")

        def progressed(fraction: float, message: str) -> None:
            self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
            text, _, detail = message.partition("|")
            self.progress.setFormat(f"{text} (%p%)")
            self.progress.setToolTip(detail)

        task = self.ctx.tasks.start(work, on_done=done, on_error=failed, on_cancel=cancelled, on_progress=progressed)
        if self.training:  # still running (a synchronous runner has finished it already)
            self._train_task = task

    def cancel_training(self) -> None:
        self._stop.set()  # the training loop stops after its current step, then nothing is saved
        if self._train_task is not None:
            self._train_task.cancel()

    # ------------------------------------------------------------ export
    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the decoder swap", "decoder-swap.png", "PNG (*.png)")
        if path:
            self.export(path)

    def export(self, path: str) -> None:
        from explorer.core.swap import write_swap_grid

        if self.rows is None:
            self.error.setText("Nothing to export yet: pick A and B and press Swap.")
            return
        rows = self.rows
        self.ctx.run_io(lambda: write_swap_grid(path, rows), f"Exported the decoder swap to {path}", self.error)


__all__ = ["PAIR_DEFAULTS", "SWAP_COUNT", "SwapPanel"]
