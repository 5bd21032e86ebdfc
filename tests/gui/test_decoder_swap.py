"""The compare tab's decoder swap: A's images through B's decoder, the shared-encoder note, training a pair."""

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.core import swap as C
from explorer.core import save_model
from explorer.core.export import to_frames
from explorer.core.models import build_model
from explorer.gui.views.image_panel import grid

SIZE = 16
TINY_PAIR = {"count": 240, "size": SIZE, "latent_dim": 8, "hidden": (64,), "epochs": 2}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only waits on shared cores
    try:
        ma, mb = C.train_face_style_pair(**TINY_PAIR)
    finally:
        torch.set_num_threads(threads)
    return C.save_swap_pair(ma, mb, folder / "style-a.safetensors", folder / "style-b.safetensors")


def _open(window, *paths):
    for p in paths:
        assert window.open_model(str(p))
    by_path = {e.path: e for e in window.entries}
    return [by_path[str(p)] for p in paths]


def test_swap_strip_is_a_through_b(window, pair, tmp_path):
    ea, eb = _open(window, *pair)
    assert window.arithmetic.vectors_error.text() == ""  # style data sets give vectors for what varies
    assert "smiling" in ea.vectors
    view = window.compare.swap
    # A saved pair opened from disk is recognised by its metadata and shown as a pair at once.
    assert (view.entry_a(), view.entry_b()) == (ea, eb) and view.rows is not None
    # Both open models are offered; A must have an encoder, B any model.
    assert [view.combo_a.itemData(i) for i in range(view.combo_a.count())] == [str(p) for p in pair]
    view.select(ea, eb)
    assert view.error.text() == ""
    assert ea.data is not None and ea.data.name == "faces-style-a"
    assert len(ea.data) == TINY_PAIR["count"]  # the faces the pair was trained on, so its held-out ones are too
    rows = C.swap_examples(ea.data, view.count)
    assert rows.min() >= ea.data.n_train  # held-out faces
    images = ea.data.images[rows]
    expected = to_frames(C.decoder_swap(ea.model, eb.model, images))
    assert view.rows.shape == (3, view.count, SIZE, SIZE, 3)
    np.testing.assert_array_equal(view.rows[0], to_frames(images))
    np.testing.assert_array_equal(view.rows[1], to_frames(C.decoder_swap(ea.model, ea.model, images)))
    np.testing.assert_array_equal(view.rows[2], expected)
    # What is on screen is that strip: three rows of `count` images.
    np.testing.assert_array_equal(view.strip.last_array, grid(view.rows.reshape(-1, SIZE, SIZE, 3), view.count))
    assert np.abs(view.rows[2].astype(int) - view.rows[0].astype(int)).mean() > 10  # B drew them otherwise
    assert view.shared and "share one encoder" in view.note.text()

    path = tmp_path / "swap.png"
    view.export(str(path))
    with Image.open(path) as im:
        f = -(-112 // SIZE)  # enlarged as the CLI does
        assert im.size == (view.count * (SIZE * f + 2) + 2, 3 * (SIZE * f + 2) + 2)


def test_swap_notes_and_errors(window, pair, digits_vae, tmp_path):
    stranger = build_model("ae", latent_dim=8, image_shape=(3, SIZE, SIZE), hidden=(64,))
    other = save_model(stranger, tmp_path / "stranger.safetensors", dataset="faces-style-b")
    ea, es, ed = _open(window, pair[0], other, digits_vae)
    view = window.compare.swap
    view.select(ea, es)
    assert view.rows is not None and not view.shared
    assert "do not share an encoder" in view.note.text()
    np.testing.assert_array_equal(view.rows[2], to_frames(C.decoder_swap(ea.model, es.model, ea.data.images[
        C.swap_examples(ea.data, view.count)])))
    view.select(ea, ed)  # 8x8 grey digits: not swappable
    assert view.rows is None and "but the decoder draws [1, 8, 8]" in view.error.text()
    assert view.strip.last_array is None
    # Closing a model takes it out of the choices.
    window.model_list.setCurrentRow(1)
    window.close_current()
    assert view.combo_b.count() == 2 and view.entry_a() is ea


def test_train_face_style_pair_opens_both(window, tmp_path):
    window.training.checkpoint_dir = tmp_path / "ckpt"
    view = window.compare.swap
    view.pair_options = dict(TINY_PAIR)
    fractions = []
    view.progress.valueChanged.connect(fractions.append)
    view.train_pair()
    files = sorted((tmp_path / "ckpt" / "face-styles").glob("*.safetensors"))
    assert [f.name.startswith(s) for f, s in zip(files, ("faces-style-a", "faces-style-b"))] == [True, True]
    assert fractions and max(fractions) == 1000 and not view.training and view.progress.isHidden()
    assert [e.path for e in window.entries] == [str(f) for f in files]
    ea, eb = window.entries
    assert view.entry_a() is ea and view.entry_b() is eb
    assert C.shares_encoder(ea.model, eb.model) and eb.meta["swap_pair"]["partner"] == files[0].name
    assert view.rows is not None and view.shared


def test_cancel_training_saves_nothing(window, tmp_path):
    window.training.checkpoint_dir = tmp_path / "ckpt"
    view = window.compare.swap
    view.pair_options = {**TINY_PAIR, "epochs": 50}
    view.progress.valueChanged.connect(lambda v: v > 0 and view.cancel_training())  # Cancel at the first step
    view.train_pair()
    assert "cancelled" in view.note.text() and not view.training
    assert not list((tmp_path / "ckpt").rglob("*.safetensors")) and not window.entries
