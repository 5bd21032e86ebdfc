"""Trust in imported code (issue 15): keyed by sha256, asked again when the code changed (showing what
changed), never for arguments the user did not see, revocable; the question says where the checkpoint came
from and which file would run."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

from explorer.core import adapter, checkpoint
from explorer.core.adapter import UntrustedCodeError, import_model, trust_question
from tests.core import import_fixtures as F


@pytest.fixture(autouse=True)
def private_trust_store(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CONFIG", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setattr(adapter.trust, "_session", {})
    monkeypatch.setattr(adapter.trust, "_pending", {})


@pytest.fixture
def saved(tmp_path):
    fx = F.make_container(tmp_path)
    model = import_model(fx.weights, fx.class_ref)
    out = adapter.save_imported(model, tmp_path / "sent.safetensors", dataset="digits")
    return fx, out, tmp_path / "vae.py"


def _edit(path, extra="\n# a harmless-looking edit\n"):
    st = path.stat()
    path.write_text(path.read_text() + extra)
    os.utime(path, (st.st_atime, st.st_mtime + 60))  # a later modification time, as an editor leaves it


def test_edited_code_is_asked_about_again_showing_what_changed(saved):
    fx, out, src = saved
    assert F.max_decode_difference(checkpoint.load(out), fx) == 0.0  # trusted by importing it
    old_size = src.stat().st_size
    _edit(src)
    with pytest.raises(UntrustedCodeError, match="has changed since you trusted it") as err:
        checkpoint.load(out)
    e = err.value
    assert e.reason == "changed" and e.path == str(src.resolve())
    assert e.fingerprint["sha256"] == adapter.code_fingerprint(src)["sha256"]
    assert e.changes == [(f"vae.py: changed, {old_size:,} -> {src.stat().st_size:,} bytes, modified "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(src.stat().st_mtime - 60))} -> "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(src.stat().st_mtime))}")]

    q = trust_question(e, out)
    assert "your own model code" not in q.text
    assert q.text.startswith(f"sent.safetensors (in {out.parent}) asks to run the Python file {src.resolve()} and "
                             "calls VAE(**{}), which has changed since you trusted it.")
    assert f"It says it was imported from {fx.weights}" in q.text
    assert f"sha256: {e.fingerprint['sha256']}" in q.details and "Changed since you trusted it:" in q.details
    assert "Constructor arguments: {}" in q.details and f"Checkpoint: file {out}" in q.details

    adapter.trust_code(e.path)  # the user said yes to exactly what was shown
    assert F.max_decode_difference(checkpoint.load(out), fx) == 0.0


def test_unknown_code_question_names_the_file_and_the_origin(saved, monkeypatch, tmp_path):
    _fx, out, src = saved
    monkeypatch.setenv("LATENT_EXPLORER_CONFIG", str(tmp_path / "someone-else"))
    monkeypatch.setattr(adapter.trust, "_session", {})
    with pytest.raises(UntrustedCodeError) as err:
        checkpoint.load(out)
    q = trust_question(err.value, out)
    assert err.value.reason == "new" and q.title == "Run this model's code?"
    assert f"asks to run the Python file {src.resolve()}" in q.text and "not trusted on this computer" in q.text
    assert q.origin["dataset"] == "digits" and q.path == str(src.resolve())


def test_arguments_a_checkpoint_passes_are_shown_before_they_run(saved, tmp_path):
    _fx, out, _src = saved
    # Someone edits the checkpoint's metadata to call the trusted class with other arguments.
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(out), framework="pt") as h:
        meta = h.metadata()
        tensors = {k: h.get_tensor(k) for k in h.keys()}  # noqa: SIM118
    doc = json.loads(meta["latent_explorer"])
    doc["config"]["kwargs"] = {"x_dim": 64, "hidden": 32, "z_dim": 4}
    forged = tmp_path / "forged.safetensors"
    save_file(tensors, str(forged), metadata={**meta, "latent_explorer": json.dumps(doc)})
    with pytest.raises(UntrustedCodeError, match=r"arguments you have not seen: \{\"x_dim\": 64") as err:
        checkpoint.load(forged)
    e = err.value
    assert e.reason == "call" and e.call["kwargs"] == {"x_dim": 64, "hidden": 32, "z_dim": 4}
    q = trust_question(e, forged)
    assert 'Constructor arguments: {"x_dim": 64, "hidden": 32, "z_dim": 4}' in q.details
    assert "with arguments you have not confirmed before" in q.text
    adapter.trust_code(e.path)  # approves the arguments shown, and only those
    assert checkpoint.load(forged).latent_dim == 4
    assert checkpoint.load(out).latent_dim == 4  # the call approved at import is still approved
    calls = adapter.trusted_code()[0]["calls"]
    assert [c["kwargs"] for c in calls] == [{}, {"x_dim": 64, "hidden": 32, "z_dim": 4}]


def test_trust_list_for_preferences_and_revoking(saved, tmp_path):
    _fx, out, src = saved
    items = adapter.trusted_code()
    assert [(i["path"], i["status"], i["what"]) for i in items] == [(str(src.resolve()), "unchanged", "Python file")]
    assert items[0]["sha256"] == adapter.code_fingerprint(src)["sha256"] and items[0]["trusted_at"]
    _edit(src)
    assert adapter.trusted_code()[0]["status"] == "changed"
    assert adapter.revoke_trust(src) == 1
    assert adapter.trusted_code() == []
    with pytest.raises(UntrustedCodeError, match="not trusted on this computer"):
        checkpoint.load(out)
    store = json.loads(adapter.trust_store_path().read_text())
    assert store == {"version": 2, "trusted": []}


def test_a_trust_list_from_the_path_only_version_is_asked_about_again(saved):
    _fx, out, src = saved
    adapter.trust_store_path().write_text(json.dumps({"trusted": [str(src.resolve())]}))
    with pytest.raises(UntrustedCodeError) as err:
        checkpoint.load(out)
    assert err.value.reason == "legacy"
    assert adapter.trusted_code()[0]["status"] == "no fingerprint"


def test_package_files_are_part_of_the_fingerprint(tmp_path):
    fx = F.make_antixk_package(tmp_path)
    model = import_model(fx.weights, fx.class_ref, **fx.python)
    out = adapter.save_imported(model, tmp_path / "v.safetensors")
    base = tmp_path / "PyTorch-VAE" / "models" / "base.py"
    assert "models/base.py" in adapter.code_fingerprint(fx.class_ref.rpartition(":")[0])["files"]
    _edit(base)  # the class file is unchanged, but its package's base class (which runs too) is not
    adapter.source._cache.clear()
    with pytest.raises(UntrustedCodeError) as err:
        checkpoint.load(out)
    assert err.value.reason == "changed" and err.value.changes[0].startswith("models/base.py: changed")


def test_archives_are_keyed_by_hash_too(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 4, 4)))
    program = torch.export.export(net, (torch.randn(2, 3),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    archive = tmp_path / "g.pt2"
    torch.export.save(program, str(archive))
    out = adapter.save_imported(import_model(archive), tmp_path / "g.safetensors")
    assert checkpoint.load(out).latent_dim == 3
    torch.export.save(torch.export.export(net, (torch.randn(2, 3),)), str(archive))  # replaced by other bytes
    with pytest.raises(UntrustedCodeError, match="torch.export archive") as err:
        checkpoint.load(out)
    assert err.value.reason == "changed" and "archive" in trust_question(err.value, out).text
