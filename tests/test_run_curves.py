"""benchmarks/run_curves.py: learning curves over seeds read through the run-file reader."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from labtrain.cli import main as cli_main
from labtrain.training.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("run_curves", ROOT / "benchmarks" / "run_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_curves_of_two_seeds_match_the_run_files(tmp_path, capsys):
    for seed in (0, 1):
        assert cli_main(["run", str(ROOT / "examples" / "xor_resistor_cl.toml"), "--epochs", "4", "--seed", str(seed),
                         "--set", "run.eval_every=2", "--out", str(tmp_path), "-q"]) == 0
    capsys.readouterr()
    assert _module().main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    files = sorted(tmp_path.glob("*.h5"))
    tests = []
    for f in files:
        with RunStore.open(f) as store:
            ev = store.table("eval")
            tests.append(100 * np.asarray(ev["test_accuracy"], float)[np.asarray(ev["step"]) >= 0])
    assert out[0].startswith("rule cl: 2 run(s);")
    rows = [line for line in out if line.startswith("| ") and not line.startswith("| after")]
    assert len(rows) == len(tests[0]) and len(rows) >= 2
    last = rows[-1].split(" | ")
    assert last[0] == "| 4" and last[1] == "4"           # after step 4 = epoch 4 (one full-batch step per epoch)
    assert float(last[2]) == round(tests[0][-1], 2) and float(last[3]) == round(tests[1][-1], 2)
    mean = np.mean([t[-1] for t in tests])
    assert last[4].startswith(f"{mean:.1f} ± ") and last[4].endswith("(2)")
