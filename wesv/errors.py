"""The one exception type for user errors (bad input, bad config): entry points print it as one line."""
import re


class WesvError(Exception):
    """A user-facing error: the message names the file (and line) at fault and says what to do."""


def where(path: str, lineno: int | None = None) -> str:
    """Format a location as ``path:line`` (or ``path``) for error messages."""
    return f"{path}:{lineno}" if lineno is not None else str(path)


# torch re-raises an error of a DataLoader worker as the same type with the worker's traceback in the message.
_WORKER = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback.*?\n(?:[\w.]+\.)?"
                     r"\w+: (?P<msg>.*)", re.DOTALL)


def user_message(err: BaseException) -> str:
    """The message of a user error, without the traceback torch adds when a DataLoader worker raised it."""
    text = str(err)
    m = _WORKER.match(text)
    return m.group("msg").rstrip("\n") if m else text
