"""The notebook-grade Python API (issue 16, item 6): the documented notebook example runs; runs close and
release their run file; the public names exist; ``py.typed`` ships."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import labtrain as lt

ROOT = Path(__file__).resolve().parent.parent
XOR = ROOT / "examples" / "xor_resistor_cl.toml"


def test_notebook_example_runs(tmp_path):
    """examples/notebook.py (jupytext percent format) runs top to bottom as a script."""
    env = dict(os.environ, LABTRAIN_NOTEBOOK_OUT=str(tmp_path))
    p = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook.py")], capture_output=True, text=True,
                       timeout=240, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "completed 15 steps" in p.stdout
    assert "loss unit: V^2 | parameter unit: S" in p.stdout
    assert (tmp_path / "xor.nc").is_file()


def test_notebook_example_is_in_percent_format():
    text = (ROOT / "examples" / "notebook.py").read_text()
    assert "format_name: percent" in text
    cells = [line for line in text.splitlines() if line.startswith("# %%")]
    assert sum(c.startswith("# %% [markdown]") for c in cells) >= 4 and len(cells) >= 10


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labtrain", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_a_finished_run_releases_its_file_for_labtrain_resume_even_before_close(tmp_path):
    """run() ends by releasing the lease: another process can resume the file while the Run object (and its
    h5py handle) still lives; close() then releases the rest, and is idempotent."""
    run = lt.open_run(XOR, {"run": {"epochs": 2, "out_dir": str(tmp_path)}})
    result = run.run()
    p = _cli("resume", str(result.path), "--epochs", "3")
    assert p.returncode == 0, p.stderr
    run.close()
    run.close()
    assert lt.load_run(result.path).sizes["step"] == 3


def test_context_manager_closes_a_stopped_run_so_it_can_be_resumed_elsewhere(tmp_path):
    def stop_after_first_step(event):
        if event.kind == "step":
            run.request_stop("enough")

    with lt.open_run(XOR, {"run": {"epochs": 3, "out_dir": str(tmp_path)}}, listeners=[stop_after_first_step]) \
            as run:
        result = run.run()
    assert result.status == "stopped" and not run.store.h5.id.valid
    p = _cli("resume", str(result.path))
    assert p.returncode == 0, p.stderr
    ds = lt.load_run(result.path)
    assert ds.attrs["status"] == "completed" and ds.sizes["step"] == 3


def test_open_run_resumes_a_run_file_and_refuses_overrides(tmp_path):
    with lt.open_run(XOR, {"run": {"epochs": 1, "out_dir": str(tmp_path)}}) as run:
        path = run.run().path
    with pytest.raises(ValueError, match="overrides"):
        lt.open_run(path, {"run": {"epochs": 3}})
    with lt.open_run(path, epochs=2) as run:
        assert run.run().steps_done == 2
    with lt.open_run(XOR, {"run": {"out_dir": str(tmp_path)}}, epochs=1, store=False) as run:
        assert run.store is None and run.run().path is None


def test_public_names():
    for name in ("open_run", "load_run", "run_to_dataset", "export_run", "Run", "RunStore", "prepare_run",
                 "prepare_resume", "__version__"):
        assert name in lt.__all__ and getattr(lt, name) is not None
    assert lt.__version__ and lt.__version__ != "0.1.0"


def test_py_typed_ships_with_the_package():
    assert (Path(lt.__file__).parent / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'labtrain = ["py.typed"]' in pyproject


def test_mypy_accepts_the_public_api_as_a_user_sees_it(tmp_path):
    """User code type-checks against labtrain (py.typed: no "missing library stubs")."""
    pytest.importorskip("mypy")
    user = tmp_path / "user.py"
    user.write_text(
        "import labtrain as lt\n"
        "import xarray as xr\n"
        "run: lt.Run = lt.open_run('x.toml', {'run': {'epochs': 1}})\n"
        "ds: xr.Dataset = lt.load_run('x.h5')\n"
        "opt = lt.Adam(learning_rate=0.1)\n"
        "rate: float = opt.learning_rate\n"
        "version: str = lt.__version__\n")
    p = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
                        "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"), str(user)],
                       capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
