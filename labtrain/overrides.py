"""Command-line overrides: ``--set section.key=value`` for run, check, gradcheck and sweep.

A value is read as a TOML value (``0.01``, ``3``, ``true``, ``[2, 4, 1]``, ``"text"``); anything that is
not valid TOML is taken as a plain string (``--set learning.rule=plain_ep``).  String keys always take
the text as written.  Each key is checked against the schema of the experiment's ``[chip] type`` (the
same :class:`~labtrain.schema.Field` table that checks experiment files), and a bad one is a one-line
:class:`~labtrain.schema.ConfigError` naming ``--set`` and the key.

``labtrain sweep`` also takes several values for one key: ``--set learning.learning_rate=0.01,0.03``
(commas outside brackets and quotes separate values) and integer ranges ``--set run.seed=0:10``
(``start:stop[:step]``, stop excluded, as Python's ``range``).

Overrides are nested ``{section: {key: value}}`` tables, as :func:`labtrain.config.load_experiment`
takes them; :func:`flatten` and :func:`nest` convert to and from ``{"section.key": value}``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from labtrain.config import BASE_SCHEMA, chip_kinds, merged_schema, schema_for
from labtrain.schema import ConfigError, Field, check_value, show, suggest

__all__ = ["parse_value", "split_values", "parse_assignment", "parse_sets", "parse_axes", "check_overrides",
           "experiment_kind", "flatten", "nest", "merge", "format_overrides"]

#: Sections ``--set`` may name (``[instruments]`` tables are edited in the file).
SECTIONS = ("experiment", "chip", "backend", "wiring", "task", "learning", "run")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_RANGE = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?$")
#: Longest integer range a sweep axis may expand to.
MAX_RANGE = 100_000


def parse_value(text: str) -> Any:
    """One value: a TOML value if ``text`` is one, else ``text`` itself (stripped) as a string."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_values(text: str) -> list[str]:
    """``text`` split at the commas that lie outside brackets and quotes (``"a,b"``, ``[1, 2]`` stay whole)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _int_range(text: str, where: str) -> list[int] | None:
    match = _RANGE.match(text)
    if match is None:
        return None
    start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
    if step == 0:
        raise ConfigError(f"{where}: range step 0; expected start:stop[:step] with step != 0")
    values = range(start, stop, step)
    if not values:
        raise ConfigError(f"{where}: the range {text.strip()} is empty (stop is excluded, as in Python)")
    if len(values) > MAX_RANGE:
        raise ConfigError(f"{where}: the range {text.strip()} has {len(values)} values; at most {MAX_RANGE}")
    return list(values)


def parse_assignment(text: str, many: bool = False) -> tuple[str, list[Any]]:
    """``"section.key=value"`` -> (``"section.key"``, [value]); with ``many``, comma lists and ranges too.

    Raises :class:`ConfigError` (one line, naming ``--set`` and the text) when the form is wrong.
    """
    where = f"--set {text}"
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(f"{where}: expected section.key=value (e.g. learning.learning_rate=0.01)")
    section = key.split(".", 1)[0]
    if section not in SECTIONS and not (many and section == "args"):  # args.NAME: a measurement sweep's keyword
        raise ConfigError(f"{where}: unknown section [{section}]{suggest(section, list(SECTIONS))}; "
                          f"sections are {', '.join(SECTIONS)}")
    if not raw.strip():
        raise ConfigError(f"{where}: no value after '='")
    if not many:
        return key, [parse_value(raw)]
    values: list[Any] = []
    for part in split_values(raw):
        if not part.strip():
            raise ConfigError(f"{where}: empty value in the comma-separated list")
        expanded = _int_range(part, where)
        values.extend(expanded if expanded is not None else [parse_value(part)])
    return key, values


def parse_sets(items: Iterable[str] | None) -> dict[str, dict[str, Any]]:
    """``--set`` options of run/check/gradcheck -> nested overrides (one value per key; raw, unchecked).

    A key given twice, or a comma list (a sweep's syntax), is a :class:`ConfigError`.
    """
    flat: dict[str, Any] = {}
    for item in items or ():
        key, values = parse_assignment(item)
        if key in flat:
            raise ConfigError(f"--set {item}: {key} is set twice")
        value = values[0]
        if isinstance(value, str) and len(split_values(item.partition("=")[2])) > 1:
            raise ConfigError(f"--set {item}: one value expected (several values are for labtrain sweep)")
        flat[key] = value
    return nest(flat)


def parse_axes(items: Iterable[str] | None) -> dict[str, list[Any]]:
    """``--set`` options of ``labtrain sweep`` -> ``{"section.key": [values...]}`` in the order given."""
    axes: dict[str, list[Any]] = {}
    for item in items or ():
        key, values = parse_assignment(item, many=True)
        if key in axes:
            raise ConfigError(f"--set {item}: {key} is set twice")
        axes[key] = values
    return axes


def flatten(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{section: {key: value}}`` -> ``{"section.key": value}``."""
    return {f"{section}.{key}": value for section, keys in overrides.items() for key, value in keys.items()}


def nest(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"section.key": value}`` -> ``{section: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        section, key = name.split(".", 1)
        out.setdefault(section, {})[key] = value
    return out


def merge(*tables: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Nested overrides merged left to right (later tables win key by key)."""
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        for section, keys in table.items():
            out.setdefault(section, {}).update(keys)
    return out


def format_overrides(overrides: Mapping[str, Mapping[str, Any]], skip: Sequence[str] = ()) -> str:
    """``section.key=value`` pairs separated by spaces (TOML spelling of values), leaving out ``skip`` keys."""
    return " ".join(f"{key}={show(value)}" for key, value in flatten(overrides).items() if key not in skip)


def experiment_kind(data: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """``[chip] type`` of a parsed experiment (an override of it wins); the default kind when absent."""
    kind = (overrides or {}).get("chip", {}).get("type")
    if kind is None:
        chip = data.get("chip", {})
        kind = chip.get("type") if isinstance(chip, dict) else None
    return kind if isinstance(kind, str) else BASE_SCHEMA["chip"]["type"].default


def kind_of_text(text: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """``[chip] type`` of experiment-file text, or None when the text is not valid TOML (the loader says why)."""
    try:
        return experiment_kind(tomllib.loads(text), overrides)
    except tomllib.TOMLDecodeError:
        return None


def kind_of_file(path: str | Path, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """``[chip] type`` of an experiment file, or None when it cannot be read (the loader says why)."""
    try:
        return kind_of_text(Path(path).read_text(), overrides)
    except (OSError, UnicodeDecodeError):
        return None


def _coerce(raw: Any, spec: Field) -> Any:
    """A string key takes its text as written (``--set experiment.name=2024``); a float key takes an int."""
    if spec.kind == "str" and not isinstance(raw, str) and not isinstance(raw, (list, dict)):
        return show(raw) if isinstance(raw, bool) else str(raw)
    return raw


def check_overrides(overrides: Mapping[str, Mapping[str, Any]], kind: str | None,
                    where: str = "--set") -> dict[str, dict[str, Any]]:
    """Check every key and value against the schema of ``[chip] type = kind``; return the checked values.

    ``kind`` None (the experiment file could not be read) skips the check: loading the file then
    reports its own error.  Raises :class:`ConfigError` naming ``where`` and the key:
    ``--set [learning] learning_rate = -1: out of range; allowed: float in (0, 1e+06]``.
    """
    if kind is None:
        return {s: dict(v) for s, v in overrides.items()}
    installed = chip_kinds()
    if kind not in installed:
        raise ConfigError(f"{where} chip.type={show(kind)}: expected one of {', '.join(installed)}"
                          + suggest(kind, list(installed)))
    schema, every = schema_for(kind), merged_schema()
    out: dict[str, dict[str, Any]] = {}
    for section, keys in overrides.items():
        fields = schema.get(section)
        if fields is None:
            raise ConfigError(f"{where}: unknown section [{section}]{suggest(section, list(SECTIONS))}; "
                              f"sections are {', '.join(SECTIONS)}")
        for key, raw in keys.items():
            spec = fields.get(key)
            if spec is None:
                owner = every.get(section, {}).get(key)
                if owner is not None and owner.types:
                    raise ConfigError(f"{where} {section}.{key}: applies to [chip] type {' / '.join(owner.types)}, "
                                      f"not to type = {kind!r}")
                raise ConfigError(f"{where} {section}.{key}: unknown key [{section}] {key}"
                                  f"{suggest(key, list(fields))}; allowed keys: {', '.join(fields)}")
            out.setdefault(section, {})[key] = check_value(f"{where} [{section}]", key, _coerce(raw, spec), spec)
    return out
