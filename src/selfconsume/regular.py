"""Open only regular files, with their size bounded before a byte is read.

A path a user (or a handed store) names may be a FIFO (opening it blocks until a writer comes), a
device such as /dev/zero (reading it never ends) or a folder. Every reader of such a path opens it
here: non-blocking, checked with fstat on the opened descriptor (so the check and the read see the
same file), and refused with `UnreadableFile` (an OSError whose one-line message names the problem,
not the path: callers prefix the key and the path).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class UnreadableFile(OSError):
    """Not a regular file, or larger than the reader allows."""


def open_regular(path: str | Path, max_bytes: int | None = None) -> BinaryIO:
    """Open `path` for binary reading if it is a regular file of at most `max_bytes` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UnreadableFile("file not found") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"not a regular file ({_kind(info.st_mode)})")
        if max_bytes is not None and info.st_size > max_bytes:
            raise UnreadableFile(f"{info.st_size} bytes, more than the {max_bytes} allowed")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most `max_bytes` bytes."""
    with open_regular(path, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew after fstat
        raise UnreadableFile(f"more than the {max_bytes} bytes allowed")
    return data


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")
