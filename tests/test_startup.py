"""Start-up: the package and the CLI import nothing heavy; Ctrl-C while a command starts is one line, exit 130.

Never timed here (benchmarks/bench_startup.py measures `labtrain --help` against `python -c pass`).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from labtrain import cli

HEAVY = ("numpy", "scipy", "scipy.signal", "scipy.stats", "scipy.sparse", "h5py", "xarray", "dask", "pandas",
         "PyQt6", "pyqtgraph", "tqdm", "sklearn", "torch")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint('HEAVY:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[-1].split()[1:]


@pytest.mark.parametrize("code", [
    "import labtrain",
    "import labtrain.cli",
    "from labtrain.cli import build_parser; build_parser(lazy=True).format_help()",
    "from labtrain.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from labtrain.cli import main\ntry:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass",
])
def test_start_up_imports_nothing_heavy(code):
    assert _imported_after(code) == []


def test_lazy_names_resolve():
    import labtrain

    assert set(labtrain.__all__) - {"__version__"} <= set(labtrain._LAZY)
    assert labtrain.Run.__name__ == "Run" and callable(labtrain.lattice)
    with pytest.raises(AttributeError):
        labtrain.no_such_name  # noqa: B018


def test_full_parser_has_every_option():
    """The lazy subparser (characterize) is complete when built eagerly and when its help is asked for."""
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert "--duration-s" in sub.choices["characterize"].format_help()
    lazy = next(a for a in cli.build_parser(lazy=True)._actions if a.dest == "command")
    assert "--duration-s" in lazy.choices["characterize"].format_help()


def test_ctrl_c_while_starting_is_one_line_exit_130(monkeypatch, capsys):
    import labtrain.training.launch as launch

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(launch, "prepare_run", interrupted)
    assert cli.main(["run", "examples/iris_cl.toml", "-q"]) == cli.EXIT_STOPPED
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["labtrain run: stopped by Ctrl-C"]


def test_ctrl_c_while_the_cli_module_loads_is_one_line_exit_130(monkeypatch, capsys):
    """The console script's entry point imports nothing; an interrupt while labtrain.cli loads is one line."""
    import importlib.abc

    from labtrain import console

    class InterruptedImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "labtrain.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "labtrain.cli")
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    assert console.main(["--help"]) == console.EXIT_STOPPED == cli.EXIT_STOPPED
    assert capsys.readouterr().err.strip().splitlines() == ["labtrain: stopped by Ctrl-C"]


def test_console_script_is_the_guarded_entry_point_and_import_is_cheap():
    import tomllib
    from pathlib import Path

    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["labtrain"] == "labtrain.console:main"
    probe = ("import sys, labtrain\nassert 'importlib.metadata' not in sys.modules, 'import labtrain read metadata'\n"
             "import labtrain.console\nassert 'labtrain.cli' not in sys.modules\n"
             "v = labtrain.__version__\nassert isinstance(v, str) and v, v\nprint(v)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
