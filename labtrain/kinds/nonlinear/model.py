"""Steady state and exact gradient of a nonlinear resistive network.

Every edge of a :class:`~labtrain.physics.network.Network` is a two-terminal element
whose current ``i_e`` (flowing tail -> head through the element) depends on
its voltage drop ``dv_e = v_tail - v_head`` only.  Four kinds
(:data:`EDGE_KINDS`):

``"linear"``
    ``i = g dv``; the conductance ``g`` (S) is trainable, bounds from the
    network's ``g_min_s`` / ``g_max_s``.
``"diode"``
    Shockley diode, anode at the tail: ``i = I_s (exp(dv_d / (n V_T)) - 1) +
    g_p dv`` with ``dv_d = dv - i R_s`` (series resistance ``R_s`` >= 0, solved in
    closed form with the Lambert W function) and a parallel conductance
    ``g_p`` >= 0.  Fixed.  Without series resistance, the exponential is
    continued by its tangent beyond ``max_current_a`` (default 1 A, far outside
    any bench operating point) so that no Newton trial point overflows.
``"ideal_diode"``
    Piecewise-linear diode, anode at the tail: ``i = g_on h(dv - V_on) + g_off
    dv`` with ``h`` the hinge ``max(x, 0)`` rounded over ``smoothing_v``
    (``h = x^2 / (2 delta)`` on ``0 < x < delta``, ``x - delta/2`` above), so the
    current is C^1 and Newton converges quadratically; ``smoothing_v = 0``
    gives the exact hinge.  Fixed.
``"transistor"``
    The voltage-controlled conductance of a contrastive local learning network
    (Dillavou et al. 2024): a symmetric MOSFET whose gate voltage ``V_g`` is the
    trainable parameter.  The gate is referenced to the lower-potential
    terminal (the source, whichever end that is), so with overdrive
    ``V_ov = V_g - V_th`` and ``u = |dv|``:
    ``i = sign(dv) K [F(V_ov) - F(V_ov - u)] + g_off dv``, ``F(x) = max(x, 0)^2 / 2``
    -- triode ``K (V_ov u - u^2/2)`` for ``u < V_ov``, saturation ``K V_ov^2 / 2``
    beyond (``g_off`` keeps the differential conductance positive).  With
    ``smoothing_v`` > 0 the overdrive is ``delta softplus(V_ov / delta)``
    (a subthreshold tail), so ``di/dV_g`` never vanishes.  Odd in ``dv``: source
    and drain are interchangeable.

Physics of the solve.  Every element is monotone (``di/d(dv)`` >= 0), so each
has a convex *co-content* ``Phi_e(dv) = int_0^dv i_e``, and Kirchhoff's current
law at the free nodes is the stationarity condition of

    E(v_F) = sum_e Phi_e(dv_e) - sum_n I_inj,n v_n ,

a convex function of the free node voltages (strictly convex and coercive when
every differential conductance is positive, which ``g_p``, ``g_off`` and the
exponential guarantee).  The steady state is its unique minimiser.  Newton's
direction ``d = -J^{-1} r`` with the Jacobian ``J = B_F diag(g') B_F^T`` (the
Laplacian of the differential conductances) is a descent direction of ``E``;
backtracking until Armijo's condition holds on ``E`` gives global convergence
from any start and quadratic convergence near the solution (Boyd &
Vandenberghe, *Convex Optimization*, section 9.5.3).  The solve is batched:
any leading shape of examples (and time samples), one step size per problem,
dense batched LU for small networks and, for larger ones, one block-diagonal
sparse factorisation of the whole batch through the solver layer
(:class:`labtrain.linalg.batched.BatchedSPD`: ``J`` is symmetric positive
definite, so sparse Cholesky -- CHOLMOD when installed, else SuperLU without
pivoting -- with one fill-reducing ordering and symbolic analysis of the
Jacobian pattern and one numeric factorisation per Newton step).  Convergence: the KCL residual of every free node below
``tol_a + rtol * (sum of |currents| at that node)`` and the next Newton
correction below ``tol_v`` (then applied) -- or below what round-off of the
node's currents allows, for a node held only by exponential tails; otherwise
:class:`SteadyStateError`.  For sample series (``chord=True``) the Jacobian at
each series' start is inverted (small networks) or factored (large ones) once
and reused for every sample while it contracts fast.

Monotone networks cannot compute XOR from two inputs.  With voltage sources
on the inputs, ``dv_F/dv_in = J_FF^{-1} (-J_F,in)``, and ``J_FF`` is an
M-matrix (positive diagonal, non-positive off-diagonal), so its inverse is
entrywise non-negative: every node voltage is non-decreasing in every input.
A gate with ``f(0,0) < f(0,1) > f(1,1)`` therefore needs the mirrored inputs
``1 - x`` (``complementary_inputs`` of :func:`labtrain.training.tasks.make_task`);
:func:`xor_diode_network` is built for that drive.

Exact gradient.  With the free state ``v`` and the adjoint ``J u = P_O^T (v_O -
t) / B`` on the linearised network, ``dC/dtheta_e = -sum_b (B^T u)_e di_e/dtheta_e``
(``di/dg = dv`` for linear edges, ``di/dV_g`` for transistor edges).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from labtrain.linalg import NotPositiveDefiniteError, check_solver, csc_assembly
from labtrain.linalg.batched import BatchedSPD, BatchedFactor
from labtrain.physics.network import DEFAULT_G_MAX_S, DEFAULT_G_MIN_S, Network, NetworkError, NetworkTerminals
from labtrain.physics.readouts import EdgeDrops

__all__ = ["EDGE_KINDS", "TRAINABLE_KINDS", "NonlinearEdges", "NonlinearResistorNetwork", "NonlinearSteadyState",
           "SteadyStateError", "diode_network", "xor_diode_network", "THERMAL_VOLTAGE_V"]

EDGE_KINDS = ("linear", "diode", "ideal_diode", "transistor")
#: kinds with a trainable parameter: conductance (S) for linear edges, gate voltage (V) for transistors
TRAINABLE_KINDS = ("linear", "transistor")
THERMAL_VOLTAGE_V = 0.025852  #: k T / q at 300 K

# Per-kind parameters and defaults (all SI; names say the unit).
_DEFAULTS: dict[str, dict[str, float]] = {
    "diode": {"saturation_current_a": 1e-12, "ideality": 1.0, "thermal_voltage_v": THERMAL_VOLTAGE_V,
              "series_ohm": 0.0, "parallel_s": 0.0, "max_current_a": 1.0},
    "ideal_diode": {"on_s": 1e-3, "off_s": 1e-8, "on_v": 0.3, "smoothing_v": 0.01},
    "transistor": {"gain_a_per_v2": 1e-3, "threshold_v": 0.5, "off_s": 1e-8, "smoothing_v": 0.02,
                   "gate_min_v": 0.6, "gate_max_v": 3.0},
}


class SteadyStateError(RuntimeError):
    """The Newton solve did not reach the KCL tolerance."""


# ------------------------------------------------------------------ edge description
@dataclass(frozen=True, eq=False)
class NonlinearEdges:
    """Kind and fixed parameters of every edge of a network.

    Parameters
    ----------
    kinds : sequence of str, length n_edges
        One of :data:`EDGE_KINDS` per edge.
    params : dict of str -> ndarray (n_edges,)
        Per-edge values of the kinds' parameters (NaN or ignored where an
        edge is of another kind); missing keys take the defaults:

        * diode: ``saturation_current_a`` (1e-12), ``ideality`` (1),
          ``thermal_voltage_v`` (0.025852), ``series_ohm`` (0), ``parallel_s``
          (0), ``max_current_a`` (1, tangent continuation when ``series_ohm = 0``);
        * ideal_diode: ``on_s`` (1e-3), ``off_s`` (1e-8), ``on_v`` (0.3),
          ``smoothing_v`` (0.01);
        * transistor: ``gain_a_per_v2`` (1e-3), ``threshold_v`` (0.5), ``off_s``
          (1e-8), ``smoothing_v`` (0.02), ``gate_min_v`` (0.6), ``gate_max_v`` (3.0).

    Build with :meth:`uniform` or :meth:`from_kinds`; every value is validated.
    """

    kinds: tuple[str, ...]
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kinds = tuple(str(k) for k in self.kinds)
        bad = [k for k in kinds if k not in EDGE_KINDS]
        if bad:
            raise ValueError(f"edge {kinds.index(bad[0])} has unknown kind {bad[0]!r}; expected one of {EDGE_KINDS}")
        m = len(kinds)
        kind_array = np.array(kinds, dtype=object if not kinds else None)
        object.__setattr__(self, "_kind_array", kind_array)
        object.__setattr__(self, "_derived", {})  # per-kind indices and the element tables, built once
        known = {name for d in _DEFAULTS.values() for name in d}
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise ValueError(f"unknown edge parameter {unknown[0]!r}; known: {sorted(known)}")
        full: dict[str, np.ndarray] = {}
        for kind, defaults in _DEFAULTS.items():
            for name, value in defaults.items():
                given = self.params.get(name, value)
                arr = np.broadcast_to(np.asarray(given, float), (m,)).copy()
                mask = kind_array == kind
                if name in full:  # shared name (off_s, smoothing_v): keep the other kind's values
                    full[name] = np.where(mask, arr, full[name])
                else:
                    full[name] = np.where(mask, arr, value)
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "params", full)
        self._validate()

    def _validate(self) -> None:
        k = self._kind_array
        p = self.params
        checks = [
            ("diode", "saturation_current_a", lambda x: x > 0, "> 0"),
            ("diode", "ideality", lambda x: x > 0, "> 0"),
            ("diode", "thermal_voltage_v", lambda x: x > 0, "> 0"),
            ("diode", "series_ohm", lambda x: x >= 0, ">= 0"),
            ("diode", "parallel_s", lambda x: x >= 0, ">= 0"),
            ("diode", "max_current_a", lambda x: x > 0, "> 0"),
            ("ideal_diode", "on_s", lambda x: x > 0, "> 0"),
            ("ideal_diode", "off_s", lambda x: x >= 0, ">= 0"),
            ("ideal_diode", "smoothing_v", lambda x: x >= 0, ">= 0"),
            ("transistor", "gain_a_per_v2", lambda x: x > 0, "> 0"),
            ("transistor", "off_s", lambda x: x >= 0, ">= 0"),
            ("transistor", "smoothing_v", lambda x: x >= 0, ">= 0"),
        ]
        for kind, name, ok, what in checks:
            idx = np.flatnonzero(k == kind)
            vals = p[name][idx]
            good = np.isfinite(vals) & ok(vals)
            if not np.all(good):
                e = int(idx[~good][0])
                raise ValueError(f"edge {e} ({kind}): {name} must be finite and {what}, got {p[name][e]}")
        for name in ("on_v", "threshold_v"):
            if not np.all(np.isfinite(p[name])):
                raise ValueError(f"{name} must be finite on every edge")
        for e in np.flatnonzero(k == "transistor"):
            lo, hi = p["gate_min_v"][e], p["gate_max_v"][e]
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"edge {e} (transistor): need finite gate_min_v <= gate_max_v, got [{lo}, {hi}]")

    # ------------------------------------------------------------ builders
    @classmethod
    def uniform(cls, n_edges: int, kind: str = "linear", **params: float) -> "NonlinearEdges":
        """Every edge of one kind, with the same parameters."""
        return cls((kind,) * int(n_edges), params)

    @classmethod
    def from_kinds(cls, kinds: Sequence[str], **params: float | np.ndarray) -> "NonlinearEdges":
        """Edges of the given kinds; ``params`` as scalars or per-edge arrays."""
        return cls(tuple(kinds), params)

    # ------------------------------------------------------------ structure
    @property
    def n_edges(self) -> int:
        return len(self.kinds)

    def indices(self, kind: str) -> np.ndarray:
        """Edge indices of one kind, increasing (a read-only array, computed once)."""
        key = ("indices", kind)
        if key not in self._derived:
            idx = np.flatnonzero(self._kind_array == kind)
            idx.flags.writeable = False
            self._derived[key] = idx
        return self._derived[key]

    def elements(self) -> "_Elements":
        """The vectorised element tables of these edges (built once)."""
        if "elements" not in self._derived:
            self._derived["elements"] = _Elements(self)
        return self._derived["elements"]

    @property
    def parameter_edges(self) -> np.ndarray:
        """Edge index of every trainable parameter: linear edges first, then transistors (each increasing)."""
        return np.r_[self.indices("linear"), self.indices("transistor")].astype(np.int64)

    def describe(self) -> dict:
        """JSON-friendly summary: count per kind and the parameters of each kind present."""
        out: dict = {"counts": {k: int(len(self.indices(k))) for k in EDGE_KINDS}}
        for kind, defaults in _DEFAULTS.items():
            idx = self.indices(kind)
            if len(idx):
                out[kind] = {name: (float(self.params[name][idx[0]])
                                    if np.all(self.params[name][idx] == self.params[name][idx[0]])
                                    else self.params[name][idx].tolist()) for name in defaults}
        return out


# ------------------------------------------------------------------ element physics
def _lambertw_exp(z: np.ndarray) -> np.ndarray:
    """``W(exp(z))`` (principal branch) without forming ``exp(z)``: Newton on ``w + log w = z``."""
    z = np.asarray(z, float)
    with np.errstate(over="ignore", divide="ignore"):
        small = z <= 1.0
        w = np.where(small, np.log1p(np.exp(np.minimum(z, 1.0))), 0.0)
        zl = np.maximum(z, 1.0)
        w = np.where(small, w, zl - np.log(zl))
        w = np.maximum(w, 1e-300)
        for _ in range(8):
            w = w - (w + np.log(w) - z) * w / (w + 1.0)
            w = np.maximum(w, 1e-300)
    return w


def _hinge(x: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rounded hinge ``h``, its slope and its integral ``H`` (``H(x) = int_{-inf}^x h``)."""
    d = np.where(delta > 0, delta, 1.0)
    pos = x >= delta
    mid = (x > 0) & ~pos
    xp = np.maximum(x, 0.0)
    h = np.where(pos, x - 0.5 * delta, np.where(mid, xp**2 / (2 * d), 0.0))
    slope = np.where(pos, 1.0, np.where(mid, xp / d, 0.0))
    big = np.where(pos, 0.5 * x**2 - 0.5 * delta * x + delta**2 / 6.0, np.where(mid, xp**3 / (6 * d), 0.0))
    return h, slope, big


