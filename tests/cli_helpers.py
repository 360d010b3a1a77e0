"""Helpers for the tests that drive ``labtrain`` from an experiment file: run the CLI in-process, write a
file, edit a section of a TOML text.  Imported by the test modules (``tests/`` is on ``sys.path``)."""

from __future__ import annotations

from pathlib import Path

from labtrain.cli import main


def cli(argv, capsys) -> tuple[int, str, str]:
    """Run ``labtrain argv`` in-process; return (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def with_lines(base: str, section: str, *lines: str) -> str:
    """``base`` with ``lines`` added to ``[section]`` (replacing keys it already has)."""
    keys = {line.split("=")[0].strip() for line in lines}
    out, current = [], None
    for line in base.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            out.append(line)
            if current == section:
                out += list(lines)
            continue
        if current == section and line.split("=")[0].strip() in keys:
            continue
        out.append(line)
    if f"[{section}]" not in base:
        out += [f"[{section}]", *lines]
    return "\n".join(out) + "\n"
