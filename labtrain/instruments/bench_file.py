"""``[instruments]`` tables of an experiment file: which driver serves each instrument of the bench."""

from __future__ import annotations

from typing import Any

from labtrain.schema import ConfigError

__all__ = ["parse_instruments"]


def parse_instruments(table: Any, source: str) -> dict[str, dict[str, Any]]:
    """Validate ``[instruments.<name>]`` tables (raises :class:`~labtrain.schema.ConfigError`)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [instruments] must be a table of instrument tables")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: [instruments] {name} must be a table ([instruments.{name}])")
        out[name] = dict(entry)
    return out
