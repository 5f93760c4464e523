"""Validated dataclass configs: config files, ``key=value`` overrides and YAML dumps.

Each algorithm's ``Config`` is a frozen dataclass: its fields declare what they accept
(:func:`positive`, :func:`unit_interval`, :func:`one_of`, ...), which :class:`Validated`
checks, and its ``__post_init__`` adds the checks that relate several fields (:func:`check`).
Values reach it from three places, all through :func:`apply`, which rejects unknown keys and
values of the wrong type before the dataclass's own validation runs, so that every bad input
fails with one line before anything is compiled:

- :func:`load_file` reads a ``--config FILE`` (YAML or JSON mapping of field names to values);
- :func:`override` reads ``--set key=value`` strings, each value written as in a YAML file
  (``true``, ``null``, ``3e-4``, ``[64, 64]``; a list's brackets may be left out, and a
  string field takes the text as it is);
- :func:`dump` writes the effective config as YAML that :func:`load_file` reads back.

Precedence on the command line, lowest first: the class defaults, then ``--config FILE``,
then ``--env`` and ``--steps``, then ``--set key=value`` (the last ``--set`` of a key wins).

YAML is read and written with the YAML 1.2 core schema's scalars rather than PyYAML's YAML 1.1
ones: only ``true``/``false`` are booleans (``yes``/``on`` stay strings, so a bool field rejects
them) and ``1e-3`` is a number (YAML 1.1 reads it as a string).
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import types
import typing
from typing import Any, Callable, TypeVar

import yaml


ConfigT = TypeVar("ConfigT")  # an algorithm's frozen Config dataclass


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message is one line."""


def check(condition: bool, field: str, value: Any, accepted: str) -> None:
    """Raises :class:`ConfigError` naming ``field``, its ``value`` and what is ``accepted``."""
    if not condition:
        raise ConfigError(f"invalid {field}={value!r}: must be {accepted}")


# ----------------------------------------------------------------------- declared constraints
#
# A config field states what it accepts where it is declared, e.g.
#
#     learning_rate: float = positive(1e-3)
#     gae_lambda: float = unit_interval(0.95)
#     objective: str = one_of("clip", ("clip", "kl"))
#
# and :class:`Validated`'s ``__post_init__`` checks every such field, in declaration order,
# before the config's own cross-field checks.

def constrained(default: Any, accepts: Callable[[Any], bool], accepted: str) -> Any:
    """A dataclass field with ``default`` whose values must satisfy ``accepts`` (described as
    ``accepted`` in the error)."""
    return dataclasses.field(default=default, metadata={"accepts": accepts, "accepted": accepted})


def field_of(config_class: type, name: str) -> Any:
    """A field with the default and the declared constraint of ``config_class``'s field
    ``name``: for a config that carries another's settings under its own names."""
    field = config_class.__dataclass_fields__[name]
    return dataclasses.field(default=field.default, metadata=field.metadata)


def positive(default: float) -> Any:
    return constrained(default, lambda v: v > 0, "positive")


def positive_int(default: int) -> Any:
    return constrained(default, lambda v: v > 0, "a positive integer")


def non_negative(default: float) -> Any:
    return constrained(default, lambda v: v >= 0, ">= 0")


