"""Smoke test of benchmarks/dnpu_capacity.py (seconds): labellings, interval, one tiny run per device.

The real-device part skips when ``../shared/data/dnpu`` is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labtrain.training.sweep import load_module
from labtrain.training.tasks import GATES

ROOT = Path(__file__).resolve().parents[1]
cap = load_module(ROOT / "benchmarks" / "dnpu_capacity.py")


def test_labellings_n4_are_the_16_gates_and_larger_n_are_seeded_distinct():
    four = cap.labellings(4, 2)
    assert sorted(map(tuple, four)) == sorted(GATES.values())
    a, b = cap.labellings(6, 10), cap.labellings(6, 10)
    assert np.array_equal(a, b) and len({tuple(r) for r in a}) == 10 and a.shape == (10, 6)
    assert len(cap.labellings(5, 999)) == 32
    assert cap.wilson(0, 10)[0] == 0.0 and cap.wilson(10, 10)[1] == pytest.approx(1.0)
    lo, hi = cap.wilson(5, 10)
    assert lo < 0.5 < hi


@pytest.mark.parametrize("device", ["hopping", "real"])
def test_tiny_run(device, tmp_path):
    if device == "real" and not cap.gate_study.DEFAULT_SURROGATE.is_file():
        pytest.skip(f"shared data not available: {cap.gate_study.DEFAULT_SURROGATE}")
    out = cap.main(["--devices", device, "--n", "4", "--restarts", "1", "--iterations", "10",
                    "--range-samples", "50", "--out", str(tmp_path / "cap.md")])
    row = out["result"][device]["n"][4]
    assert row["labellings"] == 16 and row["restarts"] == 16
    assert 0 <= row["realised"] <= 16 and row["realised"] == row["restarts_ok"]
    assert "| " + device + " | 4 | 16 of 16 |" in (tmp_path / "cap.md").read_text()
