"""Generic YAML ↔ dataclass conversion with typed checks and errors that name the key, file and line."""
import dataclasses
import types
import typing
from typing import Any, Literal, Union

import yaml

from wesv.errors import WesvError, where

_NONE_TYPE = type(None)


class Override(str):
    """A raw ``--section.key value`` string: parsed according to the type of the field it lands on."""


def key_lines(text: str) -> dict[str, int]:
    """Map each dotted key of a YAML mapping document to its 1-based line (for error messages)."""
    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = f"{prefix}{key.value}"
                lines[name] = key.start_mark.line + 1
                walk(value, name + ".")

    if root is not None:
        walk(root, "")
    return lines


class _Context:
    """Where values come from, to name the file and line of a bad key."""

    def __init__(self, path: str | None, lines: dict[str, int] | None):
        self.path = path
        self.lines = lines or {}

    def fail(self, key: str, msg: str, value: Any = None) -> WesvError:
        if isinstance(value, Override):
            return WesvError(f"command line --{key}: {msg}")
        if self.path is None:
            return WesvError(f"{key}: {msg}")
        # A key's own line, else the nearest enclosing section's line.
        parts = key.split(".")
        while parts and ".".join(parts) not in self.lines:
            parts.pop()
        lineno = self.lines.get(".".join(parts)) if parts else None
        return WesvError(f"{where(self.path, lineno)}: {key}: {msg}")


def _type_name(tp: Any) -> str:
    if tp is _NONE_TYPE:
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, key: str, ctx: _Context) -> Any:
    """Check/convert ``value`` to type ``tp``; raise a WesvError naming ``key`` when it does not fit."""
    origin = typing.get_origin(tp)
    if isinstance(value, Override):
        # Strings stay verbatim for str fields; anything else is read as YAML (numbers, lists, null, booleans).
        wants_str = tp is str or (origin is Literal and all(isinstance(a, str) for a in typing.get_args(tp)))
        if not wants_str:
            try:
                parsed = yaml.safe_load(str(value))
            except yaml.YAMLError as err:
                raise ctx.fail(key, f"cannot parse {str(value)!r} as YAML ({err})", value) from None
            try:
                return _convert(tp, parsed, key, _Context(None, None))
            except WesvError as err:
                raise WesvError(f"command line --{err}") from None
        value = str(value)

    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if _NONE_TYPE in args:
                return None
            raise ctx.fail(key, f"expected {_type_name(tp)}, got null", value)
        errors = []
        for arg in args:
            if arg is _NONE_TYPE:
                continue
            try:
                return _convert(arg, value, key, ctx)
            except WesvError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise ctx.fail(key, f"expected {_type_name(tp)}, got {value!r}", value)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ctx.fail(key, f"expected one of {', '.join(map(repr, choices))}, got {value!r}", value)
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ctx.fail(key, f"expected a list, got {value!r}", value)
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ctx.fail(key, f"expected a list of {len(args)} items, got {len(value)}", value)
            return tuple(_convert(a, v, f"{key}[{i}]", ctx) for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_convert(item, v, f"{key}[{i}]", ctx) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ctx.fail(key, f"expected a mapping, got {value!r}", value)
        args = typing.get_args(tp)
        if not args:
            return dict(value)
        return {k: _convert(args[1], v, f"{key}.{k}", ctx) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ctx.fail(key, f"expected a mapping (section {tp.__name__}), got {value!r}", value)
        return _from_dict(tp, value, key + ".", ctx)
    if tp is bool:
        if not isinstance(value, bool):
            raise ctx.fail(key, f"expected bool (true/false), got {value!r}", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.fail(key, f"expected int, got {value!r}", value)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string: take every form float() takes
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.fail(key, f"expected float, got {value!r}", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ctx.fail(key, f"expected str, got {value!r}", value)
        return str(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ctx.fail(key, f"expected {_type_name(tp)}, got {value!r}", value)


def _from_dict(cls: type, d: dict, prefix: str, ctx: _Context) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in d if k not in fields]
    if unknown:
        known = ", ".join(fields)
        key = f"{prefix}{unknown[0]}"
        raise ctx.fail(key, f"unknown key (known keys of {prefix.rstrip('.') or 'the top level'}: {known})",
                       d[unknown[0]])
    kwargs = {}
    for name, value in d.items():
        kwargs[name] = _convert(hints[name], value, f"{prefix}{name}", ctx)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ctx.fail(f"{prefix}{missing[0]}", "required key is missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # __post_init__ checks
        raise ctx.fail(prefix.rstrip(".") or cls.__name__, str(err)) from None


def from_dict(cls: type, d: dict | None, path: str | None = None, *, prefix: str = "",
              lines: dict[str, int] | None = None) -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise WesvError naming key and file."""
    ctx = _Context(path, lines)
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ctx.fail(prefix.rstrip(".") or "(top level)", f"expected a mapping, got {d!r}")
    return _from_dict(cls, d, prefix, ctx)


def to_dict(obj: Any) -> Any:
    """Dataclasses → plain dicts/lists (YAML-safe), recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Override):
        return str(obj)
    return obj


def parse_overrides(args: list[str]) -> dict[str, Override]:
    """``["--optim.lr", "0.1", "--trainer.amp=true"]`` → ``{"optim.lr": Override("0.1"), ...}``."""
    out: dict[str, Override] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise WesvError(f"command line: expected --section.key value, got {arg!r}")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise WesvError(f"command line: --{key} needs a value")
            value = args[i + 1]
            i += 2
        out[key.replace("-", "_")] = Override(value)
    return out


def set_dotted(d: dict, key: str, value: Any) -> None:
    """Set ``d["a"]["b"] = value`` for key ``a.b``, creating sections as needed."""
    parts = key.split(".")
    node = d
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise WesvError(f"command line --{key}: {'.'.join(parts[:i + 1])} is not a section")
        node = child
    node[parts[-1]] = value
