import json
import os
import struct

import pytest
import torch

from explorer.core import checkpoint, load_model, save_model
from explorer.core.checkpoint import CheckpointError
from explorer.core.models import build_model
from explorer.core.training import TrainConfig, Trainer

SHAPE = (1, 8, 8)
FAMILIES = [
    ("ae", {"arch": "mlp", "hidden": (32,)}),
    ("ae", {"arch": "conv", "base_channels": 8}),
    ("ae", {"arch": "mlp", "hidden": (32,), "denoising_std": 0.2}),
    ("ae", {"arch": "mlp", "hidden": (32,), "sparsity_l1": 1e-3}),
    ("vae", {"arch": "mlp", "hidden": (32,)}),
    ("vae", {"arch": "conv", "base_channels": 8}),
    ("gan", {"base_channels": 8}),
    ("pca", {}),
]


def _trained(family, extra, digits, steps=20):
    torch.manual_seed(0)
    model = build_model(family, latent_dim=4, image_shape=SHAPE, **extra)
    Trainer(model, digits, TrainConfig(epochs=1, batch_size=64, max_steps=steps, device="cpu")).run()
    return model.eval()


@pytest.mark.parametrize("family,extra", FAMILIES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(FAMILIES)])
def test_round_trip_gives_identical_outputs(family, extra, digits, tmp_path):
    model = _trained(family, extra, digits)
    path = save_model(model, tmp_path / "m.safetensors", dataset="digits", label_names=digits.label_names)
    loaded = load_model(path)
    assert loaded.family == family and not loaded.training
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model.decode(z), loaded.decode(z))
        if model.capabilities.has_encoder:
            x = torch.from_numpy(digits.as_float(slice(0, 7)))
            assert torch.equal(model.encode(x), loaded.encode(x))
    meta = checkpoint.inspect(path)
    assert meta["family"] == family and meta["dataset"] == "digits"
    assert meta["label_names"] == digits.label_names
    assert meta["latent_dim"] == 4 and meta["image_shape"] == list(SHAPE)
    assert meta["software"]["name"] == "latent-explorer"


def test_inspect_does_not_read_weights(tmp_path, monkeypatch):
    model = build_model("vae", latent_dim=3, image_shape=SHAPE, hidden=(16,))
    path = save_model(model, tmp_path / "m.safetensors")
    monkeypatch.setattr(checkpoint, "_build", lambda *a, **k: pytest.fail("inspect built a model"))
    assert checkpoint.inspect(path)["config"]["latent_dim"] == 3


@pytest.fixture
def saved(tmp_path):
    model = build_model("vae", latent_dim=3, image_shape=SHAPE, hidden=(16,))
    return model, save_model(model, tmp_path / "good.safetensors")


def _rewrite_metadata(src, dst, edit):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        doc = json.loads(f.metadata()[checkpoint.METADATA_KEY])
    tensors, doc = edit(tensors, doc)
    save_file(tensors, str(dst), metadata=None if doc is None else {checkpoint.METADATA_KEY: json.dumps(doc)})
    return dst


def test_truncated_file_raises_documented_error(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for cut in (4, 40, len(data) // 2, len(data) - 3):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"truncated|corrupted"):
            load_model(bad)


def test_garbage_and_wrong_format(tmp_path, saved):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="not a valid"):
        load_model(junk)
    pt = tmp_path / "model.pt"
    torch.save(saved[0].state_dict(), pt)
    with pytest.raises(CheckpointError, match="import"):
        load_model(pt)
    huge_header = tmp_path / "huge.safetensors"
    huge_header.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CheckpointError):
        load_model(huge_header)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="folder"):
        load_model(tmp_path)


def test_foreign_safetensors_without_metadata(saved, tmp_path):
    bad = _rewrite_metadata(saved[1], tmp_path / "plain.safetensors", lambda t, d: (t, None))
    with pytest.raises(CheckpointError, match="not a Latent Explorer checkpoint"):
        load_model(bad)


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (lambda t, d: (t, {**d, "config": {**d["config"], "latent_dim": 5}}), r"shape .* expects"),
        (lambda t, d: (t, {**d, "family": "nope"}), "unknown model family"),
        (lambda t, d: (t, {**d, "format_version": 99}), "newer"),
        (lambda t, d: (t, {**d, "config": {**d["config"], "bogus": 1}}), "unknown config field"),
        (lambda t, d: (t, {**d, "config": {**d["config"], "latent_dim": -2}}), "latent_dim"),
        (lambda t, d: ({k: v for k, v in list(t.items())[1:]}, d), "missing"),
        (lambda t, d: ({**t, "extra.weight": torch.zeros(2)}, d), "does not use"),
        (lambda t, d: ({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in t.items()}, d),
         "NaN"),
    ],
    ids=["latent-mismatch", "family", "version", "config-field", "config-value", "missing", "unexpected", "nan"],
)
def test_mismatched_files_name_the_problem(saved, tmp_path, edit, pattern):
    bad = _rewrite_metadata(saved[1], tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=pattern):
        load_model(bad)


def test_latent_mismatch_message_names_both_sizes(saved, tmp_path):
    bad = _rewrite_metadata(saved[1], tmp_path / "bad.safetensors",
                            lambda t, d: (t, {**d, "config": {**d["config"], "latent_dim": 5}}))
    with pytest.raises(CheckpointError) as err:
        load_model(bad)
    assert "latent_dim 5" in str(err.value) and "bad.safetensors" in str(err.value)


def test_save_is_atomic(saved, tmp_path, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def boom(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(CheckpointError,
                       match="^no space left on the disk holding .*: could not write good.safetensors$"):
        save_model(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["good.safetensors"]


def test_plain_state_dict_import(saved, tmp_path):
    model, _ = saved
    pt = tmp_path / "weights.pth"
    torch.save(model.state_dict(), pt)
    loaded = checkpoint.load_state_dict_file(pt, "vae", model.config.to_dict())
    z = torch.randn(3, 3)
    assert torch.equal(model.decode(z), loaded.decode(z))
    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.load_state_dict_file(pt, "vae", {**model.config.to_dict(), "latent_dim": 6})


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/latent_explorer_pwned",))


def test_state_dict_import_refuses_code(tmp_path):
    pt = tmp_path / "evil.pt"
    torch.save({"w": _Evil()}, pt)
    with pytest.raises(CheckpointError, match="cannot read"):
        checkpoint.load_state_dict_file(pt, "vae", {"latent_dim": 3, "image_shape": [1, 8, 8]})
    assert not os.path.exists("/tmp/latent_explorer_pwned")


def test_optimizer_state_round_trip(digits, tmp_path):
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4, image_shape=SHAPE, hidden=(16,))
    trainer = Trainer(model, digits, TrainConfig(epochs=1, batch_size=64, max_steps=5, device="cpu",
                                                 checkpoint_path=str(tmp_path / "r.safetensors")))
    trainer.run()
    meta = checkpoint.inspect(tmp_path / "r.safetensors")
    assert meta["has_optimizer_state"]
    loaded = checkpoint.load(tmp_path / "r.safetensors", with_optimizer_state=True)
    opts = loaded.configure_optimizers(1e-3)
    assert checkpoint.restore_optimizers(loaded, opts)
    saved_state = trainer.optimizers["model"].state_dict()["state"]
    restored = opts["model"].state_dict()["state"]
    assert saved_state.keys() == restored.keys()
    for idx in saved_state:
        assert torch.equal(saved_state[idx]["exp_avg"], restored[idx]["exp_avg"])


def test_saved_file_has_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_model(build_model("pca", latent_dim=2, image_shape=SHAPE), tmp_path / "p.safetensors")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
