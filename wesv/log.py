"""Logging set-up for the ``wesv`` logger: one format, optional log file, rank-aware."""
import logging
import os
import sys

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def get_logger(name: str = "wesv") -> logging.Logger:
    """Return a logger under the ``wesv`` hierarchy."""
    return logging.getLogger(name if name.startswith("wesv") else f"wesv.{name}")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each record, not the one at set-up (tests and tools swap it; a
    swapped-out stream may be closed)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: str = "INFO", log_file: str | None = None) -> logging.Logger:
    """Configure the ``wesv`` logger once (stderr + optional file); non-zero DDP ranks log warnings only."""
    logger = logging.getLogger("wesv")
    rank = int(os.environ.get("RANK", "0"))
    logger.setLevel(level if rank == 0 else "WARNING")
    logger.propagate = False
    fmt = logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
    if not any(getattr(h, "_wesv_stderr", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(fmt)
        handler._wesv_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    if log_file and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger
