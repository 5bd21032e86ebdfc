"""Other people's models import first time, or say exactly why not (issue 14).

Each fixture is written the way its authors write it (tests/core/import_fixtures.py) and saved by plain PyTorch;
every import here is compared with the original module's own decode.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest
import torch

from explorer.core import adapter, checkpoint
from explorer.core.adapter import AdapterError, import_model
from tests.core import import_fixtures as F


@pytest.fixture(autouse=True)
def private_trust_store(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CONFIG", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setattr(adapter.trust, "_session", {})
    monkeypatch.setattr(adapter.trust, "_pending", {})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _markers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name in ("TRAINING_RAN", "DATA_LOADED"))


def _same_decode(model, fx, tol=0.0):
    diff = F.max_decode_difference(model, fx)
    assert diff <= tol, (fx.kind, diff)


# ------------------------------------------------------------ class files that are scripts
def test_examples_vae_main_script_imports_without_running_its_training(tmp_path, capsys):
    fx = F.make_vae_script(tmp_path)
    model = import_model(fx.weights, fx.class_ref)
    assert (model.latent_dim, model.image_shape, model.import_report["encode_input"]) == (20, (1, 28, 28), "flat")
    assert _markers(tmp_path) == []  # no data set loaded, no training step, our own argv never parsed
    assert "runs a training script when imported (line 21: parses command-line arguments)" \
        in model.import_report["notes"][0]
    _same_decode(model, fx)
    # The checkpoint rebuilds it the same way (the script is not run on open either).
    loaded = checkpoint.load(adapter.save_imported(model, tmp_path / "vae.safetensors"))
    _same_decode(loaded, fx)
    assert _markers(tmp_path) == []


def test_dcgan_main_script_constants_come_from_its_own_arguments(tmp_path):
    fx = F.make_dcgan_script(tmp_path)
    model = import_model(fx.weights, fx.class_ref, script_args=["--dataset", "mnist"])
    rep = model.import_report
    assert (rep["latent_shape"], rep["image_shape"], rep["output_range"]) == ([12, 1, 1], [1, 16, 16], "tanh")
    assert any("ngpu=1 taken from the module's own ngpu" in n for n in rep["notes"])
    assert _markers(tmp_path) == []
    _same_decode(model, fx)
    assert model.config.script_args == ["--dataset", "mnist"]
    _same_decode(checkpoint.load(adapter.save_imported(model, tmp_path / "g.safetensors")), fx)

    # Without the script's arguments nc is never set (the script sets it per --dataset, line 45): of the
    # values the script assigns (3, 1), the one the weights fit is taken, and recorded for reopening.
    plain = import_model(fx.weights, fx.class_ref)
    assert plain.config.script_values == {"nc": 1}
    assert any(n.startswith("nc = 1: the script sets nc only for some of its arguments")
               for n in plain.import_report["notes"])
    _same_decode(checkpoint.load(adapter.save_imported(plain, tmp_path / "g2.safetensors")), fx)
    assert _markers(tmp_path) == []
    with pytest.raises(AdapterError, match=r"does not know the script arguments \['--bogus'\]"):
        import_model(fx.weights, fx.class_ref, script_args=["--dataset", "mnist", "--bogus"])


def test_script_whose_class_needs_the_training_loop_says_why(tmp_path):
    src = tmp_path / "train.py"
    src.write_text("import torch\nfrom torch import nn\nimport sys\nsizes = []\n"
                   "for arg in sys.argv[1:]:\n    sizes.append(int(arg))\nwidth = sizes[0]\n"
                   "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                   "        self.fc = nn.Linear(4, width)\n    def forward(self, z):\n        return self.fc(z)\n")
    torch.save({"fc.weight": torch.zeros(16, 4), "fc.bias": torch.zeros(16)}, tmp_path / "w.pt")
    with pytest.raises(AdapterError, match=r"train\.py runs a training script when imported \(line 5: a loop\)"):
        import_model(tmp_path / "w.pt", f"{src}:Net")


# ------------------------------------------------------------ packages
def test_antixk_package_imports_and_reopens_from_another_working_directory(tmp_path, monkeypatch):
    fx = F.make_antixk_package(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    model = import_model(fx.weights, fx.class_ref, **fx.python)
    rep = model.import_report
    assert (rep["latent_dim"], rep["image_shape"], rep["encode"], rep["decode"]) == (8, [3, 64, 64], "encode",
                                                                                   "decode")
    assert rep["state_dict"] == "entry 'state_dict'" and rep["has_posterior"]  # Lightning's model. prefix gone
    assert str(tmp_path / "PyTorch-VAE") in model.config.search_path
    _same_decode(model, fx, tol=1e-6)
    out = adapter.save_imported(model, tmp_path / "vanilla.safetensors")
    import sys

    assert "models" not in sys.modules  # the repository's package did not leak into the process
    sys.modules["models"] = type(sys)("models")  # another repository's "models" package, already imported
    try:
        monkeypatch.chdir(tmp_path / "PyTorch-VAE" / "models")
        adapter.source._cache.clear()
        _same_decode(checkpoint.load(out), fx, tol=1e-6)
    finally:
        del sys.modules["models"]


# ------------------------------------------------------------ outputs of every common shape
def test_pythae_style_model_output_and_config_object(tmp_path):
    fx = F.make_pythae_style(tmp_path)
    model = import_model(fx.weights, fx.class_ref, **fx.python)
    rep = model.import_report
    assert (rep["encode"], rep["decode"], rep["image_shape"], rep["latent_dim"]) == ("encoder", "decoder",
                                                                                   [1, 8, 8], 4)
    assert rep["state_dict"] == "entry 'model_state_dict'" and model.capabilities.has_posterior
    x = torch.rand(3, 1, 8, 8)
    mu, logvar = model.encode_dist(x)
    with torch.no_grad():
        out = model.net.encoder(x)
    assert torch.equal(mu, out.embedding) and torch.equal(logvar, out.log_covariance)
    _same_decode(model, fx)
    with pytest.raises(AdapterError, match=r"model_config: VAEConfig has no field\(s\) latent_size; its fields: "
                                           r"input_dim, latent_dim, reconstruction_loss"):
        import_model(fx.weights, fx.class_ref, kwargs={"model_config": {"latent_size": 4}})


def test_diffusers_style_autoencoder_kl_sd_latents(tmp_path):
    fx = F.make_diffusers_style(tmp_path)
    model = import_model(fx.weights, fx.class_ref, data_shape=(3, 64, 64))
    rep = model.import_report
    assert (rep["latent_shape"], rep["latent_dim"], rep["image_shape"]) == ([4, 8, 8], 256, [3, 64, 64])
    assert rep["encode_input"] == "image" and rep["has_posterior"] and rep["warnings"] == []
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        dist = model.net.encode(x * 2 - 1).latent_dist
        assert torch.equal(model.encode(x), dist.mean.reshape(2, -1))
        assert torch.equal(model.encode_dist(x)[1], dist.logvar.reshape(2, -1))
    _same_decode(model, fx)
    # The mean, not a sample, whichever way it is named; and --encode-output is honoured while probing.
    named = import_model(fx.weights, fx.class_ref, data_shape=(3, 64, 64), encode_output="latent_dist.mean")
    assert named.import_report["latent_shape"] == [4, 8, 8]
    with pytest.raises(AdapterError, match=r"encode_output 'latent_dist.median'"):
        import_model(fx.weights, fx.class_ref, data_shape=(3, 64, 64), encode_output="latent_dist.median")


def test_encode_output_index_is_used_while_probing(tmp_path):
    src = tmp_path / "ae3.py"
    src.write_text("import torch\nfrom torch import nn\nclass AE(nn.Module):\n"
                   "    def __init__(self):\n        super().__init__()\n"
                   "        self.e = nn.Linear(64, 6)\n        self.d = nn.Linear(3, 64)\n"
                   "    def encode(self, x):\n        h = self.e(x.flatten(1))\n"
                   "        mu, logvar = h[:, :3], h[:, 3:]\n        return mu + torch.randn_like(mu), mu, logvar\n"
                   "    def decode(self, z):\n        return torch.sigmoid(self.d(z))\n")
    torch.manual_seed(0)
    net = adapter.load_class(src, "AE")()
    torch.save(net.state_dict(), tmp_path / "ae3.pt")
    model = import_model(tmp_path / "ae3.pt", f"{src}:AE", encode_output="1")
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.encode(x), net.encode(x)[1])
        assert torch.equal(model.encode(x), model.encode(x))  # deterministic: the mean, not the sample
    with pytest.raises(AdapterError, match=r"encode_output '5': the encoder returned 3 values"):
        import_model(tmp_path / "ae3.pt", f"{src}:AE", encode_output="5")


# ------------------------------------------------------------ fully convolutional latents, shapes
def test_conv_ae_with_8x2x2_codes_uses_the_datas_image_shape(tmp_path, digits):
    fx = F.make_conv_ae(tmp_path)
    model = import_model(fx.weights, fx.class_ref, data_shape=(1, 8, 8))
    assert (model.import_report["latent_shape"], model.image_shape) == ([8, 2, 2], (1, 8, 8))
    _same_decode(model, fx)
    x = torch.from_numpy(digits.images[:4]).float() / 255
    with torch.no_grad():
        assert torch.equal(model.encode(x), model.net.encoder(x).reshape(4, 32))
    # Without the data's shape it accepts several sizes: it picks one and says so, never silently.
    guess = import_model(fx.weights, fx.class_ref)
    assert any("accepts several image sizes" in w for w in guess.import_report["warnings"])
    # The user's own --latent-shape and --image-shape are checked against what the model really does.
    assert import_model(fx.weights, fx.class_ref, image_shape="1,8,8", latent_shape="8,2,2").latent_dim == 32
    with pytest.raises(AdapterError, match=r"encoder gives 32 values, --latent-shape has 12"):
        import_model(fx.weights, fx.class_ref, image_shape="1,8,8", latent_shape="3,2,2")


def test_decoded_shape_that_differs_from_the_data_is_never_silent(tmp_path):
    fx = F.make_dcgan_script(tmp_path)
    model = import_model(fx.weights, fx.class_ref, data_shape=(1, 8, 8), **fx.python)
    assert model.image_shape == (1, 16, 16)
    assert model.import_report["warnings"] == [
        ("the model makes images of shape [1, 16, 16] but the data set's are [1, 8, 8]; the check and the explorer "
        "resize the data to the model's size")]
    with pytest.raises(AdapterError, match=r"the decoder makes images of shape \[1, 16, 16\] \(256 values\) but "
                                           r"the image shape given is \[1, 8, 8\] \(64 values\)"):
        import_model(fx.weights, fx.class_ref, image_shape="1,8,8", **fx.python)


def test_cli_conv_ae_with_dataset_first_time(tmp_path, capsys):
    from explorer import cli

    fx = F.make_conv_ae(tmp_path)
    out = tmp_path / "conv.safetensors"
    code = cli.main(fx.cli(out))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["latent_shape"] == [8, 2, 2] and summary["image_shape"] == [1, 8, 8]
    assert summary["warnings"] == [] and summary["check"]["method"] == "encode"
    _same_decode(checkpoint.load(out), fx)


# ------------------------------------------------------------ constructors
def test_constructor_errors_show_the_real_signature(tmp_path):
    fx = F.make_container(tmp_path)
    with pytest.raises(AdapterError, match=r"takes no argument\(s\) latent_dim; its signature is "
                                           r"VAE\(x_dim=64, hidden=32, z_dim=4\)"):
        import_model(fx.weights, fx.class_ref, kwargs={"latent_dim": 4})
    src = tmp_path / "req.py"
    src.write_text("from torch import nn\nclass Dec(nn.Module):\n    def __init__(self, z_dim, width=8):\n"
                   "        super().__init__()\n        self.fc = nn.Linear(z_dim, 64)\n"
                   "    def forward(self, z):\n        return self.fc(z).sigmoid()\n")
    with pytest.raises(AdapterError, match=r"argument 'z_dim' is required; its signature is Dec\(z_dim, width=8\)"):
        import_model(fx.weights, f"{src}:Dec")


def test_module_level_instance_named_instead_of_a_class(tmp_path):
    fx = F.make_sequential_instance(tmp_path)
    model = import_model(fx.weights, fx.class_ref)
    assert model.import_report["state_dict"] == "entry 'G'" and model.import_report["output_range"] == "tanh"
    _same_decode(model, fx)
    loaded = checkpoint.load(adapter.save_imported(model, tmp_path / "g.safetensors"))
    _same_decode(loaded, fx)
    assert loaded.net is not model.net  # each model its own copy of the module-level instance
    with pytest.raises(AdapterError, match="ready-made nn.Module instance; it takes no --kwargs"):
        import_model(fx.weights, fx.class_ref, kwargs={"nz": 6})


# ------------------------------------------------------------ checkpoint containers
def test_training_container_with_namespace_numpy_and_cuda_tags(tmp_path):
    fx = F.make_container(tmp_path)
    raw = torch.load(fx.weights, map_location="cpu", weights_only=False)  # what a plain torch.load sees
    assert isinstance(raw["args"], argparse.Namespace) and isinstance(raw["epoch"], np.int64)
    model = import_model(fx.weights, fx.class_ref)
    assert model.import_report["state_dict"] == "entry 'state_dict'"
    _same_decode(model, fx)


def test_legacy_cuda_saved_tensors_load_on_cpu(tmp_path):
    fx = F.make_container(tmp_path)
    net = adapter.load_class(tmp_path / "vae.py", "VAE")()
    net.load_state_dict({k[len("module._orig_mod."):]: v
                         for k, v in adapter.read_state_dict(fx.weights)[0][1].items()})
    legacy = tmp_path / "legacy.pth"
    F.save_as_if_on_cuda({"model": net.state_dict(), "epoch": np.int64(3)}, legacy, legacy=True)
    with open(legacy, "rb") as fh:
        assert fh.read(1) == b"\x80"  # the pre-1.6 pickle format
    model = import_model(legacy, fx.class_ref)
    assert model.import_report["state_dict"] == "entry 'model'"
    _same_decode(model, fx)


def test_containers_that_would_run_code_are_still_refused(tmp_path):
    fx = F.make_container(tmp_path)
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {}, "callback": os.getcwd, "meta": {"when": __import__("datetime").date(2024, 1, 1)}},
               bad)
    with pytest.raises(AdapterError, match=r"holds pickled Python objects \(.*datetime\.date.*\) besides tensors"):
        import_model(bad, fx.class_ref)


def test_wrapper_keys_and_prefixes_found_without_flags(tmp_path):
    fx = F.make_container(tmp_path)
    sd = adapter.read_state_dict(fx.weights)[0][1]
    sd = {k[len("module._orig_mod."):]: v for k, v in sd.items()}
    cases = {
        "ema.pt": {"ema": {f"module.{k}": v for k, v in sd.items()}, "step": 10},
        "gan.pt": {"netG": {f"_orig_mod.{k}": v for k, v in sd.items()}, "netD": {"main.0.weight": torch.ones(2)}},
        "nested.pt": {"model": {"state_dict": {f"model.{k}": v for k, v in sd.items()}}},
        "lit.ckpt": {"state_dict": {**{f"generator.{k}": v for k, v in sd.items()},
                                    "discriminator.fc.weight": torch.ones(3)}},
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
        _same_decode(import_model(tmp_path / name, fx.class_ref), fx)


# ------------------------------------------------------------ ranges
def test_tanh_decoders_are_clamped_after_mapping():
    from explorer.core.adapter.model import map_output

    y = torch.tensor([-1.3, -1.0, 0.0, 1.0, 1.2])
    assert torch.equal(map_output(y, "tanh"), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_input_range_is_taken_from_the_data_when_the_guess_was_wrong(tmp_path, digits):
    # A trained AE whose decoder ends in tanh ([-1, 1] images) but whose encoder was trained on [0, 1]
    # images: the guess ([-1, 1] in, like the output) is wrong, and the round trip on real data says so.
    src = tmp_path / "mixed.py"
    src.write_text("import torch\nfrom torch import nn\nclass AE(nn.Module):\n"
                   "    def __init__(self):\n        super().__init__()\n"
                   "        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 6))\n"
                   "        self.decoder = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 64), nn.Tanh(),\n"
                   "                                     nn.Unflatten(1, (1, 8, 8)))\n")
    torch.manual_seed(0)
    net = adapter.load_class(src, "AE")()
    x = torch.from_numpy(digits.images[: digits.n_train]).float() / 255
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        xb = x[torch.randint(0, len(x), (128,), generator=g)]
        loss = torch.nn.functional.mse_loss(net.decoder(net.encoder(xb)), xb * 2 - 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(net.state_dict(), tmp_path / "mixed.pt")
    model = import_model(tmp_path / "mixed.pt", f"{src}:AE", data_shape=(1, 8, 8))
    assert (model.config.output_range, model.config.input_range) == ("tanh", "-11")  # the guess
    check = adapter.round_trip_check(model, digits.images[digits.n_train:])
    assert check["ranges_changed"]["input_range"] == "01" and check["ranges_changed"]["output_range"] == "tanh"
    assert (model.config.input_range, check["verdict"]) == ("01", "looks right"), check
    # Ranges the user gave are left alone.
    given = import_model(tmp_path / "mixed.pt", f"{src}:AE", data_shape=(1, 8, 8), input_range="-11",
                         output_range="tanh")
    assert adapter.round_trip_check(given, digits.images[digits.n_train:])["ranges_changed"] is None


# ------------------------------------------------------------ the real packages, when installed
def test_diffusers_autoencoder_kl_by_naming_its_class(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    (tmp_path / "sd_vae.py").write_text("from diffusers import AutoencoderKL\n")
    net = diffusers.AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1,
                                  norm_num_groups=4, latent_channels=4, sample_size=32).eval()
    net.save_pretrained(tmp_path / "vae")
    kwargs = {k: v for k, v in dict(net.config).items() if not k.startswith("_")}
    model = import_model(tmp_path / "vae" / "diffusion_pytorch_model.safetensors",
                         f"{tmp_path / 'sd_vae.py'}:AutoencoderKL", kwargs=json.loads(json.dumps(kwargs)),
                         data_shape=(3, 32, 32))
    assert model.import_report["latent_shape"] == [4, 16, 16] and model.import_report["has_posterior"]
    z = torch.randn(2, 4 * 16 * 16)
    with torch.no_grad():
        want = ((net.decode(z.view(2, 4, 16, 16)).sample + 1) / 2).clamp(0, 1)
        assert float((model.decode(z) - want).abs().max()) <= 1e-6


def test_pythae_vae_by_naming_its_class(tmp_path):
    pythae = pytest.importorskip("pythae")
    from pythae.models import VAE, VAEConfig

    net = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=4)).eval()
    torch.save({"model_state_dict": net.state_dict()}, tmp_path / "model.pt")
    src = tmp_path / "pythae_model.py"
    src.write_text("from pythae.models import VAE\n")
    model = import_model(tmp_path / "model.pt", f"{src}:VAE",
                         kwargs={"model_config": {"input_dim": [1, 28, 28], "latent_dim": 4}})
    assert (model.latent_dim, model.image_shape) == (4, (1, 28, 28))
    z = torch.randn(2, 4)
    with torch.no_grad():
        want = net.decoder(z)["reconstruction"].reshape(2, 1, 28, 28).clamp(0, 1)
        assert float((model.decode(z) - want).abs().max()) <= 1e-6
    del pythae


def test_kwargs_from_a_saved_config_json(tmp_path):
    fx = F.make_container(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "VAE", "_diffusers_version": "0.30.0",
                                                      "z_dim": 4, "hidden": 32}))
    model = import_model(fx.weights, fx.class_ref, kwargs=f"@{tmp_path / 'config.json'}")
    assert any("left out _class_name, _diffusers_version" in n for n in model.import_report["notes"])
    _same_decode(model, fx)
    with pytest.raises(AdapterError, match=r"--kwargs @.*missing\.json: cannot read"):
        import_model(fx.weights, fx.class_ref, kwargs=f"@{tmp_path / 'missing.json'}")


def test_inversion_verdict_is_calibrated_for_generators():
    # benchmarks/imports.py --calibrate: a trained DCGAN inverted 0.35 imported right, 0.74 with its output
    # range wrong, 3.3 untrained; an autoencoder's round trip keeps the stricter thresholds.
    assert adapter.verdict_for(0.35, "invert")[0] == "looks right"
    assert adapter.verdict_for(0.55, "invert")[0] == "looks right"
    assert adapter.verdict_for(0.74, "invert")[0] == "questionable"
    assert adapter.verdict_for(3.3, "invert")[0] == "looks wrong"
    assert adapter.verdict_for(0.55, "encode")[0] == "questionable"
