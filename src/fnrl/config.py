"""Validated dataclass configs and ``key=value`` overrides.

Each algorithm's ``Config`` is a frozen dataclass whose ``__post_init__`` calls
:func:`check`; :func:`override` applies command-line ``key=value`` strings with the field's
own type, so that every bad input fails with one line before anything is compiled.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message is one line."""


def check(condition: bool, field: str, value: Any, accepted: str) -> None:
    """Raises :class:`ConfigError` naming ``field``, its ``value`` and what is ``accepted``."""
    if not condition:
        raise ConfigError(f"invalid {field}={value!r}: must be {accepted}")


def _parse(text: str, kind: Any, field: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is typing.Union or str(origin) == "types.UnionType":
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        return _parse(text, options[0], field)
    if origin is tuple:
        inner = typing.get_args(kind)[0]
        parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
        return tuple(_parse(p.strip(), inner, field) for p in parts)
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"invalid {field}={text!r}: must be true or false")
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid {field}={text!r}: must be of type {kind.__name__}") from None


def override(config, assignments: list[str]):
    """Returns ``config`` with each ``"key=value"`` in ``assignments`` applied and validated."""
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"invalid override {item!r}: expected key=value")
        if key not in fields:
            raise ConfigError(
                f"unknown config key {key!r} for {type(config).__module__.split('.')[-1]}; "
                f"accepted: {', '.join(sorted(fields))}"
            )
        changes[key] = _parse(text.strip(), hints[key], key)
    return dataclasses.replace(config, **changes)


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
