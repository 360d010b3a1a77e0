"""Non-reciprocal rate network: a physics model with ``ds/dt = F(s, theta)`` and ``dF/ds`` not symmetric.

Units are arranged in layers ``(n_in, n_1, ..., n_L)``.  The inputs ``x`` are
clamped (boundary conditions); the state ``s`` holds every other unit (hidden
layers, then the output layer), shape ``(B, n_units)``.  The force is

    F(s) = -s + g(s) * (W rho(s) + U x + b)

with ``W`` the recurrent couplings between consecutive non-input layers: the
*forward* block ``W_f[l]`` (layer ``l+1`` driven by layer ``l``) and the
separate *backward* block ``W_b[l]`` (layer ``l`` driven by layer ``l+1``);
``U = W_f[0]`` drives the first hidden layer from the inputs.  Two dynamics:

* ``"hopfield"`` (default): gain ``g = rho'(s)`` -- the Scellier & Bengio (2017)
  rate model.  With ``W_b[l] = W_f[l]^T`` it is the gradient flow
  ``F = -dE/ds`` of ``E = 1/2 |s|^2 - sum_l rho_{l+1}^T W_f[l] rho_l
  - rho_1^T U x - b^T rho`` (reciprocal, conservative, ``J`` symmetric).
* ``"leaky"``: gain ``g = 1`` -- the leaky rate network
  ``ds/dt = -s + W rho(s) + U x + b``.  Its Jacobian is not symmetric even when
  ``W`` is (the ``rho'`` sits on the other side), so it is never conservative.

``backward=False`` drops the backward blocks: a strictly feedforward network
(the extreme non-reciprocal case).

Fixed points come from :meth:`NonReciprocalNetwork.relax`: Euler relaxation
of the dynamics (what the device does physically; linearly implicit in each
unit's own stiff self-coupling, with a per-example step that halves on
overshoot), then, once an example is close, a batched Newton polish to machine
precision (learning phases, which start at the free state, go to Newton
first); an example is *converged* when ``max_i |ds_i/dt| < tol``.  Everything
is vectorised over the batch (no Python loop over examples): matrix products
for the force, batched solves for Newton steps and for the adjoint.  Jacobians
are never built as (B, n, n) arrays: per example they are a diagonal plus
row/column-scaled copies of the shared couplings
(:class:`~labtrain.kinds.nonreciprocal.operator.ScaledCouplings`); units of a
layer do not couple to each other, so the first layer is eliminated and only a
Schur complement on the remaining units is formed and factored.

The exact gradient of ``C = mean_b 1/2 |s_out - t|^2`` (implicit
differentiation of ``F(s*, theta) = 0``): with ``J = dF/ds`` at the fixed point,

    lambda = J^{-T} dC/ds ,       dC/dtheta = -(dF/dtheta)^T lambda ,

one ``n_units x n_units`` solve per example (:meth:`exact_gradient`).

Parameter vector layout (``LayeredTopology.blocks`` gives names, shapes and
slices; matrices are flattened row-major, rows = driven units, columns =
driving units):

    [ W_f[0] (n_1 x n_in), W_f[1] (n_2 x n_1), ..., W_f[L-1] (n_L x n_{L-1}),
      W_b[1] (n_1 x n_2), ..., W_b[L-1] (n_{L-1} x n_L)   (only if backward),
      b (n_units) ]

References: Scellier & Bengio, "Equilibrium Propagation", Front. Comput.
Neurosci. 11:24 (2017) (the model); Scellier, Goyal, Binas, Mesnard & Bengio,
"Generalization of Equilibrium Propagation to Vector Field Dynamics",
arXiv:1808.04873 (2018) (the asymmetric model); Scurria, Vanden Abeele,
Mognetti & Massar, "Equilibrium Propagation for Non-Conservative Systems",
arXiv:2602.03670 (2026).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from labtrain.kinds.nonreciprocal.operator import ScaledCouplings
from labtrain.kinds.nonreciprocal.relax_jax import relax_jax
from labtrain.linalg.backend import resolve_array_backend

__all__ = ["ACTIVATIONS", "DYNAMICS", "INIT_MODES", "LayeredTopology", "ParamBlock", "AffineForce",
           "Relaxation", "NonReciprocalNetwork", "RelaxationError"]

ACTIVATIONS = ("smooth_hard_sigmoid", "sigmoid", "tanh")
DYNAMICS = ("hopfield", "leaky")
INIT_MODES = ("asymmetric", "symmetric", "zero_backward")


class RelaxationError(RuntimeError):
    """The dynamics did not settle to a fixed point."""


def activation(name: str, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rho(s)``, ``rho'(s)`` and ``rho''(s)`` of the named activation.

    ``smooth_hard_sigmoid``: ``rho = (1 + tanh(2 s - 1)) / 2`` -- range (0, 1),
    slope 1 at ``s = 1/2``: a smooth stand-in for the hard sigmoid
    ``clip(s, 0, 1)`` of Scellier & Bengio (smooth, so finite differences and
    Newton steps behave).  ``sigmoid``: the logistic function.  ``tanh``.
    """
    if name == "smooth_hard_sigmoid":
        th = np.tanh(2.0 * s - 1.0)
        d = 1.0 - th * th
        return 0.5 * (1.0 + th), d, -4.0 * th * d
    if name == "sigmoid":
        r = 1.0 / (1.0 + np.exp(-s))
        d = r * (1.0 - r)
        return r, d, d * (1.0 - 2.0 * r)
    if name == "tanh":
        th = np.tanh(s)
        d = 1.0 - th * th
        return th, d, -2.0 * th * d
    raise ValueError(f"unknown activation {name!r}; choose from {ACTIVATIONS}")


