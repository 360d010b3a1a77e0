"""XY oscillator chip: the XY physics model called directly (ideal backend).

Trainable parameters are the edge couplings ``W_e`` and, optionally, bias
fields on the free oscillators.  Inputs are phases (rad) at which the input
oscillators are clamped; outputs are phases.

Multistability.  A free measurement relaxes each example from ``n_starts``
initial states.  The :class:`XYMeasurement` carries every start's equilibrium
(``phases``, shape (B, S, n_nodes)); ``output_v`` -- the prediction -- is the
*circular mean* over starts of the output phases, in ``(-pi, pi]``.  A nudged
measurement starts from the free equilibria (the nudge's ``start_phases``, or
else the chip's last free measurement of the same inputs), so each start stays
in its basin.

Where the starts come from (docs/algorithms.md, section 7):

* :meth:`XYChip.measure_free` -- fresh random starts from the chip's generator,
  which the run loop reseeds per step: the free phase of every learning rule.
* :meth:`XYChip.measure` without a nudge -- what evaluation, maps and tables
  read.  With ``evaluation_seed`` set (the builder sets the run's seed) every
  example relaxes from *fixed* starts drawn from a generator seeded by
  ``evaluation_seed`` and the example's own input phases: the same example
  gets the same starts in the train and the test set, at every evaluation and
  in any batch, so identical data gives identical numbers.  Without it (the
  default) it is :meth:`measure_free`.

Bias fields (``bias=``):

* ``"none"``   -- couplings only (the model is then symmetric under
  ``phi -> -phi``, so with ``+/-pi/2`` targets it cannot learn XOR: inputs
  ``(a, b)`` and ``(-a, -b)`` would have mirrored outputs);
* ``"field"``  -- trainable amplitudes ``h_i`` at fixed phases ``bias_phase``;
* ``"vector"`` -- trainable Cartesian components ``(h_x, h_y)`` of every bias,
  ``h_x cos phi + h_y sin phi = h cos(phi - psi)`` (amplitude and phase both
  learned, and the energy stays linear in the parameters).

The parameter vector is ``[W (m), then h (n_bias) | h_x (n_bias), h_y (n_bias)]``
with the biased nodes listed in :attr:`XYChip.bias_nodes` (the free nodes).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from labtrain.physics.network import Network
from labtrain.kinds.xy.model import COSTS, PhaseCost, TorqueNudge, XYModel, XYState, circular_mean
from labtrain.chip.base import NetworkChip, CapabilityError, Chip, Measurement, ParameterSpec

__all__ = ["XYChip", "XYMeasurement", "TorqueNudge", "PhaseCost", "COSTS", "XY_PHASES", "TORQUE_NUDGE",
           "XY_MODEL", "BIAS_MODES"]

XY_PHASES = "xy_phases"        #: every oscillator's phase (per start) can be read
TORQUE_NUDGE = "torque_nudge"  #: a cost torque can act on the output oscillators
XY_MODEL = "xy_model"          #: an XY physics model at the current parameters is available
BIAS_MODES = ("none", "field", "vector")


@dataclass
class XYMeasurement(Measurement):
    """A batch measurement of an XY chip.

    Attributes (besides :class:`~labtrain.chip.base.Measurement`'s)
    ----------
    output_v : ndarray, shape (B, n_outputs)
        Circular mean over starts of the output phases (rad, in ``(-pi, pi]``).
    phases : ndarray, shape (B, S, n_nodes)
        Equilibrium phases of every example and start.
    output_phases : ndarray, shape (B, S, n_outputs)
        The output oscillators' phases per start.
    n_unconverged, n_unstable : int
        Starts that did not reach ``max |dE/dphi| < tol`` / ended on a saddle.
    """

    unit: str = "rad"
    phases: np.ndarray | None = None
    output_phases: np.ndarray | None = None
    n_unconverged: int = 0
    n_unstable: int = 0


class XYChip(NetworkChip):
    """Ideal XY oscillator network.

    Parameters
    ----------
    network : Network
        Graph and terminal roles; ground nodes are reference oscillators (see
        ``ground_phase``).  Its conductance bounds are not used.
    parameters : ndarray, optional
        Initial parameter vector; default: couplings uniform in
        ``init_coupling`` and biases uniform in ``init_bias`` (seeded by ``init_seed``).
    bias : {"none", "field", "vector"}
        Which bias fields are trainable (module docstring).
    bias_on : {"free", "hidden"}
        Bias fields on every free oscillator, or on the free ones except the outputs.
    bias_phase : float or ndarray
        Fixed bias phases for ``bias="field"`` (rad).
    coupling_bounds, bias_bounds : (float, float)
        Allowed range of the couplings and of every bias component (rad/s).
    n_starts : int
        Random initial states per example and measurement.
    ground_phase : float or None
        Phase of the clamped reference (ground) nodes; ``None``: they are free.
    tol, max_steps : float, int
        Relaxation convergence criterion ``max |dE/dphi|`` and iteration limit.
    seed : int, optional
        Seed of the random initial states (the run loop reseeds per step).
    evaluation_seed : int, optional
        Seed of the fixed per-example starts of :meth:`measure` (module docstring);
        ``None``: :meth:`measure` draws random starts like :meth:`measure_free`.
    solver : {"auto", "cholmod", "superlu"}
        Sparse factorisation of the Newton steps (:class:`~labtrain.kinds.xy.model.XYModel`).
    """

    backend = "ideal"
    output_unit = "rad"
    capabilities = frozenset({XY_PHASES, TORQUE_NUDGE, XY_MODEL})

    def __init__(self, network: Network, parameters: np.ndarray | None = None, *, bias: str = "vector",
                 bias_on: str = "free",
                 bias_phase: float | np.ndarray = np.pi / 2, coupling_bounds: tuple[float, float] = (-2.0, 2.0),
                 bias_bounds: tuple[float, float] = (-2.0, 2.0), n_starts: int = 8,
                 ground_phase: float | None = None, init_coupling: tuple[float, float] = (-1.0, 1.0),
                 init_bias: tuple[float, float] = (0.0, 0.0),
                 init_seed: int = 0,
                 tol: float = 1e-10, max_steps: int = 20000, seed: int | None = None,
                 evaluation_seed: int | None = None, solver: str = "auto") -> None:
        if bias not in BIAS_MODES:
            raise ValueError(f"bias must be one of {BIAS_MODES}, got {bias!r}")
        if int(n_starts) < 1:
            raise ValueError(f"n_starts must be >= 1, got {n_starts}")
        for name, (lo, hi) in (("coupling_bounds", coupling_bounds), ("bias_bounds", bias_bounds)):
            if not lo < hi:
                raise ValueError(f"{name} must satisfy lower < upper, got ({lo}, {hi})")
        self.network = network
        self.bias = bias
        self.n_starts = int(n_starts)
        self.coupling_bounds = (float(coupling_bounds[0]), float(coupling_bounds[1]))
        self.bias_bounds = (float(bias_bounds[0]), float(bias_bounds[1]))
        self.init_coupling = (float(init_coupling[0]), float(init_coupling[1]))
        self.init_bias = (float(init_bias[0]), float(init_bias[1]))
        self.init_seed = int(init_seed)
        m = network.n_edges
        self.model = XYModel(network, np.zeros(m), ground_phase=ground_phase, tol=tol, max_steps=max_steps,
                             solver=solver)
        if bias_on not in ("free", "hidden"):
            raise ValueError(f"bias_on must be 'free' or 'hidden', got {bias_on!r}")
        self.bias_on = bias_on
        free = self.model.free
        self.bias_nodes = free.copy() if bias_on == "free" else free[~np.isin(free, self.model.outputs)]
        nb = len(self.bias_nodes)
        self._fixed_psi = np.broadcast_to(np.asarray(bias_phase, float), (network.n_nodes,)).copy()
        n_bias = {"none": 0, "field": nb, "vector": 2 * nb}[bias]
        lower = np.r_[np.full(m, self.coupling_bounds[0]), np.full(n_bias, self.bias_bounds[0])]
        upper = np.r_[np.full(m, self.coupling_bounds[1]), np.full(n_bias, self.bias_bounds[1])]
        name = "coupling" if bias == "none" else "coupling+bias"
        self._spec = ParameterSpec(name, "rad/s", lower, upper)
        self.rng = np.random.default_rng(seed)
        self.evaluation_seed = None if evaluation_seed is None else int(evaluation_seed)
        self.last_free: XYMeasurement | None = None
        self._last_inputs: np.ndarray | None = None
        if parameters is None:
            init_rng = np.random.default_rng([self.init_seed, 7])
            parameters = np.r_[init_rng.uniform(*self.init_coupling, m), init_rng.uniform(*self.init_bias, n_bias)]
        self._theta = np.empty(len(lower))
        self.set_parameters(parameters)

    # ---------------------------------------------------------------- shape
    @property
    def n_parameters(self) -> int:
        return self._spec.size

    # ----------------------------------------------------------- parameters
    def get_parameters(self) -> np.ndarray:
        return self._theta.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        theta = self._spec.validated(values, "XY parameters")
        self._theta = theta
        m, n = self.network.n_edges, self.network.n_nodes
        h, psi = np.zeros(n), self._fixed_psi.copy()
        nb = len(self.bias_nodes)
        if self.bias == "field":
            h[self.bias_nodes] = theta[m:]
        elif self.bias == "vector":
            hx, hy = theta[m:m + nb], theta[m + nb:]
            h[self.bias_nodes] = np.hypot(hx, hy)
            psi[self.bias_nodes] = np.arctan2(hy, hx)
        self.model.update(theta[:m], h, psi)
        self.last_free = None
        return theta.copy()

    def split_parameters(self, theta: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The parameter vector as named groups (``coupling``, ``bias_field`` or ``bias_x``/``bias_y``)."""
        theta = self._theta if theta is None else np.asarray(theta, float)
        m, nb = self.network.n_edges, len(self.bias_nodes)
        out = {"coupling": theta[:m]}
        if self.bias == "field":
            out["bias_field"] = theta[m:]
        elif self.bias == "vector":
            out["bias_x"], out["bias_y"] = theta[m:m + nb], theta[m + nb:]
        return out

    def _groups(self) -> tuple[str, ...]:
        return {"none": ("coupling",), "field": ("coupling", "bias_field"),
                "vector": ("coupling", "bias_x", "bias_y")}[self.bias]

    def reseed(self, seed: int | list[int]) -> None:
        """Reset the generator of random initial states (the run loop does this per step)."""
        self.rng = np.random.default_rng(seed)

    def network_model(self) -> XYModel:
        """The XY model at the current parameters (capability ``xy_model``)."""
        return self.model

    # ----------------------------------------------------------- measuring
    def measure_free(self, inputs: np.ndarray) -> XYMeasurement:
        """Free relaxation of a batch of input phases (B x n_inputs, rad) from ``n_starts`` fresh random states
        each, drawn from the chip's generator (reseeded per step by the run): a learning rule's free phase."""
        x = np.asarray(inputs, float)
        return self._free(x, self.model.relax(x, self.n_starts, self.rng))

    def evaluation_starts(self, inputs: np.ndarray) -> np.ndarray:
        """The fixed starts (B, n_starts, n_nodes) of every example: seeded by ``evaluation_seed`` and the
        example's input phases (exact float64 bytes), independent of the batch and the chip's generator."""
        if self.evaluation_seed is None:
            raise ValueError("this XY chip has no evaluation_seed (its measure() draws random starts)")
        x = np.atleast_2d(np.asarray(inputs, float))
        rows = [self.model.random_starts(row[None, :], self.n_starts, np.random.default_rng(
                    [self.evaluation_seed, 11, zlib.crc32(row.tobytes()), zlib.adler32(row.tobytes())]))
                for row in np.ascontiguousarray(x)]
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, self.n_starts, self.network.n_nodes))

    def _free(self, x: np.ndarray, state: XYState) -> XYMeasurement:
        meas = self._measurement(state)
        self.last_free, self._last_inputs = meas, x.copy()
        return meas

    def measure(self, inputs: np.ndarray, nudge: TorqueNudge | None = None,
                edge_drops: bool = False) -> XYMeasurement:
        """Relax a batch of input phases (B x n_inputs, rad) from ``n_starts`` states each.

        Without a nudge: from the fixed per-example starts of
        :meth:`evaluation_starts` when the chip has an ``evaluation_seed``,
        else from fresh random starts (:meth:`measure_free`).  With a
        :class:`TorqueNudge` the relaxation starts from ``nudge.start_phases``
        or, if those are not given, from the last free measurement of the same
        inputs (measured now if there is none).
        """
        if edge_drops:
            raise CapabilityError("the XY chip has no edge voltage drops; read phases (capability 'xy_phases')")
        x = np.asarray(inputs, float)
        if nudge is None:
            if self.evaluation_seed is None:
                return self.measure_free(x)
            return self._free(x, self.model.relax(x, start=self.evaluation_starts(x)))
        if not isinstance(nudge, TorqueNudge):
            raise TypeError(f"the XY chip takes a TorqueNudge, not {type(nudge).__name__}")
        start = nudge.start_phases
        if start is None:
            if self.last_free is None or self._last_inputs is None or self._last_inputs.shape != x.shape \
                    or not np.array_equal(self._last_inputs, x):
                self.measure(x)
            start = self.last_free.phases
        return self._measurement(self.model.relax(x, nudge=nudge, start=start))

    def _measurement(self, state: XYState) -> XYMeasurement:
        out = state.phases[:, :, self.model.outputs]
        return XYMeasurement(circular_mean(out, axis=1), None, phases=state.phases, output_phases=out,
                             n_unconverged=state.n_unconverged, n_unstable=state.n_unstable)

    # ------------------------------------------------------- local readouts
    def energy_derivatives(self, phases: np.ndarray) -> np.ndarray:
        """Local readout ``dE/dtheta`` at each state: shape ``phases.shape[:-1] + (n_parameters,)``.

        Couplings: ``-cos(phi_a - phi_b)`` (each coupler reads its own phase
        difference); biases: ``-cos(phi_i - psi_i)`` (``field``) or ``-cos phi_i``,
        ``-sin phi_i`` (``vector``).
        """
        phi = np.asarray(phases, float)
        parts = [self.model.energy_derivatives(phi, "coupling")]
        for group in self._groups()[1:]:
            parts.append(self.model.energy_derivatives(phi, group)[..., self.bias_nodes])
        return np.concatenate(parts, axis=-1)

    def exact_gradient(self, inputs: np.ndarray, target_phases: np.ndarray, cost: PhaseCost | str = "cosine",
                       phases: np.ndarray | None = None) -> np.ndarray:
        """``dC/dtheta`` (implicit differentiation) at the free equilibria ``phases``.

        ``phases`` (B, S, n) default to the last free measurement of ``inputs``
        (relaxed now from fresh random starts if there is none), so an estimator
        and this exact gradient see the same basins.
        """
        x = np.asarray(inputs, float)
        if phases is None:
            if self.last_free is None or self._last_inputs is None or self._last_inputs.shape != x.shape \
                    or not np.array_equal(self._last_inputs, x):
                self.measure(x)
            phases = self.last_free.phases
        grads = self.model.exact_gradient(phases, target_phases, cost, groups=self._groups())
        parts = [grads["coupling"]] + [grads[g][self.bias_nodes] for g in self._groups()[1:]]
        return np.concatenate(parts)

    # ------------------------------------------------------------ records
    def snapshot(self) -> dict:
        return {
            "backend": self.backend,
            "chip": "xy oscillator network",
            "network": self.network.describe(),
            "bias": self.bias,
            "bias_on": self.bias_on,
            "bias_nodes": self.bias_nodes.tolist(),
            "n_starts": self.n_starts,
            "evaluation_seed": self.evaluation_seed,
            "evaluation_starts": ("fixed per example (evaluation_seed, input phases)" if self.evaluation_seed is not None
                                  else "random (the chip's generator)"),
            "ground_phase": self.model.ground_phase,
            "coupling_bounds": list(self.coupling_bounds),
            "bias_bounds": list(self.bias_bounds),
            "init_coupling": list(self.init_coupling),
            "init_bias": list(self.init_bias),
            "init_seed": self.init_seed,
            "tol": self.model.tol,
            "max_steps": self.model.max_steps,
            "output": "circular mean over starts of the output phases (rad)",
            "parameter": {"name": self._spec.name, "unit": self._spec.unit},
            "capabilities": sorted(self.capabilities),
        }

