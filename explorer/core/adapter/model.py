"""The "imported" model family: a user's module behind the :class:`LatentModel` interface."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models.base import Capabilities, LatentModel, ModelConfig, check_choice
from ..models.registry import register
from .errors import AdapterError
from .loading import load_archive
from .outputs import (
    image_from_decoder_output,
    latent_from_encoder_output,
    posterior_from_encoder_output,
)
from .source import construct, load_target
from .trust import check_trust, normal_call

OUTPUT_RANGES = ("auto", "01", "logits", "tanh")
INPUT_RANGES = ("auto", "01", "-11")
SOURCES = ("class", "torchscript", "export")
MAX_LATENT_VALUES = 1 << 20


@dataclass
class ImportedConfig(ModelConfig):
    """How to rebuild and call a user's model. Written to checkpoint metadata as JSON.

    * ``source``: "class" (``path`` is a .py file, ``class_name`` a class in it built with ``kwargs``, or a
      module-level ``nn.Module`` instance), "torchscript" or "export" (``path`` is the archive);
    * ``script_args``: a training script's own arguments (its argparse values), when the file is a script;
    * ``search_path``: folders the file needs on ``sys.path`` (its package's root, the repository's root),
      stored so that the checkpoint reopens from any working directory;
    * ``encode_method``: attribute called to encode ("" = no encoder); ``decode_method``: to decode
      ("forward" calls the module itself); dotted names reach submodules;
    * ``encode_input``: "image" (B, C, H, W) or "flat" (B, C*H*W); ``input_range``: "01" or "-11";
    * ``encode_output``: "auto" or the tuple index / key / attribute path of the mean in the encoder's output;
    * ``latent_shape``: what the decoder is given per sample: (d,), DCGAN's (nz, 1, 1), a conv AE's (8, 2, 2),
      an SD-style VAE's (4, h, w); the explorer works on the flattened vector, product = latent_dim;
    * ``output_range``: "01", "logits" or "tanh" (never "auto" here: resolved at import);
    * ``has_posterior``: the encoder also gives a spread (encode_dist works); ``generative``: N(0, I) samples
      are meaningful (VAEs and GANs, not plain autoencoders).
    """

    source: str = "class"
    path: str = ""
    class_name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    script_args: list[str] = field(default_factory=list)
    script_values: dict[str, Any] = field(default_factory=dict)
    search_path: list[str] = field(default_factory=list)
    encode_method: str = ""
    decode_method: str = "decode"
    encode_input: str = "image"
    encode_output: str = "auto"
    latent_shape: tuple[int, ...] = ()
    output_range: str = "01"
    input_range: str = "01"
    has_posterior: bool = False
    generative: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImportedConfig:
        d = dict(d)
        if isinstance(d.get("latent_shape"), list):
            d["latent_shape"] = tuple(d["latent_shape"])
        return super().from_dict(d)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["latent_shape"] = list(self.latent_shape)
        return d

    def validate(self) -> None:
        super().validate()
        check_choice("source", self.source, SOURCES)
        check_choice("output_range", self.output_range, OUTPUT_RANGES[1:])
        check_choice("input_range", self.input_range, INPUT_RANGES[1:])
        check_choice("encode_input", self.encode_input, ("image", "flat"))
        if not isinstance(self.path, str) or not self.path:
            raise ValueError("path (the model's class file or archive) must be given")
        if self.source == "class" and not (isinstance(self.class_name, str) and self.class_name.isidentifier()):
            raise ValueError(f"class_name must be a Python class name, got {self.class_name!r}")
        if not isinstance(self.kwargs, dict) or not all(isinstance(k, str) for k in self.kwargs):
            raise ValueError("kwargs must be a JSON object")
        for name in ("script_args", "search_path"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 64:
                raise ValueError(f"{name} must be a list of strings")
        if not isinstance(self.script_values, dict) or len(self.script_values) > 8 or not all(
                isinstance(k, str) and k.isidentifier() and isinstance(v, (int, float, str, bool))
                for k, v in self.script_values.items()):
            raise ValueError("script_values must map names to plain values")
        for name in ("encode_method", "decode_method", "encode_output"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string")
        if not self.decode_method:
            raise ValueError("decode_method must name the method that decodes")
        shape = tuple(self.latent_shape)
        if not shape or len(shape) > 4 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape):
            raise ValueError(f"latent_shape must be 1 to 4 positive integers, got {self.latent_shape!r}")
        if math.prod(shape) != self.latent_dim:
            raise ValueError(f"latent_shape {list(shape)} has {math.prod(shape)} values but latent_dim is "
                             f"{self.latent_dim}")
        if self.latent_dim > MAX_LATENT_VALUES:
            raise ValueError(f"latent_dim {self.latent_dim} is beyond the limit of {MAX_LATENT_VALUES}")

    def call(self) -> dict[str, Any]:
        """What rebuilding runs, as the trust store compares it."""
        return normal_call(self.class_name if self.source == "class" else "", self.kwargs, self.script_args)


def set_eval(net: nn.Module) -> None:
    try:
        net.eval()
    except NotImplementedError:
        pass  # a torch.export module: its graph was captured in the mode it was exported in


def build_module(config: ImportedConfig) -> nn.Module:
    """Rebuild the user's module from a config: only after the trust check (file hash and call)."""
    path = Path(config.path)
    if config.source == "class":
        if not path.exists():  # say so before the trust question: it is the real problem
            raise AdapterError(
                f"model class file {path} not found (this imported model references it for {config.class_name}: "
                "put it back, or import the model again)"
            )
        check_trust(str(path), what="Python file", call=config.call())
        target, module, info = load_target(path, config.class_name, config.script_args, config.search_path or None,
                                           config.script_values)
        return construct(target, config.kwargs, module, info["search_path"], info)[0]
    if not path.exists():
        raise AdapterError(f"model archive {path} not found (this imported model references it: put it back, or "
                           "import the model again)")
    check_trust(str(path), what="TorchScript archive" if config.source == "torchscript" else "torch.export archive")
    return load_archive(path, config.source)[0]


