"""Sample-based metrics of p_t against the truth: kernel and energy distances, mode coverage,
k-NN precision / recall / density / coverage, and likelihoods.

Each compares n_test samples of p_t (`ctx.samples`) with the held-out test set (`ctx.test`). Pairwise
metrics use the first MAX_POINTS points of each side (the points are i.i.d., so these are a uniform
subsample) and work on batches of replicates so their distance matrices stay under CHUNK_ELEMENTS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from selfconsume.data.base import HasDensity, HasModes, data_is
from selfconsume.errors import ConfigError
from selfconsume.metrics.base import METRICS, MetricContext, MetricValues
from selfconsume.models.base import HasLogProb
from selfconsume.registry import Need

MAX_POINTS = 2000
CHUNK_ELEMENTS = 2**24  # elements of the distance matrices held at once (128 MiB of float64)
K_NEIGHBOURS = 5
KNN_NEED = K_NEIGHBOURS + 1
HIGH_QUALITY_STDS = 3.0
COVERED_FRACTION = 0.1


def sq_dist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (R, n, m) between x (R, n, d) and y (R, m, d)."""
    sq = np.matmul(x, y.transpose(0, 2, 1))
    sq *= -2
    sq += (x**2).sum(-1)[:, :, None]
    sq += (y**2).sum(-1)[:, None, :]
    return np.maximum(sq, 0, out=sq)


def _batches(r: int, per_replicate: int) -> Iterator[slice]:
    """Slices of replicates whose temporaries (per_replicate elements each) fit CHUNK_ELEMENTS."""
    step = max(1, CHUNK_ELEMENTS // max(per_replicate, 1))
    for start in range(0, r, step):
        yield slice(start, start + step)


def _batched(
    name: str,
    fn: Callable[[np.ndarray, np.ndarray], MetricValues],
    x: np.ndarray,
    y: np.ndarray,
    need: int = 2,
) -> MetricValues:
    """Apply fn to the first MAX_POINTS points of x and y, batch of replicates by batch; metric
    `name` needs at least `need` points on each side."""
    if min(x.shape[1], y.shape[1]) < need:
        raise ConfigError(f"metrics: {name} needs data.n_test >= {need}")
    x, y = x[:, :MAX_POINTS], y[:, :MAX_POINTS]
    per_replicate = (x.shape[1] + y.shape[1]) ** 2
    parts = [fn(x[s], y[s]) for s in _batches(len(x), per_replicate)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _offdiag_mean(k: np.ndarray) -> np.ndarray:
    """Mean of the off-diagonal entries of square matrices k (R, n, n): (R,)."""
    n = k.shape[1]
    return (k.sum((1, 2)) - np.trace(k, axis1=1, axis2=2)) / (n * (n - 1))


def median_bandwidth(y: np.ndarray) -> np.ndarray:
    """Median heuristic: the median distance between distinct points of y (R, m, d): (R,)."""
    d = sq_dist(y, y)
    iu = np.triu_indices(y.shape[1], k=1)
    return np.sqrt(np.median(d[:, iu[0], iu[1]], axis=1))


def mmd_rbf(
    x: np.ndarray, y: np.ndarray, bandwidth: np.ndarray | float | None = None
) -> np.ndarray:
    """Unbiased estimate of MMD^2 with the RBF kernel exp(-|a-b|^2 / (2 h^2)) between x (R, n, d)
    and y (R, m, d): (R,). h is `bandwidth` (scalar or per replicate) or the median heuristic on y."""
    h = median_bandwidth(y) if bandwidth is None else np.broadcast_to(bandwidth, (len(x),))
    scale = -1 / (2 * np.asarray(h, dtype=float) ** 2)[:, None, None]
    kxx = np.exp(scale * sq_dist(x, x))
    kyy = np.exp(scale * sq_dist(y, y))
    kxy = np.exp(scale * sq_dist(x, y))
    return _offdiag_mean(kxx) + _offdiag_mean(kyy) - 2 * kxy.mean((1, 2))


def energy_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unbiased estimate of the energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (Székely and Rizzo;
    no square root) between x (R, n, d) and y (R, m, d): (R,)."""
    dxx = np.sqrt(sq_dist(x, x))
    dyy = np.sqrt(sq_dist(y, y))
    dxy = np.sqrt(sq_dist(x, y))
    return 2 * dxy.mean((1, 2)) - _offdiag_mean(dxx) - _offdiag_mean(dyy)


def knn_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each point of x (R, n, d) to its k-th nearest other point of x: (R, n)."""
    return np.sqrt(np.partition(sq_dist(x, x), k, axis=-1)[..., k])


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = K_NEIGHBOURS) -> MetricValues:
    """Improved precision and recall (Kynkäänniemi et al., 2019): the fraction of fake points inside
    the union of the real points' k-NN balls, and of real points inside the fakes' balls: (R,) each."""
    r_real, r_fake = knn_radius(real, k) ** 2, knn_radius(fake, k) ** 2
    d = sq_dist(real, fake)
    precision = (d <= r_real[:, :, None]).any(axis=1).mean(-1)
    recall = (d <= r_fake[:, None, :]).any(axis=2).mean(-1)
    return {"precision": precision, "recall": recall}


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = K_NEIGHBOURS) -> MetricValues:
    """Density and coverage (Naeem et al., 2020) with the real points' k-NN balls: density is the
    mean number of balls holding a fake point over k, coverage the fraction of balls holding one."""
    inside = sq_dist(real, fake) <= knn_radius(real, k)[:, :, None] ** 2
    return {"density": inside.sum(1).mean(-1) / k, "coverage": inside.any(axis=2).mean(-1)}


