"""Curation figures: reward statistics and mass per state by generation, exact update overlaid.

For discrete runs the exact population update (selfconsume.theory.curation) is drawn dashed from
p_0 = p_data, with the K -> inf limit dotted; sampled runs should follow it within their interval.
Without real data the K -> inf limit has a closed form, p_t ∝ p_data e^{t beta r} (the RLHF
optimum at KL coefficient 1/(t beta)), drawn as open circles on the dotted line.
The update needs the reward of every state: it is rebuilt only for the analytic built-in kinds
(ANALYTIC_REWARDS), so that drawing a report never imports a user's `callable` reward.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfconsume.config import Config
from selfconsume.data.discrete import DiscreteSource
from selfconsume.errors import ConfigError
from selfconsume.loop.selection import Selection, build_selection
from selfconsume.metrics.curation import exact_reward_stats
from selfconsume.report.base import Experiment, Figure, RunData, figure_maker, save
from selfconsume.report.curves import legend_columns, plot_metric, run_color
from selfconsume.report.labels import population_lam
from selfconsume.rewards import toy  # noqa: F401  (registers the analytic rewards below)
from selfconsume.rewards.base import build_reward
from selfconsume.theory import curation as theory

PANELS = ("reward_mean", "exp_reward_mean", "exp_reward_var")
MASS = re.compile(r"mass_(\d+)$")
ANALYTIC_REWARDS = frozenset({"table", "linear", "distance"})


def _is_discrete(cfg: Config) -> bool:
    """A discrete run whose exact update can be drawn: discrete data and model, an analytic reward
    that fits the data (the report runs no `check`), fully synthetic or mixed."""
    reward = cfg.curation.reward if cfg.curation is not None else None
    if not (
        cfg.data.kind == "discrete"
        and cfg.model.kind == "discrete"
        and reward is not None
        and reward.kind in ANALYTIC_REWARDS
        and cfg.scheme.kind in ("replace", "mix")
    ):
        return False
    try:
        _setting(cfg)
    except ConfigError:
        return False
    return True


def _setting(cfg: Config, k: float | None = None) -> tuple[np.ndarray, Selection, np.ndarray]:
    """p_data, the selection rule (k overriding its K) and the reward of every state of a
    discrete run's config."""
    source = DiscreteSource(cfg.data.params)
    cur = cfg.curation
    params = cur.params if k is None else cur.params.model_copy(update={"k": k})
    reward = build_reward(cur.reward.kind, cur.reward.params, source)
    rule = build_selection(cur.kind, params, source)
    return source.probs, rule, reward(np.arange(source.n_states)[:, None])


def exact_trajectory(cfg: Config, generations: int, k: float | None = None) -> np.ndarray:
    """Exact p_0..p_G (G+1, S) of a discrete run's config from p_0 = p_data, by the rule's exact
    law (`population`); k overrides K."""
    p_data, rule, rewards = _setting(cfg, k)
    lam, probs = population_lam(cfg), [p_data]
    for _ in range(generations):
        probs.append(theory.mixed(p_data, rule.population(probs[-1], rewards), lam))
    return np.array(probs)


def _exact_stats(cfg: Config, generations: int, k: float | None = None) -> dict:
    """Exact reward statistics along the trajectory (each (G+1,)), and e^{beta r*}."""
    _, rule, rewards = _setting(cfg)
    stats = exact_reward_stats(exact_trajectory(cfg, generations, k), rewards, rule.beta)
    return stats | {"best": np.exp(rule.beta * rewards.max())}


def rlhf_stats(cfg: Config, generations: int) -> dict:
    """Reward statistics of the closed-form K → ∞ limit of pure curation, p_t ∝ p_data e^{t β r}
    (the KL-regularised optimum at coefficient 1/(t β)), t = 0..generations (each (G+1,))."""
    p_data, rule, rewards = _setting(cfg)
    probs = np.array(
        [theory.iterated_tilt(p_data, rewards, rule.beta, t) for t in range(generations + 1)]
    )
    return exact_reward_stats(probs, rewards, rule.beta)


def _curated(exp: Experiment, metric: str) -> list[RunData]:
    return [r for r in exp.runs if r.config.curation is not None and metric in r.metrics]


