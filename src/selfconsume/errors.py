"""The two kinds of failure the CLI distinguishes: bad input (exit 2) and a failure inside a run (exit 1)."""

from collections.abc import Sequence


class ConfigError(ValueError):
    """Bad input: an invalid config, data file or argument. The message is one line naming the culprit."""


class RunFailed(RuntimeError):
    """A run stopped inside the loop (for example a NaN loss); the store records the reason."""


SHOWN_REPLICATES = 10
"""How many replicate indices a failure message lists."""


def replicate_list(indices: Sequence[int]) -> str:
    """Replicate indices as a failure message lists them: `[0, 3, 7]`, or the first ten and the
    count."""
    shown = ", ".join(str(i) for i in indices[:SHOWN_REPLICATES])
    more = f", ... ({len(indices)} in all)" if len(indices) > SHOWN_REPLICATES else ""
    return f"[{shown}{more}]"


class RunBusy(Exception):
    """Another live process holds the run's lease: the caller skips the run (not a failure)."""


def interrupt_behind(exc: BaseException) -> BaseException | None:
    """The interrupt (Ctrl-C, SIGTERM, exit) that `exc` was raised while handling, if any: a
    clean-up failing during an interrupt is the interrupt, not a failure of the run. (Python
    never chains an exception to itself, so the walk ends.)"""
    cause = exc.__context__
    while isinstance(cause, Exception):
        cause = cause.__context__
    return cause
