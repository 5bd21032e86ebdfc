"""Face regions and one-attribute batches: known answers from the generator itself."""

import numpy as np
import pytest

from explorer.core.data.faces import (ATTRIBUTE_NAMES, REGION_NAMES, face_region, render_faces, render_varying,
                                      sample_attributes)

A = {n: i for i, n in enumerate(ATTRIBUTE_NAMES)}


def _changed(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max(axis=(0, 1)) > 0  # (H, W) over faces and channels


def _outside(mask, box):
    x0, y0, x1, y1 = box
    out = mask.copy()
    out[y0:y1, x0:x1] = False
    return int(out.sum())


@pytest.mark.parametrize("size", [48, 64])
def test_mouth_attributes_change_pixels_only_inside_the_mouth_box(size):
    attrs = sample_attributes(300, seed=5)
    attrs[:, A["smiling"]] = 0  # the smile's cheeks and eyes lie outside the mouth; mouth_open is all mouth
    lo, hi = attrs.copy(), attrs.copy()
    lo[:, A["mouth_open"]], hi[:, A["mouth_open"]] = 0, 1
    mask = _changed(render_faces(lo, 5, size=size), render_faces(hi, 5, size=size))
    box = face_region("mouth", size)
    assert mask.sum() > 20 and _outside(mask, box) == 0


def test_the_smiles_mouth_and_eye_changes_lie_in_the_mouth_and_eye_boxes():
    attrs = sample_attributes(300, seed=6)
    attrs[:, A["glasses"]] = 0
    lo, hi = attrs.copy(), attrs.copy()
    lo[:, A["smiling"]], hi[:, A["smiling"]] = 0, 1
    a, b = render_faces(lo, 6), render_faces(hi, 6)
    x0, y0, x1, y1 = face_region("mouth")
    ex0, ey0, ex1, ey1 = face_region("eyes")
    # mouth and eyes differ strongly; the cheeks' soft blush is the only change elsewhere
    d = np.abs(a.astype(int) - b.astype(int)).max(axis=1)
    assert d[:, y0:y1, x0:x1].max() > 100 and d[:, ey0:ey1, ex0:ex1].max() > 100


def test_eye_size_changes_pixels_only_inside_the_eyes_box():
    attrs = sample_attributes(300, seed=7)
    attrs[:, A["glasses"]] = 0
    lo, hi = attrs.copy(), attrs.copy()
    lo[:, A["eye_size"]], hi[:, A["eye_size"]] = 0, 1
    mask = _changed(render_faces(lo, 7), render_faces(hi, 7))
    assert mask.sum() > 20 and _outside(mask, face_region("eyes")) == 0


def test_glasses_change_pixels_only_inside_the_glasses_box():
    attrs = sample_attributes(300, seed=8)
    lo, hi = attrs.copy(), attrs.copy()
    lo[:, A["glasses"]], hi[:, A["glasses"]] = 0, 1
    mask = _changed(render_faces(lo, 8), render_faces(hi, 8))
    assert mask.sum() > 20 and _outside(mask, face_region("glasses")) == 0


def test_regions_are_boxes_inside_the_image_and_bad_names_are_refused():
    for name in REGION_NAMES:
        x0, y0, x1, y1 = face_region(name, 64)
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    with pytest.raises(ValueError, match="nose"):
        face_region("nose", 64)


@pytest.mark.parametrize("attr", ["smiling", "hair_colour"])
def test_render_varying_changes_one_attribute_of_one_person(attr):
    batch = render_varying(attr, 12, 32, seed=3)
    assert batch.images.shape == (12, 3, 32, 32) and batch.images.dtype == np.uint8
    others = np.delete(batch.attributes, A[attr], axis=1)
    assert np.all(others == others[0])
    col = batch.attributes[:, A[attr]]
    assert len(np.unique(col)) > 1
    # exactly the generator's faces of that person with those attributes, and deterministic
    again = render_faces(batch.attributes, 3, identity=np.full(12, batch.identity), size=32)
    assert np.array_equal(batch.images, again)
    assert np.array_equal(render_varying(attr, 12, 32, seed=3).images, batch.images)
    # rows with equal attribute values are the same image: nothing else varies
    i, j = np.flatnonzero(col == col[0])[:2] if attr == "smiling" else (0, 0)
    assert np.array_equal(batch.images[i], batch.images[j])


def test_render_varying_takes_given_values_and_refuses_bad_input():
    v = np.linspace(0, 1, 5)
    batch = render_varying("eye_size", 5, 32, seed=1, values=v)
    assert np.allclose(batch.attributes[:, A["eye_size"]], v)
    with pytest.raises(ValueError, match="values"):
        render_varying("eye_size", 4, 32, seed=1, values=v)
    with pytest.raises(ValueError, match="unknown"):
        render_varying("nose", 4, 32)
