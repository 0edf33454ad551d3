"""The run loop: the one place where generations happen.

Generation 0 fits the real set (once for the arms of a sweep that share it: `first_model`). Each next generation samples p_t (curated if configured), builds the
training set with the scheme, and fits p_{t+1} from scratch or warm-started; the configured cures
(`loop.cures`) act at their hooks: on p_0, on the synthetic samples, on the training weights. In
population mode the family's exact infinite-sample update replaces sampling and fitting. Every generation's metrics and
checkpoint commit together, so a rerun resumes after the last committed generation. A run whose
metrics read p_0 (`p0_perplexity`) keeps a frozen copy of the generation-0 model beside the one it
retrains; every checkpoint carries it too, so a resumed run compares with the same p_0.

The loop writes finished generations to a `Sink`: the store itself in-process; on a worker, a sink
that ships each generation back to the one process that writes the store (`sweep.wire`). What a
run resumes from (`Resume`) is read from the store by that process and handed to the loop.

A conditional family (`model.conditional`, say a class-conditional DDPM) trains on labelled real
sets (`source.sample_labelled`, the same rows as `sample`) and on its samples with their prompts
(labels drawn from p_user, curated with the prompt model). Each sample's label travels as one more
column of x through the schemes and the pool, so every scheme keeps rows and labels together
without knowing about labels; the column is split off before fitting and before the metrics.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from selfconsume.config import Config
from selfconsume.data.base import Images, draw_test_set
from selfconsume.errors import ConfigError, RunBusy, RunFailed, interrupt_behind
from selfconsume.loop.build import Plan, build, make_model
from selfconsume.loop.curation import require_kept
from selfconsume.loop.first_model import fit_first
from selfconsume.loop.schemes import Pool
from selfconsume.loop.selection import Candidates, ExactCuration, RewardFree, curate
from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.models.base import FitsIncrementally, Model
from selfconsume.store.sqlite import Store

SNAPSHOT_REPLICATES = 4
SNAPSHOT_POINTS = 2000
SNAPSHOT_IMAGE_REPLICATES = 2
SNAPSHOT_IMAGES = 16
"""Images kept per replicate and generation for the report's grids (a 4 x 4 tile)."""


