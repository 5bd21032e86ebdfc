"""Latent maps: PCA / dims (exact inverses), t-SNE / UMAP (learned inverses), picking, trust, cache, encoding.

Small sizes throughout (hundreds of points, few iterations): the whole file must stay well under a minute on
two shared cores. The first UMAP fit of a process compiles numba kernels (~15-20 s); it happens once here.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from explorer.core.latent import (
    PROJECTIONS,
    Cancelled,
    DimsProjection,
    PCAProjection,
    Projection,
    ProjectionCache,
    TransformUnavailableError,
    cache_key,
    encode_dataset,
    make_projection,
)
from explorer.core.latent.projection import MLPInverse, UMAPProjection
from explorer.core.models import CapabilityError, build_model


# ----------------------------------------------------------------------------- data
def correlated(n: int = 2000, d: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * np.linspace(3.0, 0.1, d)[:, None]
    return (rng.normal(size=(n, d)) @ mix + rng.normal(size=d) * 5).astype(np.float32)


def manifold(n: int = 1000, d: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Latents on a curved 2-D sheet embedded in d dimensions: (uv (n, 2), z (n, d))."""
    rng = np.random.default_rng(seed)
    uv = rng.uniform(0.0, 1.0, size=(n, 2))
    u, v = uv[:, 0], uv[:, 1]
    feats = np.column_stack([u, v, np.sin(3 * u), np.cos(3 * v), u * v, u**2 - v, np.sin(2 * (u + v)), v**2])
    z = feats @ rng.normal(size=(feats.shape[1], d))
    return uv, (z + rng.normal(scale=0.01, size=z.shape)).astype(np.float32)


def rel_error(pred: np.ndarray, z: np.ndarray) -> float:
    return float(np.sqrt(np.square(pred - z).sum() / np.square(z - z.mean(0)).sum()))


@pytest.fixture(scope="module")
def tsne_map():
    """One small t-SNE of the manifold with a fitted inverse, shared by several tests (fitting is the slow part)."""
    uv, z = manifold(800)
    proj = make_projection("tsne", n_iter=150, early_exaggeration_iter=100, perplexity=20, inverse_steps=600)
    emb = proj.fit(z)
    idw_before = proj.inverse(emb[:50])  # the nearest-neighbour fallback, before fit_inverse
    proj.fit_inverse()
    return proj, emb, z, idw_before


# ----------------------------------------------------------------------------- PCA
def test_pca_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA

    z = correlated()
    emb = make_projection("pca").fit(z)
    ref = PCA(2).fit_transform(z.astype(np.float64))
    assert emb.shape == (len(z), 2) and emb.dtype == np.float32
    signs = np.sign((emb * ref).sum(0))
    np.testing.assert_allclose(emb * signs, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())


def test_pca_inverse_is_the_plane_and_exact():
    from sklearn.decomposition import PCA

    z = correlated()
    proj = make_projection("pca")
    emb = proj.fit(z)
    assert proj.exact_inverse and proj.inverse_ready

    sk = PCA(2).fit(z.astype(np.float64))
    v = sk.components_.T  # (D, 2)
    plane = sk.mean_ + (z - sk.mean_) @ v @ v.T
    back = proj.inverse(emb)
    np.testing.assert_allclose(back, plane, atol=1e-3 * np.abs(z).max())

    p = np.random.default_rng(1).normal(size=(100, 2)) * 10
    np.testing.assert_allclose(proj.transform(proj.inverse(p)), p, atol=1e-4)

    # With a base vector: the in-plane part follows the cursor, the rest stays the base's.
    base = z[7]
    zb = proj.inverse(p, base=base)
    np.testing.assert_allclose(proj.transform(zb), p, atol=1e-4)
    off_plane = lambda w: (w - sk.mean_) - (w - sk.mean_) @ v @ v.T  # noqa: E731
    np.testing.assert_allclose(off_plane(zb), np.broadcast_to(off_plane(base[None]), zb.shape), atol=1e-3)
    np.testing.assert_allclose(proj.inverse(emb[7], base=base)[0], base, atol=1e-3)

    # The inverse error is the variance outside the plane: what inverse(transform(z)) loses.
    assert proj.inverse_error == pytest.approx(rel_error(back, z), rel=1e-3)
    assert proj.info["explained_variance_ratio"] == pytest.approx(list(sk.explained_variance_ratio_), rel=1e-4)


def test_pca_of_a_one_dimensional_latent_space():
    z = np.random.default_rng(0).normal(size=(100, 1)).astype(np.float32)
    proj = make_projection("pca")
    emb = proj.fit(z)
    assert np.all(emb[:, 1] == 0)
    np.testing.assert_allclose(proj.inverse(emb)[:, 0], z[:, 0], atol=1e-5)


