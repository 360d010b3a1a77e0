"""labtrain: train physical learning machines -- on a benchtop chip or its simulated twin.

The names most notebooks need are importable from here::

    import labtrain as lt
    net = lt.lattice(4, 4, n_inputs=2, n_outputs=1)
    chip = lt.IdealChip(net)
"""

__version__ = "0.1.0"

from labtrain.chip import CapabilityError, Chip, ClampNudge, CurrentNudge, Measurement  # noqa: E402
from labtrain.kinds.resistor.ideal import IdealChip  # noqa: E402
from labtrain.physics.network import Network, all_to_all, from_edge_list, layered, lattice, random_graph  # noqa: E402
from labtrain.training.optim import SGD, Adam, Momentum, TapStep  # noqa: E402
from labtrain.protocols import (AnalyticGradient, CoupledLearning, EquilibriumPropagation,  # noqa: E402
                        UpdateMask, exact_gradient, gep_family, gradient_fidelity)
from labtrain.config import ConfigError, load_experiment  # noqa: E402
from labtrain.training.launch import prepare_resume, prepare_run  # noqa: E402
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
    "RunStore", "list_runs", "read_summary",
]
