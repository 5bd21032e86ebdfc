"""The map's tools in the window: the decoded manifold, t-SNE's preview, search, neighbours and colouring."""


from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QListWidgetItem

from explorer.core.explore import OpenModel

from ..controllers.data import strip_exception
from .common import COLOUR_BINS, POSTERIOR_SPREAD, RECON_ERROR


class MapToolsMixin:
    """Part of :class:`MainWindow`; uses its widgets and ``self.explorer``."""

    def _show_preview(self, entry: OpenModel, method: str, positions: np.ndarray) -> None:
        """t-SNE's map while it forms, as an inset over the map: the shown map stays the usable one until the
        new one is finished (then it replaces it)."""
        from PySide6.QtGui import QPixmap

        from explorer.core.imaging import scatter_image

        from ..views.image_panel import qimage_from_array

        if entry is not self.state.current or entry.data is None or len(positions) != len(entry.data):
            return
        # The labels' colours, not the colouring chosen: a continuous colouring would rebuild its bar per frame.
        picture = scatter_image(positions, entry.data.labels, 180)
        self.preview_label.setPixmap(QPixmap.fromImage(qimage_from_array(picture)))
        self.preview_label.setToolTip(f"{method}: the map forming while it optimises")
        self.preview_label.adjustSize()
        self.preview_label.move(64, 12)
        self.preview_label.show()
        self.preview_label.raise_()

    def _manifold_toggled(self, on: bool) -> None:
        self.manifold_only.setEnabled(on)
        if not on:
            self.manifold_only.setChecked(False)
        self.explorer.manifold.set_enabled(on)
        if on:
            self._request_manifold()

    def _request_manifold(self) -> None:
        if self.manifold_check.isChecked():
            self.explorer.manifold.request(self.map.view_bounds(), self.map.view_pixels())

    def _show_manifold(self, entry: OpenModel, manifold) -> None:
        self.last_manifold = manifold
        self.map.set_manifold(manifold.mosaic(), manifold.bounds)

    def _manifold_cleared(self) -> None:
        self.last_manifold = None
        self.map.set_manifold(None, None)
        if self.manifold_check.isChecked():
            self._manifold_timer.start()  # the new map (or model) gets its own tiles

    def export_manifold(self, path: str) -> None:
        from explorer.core.export import save_png

        manifold = getattr(self, "last_manifold", None)
        if manifold is None:
            self.show_error("No manifold", "Turn on 'Decoded manifold' under the map controls first.")
            return
        picture = manifold.mosaic(pad=1)
        self.explorer.run_io(lambda: save_png(path, picture), f"Saved the manifold to {Path(path).name}")

    def _ask_export_manifold(self) -> None:
        start = self.settings.value("last_dir", str(Path.home()))
        path, _ = QFileDialog.getSaveFileName(self, "Export the decoded manifold", str(Path(start) / "manifold.png"),
                                              "PNG images (*.png)")
        if path:
            self.export_manifold(path)

    def _show_neighbours(self, entry: OpenModel, idx: int, k: int = 8) -> None:
        """The selected point's k nearest neighbours in latent space, as clickable thumbnails."""
        from PySide6.QtGui import QIcon, QPixmap

        from explorer.core.imaging import to_hwc
        from explorer.core.latent.neighbours import nearest_neighbours

        from ..views.image_panel import qimage_from_array

        self.neighbour_list.clear()
        if entry.latents is None or not 0 <= idx < len(entry.latents):
            return
        found, dist = nearest_neighbours(entry.latents, idx, k=min(k, len(entry.latents) - 1))
        data = entry.data
        for j, d in zip(found, dist):
            j = int(j)
            label = int(data.labels[j])
            name = data.label_names[label] if 0 <= label < len(data.label_names) else "?"
            item = QListWidgetItem(QIcon(QPixmap.fromImage(qimage_from_array(to_hwc(data.images[j])))),
                                   f"{name}\n{d:.2f}")
            item.setData(Qt.ItemDataRole.UserRole, j)
            item.setToolTip(f"point {j}, label {name}, latent distance {d:.3f}")
            self.neighbour_list.addItem(item)

    def _search(self, jump: bool = False) -> None:
        """Ring the points that match the query; with ``jump`` show them (the view fits them, the first is selected)."""
        from explorer.core.latent.search import SearchError, search

        entry = self.state.current
        text = self.search_edit.text().strip()
        if entry is None or entry.data is None or not text:
            self.map.set_search_matches(None)
            self.search_info.setText("")
            return
        data = entry.data
        n = len(data)
        names = None
        extra = 0
        if entry.dropped is not None:
            extra = len(entry.dropped.names)
        try:
            result = search(text, n, labels=data.labels, label_names=data.label_names,
                            attributes=data.attributes, attribute_names=list(data.attribute_names), names=names)
        except SearchError as exc:
            self.search_info.setText(str(exc))
            self.map.set_search_matches(None)
            return
        hits = result.indices
        dropped_hits = []
        if extra:
            dropped_hits = [i for i, nm in enumerate(entry.dropped.names) if text.lower() in nm.lower()]
        self.search_info.setText(result.description + (f"; {len(dropped_hits)} dropped image(s)" if dropped_hits
                                                       else ""))
        self.map.set_search_matches(hits if entry.has_map else None)
        if jump and entry.has_map and len(hits):
            self.map.fit_points(entry.positions[hits])
            self.explorer.select_datum(int(hits[0]))
        elif jump and dropped_hits:
            self.state.set_cursor(entry, entry.dropped.latents[dropped_hits[0]], "select")

    # ================================================================ colouring
    def _fill_colour_box(self, entry: OpenModel) -> None:
        self.colour_box.blockSignals(True)
        self.colour_box.clear()
        self.colour_box.addItem("label", None)
        if entry.data is not None:
            for i, name in enumerate(entry.data.attribute_names):
                self.colour_box.addItem(name, i)
            if entry.model.capabilities.has_encoder:
                self.colour_box.addItem(RECON_ERROR, RECON_ERROR)
                if entry.model.capabilities.has_posterior:
                    self.colour_box.addItem(POSTERIOR_SPREAD, POSTERIOR_SPREAD)
        index = self.colour_box.findText(self.state.colour_by)
        self.colour_box.setCurrentIndex(max(index, 0))
        self.colour_box.blockSignals(False)

    def _colouring(self, entry: OpenModel) -> tuple[np.ndarray, list[str], list | None]:
        """(labels, legend names, colours or None for the label palette) for the colouring chosen."""
        data = entry.data
        self.colour_bar.setVisible(False)
        if data is None:
            return np.zeros(0, np.int64), [], None
        names = list(data.attribute_names)
        which = self.state.colour_by
        values = None
        if which in names and data.attributes is not None:
            attr = names.index(which)
            values = data.attributes[:, attr]
            if set(np.unique(values)) <= {0.0, 1.0}:
                return values.astype(np.int64), [f"not {which}", which], None
        elif which in (RECON_ERROR, POSTERIOR_SPREAD):
            if which not in entry.point_values and (id(entry), which) not in self._computing_values:
                self._compute_point_values(entry, which)  # labels meanwhile; recoloured when it arrives
            values = entry.point_values.get(which)
        if values is None:
            return data.labels, list(data.label_names), None
        return self._binned(values, which)

    def _binned(self, values: np.ndarray, title: str) -> tuple[np.ndarray, list[str], list]:
        """A continuous value in COLOUR_BINS bins on the viridis ramp, with a colour bar beside the box."""
        from PySide6.QtGui import QColor, QImage, QPixmap

        from explorer.core.latent.colouring import colour_values, ramp

        _, bar = colour_values(values, title=title)
        span = bar.vmax - bar.vmin if bar.vmax > bar.vmin else 1.0
        bins = np.clip(((np.asarray(values, np.float64) - bar.vmin) / span * COLOUR_BINS).astype(np.int64),
                       0, COLOUR_BINS - 1)
        bins[~np.isfinite(values)] = -1  # no value: drawn grey
        centres = ramp((np.arange(COLOUR_BINS) + 0.5) / COLOUR_BINS)
        colours = [QColor(int(r), int(g), int(b)) for r, g, b in centres]
        edges = np.linspace(bar.vmin, bar.vmax, COLOUR_BINS + 1)
        labels = [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(COLOUR_BINS)]
        strip = np.ascontiguousarray(np.repeat(bar.gradient[None], 12, axis=0))
        image = QImage(strip.data, strip.shape[1], strip.shape[0], strip.strides[0], QImage.Format.Format_RGB888)
        self.colour_bar.setPixmap(QPixmap.fromImage(image.scaled(160, 12)))
        self.colour_bar.setText("")
        self.colour_bar.setToolTip(f"{title}: {bar.vmin:.4g} (left) to {bar.vmax:.4g} (right); "
                                   "1st-99th percentile, the rest at the ends")
        self.colour_bar.setVisible(True)
        return bins, labels, colours

    def _compute_point_values(self, entry: OpenModel, which: str) -> None:
        """Reconstruction error or posterior spread per point: the model runs over the data, in the background."""
        from explorer.core.latent.colouring import (
            posterior_spread,
            reconstruction_errors,
        )

        fn = reconstruction_errors if which == RECON_ERROR else posterior_spread
        images, model = entry.data.images, entry.model
        self._set_busy(f"Computing {which}", False)
        key = (id(entry), which)
        self._computing_values.add(key)  # a redraw meanwhile must not start the same work again

        def done(values) -> None:
            self._computing_values.discard(key)
            self._set_busy(None)
            if entry.model is model:
                entry.point_values[which] = np.asarray(values, np.float64)
                if entry is self.state.current and self.state.colour_by == which:
                    self._recolour()

        def failed(msg: str) -> None:
            self._computing_values.discard(key)
            self._set_busy(None)
            self.statusBar().showMessage(f"{which}: {strip_exception(msg)}", 8000)

        self.tasks.start(lambda progress, cancel: fn(model, images, progress=progress, cancel=cancel),
                         on_done=done, on_error=failed, on_progress=self._progress)

    def _recolour(self) -> None:
        entry = self.state.current
        if entry is None or not entry.has_map:
            return
        labels, names, colours = self._colouring(entry)
        self.map.set_labels(labels, names, colours)
