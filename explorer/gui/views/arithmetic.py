"""Latent arithmetic and paths: attribute vectors, lasso groups, analogies, expressions, interpolation,
traversals and exporting them. Lives in a dock under the map and drives the main window's cursor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout,
                               QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton,
                               QSizePolicy, QSlider, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from explorer.core.latent.arithmetic import (AttributeProbes, NamedVectors, VectorError, analogy, apply_vector,
                                             dataset_vectors, group_vector, identifier)
from explorer.core.latent.expression import ExpressionError, evaluate
from explorer.core.latent.interpolation import interpolate, keyframe_positions, traverse_dim, traverse_vector

from ..theme import error_css, muted_css
from .image_panel import ImagePanel, grid, to_uint8_hwc

if TYPE_CHECKING:
    from ..controllers.explorer import ExplorerController
    from explorer.core.explore import OpenModel as ModelEntry

STRENGTH_STEPS = 60  # slider ticks per unit of strength, over -3..+3
EXPORT_FILTER = "Animated GIF (*.gif);;PNG grid (*.png);;MP4 video (*.mp4)"


def _error_label() -> QLabel:
    label = QLabel("")
    label.setWordWrap(True)
    label.setStyleSheet(error_css())
    return label


class ArithmeticPanel(QTabWidget):
    """Tabs: Vectors, Analogy, Expression, Interpolate, Traverse."""

    framesReady = Signal(str, object)  # which ("path", "traverse", "analogy"), uint8 frames

    def __init__(self, explorer: "ExplorerController") -> None:
        super().__init__()
        self.ctx = explorer
        self.base: np.ndarray | None = None  # the latent a vector is applied to
        self.path_frames: np.ndarray | None = None  # (T, H, W, C) decoded interpolation frames
        self.path_latents: np.ndarray | None = None
        self.traverse_frames: np.ndarray | None = None  # (rows, S, H, W, C)
        self._play_index = 0
        self._play_timer = QTimer(self)
        self._play_timer.setInterval(80)
        self._play_timer.timeout.connect(self._play_step)
        self.addTab(self._build_vectors(), "Vectors")
        self.addTab(self._build_analogy(), "Analogy")
        self.addTab(self._build_expression(), "Expression")
        self.addTab(self._build_interpolate(), "Interpolate")
        self.addTab(self._build_traverse(), "Traverse")
        self.currentChanged.connect(self._fit_current)
        self._fit_current(self.currentIndex())
        explorer.overlays.lassoFinished.connect(self._lasso_done)
        explorer.state.groupsChanged.connect(self._groups_changed)
        explorer.state.vectorsChanged.connect(lambda entry: entry is self.entry and self._refresh_vector_list())
        explorer.state.keyframesChanged.connect(lambda entry: entry is self.entry and self._refresh_keyframes())
        explorer.state.dataChanged.connect(self._data_changed)
        self.entry_changed(None)

    def _fit_current(self, index: int) -> None:
        # A tab widget is as wide as its widest page; at 1280x760 the dock then scrolled sideways even on the
        # narrow Vectors page. Only the shown page's size counts.
        ignored, preferred = QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred
        for i in range(self.count()):
            policy = preferred if i == index else ignored
            self.widget(i).setSizePolicy(policy, policy)
        self.updateGeometry()

    # ================================================================ per-model state
    @property
    def entry(self) -> "ModelEntry | None":
        return self.ctx.state.current

    def vectors(self) -> NamedVectors | None:
        entry = self.entry
        if entry is None:
            return None
        if entry.vectors is None:
            entry.vectors = NamedVectors(entry.model.latent_dim, source={"model": entry.name,
                                                                           "dataset": entry.meta.get("dataset")})
        return entry.vectors

    def entry_changed(self, entry: "ModelEntry | None") -> None:
        """The window shows another model (or none): refill everything from its state."""
        self.base = None
        self._stop_playing()
        self.path_frames = self.path_latents = None
        self.traverse_frames = None
        has_latents = entry is not None and entry.latents is not None
        for w in (self.compute_button, self.lasso_a, self.lasso_b):
            w.setEnabled(has_latents)
        self._refresh_vector_list()
        self._refresh_keyframes()
        self.dim_spin.setRange(0, max(0, (entry.model.latent_dim - 1) if entry else 0))
        if entry is not None:
            from explorer.core.models.dcign import unit_names

            names = unit_names(entry.model)
            self.dim_spin.setToolTip("Latent dimension to vary" + (
                "; named units: " + ", ".join(f"z{u} {n}" for u, n in sorted(names.items())) if names else ""))
        self.ctx.overlays.set_path(None)
        self.strip_panel.clear()
        self.traverse_panel.clear()
        for panel in self.analogy_panels:
            panel.clear()
        self._analogy = {"A": None, "B": None, "C": None}
        self._update_group_label()

    def cursor_source(self) -> tuple[np.ndarray, str, np.ndarray | None] | None:
        """What the cursor is on: (latent, label, original image or None). Selecting a datum puts the
        cursor on its latent, so "the cursor" covers both a clicked point and a dragged position."""
        entry = self.entry
        if entry is None or entry.cursor_latent is None:
            return None
        z = entry.cursor_latent
        idx = self.ctx.selected_index()
        if idx >= 0 and entry.latents is not None and np.array_equal(entry.latents[idx], z):
            return z.copy(), f"p{idx}", to_uint8_hwc(entry.data.images[idx])
        return z.copy(), "cursor", None

    def cursor_edited(self) -> None:
        """The user moved the cursor by hand: later vector edits apply to the new spot."""
        self.base = None
        self.strength_slider.blockSignals(True)
        self.strength_slider.setValue(0)
        self.strength_slider.blockSignals(False)
        self.strength_label.setText("+0.0")

    # ================================================================ Vectors tab
    def _build_vectors(self) -> QWidget:
        page = QWidget()
        lay = QGridLayout(page)
        self.compute_button = QPushButton("Compute attribute vectors")
        self.compute_button.setToolTip("One vector per known attribute (or label) of the dataset: the mean latent "
                                       "with the attribute minus the mean without, other attributes held fixed")
        self.compute_button.clicked.connect(self.compute_vectors)
        lay.addWidget(self.compute_button, 0, 0)
        self.vector_list = QListWidget()
        self.vector_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.vector_list.itemSelectionChanged.connect(self._vector_selection_changed)
        self.vector_list.setMinimumHeight(60)
        lay.addWidget(self.vector_list, 1, 0, 4, 1)

        lay.addWidget(QLabel("Strength"), 0, 1)
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(-3 * STRENGTH_STEPS, 3 * STRENGTH_STEPS)
        self.strength_slider.setToolTip("Add the selected vector to the cursor's latent, −3 … +3 times")
        self.strength_slider.valueChanged.connect(self._strength_changed)
        lay.addWidget(self.strength_slider, 0, 2)
        self.strength_label = QLabel("+0.0")
        lay.addWidget(self.strength_label, 0, 3)
        self.entangle_label = QLabel("Select a vector and move the strength slider.")
        self.entangle_label.setWordWrap(True)
        self.entangle_label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.entangle_label, 1, 1, 1, 3)

        groups = QHBoxLayout()
        self.lasso_a = QPushButton("Lasso group A")
        self.lasso_a.setToolTip("Draw around points on the map: 'these'")
        self.lasso_a.clicked.connect(lambda: self._start_lasso("A"))
        self.lasso_b = QPushButton("Lasso group B")
        self.lasso_b.setToolTip("Draw around points on the map: 'those'")
        self.lasso_b.clicked.connect(lambda: self._start_lasso("B"))
        groups.addWidget(self.lasso_a)
        groups.addWidget(self.lasso_b)
        lay.addLayout(groups, 2, 1, 1, 3)
        save_row = QHBoxLayout()
        self.group_label = QLabel("")
        save_row.addWidget(self.group_label, 1)
        self.group_name = QLineEdit()
        self.group_name.setPlaceholderText("name, e.g. thick_strokes")
        save_row.addWidget(self.group_name)
        self.group_save = QPushButton("Save B − A")
        self.group_save.setToolTip("Store mean(B) − mean(A) as a named vector")
        self.group_save.clicked.connect(self.save_group_vector)
        save_row.addWidget(self.group_save)
        lay.addLayout(save_row, 3, 1, 1, 3)
        files = QHBoxLayout()
        load = QPushButton("Load vectors…")
        load.clicked.connect(self._ask_load_vectors)
        save = QPushButton("Save vectors…")
        save.clicked.connect(self._ask_save_vectors)
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove_vectors)
        for b in (load, save, remove):
            files.addWidget(b)
        lay.addLayout(files, 4, 1, 1, 3)
        self.vectors_error = _error_label()
        lay.addWidget(self.vectors_error, 5, 0, 1, 4)
        lay.setColumnStretch(0, 1)
        lay.setColumnStretch(2, 2)
        return page

    def compute_vectors(self, entry: "ModelEntry | None" = None) -> None:
        """Attribute (or label) vectors and attribute probes for ``entry`` (default: the shown model)."""
        entry = entry or self.entry
        if entry is None or entry.latents is None or entry.data is None:
            return
        if entry is self.entry:
            self.compute_button.setEnabled(False)
        latents, data = entry.latents, entry.data

        def work(progress, cancel):
            vecs = dataset_vectors(latents, data)
            probes = None
            if data.attributes is not None and len(data.attribute_names):
                progress(0.6, "fitting attribute probes")
                probes = AttributeProbes.fit(latents, data.attributes, data.attribute_names)
            return vecs, probes

        def done(result) -> None:
            vecs, probes = result
            self.compute_button.setEnabled(True)
            if entry.vectors is None:
                entry.vectors = NamedVectors(entry.model.latent_dim, source={"model": entry.name,
                                                                               "dataset": entry.meta.get("dataset")})
            entry.vectors.update_from(vecs)
            entry.probes = probes
            if entry is not self.entry:
                return
            self._refresh_vector_list()
            self.vectors_error.setText("")
            self.ctx.notify(f"{len(vecs)} attribute vectors", 4000)

        def failed(msg: str) -> None:
            self.compute_button.setEnabled(True)
            self.vectors_error.setText(msg.partition(": ")[2] or msg)

        self.ctx.tasks.start(work, on_done=done, on_error=failed)

    def _refresh_vector_list(self) -> None:
        self.vector_list.blockSignals(True)
        self.vector_list.clear()
        entry = self.entry
        vecs = entry.vectors if entry is not None else None
        for name in (vecs or {}):
            info = vecs.info.get(name, {})
            sep = info.get("separation")
            text = name if sep is None else f"{name}   (d′ {sep:.1f})"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(info.get("unit") or info.get("source") or name)
            self.vector_list.addItem(item)
        self.vector_list.blockSignals(False)
        self.expression_names.setText(self._names_hint())
        self.traverse_vector_box.blockSignals(True)
        self.traverse_vector_box.clear()
        self.traverse_vector_box.addItem("a latent dimension", None)
        for name in (vecs or {}):
            self.traverse_vector_box.addItem(name, name)
        self.traverse_vector_box.blockSignals(False)
        self._draw_arrows()

    def selected_vector_names(self) -> list[str]:
        return [item.data(Qt.ItemDataRole.UserRole) for item in self.vector_list.selectedItems()]

    def _vector_selection_changed(self) -> None:
        self._draw_arrows()
        if self.strength_slider.value() != 0:
            self._strength_changed(self.strength_slider.value())

    def _draw_arrows(self) -> None:
        """Each selected vector as an arrow from the data's mean to the mean plus the vector."""
        entry = self.entry
        names = self.selected_vector_names()
        if entry is None or entry.latents is None or not names or entry.vectors is None:
            self.ctx.overlays.set_arrows([])
            return
        centre = entry.latents.mean(0)
        arrows = []
        for name in names:
            pts = self.ctx.locate_many(np.stack([centre, centre + entry.vectors[name]]))
            if pts is not None:
                arrows.append((pts[0, 0], pts[0, 1], pts[1, 0], pts[1, 1], name, True))
        self.ctx.overlays.set_arrows(arrows)

    def _strength_changed(self, raw: int) -> None:
        strength = raw / STRENGTH_STEPS
        self.strength_label.setText(f"{strength:+.1f}")
        entry = self.entry
        names = self.selected_vector_names()
        if entry is None or not names or entry.vectors is None:
            return
        if self.base is None:
            self.base = (entry.cursor_latent if entry.cursor_latent is not None
                         else np.zeros(entry.model.latent_dim, np.float32)).copy()
        v = np.sum([entry.vectors[n] for n in names], axis=0)
        z = apply_vector(self.base, v, strength)
        self.ctx.set_cursor_latent(z, user=False)
        self._report_entanglement(entry, self.base, z, names[0] if len(names) == 1 else None)

    def _report_entanglement(self, entry, before: np.ndarray, after: np.ndarray, target: str | None) -> None:
        probes = getattr(entry, "probes", None)
        if probes is None:
            self.entangle_label.setText("No attribute probes for this dataset (it has labels only).")
            return
        target = target if target in probes.names else None
        report = probes.entanglement(before[None], after[None], target)
        parts = []
        if report["target"] is not None:
            t = report["target"]
            parts.append(f"<b>{t['name']}</b> {t['change_sd']:+.2f} sd")
        others = [f"{r['name']} {r['change_sd']:+.2f} sd" for r in report["entangled"][:4]]
        if others:
            parts.append("<span style='color:#b35806'>also moved: " + ", ".join(others) + "</span>")
        elif parts:
            parts.append("no other attribute moved by more than 0.25 sd")
        self.entangle_label.setText(" · ".join(parts) if parts else "")

    def _start_lasso(self, group: str) -> None:
        self._lasso_group = group
        self.ctx.overlays.start_lasso()
        self.ctx.notify(f"Draw around the points of group {group} on the map (right-click cancels)", 0)

    def _lasso_done(self, indices: np.ndarray) -> None:
        group = getattr(self, "_lasso_group", None)
        if group is None:
            return
        self._lasso_group = None
        self.set_group(group, indices)
        # The instruction stays until the lasso is done: then it is replaced, not left behind.
        self.ctx.notify(f"Group {group}: {len(indices)} points", 4000)

    @property
    def _groups(self) -> dict[str, np.ndarray | None]:
        entry = self.entry
        groups = entry.groups if entry is not None else {}
        return {"A": groups.get("A"), "B": groups.get("B")}

    def set_group(self, group: str, indices: np.ndarray | None) -> None:
        if self.entry is not None:
            self.ctx.state.set_groups(self.entry, group, indices)

    def _groups_changed(self, entry) -> None:
        if entry is self.entry:
            self._update_group_label()

    def _data_changed(self, entry) -> None:
        """The model's data arrived: data sets with attributes (faces, CelebA) get their vectors at once, so
        "smiling" is one click away."""
        if entry is not self.entry:
            return
        self.entry_changed(entry)
        if entry.latents is not None and entry.data is not None and entry.data.attributes is not None \
                and not entry.vectors:
            self.compute_vectors(entry)

    def map_changed(self) -> None:
        """The map was redrawn (another projection): arrows and the path follow it."""
        self._draw_arrows()
        if self.path_latents is not None:
            pts = self.ctx.locate_many(self.path_latents)
            self.ctx.overlays.set_path(pts)

    def _update_group_label(self) -> None:
        a, b = self._groups.get("A"), self._groups.get("B")
        na, nb = (0 if a is None else len(a)), (0 if b is None else len(b))
        self.group_label.setText(f"A: {na} points · B: {nb} points")
        self.group_save.setEnabled(na > 0 and nb > 0)

    def save_group_vector(self) -> str | None:
        entry = self.entry
        a, b = self._groups.get("A"), self._groups.get("B")
        if entry is None or entry.latents is None or a is None or b is None:
            return None
        name = self.group_name.text().strip() or f"group{len(self.vectors()) + 1}"
        try:
            name = identifier(name, prefix="g_")
            vec = group_vector(entry.latents, b, a, name=name)  # "these" (B) minus "those" (A)
            self.vectors().add(vec, name)
        except (VectorError, ValueError) as exc:
            self.vectors_error.setText(str(exc))
            return None
        self.vectors_error.setText("")
        self._refresh_vector_list()
        self._select_vector(name)
        return name

    def _select_vector(self, name: str) -> None:
        for i in range(self.vector_list.count()):
            item = self.vector_list.item(i)
            item.setSelected(item.data(Qt.ItemDataRole.UserRole) == name)

    def _ask_save_vectors(self) -> None:
        vecs = self.vectors()
        if not vecs:
            self.vectors_error.setText("There are no vectors to save yet.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save vectors", "vectors.safetensors",
                                              "Vectors (*.safetensors)")
        if path:
            self.ctx.run_io(lambda: vecs.save(path), f"Saved {Path(path).name}", self.vectors_error)

    def _ask_load_vectors(self) -> None:
        entry = self.entry
        if entry is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load vectors", "", "Vectors (*.safetensors)")
        if not path:
            return

        def loaded(vecs) -> None:
            if entry is self.entry:
                for name in vecs:
                    self.vectors()[name] = vecs[name]
                    self.vectors().info[name] = vecs.info.get(name, {})
                self._refresh_vector_list()

        self.ctx.run_io(lambda: NamedVectors.load(path, entry.model.latent_dim), f"Loaded {Path(path).name}",
                        self.vectors_error, on_done=loaded)

    def _remove_vectors(self) -> None:
        vecs = self.vectors()
        for name in self.selected_vector_names():
            vecs.pop(name, None)
        self._refresh_vector_list()

    # ================================================================ Analogy tab
    def _build_analogy(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        row = QHBoxLayout()
        self.analogy_panels: list[ImagePanel] = []
        for slot, sep in (("A", ":"), ("B", "::"), ("C", ":"), ("D", "")):
            col = QVBoxLayout()
            panel = ImagePanel(slot if slot != "D" else "D = C + (B − A)", min_size=72)
            col.addWidget(panel, 1)
            if slot != "D":
                btn = QPushButton(f"Set {slot}")
                btn.setToolTip(f"Use what the cursor is on (a selected datum, or any spot on the map) as {slot}")
                btn.clicked.connect(lambda _=False, s=slot: self.set_analogy_slot(s))
                col.addWidget(btn)
            row.addLayout(col, 1)
            self.analogy_panels.append(panel)
            if sep:
                mark = QLabel(sep)
                mark.setStyleSheet("font-size: 20pt; " + muted_css())
                row.addWidget(mark)
        lay.addLayout(row, 1)
        bottom = QHBoxLayout()
        self.analogy_go = QPushButton("Put the cursor on D")
        self.analogy_go.clicked.connect(self._analogy_to_cursor)
        bottom.addWidget(self.analogy_go)
        bottom.addStretch(1)
        lay.addLayout(bottom)
        self.analogy_error = _error_label()
        lay.addWidget(self.analogy_error)
        return page

    def set_analogy_slot(self, slot: str, z: np.ndarray | None = None, image: np.ndarray | None = None,
                         caption: str = "") -> None:
        entry = self.entry
        if entry is None:
            return
        if z is None:
            source = self.cursor_source()
            if source is None:
                return
            z, caption, image = source
        z = np.asarray(z, np.float32).copy()
        self._analogy[slot] = z
        panel = self.analogy_panels["ABC".index(slot)]
        panel.show_array(image if image is not None else entry.decode_uint8(z), caption)
        self._update_analogy()

    def _update_analogy(self) -> None:
        a, b, c = (self._analogy.get(k) for k in "ABC")
        entry = self.entry
        if entry is None or a is None or b is None or c is None:
            self.analogy_panels[3].clear("set A, B and C")
            return
        try:
            d = analogy(a, b, c)
        except (VectorError, ValueError) as exc:
            self.analogy_error.setText(str(exc))
            return
        self.analogy_error.setText("")
        self._analogy["D"] = d
        self.analogy_panels[3].show_array(entry.decode_uint8(d), "C + (B − A)")

    def _analogy_to_cursor(self) -> None:
        d = self._analogy.get("D")
        if d is not None:
            self.ctx.set_cursor_latent(d)

    # ================================================================ Expression tab
    def _build_expression(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        row = QHBoxLayout()
        self.expression_edit = QLineEdit()
        self.expression_edit.setPlaceholderText("e.g.  p123 + 1.5*smiling - glasses     (pN = data point N)")
        self.expression_edit.returnPressed.connect(self.evaluate_expression)
        row.addWidget(self.expression_edit, 1)
        go = QPushButton("Decode")
        go.clicked.connect(self.evaluate_expression)
        row.addWidget(go)
        lay.addLayout(row)
        self.expression_names = QLabel("")
        self.expression_names.setWordWrap(True)
        self.expression_names.setStyleSheet(muted_css())
        lay.addWidget(self.expression_names)
        self.expression_error = _error_label()
        lay.addWidget(self.expression_error)
        lay.addStretch(1)
        return page

    def _names_hint(self) -> str:
        entry = self.entry
        names = list(entry.vectors) if entry is not None and entry.vectors is not None else []
        n = len(entry.latents) if entry is not None and entry.latents is not None else 0
        hint = "Names: " + (", ".join(names) if names else "none yet (compute attribute vectors first)")
        if n:
            hint += f". Points p0 … p{n - 1}; also 'cursor'."
        return hint + " Operators: + − * / and parentheses."

    def evaluate_expression(self) -> np.ndarray | None:
        entry = self.entry
        if entry is None:
            return None
        names = dict(entry.vectors or {})
        if entry.cursor_latent is not None:
            names.setdefault("cursor", entry.cursor_latent)
        try:
            z = evaluate(self.expression_edit.text(), names, entry.latents, latent_dim=entry.model.latent_dim)
        except (ExpressionError, VectorError, ValueError) as exc:
            self.expression_error.setText(str(exc))
            return None
        self.expression_error.setText("")
        self.ctx.set_cursor_latent(z)
        return z

    # ================================================================ Interpolate tab
    def _build_interpolate(self) -> QWidget:
        page = QWidget()
        lay = QGridLayout(page)
        self.keyframe_list = QListWidget()
        self.keyframe_list.setMaximumWidth(220)
        self.keyframe_list.setMinimumHeight(60)
        lay.addWidget(self.keyframe_list, 0, 0, 4, 1)
        buttons = QHBoxLayout()
        add = QPushButton("Add keyframe")
        add.setToolTip("Add what the cursor is on: a selected datum, or any spot on the map")
        add.clicked.connect(lambda: self.add_keyframe())
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear_keyframes)
        buttons.addWidget(add)
        buttons.addWidget(clear)
        lay.addLayout(buttons, 4, 0)
        opts = QHBoxLayout()
        run = QHBoxLayout()  # a second row, so the page fits a narrow dock
        self.method_box = QComboBox()
        self.method_box.addItem("slerp (stays on the prior's shell)", "slerp")
        self.method_box.addItem("lerp (straight line)", "lerp")
        # Narrow when the dock is: the full text shows in the open list and the tooltip.
        self.method_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.method_box.setMinimumContentsLength(8)
        self.method_box.setToolTip("slerp follows the great circle, so frames stay at the norm where the prior puts "
                                   "its mass; lerp goes straight through the lower-norm middle")
        opts.addWidget(self.method_box)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(2, 200)
        self.steps_spin.setValue(12)
        self.steps_spin.setPrefix("steps ")
        opts.addWidget(self.steps_spin)
        self.interp_go = QPushButton("Interpolate")
        self.interp_go.clicked.connect(self.run_interpolation)
        run.addWidget(self.interp_go)
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.setShortcut("Ctrl+P")
        self.play_button.setToolTip("Walk the cursor along the path, back and forth (Ctrl+P)")
        self.play_button.toggled.connect(self._toggle_play)
        run.addWidget(self.play_button)
        export = QPushButton("Export…")
        export.clicked.connect(lambda: self._ask_export("path"))
        run.addWidget(export)
        run.addStretch(1)
        opts.addStretch(1)
        rows = QVBoxLayout()
        rows.addLayout(opts)
        rows.addLayout(run)
        lay.addLayout(rows, 0, 1)
        self.strip_panel = ImagePanel("", min_size=64)
        lay.addWidget(self.strip_panel, 1, 1, 4, 1)
        self.interp_error = _error_label()
        lay.addWidget(self.interp_error, 5, 0, 1, 2)
        lay.setColumnStretch(1, 1)
        return page

    def add_keyframe(self, z: np.ndarray | None = None, label: str | None = None) -> None:
        entry = self.entry
        if entry is None:
            return
        if z is None:
            source = self.cursor_source()
            if source is None:
                return
            z, label, _ = source
        entry.keyframes.append((label or "latent", np.asarray(z, np.float32).copy()))
        self._refresh_keyframes()

    def clear_keyframes(self) -> None:
        if self.entry is not None:
            self.entry.keyframes.clear()
        self.path_frames = self.path_latents = None
        self.ctx.overlays.set_path(None)
        self.strip_panel.clear()
        self._refresh_keyframes()

    def _refresh_keyframes(self) -> None:
        self.keyframe_list.clear()
        entry = self.entry
        for k, (label, _) in enumerate(entry.keyframes if entry else []):
            self.keyframe_list.addItem(f"K{k + 1}: {label}")

    def run_interpolation(self) -> None:
        entry = self.entry
        if entry is None:
            return
        keys = [z for _, z in entry.keyframes]
        if len(keys) < 2:
            self.interp_error.setText("Add at least two keyframes (select a point, then 'Add keyframe').")
            return
        steps = max(self.steps_spin.value(), len(keys))
        try:
            latents = interpolate(keys, steps, self.method_box.currentData())
        except ValueError as exc:
            self.interp_error.setText(str(exc))
            return
        self.interp_error.setText("")
        self.path_latents = latents
        pts = self.ctx.locate_many(latents)
        if pts is not None:
            self.ctx.overlays.set_path(pts, pts[keyframe_positions(len(keys), steps)])

        def done(frames) -> None:
            if entry is not self.entry:
                return
            self.path_frames = frames
            self.strip_panel.show_array(grid(frames, min(len(frames), 12)),
                                        f"{len(frames)} frames, {self.method_box.currentData()}")
            self.framesReady.emit("path", frames)

        self.ctx.decode_many(entry, latents, done, self.interp_error)

    def _toggle_play(self, on: bool) -> None:
        if on and self.path_latents is not None:
            self._play_index = 0
            self._play_timer.start()
        else:
            self._stop_playing()

    def _stop_playing(self) -> None:
        self._play_timer.stop()
        if self.play_button.isChecked():
            self.play_button.setChecked(False)

    def _play_step(self) -> None:
        if self.path_latents is None or self.entry is None:
            self._stop_playing()
            return
        n = len(self.path_latents)
        # Back and forth, so the animation has no jump at the ends.
        i = self._play_index % (2 * n - 2) if n > 1 else 0
        i = i if i < n else 2 * n - 2 - i
        self._play_index += 1
        self.ctx.set_cursor_latent(self.path_latents[i], user=False)

    # ================================================================ Traverse tab
    def _build_traverse(self) -> QWidget:
        page = QWidget()
        lay = QGridLayout(page)
        form = QHBoxLayout()
        self.traverse_vector_box = QComboBox()
        self.traverse_vector_box.setToolTip("Vary along an attribute vector, or set one latent dimension")
        form.addWidget(QLabel("Vary"))
        form.addWidget(self.traverse_vector_box)
        self.dim_spin = QSpinBox()
        self.dim_spin.setPrefix("z")
        form.addWidget(self.dim_spin)
        self.range_spin = QDoubleSpinBox()
        self.range_spin.setRange(0.1, 10.0)
        self.range_spin.setValue(3.0)
        self.range_spin.setPrefix("± ")
        form.addWidget(self.range_spin)
        form.addStretch(1)
        run = QHBoxLayout()  # a second row, so the page fits a narrow dock
        self.trav_steps = QSpinBox()
        self.trav_steps.setRange(2, 30)
        self.trav_steps.setValue(9)
        self.trav_steps.setPrefix("steps ")
        run.addWidget(self.trav_steps)
        self.trav_rows = QSpinBox()
        self.trav_rows.setRange(1, 12)
        self.trav_rows.setValue(4)
        self.trav_rows.setPrefix("rows ")
        self.trav_rows.setToolTip("Starting points: the keyframes, else the cursor and random data points")
        run.addWidget(self.trav_rows)
        go = QPushButton("Traverse")
        go.clicked.connect(self.run_traverse)
        run.addWidget(go)
        export = QPushButton("Export…")
        export.clicked.connect(lambda: self._ask_export("traverse"))
        run.addWidget(export)
        run.addStretch(1)
        lay.addLayout(form, 0, 0)
        lay.addLayout(run, 1, 0)
        self.traverse_panel = ImagePanel("", min_size=64)
        lay.addWidget(self.traverse_panel, 2, 0)
        self.traverse_error = _error_label()
        lay.addWidget(self.traverse_error, 3, 0)
        return page

    def traverse_starts(self, rows: int) -> np.ndarray | None:
        entry = self.entry
        if entry is None:
            return None
        starts = [z for _, z in entry.keyframes][:rows]
        if not starts and entry.cursor_latent is not None:
            starts.append(entry.cursor_latent)
        if entry.latents is not None and len(starts) < rows:
            rng = np.random.default_rng(len(starts))
            starts += list(entry.latents[rng.choice(len(entry.latents), rows - len(starts), replace=False)])
        while len(starts) < rows:  # no data (GAN): prior samples
            starts.append(np.random.default_rng(len(starts)).standard_normal(entry.model.latent_dim))
        return np.asarray(starts, np.float32)

    def run_traverse(self) -> None:
        entry = self.entry
        if entry is None:
            return
        rows, steps, r = self.trav_rows.value(), self.trav_steps.value(), self.range_spin.value()
        starts = self.traverse_starts(rows)
        values = np.linspace(-r, r, steps)
        name = self.traverse_vector_box.currentData()
        try:
            if name is None:
                grid_z = traverse_dim(starts, self.dim_spin.value(), values)
                from explorer.core.models.dcign import unit_names

                d = self.dim_spin.value()
                named = unit_names(entry.model).get(d)  # a DC-IGN unit is shown under its factor's name
                what = f"z{d}{f' ({named})' if named else ''} from {-r:+.1f} to {r:+.1f}"
            else:
                grid_z = traverse_vector(starts, entry.vectors[name], values)
                what = f"{name} × {-r:+.1f} … {r:+.1f}"
        except (ValueError, KeyError) as exc:
            self.traverse_error.setText(str(exc))
            return
        self.traverse_error.setText("")
        flat = grid_z.reshape(-1, grid_z.shape[-1])

        def done(frames) -> None:
            if entry is not self.entry:
                return
            self.traverse_frames = frames.reshape(rows, steps, *frames.shape[1:])
            self.traverse_panel.show_array(grid(frames, steps), f"{rows} rows: {what}")
            self.framesReady.emit("traverse", self.traverse_frames)

        self.ctx.decode_many(entry, flat, done, self.traverse_error)

    # ================================================================ export
    def _ask_export(self, which: str) -> None:
        frames = self.path_frames if which == "path" else self.traverse_frames
        error = self.interp_error if which == "path" else self.traverse_error
        if frames is None:
            error.setText("Nothing to export yet: run it first.")
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Export", f"{which}.gif", EXPORT_FILTER)
        if not path:
            return
        self.export(which, path, error)

    def export(self, which: str, path: str, error: QLabel | None = None) -> None:
        """Write the interpolation ("path") or traversal ("traverse") as .gif / .png / .mp4, in the
        background. A traversal animates along its columns, one row per start point side by side."""
        from explorer.core.export import export_frames, strip_frames

        frames = self.path_frames if which == "path" else self.traverse_frames
        if frames is None:
            return
        if which == "traverse":
            rows = frames
            if Path(path).suffix.lower() == ".png":
                frames = rows.reshape(-1, *rows.shape[2:])
                nrow = rows.shape[1]
            else:  # each animation frame: one column of the grid, the rows stacked
                frames = strip_frames(np.swapaxes(rows, 0, 1))
                nrow = None
        else:
            nrow = min(len(frames), 12)
        self.ctx.run_io(lambda: export_frames(path, frames, nrow=nrow, bounce=which == "path"),
                        f"Exported {Path(path).name}", error or self.interp_error)


__all__ = ["ArithmeticPanel"]
