"""Provenance (issue 16, item 2): version from git tags, git revision and dirty flag, Python and package versions,
host and instrument identities in every run file; install hints that match how labtrain is installed."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import labtrain
from labtrain.provenance import git_revision, install_hint, instrument_identities, provenance
from labtrain.training.launch import prepare_run
from labtrain.training.store import RunStore

ROOT = Path(__file__).resolve().parent.parent


def test_version_comes_from_the_installed_metadata_and_pyproject_uses_setuptools_scm():
    assert labtrain.__version__ == metadata.version("labtrain")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    assert any(r.startswith("setuptools-scm") for r in project["build-system"]["requires"])
    assert project["tool"]["setuptools_scm"]["fallback_version"]  # a tree without git metadata still installs


def test_provenance_names_python_packages_host_and_the_checkout():
    p = provenance()
    assert p["labtrain_version"] == labtrain.__version__
    assert p["python_version"].count(".") == 2 and p["hostname"] and p["platform"]
    assert p["version_numpy"] and p["version_h5py"]
    if (ROOT / ".git").exists() and git_revision() is not None:
        assert re.fullmatch(r"[0-9a-f]{40}", p["git_revision"]) and p["git_dirty"] in ("yes", "no")
        assert p["git_describe"].endswith("-dirty") == (p["git_dirty"] == "yes")
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert p["git_revision"] == head.stdout.strip() or git_revision.cache_info().hits  # cached per process


def test_instrument_identities_are_found_at_any_depth():
    snap = {"backend": "twin", "daq": {"kind": "SimulatedDAQ", "identity": "Simulated DAQ 1"},
            "pots": {"identity": "PotTwin"}, "lockins": [{"identity": "SR830 twin"}], "network": {"n": 3}}
    assert instrument_identities(snap) == {"daq": "Simulated DAQ 1", "pots": "PotTwin",
                                           "lockins.0": "SR830 twin"}
    assert instrument_identities(None) == {}


def test_every_run_file_records_provenance_and_a_twin_run_its_instruments(tmp_path):
    path = tmp_path / "and.toml"
    path.write_text('[experiment]\nname = "p"\n[chip]\ntopology = "lattice"\nrows = 3\ncols = 3\n'
                    '[task]\nname = "and"\nbias_inputs_v = [1.0]\n[learning]\nrule = "cl"\n')
    with prepare_run(path, {"run": {"epochs": 1, "out_dir": str(tmp_path)}, "backend": {"kind": "twin"}}) as run:
        result = run.run()
    with RunStore.open(result.path) as store:
        a = store.attrs
    for key in ("labtrain_version", "python_version", "platform", "hostname", "version_numpy", "version_scipy"):
        assert a[key], key
    instruments = {k: v for k, v in a.items() if k.startswith("instrument_")}
    assert instruments and all(isinstance(v, str) and v for v in instruments.values()), instruments
    p = subprocess.run([sys.executable, "-m", "labtrain", "show", str(result.path)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"labtrain {a['labtrain_version']}" in p.stdout and a["hostname"] in p.stdout


def test_install_hints_say_how_labtrain_is_installed():
    """labtrain is not on the package index: hints say pip install -e '.[extra]' in the checkout."""
    assert install_hint("gui") == "pip install -e '.[gui]' in the labtrain checkout"
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    wrong, unknown = [], []
    for path in sorted((ROOT / "labtrain").rglob("*.py")):
        text = path.read_text()
        wrong += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(r"labtrain\[\w+\]", text)]
        unknown += [f"{path.relative_to(ROOT)}: .[{m.group(1)}]" for m in re.finditer(r"-e '\.\[(\w+)\]'", text)
                    if m.group(1) not in extras and m.group(1) != "{self"]
    assert not wrong, "install hints naming a package-index install:\n" + "\n".join(wrong)
    assert not unknown, "install hints naming an extra pyproject.toml does not define:\n" + "\n".join(unknown)
