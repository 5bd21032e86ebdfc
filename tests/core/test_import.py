"""Bring your own model: tutorial-style classes written by the test, imported without edits.

The VAE is the PyTorch examples' MLP VAE (encode returns mu and logvar, decode a flat sigmoid vector of 784),
the generator the PyTorch DCGAN tutorial's (ConvTranspose2d stack, z of shape (B, nz, 1, 1), tanh output),
both made smaller through their constructor arguments so that the file runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import threading
import zipfile

import numpy as np
import pytest
import torch

from explorer.core import adapter, checkpoint
from explorer.core.adapter import AdapterError, UntrustedCodeError, import_model, round_trip_check
from explorer.core.inversion import images_to_latents, invert, mean_image_baseline
from explorer.core.latent import Cancelled

VAE_SRC = '''
import torch
from torch import nn
from torch.nn import functional as F


class VAE(nn.Module):
    """pytorch/examples vae/main.py, with the sizes as arguments."""

    def __init__(self, x_dim=784, hidden=400, z_dim=20):
        super().__init__()
        self.x_dim = x_dim
        self.fc1 = nn.Linear(x_dim, hidden)
        self.fc21 = nn.Linear(hidden, z_dim)
        self.fc22 = nn.Linear(hidden, z_dim)
        self.fc3 = nn.Linear(z_dim, hidden)
        self.fc4 = nn.Linear(hidden, x_dim)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.x_dim))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar
'''

DCGAN_SRC = '''
import torch.nn as nn


class Generator(nn.Module):
    """The PyTorch DCGAN tutorial's generator, one upsampling block shorter (16x16 images)."""

    def __init__(self, nz=100, ngf=64, nc=3):
        super(Generator, self).__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)
'''

SCRIPTED_SRC = '''
import torch
from torch import nn


class ConvAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
        self.dec = nn.Linear(3, 64)

    @torch.jit.export
    def encode(self, x):
        return self.enc(x)

    @torch.jit.export
    def decode(self, z):
        return self.dec(z).view(-1, 1, 8, 8)  # logits

    def forward(self, x):
        return self.decode(self.encode(x))
