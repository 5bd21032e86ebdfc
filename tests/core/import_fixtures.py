"""Other people's models, written the way their authors write them, saved with plain PyTorch.

Each builder writes the model's source file(s) and weights into a folder, exactly as a user would have them
(no edits for us), and returns a :class:`Fixture`: what to pass to ``latent-explorer import`` and a reference
decoder (the original module, called the way its authors call it) to compare the import against. Used by
``tests/core/test_import_*.py`` and by ``benchmarks/imports.py`` (the figure of issue 14).

The builders keep the authors' structure and make the sizes small so that everything runs in seconds on a CPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# ------------------------------------------------------------ pytorch/examples vae/main.py (a script)
VAE_MAIN = '''
from __future__ import print_function
import argparse
from pathlib import Path
import torch
import torch.utils.data
from torch import nn, optim
from torch.nn import functional as F


parser = argparse.ArgumentParser(description='VAE MNIST Example')
parser.add_argument('--batch-size', type=int, default=128, metavar='N',
                    help='input batch size for training (default: 128)')
parser.add_argument('--epochs', type=int, default=10, metavar='N',
                    help='number of epochs to train (default: 10)')
parser.add_argument('--no-accel', action='store_true', default=False,
                    help='disables accelerator')
parser.add_argument('--seed', type=int, default=1, metavar='S',
                    help='random seed (default: 1)')
parser.add_argument('--log-interval', type=int, default=10, metavar='N',
                    help='how many batches to wait before logging training status')
args = parser.parse_args()

use_accel = not args.no_accel and torch.cuda.is_available()
torch.manual_seed(args.seed)
device = torch.device("cuda" if use_accel else "cpu")

kwargs = {'num_workers': 1, 'pin_memory': True} if use_accel else {}
Path(__file__).with_name("DATA_LOADED").touch()   # stands for datasets.MNIST('../data', download=True, ...)
train_loader = torch.utils.data.DataLoader(torch.rand(512, 1, 28, 28), batch_size=args.batch_size,
                                           shuffle=True, **kwargs)


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()

        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5*logvar)
        eps = torch.randn_like(std)
        return mu + eps*std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


model = VAE().to(device)
optimizer = optim.Adam(model.parameters(), lr=1e-3)


def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def train(epoch):
    model.train()
    Path(__file__).with_name("TRAINING_RAN").touch()
    for batch_idx, data in enumerate(train_loader):
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    for epoch in range(1, args.epochs + 1):
        train(epoch)
'''

# ------------------------------------------------------------ pytorch/examples dcgan/main.py (a script)
DCGAN_MAIN = '''
from __future__ import print_function
import argparse
import os
import random
from pathlib import Path
import torch
import torch.nn as nn
import torch.nn.parallel
import torch.optim as optim
import torch.utils.data


parser = argparse.ArgumentParser()
parser.add_argument('--dataset', required=True, help='cifar10 | lsun | mnist |imagenet | folder | lfw | fake')
parser.add_argument('--dataroot', required=False, help='path to dataset')
parser.add_argument('--batchSize', type=int, default=64, help='input batch size')
parser.add_argument('--imageSize', type=int, default=16, help='the height / width of the input image to network')
parser.add_argument('--nz', type=int, default=12, help='size of the latent z vector')
parser.add_argument('--ngf', type=int, default=8)
parser.add_argument('--ndf', type=int, default=8)
parser.add_argument('--niter', type=int, default=25, help='number of epochs to train for')
parser.add_argument('--cuda', action='store_true', default=False, help='enables cuda')
parser.add_argument('--ngpu', type=int, default=1, help='number of GPUs to use')
parser.add_argument('--netG', default='', help="path to netG (to continue training)")
parser.add_argument('--outf', default='.', help='folder to output images and model checkpoints')
parser.add_argument('--manualSeed', type=int, help='manual seed')

opt = parser.parse_args()
print(opt)

try:
    os.makedirs(opt.outf)
except OSError:
    pass

if opt.manualSeed is None:
    opt.manualSeed = random.randint(1, 10000)
print("Random Seed: ", opt.manualSeed)
random.seed(opt.manualSeed)
torch.manual_seed(opt.manualSeed)

if opt.dataroot is None and str(opt.dataset).lower() != 'fake':
    raise ValueError("`dataroot` parameter is required for dataset \\"%s\\"" % opt.dataset)

if opt.dataset in ['imagenet', 'folder', 'lfw']:
    Path(__file__).with_name("DATA_LOADED").touch()   # dset.ImageFolder(root=opt.dataroot, ...)
    dataset = torch.utils.data.TensorDataset(torch.rand(64, 3, opt.imageSize, opt.imageSize))
    nc = 3
elif opt.dataset == 'mnist':
    Path(__file__).with_name("DATA_LOADED").touch()   # dset.MNIST(root=opt.dataroot, download=True, ...)
    dataset = torch.utils.data.TensorDataset(torch.rand(64, 1, opt.imageSize, opt.imageSize))
    nc = 1

assert dataset

dataloader = torch.utils.data.DataLoader(dataset, batch_size=opt.batchSize, shuffle=True)

device = torch.device("cuda:0" if opt.cuda else "cpu")
ngpu = int(opt.ngpu)
nz = int(opt.nz)
ngf = int(opt.ngf)
ndf = int(opt.ndf)


# custom weights initialization called on netG and netD
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, ngpu):
        super(Generator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(     nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size. (ngf*4) x 4 x 4
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. (ngf*2) x 8 x 8
            nn.ConvTranspose2d(ngf * 2,      nc, 4, 2, 1, bias=False),
            nn.Tanh()
            # state size. (nc) x 16 x 16
        )

    def forward(self, input):
        if input.is_cuda and self.ngpu > 1:
            output = nn.parallel.data_parallel(self.main, input, range(self.ngpu))
        else:
            output = self.main(input)
        return output


netG = Generator(ngpu).to(device)
netG.apply(weights_init)
if opt.netG != '':
    netG.load_state_dict(torch.load(opt.netG))
print(netG)

optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
for epoch in range(opt.niter):
    Path(__file__).with_name("TRAINING_RAN").touch()
    for i, data in enumerate(dataloader, 0):
        netG.zero_grad()
        noise = torch.randn(data[0].size(0), nz, 1, 1, device=device)
        netG(noise).mean().backward()
        optimizerG.step()
    torch.save(netG.state_dict(), '%s/netG_epoch_%d.pth' % (opt.outf, epoch))
'''

# ------------------------------------------------------------ AntixK/PyTorch-VAE (a package)
ANTIXK_INIT = '''
from .base import *
from .vanilla_vae import *

# Aliases
VAE = VanillaVAE

vae_models = {'VanillaVAE': VanillaVAE}
'''
ANTIXK_TYPES = '''
from typing import List, Callable, Union, Any, TypeVar, Tuple
# from torch import tensor as Tensor

Tensor = TypeVar('torch.tensor')
'''
ANTIXK_BASE = '''
from .types_ import *
from torch import nn
from abc import abstractmethod


class BaseVAE(nn.Module):

    def __init__(self) -> None:
        super(BaseVAE, self).__init__()

    def encode(self, input: Tensor) -> List[Tensor]:
        raise NotImplementedError

    def decode(self, input: Tensor) -> Any:
        raise NotImplementedError

    def sample(self, batch_size:int, current_device: int, **kwargs) -> Tensor:
        raise NotImplementedError

    def generate(self, x: Tensor, **kwargs) -> Tensor:
        raise NotImplementedError

    @abstractmethod
    def forward(self, *inputs: Tensor) -> Tensor:
        pass

    @abstractmethod
    def loss_function(self, *inputs: Any, **kwargs) -> Tensor:
        pass
'''
ANTIXK_VANILLA = '''
import torch
from models import BaseVAE
from torch import nn
from torch.nn import functional as F
from .types_ import *


class VanillaVAE(BaseVAE):


    def __init__(self,
                 in_channels: int,
                 latent_dim: int,
                 hidden_dims: List = None,
                 **kwargs) -> None:
        super(VanillaVAE, self).__init__()

        self.latent_dim = latent_dim

        modules = []
        if hidden_dims is None:
            hidden_dims = [32, 64, 128, 256, 512]

        # Build Encoder
        for h_dim in hidden_dims:
            modules.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels=h_dim,
                              kernel_size= 3, stride= 2, padding  = 1),
                    nn.BatchNorm2d(h_dim),
                    nn.LeakyReLU())
            )
            in_channels = h_dim

        self.encoder = nn.Sequential(*modules)
        self.fc_mu = nn.Linear(hidden_dims[-1]*4, latent_dim)
        self.fc_var = nn.Linear(hidden_dims[-1]*4, latent_dim)


        # Build Decoder
        modules = []

        self.decoder_input = nn.Linear(latent_dim, hidden_dims[-1] * 4)

        hidden_dims.reverse()

        for i in range(len(hidden_dims) - 1):
            modules.append(
                nn.Sequential(
                    nn.ConvTranspose2d(hidden_dims[i],
                                       hidden_dims[i + 1],
                                       kernel_size=3,
                                       stride = 2,
                                       padding=1,
                                       output_padding=1),
                    nn.BatchNorm2d(hidden_dims[i + 1]),
                    nn.LeakyReLU())
            )



        self.decoder = nn.Sequential(*modules)

        self.final_layer = nn.Sequential(
                            nn.ConvTranspose2d(hidden_dims[-1],
                                               hidden_dims[-1],
                                               kernel_size=3,
                                               stride=2,
                                               padding=1,
                                               output_padding=1),
                            nn.BatchNorm2d(hidden_dims[-1]),
                            nn.LeakyReLU(),
                            nn.Conv2d(hidden_dims[-1], out_channels= 3,
                                      kernel_size= 3, padding= 1),
                            nn.Tanh())

    def encode(self, input: Tensor) -> List[Tensor]:
        result = self.encoder(input)
        result = torch.flatten(result, start_dim=1)

        # Split the result into mu and var components
        # of the latent Gaussian distribution
        mu = self.fc_mu(result)
        log_var = self.fc_var(result)

        return [mu, log_var]

    def decode(self, z: Tensor) -> Tensor:
        result = self.decoder_input(z)
        result = result.view(-1, self.last_channels, 2, 2)
        result = self.decoder(result)
        result = self.final_layer(result)
        return result

    @property
    def last_channels(self):
        return self.decoder_input.out_features // 4

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return eps * std + mu

    def forward(self, input: Tensor, **kwargs) -> List[Tensor]:
        mu, log_var = self.encode(input)
        z = self.reparameterize(mu, log_var)
        return  [self.decode(z), input, mu, log_var]

    def loss_function(self, *args, **kwargs) -> dict:
        recons, input, mu, log_var = args[0], args[1], args[2], args[3]
        recons_loss = F.mse_loss(recons, input)
        kld_loss = torch.mean(-0.5 * torch.sum(1 + log_var - mu ** 2 - log_var.exp(), dim = 1), dim = 0)
        return {'loss': recons_loss + kwargs['M_N'] * kld_loss}

    def sample(self, num_samples:int, current_device: int, **kwargs) -> Tensor:
        z = torch.randn(num_samples, self.latent_dim)
        return self.decode(z.to(current_device))

    def generate(self, x: Tensor, **kwargs) -> Tensor:
        return self.forward(x)[0]
'''

# ------------------------------------------------------------ pythae-style (ModelOutput, a config object)
PYTHAE_STYLE = '''
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Tuple, Union

import torch
from torch import nn


class ModelOutput(OrderedDict):
    """pythae.models.base.base_utils.ModelOutput: a dict whose entries are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)

    def __setattr__(self, name, value):
        self[name] = value


