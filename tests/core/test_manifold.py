"""The decoded manifold: tiles decoded at map positions, with known answers from PCA and a learned inverse."""

import threading

import numpy as np
import pytest
import torch

from explorer.core.data.digits import load_digits_data
from explorer.core.latent.encoding import encode_dataset
from explorer.core.latent.manifold import (GREY, aligned_manifolds, decode_manifold, grid_shape, side_by_side,
                                           tile_centres, unapply_alignment)
from explorer.core.latent.projection import PCAProjection, TSNEProjection
from explorer.core.models.pca import PCA, PCAConfig
from explorer.core.progress import Cancelled


@pytest.fixture(scope="module")
def digits():
    return load_digits_data()


def _pca_model(data, k):
    model = PCA(PCAConfig(latent_dim=k, image_shape=tuple(data.images.shape[1:])))
    model.fit(torch.from_numpy(data.images).float() / 255)
    return model


def _reconstruct(model, images):
    with torch.no_grad():
        x = model.decode(model.encode(torch.from_numpy(images).float() / 255))
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def test_tile_centres_are_in_picture_order():
    c = tile_centres((0, 0, 4, 2), 2, 4)
    assert c.shape == (8, 2)
    np.testing.assert_allclose(c[0], [0.5, 1.5])  # top-left: smallest x, largest y
    np.testing.assert_allclose(c[3], [3.5, 1.5])
    np.testing.assert_allclose(c[-1], [3.5, 0.5])


def test_grid_shape_follows_the_zoom_and_the_cli_grid():
    assert grid_shape((0, 0, 1, 1), grid=20) == (20, 20)
    assert grid_shape((0, 0, 2, 1), grid=20) == (10, 20)  # square tiles in map units
    assert grid_shape((0, 0, 1, 1), (480, 240), tile_px=48) == (5, 10)  # ~48 screen px per tile
    assert grid_shape((0, 0, 1, 1), (100000, 100000)) == (48, 48)  # bounded
    with pytest.raises(ValueError, match="bounds"):
        grid_shape((0, 0, 0, 1), grid=3)


@pytest.mark.parametrize("with_base", [False, True])
def test_pca_tile_at_a_datums_position_decodes_to_its_pca_reconstruction(digits, with_base):
    # Known answer: with a 2-d PCA model on a PCA map the exact inverse of a datum's map position is its code,
    # so the tile centred there decodes to the PCA reconstruction of that image. With a 6-d model the map fixes
    # only 2 of 6 coordinates; base = the datum's code supplies the rest.
    model = _pca_model(digits, 6 if with_base else 2)
    z = encode_dataset(model, digits.images)
    proj = PCAProjection()
    xy = proj.fit(z)
    i = 17
    step = 0.1
    px, py = (float(v) for v in xy[i])
    bounds = (px - 1.5 * step, py - 1.5 * step, px + 1.5 * step, py + 1.5 * step)
    m = decode_manifold(model, proj, bounds, 3, 3, base=z[i] if with_base else None)
    np.testing.assert_allclose(m.centres[4], xy[i], atol=1e-5)
    assert m.tile_at(xy[i]) == 4
    np.testing.assert_allclose(m.latents[4], z[i], atol=1e-4)
    expected = _reconstruct(model, digits.images[i:i + 1])[0]
    assert np.abs(m.images[4].astype(int) - expected.astype(int)).max() <= 1
    assert m.exact and np.all(m.trust == 1)
    # neighbouring tiles differ from it: the grid really walks the plane
    assert not np.array_equal(m.images[3], m.images[4])


def test_mosaic_layout_scale_and_greying(digits):
    model = _pca_model(digits, 2)
    proj = PCAProjection()
    proj.fit(encode_dataset(model, digits.images))
    m = decode_manifold(model, proj, (-1, -1, 1, 1), 2, 3)
    pic = m.mosaic(pad=1, scale=2)
    assert pic.shape == (2 * (2 * 9 + 1), 2 * (3 * 9 + 1), 3) and pic.dtype == np.uint8
    # tile (0, 1) sits at rows 1..8, columns 10..17 of the unscaled picture
    raw = m.mosaic(pad=1)
    np.testing.assert_array_equal(raw[1:9, 10:18, 0], m.images[1, 0])
    # trust 0 greys a tile completely
    m.trust[:] = 0
    assert np.all(m.mosaic()[..., :] == GREY)