def resolve(net: nn.Module, name: str) -> Callable[[torch.Tensor], Any]:
    """``"forward"`` -> the module itself (so hooks run); ``"decoder.net"`` -> nested attributes."""
    if name == "forward":
        return net
    obj: Any = net
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AdapterError(f"{type(net).__name__} has no method or submodule {name!r}") from None
    if not callable(obj):
        raise AdapterError(f"{type(net).__name__}.{name} is not callable")
    return obj


def has_member(net: nn.Module, name: str) -> bool:
    if name == "forward":
        return True
    try:
        resolve(net, name)
        return True
    except AdapterError:
        return False


def map_output(y: torch.Tensor, output_range: str) -> torch.Tensor:
    """Decoder output -> images in [0, 1]."""
    y = y.float()
    if output_range == "logits":
        return torch.sigmoid(y)
    if output_range == "tanh":
        y = (y + 1.0) * 0.5  # a tanh decoder, or a linear [-1, 1] one (diffusers) that overshoots a little
    return y.clamp(0.0, 1.0)  # a no-op for sigmoid outputs; trims a linear decoder's overshoot


@register
class ImportedModel(LatentModel):
    """A user's module behind the LatentModel interface. Explored, never trained here.

    Built from its config alone (``build_model("imported", config)``, which is what ``checkpoint.load`` does),
    it reruns the user's class file / loads the archive; :func:`import_model` passes the module it already
    built and probed.
    """

    family = "imported"
    config_cls = ImportedConfig
    # The class-level default; each instance replaces it with what its encoder actually offers.
    capabilities = Capabilities(has_encoder=True, is_generative=True, trainable=False)
    config: ImportedConfig

    def __init__(self, config: ImportedConfig, module: nn.Module | None = None):
        super().__init__(config)
        self.net = module if module is not None else build_module(config)
        set_eval(self.net)
        self._refresh_capabilities()
        self.import_report: dict[str, Any] = {}

    def _refresh_capabilities(self) -> None:
        config = self.config
        self.capabilities = Capabilities(
            has_encoder=bool(config.encode_method),
            is_generative=bool(config.generative),
            has_posterior=bool(config.has_posterior and config.encode_method),
            trainable=False,
        )

    def train(self, mode: bool = True) -> ImportedModel:
        # Imported models are only explored: batch norm and dropout stay in inference mode whatever the caller
        # asks, so that every decode of the same z gives the same image. (Not nn.Module.train's recursion:
        # a torch.export module refuses train()/eval() outright.)
        self.training = bool(mode)
        set_eval(self.net)
        return self

    @property
    def _dtype(self) -> torch.dtype:
        for p in self.net.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    # ---- value ranges and layouts
    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.input_range == "-11":
            x = x * 2.0 - 1.0
        if self.config.encode_input == "flat":
            x = x.reshape(len(x), -1)
        return x.to(self._dtype)

    def _from_output(self, out: Any, n: int) -> torch.Tensor:
        y = image_from_decoder_output(out)
        if y.shape[0] != n or y[0].numel() != math.prod(self.image_shape):
            raise AdapterError(f"the decoder returned shape {tuple(y.shape)} for {n} codes; expected {n} images of "
                               f"{list(self.image_shape)}")
        return map_output(y.reshape(n, *self.image_shape), self.config.output_range)

    def _encoder_output(self, x: torch.Tensor) -> Any:
        if not self.config.encode_method:
            return super().encode(x)  # raises CapabilityError
        return resolve(self.net, self.config.encode_method)(self._to_input(x))

    # ---- the exploration interface
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        mu = latent_from_encoder_output(self._encoder_output(x), self.config.encode_output)
        return mu.reshape(len(x), -1).float()

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.capabilities.has_posterior:
            return super().encode_dist(x)
        out = self._encoder_output(x)
        pair = posterior_from_encoder_output(out, self.config.encode_output)
        if pair is None:
            return super().encode_dist(x)
        mu, logvar = pair
        return mu.reshape(len(x), -1).float(), logvar.reshape(len(x), -1).float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        # Not under no_grad: GAN inversion optimises z through this.
        n = len(z)
        zz = z.reshape(n, *self.config.latent_shape).to(self._dtype)
        return self._from_output(resolve(self.net, self.config.decode_method)(zz), n)

    def set_ranges(self, input_range: str | None = None, output_range: str | None = None) -> None:
        """Change how inputs and outputs are mapped (the round-trip check does, when the data says so)."""
        changes = {}
        if input_range is not None:
            changes["input_range"] = input_range
        if output_range is not None:
            changes["output_range"] = output_range
        self.config = self.config.replace(**changes)  # type: ignore[assignment]
        if self.import_report:
            self.import_report.update(changes)

    def extra_metadata(self) -> dict[str, Any]:
        what = f"{Path(self.config.path).name}:{self.config.class_name}" if self.config.source == "class" \
            else Path(self.config.path).name
        return {"imported": {"source": self.config.source, "model": what}}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["imported"] = {"source": self.config.source, "path": self.config.path,
                         "class_name": self.config.class_name or None,
                         "encode": self.config.encode_method or None, "decode": self.config.decode_method,
                         "latent_shape": list(self.config.latent_shape),
                         "output_range": self.config.output_range, "input_range": self.config.input_range}
        return d
