"""Partial-update masks (``[learning] mask_mode``): subset sizes, the near_output and largest_gradient choices,
seeded reproducibility, the wiring into a run, and the check that refuses near_output where parameters are
not network edges.  The fixed and random modes' own tests are in ``tests/test_gradients.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli
from labtrain.config import load_experiment
from labtrain.physics.network import Network, random_graph
from labtrain.protocols.masks import MASK_MODES, UpdateMask, output_distance_hops, parameters_are_edges
from labtrain.training.launch import prepare_run

ROOT = Path(__file__).resolve().parents[1]

# A hand-made network: input 0 - 1 - 2 - output 3, a branch 2 - 4 - 5 (ground), and an edge 1 - 3.
#   edge 0: (0, 1)  hops 1 (node 1 is one hop from output 3 through edge 4)
#   edge 1: (1, 2)  hops 1
#   edge 2: (2, 3)  hops 0 (touches the output)
#   edge 3: (2, 4)  hops 1
#   edge 4: (1, 3)  hops 0 (touches the output)
#   edge 5: (4, 5)  hops 2
HAND_EDGES = np.array([[0, 1], [1, 2], [2, 3], [2, 4], [1, 3], [4, 5]])
HAND_HOPS = np.array([1, 1, 0, 1, 0, 2])


def hand_network() -> Network:
    m = len(HAND_EDGES)
    return Network(6, HAND_EDGES, (0,), (3,), (5,), np.full(m, 1e-5), np.full(m, 1e-3), "hand-made")


def gradient_for(n: int = 40, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


@pytest.mark.parametrize("mode", MASK_MODES)
@pytest.mark.parametrize("fraction,expected", [(0.5, 20), (0.25, 10), (0.1, 4), (0.01, 1)])
def test_mask_sizes(mode, fraction, expected):
    hops = np.arange(40) % 5
    mask = UpdateMask(40, fraction, mode, seed=2, distance_hops=hops)
    for step in (0, 3):
        m = mask.at_step(step, gradient_for(seed=step))
        assert m.dtype == bool and m.shape == (40,) and m.sum() == expected
    assert UpdateMask(40, 1.0, mode, seed=2, distance_hops=hops).at_step(0, gradient_for()) is None


def test_output_distance_hops_hand_network():
    net = hand_network()
    np.testing.assert_array_equal(output_distance_hops(net), HAND_HOPS)
    # parameters on some edges only: the distances of those edges, in parameter order
    np.testing.assert_array_equal(output_distance_hops(net, np.array([5, 2, 0])), [2, 0, 1])


def test_near_output_picks_output_edges_first():
    hops = output_distance_hops(hand_network())
    two = UpdateMask(6, 2 / 6, "near_output", seed=0, distance_hops=hops).at_step(0)
    np.testing.assert_array_equal(np.flatnonzero(two), [2, 4])  # the two edges touching the output
    for seed in range(6):
        three = UpdateMask(6, 0.5, "near_output", seed=seed, distance_hops=hops)
        chosen = np.flatnonzero(three.at_step(0))
        assert {2, 4} <= set(chosen) and 5 not in chosen  # then one of the distance-1 edges, never the far one
        assert np.array_equal(three.at_step(9), three.at_step(0))  # a fixed subset
    five = UpdateMask(6, 5 / 6, "near_output", seed=0, distance_hops=hops).at_step(0)
    assert not five[5] and five.sum() == 5


def test_near_output_ties_broken_by_seed():
    hops = np.zeros(40)  # all tied: the seeded order decides
    a = UpdateMask(40, 0.25, "near_output", seed=3, distance_hops=hops).at_step(0)
    assert np.array_equal(UpdateMask(40, 0.25, "near_output", seed=3, distance_hops=hops).at_step(7), a)
    assert not np.array_equal(UpdateMask(40, 0.25, "near_output", seed=4, distance_hops=hops).at_step(0), a)


def test_near_output_on_a_random_network_is_closer_than_a_random_subset():
    net = random_graph(60, 200, seed=1, n_inputs=4, n_outputs=2)
    hops = output_distance_hops(net)
    near = UpdateMask(net.n_edges, 0.25, "near_output", seed=0, distance_hops=hops).at_step(0)
    fixed = UpdateMask(net.n_edges, 0.25, "fixed", seed=0).at_step(0)
    # every chosen edge is at most as far as every edge left out
    assert hops[near].max() <= hops[~near].min()
    assert hops[near].mean() < hops[fixed].mean()


def test_largest_gradient_picks_top_magnitudes():
    g = np.array([0.1, -5.0, 0.3, 2.0, -0.2, 4.0, 0.0, -3.0])
    mask = UpdateMask(8, 0.5, "largest_gradient", seed=0)
    np.testing.assert_array_equal(np.flatnonzero(mask.at_step(0, g)), [1, 3, 5, 7])  # |g| = 5, 2, 4, 3
    # a new choice every step, from that step's gradient
    np.testing.assert_array_equal(np.flatnonzero(mask.at_step(1, -np.arange(8.0))), [4, 5, 6, 7])
    # with a per-parameter scale (span) the ranking is in normalised coordinates
    scaled = UpdateMask(8, 0.25, "largest_gradient", seed=0, gradient_scale=np.r_[np.ones(7), 100.0])
    np.testing.assert_array_equal(np.flatnonzero(scaled.at_step(0, g)), [1, 7])  # |g * scale| = 5, 300
    with pytest.raises(ValueError, match="gradient"):
        mask.at_step(0)


def test_largest_gradient_agrees_with_sorting_and_is_seeded_on_ties():
    g = gradient_for(40, seed=5)
    chosen = np.flatnonzero(UpdateMask(40, 0.25, "largest_gradient", seed=1).at_step(0, g))
    np.testing.assert_array_equal(np.sort(chosen), np.sort(np.argsort(-np.abs(g))[:10]))
    ties = np.ones(40)
    a = UpdateMask(40, 0.25, "largest_gradient", seed=1).at_step(0, ties)
    assert np.array_equal(UpdateMask(40, 0.25, "largest_gradient", seed=1).at_step(5, ties), a)
    assert not np.array_equal(UpdateMask(40, 0.25, "largest_gradient", seed=2).at_step(0, ties), a)


@pytest.mark.parametrize("mode", MASK_MODES)
def test_masks_seeded_reproducible(mode):
    hops = np.arange(40) % 4
    a, b = (UpdateMask(40, 0.25, mode, seed=8, distance_hops=hops) for _ in range(2))
    for step in (0, 1, 5):
        g = gradient_for(seed=step)
        assert np.array_equal(a.at_step(step, g), b.at_step(step, g))


def test_near_output_needs_distances():
    with pytest.raises(ValueError, match="near_output"):
        UpdateMask(10, 0.5, "near_output")


def digits_overrides(mode: str, fraction: float) -> dict:
    return {"chip": {"n_nodes": 100, "n_edges": 500},
            "learning": {"rule": "analytic", "update_fraction": fraction, "mask_mode": mode},
            "run": {"epochs": 3, "eval_every": 3}}


@pytest.mark.parametrize("mode", ["near_output", "largest_gradient"])
def test_run_updates_only_the_masked_edges(mode):
    """In a run (digits, 100-node network, exact gradient) each step changes at most a quarter of the edges,
    and they are the ones the mask names for that step's gradient."""
    steps = []
    run = prepare_run(load_experiment(ROOT / "examples" / "digits_cl.toml", digits_overrides(mode, 0.25)),
                      store=False, listeners=[lambda e: steps.append(e) if e.kind == "step" else None])
    before = run.chip.get_parameters()
    mask = run.mask
    if mode == "near_output":
        hops = output_distance_hops(run.chip.network, run.chip.parameter_edges)
        assert hops[mask.at_step(0)].max() <= hops[~mask.at_step(0)].min()
    run.run()
    assert len(steps) == 3
    for event in steps:
        after = np.asarray(event.data["parameters"])
        allowed = mask.at_step(event.step, event.data["gradient"])
        assert allowed.sum() == 125
        changed = after != before
        assert changed.any() and not changed[~allowed].any()
        before = after


