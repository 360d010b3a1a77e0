"""DNPU gate study (sweeps/dnpu_gate_study.toml): the member function and the two tables.

:func:`member` runs benchmarks/dnpu_gate_study.py's ``gate_study`` for one device and one gate (or its
``fidelity_study`` for ``gate = "fidelity"``) with the options the script's parser would give them
(its defaults unless the sweep sets them) and returns the rows as JSON text (``rows``); :func:`main`
prints the script's part-1 table (success / restarts and median steps per gate and device, totals)
and its part-2 table from the members' results.

Usage::

    labtrain sweep sweeps/dnpu_gate_study.toml --out runs/dnpu_gates && python sweeps/dnpu_gate_study.py runs/dnpu_gates
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from labtrain.training.sweep import load_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dnpu_gate_study.py"


def _study():
    """benchmarks/dnpu_gate_study.py as a module."""
    return load_module(SCRIPT)


def _options(**given) -> argparse.Namespace:
    """The options the script's study functions read (its ``--surrogate`` default)."""
    return argparse.Namespace(surrogate=_study().DEFAULT_SURROGATE, **given)


def member(device: str, gate: str, seeds: int = 10, restarts: int = 1, iterations: int = 100, lr0: float = 0.2,
           stop_margin: float = 0.25, window_s: float = 0.025, range_samples: int = 500,
           fidelity_points: int = 10, first_seed: int = 0) -> dict:
    """One device and one gate of part 1, or part 2 (``gate = "fidelity"``) for that device."""
    st = _study()
    if device not in ("hopping", "real"):
        raise ValueError(f"device {device!r}: expected hopping or real")
    args = _options(seeds=seeds, restarts=restarts, iterations=iterations, lr0=lr0, stop_margin=stop_margin,
                    window_s=window_s, range_samples=range_samples, fidelity_points=fidelity_points,
                    first_seed=first_seed)
    if device == "real" and not Path(args.surrogate).is_file():
        raise FileNotFoundError(f"real-device surrogate not found at {args.surrogate}")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    if gate == "fidelity":
        return {"rows": json.dumps(st.fidelity_study(device, args))}
    if gate not in st.GATES:
        raise ValueError(f"gate {gate!r}: expected one of {', '.join(st.GATES)} or fidelity")
    return {"rows": json.dumps(st.gate_study(device, [gate], args), default=float)}


def results(folder: str | Path) -> tuple[dict, dict, dict]:
    """(levels per device, part-1 rows per device and gate, part-2 rows per device) of the completed members."""
    from labtrain.training.sweep import read_manifest, read_member_result

    folder = Path(folder)
    levels: dict = {}
    gates: dict = {}
    fidelity: dict = {}
    for m in read_manifest(folder)["members"]:
        if m["status"] != "completed" or not m.get("run_file"):
            continue
        record = read_member_result(folder / m["run_file"])
        device, gate = record["args"]["device"], record["args"]["gate"]
        rows = json.loads(record["result"]["rows"])
        if gate == "fidelity":
            fidelity[device] = rows
        else:
            levels[device] = rows["levels"]
            gates.setdefault(device, {})[gate] = rows["gates"][gate]
    return levels, gates, fidelity


def tables(levels: dict, gates: dict, fidelity: dict) -> str:
    st = _study()
    devices = [d for d in ("hopping", "real") if d in gates or d in fidelity]
    lines = []
    for d in devices:
        if d in levels:
            lv = levels[d]
            lines.append(f"{d}: targets off/on {lv['target_off_v']:+.4f} / {lv['target_on_v']:+.4f} V (5th-95th "
                         f"{lv['p5_v']:+.3f} .. {lv['p95_v']:+.3f} V)")
    head = " | ".join(f"{d} success | {d} median steps" for d in devices)
    lines += ["", f"| gate | {head} |", "|---|" + "---|---|" * len(devices)]
    for g in st.GATES:
        if not any(g in gates.get(d, {}) for d in devices):
            continue
        cells = []
        for d in devices:
            r = gates.get(d, {}).get(g)
            if r is None:
                cells.append("- | -")
                continue
            med = "-" if r["median_steps_success"] is None else f"{r['median_steps_success']:.0f}"
            cells.append(f"{r['successes']}/{r['restarts']} | {med}")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    for d in devices:
        rows = gates.get(d, {})
        if rows:
            n_ok, n = sum(r["successes"] for r in rows.values()), sum(r["restarts"] for r in rows.values())
            lines.append(f"{d}: {n_ok}/{n} restarts succeeded ({100 * n_ok / max(n, 1):.0f} %) over {len(rows)} gates")
    if fidelity:
        lines += ["", "| device | estimator | median cosine | worst cosine | median rel. err | worst rel. err |",
                  "|---|---|---|---|---|---|"]
        for d in devices:
            for name, v in fidelity.get(d, {}).items():
                c, e = np.array(v["cosine"]), np.array(v["rel_err"])
                lines.append(f"| {d} | {name} | {np.median(c):.6f} | {c.min():.6f} | {np.median(e):.2e} | "
                             f"{e.max():.2e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder of sweeps/dnpu_gate_study.toml")
    args = parser.parse_args(argv)
    print(tables(*results(args.folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
