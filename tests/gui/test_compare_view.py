"""The comparison tab: aligned maps of two models, linked hover, shared prior samples, metrics, export."""

import numpy as np
import pytest
import torch

from explorer.core import save_model
from explorer.core.models import build_model
from explorer.core.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits_ae(tmp_path_factory, digits):
    torch.manual_seed(1)
    model = build_model("ae", latent_dim=4, image_shape=(1, 8, 8), hidden=(64,))
    Trainer(model, digits, TrainConfig(epochs=10, batch_size=64, lr=3e-3, device="cpu")).run()
    return save_model(model, tmp_path_factory.mktemp("m") / "digits-ae.safetensors", dataset="digits",
                      label_names=digits.label_names)


def test_compare_two_models_side_by_side(window, digits_vae, digits_ae, tmp_path):
    window.open_model(str(digits_vae))
    window.open_model(str(digits_ae))
    view = window.compare
    view.refresh()
    assert [e.name for e in view.entries] == ["digits-vae.safetensors", "digits-ae.safetensors"]
    assert len(view.plots) == 2 and all(m.shape == (len(view.rows), 2) for m in view.maps)
    # Aligned: the second map is a rotation/mirror/scale of its own PCA map onto the first.
    from explorer.core.compare import procrustes_align

    raw = view.entries[1].maps["pca"][view.rows]
    np.testing.assert_allclose(view.maps[1], procrustes_align(view.maps[0], raw)[0], atol=1e-3)
    # Linked highlight: both maps mark datum 7 and both reconstructions are shown.
    view.highlight(7)
    for col in range(2):
        x, y = view.markers[col].getData()
        i = int(np.flatnonzero(view.rows == 7)[0])
        assert (x[0], y[0]) == pytest.approx(tuple(view.maps[col][i]), abs=1e-4)
        np.testing.assert_array_equal(view.recon_panels[col].last_array, view.entries[col].reconstruct_uint8(7))
    # One shared prior draw: both models decode the same z (same latent size), and re-rolling changes it.
    before = view.prior_panels[0].last_array.copy()
    view.reroll()
    assert not np.array_equal(before, view.prior_panels[0].last_array)
    view.compute_metrics()
    assert len(view.metrics) == 2 and view.table.rowCount() == 2
    assert view.metrics[0]["kl"] is not None and view.metrics[1]["kl"] is None  # VAE vs AE
    assert view.table.horizontalHeaderItem(0).toolTip()
    view.swap.select(view.entries[0], view.entries[1])  # the VAE's codes through the AE's decoder
    assert view.swap.rows is not None and not view.swap.shared
    view.export(str(tmp_path / "cmp"))
    assert (tmp_path / "cmp" / "metrics.csv").exists()
    assert len((tmp_path / "cmp" / "metrics.csv").read_text().strip().splitlines()) == 3
    assert (tmp_path / "cmp" / "decoder-swap.png").exists()  # the swap strip goes with the comparison


def test_first_visit_to_compare_shows_the_open_pair(window, digits_vae, digits_ae):
    window.open_model(str(digits_vae))
    view = window.compare
    # With one model: swap B defaults to A itself, and nothing is drawn yet.
    assert view.swap.entry_a() is view.swap.entry_b() and not view.swap.strip.isVisibleTo(view)
    window.open_model(str(digits_ae))
    assert view.swap.entry_b().name == "digits-ae.safetensors"  # a default B moves off A
    assert not view.entries
    compare_tab = next(i for i in range(window.tabs.count()) if window.tabs.tabText(i) == "Compare")
    window.tabs.setCurrentIndex(compare_tab)
    assert [e.name for e in view.entries] == ["digits-vae.safetensors", "digits-ae.safetensors"]
    view.swap.compute()
    assert view.swap.rows is not None and view.swap.strip.isVisibleTo(view)


def test_compare_needs_two_models(window, digits_vae):
    window.open_model(str(digits_vae))
    window.compare.refresh()
    assert "two" in window.compare.error.text()


def test_rate_distortion_plots_models_against_pca(window, digits_vae, digits_ae):
    window.open_model(str(digits_vae))
    window.open_model(str(digits_ae))
    view = window.compare
    view.compute_rate_distortion()
    kinds = {(r["kind"], r["latent_dim"]) for r in view.rd_rows}
    assert ("model", 4) in kinds and ("pca baseline", 4) in kinds
    assert not view.rd_plot.isHidden() and len(view.rd_plot.getPlotItem().listDataItems()) == 3
    # The plotted curves are the computed rows.
    plotted = sorted(float(y) for item in view.rd_plot.getPlotItem().listDataItems() for y in item.getData()[1])
    assert plotted == pytest.approx(sorted(r["recon_bce"] for r in view.rd_rows))


def test_decoded_manifolds_side_by_side_on_the_aligned_maps(window, digits_vae, digits_ae, tmp_path):
    import torch

    from explorer.core.latent.manifold import grid_shape, tile_centres, unapply_alignment

    window.open_model(str(digits_vae))
    window.open_model(str(digits_ae))
    view = window.compare
    view.refresh()
    view.compute_manifolds(grid=6)
    picture = view.manifold_picture
    assert picture is not None and view.manifold_panel.isVisibleTo(view)
    rows, cols = grid_shape(view.bounds, grid=6)
    # The AE's first tile (top left of the aligned view) is its own decode of that place of its own map.
    centre = unapply_alignment(tile_centres(view.bounds, rows, cols)[:1], view.alignments[1])
    z = view.projections[1].inverse(centre)
    with torch.inference_mode():
        tile = view.entries[1].model.decode(torch.from_numpy(np.asarray(z, np.float32))).clamp(0, 1)
    expect = (tile[0, 0].numpy() * 255 + 0.5).astype(np.uint8)
    width = cols * (8 + 1) + 1
    x0 = width + 12 + 1  # after the VAE's mosaic and the gap, inside the AE's one-pixel border
    np.testing.assert_array_equal(picture[1:9, x0:x0 + 8, 0], expect)
    view.export(str(tmp_path / "out"))
    assert (tmp_path / "out" / "manifolds.png").exists()
