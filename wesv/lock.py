"""Exclusive locks on output dirs: a second writer fails at once naming the holder, a dead holder frees the lock.

``fcntl.flock`` on a small file (e.g. ``exp/.lock``); the kernel drops the lock when the holding process dies
(kill -9, OOM, node reboot), so there is never a stale lock to remove by hand. The file keeps the holder's pid
and what it is doing, for the message a refused process prints. On NFS, Linux emulates flock with POSIX
byte-range locks, which also hold across hosts.
"""
from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from typing import Iterator

from wesv.errors import WesvError


class LockHeld(WesvError):
    """Another process holds the lock; ``holder`` is what its lock file says (pid and what it does)."""

    def __init__(self, message: str, holder: str):
        super().__init__(message)
        self.holder = holder


class Lock:
    """A held lock; ``release()`` (or the end of the process) frees it."""

    def __init__(self, path: str, fd: int):
        self.path, self._fd = path, fd

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Free the lock (the file stays: removing it would race with a process about to lock it)."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def read_holder(path: str) -> str:
    """What the lock file at ``path`` says about its holder (``""`` when empty or unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def acquire(path: str, what: str) -> Lock:
    """Lock ``path`` (created, and its dir) for ``what``; raise ``LockHeld`` at once if another process holds it."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise WesvError(f"{path}: cannot create the lock file ({err.strerror}); check that the dir is writable") \
            from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_holder(path) or "a process that has not written its pid yet"
        raise LockHeld(f"{path}: locked by {holder}; wait for it to finish, stop it, or use another output dir",
                       holder) from None
    except OSError as err:
        os.close(fd)
        raise WesvError(f"{path}: cannot lock ({err.strerror}); the file system may not support flock") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} ({what})\n".encode())
    return Lock(path, fd)


@contextmanager
def exclusive_lock(path: str, what: str) -> Iterator[Lock]:
    """``with exclusive_lock("exp/.lock", "training"):`` hold ``path`` for the block; ``LockHeld`` if taken."""
    lock = acquire(path, what)
    try:
        yield lock
    finally:
        lock.release()
