"""Time the batched steady state of nonlinear resistive networks (examples x time samples).

What ``measure_ac`` of :class:`labtrain.kinds.nonlinear.chip.NonlinearResistorChip`
does per acquisition: solve the memoryless network at every sample of every
example.  Two networks:

* the XOR diode network (``xor_diode_network(4)``: 5 inputs, 4 hidden nodes
  with antiparallel silicon diodes to ground, 1 output; 9 nodes, 32 edges);
* a ~100-node network: a 10x10 lattice with 2 inputs, 1 output, one diode
  from every hidden node to ground (198 edges, 97 free nodes).

For each: a cold solve of 4 examples x 1000 samples from 0 V (inputs
random per sample), the same with 10 mV tones warm-started from each
example's DC operating point with chord Newton (what ``measure_ac`` does),
and one full ``measure_ac`` (4 examples, 1000-sample window, a 50 mV input
tone and a 1 uA output-current tone, edge drops).

Usage::

    python benchmarks/bench_nonlinear.py [--repeat 3]

Measured on the project's 2-core machine while several other jobs ran (load
average 6-9, so single-job times are lower; best of 3):

* XOR diode network: cold 180-370 ms (9 Newton iterations), warm 110-200 ms
  (3), measure_ac 130-280 ms;
* 10x10 lattice + diodes: cold 4.3-10 s (10), warm 1.5-3.8 s (3-4),
  measure_ac 2.0-5.3 s -- dominated by the block-diagonal sparse LU (97 free
  nodes x 1000 samples per factorisation, ~0.2 ms per block).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from labtrain.chip.base import Tone
from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
from labtrain.physics.demod import FrequencyPlan
from labtrain.physics.network import Network, lattice
from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork, xor_diode_network


def lattice_with_diodes(rows: int = 10, cols: int = 10) -> tuple[Network, NonlinearEdges]:
    """A lattice of linear edges plus one diode from every hidden node to the ground."""
    base = lattice(rows, cols)
    g = base.grounds[0]
    hidden = base.hidden
    edges = np.vstack([base.edges, np.c_[hidden, np.full(len(hidden), g)]])
    net = Network(base.n_nodes, edges, base.inputs, base.outputs, base.grounds, 1e-5, 1e-3,
                  f"lattice {rows}x{cols} + diodes")
    kinds = ["linear"] * base.n_edges + ["diode"] * len(hidden)
    return net, NonlinearEdges.from_kinds(kinds)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = {"XOR diode network": xor_diode_network(4), "10x10 lattice + diodes": lattice_with_diodes()}
    n = args.samples
    print(f"| network | nodes | edges | cold 4x{n} | warm 4x{n} | measure_ac | Newton its (cold/warm) |")
    print("|---|---|---|---|---|---|---|")
    for name, (net, edges) in cases.items():
        model = NonlinearResistorNetwork(net, edges)
        n_in = len(net.inputs)
        x = rng.uniform(0, 1, (4, args.samples, n_in))
        cold = best(lambda: model.steady_state(x), args.repeat)
        its_cold = model.steady_state(x).iterations
        dc = rng.uniform(0, 1, (4, n_in))
        t = np.arange(args.samples) / 10_000.0
        wave = dc[:, None, :] + 0.01 * np.sin(2 * np.pi * 200 * t)[None, :, None]
        start = model.steady_state(dc).node_v[:, None, :]
        warm = best(lambda: model.steady_state(wave, start_v=start, chord=True), args.repeat)
        its_warm = model.steady_state(wave, start_v=start, chord=True).iterations
        chip = NonlinearResistorChip(net, edges)
        plan = FrequencyPlan(10_000.0, args.samples, (3, 7))
        tones = [Tone("input", 0, plan.tones_hz[0], 0.05), Tone("output_current", 0, plan.tones_hz[1], 1e-6)]
        ac = best(lambda: chip.measure_ac(dc, tones, plan, edge_drops=True), args.repeat)
        print(f"| {name} | {net.n_nodes} | {net.n_edges} | {cold * 1e3:.0f} ms | {warm * 1e3:.0f} ms | "
              f"{ac * 1e3:.0f} ms | {its_cold}/{its_warm} |")


if __name__ == "__main__":
    main()