def _contiguous(index: np.ndarray) -> np.ndarray | slice:
    """``index`` as ``slice(a, b)`` when it is exactly ``a, a + 1, ..., b - 1`` (non-empty); else unchanged."""
    if len(index) and index[-1] - index[0] + 1 == len(index) and np.all(np.diff(index) == 1):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


class _Elements:
    """Vectorised I-V of every edge: currents, differential conductances, co-contents, parameter slopes."""

    def __init__(self, edges: NonlinearEdges) -> None:
        p = edges.params
        self.n_edges = edges.n_edges
        self.lin = edges.indices("linear")
        #: the linear edges as a slice when they are one contiguous run (every layered diode network): views
        #: instead of copies of the (edges x examples) arrays in the hot paths
        self.lin_at = _contiguous(self.lin)
        d = edges.indices("diode")
        rs = p["series_ohm"][d]
        self.dio = d[rs == 0]
        self.dio_s = d[rs > 0]
        self.idd = edges.indices("ideal_diode")
        self.tr = edges.indices("transistor")
        row = lambda name, idx: p[name][idx][:, None]  # noqa: E731 (column: edges run down axis 0)
        # plain diodes
        self.d_is = row("saturation_current_a", self.dio)
        self.d_nvt = row("ideality", self.dio) * row("thermal_voltage_v", self.dio)
        self.d_gp = row("parallel_s", self.dio)
        self.d_xc = np.log1p(row("max_current_a", self.dio) / self.d_is)
        # series-resistance diodes
        self.s_is = row("saturation_current_a", self.dio_s)
        self.s_nvt = row("ideality", self.dio_s) * row("thermal_voltage_v", self.dio_s)
        self.s_rs = row("series_ohm", self.dio_s)
        self.s_gp = row("parallel_s", self.dio_s)
        self.s_theta = self.s_is * self.s_rs / self.s_nvt
        # ideal diodes
        self.i_on, self.i_off = row("on_s", self.idd), row("off_s", self.idd)
        self.i_von, self.i_delta = row("on_v", self.idd), row("smoothing_v", self.idd)
        self.i_h0 = _hinge(-self.i_von, self.i_delta)[2]
        # transistors
        self.t_k, self.t_vth = row("gain_a_per_v2", self.tr), row("threshold_v", self.tr)
        self.t_off, self.t_delta = row("off_s", self.tr), row("smoothing_v", self.tr)

    def overdrive(self, gate_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Effective overdrive ``V_eff`` (V) of every transistor and ``dV_eff/dV_g``."""
        x = np.asarray(gate_v, float).reshape(-1, 1) - self.t_vth
        delta = self.t_delta
        soft = delta > 0
        d = np.where(soft, delta, 1.0)
        veff = np.where(soft, d * np.logaddexp(0.0, x / d), np.maximum(x, 0.0))
        slope = np.where(soft, expit(x / d), (x > 0).astype(float))
        return veff, slope

    def evaluate(self, dv: np.ndarray, conductance_s: np.ndarray, gate_v: np.ndarray,
                 phi: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Currents (A), differential conductances (S) and, with ``phi``, co-contents (V*A) of drops ``dv``.

        Edge-major: ``dv`` has shape ``(n_edges, N)``; so have the results.
        """
        cur = np.empty_like(dv)
        gd = np.empty_like(dv)
        co = np.empty_like(dv) if phi else None
        with np.errstate(over="ignore", invalid="ignore"):
            if len(self.lin):
                x = dv[self.lin_at]
                g = conductance_s[:, None]
                if isinstance(self.lin_at, slice):
                    np.multiply(g, x, out=cur[self.lin_at])
                else:
                    cur[self.lin_at] = g * x
                gd[self.lin_at] = g
                if phi:
                    co[self.lin_at] = 0.5 * g * x**2
            if len(self.dio):
                v = dv[self.dio]
                x = v / self.d_nvt
                xc = self.d_xc
                ex = np.exp(np.minimum(x, xc))
                over = np.maximum(x - xc, 0.0)
                cur[self.dio] = self.d_is * (ex * (1.0 + over) - 1.0) + self.d_gp * v
                gd[self.dio] = self.d_is * ex / self.d_nvt + self.d_gp
                if phi:
                    xm = np.minimum(x, xc)
                    base = self.d_is * self.d_nvt * (np.expm1(xm) - xm)
                    co[self.dio] = (base + self.d_is * self.d_nvt * (np.expm1(xc) * over + 0.5 * ex * over**2)
                                       + 0.5 * self.d_gp * v**2)
            if len(self.dio_s):
                v = dv[self.dio_s]
                th = self.s_theta
                w = _lambertw_exp(np.log(th) + th + v / self.s_nvt)
                i = self.s_nvt / self.s_rs * (w - th)
                cur[self.dio_s] = i + self.s_gp * v
                gd[self.dio_s] = w / (self.s_rs * (1.0 + w)) + self.s_gp
                if phi:
                    co[self.dio_s] = (-self.s_is * v + 0.5 * self.s_rs * i**2 + self.s_is * self.s_rs * i
                                         + self.s_nvt * i + 0.5 * self.s_gp * v**2)
            if len(self.idd):
                v = dv[self.idd]
                h, slope, big = _hinge(v - self.i_von, self.i_delta)
                cur[self.idd] = self.i_on * h + self.i_off * v
                gd[self.idd] = self.i_on * slope + self.i_off
                if phi:
                    co[self.idd] = self.i_on * (big - self.i_h0) + 0.5 * self.i_off * v**2
            if len(self.tr):
                v = dv[self.tr]
                veff, _ = self.overdrive(gate_v)
                u = np.abs(v)
                q = np.maximum(veff - u, 0.0)
                cur[self.tr] = np.sign(v) * self.t_k * 0.5 * (veff**2 - q**2) + self.t_off * v
                gd[self.tr] = self.t_k * q + self.t_off
                if phi:
                    co[self.tr] = (self.t_k * (0.5 * veff**2 * u + (q**3 - veff**3) / 6.0)
                                      + 0.5 * self.t_off * v**2)
        return cur, gd, co

    def parameter_slope(self, dv: np.ndarray, conductance_s: np.ndarray, gate_v: np.ndarray) -> np.ndarray:
        """``di_e/dtheta_e`` of every trainable edge, ``(N, n_params)``: linear edges, then transistors."""
        out = np.empty(dv.shape[:-1] + (len(self.lin) + len(self.tr),))
        out[..., :len(self.lin)] = dv[..., self.lin_at]
        if len(self.tr):
            v = dv[..., self.tr]
            veff, dveff = self.overdrive(gate_v)
            veff, dveff = veff[:, 0], dveff[:, 0]
            q = np.maximum(veff - np.abs(v), 0.0)
            out[..., len(self.lin):] = np.sign(v) * self.t_k[:, 0] * (veff - q) * dveff
        return out

    def energy_parameter_slope(self, dv: np.ndarray, conductance_s: np.ndarray, gate_v: np.ndarray) -> np.ndarray:
        """``dPhi_e/dtheta_e`` of every trainable edge, ``(..., n_params)``: linear edges, then transistors.

        Linear edge: ``Phi = g dv^2 / 2``, so ``dPhi/dg = dv^2 / 2`` (V^2).  Transistor:
        ``Phi = k (V_eff^2 |v| / 2 + (q^3 - V_eff^3) / 6) + g_off v^2 / 2`` with ``q = max(V_eff - |v|, 0)``,
        so ``dPhi/dV_eff = k |v|^2 / 2`` below saturation (``q > 0``) and ``k (V_eff |v| - V_eff^2 / 2)`` in it,
        times ``dV_eff/dV_g`` (A).
        """
        out = np.empty(dv.shape[:-1] + (len(self.lin) + len(self.tr),))
        lin = dv[..., self.lin_at]
        np.multiply(lin, lin, out=out[..., :len(self.lin)])
        out[..., :len(self.lin)] *= 0.5
        if len(self.tr):
            u = np.abs(dv[..., self.tr])
            veff, dveff = self.overdrive(gate_v)
            veff, dveff = veff[:, 0], dveff[:, 0]
            k = self.t_k[:, 0]
            linear_region = veff > u
            d_veff = np.where(linear_region, 0.5 * k * u**2, k * (veff * u - 0.5 * veff**2))
            out[..., len(self.lin):] = d_veff * dveff
        return out


# ------------------------------------------------------------------ solver structure
class _Layout:
    """Topology-only pieces of the solve for one choice of fixed nodes (outputs free or clamped)."""

    def __init__(self, network: Network, clamped: bool) -> None:
        n, m = network.n_nodes, network.n_edges
        fixed = list(network.grounds) + list(network.inputs) + (list(network.outputs) if clamped else [])
        free_mask = np.ones(n, bool)
        free_mask[fixed] = False
        self.free = np.flatnonzero(free_mask)
        nf = len(self.free)
        self.nf = nf
        self.position = np.full(n, -1)
        self.position[self.free] = np.arange(nf)
        inc = network.incidence().tocsr()
        self.b_free = inc[self.free].tocsr()            # (nf, m)
        self.b_free_t = self.b_free.T.tocsr()            # (m, nf)
        self.abs_b_free = abs(self.b_free).tocsr()
        self.out_pos = self.position[list(network.outputs)]  # -1 when clamped
        self.b_out = inc[list(network.outputs)].tocsr()
        a, b = network.edges[:, 0], network.edges[:, 1]
        pa, pb = self.position[a], self.position[b]
        ids = np.arange(m)
        rows = np.r_[pa, pb, pa, pb]
        cols = np.r_[pa, pb, pb, pa]
        sign = np.r_[np.ones(2 * m), -np.ones(2 * m)]
        edge = np.r_[ids, ids, ids, ids]
        keep = (rows >= 0) & (cols >= 0)
        self.rows, self.cols, self.sign, self.edge = rows[keep], cols[keep], sign[keep], edge[keep]
        self._dense_op: sp.csr_matrix | None = None
        self.n_edges = m
        self._batched: dict[str, BatchedSPD] = {}
        self._pattern: tuple[np.ndarray, np.ndarray, sp.csr_matrix] | None = None

    @property
    def dense_op(self) -> sp.csr_matrix:
        """Dense assembly map: flat ``row * nf + col`` <- ``sum sign * g'_edge`` (small networks only)."""
        if self._dense_op is None:
            nf = self.nf
            self._dense_op = sp.csr_matrix((self.sign, (self.rows * nf + self.cols, self.edge)),
                                           shape=(nf * nf, self.n_edges))
        return self._dense_op

    def pattern(self) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
        """CSC ``(indptr, indices)`` of one Jacobian block and the map ``g' -> data`` (``data = op @ g'``)."""
        if self._pattern is None:
            self._pattern = csc_assembly(self.rows, self.cols, self.sign, self.edge, self.nf, self.n_edges)
        return self._pattern

    def batched(self, solver: str) -> BatchedSPD:
        """The :class:`~labtrain.linalg.batched.BatchedSPD` of the Jacobian pattern (built once per solver)."""
        got = self._batched.get(solver)
        if got is None:
            indptr, indices, _ = self.pattern()
            got = self._batched.setdefault(solver, BatchedSPD(indptr, indices, self.nf, solver=solver))
        return got


class _ChordOperator:
    """``J_k^{-1}`` of ``G`` start Jacobians, applied to blocks ``(G, nf, T)``: dense inverses or a batched factor."""

    def __init__(self, n_groups: int, inverse: np.ndarray | None = None, factor: BatchedFactor | None = None) -> None:
        self.n_groups = n_groups
        self.inverse = inverse
        self.factor = factor
        self.contraction = 0.01 if inverse is not None else 0.1  # residual ratio per step that keeps the chord

    def apply(self, blocks: np.ndarray) -> np.ndarray:
        if self.inverse is not None:
            return np.matmul(self.inverse, blocks)
        return self.factor.solve(blocks)


_LAYOUTS: "weakref.WeakKeyDictionary[Network, dict[bool, _Layout]]" = weakref.WeakKeyDictionary()


def _layout(network: Network, clamped: bool) -> _Layout:
    per = _LAYOUTS.setdefault(network, {})
    if clamped not in per:
        per[clamped] = _Layout(network, clamped)
    return per[clamped]


# ------------------------------------------------------------------ results
@dataclass
class NonlinearSteadyState:
    """A batch of DC steady states (any leading shape ``S``).

    Attributes
    ----------
    node_v : ndarray, shape S + (n_nodes,)
    edge_drop_v : ndarray, shape S + (n_edges,)
        ``v_tail - v_head``.
    edge_current_a : ndarray, shape S + (n_edges,)
        Current through each element from tail to head.
    conductance_s : ndarray, shape S + (n_edges,)
        Differential conductance ``di/d(dv)`` at the operating point.
        ``edge_current_a`` and ``conductance_s`` may be given as one callable
        returning both: they are then evaluated on first use (an EP step reads
        only the drops).
    clamp_current_a : ndarray, shape S + (n_outputs,), or None
        Current the output clamps inject (clamped solves only).
    iterations : int
        Newton iterations of the slowest problem.
    max_residual_a : float
        Largest KCL residual left at a free node.
    """

    network: Network
    node_v: np.ndarray
    edge_drop_v: np.ndarray
    _edge_current_a: "np.ndarray | Callable[[], tuple[np.ndarray, np.ndarray]]"
    _conductance_s: np.ndarray | None
    clamp_current_a: np.ndarray | None
    iterations: int
    max_residual_a: float

    def _evaluate_elements(self) -> None:
        if callable(self._edge_current_a):
            self._edge_current_a, self._conductance_s = self._edge_current_a()

    @property
    def edge_current_a(self) -> np.ndarray:
        """Current through each element from tail to head (A), shape S + (n_edges,)."""
        self._evaluate_elements()
        return self._edge_current_a

    @property
    def conductance_s(self) -> np.ndarray:
        """Differential conductance ``di/d(dv)`` of each element at the operating point (S)."""
        self._evaluate_elements()
        return self._conductance_s

    @property
    def output_v(self) -> np.ndarray:
        """Output-node voltages, shape S + (n_outputs,)."""
        return self.node_v[..., list(self.network.outputs)]

    @property
    def n_examples(self) -> int:
        return int(np.prod(self.node_v.shape[:-1]))

    @property
    def edge_drops(self) -> EdgeDrops:
        """Edge drops as a dense :class:`EdgeDrops` (for a 2-D batch)."""
        return EdgeDrops.dense(self.edge_drop_v.reshape(-1, self.edge_drop_v.shape[-1]))


# ------------------------------------------------------------------ model
class NonlinearResistorNetwork(NetworkTerminals):
    """Nonlinear resistive network at fixed parameters.

    Parameters
    ----------
    network : Network
        Topology and terminals (inputs are ideal voltage sources, grounds 0 V).
        Its conductance bounds apply to the linear edges.
    edges : NonlinearEdges, str or sequence of str
        Kind and fixed parameters of every edge (a kind name: every edge of
        that kind with default parameters).
    parameters : ndarray, optional
        Trainable parameters in the order of :attr:`parameter_edges`: the
        conductances (S) of the linear edges, then the gate voltages (V) of
        the transistor edges, each in increasing edge order.  Default: the
        geometric mean of each linear edge's bounds, the middle of each gate
        range.  Values are clipped to the bounds.
    tol_a, rtol : float
        KCL tolerance at every free node: ``tol_a + rtol * sum |currents at the node|``.
    tol_v : float
        ... and the Newton correction of every free node below ``tol_v`` volts
        (a node joined only by nearly non-conducting edges can meet the
        current tolerance while its voltage is still off).
    max_iter : int
        Newton iterations per solve.
    dense_max_nodes : int
        Up to this many free nodes the Jacobians are solved as a dense batch;
        above it, as one block-diagonal sparse factorisation (one
        fill-reducing ordering and symbolic analysis of the Jacobian pattern,
        one numeric factorisation per Newton step for the whole batch;
        :class:`~labtrain.linalg.batched.BatchedSPD`).
    max_chunk_elements : int
        Memory bound: problems are solved in chunks whose Jacobians hold at
        most this many numbers.
    solver : {"auto", "cholmod", "superlu"}
        Sparse factorisation of the Jacobians above ``dense_max_nodes``:
        ``auto`` is sparse Cholesky (CHOLMOD, scikit-sparse) when installed,
        else SuperLU; ``cholmod`` without scikit-sparse falls back to SuperLU
        with a logged note.
    fold_sources : bool or None
        Solve with the linear edges between a source (input or ground) and
        a free node folded into one Norton equivalent per free node (a
        conductance ``G_j = sum g`` from a source at ``sum g v_s / G_j``):
        exact up to round-off, and the Newton steps then never touch those
        edges (a layered network's input layer: 784 x 100 edges become 100).
        ``None`` (default): fold when it removes at least 1,000 edges and
        half of all edges; ``True``: whenever possible; ``False``: never.
    """

    def __init__(self, network: Network, edges: NonlinearEdges | str | Sequence[str],
                 parameters: np.ndarray | None = None, *, tol_a: float = 1e-15, rtol: float = 1e-11,
                 tol_v: float = 1e-12, max_iter: int = 100, dense_max_nodes: int = 48,
                 max_chunk_elements: int = 4_000_000, solver: str = "auto",
                 fold_sources: bool | None = None) -> None:
        if isinstance(edges, str):
            edges = NonlinearEdges.uniform(network.n_edges, edges)
        elif not isinstance(edges, NonlinearEdges):
            edges = NonlinearEdges.from_kinds(edges)
        if edges.n_edges != network.n_edges:
            raise ValueError(f"edge description has {edges.n_edges} edges, the network {network.n_edges}")
        if not (tol_a >= 0 and rtol >= 0 and tol_a + rtol > 0):
            raise ValueError(f"need tol_a >= 0 and rtol >= 0, not both 0; got {tol_a}, {rtol}")
        if not tol_v > 0:
            raise ValueError(f"tol_v must be > 0, got {tol_v}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        if check_solver(solver) == "cg":
            raise ValueError("solver 'cg' is not available for nonlinear networks (every Newton step needs a "
                             "tight solve of a new Jacobian per problem); use 'auto', 'cholmod' or 'superlu'")
        self.solver = solver
        self.network = network
        self.edges = edges
        self.tol_a, self.rtol, self.tol_v, self.max_iter = float(tol_a), float(rtol), float(tol_v), int(max_iter)
        self.dense_max_nodes = int(dense_max_nodes)
        self.max_chunk_elements = int(max_chunk_elements)
        self._el = edges.elements()
        self.parameter_edges = edges.parameter_edges
        lin, tr = edges.indices("linear"), edges.indices("transistor")
        self.n_conductances = len(lin)
        self.lower = np.r_[network.g_min_s[lin], edges.params["gate_min_v"][tr]]
        self.upper = np.r_[network.g_max_s[lin], edges.params["gate_max_v"][tr]]
        if parameters is None:
            parameters = np.r_[np.sqrt(network.g_min_s[lin] * network.g_max_s[lin]),
                               0.5 * (self.lower[len(lin):] + self.upper[len(lin):])]
        theta = np.asarray(parameters, float)
        if theta.shape != (len(self.parameter_edges),):
            raise ValueError(f"expected {len(self.parameter_edges)} parameters ({len(lin)} conductances, "
                             f"{len(tr)} gate voltages), got shape {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise ValueError("parameters must be finite")
        self.parameters = np.clip(theta, self.lower, self.upper)
        if np.any(self.parameters[:len(lin)] <= 0):
            raise ValueError("linear-edge conductances must be > 0")
        self.fold_sources = fold_sources
        self._fold: "_SourceFold | None | bool" = False  # not built yet

    # ------------------------------------------------------------ shape
    @property
    def n_parameters(self) -> int:
        return len(self.parameter_edges)

    @property
    def conductance_s(self) -> np.ndarray:
        """Conductances of the linear edges (S)."""
        return self.parameters[:self.n_conductances]

    @property
    def gate_v(self) -> np.ndarray:
        """Gate voltages of the transistor edges (V)."""
        return self.parameters[self.n_conductances:]

    def with_parameters(self, parameters: np.ndarray) -> "NonlinearResistorNetwork":
        """The same network at other parameters (same solver settings)."""
        return NonlinearResistorNetwork(self.network, self.edges, parameters, tol_a=self.tol_a, rtol=self.rtol,
                                        tol_v=self.tol_v, max_iter=self.max_iter, dense_max_nodes=self.dense_max_nodes,
                                        max_chunk_elements=self.max_chunk_elements, solver=self.solver,
                                        fold_sources=self.fold_sources)

    def source_fold(self) -> "_SourceFold | None":
        """The Norton fold of the source edges used by :meth:`steady_state` (None: solved unfolded)."""
        if self._fold is False:
            self._fold = None if self.fold_sources is False else _SourceFold.build(self, self.fold_sources is True)
        return self._fold

    # ------------------------------------------------------------ element access
    def edge_characteristics(self, edge_drop_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Current (A) and differential conductance (S) of every edge at drops ``(..., n_edges)``."""
        dv = np.asarray(edge_drop_v, float)
        if dv.shape[-1:] != (self.network.n_edges,):
            raise ValueError(f"edge_drop_v must end in {self.network.n_edges} edges, got shape {dv.shape}")
        flat = dv.reshape(-1, dv.shape[-1]).T
        cur, gd, _ = self._el.evaluate(flat, self.conductance_s, self.gate_v)
        return cur.T.reshape(dv.shape), gd.T.reshape(dv.shape)

    def co_content(self, edge_drop_v: np.ndarray) -> np.ndarray:
        """Co-content ``int_0^dv i`` (W, i.e. V*A) of every edge at drops ``(..., n_edges)``."""
        dv = np.asarray(edge_drop_v, float)
        flat = dv.reshape(-1, dv.shape[-1]).T
        return self._el.evaluate(flat, self.conductance_s, self.gate_v, phi=True)[2].T.reshape(dv.shape)

    def current_parameter_derivative(self, edge_drop_v: np.ndarray) -> np.ndarray:
        """``di_e/dtheta`` of every trainable edge at drops ``(..., n_edges)``, shape ``(..., n_parameters)``.

        Linear edges: ``di/dg = dv`` (V); transistors: ``di/dV_g`` (S).  A
        local rule that measures the edge's error response turns it into
        ``dC/dtheta`` with this factor.
        """
        dv = np.asarray(edge_drop_v, float)
        return self._el.parameter_slope(dv, self.conductance_s, self.gate_v)

    def energy_parameter_derivative(self, edge_drop_v: np.ndarray) -> np.ndarray:
        """``dPhi_e/dtheta`` of every trainable edge's co-content at drops ``(..., n_edges)``, ``(..., n_parameters)``.

        The local quantity of the two-phase (EP / coupled-learning) rules: the total co-content
        ``E = sum_e Phi_e`` is the network's energy function, and
        ``dC/dtheta ~ (1/beta) [dE/dtheta(s_beta) - dE/dtheta(s_0)]``.  Linear edges: ``dv^2 / 2`` (V^2);
        transistors: ``dPhi/dV_g`` (A).
        """
        dv = np.asarray(edge_drop_v, float)
        return self._el.energy_parameter_slope(dv, self.conductance_s, self.gate_v)

    # ------------------------------------------------------------ solve
    def steady_state(self, inputs: np.ndarray, output_current_a: np.ndarray | None = None,
                     output_clamp_v: np.ndarray | None = None, *, start_v: np.ndarray | None = None,
                     chord: bool = False, max_iter: int | None = None) -> NonlinearSteadyState:
        """Steady state for DC drives of any leading shape.

        Parameters
        ----------
        inputs : ndarray, shape S + (n_inputs,)
            Input voltages (V).  ``S`` is any leading shape (examples, samples...).
        output_current_a : ndarray, shape broadcastable to S + (n_outputs,), optional
            Current injected into each output node (A).
        output_clamp_v : ndarray, shape broadcastable to S + (n_outputs,), optional
            Hold the outputs at these voltages; exclusive with ``output_current_a``.
        start_v : ndarray, shape broadcastable to S + (n_nodes,), optional
            Initial guess of the node voltages (warm start; default 0 V).
        chord : bool
            Chord Newton for sample series: ``start_v`` must then have shape
            ``S[:-1] + (1, n_nodes)`` -- one start per series along the last
            leading axis (e.g. an example's DC operating point for all its time
            samples).  The Jacobian at each series' start is inverted once and
            reused for every sample's Newton steps (still with the co-content
            line search and the same KCL tolerance) while every residual
            shrinks at least 100-fold per step; then full Newton.  Fast when the
            samples stay near the start (tones small against the scale of the
            nonlinearity, e.g. ``n V_T`` for a diode).
        max_iter : int, optional
            Override the model's Newton iteration limit.

        Raises
        ------
        SteadyStateError
            If a problem does not reach the KCL tolerance within ``max_iter``.
        """
        net = self.network
        x = np.asarray(inputs, float)
        if x.ndim == 0 or x.shape[-1] != self.n_inputs:
            raise ValueError(f"inputs must end in {self.n_inputs} input voltages, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs contain NaN or inf")
        fold = self.source_fold()
        if fold is not None:
            return fold.steady_state(x, output_current_a, output_clamp_v, start_v, chord, max_iter)
        lead = x.shape[:-1]
        clamped = output_clamp_v is not None
        if clamped and output_current_a is not None:
            raise ValueError("give output_current_a or output_clamp_v, not both")
        lay = _layout(net, clamped)
        n_out = self.n_outputs
        flat_x = x.reshape(-1, self.n_inputs)
        n_prob = flat_x.shape[0]
        fixed_v = np.zeros((n_prob, net.n_nodes))
        fixed_v[:, list(net.inputs)] = flat_x
        inj = None
        if clamped:
            c = np.broadcast_to(np.asarray(output_clamp_v, float), lead + (n_out,)).reshape(-1, n_out)
            if not np.all(np.isfinite(c)):
                raise ValueError("output_clamp_v contains NaN or inf")
            fixed_v[:, list(net.outputs)] = c
        elif output_current_a is not None:
            cur = np.broadcast_to(np.asarray(output_current_a, float), lead + (n_out,)).reshape(-1, n_out)
            if not np.all(np.isfinite(cur)):
                raise ValueError("output_current_a contains NaN or inf")
            inj = np.zeros((n_prob, lay.nf))
            inj[:, lay.out_pos] = cur
        groups = 1
        if chord:
            if start_v is None or len(lead) < 1 or np.shape(start_v) != lead[:-1] + (1, net.n_nodes):
                raise ValueError(f"chord=True needs start_v of shape {lead[:-1] + (1, net.n_nodes)} "
                                 f"(one start per series along the last leading axis), got {np.shape(start_v)}")
            groups = lead[-1]
        v = fixed_v
        if start_v is not None:
            s = np.broadcast_to(np.asarray(start_v, float), lead + (net.n_nodes,)).reshape(-1, net.n_nodes)
            if not np.all(np.isfinite(s)):
                raise ValueError("start_v contains NaN or inf")
            v = fixed_v.copy()
            v[:, lay.free] = s[:, lay.free]
        limit = self.max_iter if max_iter is None else int(max_iter)
        # Internally node-major: columns are problems.  Chunk so that the Jacobians stay bounded in memory.
        dense = lay.nf <= self.dense_max_nodes
        per = (lay.nf * lay.nf if dense else 8 * lay.nf) + 8 * net.n_edges + 2 * net.n_nodes
        chunk = max(1, self.max_chunk_elements // per)
        chunk = max(1, chunk // groups) * groups  # whole series per chunk
        fixed_t = np.ascontiguousarray(fixed_v.T)
        start_t = np.ascontiguousarray(v[:, lay.free].T)
        inj_t = None if inj is None else np.ascontiguousarray(inj.T)
        node_t = fixed_t.copy()
        e = net.edges
        iters, worst = 0, 0.0
        for lo in range(0, n_prob, chunk):
            hi = min(n_prob, lo + chunk)
            inverse = None
            if chord:
                starts = np.asarray(start_v, float).reshape(-1, net.n_nodes)
                ref = np.ascontiguousarray(starts[lo // groups:hi // groups].T)
                gd0 = self._el.evaluate(ref[e[:, 0]] - ref[e[:, 1]], self.conductance_s, self.gate_v)[1]
                inverse = self._chord_operator(lay, gd0)
            vf, it, res = self._newton(lay, start_t[:, lo:hi], fixed_t[:, lo:hi],
                                       None if inj_t is None else inj_t[:, lo:hi], limit, inverse, groups)
            node_t[lay.free, lo:hi] = vf
            iters, worst = max(iters, it), max(worst, res)
        e = net.edges
        dv = node_t[e[:, 0]] - node_t[e[:, 1]]
        cur, gd, _ = self._el.evaluate(dv, self.conductance_s, self.gate_v)
        clamp_current = None
        if clamped:
            clamp_current = np.asarray(lay.b_out @ cur).T.reshape(lead + (n_out,))
        m = net.n_edges
        return NonlinearSteadyState(net, node_t.T.reshape(lead + (net.n_nodes,)), dv.T.reshape(lead + (m,)),
                                    cur.T.reshape(lead + (m,)), gd.T.reshape(lead + (m,)), clamp_current, iters, worst)

    def _solve(self, lay: _Layout, gd: np.ndarray, r: np.ndarray) -> np.ndarray:
        """``J^{-1} r`` for Jacobians ``B_F diag(gd) B_F^T``; ``gd`` (n_edges, n), ``r`` (nf, n) -> (nf, n)."""
        nf, n = r.shape
        if nf <= self.dense_max_nodes:
            jac = np.asarray(lay.dense_op @ gd).reshape(nf, nf, n).transpose(2, 0, 1)
            try:
                return np.linalg.solve(jac, r.T[..., None])[..., 0].T
            except np.linalg.LinAlgError:
                raise SteadyStateError("singular Jacobian: a free node is joined to the rest only by edges with zero "
                                       "differential conductance (give diodes parallel_s > 0 or off_s > 0)") from None
        return self._factor(lay, gd).solve(np.ascontiguousarray(r.T)).T

    def _factor(self, lay: _Layout, gd: np.ndarray) -> BatchedFactor:
        """Sparse factorisation of the Jacobians of every column of ``gd`` (n_edges, n), as one batch."""
        batched = lay.batched(self.solver)
        try:
            return batched.factor(np.asarray(lay.pattern()[2] @ gd).T)
        except NotPositiveDefiniteError as exc:
            raise SteadyStateError(f"singular Jacobian ({exc}): a free node is joined only by edges with zero "
                                   "differential conductance (give diodes parallel_s > 0 or off_s > 0)") from None

    def _chord_operator(self, lay: _Layout, gd: np.ndarray) -> "_ChordOperator":
        """``J^{-1}`` of each column of differential conductances ``gd`` (n_edges, G), applied to (G, nf, T) blocks.

        Dense inverses up to ``dense_max_nodes`` free nodes, a batched sparse factorisation above.
        """
        nf, n = lay.nf, gd.shape[1]
        if nf > self.dense_max_nodes:
            return _ChordOperator(n, factor=self._factor(lay, gd))
        jac = np.asarray(lay.dense_op @ gd).reshape(nf, nf, n).transpose(2, 0, 1)
        try:
            return _ChordOperator(n, inverse=np.linalg.inv(jac))
        except np.linalg.LinAlgError:
            raise SteadyStateError("singular Jacobian at the chord start: a free node is joined only by edges with "
                                   "zero differential conductance (give diodes parallel_s > 0 or off_s > 0)") from None

    def _newton(self, lay: _Layout, vf: np.ndarray, fixed: np.ndarray, inj: np.ndarray | None,
                max_iter: int, inverse: "_ChordOperator | None" = None,
                series: int = 1) -> tuple[np.ndarray, int, float]:
        """Damped Newton on the co-content for problems in columns: ``vf`` (nf, N), ``fixed`` (n_nodes, N).

        With ``inverse`` (G groups): chord steps with group ``k``'s start Jacobian for problems ``k*series .. (k+1)*series - 1``
        while every residual shrinks at least 100-fold per step, full Newton after.
        """
        vf = np.array(vf, float)
        if lay.nf == 0:
            return vf, 0, 0.0
        tail, head = self.network.edges[:, 0], self.network.edges[:, 1]
        g, vg = self.conductance_s, self.gate_v
        v = fixed.copy()
        v[lay.free] = vf
        dv = v[tail] - v[head]
        cur, gd, co = self._el.evaluate(dv, g, vg, phi=True)
        active = np.arange(vf.shape[1])
        eps = np.finfo(float).eps
        it, worst = 0, 0.0
        use_chord = inverse is not None
        previous = np.full(vf.shape[1], np.inf)  # largest residual per problem at the last step
        stalled = np.zeros(vf.shape[1], np.int64)  # Newton steps in a row, KCL met, that did not shrink the step
        last_step = np.full(vf.shape[1], np.inf)
        while True:
            r = np.asarray(lay.b_free @ cur)
            scale = np.asarray(lay.abs_b_free @ np.abs(cur))
            inj_a = None
            if inj is not None:
                inj_a = inj[:, active]
                r -= inj_a
                scale += np.abs(inj_a)
            ok = np.all(np.abs(r) <= self.tol_a + self.rtol * scale, axis=0)
            size = np.abs(r).max(axis=0)
            if use_chord and it > 0:
                # keep the chord while it contracts fast; otherwise full Newton from here on.  "Fast": 100-fold
                # per step with dense inverses; 10-fold with a sparse factor, whose solves cost far less than the
                # factorisation every full Newton step needs
                use_chord = bool(np.all(size <= inverse.contraction * previous[active]))
            previous[active] = size
            if use_chord:
                r_all = np.zeros((lay.nf, vf.shape[1]))
                r_all[:, active] = r
                n_g = inverse.n_groups
                blocks = np.ascontiguousarray(r_all.reshape(lay.nf, n_g, series).transpose(1, 0, 2))  # BLAS
                d_all = inverse.apply(blocks)  # (G, nf, T)
                d = -d_all.transpose(1, 0, 2).reshape(lay.nf, -1)[:, active]
            else:
                d = -self._solve(lay, gd, r)
            if not np.all(np.isfinite(d)):
                raise SteadyStateError("Newton direction is not finite (singular Jacobian: give diodes "
                                       "parallel_s > 0 or off_s > 0)")
            step = np.abs(d).max(axis=0)
            # KCL met *and* the voltages settled (weakly joined nodes), to within what round-off of the
            # node's currents allows: 64 eps * sum|i| / sum g' (a node held only by exponential tails)
            floor = 64 * eps * scale / np.maximum(np.asarray(lay.abs_b_free @ gd), 1e-300)
            kcl_ok = ok
            ok = kcl_ok & np.all(np.abs(d) <= self.tol_v + floor, axis=0)
            # KCL met but the step stopped shrinking: round-off limits the voltages (a limit cycle of
            # a few ulps of the node currents); after 8 such steps in a row the point is as settled as it gets
            stalled[active] = np.where(kcl_ok & (step >= 0.5 * last_step[active]), stalled[active] + 1, 0)
            last_step[active] = step
            ok |= kcl_ok & (stalled[active] >= 8)
            if ok.any():
                worst = max(worst, float(size[ok].max()))
                vf[:, active[ok]] += d[:, ok]  # final Newton correction, below tol_v
            if ok.all():
                return vf, it, worst
            if ok.any():
                keep = ~ok
                active, dv, cur, gd, co, r, d = (active[keep], dv[:, keep], cur[:, keep], gd[:, keep], co[:, keep],
                                                 r[:, keep], d[:, keep])
                inj_a = None if inj_a is None else inj_a[:, keep]
                size, step = size[keep], step[keep]
            if it >= max_iter:
                k = int(np.argmax(size))
                node = int(lay.free[np.argmax(np.abs(r[:, k]))])
                raise SteadyStateError(
                    f"Newton did not converge for {len(active)} of {vf.shape[1]} problems in {max_iter} iterations "
                    f"(max KCL residual {size.max():.3g} A at node {node}, problem {int(active[k])}; "
                    f"last step {step.max():.3g} V)")
            it += 1
            # Armijo backtracking on the convex co-content E (one step size per problem).
            vf_a = vf[:, active]
            e0, e_scale = co.sum(axis=0), np.abs(co).sum(axis=0)
            if inj_a is not None:
                work = inj_a * vf_a
                e0, e_scale = e0 - work.sum(axis=0), e_scale + np.abs(work).sum(axis=0)
            bound = e0 + 64 * eps * e_scale
            slope = np.einsum("fn,fn->n", r, d)  # dE/dt at t = 0 (< 0)
            ddv = np.asarray(lay.b_free_t @ d)
            n_act = len(active)
            t = np.ones(n_act)
            new = [np.empty_like(dv), np.empty_like(dv), np.empty_like(dv), np.empty_like(dv)]
            pending = np.arange(n_act)
            for attempt in range(61):
                every = len(pending) == n_act
                tp = t if every else t[pending]
                trial = dv + tp * ddv if every else dv[:, pending] + tp * ddv[:, pending]
                c1, g1, p1 = self._el.evaluate(trial, g, vg, phi=True)
                e1 = p1.sum(axis=0)
                if inj_a is not None:
                    e1 = e1 - (inj_a[:, pending] * (vf_a[:, pending] + tp * d[:, pending])).sum(axis=0)
                good = np.isfinite(e1) & (e1 <= bound[pending] + 1e-4 * tp * slope[pending])
                # a full Newton step below a microvolt lies in the quadratic-convergence region, where the
                # co-content's change is below its round-off: take it
                good |= np.isfinite(e1) & (tp == 1.0) & (step[pending] <= 1e-6)
                if attempt == 60:
                    good[:] = True  # give up on this problem's line search; max_iter reports it
                if every and good.all():
                    new = [trial, c1, g1, p1]
                    break
                acc = pending[good]
                for buf, val in zip(new, (trial, c1, g1, p1)):
                    buf[:, acc] = val[:, good]
                pending = pending[~good]
                if len(pending) == 0:
                    break
                t[pending] *= 0.5
            vf[:, active] = vf_a + t * d
            dv, cur, gd, co = new

    # ------------------------------------------------------------ gradients
    def adjoint_gradient(self, inputs: np.ndarray, error_v: np.ndarray,
                         state: NonlinearSteadyState | None = None) -> np.ndarray:
        """``dC/dtheta`` for ``C = mean_b 1/2 ||v_O - t||^2`` given the output error ``v_O - t``.

        The adjoint ``u`` solves the network linearised at the free state
        (differential conductances, sources shorted) with ``error_v / B``
        injected at the outputs; ``dC/dtheta_e = -sum_b (B^T u)_e di_e/dtheta_e``.

        Parameters
        ----------
        inputs : ndarray, shape (B, n_inputs)
        error_v : ndarray, shape (B, n_outputs)
            Output error (measured or modelled ``v_O - t``), volts.
        state : NonlinearSteadyState, optional
            The free state of ``inputs`` (solved if not given).
        """
        x = np.atleast_2d(np.asarray(inputs, float))
        err = np.atleast_2d(np.asarray(error_v, float))
        if err.shape != (x.shape[0], self.n_outputs):
            raise ValueError(f"error_v must have shape ({x.shape[0]}, {self.n_outputs}), got {err.shape}")
        if state is None:
            state = self.steady_state(x)
        lay = _layout(self.network, False)
        gd = state.conductance_s.reshape(-1, self.network.n_edges).T
        rhs = np.zeros((lay.nf, len(x)))
        rhs[lay.out_pos] = err.T / len(x)
        u = self._solve(lay, gd, rhs)  # J u = rhs
        du = np.asarray(lay.b_free_t @ u).T  # (B, m) adjoint edge drops
        slope = self.current_parameter_derivative(state.edge_drop_v.reshape(-1, self.network.n_edges))
        return -np.einsum("bp,bp->p", du[:, self.parameter_edges], slope)

    def exact_gradient(self, inputs: np.ndarray, targets_v: np.ndarray) -> np.ndarray:
        """``dC/dtheta`` of ``C = mean_b 1/2 ||v_O - t||^2`` (order of :attr:`parameter_edges`)."""
        x = np.atleast_2d(np.asarray(inputs, float))
        state = self.steady_state(x)
        return self.adjoint_gradient(x, state.output_v - np.atleast_2d(np.asarray(targets_v, float)), state)

    def loss(self, inputs: np.ndarray, targets_v: np.ndarray) -> float:
        """``C = mean_b 1/2 ||v_O - t||^2`` (V^2)."""
        out = self.steady_state(np.atleast_2d(np.asarray(inputs, float))).output_v
        return float(0.5 * np.mean(np.sum((out - targets_v) ** 2, axis=1)))

    def describe(self) -> dict:
        return {"network": self.network.describe(), "edges": self.edges.describe(),
                "solver": {"tol_a": self.tol_a, "rtol": self.rtol, "tol_v": self.tol_v, "max_iter": self.max_iter,
                           "linear_solver": self.solver}}


class EdgeDropGather:
    """``v_tail - v_head`` of every edge for a batch of node voltages, fast on dense layers.

    A layered network's edges come in runs where a range of tails meets one and the same list of heads
    (every input to every hidden node, ...).  Such a block's drops are one broadcast difference
    ``v[:, tails, None] - v[:, None, heads]`` written in place, instead of two gathers of every edge's ends;
    the edges outside blocks are gathered.  The result is identical either way.

    Parameters
    ----------
    edges : ndarray, shape (n_edges, 2)
        ``(tail, head)`` node indices.
    min_block_edges : int
        Smallest block worth a broadcast (smaller runs are gathered).
    """

    def __init__(self, edges: np.ndarray, min_block_edges: int = 256) -> None:
        tail, head = np.asarray(edges[:, 0]), np.asarray(edges[:, 1])
        self.tail, self.head, self.n_edges = tail, head, len(tail)
        starts = np.flatnonzero(np.r_[True, tail[1:] != tail[:-1]])
        ends = np.r_[starts[1:], len(tail)]
        blocks: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        i = 0
        while i < len(starts):
            heads = head[starts[i]:ends[i]]
            j = i + 1
            while j < len(starts) and ends[j] - starts[j] == len(heads) and np.array_equal(head[starts[j]:ends[j]],
                                                                                           heads):
                j += 1
            if (ends[j - 1] - starts[i]) >= min_block_edges and j - i > 1:
                blocks.append((int(starts[i]), int(ends[j - 1]), tail[starts[i:j]], heads))
            i = j
        self.blocks = blocks
        covered = np.zeros(len(tail), bool)
        for lo, hi, _, _ in blocks:
            covered[lo:hi] = True
        self.rest = np.flatnonzero(~covered)

    def of(self, node_v: np.ndarray) -> np.ndarray:
        """Drops ``(B, n_edges)`` of node voltages ``(B, n_nodes)``."""
        v = np.asarray(node_v, float)
        out = np.empty((v.shape[0], self.n_edges))
        for lo, hi, tails, heads in self.blocks:
            view = out[:, lo:hi].reshape(v.shape[0], len(tails), len(heads))
            np.subtract(v[:, tails, None], v[:, None, heads], out=view)
        if len(self.rest):
            out[:, self.rest] = v[:, self.tail[self.rest]] - v[:, self.head[self.rest]]
        return out


@dataclass(frozen=True, eq=False)
class _FoldStructure:
    """The parameter-independent part of a :class:`_SourceFold`: which edges fold where, the reduced topology.

    Built once per (network, edge description) and reused after every parameter update: only the
    Norton conductances ``G_j`` and the source weights change with the parameters.
    """

    fold: np.ndarray          # mask over the linear edges: folded into a Norton edge
    pos: np.ndarray           # Norton edge (0..n_virtual-1) of every folded edge
    n_virtual: int            # Norton edges = virtual input nodes of the reduced network
    at_input: np.ndarray      # mask over the folded edges: source end is an input (not a ground)
    input_row: np.ndarray     # input index of those source ends
    keep_lin: np.ndarray      # mask over the linear edges: kept in the reduced network
    keep_tr: np.ndarray       # mask over the transistor edges: kept (all of them)
    keep_nodes: np.ndarray    # full index of the reduced nodes n_virtual.. (grounds and free nodes)
    network: Network          # the reduced network
    edges: NonlinearEdges     # its edge description
    drops: "EdgeDropGather"   # drops of every edge of the full network

    _cache: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()  # Network -> [(edges, always, structure)]

    @classmethod
    def of(cls, net: Network, edges: NonlinearEdges, always: bool) -> "_FoldStructure | None":
        entries = cls._cache.setdefault(net, [])
        for known_edges, known_always, structure in entries:
            if known_edges is edges and known_always == always:
                return structure
        structure = cls._build(net, edges, always)
        entries.append((edges, always, structure))
        return structure

    @classmethod
    def _build(cls, net: Network, edges: NonlinearEdges, always: bool) -> "_FoldStructure | None":
        n, e = net.n_nodes, net.edges
        source = np.zeros(n, bool)
        source[list(net.inputs) + list(net.grounds)] = True
        lin = edges.indices("linear")
        t, h = e[lin, 0], e[lin, 1]
        fold = source[t] != source[h]
        n_fold = int(fold.sum())
        if n_fold == 0 or (not always and (n_fold < 1000 or 2 * n_fold < net.n_edges)):
            return None
        folded = lin[fold]
        keep = np.setdiff1d(np.flatnonzero(~(source[e[:, 0]] & source[e[:, 1]])), folded)
        is_input = np.zeros(n, bool)
        is_input[list(net.inputs)] = True
        if np.any(is_input[e[keep, 0]] | is_input[e[keep, 1]]):
            return None  # a nonlinear element at an input: that input stays a node
        free_end = np.where(source[t[fold]], h[fold], t[fold])
        src_end = np.where(source[t[fold]], t[fold], h[fold])
        targets, pos = np.unique(free_end, return_inverse=True)
        n_v = len(targets)
        in_pos = np.full(n, -1)
        in_pos[list(net.inputs)] = np.arange(len(net.inputs))
        at_input = in_pos[src_end] >= 0
        keep_nodes = np.flatnonzero(~is_input)
        new = np.full(n, -1)
        new[keep_nodes] = n_v + np.arange(len(keep_nodes))
        red_edges = np.r_[new[e[keep]], np.c_[np.arange(n_v), new[targets]]].astype(np.int64)
        kinds = [edges.kinds[k] for k in keep] + ["linear"] * n_v
        params = {name: np.r_[arr[keep], np.zeros(n_v)] for name, arr in edges.params.items()}
        # A Norton edge's conductance is the sum of its folded edges' (each within its bounds), so the sums of
        # the bounds bound it: the reduced network never clips it.
        g_lo = np.bincount(pos, net.g_min_s[folded], n_v)
        g_hi = np.bincount(pos, net.g_max_s[folded], n_v)
        try:
            red_net = Network(n_v + len(keep_nodes), red_edges, list(range(n_v)), list(new[list(net.outputs)]),
                              list(new[list(net.grounds)]), np.r_[net.g_min_s[keep], g_lo],
                              np.r_[net.g_max_s[keep], g_hi], net.name + " (source edges folded)")
        except NetworkError:
            return None  # e.g. a free node whose only way to ground ran through an input
        return cls(fold, pos, n_v, at_input, in_pos[src_end[at_input]], np.isin(lin, keep),
                   np.isin(edges.indices("transistor"), keep), keep_nodes, red_net,
                   NonlinearEdges.from_kinds(kinds, **params), EdgeDropGather(e))


class _SourceFold:
    """The network with its source edges folded into Norton equivalents (:class:`NonlinearResistorNetwork`,
    ``fold_sources``).

    Every linear edge ``(s, j)`` between a source node ``s`` (an input or a ground) and a free node ``j``
    carries ``g (v_s - v_j)`` into ``j``; their sum over ``s`` is ``G_j (vbar_j - v_j)`` with ``G_j = sum g``
    and ``vbar_j = sum g v_s / G_j``.  The reduced network replaces them by one edge of ``G_j`` from a new input
    node held at ``vbar_j`` and drops the input nodes; its steady state is the full one (the free nodes meet
    the same KCL), and every edge's drop, current and slope is then evaluated once on the full network.
    """

    def __init__(self, full: NonlinearResistorNetwork, reduced: NonlinearResistorNetwork, weights: np.ndarray,
                 structure: "_FoldStructure") -> None:
        self.full = full
        self.reduced = reduced
        self.weights = weights          # (n_inputs, n_virtual): vbar = x @ weights (grounds at 0 V)
        self.keep_nodes = structure.keep_nodes  # full index of reduced nodes n_virtual.. (grounds, free nodes)
        self.drops = structure.drops

    @classmethod
    def build(cls, model: NonlinearResistorNetwork, always: bool) -> "_SourceFold | None":
        """The fold at ``model``'s parameters (the topology-only part is built once per network and edges)."""
        st = _FoldStructure.of(model.network, model.edges, always)
        if st is None:
            return None
        g = model.conductance_s
        g_fold = g[st.fold]
        g_sum = np.bincount(st.pos, g_fold, st.n_virtual)
        weights = np.zeros((len(model.network.inputs), st.n_virtual))
        at = st.at_input
        np.add.at(weights, (st.input_row, st.pos[at]), g_fold[at] / g_sum[st.pos[at]])
        theta = np.r_[g[st.keep_lin], g_sum, model.gate_v[st.keep_tr]]
        reduced = NonlinearResistorNetwork(st.network, st.edges, theta, tol_a=model.tol_a, rtol=model.rtol,
                                           tol_v=model.tol_v, max_iter=model.max_iter,
                                           dense_max_nodes=model.dense_max_nodes,
                                           max_chunk_elements=model.max_chunk_elements, solver=model.solver,
                                           fold_sources=False)
        return cls(model, reduced, weights, st)

    def steady_state(self, x: np.ndarray, output_current_a: np.ndarray | None, output_clamp_v: np.ndarray | None,
                     start_v: np.ndarray | None, chord: bool, max_iter: int | None) -> NonlinearSteadyState:
        full, net = self.full, self.full.network
        lead = x.shape[:-1]
        vbar = x @ self.weights
        start = None
        if start_v is not None:
            s = np.asarray(start_v, float)
            start = np.concatenate([np.zeros(s.shape[:-1] + (self.weights.shape[1],)), s[..., self.keep_nodes]],
                                   axis=-1)
        red = self.reduced.steady_state(vbar, output_current_a, output_clamp_v, start_v=start, chord=chord,
                                        max_iter=max_iter)
        node_v = np.empty(lead + (net.n_nodes,))
        node_v[..., list(net.inputs)] = x
        node_v[..., self.keep_nodes] = red.node_v[..., self.weights.shape[1]:]
        flat = node_v.reshape(-1, net.n_nodes)
        m = net.n_edges
        dv = self.drops.of(flat)  # example-major

        def elements() -> tuple[np.ndarray, np.ndarray]:
            cur, gd = np.empty_like(dv), np.empty_like(dv)
            chunk = max(1, full.max_chunk_elements // (4 * m))
            for lo in range(0, dv.shape[0], chunk):
                c, g, _ = full._el.evaluate(dv[lo:lo + chunk].T, full.conductance_s, full.gate_v)  # edge-major views
                cur[lo:lo + chunk], gd[lo:lo + chunk] = c.T, g.T
            return cur.reshape(lead + (m,)), gd.reshape(lead + (m,))

        return NonlinearSteadyState(net, node_v, dv.reshape(lead + (m,)), elements, None, red.clamp_current_a,
                                    red.iterations, red.max_residual_a)


# ------------------------------------------------------------------ builders
def diode_network(
    sizes: Sequence[int] = (2, 4, 1),
    *,
    complementary_inputs: bool = True,
    n_bias_inputs: int = 1,
    diode: str = "diode",
    orientation: str = "both",
    skip_inputs: bool = True,
    g_min_s: float = DEFAULT_G_MIN_S,
    g_max_s: float = DEFAULT_G_MAX_S,
    **diode_params: float,
) -> tuple[Network, NonlinearEdges]:
    """Layered resistive network with trainable resistors and fixed diodes at every hidden node.

    In the spirit of Scellier et al.'s deep resistive networks: layers dense
    between consecutive layers with trainable linear resistors; every hidden
    node has fixed diodes to ground (``orientation``: ``"down"`` anode at the
    node, conducting when it is above ground; ``"up"`` the reverse; ``"both"``
    an antiparallel pair, a soft symmetric clip at about +-0.5 V for silicon
    defaults).

    Parameters
    ----------
    sizes : sequence of int
        ``(n_features, hidden..., n_outputs)``.
    complementary_inputs : bool
        Add a mirrored input per feature (node order ``[x..., mirror..., bias...]``,
        as :func:`labtrain.training.tasks.make_task` with ``complementary_inputs=True``
        appends them).  Needed for non-monotone tasks such as XOR (see the
        module docstring).
    n_bias_inputs : int
        Extra input nodes for constant bias voltages (``bias_inputs_v`` of the task).
    diode : {"diode", "ideal_diode"}
        Exponential or piecewise-linear diodes.
    skip_inputs : bool
        Also join every input node (and the ground) to the outputs.
    g_min_s, g_max_s : float
        Bounds of the trainable conductances.
    **diode_params
        Parameters of the diodes (see :class:`NonlinearEdges`).

    Returns
    -------
    (Network, NonlinearEdges)
        Inputs first, one ground node, hidden layers, outputs last.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 3 or min(sizes) < 1:
        raise NetworkError(f"diode_network needs (n_features, hidden..., n_outputs) with sizes >= 1, got {sizes}")
    if diode not in ("diode", "ideal_diode"):
        raise ValueError(f"diode must be 'diode' or 'ideal_diode', got {diode!r}")
    if orientation not in ("down", "up", "both"):
        raise ValueError(f"orientation must be 'down', 'up' or 'both', got {orientation!r}")
    if n_bias_inputs < 0:
        raise ValueError(f"n_bias_inputs must be >= 0, got {n_bias_inputs}")
    n_in = sizes[0] * (2 if complementary_inputs else 1) + n_bias_inputs
    ground = n_in
    layers = [list(range(n_in + 1))]
    nxt = n_in + 1
    for s in sizes[1:]:
        layers.append(list(range(nxt, nxt + s)))
        nxt += s
    lin = []
    for a, b in zip(layers[:-1], layers[1:]):
        lin += [(i, j) for i in a for j in b]
    if skip_inputs and len(layers) > 2:
        lin += [(i, j) for i in layers[0] for j in layers[-1]]
    dio = []
    for layer in layers[1:-1]:
        for h in layer:
            if orientation in ("down", "both"):
                dio.append((h, ground))
            if orientation in ("up", "both"):
                dio.append((ground, h))
    edges = np.array(lin + dio)
    kinds = ["linear"] * len(lin) + [diode] * len(dio)
    pos = [(k, (len(layer) - 1) / 2 - r) for k, layer in enumerate(layers) for r in range(len(layer))]
    name = f"diode network {'-'.join(map(str, sizes))}" + (" (complementary inputs)" if complementary_inputs else "")
    net = Network(nxt, edges, list(range(n_in)), layers[-1], [ground], g_min_s, g_max_s, name, np.array(pos, float))
    return net, NonlinearEdges.from_kinds(kinds, **diode_params)


def xor_diode_network(n_hidden: int = 4, *, n_bias_inputs: int = 1, diode: str = "diode",
                      **kwargs) -> tuple[Network, NonlinearEdges]:
    """The XOR-capable diode network: ``diode_network((2, n_hidden, 1), complementary_inputs=True)``.

    Inputs ``[x1, x2, 1 - x1, 1 - x2, bias...]`` (``make_task("xor",
    complementary_inputs=True, bias_inputs_v=...)``), one output.  Other
    keywords go to :func:`diode_network`.
    """
    return diode_network((2, int(n_hidden), 1), complementary_inputs=True, n_bias_inputs=n_bias_inputs,
                         diode=diode, **kwargs)
