"""Bring your own model: wrap a user's PyTorch module as a :class:`LatentModel` (the "imported" family).

Researchers will not retrain in our format, so we adapt what they have:

* a weights file (a state dict, bare or inside a training container) plus their own code named as
  ``path/to/file.py:Name``: a class (with constructor arguments as JSON) or a module-level ``nn.Module``
  instance. The file may be a plain module, part of a package, or a training script (which is never run as a
  whole: see :mod:`.source`);
* a TorchScript archive whose ``encode``/``decode`` are ``@torch.jit.export`` methods, or a ``torch.export``
  archive of a decoder/generator: no Python class needed.

::

    from explorer.core.adapter import import_model, round_trip_check

    model = import_model("vae.pth", "models/vae.py:VAE", kwargs={"z_dim": 20}, data_shape=(1, 28, 28))
    model.import_report                   # what was found: methods, latent shape, image shape, value ranges
    check = round_trip_check(model, images_uint8)
    check["verdict"]                      # "looks right" / "questionable" / "looks wrong"
    save_imported(model, "vae.safetensors", check=check, dataset="mnist")   # checkpoint.load() rebuilds it

The package, by what is inside:

* :mod:`.loading`: weights files, their containers (with an allow-list of harmless pickled types), wrapper
  keys and key prefixes, archives;
* :mod:`.source`: running the user's file safely (packages, scripts), finding the class, its arguments;
* :mod:`.outputs`: what encoders and decoders return, normalised; output-range detection;
* :mod:`.probe`: latent and image shapes, methods, ranges of a fresh module;
* :mod:`.model`: :class:`ImportedConfig` and :class:`ImportedModel`, registered as family "imported";
* :mod:`.trust`: which code checkpoints may run (sha256-keyed, revocable) and the question to ask;
* :mod:`.importing`: :func:`import_model`; :mod:`.check`: :func:`round_trip_check`, :func:`save_imported`.

A checkpoint saved from an imported model holds the weights and the adapter settings (class file path, class
name, kwargs, script arguments, methods, ranges, shapes); the code is referenced, never embedded or pickled.
Loading such a checkpoint runs that code, so :func:`checkpoint.load` only does so when this user trusts the
file as it is now, with those arguments (importing trusts it; otherwise :class:`UntrustedCodeError`, and
:func:`trust_question` says what to ask).
"""

from .check import THRESHOLDS, fix_ranges, round_trip_check, save_imported, verdict_for
from .errors import AdapterError, UntrustedCodeError
from .importing import import_model, inspect_source
from .loading import SAFE_GLOBALS, align_keys, read_state_dict, source_kind
from .model import INPUT_RANGES, OUTPUT_RANGES, ImportedConfig, ImportedModel
from .outputs import (detect_output_range, image_from_decoder_output, infer_image_shape,
                      latent_from_encoder_output, posterior_from_encoder_output)
from .source import list_classes, load_class, load_target, parse_class_ref, signature_text
from .trust import (TrustQuestion, check_trust, code_fingerprint, is_trusted, revoke_trust, trust_code,
                    trust_question, trust_store_path, trusted_code)

__all__ = [
    "AdapterError",
    "INPUT_RANGES",
    "ImportedConfig",
    "ImportedModel",
    "OUTPUT_RANGES",
    "SAFE_GLOBALS",
    "THRESHOLDS",
    "TrustQuestion",
    "UntrustedCodeError",
    "align_keys",
    "check_trust",
    "code_fingerprint",
    "detect_output_range",
    "fix_ranges",
    "image_from_decoder_output",
    "import_model",
    "infer_image_shape",
    "inspect_source",
    "is_trusted",
    "latent_from_encoder_output",
    "list_classes",
    "load_class",
    "load_target",
    "parse_class_ref",
    "posterior_from_encoder_output",
    "read_state_dict",
    "revoke_trust",
    "round_trip_check",
    "save_imported",
    "signature_text",
    "source_kind",
    "trust_code",
    "trust_question",
    "trust_store_path",
    "trusted_code",
    "verdict_for",
]