@dataclass(frozen=True)
class ParamBlock:
    """One block of the parameter vector.

    ``kind`` is ``input`` (``W_f[0]``, columns are inputs), ``forward``,
    ``backward`` or ``bias``; ``rows``/``cols`` index the state vector (for
    ``input`` the columns index the inputs).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    slice: slice
    rows: slice
    cols: slice | None = None
    layer: int = 0


@dataclass(frozen=True)
class LayeredTopology:
    """Structure of a layered non-reciprocal network (no parameters).

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_in, n_1, ..., n_L)``; at least an input and an output layer.
    backward : bool
        Give every pair of consecutive non-input layers a separate backward
        coupling ``W_b``; ``False`` is a strictly feedforward network.
    dynamics : {"hopfield", "leaky"}
        Gain in front of the synaptic input (see the module docstring).
    activation : str
        One of :data:`ACTIVATIONS`.
    """

    layer_sizes: tuple[int, ...]
    backward: bool = True
    dynamics: str = "hopfield"
    activation: str = "smooth_hard_sigmoid"

    def __post_init__(self) -> None:
        sizes = tuple(int(n) for n in self.layer_sizes)
        object.__setattr__(self, "layer_sizes", sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"layer_sizes needs >= 2 layers of >= 1 unit, got {sizes}")
        if self.dynamics not in DYNAMICS:
            raise ValueError(f"unknown dynamics {self.dynamics!r}; choose from {DYNAMICS}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {ACTIVATIONS}")

    # ---------------------------------------------------------------- shape
    @property
    def n_inputs(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    @property
    def n_units(self) -> int:
        """State dimension: every non-input unit."""
        return sum(self.layer_sizes[1:])

    @cached_property
    def layer_slices(self) -> tuple[slice, ...]:
        """State-vector slice of every non-input layer ``1..L`` (index 0 is layer 1)."""
        out, start = [], 0
        for n in self.layer_sizes[1:]:
            out.append(slice(start, start + n))
            start += n
        return tuple(out)

    @property
    def output_slice(self) -> slice:
        return self.layer_slices[-1]

    @cached_property
    def blocks(self) -> tuple[ParamBlock, ...]:
        sizes, ls = self.layer_sizes, self.layer_slices
        blocks, pos = [], 0

        def add(name, kind, shape, rows, cols, layer):
            nonlocal pos
            size = int(np.prod(shape))
            blocks.append(ParamBlock(name, kind, shape, slice(pos, pos + size), rows, cols, layer))
            pos += size

        add("W_f[0]", "input", (sizes[1], sizes[0]), ls[0], slice(0, sizes[0]), 0)
        for l in range(1, len(sizes) - 1):  # layer l -> layer l+1 (state layers l-1, l)
            add(f"W_f[{l}]", "forward", (sizes[l + 1], sizes[l]), ls[l], ls[l - 1], l)
        if self.backward:
            for l in range(1, len(sizes) - 1):  # layer l+1 -> layer l
                add(f"W_b[{l}]", "backward", (sizes[l], sizes[l + 1]), ls[l - 1], ls[l], l)
        add("b", "bias", (self.n_units,), slice(0, self.n_units), None, 0)
        return tuple(blocks)

    @property
    def n_params(self) -> int:
        return self.blocks[-1].slice.stop

    def block(self, name: str) -> ParamBlock:
        for blk in self.blocks:
            if blk.name == name:
                return blk
        raise KeyError(f"no parameter block {name!r}; blocks are {[b.name for b in self.blocks]}")

    def kind_mask(self, *kinds: str) -> np.ndarray:
        """Boolean mask over the parameter vector selecting the blocks of the given kinds."""
        mask = np.zeros(self.n_params, bool)
        for blk in self.blocks:
            if blk.kind in kinds:
                mask[blk.slice] = True
        return mask

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter vector -> ``{block name: array}`` (views)."""
        theta = np.asarray(theta, float)
        if theta.shape != (self.n_params,):
            raise ValueError(f"expected {self.n_params} parameters, got shape {theta.shape}")
        return {blk.name: theta[blk.slice].reshape(blk.shape) for blk in self.blocks}

    def pack(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """``{block name: array}`` -> parameter vector (every block must be given)."""
        theta = np.empty(self.n_params)
        for blk in self.blocks:
            theta[blk.slice] = np.asarray(arrays[blk.name], float).reshape(-1)
        return theta

    def assemble(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dense ``W`` (n_units x n_units), ``U`` (n_units x n_in, rows of layer 1 only) and ``b``."""
        p = self.unpack(theta)
        n = self.n_units
        W, U = np.zeros((n, n)), np.zeros((n, self.n_inputs))
        for blk in self.blocks:
            if blk.kind == "input":
                U[blk.rows] = p[blk.name]
            elif blk.kind in ("forward", "backward"):
                W[blk.rows, blk.cols] = p[blk.name]
        return W, U, p["b"].copy()

    def tie(self, gradient: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. *reciprocal* couplings: ``G_f = g_f + g_b^T`` and ``G_b = G_f^T``.

        If every backward block is tied to its forward block (``W_b = W_f^T``),
        ``G_f`` is ``dC/dW_f`` of the tied parameterisation; this is what plain
        EP estimates on a reciprocal network.  Other blocks are unchanged.
        """
        g = np.array(gradient, float, copy=True)
        if not self.backward:
            return g
        for l in range(1, len(self.layer_sizes) - 1):
            f, b = self.block(f"W_f[{l}]"), self.block(f"W_b[{l}]")
            gf, gb = gradient[f.slice].reshape(f.shape), gradient[b.slice].reshape(b.shape)
            tied = gf + gb.T
            g[f.slice], g[b.slice] = tied.ravel(), tied.T.ravel()
        return g

    def initial_parameters(self, seed: int | None = 0, init: str = "asymmetric", scale: float = 1.0,
                           backward_gain: float = 1.0) -> np.ndarray:
        """Random parameters: weights ``N(0, scale^2 / fan_in)``, biases 0.

        ``init``: ``asymmetric`` draws every backward block independently;
        ``symmetric`` sets ``W_b = backward_gain * W_f^T`` (reciprocal for
        ``hopfield`` dynamics and gain 1); ``zero_backward`` sets ``W_b = 0``.
        """
        if init not in INIT_MODES:
            raise ValueError(f"unknown init {init!r}; choose from {INIT_MODES}")
        rng = np.random.default_rng(seed)
        arrays = {}
        for blk in self.blocks:
            if blk.kind in ("input", "forward"):
                arrays[blk.name] = rng.normal(0.0, scale / np.sqrt(blk.shape[1]), blk.shape)
        for blk in self.blocks:
            if blk.kind == "backward":
                fwd = arrays[f"W_f[{blk.layer}]"]
                if init == "asymmetric":
                    arrays[blk.name] = rng.normal(0.0, backward_gain * scale / np.sqrt(blk.shape[1]), blk.shape)
                elif init == "symmetric":
                    arrays[blk.name] = backward_gain * fwd.T
                else:
                    arrays[blk.name] = np.zeros(blk.shape)
            elif blk.kind == "bias":
                arrays[blk.name] = np.zeros(blk.shape)
        return self.pack(arrays)

    def describe(self) -> dict:
        return {"layer_sizes": list(self.layer_sizes), "backward": self.backward, "dynamics": self.dynamics,
                "activation": self.activation, "n_units": self.n_units, "n_params": self.n_params,
                "blocks": [{"name": b.name, "shape": list(b.shape), "start": b.slice.start, "stop": b.slice.stop}
                           for b in self.blocks]}


@dataclass
class AffineForce:
    """An extra force ``offset - matrix @ s`` added to the dynamics (per example).

    ``matrix``: ``None``, ``(n, n)`` (same for every example), ``(B, n, n)`` or a
    :class:`~labtrain.kinds.nonreciprocal.operator.ScaledCouplings` (AEP's
    feedback, built from the shared couplings without a per-example array);
    ``offset``: ``None``, ``(n,)`` or ``(B, n)``.  Affine forces cover the EP
    nudge ``-beta dC/ds = beta (t - s_out)`` and AEP's ``-2A (s - s0)``; the
    Newton polish uses ``-matrix`` as their Jacobian.
    """

    matrix: np.ndarray | None = None
    offset: np.ndarray | None = None

    def __call__(self, s: np.ndarray) -> np.ndarray:
        out = np.zeros_like(s)
        if self.offset is not None:
            out = out + self.offset
        if self.matrix is not None:
            out = out - _matvec(self.matrix, s)
        return out

    def __add__(self, other: "AffineForce | None") -> "AffineForce":
        if other is None:
            return self
        return AffineForce(_add(self.matrix, other.matrix), _add(self.offset, other.offset))

    __radd__ = __add__

    def take(self, idx: np.ndarray) -> "AffineForce":
        """The force on a subset of the batch."""
        m = self.matrix
        if isinstance(m, ScaledCouplings):
            m = m.take(idx)
        elif m is not None and m.ndim == 3:
            m = m[idx]
        o = self.offset if self.offset is None or self.offset.ndim == 1 else self.offset[idx]
        return AffineForce(m, o)

    @classmethod
    def output_nudge(cls, topology: LayeredTopology, targets: np.ndarray, beta: float) -> "AffineForce":
        """``-beta dc/ds`` for ``c = 1/2 |s_out - t|^2``: a force ``beta (t - s_out)`` on the output units."""
        targets = np.atleast_2d(np.asarray(targets, float))
        n, out = topology.n_units, topology.output_slice
        matrix = np.zeros((n, n))
        idx = np.arange(out.start, out.stop)
        matrix[idx, idx] = beta
        offset = np.zeros((len(targets), n))
        offset[:, out] = beta * targets
        return cls(matrix, offset)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(b, ScaledCouplings):
        return b + a
    return a + b


def _dense(m: "np.ndarray | ScaledCouplings | None", batch: int) -> np.ndarray | None:
    """A matrix as an array (``ScaledCouplings`` materialised per example)."""
    return m.dense_matrix(batch) if isinstance(m, ScaledCouplings) else m


def _matvec(m: "np.ndarray | ScaledCouplings", s: np.ndarray) -> np.ndarray:
    if isinstance(m, ScaledCouplings):
        return m.matvec(s)
    if m.ndim == 2:
        return s @ m.T
    return np.matmul(m, s[..., None])[..., 0]


@dataclass
class Relaxation:
    """Fixed points of a batch.

    Attributes
    ----------
    states : ndarray, shape (B, n_units)
    converged : ndarray of bool, shape (B,)
        ``max_i |ds_i/dt| < tol`` at the returned state.
    residual : ndarray, shape (B,)
        ``max_i |ds_i/dt|`` at the returned state.
    euler_steps, newton_steps : int
        Iterations used (for the whole batch).
    """

    states: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    euler_steps: int = 0
    newton_steps: int = 0
    info: dict = field(default_factory=dict)

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))


