"""What is installed: chip kinds, learning rules and instrument drivers, built-in and from plugins.

labtrain's front ends (config, build, CLI, GUI) never name a chip kind: they
ask this registry.  Three groups, each filled from a built-in table and from
the ``importlib.metadata`` entry points of installed packages:

========================  ====================================================================
entry-point group         object the entry point names
========================  ====================================================================
``labtrain.kinds``        a :class:`labtrain.kinds.ChipKind` (the kind's whole description)
``labtrain.rules``        a :class:`labtrain.kinds.RulePlugin` (a learning rule for given kinds)
``labtrain.drivers``      a :class:`labtrain.instruments.drivers.DriverSpec` (an instrument driver)
========================  ====================================================================

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."labtrain.kinds"]
    memristor = "labtrain_memristor:KIND"

Entries load lazily (on the first lookup), so ``import labtrain`` stays cheap
and a broken plugin is reported by name (``labtrain devices`` lists it with its
error) instead of breaking every command.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = ["BUILTIN", "GROUPS", "Entry", "entries", "load", "load_all", "names", "broken", "clear_cache",
           "RegistryError"]

log = logging.getLogger(__name__)

#: Built-in entries: group -> {name: "module:attribute"}.  Order is the display order.
BUILTIN: dict[str, dict[str, str]] = {
    "labtrain.kinds": {
        "resistor_network": "labtrain.kinds.resistor.kind:KIND",
        "xy": "labtrain.kinds.xy.kind:KIND",
        "nonreciprocal": "labtrain.kinds.nonreciprocal.kind:KIND",
        "nonlinear_resistor": "labtrain.kinds.nonlinear.kind:KIND",
        "dnpu": "labtrain.kinds.dnpu.kind:KIND",
    },
    "labtrain.rules": {},
    "labtrain.drivers": {
        "nidaq": "labtrain.drivers.nidaq:DRIVER",
        "sr830": "labtrain.drivers.lockin:SR830_DRIVER",
        "sr860": "labtrain.drivers.lockin:SR860_DRIVER",
        "potbridge": "labtrain.drivers.potbridge:SERIAL_DRIVER",
        "ad5293_ftdi": "labtrain.drivers.potbridge:FTDI_DRIVER",
    },
}
GROUPS = tuple(BUILTIN)
#: ``[chip] type`` when an experiment file gives none
DEFAULT_KIND = next(iter(BUILTIN["labtrain.kinds"]))


class RegistryError(LookupError):
    """A name that is not installed, or a plugin that fails to load; the message is one line."""


@dataclass(frozen=True)
class Entry:
    """One registered object: where it comes from and how to load it."""

    group: str
    name: str
    target: str          #: "module:attribute"
    source: str          #: "labtrain" (built-in) or the distribution name of the plugin

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj


_entries: dict[str, dict[str, Entry]] = {}
_loaded: dict[tuple[str, str], Any] = {}
_broken: dict[tuple[str, str], str] = {}


def _plugin_entries(group: str) -> list[Entry]:
    found = []
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        found.append(Entry(group, ep.name, ep.value, dist.name if dist is not None else "plugin"))
    return found


def entries(group: str) -> dict[str, Entry]:
    """Every entry of ``group``, built-ins first; a plugin cannot replace a built-in name."""
    if group not in BUILTIN:
        raise RegistryError(f"unknown registry group {group!r}; groups: {', '.join(GROUPS)}")
    if group not in _entries:
        table = {name: Entry(group, name, target, "labtrain") for name, target in BUILTIN[group].items()}
        for entry in _plugin_entries(group):
            if entry.name in table:
                log.warning("plugin %s: %s %r is a built-in name; ignored", entry.source, group, entry.name)
                continue
            table[entry.name] = entry
        _entries[group] = table
    return _entries[group]


def names(group: str) -> tuple[str, ...]:
    """Registered names of ``group`` (loadable or not)."""
    return tuple(entries(group))


def load(group: str, name: str) -> Any:
    """The object registered as ``name`` in ``group`` (raises :class:`RegistryError`)."""
    key = (group, name)
    if key in _loaded:
        return _loaded[key]
    table = entries(group)
    if name not in table:
        raise RegistryError(f"no {group.split('.')[-1][:-1]} named {name!r} is installed; "
                            f"installed: {', '.join(table) or 'none'}")
    entry = table[name]
    try:
        obj = entry.load()
    except Exception as exc:  # a plugin's own bug must not read as a labtrain traceback
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        _broken[key] = why
        raise RegistryError(f"{group} entry {name!r} from {entry.source} ({entry.target}) failed to load: "
                            f"{why}") from None
    _loaded[key] = obj
    return obj


def load_all(group: str) -> dict[str, Any]:
    """Every loadable object of ``group``; entries that fail are logged and listed by :func:`broken`."""
    out = {}
    for name in entries(group):
        try:
            out[name] = load(group, name)
        except RegistryError as exc:
            log.warning("%s", exc)
    return out


def broken(group: str) -> dict[str, str]:
    """Entries of ``group`` that failed to load, with the reason (after :func:`load_all`)."""
    return {name: why for (g, name), why in _broken.items() if g == group}


def clear_cache() -> None:
    """Forget what was discovered and loaded (tests; after installing a plugin in-process)."""
    _entries.clear()
    _loaded.clear()
    _broken.clear()
