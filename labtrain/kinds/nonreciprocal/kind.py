"""``[chip] type = "nonreciprocal"``: layered rate networks with separate forward and backward couplings."""

from __future__ import annotations

from typing import Any

from labtrain.kinds import ChipKind
from labtrain.kinds.fields import HIDDEN_LAYERS, RELAXATION, merge, topology
from labtrain.kinds.nonreciprocal.builder import (RULE_NAMES, no_network, nonreciprocal_rule, build_nonreciprocal_chip,
                                                  build_nonreciprocal_task, nonreciprocal_gradcheck)
from labtrain.kinds.nonreciprocal.schema import OWN


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
    gradcheck=nonreciprocal_gradcheck,
    gradcheck_options=("beta",),
    describe=describe,
)
