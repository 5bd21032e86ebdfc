"""The decoded manifold on the map: tiles over the visible region, decoded at their centres, following the view."""

import numpy as np
import torch


def test_manifold_toggle_tiles_the_view_and_follows_zoom(window, digits_vae, qtbot, tmp_path):
    window.open_model(str(digits_vae))
    entry = window.current
    window.manifold_check.setChecked(True)
    qtbot.waitUntil(lambda: getattr(window, "last_manifold", None) is not None, timeout=5000)
    m = window.last_manifold
    assert m.bounds == window.map.view_bounds()
    assert window.map.manifold_item.image is not None
    # Each tile is the decoded PCA inverse of its centre (the exact inverse: trusted everywhere).
    k = m.rows * m.cols // 2
    z = entry.projection.inverse(m.centres[k:k + 1])
    with torch.inference_mode():
        expect = (entry.model.decode(torch.from_numpy(np.asarray(z, np.float32))).clamp(0, 1) * 255 + 0.5)
    np.testing.assert_array_equal(m.images[k], expect.to(torch.uint8).numpy()[0])
    assert m.trust.min() == 1.0
    # Zooming in decodes the new view (more tiles per unit of the map).
    first = m
    window.map.view.scaleBy((0.5, 0.5))
    qtbot.waitUntil(lambda: window.last_manifold is not first, timeout=5000)
    second = window.last_manifold
    w1 = (first.bounds[2] - first.bounds[0]) / first.cols
    w2 = (second.bounds[2] - second.bounds[0]) / second.cols
    assert w2 < 0.75 * w1
    # "Instead of points" hides the scatter; exporting writes the mosaic.
    window.manifold_only.setChecked(True)
    assert not any(item.isVisible() for item in window.map.scatter_items)
    out = tmp_path / "m.png"
    window.export_manifold(str(out))
    assert out.exists()
    window.manifold_check.setChecked(False)
    assert window.map.manifold_item.image is None and all(i.isVisible() for i in window.map.scatter_items)