@pytest.fixture(scope="module")
def tsne_map(digits):
    model = _pca_model(digits, 8)
    z = encode_dataset(model, digits.images[:400])
    proj = TSNEProjection(n_iter=150, early_exaggeration_iter=50, n_jobs=1)
    xy = proj.fit(z)
    return model, proj, xy


def test_learned_inverse_is_trusted_on_the_data_and_greyed_far_outside(tsne_map):
    model, proj, xy = tsne_map
    assert not proj.exact_inverse
    lo, hi = xy.min(0), xy.max(0)
    span = hi - lo
    on = decode_manifold(model, proj, (lo[0], lo[1], hi[0], hi[1]), 6, 6)
    far_lo = hi + 20 * span  # a view far away from every point
    far = decode_manifold(model, proj, (far_lo[0], far_lo[1], far_lo[0] + span[0], far_lo[1] + span[1]), 4, 4)
    # t-SNE's clusters leave gaps: some tiles are on the data, others between clusters
    assert on.trust.max() > 0.9 and on.trust.min() < 0.1
    np.testing.assert_allclose(on.trust, proj.trust(on.centres))
    assert far.trust.max() < 1e-3
    assert np.all(far.mosaic() == GREY)
    # a tile centred exactly on a datum is fully trusted and decodes near that datum's code
    i = int(np.argmin(np.abs(xy - np.median(xy, 0)).sum(1)))
    s = 0.01 * span
    one = decode_manifold(model, proj, (xy[i, 0] - s[0], xy[i, 1] - s[1], xy[i, 0] + s[0], xy[i, 1] + s[1]), 1, 1)
    assert one.trust[0] > 0.99


def test_cancel_and_progress(digits):
    model = _pca_model(digits, 2)
    proj = PCAProjection()
    proj.fit(encode_dataset(model, digits.images))
    seen = []
    decode_manifold(model, proj, (-1, -1, 1, 1), 8, 8, batch_size=16, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and len(seen) >= 4 and seen == sorted(seen)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        decode_manifold(model, proj, (-1, -1, 1, 1), 8, 8, cancel=stop)
    with pytest.raises(ValueError, match="too large"):
        decode_manifold(model, proj, (-1, -1, 1, 1), 100, 100)
    with pytest.raises(RuntimeError, match="fitted"):
        decode_manifold(model, PCAProjection(), (-1, -1, 1, 1), 2, 2)


def test_aligned_manifolds_show_the_same_place_for_every_model(digits):
    # Two copies of one model whose maps differ by a known similarity transform: aligned, every tile of the
    # second decodes exactly what the first does at the same aligned position.
    from explorer.core.compare.alignment import align_maps

    model = _pca_model(digits, 2)
    z = encode_dataset(model, digits.images)
    a, b = PCAProjection(), PCAProjection()
    xy_a = a.fit(z)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    # b's map is a rotated, scaled, shifted copy of a's: build it from a's with a twisted latent space
    twisted = PCA(PCAConfig(latent_dim=2, image_shape=model.image_shape))
    twisted.load_state_dict(model.state_dict())
    twisted.config.whiten = False
    z_t = encode_dataset(twisted, digits.images)
    xy_b = b.fit(z_t)
    aligned, transforms = align_maps([xy_a, xy_b])
    np.testing.assert_allclose(unapply_alignment(aligned[1], transforms[1]), xy_b, atol=1e-3 * np.ptp(xy_b))
    bounds = (-1.0, -1.0, 1.0, 1.0)
    ms = aligned_manifolds([(model, a, transforms[0]), (twisted, b, transforms[1])], bounds, 4, 4)
    assert len(ms) == 2
    diff = np.abs(ms[0].images.astype(int) - ms[1].images.astype(int))
    assert diff.mean() < 3, diff.mean()
    pic = side_by_side([m.mosaic() for m in ms], gap=8)
    assert pic.shape == (32, 2 * 32 + 8, 3)
    assert rot.shape == (2, 2)
