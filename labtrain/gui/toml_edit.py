"""Write one key of an experiment file's TOML text in place, keeping comments and layout."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["toml_value", "set_toml_value"]

_HEADER = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")


def toml_value(value: Any) -> str:
    """``value`` as TOML (``true``, ``"text"``, ``[1, 2]``, ``1e-06``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def set_toml_value(text: str, section: str, key: str, value: Any) -> str:
    """``text`` with ``[section] key = value``: the key's line replaced (its comment kept), else
    appended at the end of the section, else a new section appended at the end."""
    lines = text.splitlines()
    new = f"{key} = {toml_value(value)}"
    start = end = None
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m:
            if start is not None:
                end = i
                break
            if m.group(1) == section:
                start = i
    if start is None:
        body = text.rstrip("\n")
        return (body + "\n\n" if body else "") + f"[{section}]\n{new}\n"
    end = len(lines) if end is None else end
    key_re = re.compile(rf"^(\s*){re.escape(key)}\s*=\s*(.*)$")
    for i in range(start + 1, end):
        m = key_re.match(lines[i])
        if m:
            comment = ""
            rest = m.group(2)
            if "#" in rest and not rest.lstrip().startswith(('"', "'", "[")):
                comment = "  " + rest[rest.index("#"):]
            lines[i] = m.group(1) + new + comment
            return "\n".join(lines) + "\n"
    insert = end
    while insert - 1 > start and not lines[insert - 1].strip():
        insert -= 1  # keep blank lines between sections after the new key
    lines.insert(insert, new)
    return "\n".join(lines) + "\n"
