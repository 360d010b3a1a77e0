"""labtrain: train physical learning machines -- on a benchtop chip or its simulated twin.

The names most notebooks need are importable from here::

    import labtrain as lt
    net = lt.lattice(4, 4, n_inputs=2, n_outputs=1)
    chip = lt.IdealChip(net)
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    __version__: str


def _version() -> str:
    """The installed version (set at install time from the git tags: setuptools-scm, pyproject.toml).

    Looked up on first use of ``labtrain.__version__``: importlib.metadata costs ~50 ms at start-up, inside
    the window where Ctrl-C would otherwise end the ``labtrain`` command with a traceback.
    """
    from importlib import metadata

    try:
        return metadata.version("labtrain")
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "0.0.0+unknown"

# The names below are imported on first use (PEP 562): `import labtrain` (and the `labtrain` command's
# start-up) must not pull in numpy, scipy, h5py, xarray, dask or Qt.  Add a public name to _LAZY (and to
# the TYPE_CHECKING block for type checkers), never as an import here; tests/test_startup.py checks it.
_LAZY = {
    "CapabilityError": "labtrain.chip", "Chip": "labtrain.chip", "ClampNudge": "labtrain.chip",
    "CurrentNudge": "labtrain.chip", "Measurement": "labtrain.chip",
    "IdealChip": "labtrain.kinds.resistor.ideal",
    "Network": "labtrain.physics.network", "all_to_all": "labtrain.physics.network",
    "from_edge_list": "labtrain.physics.network", "layered": "labtrain.physics.network",
    "lattice": "labtrain.physics.network", "random_graph": "labtrain.physics.network",
    "SGD": "labtrain.training.optim", "Adam": "labtrain.training.optim", "Momentum": "labtrain.training.optim",
    "TapStep": "labtrain.training.optim",
    "AnalyticGradient": "labtrain.protocols", "CoupledLearning": "labtrain.protocols",
    "EquilibriumPropagation": "labtrain.protocols", "UpdateMask": "labtrain.protocols",
    "exact_gradient": "labtrain.protocols", "gep_family": "labtrain.protocols",
    "gradient_fidelity": "labtrain.protocols",
    "ConfigError": "labtrain.config", "load_experiment": "labtrain.config",
    "prepare_resume": "labtrain.training.launch", "prepare_run": "labtrain.training.launch",
    "open_run": "labtrain.training.launch",
    "load_run": "labtrain.training.export", "run_to_dataset": "labtrain.training.export",
    "export_run": "labtrain.training.export",
    "Run": "labtrain.training.run", "RunResult": "labtrain.training.run",
    "RunStore": "labtrain.training.store", "list_runs": "labtrain.training.store",
    "read_summary": "labtrain.training.store",
    "LinearResistorNetwork": "labtrain.kinds.resistor.model",
    "Task": "labtrain.training.tasks", "make_task": "labtrain.training.tasks",
}


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'labtrain' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from labtrain.chip import CapabilityError, Chip, ClampNudge, CurrentNudge, Measurement  # noqa: E402
    from labtrain.kinds.resistor.ideal import IdealChip  # noqa: E402
    from labtrain.physics.network import Network, all_to_all, from_edge_list, layered, lattice, random_graph  # noqa: E402
    from labtrain.training.optim import SGD, Adam, Momentum, TapStep  # noqa: E402
    from labtrain.protocols import (AnalyticGradient, CoupledLearning, EquilibriumPropagation,  # noqa: E402
                            UpdateMask, exact_gradient, gep_family, gradient_fidelity)
    from labtrain.config import ConfigError, load_experiment  # noqa: E402
    from labtrain.training.launch import open_run, prepare_resume, prepare_run  # noqa: E402
    from labtrain.training.export import export_run, load_run, run_to_dataset  # noqa: E402
    from labtrain.training.run import Run, RunResult  # noqa: E402
    from labtrain.training.store import RunStore, list_runs, read_summary  # noqa: E402
    from labtrain.kinds.resistor.model import LinearResistorNetwork  # noqa: E402
    from labtrain.training.tasks import Task, make_task  # noqa: E402

__all__ = [
    "__version__", "Chip", "IdealChip", "CapabilityError", "ClampNudge", "CurrentNudge", "Measurement",
    "Network", "lattice", "all_to_all", "layered", "random_graph", "from_edge_list",
    "SGD", "Momentum", "Adam", "TapStep", "AnalyticGradient", "EquilibriumPropagation", "CoupledLearning",
    "UpdateMask", "gep_family", "exact_gradient", "gradient_fidelity", "LinearResistorNetwork", "Task",
    "make_task", "ConfigError", "load_experiment", "prepare_run", "prepare_resume", "Run", "RunResult",
    "RunStore", "list_runs", "read_summary", "open_run", "load_run", "run_to_dataset", "export_run",
]
