"""Precision / recall / density / coverage (Naeem et al. 2020): known answers on constructed features."""

import numpy as np
import pytest

from explorer.core.compare.prdc import prdc


def test_hand_computed_one_dimensional_case():
    # reals at 0, 1, 2, 3 with k = 1: every real ball has radius 1. Fakes at 0.5 (inside), 10 (outside).
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0], [11.0]])
    out = prdc(real, fake, k=1)
    assert out["sample_precision"] == pytest.approx(1 / 3)
    # 0.5 lies in the balls of 0 and 1: density = 2 / (1 * 3)
    assert out["sample_density"] == pytest.approx(2 / 3)
    assert out["sample_coverage"] == pytest.approx(2 / 4)  # balls of 0 and 1 hold a fake
    # fake radii (k = 1 among fakes): 0.5 -> 9.5, 10 -> 1, 11 -> 1; every real lies within 9.5 of 0.5
    assert out["sample_recall"] == pytest.approx(1.0)


def test_same_distribution_scores_near_one_and_disjoint_scores_zero():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(1500, 8)), rng.normal(size=(1500, 8))
    same = prdc(real, fake)
    assert same["sample_precision"] > 0.9 and same["sample_recall"] > 0.9 and same["sample_coverage"] > 0.9
    assert 0.85 < same["sample_density"] < 1.15
    far = prdc(real, fake + 50.0)
    assert all(v == 0.0 for v in far.values())


def test_mode_collapse_keeps_precision_and_loses_recall_and_coverage():
    rng = np.random.default_rng(1)
    real = np.concatenate([rng.normal(size=(600, 4)), rng.normal(size=(600, 4)) + 20.0])
    fake = rng.normal(size=(600, 4))  # only the first of the two modes
    out = prdc(real, fake)
    assert out["sample_precision"] > 0.9
    assert 0.4 < out["sample_recall"] < 0.55 and 0.4 < out["sample_coverage"] < 0.55


def test_bad_input():
    with pytest.raises(ValueError, match="more than k"):
        prdc(np.zeros((3, 2)), np.zeros((10, 2)), k=5)
    with pytest.raises(ValueError, match="\\(N, F\\)"):
        prdc(np.zeros((10, 2)), np.zeros((10, 3)))


def test_the_judge_reports_prdc_and_sees_a_collapsed_generator():
    from explorer.core.compare.judge import SampleJudge
    from explorer.core.data.digits import load_digits_data

    data = load_digits_data()
    judge = SampleJudge(data, min_steps=200, seed=0)
    test = data.test()
    real = judge.score(test.images[:300])
    assert real["sample_precision"] > 0.9 and real["sample_coverage"] > 0.9 and real["sample_recall"] > 0.9
    # a "generator" that only ever draws zeros: faithful samples, one tenth of the data covered
    zeros = judge.score(test.images[test.labels == 0])
    assert zeros["sample_precision"] > 0.9
    assert zeros["sample_coverage"] < 0.3 and zeros["sample_recall"] < 0.3
    assert zeros["sample_fd"] > real["sample_fd"]
