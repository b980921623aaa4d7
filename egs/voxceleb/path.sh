# Sourced by run.sh before its options are parsed (so --help and --dry_run need no python): find wesv's shell
# tools and set up the environment. The python that runs wesv is checked by tools/recipe.sh, for real runs only.
#
# tools/ is a link to the repository's tools/ (egs/X/tools -> ../../tools). In a recipe copied out of the
# repository that link points nowhere: it is then pointed at the copy of the tools installed with the wesv package
# (`python -m wesv.bin.tools_dir` prints where), which needs the environment where wesv is installed.
if [ ! -f tools/parse_options.sh ]; then
  if [ -e tools ] && [ ! -L tools ]; then
    echo "path.sh: $PWD/tools is not a link and has no parse_options.sh;" \
      "remove it (run.sh then links it to wesv's tools)" >&2
    return 1 2>/dev/null || exit 1
  fi
  if __wesv_tools=$(python -m wesv.bin.tools_dir 2>/dev/null) && [ -f "$__wesv_tools/parse_options.sh" ]; then
    ln -sfn "$__wesv_tools" tools
    echo "path.sh: tools/ did not resolve (a recipe copied out of the repository); linked tools -> $__wesv_tools" >&2
    unset __wesv_tools
  else
    echo "path.sh: tools/parse_options.sh not found (tools -> $(readlink tools || echo nothing)), and" \
      "'python -m wesv.bin.tools_dir' (where the installed wesv keeps its shell tools) fails with" \
      "$(command -v python || echo 'no python on PATH')." >&2
    echo "path.sh: activate the environment where wesv is installed (pip install -e REPO) and rerun; or link" \
      "tools to REPO/tools: ln -sfn REPO/tools tools" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
export PYTHONUNBUFFERED=1   # log lines appear as they are written, also in job logs
