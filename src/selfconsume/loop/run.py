"""The run loop: the one place where generations happen.

Generation 0 fits the real set. Each next generation samples p_t (curated if configured), builds the
training set with the scheme, and fits p_{t+1} from scratch or warm-started; in population mode the
family's exact infinite-sample update replaces sampling and fitting. Every generation's metrics and
checkpoint commit together, so a rerun resumes after the last committed generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from selfconsume.config import Config
from selfconsume.errors import ConfigError, RunFailed
from selfconsume.loop.curation import curate, require_kept
from selfconsume.loop.schemes import Pool
from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.models.base import FitsIncrementally
from selfconsume.plan import Plan, build
from selfconsume.store.sqlite import Store

SNAPSHOT_REPLICATES = 4
SNAPSHOT_POINTS = 2000


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str  # done | failed | bad_input
    error: str | None = None


def run_config(
    cfg: Config, store: Store, on_generation: Callable[[int], None] | None = None
) -> RunOutcome:
    """Run (or resume) one config into the store. Bad input raises ConfigError; a failure inside
    the loop is recorded in the store and returned as a failed outcome."""
    plan = build(cfg)
    record = store.begin_run(cfg)
    if record.status == "done":
        return RunOutcome(record.run_id, "done")
    try:
        _loop(plan, store, record.run_id, on_generation)
    except ConfigError as exc:
        store.finish_run(record.run_id, "failed", f"bad input: {exc}")
        raise
    except (RunFailed, FloatingPointError, np.linalg.LinAlgError, ValueError, RuntimeError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        store.finish_run(record.run_id, "failed", reason)
        return RunOutcome(record.run_id, "failed", reason)
    store.finish_run(record.run_id, "done")
    return RunOutcome(record.run_id, "done")


def _real_set(plan: Plan, generation: int) -> np.ndarray:
    cfg = plan.cfg
    return plan.source.sample(
        cfg.replicates, cfg.data.n_real, plan.streams.per_replicate("real", generation)
    )


def _keeps_pool(plan: Plan) -> bool:
    """Whether the run keeps the synthetic pool (a family with sufficient statistics needs none)."""
    scheme = plan.scheme
    return scheme.accumulates and not (
        scheme.incremental and isinstance(plan.model, FitsIncrementally)
    )


def _resume(plan: Plan, store: Store, run_id: str) -> tuple[int, Pool]:
    """The first generation to run and the synthetic pool so far, from the store."""
    pool = Pool()
    checkpoint = store.load_checkpoint(run_id)
    if checkpoint is None:
        return 0, pool
    generation, saved = checkpoint
    plan.model.load_state_dict(saved["model"])
    if _keeps_pool(plan):
        for batch in store.load_pool(run_id, generation):
            pool.append(batch["x"], batch.get("w"))
    return generation + 1, pool


def _loop(
    plan: Plan, store: Store, run_id: str, on_generation: Callable[[int], None] | None
) -> None:
    cfg, model, scheme, streams = plan.cfg, plan.model, plan.scheme, plan.streams
    real = _real_set(plan, 0)
    test = plan.source.sample(cfg.replicates, cfg.data.n_test, streams.per_replicate("test", 0))
    start, pool = _resume(plan, store, run_id)
    keep_pool = _keeps_pool(plan)
    for t in range(start, cfg.generations + 1):
        diagnostics: dict[str, np.ndarray] = {}
        batch = None
        if t == 0 and cfg.model.population:
            model.population_start(real, plan.source)
        elif t == 0:
            diagnostics = model.fit(real, None, 0, False)
        elif cfg.model.population:
            lam = scheme.population_lam()
            model.population_step(real, lam, _population_curation(plan), plan.source)
        else:
            if scheme.fresh_real:
                real = _real_set(plan, t)
            synthetic, weights = curate(
                lambda m, t=t: model.sample(m, streams.per_replicate("synthetic", t), t),
                scheme.n_synthetic,
                cfg.curation,
                plan.reward,
                streams.per_replicate("curation", t),
            )
            if scheme.population_lam() is None and cfg.curation is not None:
                require_kept(weights, cfg.curation, t)  # other schemes keep their real set
            if keep_pool:
                pool.append(synthetic, weights)
                batch = {"x": synthetic} if weights is None else {"x": synthetic, "w": weights}
            if scheme.accumulates and not keep_pool:
                diagnostics = model.fit_more(synthetic, weights)
            else:
                x, w = scheme.build(
                    real, synthetic, weights, pool, streams.per_replicate("scheme", t)
                )
                diagnostics = model.fit(x, w, t, cfg.model.warm_start)
        _check_finite(diagnostics, model, t)
        metrics = _metrics(plan, real, test, t)
        metrics.update({f"train_{k}": np.asarray(v, dtype=float) for k, v in diagnostics.items()})
        store.commit_generation(
            run_id, t, metrics, {"model": model.state_dict()}, _snapshot(plan, t), batch
        )
        if on_generation is not None:
            on_generation(t)


def _population_curation(plan: Plan) -> object:
    """What a family's exact update needs of the curation: the config and the reward."""
    if plan.cfg.curation is None:
        return None
    return (plan.cfg.curation, plan.reward)


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


def _metrics(plan: Plan, real: np.ndarray, test: np.ndarray, t: int) -> dict[str, np.ndarray]:
    cfg = plan.cfg
    ctx = MetricContext(
        model=plan.model,
        source=plan.source,
        real=real,
        test=test,
        generation=t,
        streams=plan.streams,
        reward=plan.reward,
        beta=cfg.curation.beta if cfg.curation is not None else 1.0,
        population=cfg.model.population,
    )
    out: dict[str, np.ndarray] = {}
    for name in cfg.metrics:
        for key, value in METRICS.get(name).obj(ctx).items():
            out[key] = np.broadcast_to(np.asarray(value, dtype=float), (cfg.replicates,))
    return out


def _snapshot(plan: Plan, t: int) -> np.ndarray | None:
    """A few replicates' samples of p_t, kept for the scatter figures of 2-D data."""
    if plan.source.dim != 2 or plan.cfg.model.population:
        return None
    reps = min(SNAPSHOT_REPLICATES, plan.cfg.replicates)
    n = min(SNAPSHOT_POINTS, plan.cfg.data.n_test)
    x = plan.model.sample(n, plan.streams.per_replicate("snapshot", t), t)
    return np.asarray(x[:reps])
