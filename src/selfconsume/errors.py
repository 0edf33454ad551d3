"""The two kinds of failure the CLI distinguishes: bad input (exit 2) and a failure inside a run (exit 1)."""


class ConfigError(ValueError):
    """Bad input: an invalid config, data file or argument. The message is one line naming the culprit."""


class RunFailed(RuntimeError):
    """A run stopped inside the loop (for example a NaN loss); the store records the reason."""


class RunBusy(Exception):
    """Another live process holds the run's lease: the caller skips the run (not a failure)."""


def interrupt_behind(exc: BaseException) -> BaseException | None:
    """The interrupt (Ctrl-C, SIGTERM, exit) that `exc` was raised while handling, if any: a
    clean-up failing during an interrupt is the interrupt, not a failure of the run."""
    seen: set[int] = set()
    cause: BaseException | None = exc.__context__
    while cause is not None and id(cause) not in seen:
        if not isinstance(cause, Exception):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None