# ----------------------------------------------------------------------------- dims
def test_dims_projection_is_exact():
    z = correlated(500)
    proj = make_projection("dims", i=3, j=1)
    emb = proj.fit(z)
    np.testing.assert_array_equal(emb, z[:, [3, 1]])
    p = np.array([[0.5, -2.0], [3.0, 4.0]], np.float32)
    back = proj.inverse(p)
    np.testing.assert_array_equal(proj.transform(back), p)
    others = [k for k in range(z.shape[1]) if k not in (1, 3)]
    np.testing.assert_allclose(back[:, others], np.broadcast_to(z.mean(0)[others], (2, len(others))), rtol=1e-5)
    back = proj.inverse(p, base=z[0])
    np.testing.assert_array_equal(back[:, others], np.broadcast_to(z[0, others], (2, len(others))))
    np.testing.assert_array_equal(proj.transform(back), p)


def test_dims_rejects_bad_axes():
    with pytest.raises(ValueError, match="different"):
        make_projection("dims", i=2, j=2)
    with pytest.raises(ValueError, match="do not exist"):
        make_projection("dims", i=0, j=12).fit(correlated(50))


# ----------------------------------------------------------------------------- picking and trust
def test_nearest_matches_brute_force():
    z = np.random.default_rng(2).normal(size=(2000, 5)).astype(np.float32)
    proj = make_projection("pca")
    emb = proj.fit(z)
    q = np.random.default_rng(3).uniform(emb.min(0), emb.max(0), size=(50, 2))
    dist, idx = proj.nearest(q)
    brute = np.linalg.norm(emb[None, :, :] - q[:, None, :], axis=2)
    np.testing.assert_array_equal(idx, brute.argmin(1))
    np.testing.assert_allclose(dist, brute.min(1), rtol=1e-5)
    dist3, idx3 = proj.nearest(q, k=3)
    assert idx3.shape == (50, 3) and np.all(np.diff(dist3, axis=1) >= 0)
    np.testing.assert_array_equal(idx3, np.argsort(brute, axis=1)[:, :3])
    d0, i0 = proj.nearest(emb[123])  # a single (2,) point works too
    assert i0[0] == 123 and d0[0] == 0


def test_trust_is_high_on_data_and_low_far_away():
    z = np.random.default_rng(4).normal(size=(2000, 6)).astype(np.float32)
    proj = make_projection("pca")
    emb = proj.fit(z)
    assert np.all(proj.trust(emb[:200]) > 0.99)
    far = emb.max(0) + 100 * np.ptp(emb, axis=0)
    assert np.all(proj.trust(np.array([far, -far])) < 1e-6)
    t = proj.trust(np.random.default_rng(5).uniform(-50, 50, size=(100, 2)))
    assert t.dtype == np.float32 and np.all((t >= 0) & (t <= 1))


def test_trust_grid_orientation_is_row_major():
    # Data only in the lower-left quadrant of the bounds (x < 0, y < 0).
    rng = np.random.default_rng(6)
    z = np.column_stack([rng.uniform(-1, 0, 3000), rng.uniform(-1, 0, 3000), rng.normal(size=3000)]).astype(np.float32)
    proj = make_projection("dims", i=0, j=1)
    proj.fit(z)
    grid = proj.trust_grid((-1, -1, 1, 1), (20, 40))
    assert grid.shape == (20, 40) and grid.dtype == np.float32
    inside = grid[:8, :16]  # rows = y from y0 up, columns = x from x0
    assert inside.min() > 0.6 and inside.mean() > 0.9
    assert grid[12:, :].max() < 0.05 and grid[:, 24:].max() < 0.05


# ----------------------------------------------------------------------------- t-SNE
def test_tsne_fit_transform_and_learned_inverse(tsne_map):
    proj, emb, z, idw_before = tsne_map
    assert emb.shape == (len(z), 2) and np.isfinite(emb).all()
    assert not proj.exact_inverse and proj.inverse_ready
    # Before fit_inverse the inverse interpolates neighbours: at a data point that is (nearly) its latent.
    np.testing.assert_allclose(idw_before, z[:50], atol=1e-2 * np.abs(z).max())
    placed = proj.transform(z[:5])
    assert placed.shape == (5, 2) and np.isfinite(placed).all()
    located = proj.locate(z[:5])
    np.testing.assert_allclose(located, emb[:5], atol=1e-3 * np.ptp(emb))


