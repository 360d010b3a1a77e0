"""CPU time of one centred-EP step of the layered diode network on MNIST: 14x14 vs 28x28 inputs, source edges
folded or not.

One step is three steady-state solves of a batch of 32 (free, +beta, -beta nudge) plus the local energy
derivatives of every edge.  ``fold_sources`` (:class:`labtrain.kinds.nonlinear.model.NonlinearResistorNetwork`)
replaces the linear edges from the inputs (and the ground) to each free node by one Norton equivalent for the
Newton solve; the results agree to round-off (``tests/test_deep_diode_fold.py``).

Usage::

    python benchmarks/deep_diode_step_time.py --mnist PATH/TO/mnist [--gain A]

Measured (2026-12-07, 2-core machine with one other training run, CPU seconds per step, batch 32,
``--repeats 2``), the file's current design (symmetric +-5 V drive, no skip edges, differential readout of 20
output nodes): 394 inputs (196 pixels) 1.04 s unfolded, 0.16 s folded; 1570 inputs (784 pixels) 2.50 s
unfolded, **0.23 s folded**.  The single-ended design measured 0.47 s folded before the linear edges' hot paths
used slice views (commit 174612f) and 0.26 s after, the same gradient bit for bit.  Since the drops of dense
layer blocks are one broadcast difference and the currents/conductances are evaluated only when read
(``EdgeDropGather``, lazy ``NonlinearSteadyState``): 784 pixels folded 0.22 -> **0.09 s**, 196 pixels 0.16 -> 0.12 s
(the two versions run back to back, one other training run on the machine; bit-identical gradient).  (Wall time per step in a
full ``labtrain run`` with three runs on the 2 cores: 0.9-1.2 s.)
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--gain", type=float, default=1.0, help="[chip] layer_gain")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from labtrain.build import build_setup
    from labtrain.config import load_experiment
    from labtrain.protocols.gep import EquilibriumPropagation

    for downsample in (2, 1):
        exp = load_experiment("benchmarks/deep_diode_mnist.toml",
                              {"task": {"mnist_path": args.mnist, "downsample": downsample, "n_train": 64,
                                        "n_test": 10}, "chip": {"layer_gain": args.gain}})
        setup = build_setup(exp)
        chip = setup.chip
        x, t = setup.task.x_train[:32], setup.task.t_train[:32]
        folded = chip.network_model()
        for fold in (False, None):
            model = folded.with_parameters(folded.parameters)
            getattr(model, "model", model).fold_sources = fold  # the network under a differential readout
            ep = EquilibriumPropagation(exp["learning"]["beta_s"], centred=True)
            free = model.steady_state(x)
            start = time.process_time()
            for _ in range(args.repeats):
                free = model.steady_state(x)
                for s in (1.0, -1.0):
                    nudged = model.steady_state(x, output_current_a=s * ep.strength * (t - free.output_v))
                    model.energy_parameter_derivative(nudged.edge_drop_v)
            cpu = (time.process_time() - start) / args.repeats
            print(f"{x.shape[1]:5d} inputs, {setup.network.n_edges:6d} edges, layer_gain {args.gain:g}, "
                  f"source edges {'folded  ' if getattr(model, 'model', model).source_fold() is not None else 'unfolded'}: "
                  f"{cpu:.2f} s CPU per EP step (3 solves of 32, {free.iterations} Newton iterations)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
