"""One contract over every registered kind (`selfconsume.testing`, as scikit-learn's estimator
checks): a kind is covered the day it is registered. Below it, plug-ins that each break one
promise show that the suite catches them."""

from __future__ import annotations

import numpy as np
import pytest

from selfconsume import kinds as table
from selfconsume.data.base import DATA
from selfconsume.data.toy2d import EightGaussians, EightGaussiansParams
from selfconsume.loop.cures import CURES, RealWeight, RealWeightParams
from selfconsume.loop.schemes import SCHEMES, Mix, MixParams
from selfconsume.loop.selection import SELECTIONS, RewardFree, RewardFreeParams
from selfconsume.metrics.base import METRICS
from selfconsume.models.base import MODELS
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.plan import build, resolve
from selfconsume.registry import Example, Params
from selfconsume.rewards.base import REWARDS
from selfconsume.testing import Unavailable, check_kind, kinds, registered


@pytest.mark.parametrize(("role", "kind"), registered())
def test_every_registered_kind_keeps_its_roles_contract(role, kind):
    try:
        check_kind(role, kind)
    except Unavailable as why:
        pytest.skip(str(why))


def test_the_suite_covers_every_kind_in_the_kinds_table():
    """What the suite runs over is every (role, kind) `selfconsume.kinds` lists, the newest too."""
    tables = {
        "data": table.DATA_KINDS,
        "model": table.MODEL_KINDS,
        "scheme": table.SCHEME_KINDS,
        "selection": table.SELECTION_KINDS,
        "cure": table.CURE_KINDS,
        "metric": table.METRIC_KINDS,
        "reward": table.REWARD_KINDS,
    }
    listed = {(role, kind) for role, t in tables.items() for kind in t}
    assert listed <= set(registered())  # plug-ins registered by other tests come on top
    newest = {("model", "transformer"), ("data", "text_file"), ("metric", "p0_perplexity")}
    newest |= {("reward", k) for k in ("lexicon", "char_class", "text_classifier")}
    newest |= {("selection", "verifier")} | {("cure", k) for k in table.CURE_KINDS}
    assert newest <= set(registered())


MEAN = {"outputs": ("mean_value",)}
"""A toy metric's declaration."""


@pytest.fixture
def plugin(monkeypatch):
    """Register a kind for one test only, as a user's module would."""

    def register(registry, kind, obj, params=Params, example=None, **declared):
        registry.kinds()  # every built-in module imported first: none registers into the copy
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        registry.register(kind, params, example=example, **declared)(obj)
        return kind

    return register


def test_a_plug_in_is_listed_and_checked_once_registered(plugin):
    class Shifted(EightGaussians):
        """8 Gaussians moved by +1 in each coordinate."""

        def sample(self, replicates, n, rng):
            return super().sample(replicates, n, rng) + 1.0

    kind = plugin(DATA, "shifted", Shifted, EightGaussiansParams)
    assert kind in kinds("data") and ("data", kind) in registered()
    check_kind("data", kind)


def test_a_source_ignoring_its_stream_is_caught(plugin):
    class Fixed(EightGaussians):
        def sample(self, replicates, n, rng):
            return super().sample(replicates, n, np.random.default_rng(0))

    kind = plugin(DATA, "fixed", Fixed, EightGaussiansParams)
    with pytest.raises(AssertionError, match="data 'fixed': The same stream .* two seeds"):
        check_kind("data", kind)


def test_a_source_whose_replicates_depend_on_their_number_is_caught(plugin):
    class Coupled(EightGaussians):
        def sample(self, replicates, n, rng):
            x = super().sample(replicates, n, rng)
            return x + x.mean(axis=0)

    kind = plugin(DATA, "coupled", Coupled, EightGaussiansParams)
    with pytest.raises(AssertionError, match="Replicate r's real set does not depend"):
        check_kind("data", kind)


def test_a_family_whose_state_does_not_round_trip_is_caught(plugin):
    class Forgetful(GaussianModel):
        def load_state_dict(self, state):
            pass

    example = Example(config={"data": {"kind": "gaussian", "params": {"dim": 2}}})
    kind = plugin(MODELS, "forgetful", Forgetful, GaussianModelParams, example)
    with pytest.raises(AssertionError, match="a model of another seed loaded with the state"):
        check_kind("model", kind)


def test_a_scheme_training_on_rows_it_never_drew_is_caught(plugin):
    class Jittered(Mix):
        def build(self, real, synthetic, weights, pool, rng):
            x, w = super().build(real, synthetic, weights, pool, rng)
            return x + 1e-9, w

    kind = plugin(SCHEMES, "jittered", Jittered, MixParams, Example({"lam": 0.5}))
    with pytest.raises(AssertionError, match="a training row is neither real nor synthetic"):
        check_kind("scheme", kind)


def test_a_filter_scoring_the_wrong_shape_is_caught(plugin):
    class Flat(RewardFree):
        def scorer(self, real, rng):
            return lambda x: np.zeros((x.shape[0], int(np.prod(x.shape[1:-1]))))

    kind = plugin(SELECTIONS, "flat_score", Flat, RewardFreeParams)
    with pytest.raises(AssertionError, match=r"scores have shape \(3, 24\)"):
        check_kind("selection", kind)


