"""Typed keys of experiment files: :class:`Field`, value checking, one-line :class:`ConfigError`.

Every section of an experiment file -- the shared ones in :mod:`labtrain.config`, each chip
kind's fragment in its package, ``[instruments]`` in :mod:`labtrain.instruments.bench_file` --
declares its keys with :class:`Field` and checks values with :func:`check_value`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "Field", "check_value", "suggest", "show"]


class ConfigError(ValueError):
    """Invalid experiment file or override; the message is one line."""


@dataclass(frozen=True)
class Field:
    """One experiment-file key.

    ``kind`` is one of ``str int float bool ints floats``; ``low``/``high``
    bound numbers (and every entry of a list); ``choices`` restricts strings.
    ``types`` names the ``[chip] type`` values the key applies to and ``rules`` the
    ``[learning] rule`` values that read it (``None``: every one); the GUI's form shows
    only the keys of the chosen type and rule.
    """

    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    low_open: bool = False  # True: value must be > low
    high_open: bool = False  # True: value must be < high
    types: tuple[str, ...] | None = None  # [chip] types the key applies to (None: every type)
    rules: tuple[str, ...] | None = None  # [learning] rules that read the key (None: every rule)

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        num = (lambda v: f"{int(v)}") if self.kind in ("int", "ints") else (lambda v: f"{v:g}")
        lo = "-inf" if self.low is None else num(self.low)
        hi = "inf" if self.high is None else num(self.high)
        if self.low is None and self.high is None:
            return f"a value of type {self.kind}"
        return f"{self.kind} in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"


def suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show(value: Any) -> str:
    """A value as it is written in TOML (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


def check_value(where: str, key: str, value: Any, spec: Field) -> Any:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{where} {key} = {show(value)}: {why}")

    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("expected true or false")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise bad("expected a string")
        if spec.choices and value not in spec.choices:
            raise bad(f"expected {spec.allowed()}" + suggest(value, list(spec.choices)))
        return value
    if kind in ("int", "float"):
        return check_number(bad, value, spec, kind)
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad("expected a list of non-empty strings")
        return list(value)
    if kind in ("ints", "floats"):
        if not isinstance(value, list):
            raise bad(f"expected a list of {kind[:-1]}s")
        return [check_number(bad, v, spec, kind[:-1]) for v in value]
    raise AssertionError(kind)


def check_number(bad, value: Any, spec: Field, kind: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"expected {'an integer' if kind == 'int' else 'a number'}")
    if kind == "int" and not isinstance(value, int):
        raise bad("expected an integer")
    if not math.isfinite(value):
        raise bad("expected a finite number")
    too_low = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
    too_high = spec.high is not None and (value >= spec.high if spec.high_open else value > spec.high)
    if too_low or too_high:
        raise bad(f"out of range; allowed: {spec.allowed()}")
    return int(value) if kind == "int" else float(value)
