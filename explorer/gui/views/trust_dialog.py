"""Preferences › the imported model code the user allowed to run, with its state, and a way to revoke it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QPushButton, QVBoxLayout, QWidget)


class TrustDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Trusted model code")
        self.resize(640, 360)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Imported models run these files when opened. A file that changes is asked about "
                             "again; revoke one to be asked next time."))
        self.list = QListWidget()
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.revoke_button = QPushButton("Revoke")
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.revoke_all = QPushButton("Revoke all")
        self.revoke_all.clicked.connect(self.revoke_everything)
        row.addWidget(self.revoke_button)
        row.addWidget(self.revoke_all)
        row.addStretch(1)
        lay.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        lay.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        from explorer.core.adapter import trusted_code

        self.list.clear()
        for entry in trusted_code():
            sha = str(entry.get("sha256") or "")[:12]
            note = " (this session only)" if entry.get("session_only") else ""
            item = QListWidgetItem(f"{entry.get('path')}\n    {entry.get('status')} · sha256 {sha}…{note}")
            item.setData(Qt.ItemDataRole.UserRole, entry.get("path"))
            self.list.addItem(item)
        self.revoke_button.setEnabled(self.list.count() > 0)
        self.revoke_all.setEnabled(self.list.count() > 0)

    def revoke_selected(self) -> None:
        from explorer.core.adapter import revoke_trust

        for item in self.list.selectedItems():
            revoke_trust(item.data(Qt.ItemDataRole.UserRole))
        self.refresh()

    def revoke_everything(self) -> None:
        from explorer.core.adapter import revoke_trust

        revoke_trust()
        self.refresh()
