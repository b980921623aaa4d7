"""Print the directory of wesv's recipe shell tools (parse_options.sh, recipe.sh, run_local.py, run_slurm.py, ...).

A recipe copied out of the repository links its tools/ there: ln -sfn "$(python -m wesv.bin.tools_dir)" tools
"""
import argparse
import os

from wesv.cli import entry_point
from wesv.errors import WesvError

TOOLS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipe_tools")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.tools_dir`` (none besides --help)."""
    return argparse.ArgumentParser(prog="python -m wesv.bin.tools_dir", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Print TOOLS_DIR, or fail when this install lacks it (a build without the package data)."""
    build_parser().parse_args(argv)
    if not os.path.isfile(os.path.join(TOOLS_DIR, "parse_options.sh")):
        raise WesvError(f"{TOOLS_DIR}: no parse_options.sh in this wesv install (built without its package data): "
                        "reinstall wesv (pip install -e REPO, or pip install wesv)")
    print(TOOLS_DIR)


if __name__ == "__main__":
    main()