def unit_interval(default: float) -> Any:
    return constrained(default, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")


def one_of(default: str, choices: tuple[str, ...]) -> Any:
    return constrained(default, lambda v: v in choices, f"one of {choices}")


class Validated:
    """Base of every config dataclass: checks the fields declared with :func:`constrained`.

    A subclass that only changes a field's default (``num_envs: int = 10``) keeps the
    constraint the field was declared with higher up."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            rule = next((c.__dataclass_fields__[f.name].metadata for c in type(self).__mro__
                         if f.name in getattr(c, "__dataclass_fields__", {})
                         and "accepts" in c.__dataclass_fields__[f.name].metadata), None)
            if rule is not None:
                value = getattr(self, f.name)
                check(rule["accepts"](value), f.name, value, rule["accepted"])


# ------------------------------------------------------------------------------------ YAML

class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema booleans, integers and floats."""


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting the strings that :class:`_Loader` would read as non-strings."""


_CORE_SCALARS = {  # YAML 1.2.2 spec, section 10.3.2 (core schema tag resolution)
    "tag:yaml.org,2002:bool": (r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    "tag:yaml.org,2002:int": (r"^[-+]?[0-9]+$", "-+0123456789"),
    "tag:yaml.org,2002:float": (
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
}
for _cls in (_Loader, _Dumper):
    _cls.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _CORE_SCALARS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for _tag, (_pattern, _first) in _CORE_SCALARS.items():
        _cls.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
# YAML 1.1 reads a leading 0 as octal; the core schema's integers are decimal.
_Loader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: int(loader.construct_scalar(node)))


def read_yaml(text: str) -> Any:
    """``text`` parsed as YAML, with the YAML 1.2 core schema's scalars (module docstring)."""
    return yaml.load(text, _Loader)


# ------------------------------------------------------------------------------------ types

_UNIONS = (typing.Union, types.UnionType)
_KINDS = {int: ("an integer", "integers"), float: ("a number", "numbers"),
          bool: ("true or false", "booleans"), str: ("a string", "strings")}


def _cast(value: Any, kind: Any) -> Any:
    """``value`` as a field of type ``kind``, or ``TypeError``. The only conversions are
    int -> float and list -> tuple: a string is never a number, nor 0/1 a boolean."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in _UNIONS:  # Optional[X]
        return None if value is None else _cast(value, next(a for a in args if a is not type(None)))
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(_cast(v, args[0]) for v in value)
    if kind is float and type(value) in (int, float):
        return float(value)
    if type(value) is kind:
        return value
    raise TypeError(kind)


def _describe(kind: Any) -> str:
    """What a field of type ``kind`` accepts, in words (``a list of integers``)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in _UNIONS:
        return f"{_describe(next(a for a in args if a is not type(None)))} or null"
    if origin is tuple:
        return f"a list of {_KINDS[args[0]][1]}"
    return _KINDS[kind][0]


# ------------------------------------------------------------------------------------ API

def apply(config: ConfigT, mapping: dict, source: str = "") -> ConfigT:
    """Returns ``config`` with the fields in ``mapping`` set, type-checked and validated.

    An unknown key, or a value that is not of the field's type (see :func:`_cast`), raises a
    one-line :class:`ConfigError` that starts with ``source`` (e.g. the file's path or
    ``--set``) when one is given; then the dataclass validates the result as a whole.
    """
    where = f"{source}: " if source else ""
    hints = typing.get_type_hints(type(config))
    names = [f.name for f in dataclasses.fields(config)]
    changes = {}
    for key, value in mapping.items():
        if key not in names:
            raise ConfigError(
                f"{where}unknown config key {key!r} for {type(config).__module__.split('.')[-1]}; "
                f"accepted: {', '.join(sorted(names))}"
            )
        try:
            changes[key] = _cast(value, hints[key])
        except TypeError:
            raise ConfigError(f"{where}invalid {key}={value!r}: must be {_describe(hints[key])}") from None
    return dataclasses.replace(config, **changes)


def _read_value(text: str, kind: Any) -> Any:
    """A ``--set`` value: the text itself for a string field, otherwise the YAML value it
    spells (a list's brackets may be left out). Text that does not spell a value of the
    field's type stays text, so that :func:`apply` rejects it as the user typed it."""
    if kind is str:
        return text
    spelled = f"[{text}]" if typing.get_origin(kind) is tuple and not text.startswith("[") else text
    try:
        value = yaml.load(spelled, _Loader)
        _cast(value, kind)
    except (yaml.YAMLError, TypeError):
        return text
    return value


def override(config: ConfigT, assignments: list[str]) -> ConfigT:
    """Returns ``config`` with each ``"key=value"`` in ``assignments`` applied and validated."""
    hints = typing.get_type_hints(type(config))
    mapping = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"invalid override {item!r}: expected key=value")
        key = key.strip()
        mapping[key] = _read_value(text.strip(), hints.get(key, str))
    return apply(config, mapping, source="--set")


