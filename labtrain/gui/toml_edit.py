"""Write keys of an experiment file's TOML text in place, keeping everything else byte for byte.

Built on tomlkit (a style-preserving TOML parser): comments, blank lines, key
order, quoting and number formats survive; a changed value changes only that
value (its trailing comment and indentation stay; a multi-line array stays
multi-line, with the same element indentation); a new key goes right after
the last key of its table (before the blank lines and comments that lead to
the next table); a new table goes at the end.  Tables written with dotted keys
(``run.epochs = 3``) or as inline tables (``run = {epochs = 3}``) are extended
in their own style, never declared a second time.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Comment, InlineTable, Item, Table

__all__ = ["TomlEditError", "toml_value", "set_toml_value", "set_toml_values"]


class TomlEditError(ValueError):
    """The text is not valid TOML, or ``[section]`` exists but is not a table; the message is one line."""


def toml_value(value: Any) -> str:
    """``value`` as TOML (``true``, ``"text"``, ``[1, 2]``, ``1e-06``)."""
    return tomlkit.item(_plain(value)).as_string()


def _plain(value: Any) -> Any:
    """Python scalars and lists only (numpy scalars and tuples become what TOML knows)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return value.item()
    return value


def _new_item(value: Any, old: Item | None) -> Item:
    """A tomlkit item for ``value`` in the style of the value it replaces (multi-line arrays stay so)."""
    value = _plain(value)
    if isinstance(old, Array) and isinstance(value, list) and "\n" in old.as_string():
        lines = old.as_string().splitlines()
        indent = next((re.match(r"[ \t]*", line).group(0) for line in lines[1:] if line.strip()
                       and not line.strip().startswith(("]", "#"))), "    ")
        closing = re.match(r"[ \t]*", lines[-1]).group(0) if lines[-1].strip().startswith("]") else ""
        body = "".join(f"{indent}{toml_value(v)},\n" for v in value)
        return tomlkit.parse(f"v = [\n{body}{closing}]\n")["v"]
    return tomlkit.item(value)


def _insert_index(table: Table) -> int:
    """Where a new key goes in a ``[table]``'s body: after its last key (before its sub-tables and the blank
    lines and comments that lead to the next table); in a table without keys, after its leading comments."""
    body = table.value.body
    last = None
    for i, (key, item) in enumerate(body):
        if key is not None and not isinstance(item, (Table, AoT)):
            last = i
    if last is not None:
        return last + 1
    i = 0
    while i < len(body) and body[i][0] is None and isinstance(body[i][1], Comment):
        i += 1
    return i


def _set(doc: tomlkit.TOMLDocument, section: str, key: str, value: Any) -> None:
    if section not in doc:
        table = tomlkit.table()
        table.add(key, tomlkit.item(_plain(value)))
        doc.add(section, table)
        return
    table = doc[section]
    if not isinstance(table, (Table, InlineTable)) and not hasattr(table, "keys"):
        raise TomlEditError(f"[{section}] is not a table (it is {type(table).__name__}): cannot set {key}")
    if isinstance(table, AoT):
        raise TomlEditError(f"[[{section}]] is an array of tables: cannot set {key}")
    if key in table:
        old = table.item(key) if hasattr(table, "item") else None
        new = _new_item(value, old)
        if old is not None and isinstance(new, Item):
            new.trivia.indent = old.trivia.indent
        table[key] = new
        return
    item = tomlkit.item(_plain(value))
    if isinstance(table, Table) and not table.is_super_table():
        # a [table] with its own header: the new key right after the last one, indented like it
        body = table.value.body
        idx = _insert_index(table)
        keyed = [it for k, it in body[:idx] if k is not None and not isinstance(it, (Table, AoT))]
        if keyed:
            item.trivia.indent = keyed[-1].trivia.indent
            if not keyed[-1].trivia.trail.endswith("\n"):  # the last key ended the file without a newline
                keyed[-1].trivia.trail += "\n"
        if idx < len(body):
            table.value._insert_at(idx, key, item)
        else:
            table.value.append(key, item)
        return
    table[key] = item  # inline tables and tables made of dotted keys: tomlkit extends them in their style


def set_toml_values(text: str, changes: Mapping[str, Mapping[str, Any]]) -> str:
    """``text`` with every ``changes[section][key]`` written in, everything else kept as it was.

    Raises
    ------
    TomlEditError
        ``text`` is not valid TOML, or a section to write into is not a table.
    """
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise TomlEditError(f"not valid TOML: {str(exc).splitlines()[0]}") from None
    for section, values in changes.items():
        for key, value in values.items():
            _set(doc, section, key, value)
    return doc.as_string()


def set_toml_value(text: str, section: str, key: str, value: Any) -> str:
    """``text`` with ``[section] key = value`` (see :func:`set_toml_values`)."""
    return set_toml_values(text, {section: {key: value}})
