"""Image metrics in the feature space of the data's classifier, or of a network from a file.

The features of an image are the penultimate layer (128 units) of the data's CNN
(rewards.image_classifier, trained once on the classifier split with seed 0 and cached), the same
network as the `classifier_confidence` reward; or, when `data.params.features` names one, the
output of a TorchScript network from a local file (`data.feature_net`: Inception-v3 pool features
give FID). The `classes` group always reads the data's classifier. Every group compares n_test samples of p_t with the
test set, and `fls` and `memorization` also with the real set p_t was trained on:

- `fd`: the Fréchet distance between Gaussians fitted to the two feature sets, |m1 - m2|^2 +
  tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2). On the data's classifier an FID analogue, not FID; on
  Inception-v3 pool features from a file, FID.
- `feature_prd`: precision, recall (Kynkäänniemi et al., 2019), density and coverage (Naeem et al.,
  2020) with 5-NN balls, the functions of metrics.sample_metrics applied to features (the same names
  as the pixel-space `prd` and `density_coverage` groups: list one or the other).
- `fls`: the Feature Likelihood Score (Jiralerspong et al., NeurIPS 2023) and its train/test gap.
- `classes`: the predicted-label histogram of p_t's samples (class_hist_j), its entropy, the mean
  max confidence and the classifier's held-out accuracy.
- `memorization`: the share of p_t's samples nearer to a training image than to any test image.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import logsumexp

from selfconsume.data.base import HasLabels, Images
from selfconsume.errors import ConfigError
from selfconsume.metrics.base import METRICS, MetricContext, MetricValues
from selfconsume.metrics.sample_metrics import (
    KNN_NEED,
    _batched,
    _batches,
    density_coverage,
    precision_recall,
    sq_dist,
)
from selfconsume.registry import Example, Need

if TYPE_CHECKING:
    from selfconsume.data.feature_net import FeatureNet
    from selfconsume.rewards.image_classifier import ImageClassifier

FEATURE_SEED = 0
"""Seed of the classifier whose features the metrics use (the reward's default seed)."""
FLS_ITERATIONS = 50
"""EM steps fitting the FLS bandwidths (each step an (R, n, m) array operation)."""
FLS_VAR_FLOOR = 1e-8
"""Smallest per-dimension kernel variance (normalised feature units): a centre on a training
point would otherwise shrink to 0 and its likelihood diverge."""
FLS_ORIGIN_WEIGHT = 0.5
"""Weight of the broad Gaussian at the fitted points' mean while the bandwidths are fitted."""

ON_DIGITS = Example(
    config={"data": {"kind": "digits"}, "model": {"kind": "kde", "params": {"bandwidth": 0.2}}}
)
"""The run the contract suite checks the feature metrics in: digits fitted by a KDE."""
LABELLED_IMAGES = Need(
    "labelled image data (digits, mnist, image_file with y): it reads the data's classifier",
    lambda source, model: isinstance(source, Images) and isinstance(source, HasLabels),
)
IMAGE_FEATURES = Need(
    "labelled image data (digits, mnist, image_file with y) or a feature network "
    "(data.params.features)",
    lambda source, model: (
        isinstance(source, Images)
        and (isinstance(source, HasLabels) or getattr(source, "feature_net", None) is not None)
    ),
)


class Features:
    """The feature network (the file `data.params.features` names, else the data's classifier)
    and the features of a context's samples, test set and real set, each computed once per
    generation and shared by the groups (`Features.of` keeps it on the context)."""

    def __init__(self, ctx: MetricContext) -> None:
        self.ctx = ctx

    @cached_property
    def classifier(self) -> ImageClassifier:
        """The data's classifier (the `classes` group reads it whatever the features are)."""
        from selfconsume.rewards.image_classifier import data_classifier

        return data_classifier(self.ctx.source, FEATURE_SEED)

    @cached_property
    def network(self) -> FeatureNet | ImageClassifier:
        """What the features come from: the file's network, else the data's classifier."""
        if getattr(self.ctx.source, "feature_net", None) is not None:
            return self.ctx.source.feature_network()
        return self.classifier

    @cached_property
    def samples(self) -> np.ndarray:
        return self.network.features(self.ctx.samples)

    @cached_property
    def test(self) -> np.ndarray:
        return self.network.features(self.ctx.test)

    @cached_property
    def real(self) -> np.ndarray:
        return self.network.features(self.ctx.real)

    @staticmethod
    def of(ctx: MetricContext) -> Features:
        found = vars(ctx).get("_features")
        if found is None:
            found = vars(ctx)["_features"] = Features(ctx)
        return found


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (R, f) and unbiased covariance (R, f, f) of x (R, n, f)."""
    mean = x.mean(1)
    centred = x - mean[:, None]
    return mean, np.matmul(centred.transpose(0, 2, 1), centred) / (x.shape[1] - 1)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fréchet distance (R,) between Gaussians fitted to x (R, n, f) and y (R, m, f):
    |m_x - m_y|^2 + tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2) (the squared W2 between them)."""
    mx, sx = moments(x)
    my, sy = moments(y)
    w, v = np.linalg.eigh(sx)
    root = np.matmul(v * np.sqrt(np.clip(w, 0, None))[:, None, :], v.transpose(0, 2, 1))
    eig = np.clip(np.linalg.eigvalsh(root @ sy @ root), 0, None)
    trace = np.trace(sx, axis1=1, axis2=2) + np.trace(sy, axis1=1, axis2=2)
    return ((mx - my) ** 2).sum(-1) + np.clip(trace - 2 * np.sqrt(eig).sum(-1), 0, None)


def _component_logs(d2: np.ndarray, var: np.ndarray, f: int) -> np.ndarray:
    """log N(point; centre_j, var_j I) from squared distances d2 (R, n, m) and var (R, m)."""
    return -0.5 * d2 / var[:, None, :] - 0.5 * f * np.log(2 * np.pi * var[:, None, :])


def fit_bandwidths(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Per-centre variances (R, m) of the mixture (1/m) sum_j N(c_j, var_j I) maximising the
    likelihood of `points` (R, n, f), by EM with the means and weights fixed.

    Starts at the reference implementation's value (the squared distance to the nearest point,
    per dimension); while fitting, a Gaussian at the points' mean with its own variance takes
    FLS_ORIGIN_WEIGHT of the mass, so a point far from every centre does not inflate a centre's
    variance. EM's update of an isotropic variance is var_j = sum_i r_ij d_ij / (f sum_i r_ij)."""
    f = points.shape[-1]
    d2 = sq_dist(points, centres)
    d0 = ((points - points.mean(1, keepdims=True)) ** 2).sum(-1)
    var = np.maximum(d2.min(1) / f, FLS_VAR_FLOOR)
    var0 = np.maximum(d0.mean(1) / f, FLS_VAR_FLOOR)
    log_w = np.log((1 - FLS_ORIGIN_WEIGHT) / centres.shape[1])
    for _ in range(FLS_ITERATIONS):
        logs = _component_logs(d2, var, f) + log_w
        log0 = (
            np.log(FLS_ORIGIN_WEIGHT)
            - 0.5 * d0 / var0[:, None]
            - 0.5 * f * np.log(2 * np.pi * var0[:, None])
        )
        norm = np.logaddexp(logsumexp(logs, axis=2), log0)
        resp = np.exp(logs - norm[..., None])
        resp0 = np.exp(log0 - norm)
        mass = resp.sum(1)
        fitted = (resp * d2).sum(1) / np.maximum(mass, 1e-300) / f
        var = np.where(mass > 1e-12, np.maximum(fitted, FLS_VAR_FLOOR), var)
        var0 = np.maximum((resp0 * d0).sum(1) / np.maximum(resp0.sum(1), 1e-300) / f, FLS_VAR_FLOOR)
    return var


def mixture_nll(points: np.ndarray, centres: np.ndarray, var: np.ndarray) -> np.ndarray:
    """-mean_i log((1/m) sum_j N(x_i; c_j, var_j I)) / f per replicate (R,): the dimension-adjusted
    negative log-likelihood of `points` (R, n, f)."""
    f = points.shape[-1]
    logs = _component_logs(sq_dist(points, centres), var, f)
    ll = logsumexp(logs, axis=2) - np.log(centres.shape[1])
    return -ll.mean(1) / f


def fls_scores(train: np.ndarray, test: np.ndarray, gen: np.ndarray) -> MetricValues:
    """Feature Likelihood Score (Jiralerspong et al., NeurIPS 2023) of generated features gen
    (R, m, f) given the training set train (R, n, f) and the test set test (R, k, f).

    Features are normalised by the test set's mean and std. A Gaussian mixture centred on the
    generated features gets bandwidths fitted on the training set (`fit_bandwidths`) and scores
    the test set: fls = 100 (nll_test - nll_baseline), the baseline being the same score of a
    mixture centred on h = min(m, n // 2) training points and fitted on the other n - h. Both
    mixtures have h centres (the first h generated samples), as in the reference implementation
    (10,000 generated against halves of a larger training set), so fls is about 0 for a model
    as good as fresh real data (slightly below: its bandwidths are fitted on n points, the
    baseline's on n - h) and grows as the samples get worse; lower is better. fls_gap = 100
    (nll_train - nll_test) stays near 0 for a model that generalises and is very negative when
    the samples copy training images (the reference warns below -1000: memorisation)."""
    mean, std = test.mean(1, keepdims=True), test.std(1, ddof=1, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    train, test, gen = ((a - mean) / std for a in (train, test, gen))
    half = min(gen.shape[1], train.shape[1] // 2)
    gen = gen[:, :half]
    var = fit_bandwidths(train, gen)
    nll_test, nll_train = mixture_nll(test, gen, var), mixture_nll(train, gen, var)
    base = mixture_nll(test, train[:, :half], fit_bandwidths(train[:, half:], train[:, :half]))
    return {"fls": 100 * (nll_test - base), "fls_gap": 100 * (nll_train - nll_test)}


def memorization_rate(train: np.ndarray, test: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """Share of the points of gen (R, m, f) whose nearest neighbour among the first k points of
    train and the first k of test (k = the smaller size) is a training point: 1/2 in expectation
    for samples independent of the training set, 1 for copies of it."""
    k = min(train.shape[1], test.shape[1])
    near_train = sq_dist(gen, train[:, :k]).min(-1)
    near_test = sq_dist(gen, test[:, :k]).min(-1)
    return (near_train < near_test).mean(-1)


def _per_batch(fn, *arrays: np.ndarray) -> MetricValues:
    """fn over batches of replicates whose (n, m) matrices fit the pairwise-metric budget."""
    per = sum(a.shape[1] for a in arrays) ** 2
    parts = [fn(*(a[s] for a in arrays)) for s in _batches(len(arrays[0]), per)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


@METRICS.register("fd", needs=[IMAGE_FEATURES], example=ON_DIGITS, outputs=("fd",))
def fd(ctx: MetricContext) -> MetricValues:
    """fd: Fréchet distance between the classifier features of p_t's samples and of the test set
    (on the data's own classifier an FID analogue, not FID; FID on Inception-v3 features from a
    file, data.params.features)."""
    feats = Features.of(ctx)
    if min(feats.samples.shape[1], feats.test.shape[1]) < 2:
        raise ConfigError("metrics: fd needs data.n_test >= 2")
    return {"fd": frechet_distance(feats.samples, feats.test)}


@METRICS.register(
    "feature_prd",
    needs=[IMAGE_FEATURES],
    example=ON_DIGITS,
    outputs=("precision", "recall", "density", "coverage"),
)
def feature_prd(ctx: MetricContext) -> MetricValues:
    """precision, recall, density, coverage of p_t's samples against the test set, with 5-NN balls
    in classifier feature space (the pixel-space groups are `prd` and `density_coverage`)."""
    feats = Features.of(ctx)

    def both(fake: np.ndarray, real: np.ndarray) -> MetricValues:
        return {**precision_recall(real, fake), **density_coverage(real, fake)}

    return _batched("feature_prd", both, feats.samples, feats.test, KNN_NEED)


@METRICS.register("fls", needs=[IMAGE_FEATURES], example=ON_DIGITS, outputs=("fls", "fls_gap"))
def fls(ctx: MetricContext) -> MetricValues:
    """fls: Feature Likelihood Score of p_t's samples (test set scored by a mixture centred on
    them, bandwidths fitted on the real set; 0 for a model as good as fresh real data, higher is
    worse); fls_gap: its train - test gap, very negative when p_t copies the real set."""
    feats = Features.of(ctx)
    if feats.real.shape[1] < 4 or feats.samples.shape[1] < 2:
        raise ConfigError("metrics: fls needs data.n_real >= 4 and data.n_test >= 2")
    return _per_batch(fls_scores, feats.real, feats.test, feats.samples)


@METRICS.register(
    "classes",
    needs=[LABELLED_IMAGES],
    example=ON_DIGITS,
    outputs=("class_hist_{j}", "class_entropy", "confidence_mean", "classifier_accuracy"),
)
def classes(ctx: MetricContext) -> MetricValues:
    """class_hist_j: share of p_t's samples the classifier labels j; class_entropy: the entropy of
    that histogram (nats; log n_classes when balanced, 0 when one class is left); confidence_mean:
    the mean max probability; classifier_accuracy: its accuracy on the held-out test split."""
    feats = Features.of(ctx)
    clf = feats.classifier
    proba = clf.proba(ctx.samples)
    onehot = proba.argmax(-1)[..., None] == np.arange(clf.n_classes)
    hist = onehot.mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(hist > 0, hist * np.log(hist), 0.0).sum(-1)
    out: MetricValues = {f"class_hist_{j}": hist[:, j] for j in range(clf.n_classes)}
    out["class_entropy"] = entropy
    out["confidence_mean"] = proba.max(-1).mean(-1)
    out["classifier_accuracy"] = np.full(len(hist), clf.accuracy)
    return out


@METRICS.register(
    "memorization", needs=[IMAGE_FEATURES], example=ON_DIGITS, outputs=("memorization",)
)
def memorization(ctx: MetricContext) -> MetricValues:
    """memorization: share of p_t's samples whose nearest image in classifier feature space, among
    equally many images of the real set and of the test set, is a real (training) image: about 1/2
    for a model that generalises, 1 for one that copies its training images."""
    feats = Features.of(ctx)
    return _per_batch(
        lambda r, t, g: {"memorization": memorization_rate(r, t, g)},
        feats.real,
        feats.test,
        feats.samples,
    )