def test_learned_inverse_beats_the_mean_latent(tsne_map):
    proj, emb, z, _ = tsne_map
    # A 2-D sheet in 10-D: a map position determines the latent, so a learned inverse must do well where
    # answering the mean latent (the baseline) has relative error 1 by definition.
    assert proj.inverse_error is not None and proj.inverse_error < 0.5
    back = proj.inverse(emb)
    assert back.shape == z.shape and back.dtype == np.float32
    assert rel_error(back, z) < 0.5 * rel_error(np.broadcast_to(z.mean(0), z.shape), z)


def test_mlp_inverse_learns_a_known_chart():
    uv, z = manifold(1500)
    mlp = MLPInverse(steps=400, seed=0)
    err = mlp.fit(uv * 50.0, z)  # arbitrary map units: inputs are standardised
    assert err < 0.1
    assert rel_error(mlp(uv * 50.0), z) < 0.1


def test_tsne_cancel_stops_the_optimiser_promptly():
    z = correlated(500)
    cancel = threading.Event()
    seen: list[str] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if "iteration" in message:
            cancel.set()

    proj = make_projection("tsne", n_iter=20000, early_exaggeration_iter=50, callbacks_every=5)
    with pytest.raises(Cancelled):
        proj.fit(z, progress=progress, cancel=cancel)
    # Progress is throttled to ~10 reports a second, so the first report may come a few callbacks in; the
    # next callback after it must stop the optimiser, not 20000 iterations later.
    iterations = [m for m in seen if "iteration" in m]
    assert len(iterations) == 1 and int(iterations[0].split()[-1].split("/")[0]) < 2000
    assert not proj.fitted
    with pytest.raises(Cancelled):  # an event set beforehand stops it before any work
        make_projection("tsne").fit(z, cancel=cancel)


# ----------------------------------------------------------------------------- UMAP
def test_umap_fit_progress_and_cancel():
    z = correlated(500)
    reports: list[tuple[float, str]] = []
    proj = make_projection("umap", n_epochs=60, n_neighbors=10, inverse_steps=300)
    emb = proj.fit(z, progress=lambda f, m: reports.append((f, m)))
    assert emb.shape == (500, 2) and np.isfinite(emb).all()
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("epoch" in m for _, m in reports)
    assert proj.fit_inverse() < 1.0

    # Cancel during the layout (the tqdm hook) and before the neighbour search.
    cancel = threading.Event()

    def stop_at_first_epoch(fraction: float, message: str) -> None:
        if "epoch" in message:
            cancel.set()

    with pytest.raises(Cancelled):
        make_projection("umap", n_epochs=5000).fit(z, progress=stop_at_first_epoch, cancel=cancel)
    with pytest.raises(Cancelled):
        make_projection("umap").fit(z, cancel=cancel)


def test_umap_init_is_an_option_of_the_map():
    z = correlated(300)
    a, b = make_projection("umap", n_epochs=30), make_projection("umap", n_epochs=30, init="spectral")
    assert a.key_options["init"] == "pca" and b.key_options["init"] == "spectral"  # cached apart
    for proj in (a, b):
        assert np.isfinite(proj.fit(z)).all()
    with pytest.raises(ValueError, match="init must be one of"):
        make_projection("umap", init="umap")


def test_points_a_library_could_not_place_get_finite_positions():
    z = correlated(200, 4)
    proj = UMAPProjection()
    emb = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    emb[[3, 50]] = np.nan
    fixed = proj._finite_embedding(emb, z)
    assert np.isfinite(fixed).all()
    np.testing.assert_array_equal(np.delete(fixed, [3, 50], 0), np.delete(emb, [3, 50], 0))


# ----------------------------------------------------------------------------- registry
def test_registry_and_options():
    assert set(PROJECTIONS) == {"pca", "tsne", "umap", "dims", "parametric"}
    assert isinstance(make_projection("PCA"), PCAProjection)
    assert isinstance(make_projection("dims", i=0, j=2), DimsProjection)
    with pytest.raises(ValueError, match="unknown projection"):
        make_projection("isomap")
    with pytest.raises(ValueError, match="bad options"):
        make_projection("pca", perplexity=5)
    with pytest.raises(RuntimeError, match="not been fitted"):
        make_projection("pca").inverse([[0.0, 0.0]])


# ----------------------------------------------------------------------------- cache
def test_cache_key():
    a = cache_key("model-sha", "mnist", "tsne", {"perplexity": 30.0, "n_iter": 500})
    assert a == cache_key("model-sha", "mnist", "tsne", {"n_iter": 500, "perplexity": 30.0})
    assert a == cache_key("model-sha", "mnist", "tsne", {"n_iter": 500, "perplexity": 30.0, "n_jobs": 8})
    assert a != cache_key("model-sha", "mnist", "tsne", {"n_iter": 501, "perplexity": 30.0})
    assert a != cache_key("other", "mnist", "tsne", {"perplexity": 30.0, "n_iter": 500})
    assert len(a) == 64 and int(a, 16) >= 0