'''

GAN_KWARGS = {"nz": 16, "ngf": 8, "nc": 1}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models and batches: threads only add synchronisation, and on a shared 2-core machine two torch
    # threads competing with other processes run the training and inversion loops several times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_trust_store(tmp_path_factory, monkeypatch):
    # Trusted class files are recorded in the user's config folder: keep the tests out of the real one.
    monkeypatch.setenv("LATENT_EXPLORER_CONFIG", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setattr(adapter.trust, "_session", {})
    monkeypatch.setattr(adapter.trust, "_pending", {})


def _module_from(path, name):
    return adapter.load_class(path, name)


@pytest.fixture
def vae_files(tmp_path):
    src = tmp_path / "vae_model.py"
    src.write_text(VAE_SRC)
    torch.manual_seed(0)
    net = _module_from(src, "VAE")(hidden=32, z_dim=6).eval()
    weights = tmp_path / "vae.pth"
    torch.save(net.state_dict(), weights)
    return src, weights, net


@pytest.fixture
def gan_files(tmp_path):
    src = tmp_path / "dcgan.py"
    src.write_text(DCGAN_SRC)
    torch.manual_seed(1)
    net = _module_from(src, "Generator")(**GAN_KWARGS)
    with torch.no_grad():  # trained-looking batch-norm statistics, so eval mode is not the identity
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.8, 1.5)
            if isinstance(m, torch.nn.ConvTranspose2d):
                m.weight.mul_(3.0)  # images that vary with z as a trained generator's do, not near-constant ones
    net.eval()
    weights = tmp_path / "netG.pth"
    torch.save(net.state_dict(), weights)
    return src, weights, net


# ------------------------------------------------------------ tutorial classes, no edits
def test_mlp_vae_imports_and_decodes_identically(vae_files, tmp_path):
    src, weights, net = vae_files
    model = import_model(weights, f"{src}:VAE", kwargs={"hidden": 32, "z_dim": 6})
    rep = model.import_report
    assert (model.latent_dim, model.image_shape) == (6, (1, 28, 28))
    assert rep["encode"] == "encode" and rep["decode"] == "decode" and rep["encode_input"] == "flat"
    assert rep["output_range"] == "01" and rep["has_posterior"]
    assert model.capabilities.has_encoder and model.capabilities.has_posterior
    z = torch.randn(5, 6)
    with torch.no_grad():
        assert torch.equal(model.decode(z), net.decode(z).view(5, 1, 28, 28))
        x = torch.rand(5, 1, 28, 28)
        mu, logvar = net.encode(x.view(5, 784))
        assert torch.equal(model.encode(x), mu)
        got_mu, got_lv = model.encode_dist(x)
        assert torch.equal(got_mu, mu) and torch.equal(got_lv, logvar)

    # Our checkpoint, loaded through the normal path, decodes identically too.
    out = adapter.save_imported(model, tmp_path / "vae.safetensors")
    doc = checkpoint.inspect(out)
    assert doc["family"] == "imported" and doc["config"]["class_name"] == "VAE"
    assert doc["config"]["path"] == str(src.resolve()) and doc["config"]["kwargs"] == {"hidden": 32, "z_dim": 6}
    assert "reparameterize" not in json.dumps(doc)  # the class is referenced, never embedded
    loaded = checkpoint.load(out)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), net.decode(z).view(5, 1, 28, 28))
        assert torch.equal(loaded.encode(x), mu)


def test_dcgan_generator_imports_and_decodes_identically(gan_files, tmp_path):
    src, weights, net = gan_files
    model = import_model(weights, f"{src}:Generator", kwargs=GAN_KWARGS)
    rep = model.import_report
    assert (model.latent_dim, model.image_shape) == (16, (1, 16, 16))
    assert rep["latent_shape"] == [16, 1, 1] and rep["decode"] == "forward" and rep["encode"] is None
    assert rep["output_range"] == "tanh"
    assert not model.capabilities.has_encoder and model.capabilities.is_generative
    z = torch.randn(4, 16)
    with torch.no_grad():
        expected = (net(z.view(4, 16, 1, 1)) + 1.0) * 0.5
        assert torch.equal(model.decode(z), expected)
    model.train()  # batch norm stays in inference mode: imported models are explored, not trained
    with torch.no_grad():
        assert torch.equal(model.decode(z), expected)
    loaded = checkpoint.load(adapter.save_imported(model, tmp_path / "gan.safetensors"))
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), expected)
    assert not loaded.capabilities.has_encoder


def test_wrapped_state_dicts_prefixes_and_safetensors(vae_files, tmp_path):
    from safetensors.torch import save_file

    src, _, net = vae_files
    sd = net.state_dict()
    cases = {
        "lightning.ckpt": {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in sd.items()}},
        "dp.pt": {"model": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {"state": {}}},
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    z = torch.randn(3, 6)
    for name in [*cases, "w.safetensors"]:
        model = import_model(tmp_path / name, f"{src}:VAE", kwargs={"hidden": 32, "z_dim": 6})
        with torch.no_grad():
            assert torch.equal(model.decode(z), net.decode(z).view(3, 1, 28, 28)), name


def test_user_given_settings_override_detection(gan_files):
    src, weights, net = gan_files
    model = import_model(weights, f"{src}:Generator", kwargs=GAN_KWARGS, latent_dim=16, image_shape="1,16,16",
                         output_range="logits", decode_method="main")
    assert model.import_report["decode"] == "main"
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.allclose(model.decode(z), torch.sigmoid(net(z.view(2, 16, 1, 1))), atol=1e-6)


# ------------------------------------------------------------ clear errors
def test_import_errors_name_the_problem(vae_files, tmp_path):
    src, weights, net = vae_files
    kw = {"hidden": 32, "z_dim": 6}
    with pytest.raises(AdapterError, match="not found"):
        import_model(weights, f"{tmp_path / 'missing.py'}:VAE", kwargs=kw)
    with pytest.raises(AdapterError, match=r"no class 'Vae'.*VAE"):
        import_model(weights, f"{src}:Vae", kwargs=kw)
    with pytest.raises(AdapterError, match="FILE.py:ClassName"):
        import_model(weights, str(src), kwargs=kw)
    with pytest.raises(AdapterError, match=r"shape mismatch.*fc21\.weight"):
        import_model(weights, f"{src}:VAE", kwargs={"hidden": 32, "z_dim": 4})
    with pytest.raises(AdapterError, match=r"cannot construct VAE: it takes no argument\(s\) width; its signature "
                                           r"is VAE\(x_dim=784, hidden=400, z_dim=20\)"):
        import_model(weights, f"{src}:VAE", kwargs={"width": 3})
    with pytest.raises(AdapterError, match="not valid JSON"):
        import_model(weights, f"{src}:VAE", kwargs="{hidden: 32}")
    gan = tmp_path / "dcgan.py"
    gan.write_text(DCGAN_SRC)
    with pytest.raises(AdapterError, match=r"missing \d+ \(main\.0\.weight.*unexpected \d+ \(fc1\.weight"):
        import_model(weights, f"{gan}:Generator", kwargs=GAN_KWARGS)
    torch.save(net, tmp_path / "whole.pt")  # a pickled module, not a state dict: refused, never unpickled
    with pytest.raises(AdapterError, match="pickled Python objects"):
        import_model(tmp_path / "whole.pt", f"{src}:VAE", kwargs=kw)
    with pytest.raises(AdapterError, match="--class"):
        import_model(weights)
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nclass VAE(torch.nn.Module:\n    pass\n")
    with pytest.raises(AdapterError, match="broken.py line 2: syntax error"):
        import_model(weights, f"{broken}:VAE")


def test_checkpoint_whose_class_file_is_gone_or_untrusted(vae_files, tmp_path, monkeypatch):
    src, weights, _ = vae_files
    model = import_model(weights, f"{src}:VAE", kwargs={"hidden": 32, "z_dim": 6})
    out = adapter.save_imported(model, tmp_path / "vae.safetensors")

    # Opening a checkpoint never runs code the user did not choose: an unknown class file is refused...
    monkeypatch.setenv("LATENT_EXPLORER_CONFIG", str(tmp_path / "other-user"))
    monkeypatch.setattr(adapter.trust, "_session", {})
    with pytest.raises(UntrustedCodeError, match="not trusted on this computer") as err:
        checkpoint.load(out)
    assert err.value.path == str(src.resolve())
    adapter.trust_code(err.value.path)  # ...until trusted (what the explorer's dialog does)
    assert adapter.is_trusted(src) and checkpoint.load(out).latent_dim == 6
    assert str(src.resolve()) in (tmp_path / "other-user" / "trusted_code.json").read_text()

    src.unlink()
    with pytest.raises(checkpoint.CheckpointError, match=r"model class file .*vae_model\.py not found"):
        checkpoint.load(out)


# ------------------------------------------------------------ archives, no Python class
def test_torchscript_archive_with_exported_encode_decode(tmp_path):
    src = tmp_path / "scripted.py"
    src.write_text(SCRIPTED_SRC)
    torch.manual_seed(2)
    net = adapter.load_class(src, "ConvAE")().eval()
    with pytest.warns(FutureWarning):  # torch deprecates TorchScript; the archives still exist and load
        scripted = torch.jit.script(net)
    archive = tmp_path / "convae.pt"
    scripted.save(str(archive))
    assert adapter.source_kind(archive) == "torchscript"
    model = import_model(archive, output_range="logits")
    assert (model.latent_dim, model.image_shape) == (3, (1, 8, 8))
    assert model.import_report["encode"] == "encode" and model.import_report["encode_input"] == "image"
    x, z = torch.rand(4, 1, 8, 8), torch.randn(4, 3)
    with torch.no_grad():
        assert torch.allclose(model.encode(x), net.encode(x), atol=1e-6)
        assert torch.allclose(model.decode(z), torch.sigmoid(net.decode(z)), atol=1e-6)
        loaded = checkpoint.load(adapter.save_imported(model, tmp_path / "ts.safetensors"))
        assert torch.allclose(loaded.decode(z), torch.sigmoid(net.decode(z)), atol=1e-6)
    with pytest.raises(AdapterError, match="archive, not a state dict"):
        import_model(archive, f"{src}:ConvAE")


def test_torch_export_archive_of_a_generator(gan_files, tmp_path):
    _, _, net = gan_files
    program = torch.export.export(net, (torch.randn(2, 16, 1, 1),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    archive = tmp_path / "netG.pt2"
    torch.export.save(program, str(archive))
    assert adapter.source_kind(archive) == "export"
    model = import_model(archive)
    assert (model.latent_dim, model.image_shape, model.import_report["output_range"]) == (16, (1, 16, 16), "tanh")
    z = torch.randn(3, 16)
    with torch.no_grad():
        expected = (net(z.view(3, 16, 1, 1)) + 1) * 0.5
        assert torch.allclose(model.decode(z), expected, atol=1e-6)
        loaded = checkpoint.load(adapter.save_imported(model, tmp_path / "exp.safetensors"))
        assert torch.allclose(loaded.decode(z), expected, atol=1e-6)


# ------------------------------------------------------------ does the import make sense?
def _train_vae_on_digits(net, images, steps=250):
    """The examples' training loop with a KL weight of 0.1: a fair reconstruction after a few hundred steps."""
    x = torch.from_numpy(images.reshape(len(images), -1)).float() / 255.0
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(steps):
        xb = x[torch.randint(0, len(x), (128,), generator=g)]
        recon, mu, logvar = net(xb)
        bce = torch.nn.functional.binary_cross_entropy(recon, xb, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        opt.zero_grad()
        ((bce + 0.1 * kld) / len(xb)).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def trained_digits_vae(tmp_path_factory, digits):
    tmp_path = tmp_path_factory.mktemp("digits_vae")
    src = tmp_path / "vae_model.py"
    src.write_text(VAE_SRC)
    torch.manual_seed(0)
    net = adapter.load_class(src, "VAE")(x_dim=64, hidden=64, z_dim=8)
    untrained = tmp_path / "untrained.pth"
    torch.save(net.state_dict(), untrained)
    _train_vae_on_digits(net, digits.images[: digits.n_train])
    weights = tmp_path / "digits_vae.pth"
    torch.save(net.state_dict(), weights)
    return src, weights, untrained


def test_round_trip_check_tells_right_from_wrong(trained_digits_vae, digits):
    src, weights, untrained = trained_digits_vae
    kw = {"x_dim": 64, "hidden": 64, "z_dim": 8}
    test_images = digits.images[digits.n_train:]
    good = round_trip_check(import_model(weights, f"{src}:VAE", kwargs=kw), test_images)
    assert good["verdict"] == "looks right" and good["ratio"] < 0.5, good
    assert good["method"] == "encode" and good["images"] == 256
    bad = round_trip_check(import_model(untrained, f"{src}:VAE", kwargs=kw), test_images)
    assert bad["verdict"] == "looks wrong" and bad["ratio"] >= 1.0, bad


# ------------------------------------------------------------ GAN inversion
def test_inversion_recovers_images_the_generator_made(gan_files):
    src, weights, _ = gan_files
    model = import_model(weights, f"{src}:Generator", kwargs=GAN_KWARGS)
    z_true = torch.randn(10, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        targets = model.decode(z_true)
    calls = []
    result = invert(model, targets, steps=150, restarts=3, batch_size=6, progress=lambda d, t: calls.append((d, t)))
    baseline = mean_image_baseline(targets)
    assert result.z.shape == (10, 16) and result.errors.shape == (10,)
    assert float(result.errors.mean()) < 0.05 * baseline, (result.errors, baseline)
    assert float(result.errors.max()) < 0.25 * baseline, (result.errors, baseline)
    with torch.no_grad():  # the returned codes really reconstruct, and the reported errors are theirs
        recon = model.decode(torch.from_numpy(result.z))
        assert np.allclose(((recon - targets) ** 2).flatten(1).mean(1).numpy(), result.errors, atol=1e-6)
    assert calls[-1] == (300, 300)  # 2 batches x 150 steps
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again

    z, errors, how = images_to_latents(model, (targets[:3].numpy() * 255).round().astype(np.uint8), steps=20)
    assert how == "invert" and z.shape == (3, 16) and errors.shape == (3,)


def test_inversion_cancel_and_bad_input(gan_files):
    src, weights, _ = gan_files
    model = import_model(weights, f"{src}:Generator", kwargs=GAN_KWARGS)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        invert(model, torch.rand(2, 1, 16, 16), cancel=cancel)
    with pytest.raises(ValueError, match="expects"):
        invert(model, torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="steps"):
        invert(model, torch.rand(2, 1, 16, 16), steps=0)


# ------------------------------------------------------------ the CLI, end to end
def test_cli_import_end_to_end(trained_digits_vae, tmp_path, capsys):
    from explorer import cli

    src, weights, _ = trained_digits_vae
    out = tmp_path / "mine.safetensors"
    code = cli.main(["import", str(weights), "--class", f"{src}:VAE", "--kwargs",
                            '{"x_dim": 64, "hidden": 64, "z_dim": 8}', "--dataset", "digits", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert "looks right" in stdout and "latent_dim 8" in stdout
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["check"]["verdict"] == "looks right" and summary["latent_dim"] == 8
    doc = checkpoint.inspect(out)
    assert doc["dataset"] == "digits" and doc["import_check"]["verdict"] == "looks right"
    assert checkpoint.load(out).image_shape == (1, 8, 8)
    with zipfile.ZipFile(weights) as zf:  # the user's files are left as they were
        assert any(n.endswith("data.pkl") for n in zf.namelist())

    code = cli.main(["import", str(weights), "--class", f"{src}:Nope", "--out", str(tmp_path / "x.safetensors")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "no class 'Nope'" in err and len(err.strip().splitlines()) == 1
    code = cli.main(["import", str(weights), "--class", f"{src}:VAE", "--image-shape", "2,8,8", "--out", "x.safetensors"])
    assert code == 1 and "C = 1 or 3" in capsys.readouterr().err


def test_cli_import_generator_checks_by_inversion(gan_files, tmp_path, capsys):
    from explorer import cli

    src, weights, _ = gan_files
    out = tmp_path / "gan.safetensors"
    code = cli.main(["import", str(weights), "--class", f"{src}:Generator", "--kwargs", json.dumps(GAN_KWARGS),
                            "--dataset", "digits", "--check-images", "4", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["encode"] is None and summary["check"]["method"] == "invert" and summary["check"]["images"] == 4
    assert "round trip (inversion)" in captured.out  # a random generator cannot draw digits: whatever the verdict
    assert not checkpoint.load(out).capabilities.has_encoder


# ------------------------------------------------------------ what an import wizard needs
def test_wizard_helpers_and_package_relative_imports(tmp_path):
    pkg = tmp_path / "repo" / "my_research_nets"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "blocks.py").write_text(
        "from torch import nn\n\ndef mlp(i, o):\n    return nn.Sequential(nn.Linear(i, o), nn.ReLU())\n")
    (pkg / "ae.py").write_text(
        "from torch import nn\nfrom .blocks import mlp\n\n\n"
        "class AE(nn.Module):\n"
        "    def __init__(self, z_dim, hidden=16, *, act='relu'):\n"
        "        super().__init__()\n"
        "        self.encoder = nn.Sequential(mlp(64, hidden), nn.Linear(hidden, z_dim))\n"
        "        self.decoder = nn.Sequential(nn.Linear(z_dim, 64), nn.Sigmoid())\n"
    )
    info = adapter.inspect_source(pkg / "ae.py")
    assert info["kind"] == "python" and [c["name"] for c in info["classes"]] == ["AE"]
    assert info["classes"][0]["params"] == [{"name": "z_dim", "default": None, "required": True},
                                            {"name": "hidden", "default": 16, "required": False},
                                            {"name": "act", "default": "relu", "required": False}]
    torch.manual_seed(0)
    net = adapter.load_class(pkg / "ae.py", "AE")(z_dim=3).eval()  # relative imports: loaded in its package
    torch.save(net.state_dict(), tmp_path / "ae.pt")
    assert adapter.inspect_source(tmp_path / "ae.pt") == {"path": str(tmp_path / "ae.pt"), "kind": "state_dict",
                                                          "needs_class": True}
    model = import_model(tmp_path / "ae.pt", f"{pkg / 'ae.py'}:AE", kwargs={"z_dim": 3})
    assert (model.latent_dim, model.image_shape, model.import_report["encode"]) == (3, (1, 8, 8), "encoder")
    assert not model.capabilities.is_generative  # a plain autoencoder: prior samples mean little
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.encode(x), net.encoder(x.view(2, 64)))
