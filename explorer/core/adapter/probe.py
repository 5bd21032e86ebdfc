"""Working out how to call a fresh module: methods, latent shape (any rank), image shape, value ranges.

With an encoder, the shapes come from a round trip on dummy images: the data set's real image shape when one
is known, else the common sizes (28, 32, 64 pixels, grey and RGB). The encoder's code keeps its shape, so a
conv AE's (8, 2, 2) or an SD-style (4, h, w) latent is found as it is, and a size is accepted only when the
decoder gives back an image of the size that went in. Without an encoder (a GAN), zeros of the sizes the
weights suggest are decoded as (d,), (d, 1, 1) and, for a convolutional first layer, (c, s, s).

The image shape always comes from the decoder's real output; when it differs from the data's, the import
fails (an ``image_shape`` the user gave) or warns, naming both shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..models.base import check_choice
from .errors import AdapterError
from .model import INPUT_RANGES, OUTPUT_RANGES, has_member, resolve, set_eval
from .outputs import (
    detect_output_range,
    image_from_decoder_output,
    infer_image_shape,
    latent_from_encoder_output,
    posterior_from_encoder_output,
)

DECODE_CANDIDATES = ("decode", "decoder", "generate", "generator", "netG", "G", "forward")
ENCODE_CANDIDATES = ("encode", "encoder")
# Constructor arguments / attributes that usually hold the latent size, tried before the layer sizes.
LATENT_NAMES = ("latent_dim", "z_dim", "zdim", "nz", "latent_size", "latent_dims", "dim_z", "n_latent",
                "latent", "code_size", "code_dim", "embedding_dim", "bottleneck", "latent_channels", "z_channels")
COMMON_IMAGE_SHAPES = ((1, 28, 28), (3, 32, 32), (1, 32, 32), (3, 64, 64), (1, 64, 64), (3, 28, 28))
COMMON_SIDES = (28, 32, 64, 16, 8, 128, 256)
SPATIAL_SIDES = (1, 2, 4, 7, 8, 16, 32)
PROBE_BATCH = 2  # > 1 so that BatchNorm1d layers left in training mode by a user's code still run
MAX_PROBES = 48


def _exc_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _try(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[Any, BaseException | None]:
    try:
        with torch.no_grad():
            return fn(x), None
    except Exception as exc:  # a wrong guess fails inside the user's code with any error type
        return None, exc


def _dtype(net: nn.Module) -> torch.dtype:
    return next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)


def _int_hints(net: nn.Module, kwargs: Mapping[str, Any]) -> list[int]:
    hints = []
    for name in LATENT_NAMES:
        for value in (kwargs.get(name), getattr(net, name, None) if not isinstance(net, torch.jit.ScriptModule)
                      else None):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                hints.append(value)
    return hints


def _first_conv_in(module: Any) -> int | None:
    """in_channels of the first convolution a decoder module applies (its weights' order), if any."""
    if not isinstance(module, nn.Module):
        return None
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return int(m.in_channels)
        if isinstance(m, nn.Linear):
            return None
    return None


def _size_candidates(net: nn.Module, decoder: Any, kwargs: Mapping[str, Any]) -> list[int]:
    """Latent sizes worth trying: hints by name first, then every layer's input size, smallest first (the
    latent is usually the narrowest input in the network)."""
    sizes: set[int] = set()
    modules = [decoder] if isinstance(decoder, nn.Module) and decoder is not net else []
    modules.append(net)
    decoder_smallest: list[int] = []  # a decoder submodule's narrowest input is the best guess of all
    for mod in modules:
        for value in mod.state_dict().values():
            if not value.is_floating_point():
                continue
            if value.ndim == 2:
                sizes.add(int(value.shape[1]))  # Linear: (out, in)
            elif value.ndim in (3, 4, 5):
                sizes.update((int(value.shape[0]), int(value.shape[1])))  # Conv: (out, in); ConvT: (in, out)
        if mod is decoder and sizes:
            decoder_smallest = sorted(sizes)[:1]
    ordered = _int_hints(net, kwargs) + decoder_smallest + sorted(sizes)
    return list(dict.fromkeys(v for v in ordered if v > 0))


def _out_shape(y: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(v) for v in y.shape[1:])


def image_shape_of(y: torch.Tensor, given: tuple[int, int, int] | None) -> tuple[int, int, int]:
    per = y[0]
    numel = per.numel()
    if given is not None:
        if math.prod(given) != numel:
            raise AdapterError(f"the decoder makes images of shape {list(per.shape)} ({numel} values) but the image "
                               f"shape given is {list(given)} ({math.prod(given)} values)")
        return given
    if per.ndim == 3 and per.shape[0] in (1, 3):
        return tuple(int(v) for v in per.shape)  # type: ignore[return-value]
    if per.ndim == 2:
        return (1, int(per.shape[0]), int(per.shape[1]))
    shape = infer_image_shape(numel)
    if shape is None:
        raise AdapterError(f"the decoder makes {numel} values per image ({tuple(per.shape)}), which is no square "
                           "grayscale or RGB image; give --image-shape C,H,W")
    return shape


def parse_shape(value: Any, what: str, *, image: bool) -> tuple[int, ...] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            raise AdapterError(f"{what} {value!r}: expected numbers separated by commas, e.g. "
                               f"{'1,28,28' if image else '8,2,2'}") from None
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise AdapterError(f"{what} {value!r}: expected a list of integers") from None
    if image and (len(shape) != 3 or any(v < 1 or v > 4096 for v in shape) or shape[0] not in (1, 3)):
        raise AdapterError(f"{what} {list(shape)}: expected C,H,W with C = 1 or 3, e.g. 1,28,28")
    if not image and (not 1 <= len(shape) <= 4 or any(v < 1 for v in shape) or math.prod(shape) > 1 << 20):
        raise AdapterError(f"{what} {list(shape)}: expected 1 to 4 positive sizes, e.g. 8,2,2")
    return shape


def pick_decode(net: nn.Module, wanted: str) -> list[str]:
    if wanted not in ("", "auto"):
        if not has_member(net, wanted):
            raise AdapterError(f"{type(net).__name__} has no method or submodule {wanted!r} to decode with")
        return [wanted]
    names = [n for n in DECODE_CANDIDATES if has_member(net, n)]
    if any(has_member(net, n) for n in ENCODE_CANDIDATES):
        # forward is a decoder only for generator-like classes; an autoencoder's forward reconstructs.
        names.remove("forward")
    return names


def pick_encode(net: nn.Module, wanted: str | None, decode_name: str) -> str:
    if wanted in ("none", ""):
        return ""
    if wanted not in (None, "auto"):
        if not has_member(net, wanted):
            raise AdapterError(f"{type(net).__name__} has no method or submodule {wanted!r} to encode with")
        return wanted
    for name in ENCODE_CANDIDATES:
        if name != decode_name and has_member(net, name):
            return name
    return ""


class _Budget:
    def __init__(self, n: int) -> None:
        self.left = n

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


def _decode_try(decode: Any, shape: tuple[int, ...], dtype: torch.dtype, errors: list[str]) -> torch.Tensor | None:
    out, exc = _try(decode, torch.zeros(PROBE_BATCH, *shape, dtype=dtype))
    if exc is not None:
        errors.append(f"z {list(shape)}: {_exc_line(exc)}")
        return None
    try:
        y = image_from_decoder_output(out)
    except AdapterError as bad:
        errors.append(f"z {list(shape)}: {bad}")
        return None
    if y.ndim < 2 or y.shape[0] != PROBE_BATCH:
        errors.append(f"z {list(shape)}: output shape {tuple(y.shape)} has no batch of {PROBE_BATCH}")
        return None
    return y


def _encode_try(net: nn.Module, name: str, image_shape: tuple[int, int, int], input_range: str, select: str,
                errors: list[str]) -> tuple[str, Any, torch.Tensor] | None:
    encode = resolve(net, name)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(PROBE_BATCH, *image_shape, generator=gen)
    if input_range in ("-11", "tanh"):
        x = x * 2 - 1
    x = x.to(_dtype(net))
    for layout, batch in (("image", x), ("flat", x.reshape(PROBE_BATCH, -1))):
        out, exc = _try(encode, batch)
        if exc is not None:
            errors.append(f"{layout} {list(batch.shape)}: {_exc_line(exc)}")
            continue
        try:
            z = latent_from_encoder_output(out, select)
        except AdapterError as bad:
            if select not in ("auto", ""):
                raise
            errors.append(f"{layout}: {bad}")
            continue
        if isinstance(z, torch.Tensor) and z.ndim >= 2 and z.shape[0] == PROBE_BATCH:
            zshape = tuple(int(v) for v in z.shape[1:])
            if layout == "image" and len(zshape) >= 2 and zshape[:-1] == tuple(image_shape[:len(zshape) - 1]):
                # A Linear layer applied over the last axis of an image batch: it runs, but it is no encoding
                errors.append(f"{layout}: code {list(zshape)} keeps the image's leading axes")
                continue
            return layout, out, z
        errors.append(f"{layout}: code shape {tuple(getattr(z, 'shape', ()))}")
    return None


def _latent_shapes(zshape: tuple[int, ...]) -> list[tuple[int, ...]]:
    if len(zshape) > 1:
        d = math.prod(zshape)
        return [zshape] + [s for s in ((d,), (d, 1, 1)) if s != zshape]
    return [zshape, (zshape[0], 1, 1)]


def _spatial_shapes(decoder: Any, sizes: Sequence[int], target: tuple[int, int, int] | None) -> list[tuple[int, ...]]:
    c = _first_conv_in(decoder)
    if c is None:
        return []
    out = []
    for s in SPATIAL_SIDES:
        if s > 1:
            out.append((c, s, s))
    return out


def _probe_with_encoder(net: nn.Module, decode: Any, enc_name: str, candidates: Sequence[tuple[int, int, int]],
                        latent_shape: tuple[int, ...] | None, input_range: str, select: str, budget: _Budget
                        ) -> tuple[list[dict[str, Any]], list[str]]:
    """Round trips on dummy images of each candidate shape: those where the decoder gives back the size that
    went in (all of them, so that a fully convolutional model's choice can be reported)."""
    errors: list[str] = []
    found = []
    dtype = _dtype(net)
    for shape in candidates:
        if not budget.take():
            break
        enc = _encode_try(net, enc_name, shape, input_range, select, errors)
        if enc is None:
            continue
        layout, out, z = enc
        zshape = tuple(int(v) for v in z.shape[1:])
        shapes = [latent_shape] if latent_shape else _latent_shapes(zshape)
        if latent_shape and math.prod(latent_shape) != math.prod(zshape):
            errors.append(f"image {list(shape)}: the encoder gives {math.prod(zshape)} values, --latent-shape has "
                          f"{math.prod(latent_shape)}")
            continue
        for ls in shapes:
            y = _decode_try(decode, ls, dtype, errors)
            if y is None:
                continue
            if y[0].numel() == math.prod(shape):
                found.append({"image": shape, "latent_shape": ls, "layout": layout, "encoder_out": out, "y": y})
            else:
                errors.append(f"image {list(shape)} -> code {list(zshape)} -> decoded {list(_out_shape(y))}")
            break
        if found and len(found) >= 3:
            break
    return found, errors


def _probe_decoder_only(net: nn.Module, decode: Any, sizes: Sequence[int], target: tuple[int, int, int] | None,
                        latent_shape: tuple[int, ...] | None, budget: _Budget) -> tuple[dict[str, Any], list[str]]:
    errors: list[str] = []
    dtype = _dtype(net)
    decoder_mod = decode if isinstance(decode, nn.Module) else getattr(decode, "__self__", net)
    if latent_shape:
        y = _decode_try(decode, latent_shape, dtype, errors)
        if y is None:
            raise AdapterError(f"decoding zeros of the latent shape given {list(latent_shape)} failed ({errors[0]})")
        return {"latent_shape": latent_shape, "y": y}, errors
    first: dict[str, Any] | None = None
    shapes: list[tuple[int, ...]] = []
    for d in sizes:
        shapes += [(d,), (d, 1, 1)]
    shapes += _spatial_shapes(decoder_mod if decoder_mod is not net else net, sizes, target)
    for shape in dict.fromkeys(shapes):
        if not budget.take():
            break
        y = _decode_try(decode, shape, dtype, errors)
        if y is None:
            continue
        hit = {"latent_shape": shape, "y": y}
        if target is None:
            if len(shape) == 3 and shape[1] > 1 and _side(y) not in COMMON_SIDES:
                first = first or hit
                continue  # a spatial latent of a size that makes an unusual image: keep looking
            return hit, errors
        if y[0].numel() == math.prod(target):
            return hit, errors
        first = first or hit
    if first is not None:
        return first, errors
    raise AdapterError("could not find the latent size: decoding zeros failed for every size tried ("
                       + "; ".join(errors[:3]) + "). Give it with --latent-dim N or --latent-shape C,H,W")


def _side(y: torch.Tensor) -> int:
    return int(y.shape[-1]) if y.ndim >= 3 else math.isqrt(int(y[0].numel()))


def setup(net: nn.Module, *, kwargs: Mapping[str, Any], image_shape: tuple[int, int, int] | None,
          data_shape: tuple[int, int, int] | None, latent_dim: int | None, latent_shape: tuple[int, ...] | None,
          encode_method: str | None, decode_method: str, output_range: str, input_range: str,
          encode_output: str, example_latent: tuple[int, ...] | None, seed: int = 0) -> dict[str, Any]:
    """Work out how to call ``net``: the settings of an :class:`ImportedConfig` plus a report for the user.

    ``image_shape`` is a requirement (an error when the decoder makes something else); ``data_shape`` (the
    data set's images) is tried first and warned about when the model makes another shape.
    """
    set_eval(net)
    notes: list[str] = []
    warnings_: list[str] = []
    failures: list[str] = []
    if latent_shape is None and example_latent is not None:
        latent_shape = example_latent
    if latent_shape is not None and latent_dim is not None and math.prod(latent_shape) != latent_dim:
        raise AdapterError(f"--latent-shape {list(latent_shape)} has {math.prod(latent_shape)} values but "
                           f"--latent-dim is {latent_dim}")
    target = image_shape or data_shape
    budget = _Budget(MAX_PROBES)
    chosen = None
    for name in pick_decode(net, decode_method):
        decode = resolve(net, name)
        enc_name = pick_encode(net, encode_method, name)
        try:
            if enc_name:
                candidates = [image_shape] if image_shape else list(dict.fromkeys(
                    ([data_shape] if data_shape else []) + list(COMMON_IMAGE_SHAPES)))
                found, errors = _probe_with_encoder(net, decode, enc_name, candidates,
                                                    latent_shape or ((latent_dim,) if latent_dim else None),
                                                    input_range, encode_output, budget)
                if not found and not image_shape:
                    # A size none of the common ones has (8x8 digits): the decoder's own output says it.
                    try:
                        sizes = [latent_dim] if latent_dim else _size_candidates(net, decode, kwargs)
                        hit, _ = _probe_decoder_only(net, decode, sizes, None, latent_shape, budget)
                        guess = image_shape_of(hit["y"], None)
                    except AdapterError:
                        guess = None
                    if guess is not None and guess not in candidates:
                        candidates.append(guess)
                        more, errors2 = _probe_with_encoder(net, decode, enc_name, [guess],
                                                            latent_shape or ((latent_dim,) if latent_dim else None),
                                                            input_range, encode_output, _Budget(2))
                        found += more
                        errors += errors2
                if not found:
                    tried = ", ".join("x".join(map(str, c)) for c in candidates)
                    raise AdapterError(
                        f"no round trip through {enc_name}/{name} gave back the image size that went in (tried "
                        f"{tried}: " + "; ".join(errors[:3]) + "). Give --image-shape C,H,W (or --dataset), "
                        "or --latent-shape")
                pick = found[0]
                if not image_shape and not data_shape and len(found) > 1:
                    sizes = ", ".join("x".join(map(str, f["image"])) for f in found)
                    warnings_.append(
                        f"the model accepts several image sizes ({sizes}); {'x'.join(map(str, pick['image']))} "
                        "was chosen. Give --dataset or --image-shape C,H,W to use the data's own size")
            else:
                if latent_dim is not None and latent_shape is None:
                    sizes = [latent_dim]
                else:
                    sizes = _size_candidates(net, decode, kwargs)
                pick, errors = _probe_decoder_only(net, decode, sizes, target, latent_shape, budget)
        except AdapterError as exc:
            failures.append(f"{name}: {exc}")
            continue
        chosen = (name, enc_name, pick)
        break
    if chosen is None:
        if not failures:
            raise AdapterError(f"{type(net).__name__} has no decode/decoder/generate/generator method; name the "
                               "decoding method with --decode")
        raise AdapterError(failures[0].partition(": ")[2] if len(failures) == 1
                           else "no way to decode worked: " + " | ".join(failures))
    decode_name, enc_name, pick = chosen
    decode = resolve(net, decode_name)
    found_latent = tuple(pick["latent_shape"])
    img_shape = image_shape_of(pick["y"], image_shape)
    latent = math.prod(found_latent)
    if data_shape is not None and tuple(img_shape) != tuple(data_shape):
        warnings_.append(f"the model makes images of shape {list(img_shape)} but the data set's are "
                         f"{list(data_shape)}; the check and the explorer resize the data to the model's size")

    encode_input = pick.get("layout", "image")
    has_posterior = False
    if enc_name:
        encoder_out = pick["encoder_out"]
        has_posterior = posterior_from_encoder_output(encoder_out, encode_output) is not None
        if encode_output == "auto" and isinstance(encoder_out, (tuple, list)) and len(encoder_out) > 2:
            notes.append(f"the encoder returns {len(encoder_out)} values; the first is used as the code "
                         "(set --encode-output to another index if that is a sample rather than the mean)")

    # Output range, judged on decoded prior samples (what the explorer will show).
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(16 if latent > 4096 else 64, *found_latent, generator=gen).to(_dtype(net))
    out, exc = _try(decode, z)
    if exc is not None:
        raise AdapterError(f"decoding a batch of prior samples failed: {_exc_line(exc)}")
    samples = image_from_decoder_output(out)
    if output_range == "auto":
        out_range, reason = detect_output_range(samples)
    else:
        check_choice("output_range", output_range, OUTPUT_RANGES)
        out_range, reason = output_range, "given"
    if input_range == "auto":
        in_range = "-11" if out_range == "tanh" else "01"
    else:
        in_range = {"tanh": "-11"}.get(input_range, input_range)
        check_choice("input_range", in_range, INPUT_RANGES)
    if enc_name and input_range == "auto" and in_range == "-11":
        notes.append("the encoder is given images in [-1, 1] like the decoder's tanh output "
                     "(the round-trip check switches to [0, 1] if the data says so)")
    if not bool(torch.isfinite(samples).all()):
        notes.append("some decoded prior samples are NaN or infinite")

    return {
        "settings": {
            "latent_dim": latent, "image_shape": tuple(img_shape), "encode_method": enc_name,
            "decode_method": decode_name, "encode_input": encode_input, "encode_output": encode_output,
            "latent_shape": found_latent, "output_range": out_range, "input_range": in_range,
            "has_posterior": has_posterior, "generative": (not enc_name) or has_posterior,
        },
        "output_range_reason": reason,
        "ranges_given": {"output": output_range != "auto", "input": input_range != "auto"},
        "notes": notes,
        "warnings": warnings_,
    }
