"""Progress of a sweep, read from the store: rich bars on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from selfconsume.config import Config
from selfconsume.store.sqlite import Store


class SweepProgress:
    """Shows runs done and, per active run, generations done (polled from the store)."""

    def __init__(
        self, cfgs: Sequence[Config], store: Store, console: Console | None = None
    ) -> None:
        self.cfgs = {c.run_id: c for c in cfgs}
        self.store = store
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self._logged: dict[str, int] = {}
        self._bars: dict[str, int] = {}
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self._runs = self.progress.add_task("runs", total=len(self.cfgs))

    def __enter__(self) -> SweepProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.poll()
        self.progress.__exit__(*exc)

    def poll(self) -> None:
        state = self.store.progress()
        finished = 0
        for run_id, cfg in self.cfgs.items():
            done, status = state.get(run_id, (0, "pending"))
            total = cfg.generations + 1
            finished += status in ("done", "failed")
            if self.live:
                self._update_bar(run_id, cfg, done, total, status)
            else:
                self._log(run_id, cfg, done, total, status)
        self.progress.update(self._runs, completed=finished)

    def _update_bar(self, run_id: str, cfg: Config, done: int, total: int, status: str) -> None:
        if run_id not in self._bars and status == "running" and done < total:
            self._bars[run_id] = self.progress.add_task(f"  {cfg.name} {run_id}", total=total)
        if run_id in self._bars:
            self.progress.update(self._bars[run_id], completed=done)
            if status in ("done", "failed"):
                self.progress.remove_task(self._bars.pop(run_id))

    def _log(self, run_id: str, cfg: Config, done: int, total: int, status: str) -> None:
        """One line when a run ends, and at each quarter of its generations."""
        key = -1 if status in ("done", "failed") else done
        if self._logged.get(run_id) == key:
            return
        self._logged[run_id] = key
        if key == -1:
            print(f"[selfconsume] run {run_id} ({cfg.name}): {status}", file=sys.stderr, flush=True)
        elif done and (done == total or done % max(1, total // 4) == 0):
            print(
                f"[selfconsume] run {run_id} ({cfg.name}): generation {done - 1}/{total - 1}",
                file=sys.stderr,
                flush=True,
            )
