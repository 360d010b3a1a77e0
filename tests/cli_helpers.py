"""Helpers for the tests that drive ``labtrain`` from an experiment file: run the CLI in-process, write a
file, edit a section of a TOML text, kill a run mid-way and compare its resume.  Imported by the test modules (``tests/`` is on ``sys.path``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from labtrain.cli import main
from labtrain.training.store import RunStore, read_summary


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


def assert_bad_run_is_one_line_error(text: str, needles, tmp_path: Path, capsys) -> None:
    """``labtrain run`` on a bad experiment: exit 2, one stderr line naming the file and every needle, no run."""
    f = write(tmp_path, text)
    code, out, err = cli(["run", f, "--out", tmp_path / "runs"], capsys)
    assert code == 2, (out, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert str(f) in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err}"
    assert not (tmp_path / "runs").exists()


def run_until_killed(experiment: Path, out: Path, at_least: int, env: dict | None = None,
                     timeout_s: float = 60) -> Path:
    """``python -m labtrain run experiment --out out -q`` in a subprocess, SIGKILLed once its run file stores
    ``at_least`` steps; the run file, asserted ``crashed``.  ``env``: the child's environment (default: ours)."""
    proc = subprocess.Popen([sys.executable, "-m", "labtrain", "run", str(experiment), "--out", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline, path = time.monotonic() + timeout_s, None
    while path is None and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for p in out.glob("*.h5"):  # read while the writer writes: every commit is whole
            if read_summary(p)["steps_done"] >= at_least:
                path = p
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert path is not None and read_summary(path)["status"] == "crashed"
    return path


def run_contents(path: Path) -> dict:
    """What a resumed run must reproduce: ``final`` parameters, the ``steps`` and ``eval`` tables, the parameter
    ``history`` and the ``status``."""
    with RunStore.open(path) as store:
        return {"final": store.parameters("final"), "steps": store.table("steps"), "eval": store.table("eval"),
                "history": store.parameter_history(), "status": store.attrs["status"]}


def assert_resumed_like(got: dict, ref: dict) -> None:
    """A resumed run's contents (``final``, ``steps``, ``eval``, ``history``, ``status``) equal the
    uninterrupted reference's, bit for bit (wall-clock ``time_s`` aside)."""
    assert got["status"] == "completed"
    np.testing.assert_array_equal(got["final"], ref["final"])
    for group in ("steps", "eval"):
        for col, values in ref[group].items():
            if col != "time_s":
                np.testing.assert_array_equal(got[group][col], values, err_msg=f"{group}/{col}")
    np.testing.assert_array_equal(got["history"][1], ref["history"][1])