@dataclass
class VAEConfig:
    input_dim: Union[Tuple[int, ...], None] = None
    latent_dim: int = 10
    reconstruction_loss: str = "mse"


class Encoder_VAE_MLP(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.input_dim = args.input_dim
        self.layers = nn.Sequential(nn.Linear(int(torch.tensor(args.input_dim).prod()), 32), nn.ReLU())
        self.embedding = nn.Linear(32, args.latent_dim)
        self.log_var = nn.Linear(32, args.latent_dim)

    def forward(self, x):
        out = self.layers(x.reshape(-1, int(torch.tensor(self.input_dim).prod())))
        return ModelOutput(embedding=self.embedding(out), log_covariance=self.log_var(out))


class Decoder_AE_MLP(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.input_dim = args.input_dim
        self.layers = nn.Sequential(nn.Linear(args.latent_dim, 32), nn.ReLU(),
                                    nn.Linear(32, int(torch.tensor(args.input_dim).prod())), nn.Sigmoid())

    def forward(self, z):
        out = self.layers(z)
        return ModelOutput(reconstruction=out.reshape((z.shape[0],) + tuple(self.input_dim)))


class VAE(nn.Module):
    def __init__(self, model_config: VAEConfig, encoder=None, decoder=None):
        super().__init__()
        self.model_config = model_config
        self.latent_dim = model_config.latent_dim
        self.encoder = encoder if encoder is not None else Encoder_VAE_MLP(model_config)
        self.decoder = decoder if decoder is not None else Decoder_AE_MLP(model_config)

    def forward(self, inputs):
        x = inputs["data"]
        out = self.encoder(x)
        mu, log_var = out.embedding, out.log_covariance
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return ModelOutput(recon_x=self.decoder(z)["reconstruction"], z=z)
'''

# ------------------------------------------------------------ diffusers-style AutoencoderKL (SD latent (4, h, w))
DIFFUSERS_STYLE = '''
from dataclasses import dataclass
from collections import OrderedDict

import torch
from torch import nn


class BaseOutput(OrderedDict):
    def __post_init__(self):
        for f in self.__dataclass_fields__:
            v = getattr(self, f)
            if v is not None:
                self[f] = v


class DiagonalGaussianDistribution(object):
    def __init__(self, parameters, deterministic=False):
        self.parameters = parameters
        self.mean, self.logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(self.logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator=None):
        return self.mean + self.std * torch.randn(self.mean.shape, generator=generator)

    def mode(self):
        return self.mean


@dataclass
class AutoencoderKLOutput(BaseOutput):
    latent_dist: "DiagonalGaussianDistribution"


@dataclass
class DecoderOutput(BaseOutput):
    sample: torch.Tensor


class AutoencoderKL(nn.Module):
    """diffusers.AutoencoderKL's interface: 3 x 8h x 8w images in [-1, 1] <-> 4 x h x w latents."""

    def __init__(self, in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8)):
        super().__init__()
        layers, ch = [nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1)], block_out_channels[0]
        for out in block_out_channels[1:]:
            layers += [nn.SiLU(), nn.Conv2d(ch, out, 3, stride=2, padding=1)]
            ch = out
        self.encoder = nn.Sequential(*layers, nn.SiLU())
        self.quant_conv = nn.Conv2d(ch, 2 * latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        layers, ch = [nn.Conv2d(latent_channels, block_out_channels[-1], 3, padding=1)], block_out_channels[-1]
        for out in reversed(block_out_channels[:-1]):
            layers += [nn.SiLU(), nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch, out, 3, padding=1)]
            ch = out
        self.decoder = nn.Sequential(*layers, nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))

    def encode(self, x, return_dict=True):
        posterior = DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))
        if not return_dict:
            return (posterior,)
        return AutoencoderKLOutput(latent_dist=posterior)

    def decode(self, z, return_dict=True):
        dec = self.decoder(self.post_quant_conv(z))
        if not return_dict:
            return (dec,)
        return DecoderOutput(sample=dec)
