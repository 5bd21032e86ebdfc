"""Image display with crisp (nearest-neighbour) upscaling."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget


def to_uint8_hwc(images: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) floats in [0, 1] -> (H, W, C) uint8, C in {1, 3}."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


def qimage_from_array(hwc: np.ndarray) -> QImage:
    """Wrap (H, W, 1|3) uint8 in a QImage that owns a copy of the data."""
    h, w, c = hwc.shape
    fmt = QImage.Format.Format_Grayscale8 if c == 1 else QImage.Format.Format_RGB888
    data = np.ascontiguousarray(hwc)
    return QImage(data.data, w, h, data.strides[0], fmt).copy()


def grid(images: np.ndarray, cols: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (H', W', C) image, row-major tiles."""
    n, h, w, c = images.shape
    rows = max(1, int(np.ceil(n / cols)))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y : y + h, x : x + w] = images[i]
    return out


class ImagePanel(QWidget):
    """A title, an upscaled image and a caption line."""

    def __init__(self, title: str = "", min_size: int = 196, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setStyleSheet("font-weight: bold")
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(min_size, min_size)
        self.image.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image.setStyleSheet("background: #202020; border-radius: 4px")
        self.caption = QLabel("")
        # Fixed height: a caption that changes on every mouse move must not re-layout the window.
        self.caption.setFixedHeight(self.caption.fontMetrics().lineSpacing() * 2 + 6)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption.setStyleSheet("color: #555; font-family: monospace; font-size: 9pt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        if title:
            layout.addWidget(self.title)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.caption)
        self.last_array: np.ndarray | None = None
        self._qimage: QImage | None = None

    def show_array(self, hwc: np.ndarray, caption: str | None = None) -> None:
        self.last_array = hwc
        self._qimage = qimage_from_array(hwc)
        self._rescale()
        if caption is not None:
            self.caption.setText(caption)

    def clear(self, message: str = "") -> None:
        self.last_array = None
        self._qimage = None
        self.image.clear()
        self.image.setText(message)
        self.caption.setText("")

    def _rescale(self) -> None:
        if self._qimage is None:
            return
        size = self.image.size()
        img = self._qimage
        # Integer upscaling with nearest neighbour keeps pixels square and crisp.
        factor = max(1, min(size.width() // max(img.width(), 1), size.height() // max(img.height(), 1)))
        scaled = img.scaled(img.width() * factor, img.height() * factor, Qt.AspectRatioMode.KeepAspectRatio,
                            Qt.TransformationMode.FastTransformation)
        self.image.setPixmap(QPixmap.fromImage(scaled))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._rescale()