class NonReciprocalNetwork:
    """The network at fixed parameters: force, Jacobian, relaxation and exact gradient.

    Parameters
    ----------
    topology : LayeredTopology
    parameters : ndarray, shape (topology.n_params,)
    dt : float
        Euler step of the relaxation (in units of the unit time constant; < 1).
    tol : float
        Convergence threshold on ``max |ds/dt|`` per example.
    max_steps : int
        Euler steps at most.
    newton_from : float
        Switch to the batched Newton polish once every example's residual is
        below this (0 disables Newton: pure Euler to ``tol``).
    max_newton : int
        Newton iterations at most.
    array_backend : {"numpy", "jax"}
        Where :meth:`relax` runs: NumPy (the reference) or JAX
        (:mod:`~labtrain.kinds.nonreciprocal.relax_jax`: the same algorithm
        compiled, on the default JAX device; NumPy and one logged line when
        JAX is not installed).  Gradients and solves stay on NumPy.
    """

    def __init__(self, topology: LayeredTopology, parameters: np.ndarray, *, dt: float = 1.0, tol: float = 1e-10,
                 max_steps: int = 5000, newton_from: float = 0.01, max_newton: int = 30,
                 array_backend: str = "numpy") -> None:
        if not 0 < dt <= 10:
            raise ValueError(f"dt must be in (0, 10], got {dt}")
        self.topology = topology
        self.parameters = np.array(parameters, float)
        self.W, self.U, self.b = topology.assemble(self.parameters)
        self._w_diag = np.diag(self.W).copy()
        self.dt, self.tol, self.max_steps = float(dt), float(tol), int(max_steps)
        self.newton_from, self.max_newton = float(newton_from), int(max_newton)
        self.array_backend = resolve_array_backend(array_backend)

    # ------------------------------------------------------------- physics
    def _gain(self, s: np.ndarray, d: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray | float, np.ndarray | float]:
        if self.topology.dynamics == "hopfield":
            return d, d2
        return 1.0, 0.0

    def drive(self, inputs: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Synaptic input ``z = W rho(s) + U x + b``."""
        r = activation(self.topology.activation, s)[0]
        return r @ self.W.T + inputs @ self.U.T + self.b

    def external(self, inputs: np.ndarray) -> np.ndarray:
        """The part of the drive that does not depend on the state: ``U x + b`` (B x n_units)."""
        return np.atleast_2d(inputs) @ self.U.T + self.b

    def force(self, inputs: np.ndarray, s: np.ndarray, extra_force: AffineForce | None = None,
              external: np.ndarray | None = None) -> np.ndarray:
        """``ds/dt`` (B x n_units), including ``extra_force``; ``external`` caches ``U x + b``."""
        return self._force_diag(s, extra_force, self.external(inputs) if external is None else external)[0]

    def _force_diag(self, s: np.ndarray, extra_force: AffineForce | None, ext: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The force and the diagonal of its Jacobian (both B x n_units)."""
        r, d, d2 = activation(self.topology.activation, s)
        g, dg = self._gain(s, d, d2)
        z = r @ self.W.T + ext
        f = g * z - s
        jd = dg * z + g * self._w_diag * d - 1.0
        if extra_force is not None:
            f = f + extra_force(s)
            m = extra_force.matrix
            if isinstance(m, ScaledCouplings):
                jd = jd - m.diagonal()
            elif m is not None:
                jd = jd - (np.diag(m) if m.ndim == 2 else np.diagonal(m, axis1=1, axis2=2))
        return f, jd

    def jacobian_operator(self, inputs: np.ndarray, s: np.ndarray, extra_force: AffineForce | None = None,
                          external: np.ndarray | None = None) -> ScaledCouplings:
        """``J = dF/ds = diag(-1 + g' z) + diag(g) W diag(rho')`` per example, kept in that form.

        No (B, n, n) array is built: products and the blocks a solve needs come from the shared ``W``
        (:class:`~labtrain.kinds.nonreciprocal.operator.ScaledCouplings`).
        """
        ext = self.external(inputs) if external is None else external
        r, d, d2 = activation(self.topology.activation, s)
        g, dg = self._gain(s, d, d2)
        diag = -1.0 + np.broadcast_to(dg, s.shape) * (r @ self.W.T + ext)
        J = ScaledCouplings(diag, ((g if np.ndim(g) else None, self.W, d),))
        if extra_force is not None and extra_force.matrix is not None:
            J = J - extra_force.matrix
        return J

    def jacobian(self, inputs: np.ndarray, s: np.ndarray, extra_force: AffineForce | None = None,
                 external: np.ndarray | None = None) -> np.ndarray:
        """``J = dF/ds`` per example as a dense array, shape (B, n, n) (see :meth:`jacobian_operator`)."""
        return self.jacobian_operator(inputs, s, extra_force, external).dense_matrix(len(np.atleast_2d(s)))

    def antisymmetric_operator(self, inputs: np.ndarray, s: np.ndarray) -> ScaledCouplings:
        """``2A = J - J^T = G W D - D W^T G`` at the states ``s`` (``G = diag(g)``, ``D = diag(rho')``).

        The diagonal parts of ``J`` cancel, so ``2A`` lives on the couplings alone.
        """
        r, d, d2 = activation(self.topology.activation, s)
        g, _ = self._gain(s, d, d2)
        g = g if np.ndim(g) else None
        return ScaledCouplings(np.zeros_like(s), ((g, self.W, d), (-d, self.W.T, g)))

    def antisymmetric_part(self, inputs: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``A = (J - J^T) / 2`` at the states ``s``, shape (B, n, n)."""
        return 0.5 * self.antisymmetric_operator(inputs, s).dense_matrix(len(np.atleast_2d(s)))

    # ---------------------------------------------------------- relaxation
    def relax(self, inputs: np.ndarray, start: np.ndarray | None = None,
              extra_force: AffineForce | None = None, strict: bool = False,
              newton_first: bool | None = None) -> Relaxation:
        """Fixed points ``F(s) + extra_force(s) = 0`` of a batch, from ``start`` (default 0).

        Euler relaxation ``s += dt F`` (what the device does) until an example's
        ``max |F|`` is below ``newton_from`` (or ``tol`` without Newton), then
        batched Newton steps (with step halving) on the examples still above
        ``tol``; an example that Newton leaves above ``tol`` goes back to Euler
        with a 100x lower hand-over threshold.  Each example's Euler step halves
        (down to 1e-3) when its force reverses between steps (overshoot on stiff
        dynamics) or its residual grows 1.5x over 10 steps (spiralling out).
        Examples not below
        ``tol`` after ``max_steps`` Euler steps come back with ``converged=False``,
        or raise :class:`RelaxationError` when ``strict``.

        ``newton_first`` (default: when a ``start`` is given) tries the Newton
        polish before any Euler step: a learning phase starts at the free state,
        O(beta) from its fixed point, and Newton from there lands on the fixed
        point continuously connected to it; examples it leaves unconverged are
        relaxed by Euler as above.
        """
        x = np.atleast_2d(np.asarray(inputs, float))
        if x.shape[1] != self.topology.n_inputs:
            raise ValueError(f"expected inputs of shape (B, {self.topology.n_inputs}), got {x.shape}")
        n_b, n = len(x), self.topology.n_units
        s = np.zeros((n_b, n)) if start is None else np.array(start, float, copy=True).reshape(n_b, n)
        first = (start is not None) if newton_first is None else bool(newton_first)
        if self.array_backend == "jax":
            return self._relax_jax(x, s, extra_force, first, strict)
        switch = self.newton_from if self.newton_from > 0 else self.tol
        ext = self.external(x)
        f, jd = self._force_diag(s, extra_force, ext)
        res = np.max(np.abs(f), axis=1)
        steps, newton = 0, 0
        dt = np.full(n_b, self.dt)  # per-example step
        # Per-example threshold below which Euler stops and Newton takes over; an example that
        # Newton leaves unconverged goes back to Euler with a 100x lower threshold.
        switch_at = np.full(n_b, np.inf if first and self.newton_from > 0 else switch)
        while True:
            far = res >= switch_at
            checkpoint, f_old, f_prev = res.copy(), f.copy(), f.copy()
            idx, ef = np.arange(0), None
            while steps < self.max_steps and far.any():
                # Only the examples still far from their fixed point move (the set only shrinks).
                if far.sum() != idx.size:
                    idx = np.flatnonzero(far)
                    ef = None if extra_force is None else extra_force.take(idx)
                # linearly implicit in each unit's own (stiff) self-coupling J_ii, explicit in the rest
                dti = dt[idx, None]
                si = s[idx] + dti / (1.0 + dti * np.maximum(-jd[idx], 0.0)) * f[idx]
                fi, jdi = self._force_diag(si, ef, ext[idx])
                s[idx], jd[idx] = si, jdi
                f_prev[idx], f_old[idx], f[idx] = f_old[idx], f[idx], fi
                ri = np.max(np.abs(fi), axis=1)
                res[idx] = np.where(np.isfinite(ri), ri, np.inf)
                # Too long a step overshoots or spirals out on strongly coupled / rotating dynamics
                # that the device itself settles: where the force reversed within two steps or the
                # residual grew 1.5x over 10 steps, halve that example's step.
                overshoot = (np.einsum("bi,bi->b", fi, f_old[idx]) < 0) | (np.einsum("bi,bi->b", fi, f_prev[idx]) < 0)
                if steps % 10 == 9:
                    overshoot |= res[idx] > 1.5 * checkpoint[idx]
                    checkpoint[idx] = res[idx]
                shrink = idx[overshoot & (dt[idx] > 1e-3)]
                dt[shrink] *= 0.5
                far[idx] = res[idx] >= switch_at[idx]
                steps += 1
            if self.newton_from <= 0:
                break
            newton += self._newton(x, ext, s, f, res, switch_at, extra_force)
            pending = np.isfinite(res) & (res >= self.tol)
            if not pending.any() or steps >= self.max_steps:
                break
            switch_at[pending] = np.maximum(np.minimum(switch_at[pending], switch) / 100.0, self.tol)
        return self._finish(s, res, steps, newton, float(dt.min()), strict)

    def _finish(self, s: np.ndarray, res: np.ndarray, steps: int, newton: int, min_dt: float,
                strict: bool) -> Relaxation:
        """The :class:`Relaxation` of a batch (or :class:`RelaxationError` when ``strict`` and one is left)."""
        converged = np.isfinite(res) & (res < self.tol)
        out = Relaxation(s, converged, res, steps, newton, {"min_dt": min_dt, "array_backend": self.array_backend})
        if strict and not out.all_converged:
            raise RelaxationError(f"{int(np.sum(~converged))} of {len(s)} examples did not reach |ds/dt| < "
                                  f"{self.tol:g} (worst residual {np.nanmax(res):.3g} after {steps} Euler and "
                                  f"{newton} Newton steps)")
        return out

    def _relax_jax(self, x: np.ndarray, s: np.ndarray, extra_force: AffineForce | None, first: bool,
                   strict: bool) -> Relaxation:
        """:meth:`relax` on JAX (:func:`~labtrain.kinds.nonreciprocal.relax_jax.relax_jax`)."""
        ef = extra_force
        got = relax_jax(self.W, self.external(x), s, activation=self.topology.activation,
                        dynamics=self.topology.dynamics, dt=self.dt, tol=self.tol, max_steps=self.max_steps,
                        newton_from=self.newton_from, max_newton=self.max_newton, newton_first=first,
                        extra_matrix=None if ef is None else _dense(ef.matrix, len(x)),
                        extra_offset=None if ef is None else ef.offset)
        return self._finish(got.states, got.residual, got.euler_steps, got.newton_steps, got.min_dt, strict)

    def _newton(self, x, ext, s, f, res, switch_at, extra_force) -> int:
        """Batched Newton polish (in place) of the examples with ``tol <= residual < switch_at``.

        A step that does not lower an example's residual ``|F|_2`` is halved (up to 8 times).
        """
        iters = 0
        for iters in range(1, self.max_newton + 1):
            active = np.flatnonzero((res >= self.tol) & (res < switch_at))
            if active.size == 0:
                return iters - 1
            ef = None if extra_force is None else extra_force.take(active)
            xa, ea, sa, fa = x[active], ext[active], s[active], f[active]
            try:
                delta = self.solve(self.jacobian_operator(xa, sa, ef, ea), -fa)
            except np.linalg.LinAlgError:
                return iters
            # Accept on the 2-norm: the Newton direction always descends |F|^2, so halving the step
            # (up to 8 times) makes progress unless J is singular.
            ra, step = np.linalg.norm(fa, axis=1), np.ones(active.size)
            for _ in range(9):
                trial = sa + step[:, None] * delta
                ft = self.force(xa, trial, ef, ea)
                rt = np.linalg.norm(ft, axis=1)
                ok = np.isfinite(rt) & (rt < ra)
                if ok.all():
                    break
                step = np.where(ok, step, 0.5 * step)
            if not ok.any():
                return iters
            idx = active[ok]
            s[idx], f[idx], res[idx] = trial[ok], ft[ok], np.max(np.abs(ft[ok]), axis=1)
        return iters

    def solve(self, J: "np.ndarray | ScaledCouplings", rhs: np.ndarray) -> np.ndarray:
        """Solve ``J_b y_b = rhs_b`` for a batch (``J`` dense B x n x n or a :class:`ScaledCouplings`; B x n).

        Units of one layer do not couple to each other, so the first layer's block
        of ``J`` is diagonal (also with the EP nudge and AEP's ``2A``, whose
        diagonal blocks vanish); it is eliminated first and only the Schur
        complement on the remaining units is factored (10 x 10 for a 784-512-10
        network instead of 522 x 522).  From a :class:`ScaledCouplings` only the
        blocks this needs are built.  Falls back to a dense solve otherwise
        (a dense extra force, a singular diagonal).
        """
        rhs = np.asarray(rhs, float)
        n_b, n = rhs.shape
        h = self.topology.layer_slices[0]
        n1 = h.stop
        rest = slice(n1, n)
        if n1 < n:
            if isinstance(J, ScaledCouplings):
                d1 = np.broadcast_to(J.diagonal(), (n_b, n))[:, h]
                blocks = None if J.couples_within(h) else lambda: (J.block(h, rest, n_b), J.block(rest, h, n_b),
                                                                   J.block(rest, rest, n_b))
            else:
                d1 = np.diagonal(J[:, h, h], axis1=1, axis2=2)
                off = np.any(J[:, h, h] - d1[:, :, None] * np.eye(n1))
                blocks = None if off else lambda: (J[:, h, rest], J[:, rest, h], J[:, rest, rest])
            if blocks is not None and np.min(np.abs(d1)) > 1e-12:
                C, E, R = blocks()
                b1, b2 = rhs[:, h], rhs[:, rest]
                inv = 1.0 / d1
                schur = R - np.matmul(E * inv[:, None, :], C)
                y2 = np.linalg.solve(schur, (b2 - np.einsum("bij,bj->bi", E, inv * b1))[..., None])[..., 0]
                y1 = inv * (b1 - np.einsum("bij,bj->bi", C, y2))
                return np.concatenate([y1, y2], axis=1)
        if isinstance(J, ScaledCouplings):
            J = J.dense_matrix(n_b)
        return np.linalg.solve(J, rhs[..., None])[..., 0]

    def steady_state(self, inputs: np.ndarray) -> Relaxation:
        """Free fixed points (no extra force)."""
        return self.relax(inputs)

    def outputs(self, states: np.ndarray) -> np.ndarray:
        return states[:, self.topology.output_slice]

    # ------------------------------------------------------- local readouts
    def force_parameter_vjp(self, inputs: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``mean_b (dF/dtheta)(s_b)^T v_b``: each weight reads ``g_i v_i`` and its presynaptic rate.

        ``dF_i/dW_ij = g_i rho_j``, ``dF_i/dU_ik = g_i x_k``, ``dF_i/db_i = g_i``.
        """
        r, d, d2 = activation(self.topology.activation, s)
        g, _ = self._gain(s, d, d2)
        gv = g * np.asarray(v, float)
        x = np.atleast_2d(inputs)
        n_b = len(s)
        out = np.empty(self.topology.n_params)
        for blk in self.topology.blocks:
            if blk.kind == "input":
                out[blk.slice] = (gv[:, blk.rows].T @ x).ravel() / n_b
            elif blk.kind in ("forward", "backward"):
                out[blk.slice] = (gv[:, blk.rows].T @ r[:, blk.cols]).ravel() / n_b
            else:
                out[blk.slice] = gv.mean(axis=0)
        return out

    def energy_parameter_gradient(self, inputs: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``mean_b dE/dtheta(s_b)`` of the EP energy of the *reciprocal* network.

        ``E = 1/2 |s|^2 - sum_l rho_{l+1}^T K_l rho_l - rho_1^T U x - b^T rho``
        with one coupling ``K_l`` per layer pair; ``W_f[l]`` and ``W_b[l]`` are
        both read as copies of it, so ``dE/dW_f = -rho_{l+1} rho_l^T`` and
        ``dE/dW_b = -rho_l rho_{l+1}^T`` (the same local product).  Exact for a
        reciprocal ``hopfield`` network; only a pseudo-energy otherwise.
        """
        r = activation(self.topology.activation, s)[0]
        x = np.atleast_2d(inputs)
        n_b = len(s)
        out = np.empty(self.topology.n_params)
        for blk in self.topology.blocks:
            if blk.kind == "input":
                out[blk.slice] = -(r[:, blk.rows].T @ x).ravel() / n_b
            elif blk.kind in ("forward", "backward"):
                out[blk.slice] = -(r[:, blk.rows].T @ r[:, blk.cols]).ravel() / n_b
            else:
                out[blk.slice] = -r.mean(axis=0)
        return out

    # ------------------------------------------------------- exact gradient
    def loss(self, states: np.ndarray, targets: np.ndarray) -> float:
        """``C = mean_b 1/2 |s_out - t|^2``."""
        diff = self.outputs(states) - targets
        return float(0.5 * np.mean(np.sum(diff**2, axis=1)))

    def adjoint(self, inputs: np.ndarray, states: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``lambda_b = J_b^{-T} dc_b/ds`` per example (B x n_units), one batched solve."""
        grad_s = np.zeros_like(states)
        grad_s[:, self.topology.output_slice] = self.outputs(states) - targets
        return self.solve(self.jacobian_operator(inputs, states).transpose(), grad_s)

    def exact_gradient(self, inputs: np.ndarray, targets: np.ndarray, states: np.ndarray | None = None) -> np.ndarray:
        """``dC/dtheta = -mean_b (dF/dtheta)^T J^{-T} dc_b/ds`` at the free fixed points (implicit differentiation)."""
        x = np.atleast_2d(np.asarray(inputs, float))
        t = np.atleast_2d(np.asarray(targets, float))
        if states is None:
            states = self.relax(x, strict=True).states
        lam = self.adjoint(x, states, t)
        return -self.force_parameter_vjp(x, states, lam)
