"""YAML mappings -> typed frozen dataclasses, every key checked (training configs and compression recipes).

A field says its constraints in its metadata:

    epochs: int = option(8, min=1)
    observer: str = option("histogram", choices=("minmax", "histogram"))

and `build_config(cls, mapping, source)` returns the dataclass or raises one UserError line that names
`source` (the file) and the dotted key: an unknown key, a wrong type, a value out of range.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Any

from atpn_edge.errors import UserError


def option(default, *, choices=None, min=None, max=None, min_exclusive=False, help=""):  # noqa: A002
    """A dataclass field with a default and the constraints `build_config` checks."""
    meta = {"choices": choices, "min": min, "max": max, "min_exclusive": min_exclusive, "help": help}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(tp) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(tp, str(tp))


def check_value(value, tp, meta: dict, source: str, key: str):
    where = f"{source}: '{key}'"
    origin = typing.get_origin(tp)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise UserError(f"{where} must be a list, got {value!r}")
        return tuple(check_value(v, str, dict(meta), source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where} must be true or false, got {value!r}")
    elif tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (tp is int and not isinstance(value, int)):
            raise UserError(f"{where} must be {_type_name(tp)}, got {value!r}")
        value = tp(value)
        low, high = meta.get("min"), meta.get("max")
        if low is not None and (value < low or (meta.get("min_exclusive") and value == low)):
            raise UserError(f"{where} must be {'greater than' if meta.get('min_exclusive') else 'at least'} {low}, got {value!r}")
        if high is not None and value > high:
            raise UserError(f"{where} must be at most {high}, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where} must be a string, got {value!r}")
    choices = meta.get("choices")
    if choices and not isinstance(value, tuple) and value not in choices:
        raise UserError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    return value


def build_config(cls, values: Any, source: str, prefix: str = ""):
    """A mapping -> dataclass `cls`, every key checked; errors name `source` and the dotted key. A nested
    dataclass keeps its field's own defaults for the keys the mapping does not give."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"{source}: '{prefix.rstrip('.')}' must be a mapping, got {values!r}" if prefix
                        else f"{source}: expected a mapping of keys at the top level, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise UserError(f"{source}: unknown key '{prefix}{key}' (known: {known})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            base = fields[key].default_factory() if fields[key].default_factory is not dataclasses.MISSING else tp()
            sub = build_config(tp, value, source, f"{prefix}{key}.")
            kwargs[key] = dataclasses.replace(base, **{k: getattr(sub, k) for k in set(value or {})})
        else:
            kwargs[key] = check_value(value, tp, dict(fields[key].metadata), source, f"{prefix}{key}")
    return cls(**kwargs)