_FORMATS = {".json": "JSON", ".yaml": "YAML", ".yml": "YAML"}


def _parse_error(error: Exception) -> tuple[int | None, str]:
    """The line (1-based, when the parser gives one) and the one-line reason of a parse error."""
    if isinstance(error, json.JSONDecodeError):
        return error.lineno, error.msg
    mark = getattr(error, "problem_mark", None)
    reason = getattr(error, "problem", None) or str(error).splitlines()[0]
    return (mark.line + 1 if mark else None), reason


def load_file(path: str) -> dict:
    """The mapping of config fields in a YAML (``.yaml``/``.yml``) or JSON (``.json``) file.

    An empty YAML file is an empty mapping. A missing or unreadable file, another extension,
    a parse error or a top level that is not a mapping raises a one-line :class:`ConfigError`
    naming the file (and the line, where the parser gives one).
    """
    name = f"config file {path!r}"
    extension = os.path.splitext(path)[1].lower()
    if extension not in _FORMATS:
        raise ConfigError(f"{name}: unknown extension {extension!r}; accepted: {', '.join(_FORMATS)}")
    try:
        with open(path, encoding="utf-8-sig") as f:  # a byte-order mark is allowed
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{name} not found") from None
    except OSError as e:
        raise ConfigError(f"cannot read {name}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {name}: not UTF-8 text") from None
    try:
        data = json.loads(text) if extension == ".json" else read_yaml(text)
    except (ValueError, yaml.YAMLError) as e:  # ValueError: JSON, or a YAML !!int/!!float tag
        line, reason = _parse_error(e)
        at = f", line {line}" if line else ""
        raise ConfigError(f"{name}{at}: invalid {_FORMATS[extension]}: {reason}") from None
    if data is None and extension != ".json":
        return {}
    if not isinstance(data, dict):
        found = "null" if data is None else type(data).__name__
        raise ConfigError(f"{name} must hold a mapping of config fields (key: value), found {found}")
    return data


def to_dict(config: ConfigT) -> dict:
    """The config's fields in declaration order as plain values (tuples as lists), for JSON or YAML."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


def dump(config: ConfigT) -> str:
    """The config as YAML text, one ``field: value`` line per field in declaration order;
    :func:`load_file` and :func:`apply` read it back to an equal config."""
    return yaml.dump(to_dict(config), Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     width=float("inf"))


def parse_call(text: str, what: str) -> tuple[str, dict]:
    """Splits a name with keyword arguments, ``"name(key=value, ...)"``, into ``(name, kwargs)``.

    The values are Python literals (numbers, strings, booleans, ``None``, tuples and lists,
    which become tuples): ``"tabular/chain(num_states=20, slip=0.0)"`` or
    ``"bandit/bernoulli(means=(0.9, 0.5))"``. A plain ``"name"`` gives ``(name, {})``.
    ``what`` names the kind of thing in the error (``"environment"``, ...).

    Raises:
      ConfigError: one line, when the arguments are not ``key=value`` literals.
    """
    text = text.strip()
    if "(" not in text and ")" not in text:
        return text, {}
    name, _, arguments = text.partition("(")
    usage = f"{what} {text!r}: write NAME(key=value, ...) with Python literals as values, e.g. tabular/chain(num_states=20)"
    try:
        call = ast.parse(f"f({arguments}", mode="eval").body
    except SyntaxError:
        raise ConfigError(usage) from None
    if not name.strip() or not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise ConfigError(usage)
    kwargs = {}
    for keyword in call.keywords:
        try:
            value = ast.literal_eval(keyword.value)
        except ValueError:
            raise ConfigError(f"{usage} ({keyword.arg}= is not a literal)") from None
        kwargs[keyword.arg] = _tuples(value)
    return name.strip(), kwargs


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
