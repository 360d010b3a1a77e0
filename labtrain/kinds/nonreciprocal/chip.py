"""Non-reciprocal chip: a rate network with separate forward and backward couplings.

The chip is the physics model of :mod:`labtrain.kinds.nonreciprocal.model`
called directly (an *ideal* backend).  What a protocol can ask of it:

* ``measure(inputs, nudge)`` -- the output units' fixed-point states, optionally
  with a constant current (:class:`~labtrain.chip.CurrentNudge`) injected into
  the output units;
* ``relax(inputs, force, start)`` (capability ``state_readout``) -- the fixed
  point of *every* unit under an extra affine force, e.g. the EP nudge
  ``beta (t - s_out)`` from :meth:`output_nudge`;
* ``antisymmetric_feedback(inputs, free_states)`` (capability
  ``antisymmetric_feedback``) -- the extra force ``-2A(s - s0)`` of asymmetric
  EP, ``A = (J - J^T)/2`` the non-reciprocal part of the interaction at the
  free state (known from the couplings and the free rates);
* ``relax_mirror(inputs, free_states, offset)`` (capability ``adjoint_mirror``)
  -- the fixed point of the *mirror* copy used by dyadic EP: a linear network
  with the transposed couplings of the chip linearised at its free state,
  ``dl/dt = J(s0)^T l + offset``;
* local readouts for the weight updates: :meth:`local_force_gradient`
  (``mean_b (dF/dtheta)^T v``) and :meth:`local_energy_gradient` (``dE/dtheta``
  of the reciprocal EP energy);
* ``network_model()`` and ``exact_gradient`` (implicit differentiation), for
  gradient-fidelity checks.

Parameter layout (dimensionless, bounds ``+-weight_bound`` for weights and
``+-bias_bound`` for biases): the flattened blocks of
``LayeredTopology.blocks``, in order ``W_f[0]`` (layer 1 from the inputs),
``W_f[1..L-1]`` (layer l+1 from layer l), ``W_b[1..L-1]`` (layer l from layer
l+1; absent when ``backward=False``), ``b`` (every non-input unit); each matrix
row-major with rows = driven units.  :meth:`NonReciprocalChip.parameter_blocks`
lists names, shapes and slices.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from labtrain.kinds.nonreciprocal.model import AffineForce, LayeredTopology, NonReciprocalNetwork, Relaxation
from labtrain.linalg.backend import resolve_array_backend
from labtrain.chip.base import REFERENCE_GRADIENT, CURRENT_NUDGE, NETWORK_MODEL, Chip, ClampNudge, CurrentNudge, Measurement, ParameterSpec

__all__ = ["NonReciprocalChip", "StateMeasurement", "STATE_READOUT", "ANTISYMMETRIC_FEEDBACK", "ADJOINT_MIRROR",
           "AffineForce"]

STATE_READOUT = "state_readout"                    #: every unit's fixed-point state can be read
ANTISYMMETRIC_FEEDBACK = "antisymmetric_feedback"  #: the -2A(s - s0) learning-phase force can be applied
ADJOINT_MIRROR = "adjoint_mirror"                  #: a transposed-coupling mirror copy can be relaxed (dyadic EP)


class StateMeasurement(Measurement):
    """A measurement with every unit's state (``states``, B x n_units) and convergence flags."""

    def __init__(self, output_v: np.ndarray, states: np.ndarray, converged: np.ndarray) -> None:
        super().__init__(output_v, unit="1")
        self.states = states
        self.converged = converged


