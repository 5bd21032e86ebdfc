"""The window asks with the core's words before running changed model code, and lists trust for revoking."""

import os

import pytest
from PySide6.QtWidgets import QMessageBox

from explorer.core import adapter
from explorer.core.adapter import import_model
from tests.core import import_fixtures as F


@pytest.fixture(autouse=True)
def private_trust_store(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CONFIG", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setattr(adapter.trust, "_session", {})
    monkeypatch.setattr(adapter.trust, "_pending", {})


def test_changed_code_is_asked_about_with_its_origin_and_can_be_revoked(window, tmp_path, monkeypatch):
    fx = F.make_container(tmp_path)
    out = adapter.save_imported(import_model(fx.weights, fx.class_ref), tmp_path / "sent.safetensors",
                                dataset="digits")
    src = tmp_path / "vae.py"
    st = src.stat()
    src.write_text(src.read_text() + "\n# edited after it was trusted\n")
    os.utime(src, (st.st_atime, st.st_mtime + 60))
    asked = []

    def answer(box):
        asked.append((box.windowTitle(), box.text(), box.detailedText()))
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "exec", answer)
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: None)
    window.open_model(str(out))
    assert asked, "the changed file must be asked about"
    title, text, details = asked[0]
    assert "sent.safetensors" in text and str(src.resolve()) in text and "your own model code" not in text
    assert "sha256" in details
    assert not window.entries  # refused: nothing ran
    monkeypatch.setattr(QMessageBox, "exec", lambda box: QMessageBox.StandardButton.Yes)
    window.open_model(str(out))
    assert window.current is not None and window.current.model.family == "imported"
    dialog = window.show_trusted_code()
    assert dialog.list.count() >= 1
    dialog.list.item(0).setSelected(True)
    dialog.revoke_everything()
    assert dialog.list.count() == 0 and adapter.trusted_code() == []
    dialog.close()
