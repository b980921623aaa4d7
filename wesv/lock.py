"""Advisory exclusive locks (``fcntl.flock``) so that two processes never write the same output at once."""
from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Iterator

from wesv.errors import WesvError


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode("utf-8", "replace").split()
    except OSError:
        return "unknown"
    return text[0] if text else "unknown"


@contextlib.contextmanager
def exclusive_lock(path: str, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, holding this pid) while writing ``what``.

    A second holder fails at once with a ``WesvError`` naming the first one's pid. The lock goes with the process
    (a killed run leaves no stale lock); the file is left in place.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WesvError(f"{what} is being written by another process (pid {_holder(fd)}, lock {path}) — wait "
                            "for it to finish, or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