class NonReciprocalChip(Chip):
    """Ideal chip backed by :class:`~labtrain.kinds.nonreciprocal.model.NonReciprocalNetwork`.

    Parameters
    ----------
    layer_sizes : sequence of int or LayeredTopology
        ``(n_in, n_hidden..., n_out)``, or a ready topology (then ``backward``,
        ``dynamics`` and ``activation`` are ignored).
    backward : bool
        Separate trainable backward couplings (``False``: strictly feedforward).
    dynamics : {"hopfield", "leaky"}
        See :mod:`labtrain.kinds.nonreciprocal.model`.
    activation : str
        ``smooth_hard_sigmoid`` (default), ``sigmoid`` or ``tanh``.
    parameters : ndarray, optional
        Initial parameter vector; default drawn with ``init``/``init_scale``/``seed``.
    init : {"asymmetric", "symmetric", "zero_backward"}
        Initialisation of the backward couplings (``symmetric``: ``W_b = W_f^T``).
    init_scale : float
        Weights start ``N(0, init_scale^2 / fan_in)``.
    weight_bound, bias_bound : float
        Parameters are clipped to ``[-bound, +bound]``.
    read_noise : float
        Standard deviation of Gaussian noise on every state reading.
    seed : int
        Seed of the initialisation and of the read noise.
    dt, tol, max_steps, newton_from
        Relaxation settings (:class:`NonReciprocalNetwork`).
    array_backend : {"numpy", "jax"}
        Where the relaxation runs (:class:`NonReciprocalNetwork`).
    """

    backend = "ideal"
    output_unit = "1"

    def __init__(self, layer_sizes: Sequence[int] | LayeredTopology, *, backward: bool = True,
                 dynamics: str = "hopfield", activation: str = "smooth_hard_sigmoid",
                 parameters: np.ndarray | None = None, init: str = "asymmetric", init_scale: float = 1.0,
                 weight_bound: float = 5.0, bias_bound: float = 5.0, read_noise: float = 0.0, seed: int = 0,
                 dt: float = 1.0, tol: float = 1e-10, max_steps: int = 5000, newton_from: float = 0.01,
                 array_backend: str = "numpy") -> None:
        if isinstance(layer_sizes, LayeredTopology):
            self.topology = layer_sizes
        else:
            self.topology = LayeredTopology(tuple(layer_sizes), backward, dynamics, activation)
        if not weight_bound > 0 or not bias_bound > 0:
            raise ValueError("weight_bound and bias_bound must be > 0")
        if read_noise < 0:
            raise ValueError(f"read_noise must be >= 0, got {read_noise}")
        topo = self.topology
        bias = topo.kind_mask("bias")
        upper = np.where(bias, float(bias_bound), float(weight_bound))
        self._spec = ParameterSpec("coupling", "1", -upper, upper.copy())
        self.capabilities = frozenset({CURRENT_NUDGE, NETWORK_MODEL, REFERENCE_GRADIENT, STATE_READOUT, ANTISYMMETRIC_FEEDBACK,
                                       ADJOINT_MIRROR})
        self.init, self.init_scale, self.seed = init, float(init_scale), int(seed)
        self.read_noise = float(read_noise)
        self.rng = np.random.default_rng([self.seed, 7])
        self.relax_settings = {"dt": float(dt), "tol": float(tol), "max_steps": int(max_steps),
                               "newton_from": float(newton_from),
                               "array_backend": resolve_array_backend(array_backend)}
        self.stats = {"relaxations": 0, "unconverged_examples": 0, "euler_steps": 0, "newton_steps": 0}
        self._model: NonReciprocalNetwork | None = None
        if parameters is None:
            parameters = topo.initial_parameters(self.seed, init, self.init_scale)
        self._theta = np.empty(topo.n_params)
        self.set_parameters(parameters)

    # ---------------------------------------------------------------- shape
    @property
    def n_inputs(self) -> int:
        return self.topology.n_inputs

    @property
    def n_outputs(self) -> int:
        return self.topology.n_outputs

    @property
    def n_units(self) -> int:
        return self.topology.n_units

    @property
    def parameter_spec(self) -> ParameterSpec:
        return self._spec

    def parameter_blocks(self) -> list[dict]:
        """Name, kind, shape and ``[start, stop)`` of every parameter block."""
        return [{"name": b.name, "kind": b.kind, "shape": b.shape, "start": b.slice.start, "stop": b.slice.stop}
                for b in self.topology.blocks]

    # ----------------------------------------------------------- parameters
    def get_parameters(self) -> np.ndarray:
        return self._theta.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        self._theta = self._spec.validated(values)
        self._model = None
        return self._theta.copy()

    #: Free measurements of more examples than this relax in chunks: the Newton polish holds a dense
    #: n_units x n_units Jacobian (and its factorisation) per example, so evaluating MNIST-10k's 8,000 training
    #: images of a 784-256-10 network in one batch took 12 GB (the relaxation is per example: same states).
    measure_chunk = 512

    def reseed(self, seed: int | list[int]) -> None:
        """Reset the read-noise generator (the run loop does this per step)."""
        self.rng = np.random.default_rng(seed)

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        """Exact ``dC/dtheta`` (implicit differentiation) of the noise-free network at ``parameters``."""
        if parameters is None:
            return self.network_model().exact_gradient(inputs, targets)
        return NonReciprocalNetwork(self.topology, np.asarray(parameters, float),
                                    **self.relax_settings).exact_gradient(inputs, targets)

    def network_model(self) -> NonReciprocalNetwork:
        """The physics model at the current parameters (assembled once per parameter update)."""
        if self._model is None:
            self._model = NonReciprocalNetwork(self.topology, self._theta, **self.relax_settings)
        return self._model

    # ----------------------------------------------------------- measuring
    def _read(self, states: np.ndarray) -> np.ndarray:
        if self.read_noise == 0.0:
            return states
        return states + self.rng.normal(0.0, self.read_noise, states.shape)

    def _relax(self, inputs: np.ndarray, force: AffineForce | None, start: np.ndarray | None) -> Relaxation:
        rel = self.network_model().relax(inputs, start=start, extra_force=force)
        self.stats["relaxations"] += 1
        self.stats["unconverged_examples"] += int(np.sum(~rel.converged))
        self.stats["euler_steps"] += rel.euler_steps
        self.stats["newton_steps"] += rel.newton_steps
        return rel

    def relax(self, inputs: np.ndarray, force: AffineForce | None = None,
              start: np.ndarray | None = None) -> StateMeasurement:
        """Every unit's fixed point under the extra ``force`` (capability ``state_readout``).

        ``start`` (B x n_units) is where the relaxation begins -- the free state
        for a learning phase, so the nudged state is the one continuously
        connected to it.  Non-converged examples are counted in ``stats``.
        """
        x = np.atleast_2d(np.asarray(inputs, float))
        rel = self._relax(x, force, start)
        states = self._read(rel.states)
        return StateMeasurement(states[:, self.topology.output_slice].copy(), states, rel.converged)

    def measure(self, inputs: np.ndarray, nudge: CurrentNudge | ClampNudge | None = None,
                edge_drops: bool = False) -> Measurement:
        """Output units' fixed-point states; a :class:`CurrentNudge` adds a constant force on the outputs."""
        if edge_drops:
            raise TypeError("the non-reciprocal chip has no edge drops; use relax() for every unit's state")
        x = np.atleast_2d(np.asarray(inputs, float))
        force = None
        if isinstance(nudge, CurrentNudge):
            offset = np.zeros((len(x), self.n_units))
            offset[:, self.topology.output_slice] = nudge.current_a
            force = AffineForce(None, offset)
        elif nudge is not None:
            raise TypeError(f"the non-reciprocal chip supports CurrentNudge only, not {type(nudge).__name__}")
        if force is None and len(x) > self.measure_chunk:  # evaluation of a whole data set: bounded memory
            states = np.concatenate([self._relax(x[i:i + self.measure_chunk], None, None).states
                                     for i in range(0, len(x), self.measure_chunk)])
        else:
            states = self._relax(x, force, None).states
        return Measurement(self._read(states[:, self.topology.output_slice]), unit="1")

    def output_nudge(self, targets: np.ndarray, beta: float) -> AffineForce:
        """EP nudge ``-beta dc/ds = beta (t - s_out)`` on the output units (state-dependent)."""
        return AffineForce.output_nudge(self.topology, targets, beta)

    def antisymmetric_feedback(self, inputs: np.ndarray, free_states: np.ndarray) -> AffineForce:
        """Asymmetric-EP force ``-2A (s - s0)`` with ``A = (J - J^T)/2`` at the free states ``s0``."""
        x = np.atleast_2d(np.asarray(inputs, float))
        two_a = self.network_model().antisymmetric_operator(x, free_states)
        return AffineForce(two_a, two_a.matvec(free_states))

    def relax_mirror(self, inputs: np.ndarray, free_states: np.ndarray, offset: np.ndarray,
                     max_steps: int | None = None) -> StateMeasurement:
        """Fixed point of the mirror copy ``dl/dt = J(s0)^T l + offset`` (capability ``adjoint_mirror``).

        The mirror is the chip's network linearised at the free states ``s0``
        with every coupling transposed (unit ``i`` drives unit ``j`` through
        ``J_ij``): its Jacobian ``J^T`` has the spectrum of ``J``, so it relaxes
        wherever the free state is stable.  Relaxation as on the chip -- Euler
        steps, linearly implicit in each unit's self-coupling, until
        ``max |dl/dt| < tol`` -- then one exact linear polish (the mirror is
        linear).  ``offset`` (B x n_units) is the drive, e.g. ``beta (t - s0_out)``
        on the outputs.
        """
        x = np.atleast_2d(np.asarray(inputs, float))
        model = self.network_model()
        jt = model.jacobian_operator(x, free_states).transpose()
        b = np.asarray(offset, float)
        tol = self.relax_settings["tol"]
        steps = self.relax_settings["max_steps"] if max_steps is None else int(max_steps)
        dt = self.relax_settings["dt"]
        diag = np.maximum(-jt.diagonal(), 0.0)
        lam = np.zeros_like(b)
        res = np.full(len(b), np.inf)
        for _ in range(steps):
            f = jt.matvec(lam) + b
            res = np.max(np.abs(f), axis=1)
            if np.all(res < max(tol, 1e-3 * np.max(np.abs(b), initial=0.0))):
                break
            lam = lam + dt / (1.0 + dt * diag) * f
        lam = lam + model.solve(jt, -(jt.matvec(lam) + b))
        final = np.max(np.abs(jt.matvec(lam) + b), axis=1)
        converged = np.isfinite(final) & (final < max(tol, 1e-9 * np.max(np.abs(b), initial=0.0)))
        self.stats["relaxations"] += 1
        self.stats["unconverged_examples"] += int(np.sum(~converged))
        lam = self._read(lam)
        return StateMeasurement(lam[:, self.topology.output_slice].copy(), lam, converged)

    # --------------------------------------------------------- local rules
    def local_force_gradient(self, inputs: np.ndarray, states: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """``mean_b (dF/dtheta)(s_b)^T v_b``: weight ``W_ij`` reads ``g(s_i) v_i rho(s_j)``."""
        return self.network_model().force_parameter_vjp(np.atleast_2d(inputs), states, vectors)

    def local_energy_gradient(self, inputs: np.ndarray, states: np.ndarray) -> np.ndarray:
        """``mean_b dE/dtheta(s_b)`` of the reciprocal EP energy: ``W_ij`` reads ``-rho(s_i) rho(s_j)``."""
        return self.network_model().energy_parameter_gradient(np.atleast_2d(inputs), states)

    def exact_gradient(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``dC/dtheta`` of the noise-free model by implicit differentiation (capability ``network_model``)."""
        return self.network_model().exact_gradient(inputs, targets)

    # ------------------------------------------------------------ records
    def snapshot(self) -> dict:
        return {
            "backend": self.backend,
            "chip": "non-reciprocal rate network",
            "topology": self.topology.describe(),
            "init": self.init, "init_scale": self.init_scale, "seed": self.seed,
            "weight_bound": float(self._spec.upper[0]), "bias_bound": float(self._spec.upper[-1]),
            "read_noise": self.read_noise,
            "relaxation": dict(self.relax_settings),
            "stats": dict(self.stats),
            "parameter": {"name": "coupling", "unit": "1"},
            "capabilities": sorted(self.capabilities),
        }
