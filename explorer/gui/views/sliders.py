"""One slider per latent dimension (a page of them at a time for large latents)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QVBoxLayout,
                               QWidget)

RANGE = 3.0  # default reach: [-3, 3] standard deviations of the prior; set_range widens it to the data's codes
STEPS = 600


class LatentSliders(QWidget):
    valuesChanged = Signal(object)  # the full latent vector (np.ndarray)

    def __init__(self, per_page: int = 10, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.per_page = per_page
        self.values = np.zeros(0, np.float32)
        self.first = 0
        self.range = RANGE
        self.unit_names: dict[int, str] = {}
        self._updating = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>Latent dimensions</b>"))
        head.addStretch(1)
        self.page_label = QLabel("")
        head.addWidget(self.page_label)
        self.first_spin = QSpinBox()
        self.first_spin.setPrefix("from z")
        self.first_spin.setToolTip("First dimension shown (for latents larger than one page)")
        self.first_spin.valueChanged.connect(self._set_first)
        head.addWidget(self.first_spin)
        self.zero_button = QPushButton("Zero")
        self.zero_button.setToolTip("Set every latent dimension to 0 (the prior mean)")
        self.zero_button.clicked.connect(self._zero)
        head.addWidget(self.zero_button)
        outer.addLayout(head)
        self.grid = QGridLayout()
        self.grid.setVerticalSpacing(2)
        outer.addLayout(self.grid)
        outer.addStretch(1)
        self.rows: list[tuple[QLabel, QSlider, QLabel]] = []
        for i in range(per_page):
            name = QLabel()
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-STEPS // 2, STEPS // 2)
            value = QLabel()
            value.setFixedWidth(value.fontMetrics().horizontalAdvance("+00.00") + 12)
            slider.valueChanged.connect(lambda v, row=i: self._slider_moved(row, v))
            self.grid.addWidget(name, i, 0)
            self.grid.addWidget(slider, i, 1)
            self.grid.addWidget(value, i, 2)
            self.rows.append((name, slider, value))
        self.set_dim(0)

    def set_range(self, reach: float) -> None:
        """Sliders cover [-reach, reach]: an AE's codes (e.g. -4.65) must not sit pinned at the end."""
        reach = float(reach) if np.isfinite(reach) and reach > 0 else RANGE
        if reach != self.range:
            self.range = reach
            for _, slider, _ in self.rows:
                slider.setToolTip(f"-{reach:.2f} … +{reach:.2f}")
            self._refresh_values()

    def set_unit_names(self, names: dict[int, str]) -> None:
        """Names of latent units (e.g. DC-IGN's units assigned to factors), shown beside their slider."""
        self.unit_names = {int(k): str(v) for k, v in (names or {}).items()}
        self._layout_rows()

    def set_dim(self, dim: int) -> None:
        self.values = np.zeros(dim, np.float32)
        self.unit_names = {}
        self.first_spin.setRange(0, max(0, dim - 1))
        self.first_spin.setVisible(dim > self.per_page)
        self.first = 0
        self._layout_rows()

    def _set_first(self, first: int) -> None:
        self.first = first
        self._layout_rows()

    def set_values(self, z: np.ndarray) -> None:
        """Show a latent vector without emitting valuesChanged."""
        z = np.asarray(z, np.float32).ravel()
        if len(z) != len(self.values):
            self.set_dim(len(z))
        self.values = z.copy()
        self._refresh_values()

    def _layout_rows(self) -> None:
        dim = len(self.values)
        for row, (name, slider, value) in enumerate(self.rows):
            d = self.first + row
            for w in (name, slider, value):
                w.setVisible(d < dim)
            if d < dim:
                name.setText(f"z{d} {self.unit_names[d]}" if d in self.unit_names else f"z{d}")
        last = min(dim, self.first + self.per_page)
        self.page_label.setText(f"z{self.first}–z{last - 1} of {dim}" if dim else "no model")
        self._refresh_values()

    def _refresh_values(self) -> None:
        # Called on every cursor move: touch only what changed (each setText can re-layout the panel).
        self._updating = True
        try:
            dim = len(self.values)
            for row, (_, slider, value) in enumerate(self.rows):
                d = self.first + row
                if d >= dim:
                    break
                v = float(self.values[d])
                raw = int(round(np.clip(v, -self.range, self.range) / self.range * (STEPS // 2)))
                if slider.value() != raw:
                    slider.setValue(raw)
                text = f"{v:+.2f}"
                if value.text() != text:
                    value.setText(text)
        finally:
            self._updating = False

    def _slider_moved(self, row: int, raw: int) -> None:
        if self._updating:
            return
        d = self.first + row
        if d >= len(self.values):
            return
        self.values[d] = raw / (STEPS // 2) * self.range
        self.rows[row][2].setText(f"{self.values[d]:+.2f}")
        self.valuesChanged.emit(self.values.copy())

    def _zero(self) -> None:
        self.values[:] = 0
        self._refresh_values()
        self.valuesChanged.emit(self.values.copy())
