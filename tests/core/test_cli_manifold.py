"""`latent-explorer export manifold`: the decoded manifold as a PNG, headless, on a PCA model of the digits."""

import json

import numpy as np
import pytest
from PIL import Image

from explorer import cli


@pytest.fixture(scope="module")
def pca_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("manifold") / "digits-pca.safetensors"
    assert cli.main(["train", "--model", "pca", "--latent-dim", "2", "--dataset", "digits", "--no-progress",
                     "--out", str(path)]) == 0
    return path


def run(capsys, *args):
    code = cli.main([*args])
    out, err = capsys.readouterr()
    return code, out, err


def test_manifold_png_matches_the_core_mosaic(pca_model, tmp_path, capsys):
    from explorer.core import checkpoint
    from explorer.core.data import load_dataset
    from explorer.core.latent.encoding import encode_dataset
    from explorer.core.latent.manifold import decode_manifold
    from explorer.core.latent.projection import PCAProjection

    out = tmp_path / "m.png"
    code, stdout, err = run(capsys, "export", "manifold", str(pca_model), "--dataset", "digits", "--grid", "6",
                            "--scale", "2", "--out", str(out))
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    r, c = summary["rows"], summary["cols"]
    assert max(r, c) == 6 and summary["projection"] == "pca"
    with Image.open(out) as im:
        pic = np.asarray(im.convert("RGB"))
    assert pic.shape == (r * 8 * 2, c * 8 * 2, 3)
    # the same picture the core composes for those bounds (exact inverse: every tile trusted)
    model = checkpoint.load(pca_model)
    proj = PCAProjection()
    proj.fit(encode_dataset(model, load_dataset("digits").images[:5000]))
    m = decode_manifold(model, proj, summary["bounds"], r, c)
    assert np.abs(m.mosaic(scale=2).astype(int) - pic.astype(int)).max() <= 1
    assert summary["trusted_tiles"] == r * c


def test_manifold_refuses_bad_options(pca_model, tmp_path, capsys):
    code, _, err = run(capsys, "export", "manifold", str(pca_model), "--out", str(tmp_path / "m.gif"))
    assert code != 0 and ".png" in err
    code, _, err = run(capsys, "export", "manifold", str(pca_model), "--grid", "100", "--out", str(tmp_path / "m.png"))
    assert code != 0 and "--grid" in err
    code, _, err = run(capsys, "export", "manifold", str(pca_model), "--projection", "dims", "--dims", "0,5",
                       "--out", str(tmp_path / "m.png"))
    assert code != 0 and "--dims" in err
    code, _, err = run(capsys, "export", "manifold", str(pca_model), "--bounds", "0", "0", "nan", "1",
                       "--out", str(tmp_path / "m.png"))
    assert code != 0 and "bounds" in err