def test_parameters_are_edges_contract():
    exp = load_experiment(ROOT / "examples" / "digits_cl.toml", digits_overrides("fixed", 0.5))
    run = prepare_run(exp, store=False)
    assert parameters_are_edges(run.chip)
    run.close()


@pytest.mark.parametrize("example,needle", [
    ("dnpu_xor_hge.toml", "DNPUChip"),               # control-electrode voltages, no network
    ("digits_aep.toml", "NonReciprocalChip"),        # layered rate network: weights, not network edges
    ("xor_xy_all_to_all.toml", "XYChip"),            # oscillator network with trainable bias fields
])
def test_check_refuses_near_output_where_parameters_are_not_edges(example, needle, capsys):
    code, out, err = cli(["check", ROOT / "examples" / example, "--set", "learning.mask_mode=near_output"], capsys)
    assert code == 2, (out, err)
    assert out == "" and len(err.splitlines()) == 1
    assert "mask_mode = 'near_output'" in err and "network edges" in err and needle in err


@pytest.mark.parametrize("example", ["digits_cl.toml", "xor_diode_fp.toml"])
def test_check_accepts_near_output_on_edge_parameters(example, capsys):
    code, out, err = cli(["check", ROOT / "examples" / example, "--set", "learning.mask_mode=near_output",
                          "--set", "learning.update_fraction=0.5"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("mode", ["near_output", "largest_gradient"])
def test_stop_and_resume_gives_the_uninterrupted_run(mode, tmp_path):
    """The new masks depend only on the seed, the network and the step's gradient: a run stopped after 3 of 6
    steps and resumed ends bit-identical to one that was not stopped."""
    from labtrain.training.launch import prepare_resume

    overrides = digits_overrides(mode, 0.25)
    overrides["run"] |= {"epochs": 6, "out_dir": str(tmp_path / "runs")}
    exp = ROOT / "examples" / "digits_cl.toml"
    reference = prepare_run(load_experiment(exp, overrides), store=False).run()
    holder = {}

    def stop_after_three(event) -> None:
        if event.kind == "step" and event.step == 2:
            holder["run"].request_stop()

    holder["run"] = prepare_run(load_experiment(exp, overrides), listeners=[stop_after_three])
    stopped = holder["run"].run()
    holder["run"].store.close()
    assert stopped.status == "stopped" and stopped.steps_done == 3
    resumed = prepare_resume(stopped.path)
    result = resumed.run()
    resumed.store.close()
    assert result.status == "completed"
    np.testing.assert_array_equal(result.parameters, reference.parameters)
    np.testing.assert_array_equal(result.step_loss, reference.step_loss)