@METRICS.register("mmd", outputs=("mmd",))
def mmd(ctx: MetricContext) -> MetricValues:
    """mmd: unbiased estimate of the squared MMD (RBF kernel) between samples of p_t and the test
    set (can dip below 0); bandwidth = median distance within the test set, so it stays fixed
    across generations."""
    return _batched("mmd", lambda x, y: {"mmd": mmd_rbf(x, y)}, ctx.samples, ctx.test)


@METRICS.register("energy", outputs=("energy_distance",))
def energy(ctx: MetricContext) -> MetricValues:
    """energy_distance: unbiased 2 E|X-Y| - E|X-X'| - E|Y-Y'| between samples of p_t and the
    test set (0 iff the distributions agree)."""
    return _batched(
        "energy", lambda x, y: {"energy_distance": energy_distance(x, y)}, ctx.samples, ctx.test
    )


def mode_stats(
    x: np.ndarray, modes: np.ndarray, mode_std: float, weights: np.ndarray
) -> MetricValues:
    """Mode statistics of x (R, n, d) for a mixture with point modes (M, d): see `modes_metric`."""
    d2 = sq_dist(x, np.broadcast_to(modes, (len(x), *modes.shape)))
    nearest = d2.argmin(-1)
    good = d2.min(-1) <= (HIGH_QUALITY_STDS * mode_std) ** 2
    onehot = nearest[..., None] == np.arange(len(modes))
    mass = onehot.mean(1)
    good_mass = (onehot & good[..., None]).mean(1)
    out: MetricValues = {
        "modes_covered": (good_mass >= COVERED_FRACTION * weights).sum(-1).astype(float),
        "high_quality": good.mean(-1),
    }
    out.update({f"mass_{j}": mass[:, j] for j in range(len(modes))})
    return out


@METRICS.register(
    "modes",
    needs=[data_is(HasModes, "a mixture truth with point modes")],
    outputs=("modes_covered", "high_quality", "mass_{j}"),
)
def modes_metric(ctx: MetricContext) -> MetricValues:
    """For mixture truths with point modes (else nothing): modes_covered (modes whose high-quality
    samples make at least 10% of the mode's weight), high_quality (fraction of samples within
    3 mode_std of a mode) and mass_j (fraction of samples whose nearest mode is j)."""
    src = ctx.source
    return mode_stats(ctx.samples, src.modes, src.mode_std, src.mode_weights)


@METRICS.register("prd", outputs=("precision", "recall"))
def prd(ctx: MetricContext) -> MetricValues:
    """precision (fraction of samples of p_t inside the test set's 5-NN manifold) and recall
    (fraction of test points inside the samples' 5-NN manifold), Kynkäänniemi et al. 2019."""
    return _batched("prd", lambda x, y: precision_recall(y, x), ctx.samples, ctx.test, KNN_NEED)


@METRICS.register("density_coverage", outputs=("density", "coverage"))
def density_coverage_metric(ctx: MetricContext) -> MetricValues:
    """density (expected 1 when p_t equals the truth) and coverage (fraction of test points whose
    5-NN ball holds a sample of p_t), Naeem et al. 2020."""
    return _batched(
        "density_coverage", lambda x, y: density_coverage(y, x), ctx.samples, ctx.test, KNN_NEED
    )


NLL_NEED = Need(
    "a model with log_prob or a truth with a density",
    lambda source, model: isinstance(model, HasLogProb) or isinstance(source, HasDensity),
)


@METRICS.register("nll", needs=[NLL_NEED], outputs=("nll_test", "nll_samples_truth"))
def nll(ctx: MetricContext) -> MetricValues:
    """nll_test: -mean log p_t(test) (if the model has log_prob); nll_samples_truth: -mean log
    p_truth(samples of p_t) (if the truth has log_prob; +inf when a sample falls where the truth
    has no density, as off the checkerboard)."""
    out: MetricValues = {}
    if isinstance(ctx.model, HasLogProb):
        out["nll_test"] = -ctx.model.log_prob(ctx.test).mean(-1)
    if isinstance(ctx.source, HasDensity):
        out["nll_samples_truth"] = -ctx.source.log_prob(ctx.samples).mean(-1)
    return out
