"""Frequency-propagation study (sweeps/fp_study.toml): the member function and the report.

:func:`member` runs one piece of benchmarks/fp_study.py with the script's own functions: a whole
section (``linear_ideal``, ``linear_twin``, ``timings``, ``diode_twin``), or one window of
``linear_noise`` / one gamma of ``diode_gamma`` (``value``), and returns its rows as JSON text (``rows``);
:func:`results` puts the members' rows back together in the script's order and :func:`main` prints
the script's report (``fp_study.report``).

Usage::

    labtrain sweep sweeps/fp_study.toml --out runs/fp_study && python sweeps/fp_study.py runs/fp_study
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labtrain.training.sweep import load_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fp_study.py"
PARTS = ("linear_ideal", "linear_noise", "linear_twin", "diode_gamma", "timings", "diode_twin")


def _study():
    """benchmarks/fp_study.py as a module."""
    return load_module(SCRIPT)


def member(part: str, value: float = 0.0, noise_seeds: int = 8, repeats: int = 5) -> dict:
    """One piece of the study: ``part`` (a section of the script), ``value`` (the window in s of
    ``linear_noise``, the gamma in A/V of ``diode_gamma``; unused otherwise)."""
    st = _study()
    if part not in PARTS:
        raise ValueError(f"part {part!r}: expected one of {', '.join(PARTS)}")
    run = {"linear_ideal": st.linear_ideal, "linear_twin": st.linear_twin, "timings": lambda: st.timings(repeats),
           "diode_twin": lambda: st.diode_twin(noise_seeds),
           "linear_noise": lambda: st.linear_noise((float(value),), noise_seeds),
           "diode_gamma": lambda: st.diode_gamma((float(value),), noise_seeds)}[part]
    return {"rows": json.dumps(run())}


def results(folder: str | Path) -> dict:
    """The script's ``res`` dictionary from the completed members (rows in member order)."""
    from labtrain.training.sweep import read_manifest, read_member_result

    folder = Path(folder)
    res: dict = {}
    for m in read_manifest(folder)["members"]:
        if m["status"] != "completed" or not m.get("run_file"):
            continue
        record = read_member_result(folder / m["run_file"])
        part, rows = record["args"]["part"], json.loads(record["result"]["rows"])
        if isinstance(rows, list):
            res.setdefault(part, []).extend(rows)
        else:
            res[part] = rows
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder of sweeps/fp_study.toml")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file (the script's --json)")
    args = parser.parse_args(argv)
    res = results(args.folder)
    print(_study().report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
