"""The example plugin (examples/plugin): installed into a fresh venv, labtrain finds its chip kind and its
driver through entry points alone, and runs, checks and refuses files of the new kind like built-in ones."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin"


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory) -> Path:
    """A venv that sees this labtrain (through the test environment's site-packages) plus the plugin,
    pip-installed from a copy of examples/plugin (no build files left in the repository)."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(PLUGIN, src)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "labtrain_test_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--prefix", str(venv), str(src)], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        pytest.fail(f"pip install of the example plugin failed: {p.stderr[-2000:]}")
    return python


def _labtrain(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "labtrain", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_devices_lists_the_plugin_kind_and_driver(plugin_python, tmp_path):
    p = _labtrain(plugin_python, "devices", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    kind = [line for line in lines if line.strip().startswith("crossbar ")]
    driver = [line for line in lines if line.strip().startswith("loopback_daq ")]
    assert len(kind) == 1 and "[plugin labtrain-crossbar]" in kind[0] and "rules: delta" in kind[0]
    assert len(driver) == 1 and "[plugin labtrain-crossbar]" in driver[0]


def test_check_and_a_short_run_of_the_plugin_kind(plugin_python, tmp_path):
    exp = tmp_path / "crossbar.toml"
    shutil.copy(PLUGIN / "crossbar_regression.toml", exp)
    p = _labtrain(plugin_python, "check", str(exp), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{exp}: OK")
    p = _labtrain(plugin_python, "run", str(exp), "--epochs", "5", "--out", str(tmp_path / "runs"), "-q",
                  cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "status      completed" in p.stdout and "steps       5 / 5" in p.stdout
    runs = list((tmp_path / "runs").glob("crossbar_regression-*.h5"))
    assert len(runs) == 1
    p = _labtrain(plugin_python, "gradcheck", str(exp), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "delta" in p.stdout and "1.000000" in p.stdout  # the delta rule is the exact gradient


def test_plugin_kind_keys_are_validated_like_built_in_ones(plugin_python, tmp_path):
    exp = tmp_path / "bad.toml"
    exp.write_text((PLUGIN / "crossbar_regression.toml").read_text().replace("feedback_ohm = 1000.0",
                                                                           "feedback_ohm = -1.0"))
    p = _labtrain(plugin_python, "run", str(exp), "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == [f"labtrain run: error: {exp}: [chip] feedback_ohm = -1.0: out of range; "
                                     "allowed: float in (0, 1e+12]"]
    assert not (tmp_path / "runs").exists()
    # a key of a built-in kind is named as such
    exp.write_text((PLUGIN / "crossbar_regression.toml").read_text().replace("[chip]", "[chip]\nrows = 3"))
    p = _labtrain(plugin_python, "check", str(exp), cwd=tmp_path)
    assert p.returncode == 2
    assert "rows applies to [chip] type resistor_network / xy / nonlinear_resistor, not to type = 'crossbar'" \
        in p.stderr


def test_without_the_plugin_the_kind_is_unknown(tmp_path):
    exp = tmp_path / "crossbar.toml"
    shutil.copy(PLUGIN / "crossbar_regression.toml", exp)
    p = subprocess.run([sys.executable, "-m", "labtrain", "check", str(exp)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [f"labtrain check: error: {exp}: [chip] type = 'crossbar': expected one of "
                                     "resistor_network, xy, nonreciprocal, nonlinear_resistor, dnpu"]
