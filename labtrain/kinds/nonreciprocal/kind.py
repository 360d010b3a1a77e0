"""``[chip] type = "nonreciprocal"``: layered rate networks with separate forward and backward couplings."""

from __future__ import annotations

from typing import Any

from labtrain.kinds import ChipKind
from labtrain.kinds.fields import HIDDEN_LAYERS, RELAXATION, merge, topology
from labtrain.kinds.nonreciprocal.builder import (RULE_NAMES, no_network, nonreciprocal_rule, build_nonreciprocal_chip,
                                                  build_nonreciprocal_task, nonreciprocal_gradcheck)
from labtrain.kinds.nonreciprocal.schema import OWN
from labtrain.resources import check_memory


def check(s: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]], source: str) -> None:
    """The dense coupling matrices (forward and backward, their gradients and the optimiser's moments: about
    eight ``n x n`` arrays over every unit) must fit in memory."""
    n = sum(s["chip"]["hidden_layers"]) + 2
    check_memory(f"{source}: [chip] hidden_layers = {s['chip']['hidden_layers']!r}",
                 f"a non-reciprocal network of {n:,} units", 8 * 8 * n * n)


def describe(s: dict[str, dict[str, Any]]) -> str:
    return f"nonreciprocal layered ({'-'.join(map(str, s['chip']['hidden_layers']))} hidden) network"


KIND = ChipKind(
    name="nonreciprocal",
    summary="non-reciprocal layered rate network (dimensionless states); AEP, dyadic EP, plain EP, VF, implicit",
    schema=merge(topology(("layered",), "layered", "Network builder (layered only)"), HIDDEN_LAYERS, RELAXATION,
                 OWN),
    rules={name: nonreciprocal_rule(name) for name in RULE_NAMES},
    task=build_nonreciprocal_task,
    network=no_network,
    chip=build_nonreciprocal_chip,
    backends=("ideal",),
    topologies=("layered",),
    default_topology="layered",
    check=check,
    gradcheck=nonreciprocal_gradcheck,
    gradcheck_options=("beta",),
    describe=describe,
)
