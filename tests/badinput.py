"""Harness of the bad-input catalogue: run an entry point in-process and check that it failed cleanly.

A clean failure is exit code 2, exactly one ``wesv: error: ...`` line naming what is wrong, no traceback, and no
existing output changed. An exception that escapes the entry point fails the test with its traceback.
"""
import hashlib
import importlib
import os
from dataclasses import dataclass


@dataclass
class Outcome:
    """What an entry point did: its exit code and what it printed."""

    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        """The ``wesv: error:`` lines it printed."""
        return [line for line in self.err.splitlines() if line.startswith("wesv: error:")]


def run_entry(module: str, argv: list, capsys) -> Outcome:
    """Run ``python -m wesv.bin.<module> argv`` in this process; ``capsys`` is pytest's fixture."""
    main = importlib.import_module(f"wesv.bin.{module}").main
    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def assert_clean_error(outcome: Outcome, *needles: str) -> str:
    """Exit 2, one error line containing every needle, no traceback; returns the line."""
    assert outcome.code == 2, f"exit code {outcome.code}, stderr:\n{outcome.err}"
    assert "Traceback" not in outcome.err, outcome.err
    assert len(outcome.error_lines) == 1, outcome.err
    line = outcome.error_lines[0]
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def tree_digest(*paths: str) -> dict[str, str]:
    """sha1 of every file under ``paths`` (files or dirs), to show that a failed run changed nothing."""
    digest = {}
    for top in paths:
        walk = [(os.path.dirname(top), [], [os.path.basename(top)])] if os.path.isfile(top) else os.walk(top)
        for root, _, files in walk:
            for name in files:
                p = os.path.join(root, name)
                with open(p, "rb") as f:
                    digest[p] = hashlib.sha1(f.read()).hexdigest()
    return digest
