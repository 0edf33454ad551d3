"""The talk's figure: rows of scatter plots of p_t after 0, 5, 10, 15, 20 retrainings, one row per run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfconsume.report.base import Experiment, Figure, figure_maker, save

COLUMNS = 5


def panel_generations(last: int) -> list[int]:
    """Five evenly spaced generations from 0 to the last (0, 5, 10, 15, 20 for 20 generations)."""
    return sorted({int(round(g)) for g in np.linspace(0, last, COLUMNS)})


@figure_maker
def scatter_grid(exp: Experiment, out: Path) -> list[Figure]:
    """Samples of the first replicate at five generations, one row per run (2-D data only)."""
    rows = [(run, run.samples()) for run in exp.runs]
    rows = [
        (run, snaps) for run, snaps in rows if snaps and next(iter(snaps.values())).shape[-1] == 2
    ]
    if not rows:
        return []
    last = min(max(snaps) for _, snaps in rows)
    gens = panel_generations(last)
    fig, axes = plt.subplots(
        len(rows), len(gens), figsize=(2.4 * len(gens), 2.4 * len(rows)), squeeze=False
    )
    lim = max(np.percentile(np.abs(snaps[0][0]), 99.5) for _, snaps in rows) * 1.3
    for i, (run, snaps) in enumerate(rows):
        for j, g in enumerate(gens):
            ax = axes[i, j]
            if g in snaps:
                x = snaps[g][0]
                ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.5, color="C0", rasterized=True)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
            if i == 0:
                ax.set_title(f"t = {g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(run.label, fontsize=8)
    return [
        save(
            fig,
            exp.path(out, "scatter"),
            f"{exp.name}: samples across retrainings",
            "Samples of p_t (first replicate) after the given number of retrainings; one row per run.",
        )
    ]
