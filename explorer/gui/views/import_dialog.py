"""File › Import your own model: weights + your model class (or a TorchScript / torch.export archive),
checked on sample data before it is saved as one of our checkpoints and opened."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from ..theme import error_css

if TYPE_CHECKING:
    from ..controllers.explorer import ExplorerController

DATASETS = ["mnist", "fashion-mnist", "digits", "faces"]


def _with_browse(edit: QLineEdit, on_browse) -> QWidget:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    button = QPushButton("Browse…")
    button.clicked.connect(on_browse)
    lay.addWidget(button)
    return row


class ImportDialog(QDialog):
    def __init__(self, explorer: "ExplorerController", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = explorer
        self.setWindowTitle("Import your own model")
        self.resize(640, 520)
        self.model: Any = None
        self.check: dict[str, Any] | None = None
        form = QFormLayout()
        self.weights = QLineEdit()
        self.weights.setPlaceholderText(".pt / .pth state dict, .safetensors, or a TorchScript / torch.export archive")
        form.addRow("Weights", _with_browse(self.weights, self._browse_weights))
        self.class_file = QLineEdit()
        self.class_file.setPlaceholderText("path/to/model.py (not needed for archives)")
        self.class_file.editingFinished.connect(self._list_classes)
        form.addRow("Model code", _with_browse(self.class_file, self._browse_class))
        self.class_name = QComboBox()
        self.class_name.setEditable(True)
        form.addRow("Class", self.class_name)
        self.kwargs = QLineEdit("{}")
        self.kwargs.setToolTip('Constructor arguments as JSON, e.g. {"latent_dim": 20}')
        form.addRow("Arguments (JSON)", self.kwargs)
        self.shape = QLineEdit()
        self.shape.setPlaceholderText("C,H,W, e.g. 1,28,28 (guessed when empty)")
        form.addRow("Image shape", self.shape)
        self.latent_shape = QLineEdit()
        self.latent_shape.setPlaceholderText("e.g. 8,2,2 or 4,8,8 (found by probing when empty)")
        form.addRow("Latent shape", self.latent_shape)
        self.script_args = QLineEdit()
        self.script_args.setPlaceholderText("only for a training script: the arguments you ran it with")
        form.addRow("Script arguments", self.script_args)
        self.encode = QLineEdit()
        self.encode.setPlaceholderText("auto (encode, encoder…); 'none' for a generator")
        form.addRow("Encode method", self.encode)
        self.decode = QLineEdit()
        self.decode.setPlaceholderText("auto (decode, decoder, generator, forward…)")
        form.addRow("Decode method", self.decode)
        self.output_range = QComboBox()
        for key in ("auto", "01", "logits", "tanh"):
            self.output_range.addItem(key, key)
        form.addRow("Decoder output", self.output_range)
        self.dataset = QComboBox()
        self.dataset.addItems(DATASETS)
        self.dataset.setEditable(True)
        self.dataset.setToolTip("Data the round-trip check uses, and the dataset the model's map will show")
        form.addRow("Dataset", self.dataset)
        outer = QVBoxLayout(self)
        outer.addLayout(form)
        self.check_button = QPushButton("Import and check")
        self.check_button.clicked.connect(self.run_import)
        outer.addWidget(self.check_button)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        outer.addWidget(self.report, 1)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(error_css())
        outer.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.addButton("Save and open…", QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._ask_save)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)

    # ------------------------------------------------------------ inputs
    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Weights", "", "Weights (*.pt *.pth *.safetensors *.pt2 *.zip);;"
                                                                   "All files (*)")
        if path:
            self.weights.setText(path)

    def _browse_class(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model code", "", "Python (*.py)")
        if path:
            self.class_file.setText(path)
            self._list_classes()

    def _list_classes(self) -> None:
        from explorer.core.adapter import list_classes

        path = self.class_file.text().strip()
        self.class_name.clear()
        if not path:
            return
        try:
            classes = list_classes(path)  # parsed, not run
        except Exception as exc:  # noqa: BLE001 - shown to the user; the dialog stays open
            self.error.setText(str(exc))
            return
        for cls in classes:
            params = ", ".join(p["name"] for p in cls.get("params", []))
            self.class_name.addItem(f"{cls['name']}({params})", cls["name"])

    def options(self) -> dict[str, Any]:
        """The form as keyword arguments for ``explorer.core.adapter.import_model``."""
        text = self.kwargs.text().strip() or "{}"
        try:
            kwargs = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"constructor arguments are not valid JSON: {exc}") from None
        if not isinstance(kwargs, dict):
            raise ValueError("constructor arguments must be a JSON object, e.g. {\"latent_dim\": 20}")
        opts: dict[str, Any] = {"kwargs": kwargs, "output_range": self.output_range.currentData()}
        if self.shape.text().strip():
            try:
                opts["image_shape"] = tuple(int(v) for v in self.shape.text().split(","))
            except ValueError:
                raise ValueError(f"image shape must be C,H,W numbers, got {self.shape.text()!r}") from None
        if self.latent_shape.text().strip():
            opts["latent_shape"] = self.latent_shape.text().strip()
        if self.script_args.text().strip():
            import shlex

            try:
                opts["script_args"] = shlex.split(self.script_args.text())
            except ValueError as exc:
                raise ValueError(f"script arguments: {exc}") from None
        if self.encode.text().strip():
            opts["encode_method"] = self.encode.text().strip()
        if self.decode.text().strip():
            opts["decode_method"] = self.decode.text().strip()
        return opts

    def class_ref(self) -> str | None:
        path = self.class_file.text().strip()
        if not path:
            return None
        name = self.class_name.currentData() or self.class_name.currentText().split("(")[0].strip()
        return f"{path}:{name}"

    # ------------------------------------------------------------ import + check (background)
    def run_import(self) -> None:
        from explorer.core.adapter import import_model, round_trip_check

        self.error.setText("")
        self.save_button.setEnabled(False)
        try:
            opts = self.options()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        weights, class_ref, dataset = self.weights.text().strip(), self.class_ref(), self.dataset.currentText()
        if not weights:
            self.error.setText("Choose the weights file first.")
            return
        self.check_button.setEnabled(False)
        self.report.setPlainText("Importing…")

        def work(progress, cancel):
            from explorer.core.data import load_dataset

            if "image_shape" not in opts:  # the data set's own image shape is probed first
                opts["data_shape"] = load_dataset(dataset, count=8).image_shape
            model = import_model(weights, class_ref, **opts)
            c, h, _ = model.image_shape
            data = load_dataset(dataset, image_size=h, channels=c, limit_train=256, limit_test=0)
            check = round_trip_check(model, data.images, cancel=cancel)
            return model, check

        def done(result) -> None:
            self.check_button.setEnabled(True)
            self.model, self.check = result
            report = dict(getattr(self.model, "import_report", {}) or {})
            lines = [f"{k}: {v}" for k, v in report.items()]
            lines += ["", f"Round trip on {self.check.get('images')} {dataset} images: {self.check.get('message')}"]
            self.report.setPlainText("\n".join(lines))
            self.save_button.setEnabled(True)

        def failed(msg: str) -> None:
            self.check_button.setEnabled(True)
            self.report.setPlainText("")
            self.error.setText(msg.partition(": ")[2] or msg)

        self.ctx.tasks.start(work, on_done=done, on_error=failed)

    def _ask_save(self) -> None:
        if self.model is None:
            return
        stem = Path(self.weights.text()).stem or "imported"
        path, _ = QFileDialog.getSaveFileName(self, "Save as a Latent Explorer checkpoint", f"{stem}.safetensors",
                                              "Checkpoints (*.safetensors)")
        if path:
            self.save_and_open(path)

    def save_and_open(self, path: str) -> None:
        from explorer.core.adapter import save_imported

        model, check, dataset = self.model, self.check, self.dataset.currentText()

        def opened(saved) -> None:
            self.ctx.open_model(str(saved))
            self.accept()

        self.ctx.run_io(lambda: save_imported(model, path, check=check, dataset=dataset),
                        f"Imported {Path(path).name}", self.error, on_done=opened)


__all__ = ["ImportDialog"]