@figure_maker
def reward_curves(exp: Experiment, out: Path) -> list[Figure]:
    """Mean reward, E[e^{beta r}] and Var[e^{beta r}] by generation, exact update overlaid."""
    runs = _curated(exp, "reward_mean")
    if not runs:
        return []
    shown = [m for m in PANELS if any(m in run.metrics for run in runs)]  # none of e^{βr} at β = ∞
    width = 4.3 * max(len(shown), 2)  # room for the legend under one panel
    fig, row = plt.subplots(1, len(shown), figsize=(width, 3.6), squeeze=False)
    axes = dict(zip(shown, row[0], strict=True))
    limits_drawn: set[float | None] = set()
    for i, run in enumerate(runs):
        color = run_color(i)
        for metric, ax in axes.items():
            if metric in run.metrics:
                plot_metric(ax, run, metric, color)
        if not _is_discrete(run.config) or "exp_reward_mean" not in run.metrics:
            continue
        generations = run.metrics["exp_reward_mean"].shape[0] - 1
        exact = _exact_stats(run.config, generations)
        lam = population_lam(run.config)
        limit = None
        if run.config.curation.kind == "bradley_terry" and lam not in limits_drawn:
            limits_drawn.add(lam)
            limit = _exact_stats(run.config, generations, k=float("inf"))
        tilt = None
        if limit is not None and lam is None and np.isfinite(run.config.curation.params.beta):
            tilt = rlhf_stats(run.config, generations)
        for metric, ax in axes.items():
            ax.plot(exact[metric], ls="--", lw=1, color=color)
            if limit is not None:
                label = "K → ∞" + ("" if lam is None else f", λ = {lam:g}")
                ax.plot(limit[metric], ls=":", lw=1.2, color="k", label=label)
            if tilt is not None:
                label = "p₀ exp(tβr) / Z: KL-regularised optimum, coefficient 1/(tβ)"
                ax.plot(tilt[metric], "o", mfc="none", mec="k", ms=5, label=label)
        axes["exp_reward_mean"].axhline(exact["best"], color="grey", lw=0.6)
    for metric, ax in axes.items():
        ax.set(xlabel="generation", title=metric)
    handles, labels = axes["reward_mean"].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=legend_columns(labels), fontsize=7)
    return [
        save(
            fig,
            exp.path(out, "reward"),
            f"{exp.name}: reward under curated retraining",
            "Mean over replicates with its 95% t-interval, one colour per run (E[e^{β r}] and its "
            "variance are not stored at β = ∞). Discrete runs with an "
            "analytic reward: the exact population update from p_data dashed, its K → ∞ limit "
            "dotted, e^{β r*} in grey. Open circles: the closed form of the K → ∞ limit of pure "
            "curation, p_t ∝ p_data e^{tβr}, the maximiser of E_q[r] − KL(q ‖ p_data)/(tβ) "
            "(RLHF with coefficient 1/(tβ)); they sit on the dotted line.",
            rect=(0, 0.04 + 0.05 * (-(-len(labels) // legend_columns(labels))), 1, 1),
        )
    ]


def _mass(run: RunData) -> np.ndarray:
    """Mean mass per state over replicates, (G+1, S)."""
    names = sorted((int(m[1]), k) for k in run.metrics if (m := MASS.match(k)))
    return np.stack([run.metrics[k].mean(axis=1) for _, k in names], axis=1)


@figure_maker
def mass_bars(exp: Experiment, out: Path) -> list[Figure]:
    """Mass per state (or mode) at the first, middle and last generation, exact update as markers."""
    runs = _curated(exp, "mass_0")
    if not runs:
        return []
    cols = min(4, len(runs))
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs, strict=False):
        mass = _mass(run)
        last = mass.shape[0] - 1
        shown = sorted({0, last // 2, last})
        states = np.arange(mass.shape[1])
        width = 0.8 / len(shown)
        exact = exact_trajectory(run.config, last) if _is_discrete(run.config) else None
        for i, g in enumerate(shown):
            x = states + (i - (len(shown) - 1) / 2) * width
            ax.bar(x, mass[g], width, label=f"t = {g}")
            if exact is not None:
                ax.plot(x, exact[g, : len(states)], "k_", ms=8)
        ax.set(xlabel="state / mode", ylabel="mass", xticks=states)
        ax.set_title(run.label, fontsize=8)
        ax.legend(fontsize=7)
    return [
        save(
            fig,
            exp.path(out, "mass-bars"),
            f"{exp.name}: mass per state",
            "Mean mass over replicates at the first, middle and last generation; black ticks, the "
            "exact population update (discrete runs with an analytic reward).",
        )
    ]
