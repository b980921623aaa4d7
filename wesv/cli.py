"""Run an entry point so that user errors become one clear line and a non-zero exit, not a traceback."""
import functools
import sys
from typing import Callable

from wesv.errors import WesvError
from wesv.log import setup_logging


def entry_point(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Decorate ``main(argv=None)``: set up logging, turn WesvError into ``wesv: error: ...`` and exit 2."""

    @functools.wraps(fn)
    def wrapper(argv: list[str] | None = None) -> None:
        setup_logging()
        try:
            code = fn(argv)
        except WesvError as err:
            print(f"wesv: error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("wesv: interrupted", file=sys.stderr)
            sys.exit(130)
        sys.exit(code or 0)

    return wrapper
