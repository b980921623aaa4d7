"""Run an entry point so that user errors become one clear line and a non-zero exit, not a traceback."""
import errno
import functools
import os
import sys
from typing import Callable

from wesv.errors import WesvError, user_message
from wesv.log import setup_logging

# What to do about an OSError an entry point did not expect, by errno (the message names the path and the errno).
_OS_HINTS = {
    errno.ENOSPC: ("cannot write", "free space or choose another output location"),
    errno.EDQUOT: ("cannot write", "free space (disk quota) or choose another output location"),
    errno.EROFS: ("cannot write", "choose an output location on a writable file system"),
    errno.EACCES: ("cannot access", "check its permissions, or choose another location"),
    errno.EPERM: ("cannot access", "check its permissions, or choose another location"),
    errno.ENOENT: ("cannot open", "check the path (and that its parent directory exists)"),
    errno.ENOTDIR: ("cannot open", "a part of the path is a file, not a directory — check the path"),
    errno.EISDIR: ("cannot open", "it is a directory — give a file path"),
    errno.EEXIST: ("cannot create", "it already exists — remove it or choose another name"),
    errno.EMFILE: ("cannot open", "too many open files — raise 'ulimit -n'"),
    errno.EIO: ("cannot access", "input/output error — check the disk or the network file system"),
}


def os_error_message(err: OSError) -> str | None:
    """One line for an OSError that names a file (``cannot write PATH: No space left on device — ...``); None for
    one without an errno or a path, which is a programming error and keeps its traceback."""
    if err.errno is None or not (err.filename or err.filename2):
        return None
    path = err.filename2 if err.filename2 and err.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT) else err.filename
    verb, hint = _OS_HINTS.get(err.errno, ("cannot access", "check the path and the file system"))
    return f"{verb} {os.fsdecode(path)}: {os.strerror(err.errno)} — {hint}"


def entry_point(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Decorate ``main(argv=None)``: set up logging, turn WesvError (and an OSError naming a file, e.g. a full or
    read-only output location) into ``wesv: error: ...`` and exit 2."""

    @functools.wraps(fn)
    def wrapper(argv: list[str] | None = None) -> None:
        setup_logging()
        try:
            code = fn(argv)
        except WesvError as err:
            print(f"wesv: error: {user_message(err)}", file=sys.stderr)
            sys.exit(2)
        except OSError as err:
            message = os_error_message(err)
            if message is None:
                raise
            print(f"wesv: error: {message}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("wesv: interrupted", file=sys.stderr)
            sys.exit(130)
        sys.exit(code or 0)

    return wrapper
