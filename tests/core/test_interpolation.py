import numpy as np
import pytest

from explorer.core.latent.interpolation import (
    interpolate,
    keyframe_positions,
    lerp,
    slerp,
    traverse_dim,
    traverse_vector,
)

D = 64


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    return rng.standard_normal(D).astype(np.float32), rng.standard_normal(D).astype(np.float32)


@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_endpoints_are_exactly_the_keyframes(pair, method):
    a, b = pair
    frames = interpolate([a, b], 11, method)
    assert frames.shape == (11, D) and frames.dtype == np.float32
    assert np.array_equal(frames[0], a) and np.array_equal(frames[-1], b)


def test_slerp_stays_near_the_prior_shell_and_lerp_does_not():
    # Independent N(0, I) samples have norm ~ sqrt(D) and are nearly orthogonal: the chord's midpoint
    # falls to ~ sqrt(D / 2), the arc's does not.
    rng = np.random.default_rng(1)
    shell = np.sqrt(D)
    for _ in range(20):
        a, b = rng.standard_normal((2, D))
        s_norms = np.linalg.norm(interpolate([a, b], 9, "slerp"), axis=1)
        l_norms = np.linalg.norm(interpolate([a, b], 9, "lerp"), axis=1)
        lo, hi = min(s_norms[0], s_norms[-1]), max(s_norms[0], s_norms[-1])
        assert np.all(s_norms >= lo - 1e-9) and np.all(s_norms <= hi + 1e-9)  # between the end norms
        assert abs(s_norms[4] / shell - 1) < 0.3
        assert l_norms[4] < 0.85 * s_norms[4]


def test_slerp_moves_at_constant_angular_speed(pair):
    a, b = pair
    frames = slerp(a, b, np.linspace(0, 1, 5)).astype(np.float64)
    u = frames / np.linalg.norm(frames, axis=1, keepdims=True)
    steps = np.arccos(np.clip(np.sum(u[1:] * u[:-1], axis=1), -1, 1))
    assert np.allclose(steps, steps[0], rtol=1e-4)


def test_slerp_parallel_and_antiparallel_are_finite():
    a = np.ones(D)
    par = slerp(a, 3 * a, np.linspace(0, 1, 5))
    assert np.allclose(par, lerp(a, 3 * a, np.linspace(0, 1, 5)))
    anti = slerp(a, -a, np.linspace(0, 1, 7))
    assert np.all(np.isfinite(anti))
    assert np.allclose(np.linalg.norm(anti, axis=1), np.sqrt(D))  # goes round, not through 0
    assert np.array_equal(anti[-1], -a)
    zero = slerp(np.zeros(D), a, 0.5)
    assert np.allclose(zero, 0.5 * a)


def test_scalar_t_gives_one_vector(pair):
    a, b = pair
    assert slerp(a, b, 0.5).shape == (D,) and lerp(a, b, 0.25).shape == (D,)
    assert np.allclose(lerp(a, b, 0.25), 0.75 * a + 0.25 * b, atol=1e-6)


def test_path_through_several_keyframes_hits_each():
    rng = np.random.default_rng(2)
    keys = rng.standard_normal((4, D))
    frames = interpolate(keys, 20, "slerp")
    pos = keyframe_positions(4, 20)
    assert pos[0] == 0 and pos[-1] == 19 and len(pos) == 4
    for k, p in enumerate(pos):
        assert np.array_equal(frames[p], keys[k])


@pytest.mark.parametrize("bad", [
    dict(keyframes=[np.zeros(3)], steps=5),  # one keyframe
    dict(keyframes=[np.zeros(3), np.zeros(4)], steps=5),  # sizes differ
    dict(keyframes=[np.zeros(3), np.ones(3), np.ones(3)], steps=2),  # fewer steps than keys
    dict(keyframes=[np.zeros(3), np.array([1, np.nan, 0])], steps=5),
    dict(keyframes=[np.zeros(3), np.ones(3)], steps=5, method="cubic"),
])
def test_bad_paths_raise(bad):
    with pytest.raises(ValueError):
        interpolate(**bad)


def test_traversal_grids():
    rng = np.random.default_rng(3)
    starts = rng.standard_normal((3, 8)).astype(np.float32)
    v = rng.standard_normal(8).astype(np.float32)
    g = traverse_vector(starts, v, [-1, 0, 2])
    assert g.shape == (3, 3, 8)
    assert np.allclose(g[:, 1], starts) and np.allclose(g[2, 2], starts[2] + 2 * v)
    d = traverse_dim(starts, 5, np.linspace(-3, 3, 4))
    assert d.shape == (3, 4, 8)
    assert np.allclose(d[:, :, 5], np.linspace(-3, 3, 4)[None])
    assert np.allclose(np.delete(d, 5, axis=2), np.delete(starts, 5, axis=1)[:, None])
    rel = traverse_dim(starts, 5, [1.0], relative=True)
    assert np.allclose(rel[:, 0, 5], starts[:, 5] + 1)
    with pytest.raises(ValueError, match="dim"):
        traverse_dim(starts, 8, [0.0])
    with pytest.raises(ValueError, match="8 values|values"):
        traverse_vector(starts, np.ones(4), [0.0])
