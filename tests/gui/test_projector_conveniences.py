"""What TensorBoard projector users expect: search, nearest neighbours, colour by a continuous value."""

import numpy as np
import torch


def test_search_rings_the_matches_and_enter_jumps_there(window, digits_vae, digits, qtbot):
    window.open_model(str(digits_vae))
    window.search_edit.setText("3")
    expected = np.flatnonzero(digits.labels == 3)
    ringed = window.map.search_marker.getData()
    np.testing.assert_allclose(np.c_[ringed[0], ringed[1]], window.map.positions[expected], atol=1e-6)
    assert f"{len(expected)} matches" in window.search_info.text()
    window.search_edit.returnPressed.emit()
    assert window.selected_index() == expected[0]
    (x0, x1), (y0, y1) = window.map.view.viewRange()
    pts = window.map.positions[expected]
    assert x0 <= pts[:, 0].min() and x1 >= pts[:, 0].max()
    window.search_edit.setText("#12")
    assert len(window.map.search_marker.getData()[0]) == 1
    window.search_edit.setText("nonsense>>")
    assert window.search_info.text()  # the parser says what it could not read


def test_neighbours_of_the_selection_are_the_nearest_latents(window, digits_vae):
    window.open_model(str(digits_vae))
    window.select_datum(100)
    z = window.current.latents
    d = np.linalg.norm(z - z[100], axis=1)
    d[100] = np.inf
    shown = [window.neighbour_list.item(i).data(0x0100) for i in range(window.neighbour_list.count())]
    assert shown == list(np.argsort(d, kind="stable")[:8])
    window.neighbour_list.itemClicked.emit(window.neighbour_list.item(2))
    assert window.selected_index() == shown[2]


def test_colour_by_reconstruction_error_with_a_colour_bar(window, digits_vae, digits):
    window.open_model(str(digits_vae))
    window.colour_box.setCurrentIndex(window.colour_box.findText("reconstruction error"))
    entry = window.current
    errors = entry.point_values["reconstruction error"]
    with torch.inference_mode():
        x = torch.from_numpy(digits.images[:5]).float() / 255
        recon = entry.model.decode(entry.model.encode(x)).clamp(0, 1)
    np.testing.assert_allclose(errors[:5], ((recon - x) ** 2).mean((1, 2, 3)).numpy(), rtol=1e-4, atol=1e-6)
    assert window.colour_bar.isVisible()
    worst = int(np.argmax(errors))
    top = window.map.scatter_items[11].getData()  # the last bin holds the worst-reconstructed points
    assert np.any(np.all(np.isclose(np.c_[top[0], top[1]], window.map.positions[worst]), axis=1))
    window.colour_box.setCurrentIndex(window.colour_box.findText("label"))
    assert not window.colour_bar.isVisible()
