# Sourced by run.sh: check that the wesv package is importable from this shell's python.
# wesv is installed, not put on PYTHONPATH: from the repository root run
#   python -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e .
if ! python -c "import wesv" 2>/dev/null; then
  echo "path.sh: 'python -c \"import wesv\"' fails with $(command -v python || echo 'no python on PATH')." >&2
  echo "path.sh: activate the environment where wesv is installed, or install it (repository root):" \
    "pip install -e ." >&2
  return 1 2>/dev/null || exit 1
fi
export PYTHONUNBUFFERED=1   # log lines appear as they are written, also in job logs
