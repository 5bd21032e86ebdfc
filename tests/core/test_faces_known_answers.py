"""The faces demo's headline known answer, judged on decoded pixels by classifiers of *real* generated faces.

For every attribute, a pixel classifier trained on real generated training faces (never on reconstructions)
must find the attribute in >= 90 % of held-out faces without it after its vector is added at strength +1 (or
as often as on true edits, less 0.03, where the judge itself finds fewer than 93 % of those), and
the other attributes' classifiers must stay put (see scripts/faces_known_answers.py, which also prints the
table for the closing note).
"""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo" / "faces-vae.safetensors"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DEMO.exists(), reason="the faces demo is not built")]
ALL = ["smiling", "mouth_open", "glasses", "beard", "long_hair", "hair_colour", "skin_tone", "face_width",
       "eye_size", "head_turn"]
# A judge finds only so many of the *true* edits (the same people drawn with the attribute changed by the
# vector's unit): eye size's finds ~90 %, as a smile's narrowed eyes pass for small ones. Where that ceiling is
# below 0.93 the decoded edit must come within 0.03 of it instead of reaching 0.9, so the check measures the
# model, not the judge's blind spot; every other judge finds >= 0.96 of the true edits.
CEILING_MARGIN = 0.03


@pytest.fixture(scope="module")
def result():
    from explorer.core import checkpoint

    spec = importlib.util.spec_from_file_location("faces_known_answers", ROOT / "scripts" / "faces_known_answers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.evaluate(checkpoint.load(DEMO))["rows"]


@pytest.mark.parametrize("attr", ALL)
def test_the_vector_makes_real_face_classifiers_find_the_attribute(result, attr):
    row = result[attr]
    # The judge itself sees the attribute in real held-out faces (continuous attributes: those clearly on one
    # side of 0.5, as it was trained; at 0.49 vs 0.51 any judge tosses a coin).
    assert row["classifier_accuracy_real_clear"] > 0.85, row
    assert row["before"] < 0.3, row
    ceiling = row["found_on_true_edits"]
    assert row["found"] >= min(0.9, ceiling - CEILING_MARGIN), row


@pytest.mark.parametrize("attr", ALL)
def test_the_other_attributes_classifiers_stay_put(result, attr):
    # Judged by the classifiers that are reliable on this model's reconstructions (>= 90 % accurate there): a
    # classifier near chance on blurry decodes flips at random and would say nothing about the edit.
    reliable = {k for k, v in result.items() if v["classifier_accuracy_recon"] >= 0.9}
    assert len(reliable) >= 5
    flips = {k: v for k, v in result[attr]["others_flipped"].items() if k in reliable}
    assert max(flips.values()) < 0.2, flips
