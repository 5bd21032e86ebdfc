"""File › Import your own model with the kinds of issue 14: the data set's own image shape is probed first
(a fully convolutional AE), and a training script's class imports without running the script."""

import numpy as np
import torch

from tests.core import import_fixtures as F


def _import(dialog, fx, dataset):
    dialog.weights.setText(str(fx.weights))
    file, _, name = fx.class_ref.rpartition(":")
    dialog.class_file.setText(file)
    dialog._list_classes()
    dialog.class_name.setCurrentText(name)
    dialog.dataset.setCurrentText(dataset)
    dialog.run_import()
    assert dialog.error.text() == "", dialog.error.text()
    return dialog.model


def test_dialog_imports_a_conv_ae_at_the_datas_image_size(window, tmp_path, digits):
    fx = F.make_conv_ae(tmp_path)
    model = _import(window.show_import_dialog(), fx, "digits")
    assert model.import_report["latent_shape"] == [8, 2, 2] and model.image_shape == (1, 8, 8)
    assert F.max_decode_difference(model, fx) == 0.0


def test_dialog_imports_a_training_scripts_class(window, tmp_path):
    fx = F.make_vae_script(tmp_path)
    dialog = window.show_import_dialog()
    model = _import(dialog, fx, "mnist")
    assert (model.latent_dim, model.image_shape) == (20, (1, 28, 28))
    assert not any(p.name in ("TRAINING_RAN", "DATA_LOADED") for p in tmp_path.rglob("*"))
    assert "runs a training script when imported" in dialog.report.toPlainText()
    z = torch.randn(2, 20)
    assert np.isfinite(model.decode(z).detach().numpy()).all()
