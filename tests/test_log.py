"""The wesv logger: its stderr handler follows sys.stderr (a stream closed after set-up never breaks logging)."""
import io
import sys

from wesv.log import get_logger, setup_logging


def test_stderr_handler_writes_to_the_current_stderr(monkeypatch):
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging()
    first.close()  # e.g. an earlier test's captured stderr
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    setup_logging()
    get_logger("wesv.test").warning("hello from the test")
    assert "hello from the test" in now.getvalue() and "Logging error" not in now.getvalue()
