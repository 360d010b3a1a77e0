"""Run-file crash consistency and write cost (docs/run-file.md).

1. **Kill study**: ``labtrain run EXPERIMENT`` is SIGKILLed at its N-th ``pwrite64`` system call by
   strace fault injection (``strace -f -e inject=pwrite64:signal=KILL:when=N``), for ``--samples``
   values of N spread over all the run's writes; then ``labtrain resume`` finishes it.  Counts runs
   resumed bit-identical to an uninterrupted run (final parameters and per-step losses), resumed but
   different, unresumable, and killed before the run file existed.  ``--pythonpath DIR`` runs another
   labtrain tree (e.g. the previous format: ``git archive 09b9e98 labtrain | tar -x -C /tmp/old``).
2. **Write cost**: the same experiment in this process with and without a run file; the median time
   per step of each and their ratio (the run file's share of a step).

Run::

    .venv/bin/python benchmarks/run_file_study.py                            # regression_analytic, 24 kills
    .venv/bin/python benchmarks/run_file_study.py --samples 0                # write cost only
    .venv/bin/python benchmarks/run_file_study.py --pythonpath /tmp/old      # the same kills on another tree
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labtrain.config import load_experiment
from labtrain.training.launch import prepare_run

ROOT = Path(__file__).resolve().parent.parent
READ = """\
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from labtrain.training.store import RunStore
with RunStore.open(sys.argv[1]) as s:
    np.save(sys.stdout.buffer, np.concatenate([s.parameters("final"), s.table("steps")["loss"]]))
"""


def _labtrain(args: list, tree: Path, cwd: Path, strace_kill_at: int | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "labtrain", *map(str, args)]
    if strace_kill_at is not None:
        cmd = ["strace", "-f", "-o", os.devnull, "-e", "trace=pwrite64", "-e",
               f"inject=pwrite64:signal=KILL:when={strace_kill_at}", *cmd]
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def _result(path: Path, tree: Path) -> np.ndarray:
    p = subprocess.run([sys.executable, "-c", READ, str(path), str(tree)], capture_output=True,
                       env=dict(os.environ, PYTHONPATH=str(tree)), check=True)
    import io

    return np.load(io.BytesIO(p.stdout))


def _count_writes(experiment: Path, tree: Path, work: Path) -> int:
    p = subprocess.run(["strace", "-f", "-c", "-o", str(work / "count.txt"), "-e", "trace=pwrite64",
                        sys.executable, "-m", "labtrain", "run", str(experiment), "--out", str(work / "count"), "-q"],
                       cwd=work, env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"counting run failed: {p.stderr.strip().splitlines()[-1]}")
    for line in (work / "count.txt").read_text().splitlines():
        if line.strip().endswith("pwrite64"):
            return int(line.split()[3])
    raise SystemExit("strace counted no pwrite64 calls")


def kill_study(experiment: Path, samples: int, tree: Path) -> None:
    if shutil.which("strace") is None:
        raise SystemExit("the kill study needs strace (apt-get install strace)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref_dir = work / "reference"
        p = _labtrain(["run", experiment, "--out", ref_dir, "-q"], tree, work)
        if p.returncode != 0:
            raise SystemExit(f"reference run failed: {p.stderr.strip()}")
        reference = _result(next(ref_dir.glob("*.h5")), tree)
        total = _count_writes(experiment, tree, work)
        counts = {"resumed bit-identical": 0, "resumed, different": 0, "unresumable": 0,
                  "killed before the run file existed": 0}
        errors = []
        for k in range(samples):
            n = 1 + (k * total) // samples + (7 * k) % 13
            out = work / f"kill{n}"
            p = _labtrain(["run", experiment, "--out", out, "-q"], tree, work, strace_kill_at=n)
            files = list(out.glob("*.h5")) if out.exists() else []
            if p.returncode == 0:
                raise SystemExit(f"pwrite64 #{n} never came (the run has {total})")
            if not files:
                counts["killed before the run file existed"] += 1
                continue
            r = _labtrain(["resume", files[0], "-q"], tree, work)
            if r.returncode != 0:
                counts["unresumable"] += 1
                errors.append(f"  pwrite64 #{n}: {r.stderr.strip().splitlines()[-1][:160]}")
                continue
            same = np.array_equal(_result(files[0], tree), reference)
            counts["resumed bit-identical" if same else "resumed, different"] += 1
            shutil.rmtree(out)
    print(f"kill study: {experiment.name}, {total} pwrite64 calls per run, {samples} kill points "
          f"(labtrain tree {tree})")
    for key, value in counts.items():
        print(f"  {key:<36} {value:>3} / {samples}")
    print("\n".join(errors))


def write_cost(experiment: Path, repeats: int) -> None:
    per_step = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for store in (False, True):
                exp = load_experiment(experiment, {"run": {"out_dir": tmp}})
                with prepare_run(exp, store=store) as run:
                    t0 = time.perf_counter()
                    result = run.run()
                    per_step[store].append((time.perf_counter() - t0) / result.steps_done)
    bare, stored = statistics.median(per_step[False]), statistics.median(per_step[True])
    print(f"write cost: {experiment.name}, {result.steps_done} steps, median of {repeats}: "
          f"{1e3 * bare:.3f} ms/step without a run file, {1e3 * stored:.3f} ms/step with one "
          f"(ratio {stored / bare:.2f}; {1e3 * (stored - bare):.3f} ms/step for the file)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", type=Path, default=ROOT / "examples" / "regression_analytic.toml")
    ap.add_argument("--samples", type=int, default=24, help="kill points (0: skip the kill study)")
    ap.add_argument("--pythonpath", type=Path, default=ROOT, help="labtrain tree the kill study runs")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the write-cost measurement")
    args = ap.parse_args()
    experiment = args.experiment.resolve()
    if args.samples:
        kill_study(experiment, args.samples, args.pythonpath.resolve())
    write_cost(experiment, args.repeats)


if __name__ == "__main__":
    main()
