"""``latent-explorer --bundle-check``: what a frozen bundle needs beyond the CLI, checked headless.

Run by ``packaging/smoke.sh`` on a built bundle (and usable from a source checkout). It fits t-SNE and UMAP in
the projection child process, which in a frozen app is this executable started again ("spawn" +
``freeze_support``) and needs openTSNE, umap-learn, pynndescent and numba (with a place for its kernel cache)
inside the bundle; then it loads the demo checkpoints from the bundled resources. Prints one JSON line; exit
status 0 when everything worked.
"""

from __future__ import annotations

import json
import sys
import time


def run() -> int:
    import numpy as np
    import torch

    from explorer import __version__
    from explorer.core import load_model
    from explorer.core.latent.isolated import ProjectionProcess
    from explorer.gui.main_window import DEMO_MODELS, FACES_DEMO

    report: dict[str, object] = {"version": __version__, "torch": torch.__version__,
                                 "frozen": bool(getattr(sys, "frozen", False))}
    for path in [*DEMO_MODELS, FACES_DEMO]:
        report[path.name] = list(load_model(path).sample(2).shape)  # decodes: the weights load and run
    z = np.random.default_rng(0).normal(size=(600, 8)).astype(np.float32)
    proc = ProjectionProcess()
    try:
        for method, options in (("tsne", {"n_iter": 250, "early_exaggeration_iter": 100}), ("umap", {"n_epochs": 30})):
            t0 = time.perf_counter()
            proj = proc.fit(method, z, options, inverse=False)
            positions = proj.embedding
            if positions is None or positions.shape != (len(z), 2) or not np.isfinite(positions).all():
                raise RuntimeError(f"{method}: bad map {None if positions is None else positions.shape}")
            report[method + "_seconds"] = round(time.perf_counter() - t0, 1)
    finally:
        proc.close()
    report["ok"] = True
    print(json.dumps(report), flush=True)
    return 0