@pytest.mark.parametrize("method", ["pca", "dims"])
def test_cache_round_trip_exact_maps(tmp_path, method):
    z = correlated(300)
    proj = make_projection(method)
    proj.fit(z)
    cache = ProjectionCache(tmp_path)
    key = cache_key("m", "d", method, proj.key_options)
    assert cache.get(key) is None
    cache.put(key, proj)
    got = cache.get(key)
    assert type(got) is type(proj) and got.options == proj.options
    np.testing.assert_array_equal(got.embedding, proj.embedding)
    p = np.random.default_rng(0).normal(size=(20, 2))
    np.testing.assert_array_equal(got.inverse(p), proj.inverse(p))
    np.testing.assert_array_equal(got.transform(z[:20]), proj.transform(z[:20]))
    np.testing.assert_array_equal(got.trust(p), proj.trust(p))
    assert got.inverse_error == proj.inverse_error and got.info == proj.info
    assert [f.name for f in tmp_path.iterdir()] == [f"{key}.npz"]  # no temporary files left behind


def test_cache_round_trip_learned_map(tmp_path, tsne_map):
    proj, emb, z, _ = tsne_map
    cache = ProjectionCache(tmp_path)
    key = cache_key("m", "d", "tsne", proj.key_options)
    cache.put(key, proj)
    got = cache.get(key)
    assert got.method == "tsne" and got.inverse_ready and got.inverse_error == proj.inverse_error
    np.testing.assert_array_equal(got.embedding, emb)
    np.testing.assert_array_equal(got.inverse(emb[:30]), proj.inverse(emb[:30]))
    np.testing.assert_array_equal(got.locate(z[:5]), proj.locate(z[:5]))
    with pytest.raises(TransformUnavailableError):
        got.transform(z[:5])


def test_corrupted_cache_entries_are_misses(tmp_path):
    proj = make_projection("pca")
    proj.fit(correlated(100))
    cache = ProjectionCache(tmp_path)
    key = cache_key("m", "d", "pca", {})
    path = cache.put(key, proj)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    assert cache.get(key) is None and not path.exists()
    path.write_bytes(b"not a zip file at all")
    assert cache.get(key) is None
    with open(path, "wb") as f:  # a pickled object: refused (allow_pickle=False), not loaded
        np.savez(f, __meta__=np.array([{"x": 1}], dtype=object))
    assert cache.get(key) is None
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.array('{"format": 1, "method": "pca", "options": {}}'))  # arrays missing
    assert cache.get(key) is None
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")


# ----------------------------------------------------------------------------- encoding
def tiny_vae():
    torch.manual_seed(0)
    return build_model("vae", latent_dim=4, image_shape=(1, 8, 8), hidden=(16,))


def test_encode_dataset_batches_and_progress():
    model = tiny_vae()
    model.train()
    images = np.random.default_rng(0).integers(0, 256, size=(100, 1, 8, 8), dtype=np.uint8)
    calls: list[tuple[int, int]] = []
    z = encode_dataset(model, images, batch_size=32, progress=lambda d, t: calls.append((d, t)))
    assert z.shape == (100, 4) and z.dtype == np.float32
    assert calls == [(32, 100), (64, 100), (96, 100), (100, 100)]
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        ref = model.eval().encode(torch.from_numpy(images).float() / 255.0).numpy()
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6)


def test_encode_dataset_cancel_and_errors():
    model = tiny_vae()
    images = np.zeros((100, 1, 8, 8), np.uint8)
    cancel = threading.Event()
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        encode_dataset(model, images, batch_size=10, progress=progress, cancel=cancel)
    assert calls == [10]
    with pytest.raises(Cancelled):
        encode_dataset(model, images, cancel=cancel)
    with pytest.raises(ValueError, match="expects"):
        encode_dataset(model, np.zeros((4, 1, 28, 28), np.uint8))
    gan = build_model("gan", latent_dim=4, image_shape=(1, 8, 8), base_channels=8)
    with pytest.raises(CapabilityError, match="no encoder"):
        encode_dataset(gan, images)


# ----------------------------------------------------------------------------- import hygiene
def test_importing_latent_tools_loads_no_qt_and_no_slow_libraries():
    code = (
        "import sys, explorer.core.latent, explorer.core.latent.projection;"
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'umap', 'openTSNE', 'numba') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_state_dict_holds_no_objects():
    proj = make_projection("pca")
    proj.fit(correlated(50))
    state = proj.state_dict()
    assert all(np.asarray(v).dtype != object for v in state.values())
    assert isinstance(Projection.from_state(state), PCAProjection)