class Sink(Protocol):
    """Where the loop writes each finished generation (a Store has this method)."""

    def commit_generation(
        self,
        run_id: str,
        generation: int,
        metrics: dict[str, np.ndarray],
        checkpoint: dict[str, Any],
        samples: np.ndarray | None = None,
        pool_batch: dict[str, np.ndarray] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class Resume:
    """Where a run starts: its first generation, the checkpoint before it and the pool batches
    committed so far (all empty for a fresh run)."""

    start: int = 0
    checkpoint: dict[str, Any] | None = None
    pool: list[dict[str, np.ndarray]] = field(default_factory=list)


def read_resume(store: Store, run_id: str) -> Resume:
    """The run's resume state from the store (rewinding it past its newest readable checkpoint).

    A family that keeps no pool has no pool batches stored, so this needs no plan."""
    loaded = store.load_checkpoint(run_id)
    if loaded is None:
        return Resume()
    generation, payload = loaded
    return Resume(generation + 1, payload, store.load_pool(run_id, generation))


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str  # done | failed | bad_input | busy (another live process holds the run)
    error: str | None = None


def run_config(
    cfg: Config, store: Store, on_generation: Callable[[int], None] | None = None
) -> RunOutcome:
    """Run (or resume) one config into the store.

    Bad input raises ConfigError (before any row is written when the plan cannot be built). Any other
    exception inside the run, SystemExit included (a user callable calling sys.exit), is recorded
    as `failed` with its type and message (its traceback in the store) and returned, so sibling
    runs go on. An interrupt (KeyboardInterrupt, or an exception from the caller's `on_generation`
    hook) marks the run `interrupted` and propagates; a rerun resumes it. A run another live
    process holds is skipped (`busy`)."""
    plan_error: BaseException | None = None
    try:
        plan = build(cfg)
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:  # a bug, or a user callable failing in the plan
        plan_error = exc
    try:
        record = store.begin_run(cfg)
    except RunBusy as exc:
        return RunOutcome(cfg.run_id, "busy", str(exc))
    run_id = record.run_id
    if record.status == "done":
        return RunOutcome(run_id, "done")
    if plan_error is not None:
        return _failed(store, run_id, plan_error)
    try:
        run_generations(
            plan, store, run_id, read_resume(store, run_id), _caller_hook(on_generation)
        )
    except RunBusy as exc:  # this process lost the lease: the new owner records the run
        return RunOutcome(run_id, "busy", str(exc))
    except _CallerStopped as stop:
        store.finish_run(run_id, "interrupted", f"stopped by the caller: {_one_line(stop.cause)}")
        raise stop.cause from None
    except ConfigError as exc:
        store.finish_run(run_id, "failed", f"bad input: {exc}")
        raise
    except (Exception, SystemExit) as exc:
        stop = interrupt_behind(exc)
        if not isinstance(stop, KeyboardInterrupt):
            return _failed(store, run_id, exc)
        store.finish_run(run_id, "interrupted", type(stop).__name__)
        raise stop from None
    except BaseException as exc:
        store.finish_run(run_id, "interrupted", type(exc).__name__)
        raise
    store.finish_run(run_id, "done")
    return RunOutcome(run_id, "done")


class _CallerStopped(Exception):
    """The caller's on_generation hook raised: the caller stopped the run, the run did not fail."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _caller_hook(hook: Callable[[int], None] | None) -> Callable[[int], None] | None:
    if hook is None:
        return None

    def call(t: int) -> None:
        try:
            hook(t)
        except Exception as exc:
            raise _CallerStopped(exc) from exc

    return call


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _failed(store: Store, run_id: str, exc: BaseException) -> RunOutcome:
    """Record a failure honestly: its type and message, and its traceback, in the store."""
    reason = _one_line(exc)
    store.finish_run(run_id, "failed", reason, traceback="".join(traceback.format_exception(exc)))
    return RunOutcome(run_id, "failed", reason)


def _real_set(plan: Plan, generation: int) -> np.ndarray:
    """The real sets (R, n_real, d), with the label column appended for a conditional family."""
    cfg = plan.cfg
    rng = plan.streams.per_replicate("real", generation)
    if not plan.conditional:
        return plan.source.sample(cfg.replicates, cfg.data.n_real, rng)
    x, y = plan.source.sample_labelled(cfg.replicates, cfg.data.n_real, rng)
    return with_labels(x, y)


def with_labels(x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """x (R, n, d) with the labels (R, n) as one more column (x itself when y is None)."""
    return x if y is None else np.concatenate([x, y[..., None].astype(x.dtype)], axis=-1)


def split_labels(plan: Plan, xy: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """x and the fit's `labels` keyword from an array with_labels made (none if unconditional)."""
    if not plan.conditional:
        return xy, {}
    return xy[..., :-1], {"labels": xy[..., -1].astype(np.int64)}


def _sample_curated(plan: Plan, t: int) -> tuple[np.ndarray, np.ndarray | None]:
    """p_t's (curated) samples for generation t+1's training set, with their label column when the
    family is conditional (prompts from p_user, the prompt model of curation). A reward-free
    curation scores them against the real set (generation 0's, redrawn from its stream)."""
    model, streams = plan.model, plan.streams
    rng = streams.per_replicate("synthetic", t)
    prompts = None
    if plan.conditional:
        prompt_rng = streams.per_replicate("prompts", t)
        prompts = lambda m: model.prompts(m, prompt_rng)  # noqa: E731
        sample = lambda m, y: model.sample(m, rng, t, labels=y)  # noqa: E731
    else:
        sample = lambda m, y: model.sample(m, rng, t)  # noqa: E731
    score = plan.reward
    if isinstance(plan.selection, RewardFree):  # it scores against the real set
        real = split_labels(plan, _real_set(plan, 0))[0]
        score = plan.selection.scorer(real, streams.per_replicate("filter", t))
    kept = curate(
        Candidates(sample, prompts),
        plan.scheme.n_synthetic,
        plan.selection,
        score,
        streams.per_replicate("curation", t),
    )
    return with_labels(kept.x, kept.y), kept.w


def _keeps_pool(plan: Plan) -> bool:
    """Whether the run keeps the synthetic pool (a family with sufficient statistics needs none)."""
    scheme = plan.scheme
    return scheme.accumulates and not (
        scheme.incremental and isinstance(plan.model, FitsIncrementally)
    )


def _resume(plan: Plan, resume: Resume) -> Pool:
    """Load the checkpoint into the model; the synthetic pool so far."""
    pool = Pool()
    if resume.checkpoint is None:
        return pool
    plan.model.load_state_dict(resume.checkpoint["model"])
    if _keeps_pool(plan):
        for batch in resume.pool:
            pool.append(batch["x"], batch.get("w"))
    return pool


def run_generations(
    plan: Plan,
    sink: Sink,
    run_id: str,
    resume: Resume,
    on_generation: Callable[[int], None] | None = None,
) -> None:
    """Run generations resume.start..G of a plan, committing each one to the sink."""
    cfg, model, scheme, streams = plan.cfg, plan.model, plan.scheme, plan.streams
    real = _real_set(plan, 0)
    test = draw_test_set(
        plan.source, cfg.replicates, cfg.data.n_test, streams.per_replicate("test", 0)
    )
    pool = _resume(plan, resume)
    keep_pool = _keeps_pool(plan)
    reference = _resumed_reference(plan, resume)
    for t in range(resume.start, cfg.generations + 1):
        diagnostics: dict[str, np.ndarray] = {}
        batch = None
        if t == 0 and cfg.model.population:
            model.population_start(real, plan.source)
        elif t == 0:
            x, labels = split_labels(plan, real)
            diagnostics = fit_first(plan, x, labels)
            for cure in plan.cures:
                cure.after_first(model, cfg.data.n_real, streams)
        elif cfg.model.population:
            _population_step(plan, real, t)
        else:
            if scheme.fresh_real:
                real = _real_set(plan, t)
            synthetic, weights = _sample_curated(plan, t)
            for cure in plan.cures:
                synthetic = cure.correct(synthetic, t)
            if scheme.synthetic_only and cfg.curation is not None:
                require_kept(weights, cfg.curation.kind, t)  # other schemes keep their real set
            if keep_pool:
                pool.append(synthetic, weights)
                batch = {"x": synthetic} if weights is None else {"x": synthetic, "w": weights}
            if scheme.accumulates and not keep_pool:
                diagnostics = model.fit_more(synthetic, weights)
            else:
                xy, w = scheme.build(
                    real, synthetic, weights, pool, streams.per_replicate("scheme", t)
                )
                for cure in plan.cures:
                    w = cure.weigh(xy, w, real.shape[1])
                x, labels = split_labels(plan, xy)
                diagnostics = model.fit(x, w, t, cfg.model.warm_start, **labels)
        _check_finite(diagnostics, model, t)
        if t == 0 and keeps_reference(cfg):
            reference = frozen_copy(plan, model.state_dict())
        metrics, ctx = _metrics(plan, split_labels(plan, real)[0], test, t, reference)
        metrics.update({f"train_{k}": np.asarray(v, dtype=float) for k, v in diagnostics.items()})
        checkpoint = {"model": model.state_dict()}
        if reference is not None:
            checkpoint["reference"] = reference.state_dict()
        sink.commit_generation(run_id, t, metrics, checkpoint, _snapshot(plan, ctx), batch)
        if on_generation is not None:
            on_generation(t)


def keeps_reference(cfg: Config) -> bool:
    """Whether a configured metric group reads p_0 (registered with `reference=True`)."""
    return any(METRICS.get(name).reference for name in cfg.metrics)


def frozen_copy(plan: Plan, state: dict[str, Any]) -> Model:
    """p_0 frozen: a second instance of the run's family holding a copy of generation 0's state,
    which the metrics compare p_t with while the run's model trains on."""
    reference = make_model(plan.cfg, plan.source, plan.streams)
    reference.load_state_dict(copy.deepcopy(state))
    return reference


def _resumed_reference(plan: Plan, resume: Resume) -> Model | None:
    """p_0 of a resumed run that keeps one, from its checkpoint (None for a fresh run)."""
    if resume.checkpoint is None or not keeps_reference(plan.cfg):
        return None
    if "reference" not in resume.checkpoint:
        raise RunFailed("the checkpoint holds no generation-0 model to compare with")
    return frozen_copy(plan, resume.checkpoint["reference"])


def _population_step(plan: Plan, real: np.ndarray, t: int) -> None:
    """Generation t by the family's exact update; a failure names the generation, as the sampled
    path's do (a curation that keeps no mass of a replicate under `replace`)."""
    lam = plan.scheme.population_lam()
    try:
        plan.model.population_step(real, lam, _population_curation(plan), plan.source)
    except RunFailed as exc:
        raise RunFailed(f"generation {t}: {exc}") from exc


def _population_curation(plan: Plan) -> ExactCuration | None:
    """What a family's exact update needs of the curation: the rule's exact law and the reward
    (`plan.check` made sure the rule has one)."""
    if plan.selection is None:
        return None
    return ExactCuration(plan.cfg.curation.kind, plan.selection, plan.reward)


def _check_finite(diagnostics: dict[str, np.ndarray], model: object, t: int) -> None:
    for key, value in diagnostics.items():
        if not np.all(np.isfinite(value)):
            raise RunFailed(f"generation {t}: non-finite training {key} (the run diverged)")
    for key, value in model.state_dict().items():
        if (
            isinstance(value, np.ndarray)
            and value.dtype.kind == "f"
            and not np.all(np.isfinite(value))
        ):
            raise RunFailed(
                f"generation {t}: non-finite model parameter {key!r} (the run diverged)"
            )


def _metrics(
    plan: Plan, real: np.ndarray, test: np.ndarray, t: int, reference: Model | None
) -> tuple[dict[str, np.ndarray], MetricContext]:
    """Every configured metric of generation t, and the context (its samples, drawn once; p_0
    frozen as `reference` where a group reads it)."""
    cfg = plan.cfg
    ctx = MetricContext(
        model=plan.model,
        source=plan.source,
        real=real,
        test=test,
        generation=t,
        streams=plan.streams,
        reward=plan.reward,
        beta=plan.selection.beta if plan.selection is not None else 1.0,
        population=cfg.model.population,
        reference=reference,
    )
    out: dict[str, np.ndarray] = {}
    for name in cfg.metrics:
        for key, value in METRICS.get(name).obj(ctx).items():
            out[key] = np.broadcast_to(np.asarray(value, dtype=float), (cfg.replicates,))
    return out, ctx


def _snapshot(plan: Plan, ctx: MetricContext) -> np.ndarray | None:
    """A few replicates' samples of p_t for the report: 2-D points for the scatter figures (their
    own stream), or a 4 x 4 tile of images taken from the evaluation samples the metrics drew
    (sampling an image model again would cost as much as the metrics)."""
    cfg, t = plan.cfg, ctx.generation
    if cfg.model.population:
        return None
    if isinstance(plan.source, Images):
        reps = min(SNAPSHOT_IMAGE_REPLICATES, cfg.replicates)
        return np.asarray(ctx.samples[:reps, :SNAPSHOT_IMAGES])
    if plan.source.dim != 2:
        return None
    reps = min(SNAPSHOT_REPLICATES, cfg.replicates)
    n = min(SNAPSHOT_POINTS, cfg.data.n_test)
    x = plan.model.sample(n, plan.streams.per_replicate("snapshot", t), t)
    return np.asarray(x[:reps])
