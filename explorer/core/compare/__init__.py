"""Compare models trained on the same data: metrics, aligned maps, densities, rate–distortion.

Modules: ``columns`` (what each metric means), ``metrics`` (the per-model table), ``judge`` (the in-domain
sample classifier), ``alignment`` (Procrustes, bounds, densities), ``distortion`` (rate-distortion), ``render`` (PNG maps),
``report`` (``write_comparison``). The decoder swap is :mod:`explorer.core.swap`; the face styles it trains on
are :mod:`explorer.core.data.face_styles`.

Qt-free (torch, numpy, scikit-learn, Pillow), so the comparison view, the ``compare`` command and tests share it::

    from explorer.core.compare import model_metrics, write_comparison
    row = model_metrics(vae, data)                        # dict: recon_bce, kl, knn_accuracy, sample_score, ...
    write_comparison([ae, vae], data, "out/", names=["ae", "vae"])   # maps, sample grids, metrics.csv

What each metric means, its unit and which way is better is in :data:`METRIC_COLUMNS` (the GUI's tooltips).

Sample quality
--------------
Prior samples (decoded ``z ~ N(0, I)``) are judged by a small MLP classifier trained once per data set on its
training images (:func:`sample_judge`, cached in memory). Three figures come from it:

* ``sample_confidence``: mean max-softmax probability (is each sample clearly *some* class?);
* ``sample_score``: the "classifier score" ``exp(E_x KL(p(y|x) || p(y)))`` of Salimans et al. (2016), the
  Inception Score with our classifier: between 1 and the number of classes, high when samples are both
  confident and spread over the classes, so it also punishes a model whose samples are all the same digit;
* ``sample_fd``: the Fréchet distance (Heusel et al. 2017, FID with our classifier's 128-d penultimate
  features) between the samples and real test images: lower is better; it compares whole distributions,
  so blur, holes and missing modes all raise it.

and one is model-free: ``sample_nn_rmse``, the RMS pixel distance from each sample to its nearest real
training image. ``metrics.json`` also holds all four for real test images, as the scale of a perfect model.

Which to trust (measured on MNIST, latent 16; ``sample_fd`` is the headline figure):

* the bundled demo pair (10 epochs on 60k): FD 25 (VAE) vs 385 (AE), score 4.8 vs 1.5, confidence 0.76 vs
  0.37: every classifier figure agrees with the eye (an AE's N(0, I) samples are faint smudges);
* after 2 epochs on 10k images (the test): FD ~145 vs ~250 and score ~2.0 vs ~1.7 still rank the VAE first,
  but confidence ranks the *AE* first (~0.74 vs ~0.66): its N(0, I) samples all fall near the centre of its
  much wider code cloud and decode to a few clear prototypes. Confidence alone rewards such collapse;
* ``sample_nn_rmse`` ranks the demo AE first (0.157 vs 0.182, real images 0.170): faint smudges are close
  to every digit in L2. It is a sanity figure (far above the real-image value means off the data), not a
  ranking.
"""


from __future__ import annotations

from .alignment import (
    align_maps,
    apply_alignment,
    data_density,
    map_bounds,
    prior_density,
    procrustes_align,
)
from .columns import (
    ACTIVE_VARIANCE,
    INFO_COLUMNS,
    METRIC_COLUMNS,
    CompareError,
    MetricColumn,
)
from .common import check_compatible, model_names
from .distortion import pca_baselines, rate_distortion
from .judge import SampleJudge, frechet_distance, prior_images, sample_judge
from .metrics import model_metrics, reconstruction_error, reference_metrics
from .render import label_colours, render_map
from .report import write_comparison

__all__ = [
    "ACTIVE_VARIANCE",
    "CompareError",
    "INFO_COLUMNS",
    "METRIC_COLUMNS",
    "MetricColumn",
    "SampleJudge",
    "align_maps",
    "apply_alignment",
    "check_compatible",
    "data_density",
    "frechet_distance",
    "label_colours",
    "map_bounds",
    "model_metrics",
    "model_names",
    "pca_baselines",
    "prior_density",
    "prior_images",
    "procrustes_align",
    "rate_distortion",
    "reconstruction_error",
    "reference_metrics",
    "render_map",
    "sample_judge",
    "write_comparison",
]