'''

# ------------------------------------------------------------ a fully convolutional AE, (8, 2, 2) codes
CONV_AE = '''
import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    def __init__(self, channels=8):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),        # 8x8 -> 4x4
            nn.Conv2d(16, channels, 3, stride=2, padding=1),            # -> 2x2
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(channels, 16, 4, stride=2, padding=1), nn.ReLU(),   # 2x2 -> 4x4
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Sigmoid(),       # -> 8x8
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))
'''

# ------------------------------------------------------------ a module-level instance
SEQUENTIAL_G = '''
import torch.nn as nn

nz = 6
G = nn.Sequential(
    nn.Linear(nz, 32), nn.ReLU(),
    nn.Linear(32, 64), nn.Tanh(),
    nn.Unflatten(1, (1, 8, 8)),
)
'''

# ------------------------------------------------------------ a tutorial VAE class (plain module)
TUTORIAL_VAE = '''
import torch
from torch import nn
from torch.nn import functional as F


class VAE(nn.Module):
    def __init__(self, x_dim=64, hidden=32, z_dim=4):
        super().__init__()
        self.x_dim = x_dim
        self.fc1 = nn.Linear(x_dim, hidden)
        self.fc21 = nn.Linear(hidden, z_dim)
        self.fc22 = nn.Linear(hidden, z_dim)
        self.fc3 = nn.Linear(z_dim, hidden)
        self.fc4 = nn.Linear(hidden, x_dim)

    def encode(self, x):
        h1 = F.relu(self.fc1(x.view(-1, self.x_dim)))
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(mu), mu, logvar
'''


@dataclass
class Fixture:
    kind: str
    folder: Path
    weights: Path
    class_ref: str | None
    args: list[str] = field(default_factory=list)    # what the user types after WEIGHTS --class ...
    python: dict[str, Any] = field(default_factory=dict)  # the same for import_model()
    reference: Callable[[torch.Tensor], torch.Tensor] | None = None  # flat z -> images in [0, 1]
    latent_shape: tuple[int, ...] = ()
    image_shape: tuple[int, int, int] = (1, 8, 8)
    original: Any = None  # the authors' module the weights came from

    def cli(self, out: Path) -> list[str]:
        head = ["import", str(self.weights)] + (["--class", self.class_ref] if self.class_ref else [])
        return head + self.args + ["--out", str(out), "--no-progress"]

    def command(self) -> str:
        """The command as a user types it, in the fixture's folder."""
        parts = ["latent-explorer import", self.weights.name]
        if self.class_ref:
            file, _, name = self.class_ref.rpartition(":")
            parts += ["--class", f"{Path(file).relative_to(self.folder)}:{name}"]
        for a in self.args:
            parts.append(f"'{a}'" if (" " in a or "{" in a) else a)
        return " ".join(parts + ["--out", "model.safetensors"])


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _exec_source(path: Path) -> dict:
    """The authors' module, run the way *they* run it (for the reference decoder and the weights)."""
    import types

    name = f"_fixture_{path.stem}_{abs(hash(str(path)))}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102 - our own test code
    return module.__dict__


def _randomise_bn(net: torch.nn.Module) -> None:
    with torch.no_grad():  # trained-looking batch-norm statistics, so eval mode is not the identity
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.8, 1.5)


def _class_from_script(path: Path, name: str, argv: list[str]) -> type:
    """A script's class, as its author gets it after ``python main.py ARGV`` has defined it (the script's
    training part stripped by hand here, only to build the reference)."""
    text = path.read_text()
    cut = text.index("\nmodel = VAE()") if "model = VAE()" in text else text.index("\nnetG = Generator(")
    head = text[:cut]
    old = sys.argv
    sys.argv = [str(path), *argv]
    try:
        ns = _exec_source_text(head, path)
    finally:
        sys.argv = old
    return ns[name]


def _exec_source_text(text: str, path: Path) -> dict:
    namespace: dict[str, Any] = {"__name__": "_fixture_script", "__file__": str(path)}
    exec(compile(text, str(path), "exec"), namespace)  # noqa: S102
    return namespace


def make_vae_script(folder: Path) -> Fixture:
    src = _write(folder, "vae/main.py", VAE_MAIN)
    cls = _class_from_script(src, "VAE", [])
    (src.parent / "DATA_LOADED").unlink(missing_ok=True)
    torch.manual_seed(0)
    net = cls().eval()
    weights = src.parent / "vae.pth"
    torch.save(net.state_dict(), weights)
    return Fixture("pytorch/examples vae/main.py (a script)", folder, weights, f"{src}:VAE",
                   reference=lambda z: net.decode(z).view(len(z), 1, 28, 28), latent_shape=(20,),
                   image_shape=(1, 28, 28))


def make_dcgan_script(folder: Path) -> Fixture:
    src = _write(folder, "dcgan/main.py", DCGAN_MAIN)
    cls = _class_from_script(src, "Generator", ["--dataset", "mnist", "--dataroot", str(folder)])
    (src.parent / "DATA_LOADED").unlink(missing_ok=True)
    torch.manual_seed(1)
    net = cls(1)
    _randomise_bn(net)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):
                m.weight.normal_(0.0, 0.15)
    net.eval()
    weights = src.parent / "netG_epoch_24.pth"
    torch.save(net.state_dict(), weights)
    return Fixture("pytorch/examples dcgan/main.py (a script, nz/ngf module constants)", folder, weights,
                   f"{src}:Generator",
                   reference=lambda z: (net(z.view(len(z), 12, 1, 1)) + 1) / 2, latent_shape=(12, 1, 1),
                   image_shape=(1, 16, 16), original=net)


def make_antixk_package(folder: Path) -> Fixture:
    repo = folder / "PyTorch-VAE"
    _write(repo, "models/__init__.py", ANTIXK_INIT)
    _write(repo, "models/types_.py", ANTIXK_TYPES)
    _write(repo, "models/base.py", ANTIXK_BASE)
    src = _write(repo, "models/vanilla_vae.py", ANTIXK_VANILLA)
    _write(repo, "requirements.txt", "torch\n")
    sys.path.insert(0, str(repo))
    try:
        saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "models" or k.startswith("models.")}
        import importlib

        cls = importlib.import_module("models").VanillaVAE
        for k in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    finally:
        sys.path.remove(str(repo))
    torch.manual_seed(2)
    kw = {"in_channels": 3, "latent_dim": 8, "hidden_dims": [4, 4, 4, 4, 4]}
    net = cls(**kw)
    _randomise_bn(net)
    net.eval()
    weights = folder / "vanilla_vae.ckpt"
    # A Lightning checkpoint of the repository's VAEXperiment: the VAE is its `model`.
    torch.save({"epoch": 9, "global_step": 1000, "pytorch-lightning_version": "1.5.0",
                "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}}, weights)
    import json as _json

    return Fixture("AntixK/PyTorch-VAE package (models/vanilla_vae.py, Lightning .ckpt)", folder, weights,
                   f"{src}:VanillaVAE", args=["--kwargs", _json.dumps(kw)], python={"kwargs": kw},
                   reference=lambda z: (net.decode(z) + 1) / 2, latent_shape=(8,), image_shape=(3, 64, 64))


def make_pythae_style(folder: Path) -> Fixture:
    src = _write(folder, "pythae_vae.py", PYTHAE_STYLE)
    ns = _exec_source(src)
    torch.manual_seed(3)
    net = ns["VAE"](ns["VAEConfig"](input_dim=(1, 8, 8), latent_dim=4)).eval()
    weights = folder / "model.pt"
    torch.save({"model_state_dict": net.state_dict()}, weights)
    kw = {"model_config": {"name": "VAEConfig", "input_dim": [1, 8, 8], "latent_dim": 4}}
    import json as _json

    return Fixture("pythae-style VAE (ModelOutput, config object as JSON)", folder, weights, f"{src}:VAE",
                   args=["--kwargs", _json.dumps(kw)], python={"kwargs": kw},
                   reference=lambda z: net.decoder(z)["reconstruction"], latent_shape=(4,), image_shape=(1, 8, 8))


def make_diffusers_style(folder: Path) -> Fixture:
    src = _write(folder, "autoencoder_kl.py", DIFFUSERS_STYLE)
    ns = _exec_source(src)
    torch.manual_seed(4)
    net = ns["AutoencoderKL"]().eval()
    weights = folder / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    return Fixture("diffusers-style AutoencoderKL (latent_dist, .sample, SD latent (4,h,w))", folder, weights,
                   f"{src}:AutoencoderKL", args=["--image-shape", "3,64,64"], python={"image_shape": (3, 64, 64)},
                   reference=lambda z: ((net.decode(z.view(len(z), 4, 8, 8)).sample + 1) / 2).clamp(0, 1),
                   latent_shape=(4, 8, 8), image_shape=(3, 64, 64))


def make_conv_ae(folder: Path, digits_images: np.ndarray | None = None, steps: int = 0) -> Fixture:
    src = _write(folder, "conv_ae.py", CONV_AE)
    ns = _exec_source(src)
    torch.manual_seed(5)
    net = ns["ConvAutoencoder"]()
    if digits_images is not None and steps:
        x = torch.from_numpy(digits_images).float() / 255
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(steps):
            xb = x[torch.randint(0, len(x), (64,), generator=g)]
            loss = torch.nn.functional.mse_loss(net(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    weights = folder / "conv_ae.pth"
    torch.save(net.state_dict(), weights)
    return Fixture("conv AE, (8, 2, 2) codes (digits 8x8)", folder, weights, f"{src}:ConvAutoencoder",
                   args=["--dataset", "digits"], python={"data_shape": (1, 8, 8)},
                   reference=lambda z: net.decoder(z.view(len(z), 8, 2, 2)), latent_shape=(8, 2, 2),
                   image_shape=(1, 8, 8))


def make_container(folder: Path) -> Fixture:
    """A training script's checkpoint: weights of a DataParallel + torch.compile'd model next to the run's
    argparse.Namespace and numpy scalars, saved from a GPU (storages tagged cuda:0)."""
    src = _write(folder, "vae.py", TUTORIAL_VAE)
    ns = _exec_source(src)
    torch.manual_seed(6)
    net = ns["VAE"]().eval()
    state = {f"module._orig_mod.{k}": v for k, v in net.state_dict().items()}
    obj = {"epoch": np.int64(41), "best_loss": np.float32(81.5), "lr": np.float64(1e-3),
           "args": argparse.Namespace(z_dim=4, hidden=32, dataset="digits", betas=(0.9, 0.999)),
           "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
           "dtype": np.dtype("float32")}
    weights = folder / "checkpoint_best.pth.tar"
    save_as_if_on_cuda(obj, weights)
    return Fixture("training container (Namespace, numpy scalars, module./_orig_mod., CUDA-saved)", folder,
                   weights, f"{src}:VAE", reference=lambda z: net.decode(z).view(len(z), 1, 8, 8),
                   latent_shape=(4,), image_shape=(1, 8, 8))


def make_sequential_instance(folder: Path) -> Fixture:
    src = _write(folder, "gan_mlp.py", SEQUENTIAL_G)
    ns = _exec_source(src)
    torch.manual_seed(7)
    net = ns["G"]
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.6)
    weights = folder / "G.pth"
    torch.save({"G": net.state_dict(), "D": {"w": torch.zeros(3)}}, weights)
    return Fixture("module-level instance G = nn.Sequential(...) (tanh)", folder, weights, f"{src}:G",
                   reference=lambda z: (net(z) + 1) / 2, latent_shape=(6,), image_shape=(1, 8, 8))


def save_as_if_on_cuda(obj: Any, path: Path, legacy: bool = False) -> None:
    """torch.save as on a GPU machine: every storage is recorded with location "cuda:0" (what loading on a
    CPU-only machine must map back), written from this CPU-only one."""
    import torch.serialization as ser

    real = ser.location_tag

    def cuda_tag(storage: Any) -> str:
        return "cuda:0" if real(storage) == "cpu" else real(storage)

    ser.location_tag = cuda_tag
    try:
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    finally:
        ser.location_tag = real


BUILDERS = {
    "vae_script": make_vae_script,
    "dcgan_script": make_dcgan_script,
    "antixk_package": make_antixk_package,
    "pythae_style": make_pythae_style,
    "diffusers_style": make_diffusers_style,
    "conv_ae": make_conv_ae,
    "container": make_container,
    "sequential_instance": make_sequential_instance,
}


def max_decode_difference(model: Any, fixture: Fixture, n: int = 8, seed: int = 0) -> float:
    """max |import's decode(z) - the original's decode(z)| over ``n`` prior samples, in [0, 1] pixels."""
    d = math.prod(fixture.latent_shape)
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        got = model.decode(z)
        want = fixture.reference(z).reshape(got.shape).clamp(0, 1)
    return float((got - want).abs().max())
