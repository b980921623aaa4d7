"""Every wesv.bin entry point: a build_parser(), --help that exits 0, and help text (with its default) per option."""
import argparse
import importlib
import pkgutil

import pytest

import wesv.bin

MODULES = sorted(m.name for m in pkgutil.iter_modules(wesv.bin.__path__))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def test_every_entry_point_is_found():
    assert {"train", "extract", "score", "cluster", "make_corpus", "tools_dir"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_option_has_help_with_its_default(name):
    module = importlib.import_module(f"wesv.bin.{name}")
    assert hasattr(module, "build_parser"), f"wesv.bin.{name}: no build_parser()"
    parser = module.build_parser()
    assert parser.description, f"wesv.bin.{name}: no description"
    for action in _options(parser):
        label = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"wesv.bin.{name} {label}: no help text"
        if action.help is argparse.SUPPRESS or action.required or not action.option_strings:
            continue
        if action.default not in (None, False, [], argparse.SUPPRESS) and not isinstance(
                action, argparse.BooleanOptionalAction):
            text = action.help % {**vars(action), "prog": parser.prog}
            assert "default" in text, f"wesv.bin.{name} {label}: the help does not say the default ({action.default})"


@pytest.mark.parametrize("name", MODULES)
def test_help_exits_zero(name, capsys):
    module = importlib.import_module(f"wesv.bin.{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "--help" in out
