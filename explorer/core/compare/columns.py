"""Metric columns of the comparison table: names, units, which way is better, tooltips."""

from dataclasses import dataclass

# A latent dimension is active when the variance of its code (E[z|x], the posterior mean for a VAE) over the
# data exceeds this (Burda et al. 2016, "Importance Weighted Autoencoders", section 5.2).
ACTIVE_VARIANCE = 0.01
# Pixel probabilities are clamped to [eps, 1 - eps] before the log: PCA decodes clamp to exact 0 / 1 and a
# sigmoid saturates to exactly 1.0 in float32, and one such pixel would otherwise make a model's BCE infinite.
BCE_EPS = 1e-6


class CompareError(ValueError):
    """The models or data cannot be compared as asked. ``str(err)`` is a user-facing message."""


@dataclass(frozen=True)
class MetricColumn:
    name: str  # key in model_metrics' result and column in metrics.csv
    title: str  # short header for a table
    unit: str
    direction: str  # "higher" or "lower" is better, or "neither" (a trade-off; see help)
    help: str  # one sentence for a tooltip

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "title": self.title, "unit": self.unit, "direction": self.direction,
                "help": self.help}


# Descriptive columns that come first in metrics.csv (no direction).
INFO_COLUMNS: list[str] = ["model", "family", "latent_dim", "dataset", "split", "n_items", "n_samples"]

METRIC_COLUMNS: list[MetricColumn] = [
    MetricColumn("recon_bce", "Recon. BCE", "nats/image", "lower",
                 "Binary cross-entropy between each test image and its reconstruction from the encoder's code "
                 "(a VAE's posterior mean), summed over pixels: the VAE's reconstruction term without sampling."),
    MetricColumn("recon_mse", "Recon. MSE", "per pixel (0-1 scale)", "lower",
                 "Mean squared difference between test images and their reconstructions, per pixel."),
    MetricColumn("kl", "KL to prior", "nats/image", "neither",
                 "KL divergence from each image's posterior q(z|x) to the N(0, I) prior, averaged over test "
                 "images (VAEs only): the information the code carries, paid for in prior fit."),
    MetricColumn("active_dims", "Active dims", "dimensions", "higher",
                 "Latent dimensions whose code varies across test images (variance of E[z|x] above 0.01, Burda "
                 "et al.); for a plain AE the code's scale is arbitrary, so nearly all count as active."),
    MetricColumn("knn_accuracy", "kNN acc.", "fraction", "higher",
                 "Accuracy of a 5-nearest-neighbour classifier on the codes (training codes as references, test "
                 "codes as queries): whether images of one label lie together in the latent space."),
    MetricColumn("probe_accuracy", "Linear probe acc.", "fraction", "higher",
                 "Test accuracy of logistic regression on the standardised codes: how useful the code is as "
                 "features for a linear classifier."),
    MetricColumn("sample_confidence", "Sample confidence", "probability", "higher",
                 "Mean top-class probability that a small classifier trained on real images gives to images "
                 "decoded from N(0, I) samples; alone it rewards samples that are all one clear prototype."),
    MetricColumn("sample_score", "Sample score", "1 to #classes", "higher",
                 "Classifier score exp(E KL(p(y|x) || p(y))) of the prior samples (the Inception Score with our "
                 "classifier): high when samples are both clear and spread over all classes."),
    MetricColumn("sample_fd", "Sample FD", "squared feature distance", "lower",
                 "Fréchet distance between classifier features of prior samples and of real test images (FID "
                 "with our classifier): blur, holes in the prior and missing classes all raise it."),
    MetricColumn("sample_nn_rmse", "Sample NN dist.", "RMS per pixel (0-1 scale, at most 32 px a side)", "lower",
                 "RMS pixel distance from each prior sample to its nearest real training image: far above the "
                 "real images' value means off the data, but faint, blurry or copied samples also score low."),
    # Naeem et al. 2020 (compare/prdc.py), on the judge's features, with 5 neighbours; test images are the reals.
    MetricColumn("sample_precision", "Precision", "fraction", "higher",
                 "Fidelity: the fraction of prior samples that fall inside the real images' feature manifold "
                 "(within some real image's 5th-nearest-neighbour distance); blurry or off-data samples lower it."),
    MetricColumn("sample_recall", "Recall", "fraction", "higher",
                 "Diversity: the fraction of real test images that fall inside the samples' own feature manifold; "
                 "a model that draws only some kinds of image (missing classes, one hair colour) scores low."),
    MetricColumn("sample_density", "Density", "about 1 for real-like samples", "higher",
                 "How many real images' neighbourhoods hold each sample, divided by 5: about 1 when samples are "
                 "spread like real images, below where they fall in sparse or empty regions (robust to outliers)."),
    MetricColumn("sample_coverage", "Coverage", "fraction", "higher",
                 "The fraction of real test images whose neighbourhood holds at least one sample: which parts of "
                 "the data the model can generate at all (robust to outlying samples, unlike recall)."),
]
# Likelihoods (compare/likelihood.py) and disentanglement against known factors (compare/disentanglement.py).
METRIC_COLUMNS += [
    MetricColumn("neg_elbo", "-ELBO", "nats/image", "lower",
                 "Negative evidence lower bound of the test images (VAEs): an upper bound on -log p(x), the "
                 "VAE's training loss with beta = 1."),
    MetricColumn("nll_iwae", "NLL (IWAE bound)", "nats/image", "lower",
                 "Importance-weighted bound on -log p(x) with k samples of z per image (Burda et al.): tighter "
                 "than the ELBO, still an upper bound, and comparable with an exact NLL on binary images."),
    MetricColumn("nll_exact", "NLL (exact)", "nats/image", "lower",
                 "Exact negative log-likelihood of the test images under an autoregressive model (PixelCNN), "
                 "of the binarised images for Bernoulli output."),
    MetricColumn("bits_per_dim", "Bits/dim", "bits per pixel value", "lower",
                 "The tightest likelihood figure (exact, else the IWAE bound) divided by C x H x W x ln 2."),
    MetricColumn("mig", "MIG", "0 to 1", "higher",
                 "Mutual information gap against the data's true factors: how much more one unit knows about "
                 "each factor than the next best unit, relative to the factor's entropy (Chen et al., 2018)."),
    MetricColumn("dci_disentanglement", "DCI disent.", "0 to 1", "higher",
                 "DCI disentanglement: whether each latent unit's importance goes to a single factor "
                 "(Eastwood & Williams 2018; random-forest importances)."),
    MetricColumn("dci_completeness", "DCI complete.", "0 to 1", "higher",
                 "DCI completeness: whether each factor is captured by a single latent unit."),
    MetricColumn("dci_informativeness", "DCI inform.", "R^2 (0 to 1)", "higher",
                 "DCI informativeness: mean held-out R^2 of predicting each factor from the whole code."),
]
_METRIC_NAMES = [c.name for c in METRIC_COLUMNS]