def test_a_cure_giving_negative_weights_is_caught(plugin):
    class Flipped(RealWeight):
        def weigh(self, x, weights, n_real):
            return -np.ones(x.shape[:2])

    example = Example({"real_weight": 0.5}, config={"scheme": {"kind": "mix", "lam": 0.5}})
    kind = plugin(CURES, "flipped", Flipped, RealWeightParams, example)
    with pytest.raises(AssertionError, match="weigh broke the weights"):
        check_kind("cure", kind)


def test_a_metric_with_a_name_or_shape_off_the_contract_is_caught(plugin):
    camel = lambda ctx: {"meanValue": ctx.samples.mean(axis=(1, 2))}  # noqa: E731
    kind = plugin(METRICS, "camel", camel, **MEAN)
    with pytest.raises(AssertionError, match="'meanValue' is not snake_case"):
        check_kind("metric", kind)
    pooled = lambda ctx: {"pooled": np.float64(ctx.samples.mean())}  # noqa: E731
    kind = plugin(METRICS, "pooled", pooled, outputs=("pooled",))
    with pytest.raises(AssertionError, match=r"pooled has shape \(\)"):
        check_kind("metric", kind)


def test_a_metric_that_outputs_a_name_it_did_not_declare_is_caught(plugin):
    kind = plugin(
        METRICS, "undeclared", lambda ctx: {"spread": ctx.samples.std(axis=(1, 2))}, **MEAN
    )
    with pytest.raises(AssertionError, match=r"'spread' is not in its outputs \('mean_value',\)"):
        check_kind("metric", kind)
    series = lambda ctx: {f"bin_{j}": ctx.samples[..., 0].mean(1) + j for j in range(3)}  # noqa: E731
    check_kind("metric", plugin(METRICS, "series", series, outputs=("bin_{j}",)))


def test_a_metric_must_declare_its_outputs_to_register():
    with pytest.raises(ValueError, match="must declare snake_case outputs"):
        METRICS.register("silent")
    with pytest.raises(ValueError, match="must declare snake_case outputs"):
        METRICS.register("camel_out", outputs=("meanValue",))


def test_a_metric_whose_replicates_depend_on_their_number_is_caught(plugin):
    kind = plugin(
        METRICS,
        "centred",
        lambda ctx: {"centred": ctx.real.mean((1, 2)) - ctx.real.mean()},
        outputs=("centred",),
    )
    with pytest.raises(AssertionError, match="centred of replicates 0-1 changed with R"):
        check_kind("metric", kind)


def test_a_reward_that_scores_a_batch_rather_than_each_sample_is_caught(plugin):
    def batch_relative(params, source):
        return lambda x: x[..., 0] - x[..., 0].mean()

    kind = plugin(REWARDS, "relative", batch_relative)
    with pytest.raises(AssertionError, match="a sample scores the same alone"):
        check_kind("reward", kind)


def test_a_kind_listed_but_never_registered_fails_the_suite(monkeypatch):
    monkeypatch.setattr(
        SCHEMES, "_modules", {**SCHEMES._modules, "ghost": "selfconsume.loop.schemes"}
    )
    assert ("scheme", "ghost") in registered()
    with pytest.raises(AssertionError, match="scheme 'ghost' is not registered.*unknown kind"):
        check_kind("scheme", "ghost")


def test_a_kind_needing_params_without_an_example_fails_the_suite(plugin):
    class NeedsLam(MixParams):
        lam: float  # no default: the suite cannot build it without an example

    kind = plugin(SCHEMES, "needs_lam", Mix, NeedsLam)
    with pytest.raises(AssertionError, match="'needs_lam': its example does not validate.*lam"):
        check_kind("scheme", kind)
    check_kind("scheme", plugin(SCHEMES, "given_lam", Mix, NeedsLam, Example({"lam": 0.5})))


def test_an_example_needing_a_missing_extra_is_unavailable(plugin):
    example = Example(requires=("selfconsume_no_such_module",))
    kind = plugin(DATA, "extra", EightGaussians, EightGaussiansParams, example)
    with pytest.raises(Unavailable, match="selfconsume_no_such_module"):
        check_kind("data", kind)


def test_an_unknown_role_names_the_roles():
    with pytest.raises(ValueError, match="unknown role 'family'.*data, model, scheme"):
        check_kind("family", "gmm")


def test_resolved_config_is_the_identity_and_builds_the_same_plan():
    base = {"name": "id", "data": {"kind": "gaussian", "n_real": 10}, "model": {"kind": "gaussian"}}
    spellings = [
        {},
        {"model": {"kind": "gaussian", "params": {"estimator": "unbiased"}}},
        {"data": {"kind": "gaussian", "n_real": 10, "params": {"std": 1, "dim": 1}}},
        {"scheme": {"kind": "replace", "n_synthetic": 10}},
    ]
    ids = {resolve({**base, **s}).run_id for s in spellings}
    assert len(ids) == 1
    cfg = resolve(base)
    assert cfg.data.params.std == 1.0 and cfg.scheme.params.n_synthetic == 10
    assert build(cfg).scheme.n_synthetic == 10
