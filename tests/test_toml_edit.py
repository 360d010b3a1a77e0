""""Write into text" (labtrain.gui.toml_edit): a changed value changes only that value, a new key only adds
its own line(s) in the right table, and every other byte of the file stays as it was.

Round trips on every example experiment file (and the plugin example's TOML files) and on hand-written files
with comments, multi-line arrays, dotted keys and inline tables.  No Qt needed.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tomlkit")

from labtrain.gui.toml_edit import TomlEditError, set_toml_value, set_toml_values, toml_value  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = sorted(EXAMPLES.glob("*.toml")) + sorted((EXAMPLES / "plugin").glob("*.toml"))


def _changed(value: Any) -> Any:
    """A different value of the same TOML type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, float):
        return value * 2.5 + 0.125
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, list):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return [_changed(v) for v in value] + [_changed(value[-1])]
        return [_changed(v) for v in value] if value else ["new"]
    raise TypeError(type(value))


def _line_diff(old: str, new: str) -> tuple[list[str], list[str], int]:
    """The differing block of lines (old lines, new lines, index of its first line) between two texts that
    agree on a common prefix and suffix of lines."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    p = 0
    while p < min(len(a), len(b)) and a[p] == b[p]:
        p += 1
    s = 0
    while s < min(len(a), len(b)) - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
        s += 1
    return a[p:len(a) - s], b[p:len(b) - s], p


def _statement(lines: list[str], start: int, stop: int) -> int:
    """The end of the smallest block ``lines[start:end]`` (``end >= stop``) that is valid TOML on its own."""
    for end in range(max(stop, start + 1), len(lines) + 1):
        try:
            tomllib.loads("".join(lines[start:end]))
            return end
        except tomllib.TOMLDecodeError:
            continue
    raise AssertionError(f"no valid TOML from line {start}")


def _assert_only(text: str, out: str, section: str, key: str, value: Any, dotted: bool = False) -> None:
    """``out`` differs from ``text`` only in the lines of ``[section] key``, which now hold ``value``."""
    expected = copy.deepcopy(tomllib.loads(text))
    expected.setdefault(section, {})[key] = value
    assert tomllib.loads(out) == expected
    a, b = text.splitlines(keepends=True), out.splitlines(keepends=True)
    old_lines, new_lines, p = _line_diff(text, out)
    assert new_lines, "nothing changed"
    name = re.compile(rf"^\s*({re.escape(section)}\s*\.\s*)?{re.escape(key)}\s*=")
    start = p
    while start > 0 and not name.match(b[start] if start < len(b) else ""):
        start -= 1                      # the changed lines may start inside the value (a multi-line array)
    assert name.match(b[start]), (start, b[start])
    end_b = _statement(b, start, p + len(new_lines))
    wrap = (lambda d: d.get(section, {})) if dotted else (lambda d: d)
    assert wrap(tomllib.loads("".join(b[start:end_b]))) == {key: value}, b[start:end_b]  # only this key
    end_a = end_b - len(b) + len(a)
    assert a[:start] == b[:start] and a[end_a:] == b[end_b:]               # every other line byte-identical
    if old_lines:
        old_block = "".join(a[start:end_a])
        assert set(wrap(tomllib.loads(old_block))) == {key}, old_block
        if "\n" not in old_block.rstrip("\n") and "#" in old_block.split("=", 1)[1]:
            comment = old_block[old_block.rindex("#"):].rstrip("\n")
            if comment not in repr(tomllib.loads(old_block)):  # a real comment, not a '#' inside a string
                assert b[start].rstrip("\n").endswith(comment)                     # its comment kept


def _cases(path: Path) -> list[tuple[str, str, Any]]:
    data = tomllib.loads(path.read_text())
    return [(section, key, value) for section, table in data.items() if isinstance(table, dict)
            for key, value in table.items() if not isinstance(value, dict)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_key_of_every_example_changes_alone(path):
    text = path.read_text()
    cases = _cases(path)
    assert cases
    for section, key, value in cases:
        new = _changed(value)
        _assert_only(text, set_toml_value(text, section, key, new), section, key, new)
        assert set_toml_value(text, section, key, value) == text or tomllib.loads(
            set_toml_value(text, section, key, value)) == tomllib.loads(text)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_new_keys_go_right_after_the_last_key_of_their_table(path):
    text = path.read_text()
    data = tomllib.loads(text)
    for section, table in data.items():
        if not isinstance(table, dict) or not any(not isinstance(v, dict) for v in table.values()):
            continue
        out = set_toml_value(text, section, "zz_new_key", 0.5)
        old_lines, new_lines, at = _line_diff(text, out)
        assert old_lines == [] and new_lines == ["zz_new_key = 0.5\n"]          # one line added, nothing else
        assert tomllib.loads(out)[section]["zz_new_key"] == 0.5
        before = tomllib.loads("".join(out.splitlines(keepends=True)[:at]) or "")
        last_key = [k for k, v in table.items() if not isinstance(v, dict)][-1]
        # everything above the new line is the file up to and including its table's last key
        assert last_key in before.get(section, {}) and not any(
            s for s in data if s != section and s in before and list(data).index(s) > list(data).index(section))
    out = set_toml_value(text, "zz_section", "k", "v")
    assert out.startswith(text.rstrip("\n")) and out.rstrip("\n").endswith('[zz_section]\nk = "v"')


MULTILINE = """\
# A DNPU file written by hand
[chip]
type = "dnpu"   # the device

