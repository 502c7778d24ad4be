"""In-use marks for files and folders in the cache: advisory ``flock`` locks.

Whoever uses or writes something in the cache holds a lock on it: a run holds a shared lock on each step entry it
read (its manifest), a writer holds an exclusive lock on the temp file or folder it is filling. ``singer cache
prune`` removes a thing only while it holds that thing's exclusive lock itself, taken without waiting
(:func:`claimed`), so nothing anyone holds is ever removed. The kernel drops a process's locks when it ends, even
on ``kill -9``, so what a killed writer left behind is free to go: no guess from file ages is needed.

Locks are ``flock(2)`` locks (POSIX): they work on files and folders alike, and two descriptors of one process
exclude each other just as two processes do.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _still_there(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file or folder ``fd`` was opened on (prune did not remove it first)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _lock(path: Path, how: int) -> int | None:
    """A descriptor of ``path`` holding lock ``how``; None when ``path`` is gone (or went before the lock held)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, how)
    except BaseException:
        os.close(fd)
        raise
    if not _still_there(fd, path):
        os.close(fd)
        return None
    return fd


def hold_shared(path: Path) -> int | None:
    """Mark ``path`` in use: a descriptor holding a shared lock (give it to :func:`release`); None if it is gone.
    Waits while a prune holds the exclusive lock, then finds the path gone."""
    return _lock(Path(path), fcntl.LOCK_SH)


def hold_new(make: Callable[[], Path]) -> tuple[Path, int]:
    """Create a temp file or folder with ``make()`` and hold it exclusively while it is written: (path, descriptor).
    Made again when a prune removed it in the instant between its creation and the lock."""
    while True:
        path = Path(make())
        fd = _lock(path, fcntl.LOCK_EX)
        if fd is not None:
            return path, fd


def release(fd: int | None) -> None:
    """Drop a lock taken by :func:`hold_shared` or :func:`hold_new`."""
    if fd is not None:
        os.close(fd)


@contextmanager
def held_new(make: Callable[[], Path]) -> Iterator[Path]:
    """:func:`hold_new` as a context: the new path, locked until the block ends."""
    path, fd = hold_new(make)
    try:
        yield path
    finally:
        release(fd)


@contextmanager
def claimed(path: Path) -> Iterator[bool]:
    """True while this process holds ``path``'s exclusive lock, taken without waiting: nobody uses it, so it may be
    removed inside the block. False when someone holds it (in use) or it is gone."""
    try:
        fd = _lock(Path(path), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fd = None
    try:
        yield fd is not None
    finally:
        release(fd)
