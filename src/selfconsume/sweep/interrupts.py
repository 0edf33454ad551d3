"""Ctrl-C and SIGTERM as exceptions that are never lost.

Inside `interrupts_raise`, SIGINT raises KeyboardInterrupt and SIGTERM raises `Terminated` where the
main thread is, so a sweep unwinds alike for both. Python runs a signal's handler at whatever line
the main thread has reached; when that line is in a finaliser (`__del__`, as numpy's NpzFile has),
Python prints the exception and drops it, and the sweep would go on as if nothing had happened.
Here such a dropped interrupt is not printed, and `raise_pending` raises it again at the sweep's
next poll.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOPPING = (signal.SIGINT, signal.SIGTERM)
_pending: list[type[KeyboardInterrupt]] = []
"""The interrupts received inside `interrupts_raise`, in order."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was so that it unwinds like Ctrl-C."""


def _on_signal(signum: int, frame: object) -> None:
    interrupt = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    _pending.append(interrupt)
    raise interrupt


def _drop_interrupts(hook: Any) -> Any:
    """An unraisable hook that drops the interrupts raise_pending will raise again."""

    def unraisable(info: Any) -> None:
        if not (_pending and isinstance(info.exc_value, KeyboardInterrupt)):
            hook(info)

    return unraisable


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise (see the module doc). A signal this process ignores stays
    ignored (a pool worker leaves Ctrl-C to its parent), as does one whose handler was installed
    outside Python. Only the main thread can own signals; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        s: signal.signal(s, _on_signal)
        for s in STOPPING
        if signal.getsignal(s) not in (signal.SIG_IGN, None)
    }
    hook = sys.unraisablehook
    sys.unraisablehook = _drop_interrupts(hook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for s, handler in previous.items():
            signal.signal(s, handler)
        _pending.clear()


def raise_pending() -> None:
    """Raise the last interrupt received inside `interrupts_raise`, if a finaliser dropped it (an
    interrupt that propagated never comes back here: the sweep is unwinding)."""
    if _pending:
        raise _pending[-1]