[learning]
rule = "hge"
amplitudes_v = [
    0.02,  # control 0
    0.03,
    0.04,
]
tones_hz = [ 200.0, 300.0,
             400.0 ]  # spaced

# the training loop
[run]
epochs = 3
"""


def test_multiline_arrays_stay_valid_and_multiline():
    out = set_toml_value(MULTILINE, "learning", "amplitudes_v", [0.05, 0.06])
    _assert_only(MULTILINE, out, "learning", "amplitudes_v", [0.05, 0.06])
    assert "amplitudes_v = [\n    0.05,\n    0.06,\n]\n" in out                    # same style, same indent
    out = set_toml_value(MULTILINE, "learning", "tones_hz", [100.0])
    _assert_only(MULTILINE, out, "learning", "tones_hz", [100.0])
    out = set_toml_value(MULTILINE, "learning", "fd_step_v", 0.02)                # after the last key
    assert "    400.0 ]  # spaced\nfd_step_v = 0.02\n\n# the training loop\n[run]" in out
    _assert_only(MULTILINE, set_toml_value(MULTILINE, "run", "epochs", 9), "run", "epochs", 9)
    _assert_only(MULTILINE, set_toml_value(MULTILINE, "chip", "type", "xy"), "chip", "type", "xy")
    assert '\ntype = "xy"   # the device\n' in set_toml_value(MULTILINE, "chip", "type", "xy")


DOTTED = """\
# dotted keys at the top, then tables
learning.rule = "cl"
learning.eta = 0.1   # clamp
run.epochs = 3

[chip]
rows = 3
"""


def test_dotted_keys_are_extended_not_declared_twice():
    for section, key, value in (("learning", "eta", 0.25), ("learning", "learning_rate", 0.5),
                                ("run", "seed", 4), ("run", "epochs", 8)):
        out = set_toml_value(DOTTED, section, key, value)
        _assert_only(DOTTED, out, section, key, value, dotted=True)
        assert f"[{section}]" not in out                                           # no second declaration
    out = set_toml_values(DOTTED, {"learning": {"eta": 0.3}, "chip": {"cols": 5}, "task": {"name": "iris"}})
    assert tomllib.loads(out) == {"learning": {"rule": "cl", "eta": 0.3}, "run": {"epochs": 3},
                                  "chip": {"rows": 3, "cols": 5}, "task": {"name": "iris"}}
    assert "learning.eta = 0.3   # clamp\n" in out and out.startswith("# dotted keys at the top")


def test_inline_tables_and_odd_layouts():
    text = 'run = { epochs = 3, seed = 1 }\n\n[task]\n  name = "iris"   # indented\n  seed = 2\n[task.sub]\nx = 1\n'
    out = set_toml_value(text, "run", "epochs", 5)
    assert out == text.replace("epochs = 3", "epochs = 5")
    out = set_toml_value(text, "run", "batch_size", 8)
    assert tomllib.loads(out)["run"] == {"epochs": 3, "seed": 1, "batch_size": 8} and out.count("run") == 1
    out = set_toml_value(text, "task", "decoder", "argmax")                      # before [task.sub], indented
    assert '  seed = 2\n  decoder = "argmax"\n[task.sub]' in out
    assert set_toml_value(text, "task", "name", "xor") == text.replace('"iris"', '"xor"')
    # no newline at the end of the file; an empty file; strings that need escapes
    assert set_toml_value("[run]\nepochs = 3", "run", "seed", 1) == "[run]\nepochs = 3\nseed = 1\n"
    assert set_toml_value("", "run", "epochs", 2) == "[run]\nepochs = 2\n"
    out = set_toml_value(text, "experiment", "description", 'say "hi" \\ # not a comment')
    assert tomllib.loads(out)["experiment"]["description"] == 'say "hi" \\ # not a comment'


def test_bad_input_is_one_error_line():
    with pytest.raises(TomlEditError, match="not valid TOML"):
        set_toml_value("[run\nepochs = 3\n", "run", "epochs", 4)
    with pytest.raises(TomlEditError, match="not a table"):
        set_toml_value("run = 3\n", "run", "epochs", 4)
    assert toml_value(1e-6) == "1e-06" and toml_value(True) == "true" and toml_value([1, 2.5]) == "[1, 2.5]"
