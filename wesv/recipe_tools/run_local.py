#!/usr/bin/env python3
"""Run a command as N local jobs, Kaldi run.pl style: ``run_local.py [opts] JOB=1:N log.JOB.log command ... JOB ...``.

Usage:
  run_local.py [--max-jobs-run K] JOB=1:N exp/log/extract.JOB.log python -m wesv.bin.extract ... --job JOB
  run_local.py [--max-jobs-run K] exp/log/score.log python -m wesv.bin.score ...        # a single job

The word JOB (or whatever name is left of ``=``) is replaced by the job number in the command and the log path
(whole words only: ``x.JOB.log``, ``--job JOB``, but not ``$SLURM_ARRAY_JOB_ID``).
Arguments without white space are passed to bash verbatim (so ``\\|`` and ``\\>`` work as in Kaldi); the others are
quoted. Each log starts with the command line and the start time and ends with the exit code and end time. At most
K jobs run at once (default: the number of CPUs). The exit status is 1 if any job failed; each failure is printed
with its log path. Queue options that only mean something on a cluster (--mem, --gpu, --num-threads, --time) are
accepted and ignored, so one recipe line works with either back-end.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field

PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "run_local.py"
QUEUE_OPTIONS = ("--mem", "--gpu", "--num-threads", "--time")


class UsageError(Exception):
    """A bad command line: printed as one line, exit status 1."""


@dataclass
class JobSpec:
    """A parsed ``[options] [JOB=a:b] log command...`` line."""

    options: dict[str, str] = field(default_factory=dict)
    var: str | None = None
    first: int = 1
    last: int = 1
    log: str = ""
    command: str = ""

    def job_ids(self) -> list[int]:
        """The job numbers to run."""
        return list(range(self.first, self.last + 1))

    def log_for(self, job: int) -> str:
        """The log path of one job."""
        return str(job).join(split_on_var(self.log, self.var))

    def command_for(self, job: int) -> str:
        """The command line of one job."""
        return str(job).join(split_on_var(self.command, self.var))


def split_on_var(text: str, var: str | None) -> list[str]:
    """Split ``text`` at each whole-word ``var``: ``log.JOB.log`` -> ``["log.", ".log"]``.

    Whole words only, so that ``$SLURM_ARRAY_JOB_ID`` in a command keeps its name.
    """
    if not var:
        return [text]
    return re.split(rf"(?<![A-Za-z0-9_]){re.escape(var)}(?![A-Za-z0-9_])", text)


def join_command(words: list[str]) -> str:
    """Join command words as Kaldi does: words without white space verbatim, the others shell-quoted."""
    return " ".join(w if w and not re.search(r"\s", w) else shlex.quote(w) for w in words)


def parse_args(argv: list[str], known: tuple[str, ...]) -> JobSpec:
    """Parse ``[--opt value]... [VAR=a:b] log command...`` into a JobSpec; ``known`` lists the accepted options."""
    spec = JobSpec()
    args = list(argv)
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if "=" in opt:
            opt, value = opt.split("=", 1)
        elif args:
            value = args.pop(0)
        else:
            raise UsageError(f"option {opt} needs a value")
        if opt not in known:
            raise UsageError(f"unknown option {opt} (known: {' '.join(known)})")
        spec.options[opt] = value
    if args:
        m = re.fullmatch(r"([A-Za-z_]\w*)=(\d+)(?::(\d+))?", args[0])
        if m:
            args.pop(0)
            spec.var = m.group(1)
            spec.first = int(m.group(2))
            spec.last = int(m.group(3)) if m.group(3) is not None else spec.first
            if spec.first < 1 or spec.last < spec.first:
                raise UsageError(f"bad job range {m.group(0)}: expected {spec.var}=1:N with N >= 1")
    if len(args) < 2:
        raise UsageError("expected a log file and a command, e.g. JOB=1:4 exp/log/x.JOB.log python ... JOB")
    spec.log = args[0]
    spec.command = join_command(args[1:])
    if spec.var and len(split_on_var(spec.log, spec.var)) == 1 and spec.first != spec.last:
        raise UsageError(f"the log path {spec.log} must contain {spec.var}, or the jobs overwrite one log")
    return spec


def positive_int(value: str, opt: str) -> int:
    """Parse a positive integer option value."""
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"{opt} expects a positive integer, got '{value}'")
    return int(value)


def log_header(command: str) -> str:
    """First lines of a job log (as run.pl writes them)."""
    return f"# {command}\n# Started at {time.ctime()}\n#\n"


def log_footer(code: int, seconds: float) -> str:
    """Last lines of a job log; ``# Ended (code N)`` is what the runners read back."""
    return (f"# Accounting: time={seconds:.0f} threads=1\n"
            f"# Ended (code {code}) at {time.ctime()}, elapsed time {seconds:.0f} seconds\n")


def read_exit_code(log: str) -> int | None:
    """The code in a log's ``# Ended (code N)`` line, or None when the job never finished."""
    try:
        with open(log, errors="replace") as f:
            lines = f.read().splitlines()[-5:]
    except OSError:
        return None
    for line in reversed(lines):
        m = re.match(r"# Ended \(code (-?\d+)\)", line)
        if m:
            return int(m.group(1))
    return None


def start_job(spec: JobSpec, job: int) -> tuple[subprocess.Popen, object, float]:
    """Start one job with its output going to its log."""
    log = spec.log_for(job)
    os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
    command = spec.command_for(job)
    f = open(log, "w")
    f.write(log_header(command))
    f.flush()
    proc = subprocess.Popen(["bash", "-c", command], stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    return proc, f, time.time()


def run_jobs(spec: JobSpec, max_jobs: int) -> dict[int, int]:
    """Run every job, at most ``max_jobs`` at once; return job -> exit code."""
    pending = spec.job_ids()
    running: dict[int, tuple[subprocess.Popen, object, float]] = {}
    codes: dict[int, int] = {}
    try:
        while pending or running:
            while pending and len(running) < max_jobs:
                job = pending.pop(0)
                running[job] = start_job(spec, job)
            time.sleep(0.05)
            for job, (proc, f, t0) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                f.write(log_footer(code, time.time() - t0))
                f.close()
                codes[job] = code
                del running[job]
    except KeyboardInterrupt:
        for proc, f, _ in running.values():
            proc.terminate()
            f.close()
        raise
    return codes


def report(spec: JobSpec, codes: dict[int, int], prog: str) -> int:
    """Print a line per failed job (with its log path); return the runner's exit status."""
    failed = [j for j in spec.job_ids() if codes.get(j) != 0]
    for job in failed:
        code = codes.get(job)
        what = "did not finish" if code is None else f"failed with exit code {code}"
        name = f"job {job}" if spec.var else "the job"
        print(f"{prog}: {name} {what}; log is in {spec.log_for(job)}", file=sys.stderr)
    if failed and spec.var:
        print(f"{prog}: {len(failed)} / {len(spec.job_ids())} jobs failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the jobs, report failures."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 1
    try:
        spec = parse_args(argv, ("--max-jobs-run",) + QUEUE_OPTIONS)
        max_jobs = positive_int(spec.options.get("--max-jobs-run", str(os.cpu_count() or 1)), "--max-jobs-run")
    except UsageError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    try:
        codes = run_jobs(spec, max_jobs)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the running jobs were stopped", file=sys.stderr)
        return 130
    return report(spec, codes, PROG)


if __name__ == "__main__":
    sys.exit(main())
