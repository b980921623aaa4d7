"""The one exception type for user errors (bad input, bad config): entry points print it as one line."""


class WesvError(Exception):
    """A user-facing error: the message names the file (and line) at fault and says what to do."""


def where(path: str, lineno: int | None = None) -> str:
    """Format a location as ``path:line`` (or ``path``) for error messages."""
    return f"{path}:{lineno}" if lineno is not None else str(path)
