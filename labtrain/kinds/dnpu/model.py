"""Synthetic DNPU physics: a gated hopping network between eight electrodes.

What a DNPU is (docs/algorithms.md, section 6): a small disordered region of dopant
atoms contacted by 8 electrodes -- 7 activation electrodes (2 data inputs and
5 controls) and one output held at virtual ground by a transimpedance
amplifier, whose current (tens of nA) is the result.  Charge moves by hopping
between dopant sites; the control voltages reshape the energy landscape so
that the same device computes different nonlinear functions of its inputs --
all 16 two-input Boolean gates in the published work.

How :class:`HoppingDNPU` is built (all of it drawn from one ``seed``):

* **Geometry.** The 8 electrodes sit evenly on the rim of a unit disc
  (activation electrodes 0..6, then the output, so electrodes 6 and 0 are the
  output's neighbours); ``n_sites`` dopant sites lie uniformly at random inside
  radius 0.85.
* **Hopping edges.** Every site is linked to its ``k_neighbours`` nearest sites
  and every node to its nearest electrodes (each electrode reaches its
  ``k_electrode`` nearest sites); the prefactor of each link falls off with
  distance like a tunnelling overlap, ``g0 = exp(-2 r / xi)``.
* **Field-driven hopping current.** A link carries
  ``i = g V0 sinh(dv / V0)`` for a potential difference ``dv`` between its ends
  -- the classic high-field hopping law (odd, monotone, exponentially
  nonlinear; ``V0`` sets where it turns on).
* **Electrostatic gating.** Each site's energy is shifted by the electrodes
  through a capacitive divider, ``eps_i = eps0_i - sum_k c_ik V_k`` (``c_ik``
  decays as ``1/d^2`` with the distance to electrode ``k``; the output
  electrode and a back gate at 0 V take the rest of the divider); ``eps0_i`` is
  random site disorder.  A site conducts when its level is near the Fermi
  level: occupancy factor ``h_i = floor + (1 - floor) sech^2(eps_i / w)``
  (``f (1 - f)`` of a level broadened by ``w``).  A link's conductance is
  ``g = g0 sqrt(h_a h_b)`` (electrodes have ``h = 1``).  This is the
  non-monotone ingredient: raising an electrode can switch a path *off*, which
  a network of monotone two-terminal resistors can never do (its output is
  monotone in every input, so it could not realise XOR, NAND, ...).  Gating is
  taken from the electrodes' electrostatic (Laplace) potential, not from the
  transport potentials, so for fixed electrode voltages the network is a
  network of monotone resistors.
* **Steady state.** The output node is held at 0 V and the 7 activation
  electrodes at their voltages; the internal site potentials solve Kirchhoff's
  current law.  With monotone links the solution minimises the convex
  co-content ``sum_e g_e V0^2 cosh(dv_e / V0)``, so batched Newton with a
  backtracking (Armijo) line search on it always converges; everything is
  vectorised over any leading shape (examples x samples).
* **Scale.** All conductances are multiplied by one factor chosen at
  construction so that the median ``|I_out|`` over uniformly random
  electrode voltages in the default layout's ranges is ``median_current_a``
  (default 15 nA): typical currents are tens of nA and the amplifier's 110 nA
  clip is reached only at extremes (KCL is homogeneous in ``g``, so the
  factor scales the current and leaves the internal potentials unchanged).

The output current is the current flowing from the network into the output
node (positive when positive electrodes push current into it).  An exact
Jacobian ``dI/dV`` follows from the implicit function theorem on the KCL
system (:meth:`HoppingDNPU.jacobian_a`), gating derivatives included.

How the default device was chosen (``HoppingDNPU()`` = seed 5, ``coupling=0.9``,
the other settings as in the signature).  A real DNPU realises all 16 gates
(Boon et al.); the default synthetic device must too, and by gradient descent
from random starts, not just in principle.  The search, on the model only:

1. *Realisability* (cheap): 3000 random control vectors uniform in the
   control ranges, the 4 Boolean input cases each; a gate counts as present
   when some control vector separates its 1-cases from its 0-cases by more
   than 0.2 V at the amplifier output (10^8 V/A).  Over seeds 0-9 and the
   variations ``width_v`` 0.1/0.15, ``n_sites`` 20/24, ``coupling`` 0.9,
   ``disorder_v`` 0.3, ``v0_v`` 0.2, ``k_electrode`` 2 (and ``coupling`` 0.9 with
   ``n_sites`` 20), most devices miss 1-7 gates (typically the
   input-inverting ones such as NOT B, A OR NOT B, which need a path that
   an input switches *off*).  All 16 were present for seed 5 at
   ``coupling`` 0.8 and 0.9, seed 3 at ``width_v`` 0.1 / ``n_sites`` 20, seed 4 at
   ``n_sites`` 24 and seed 7 at ``disorder_v`` 0.3 or ``n_sites`` 20; seed 5 with
   ``coupling`` 0.9 had the rarest gate most often (6 of 3000 random points
   vs at most 4 for the others).  ``coupling`` 0.9 means the electrodes set
   90 % of a site's electrostatic potential (the back gate the rest),
   plausible for dopants a few nm below surface electrodes.
2. *Learnability* (exact gradient, ``dnpu_exact_gradient``-equivalent
   chaining of :meth:`HoppingDNPU.jacobian_a`): the recipe of
   ``examples/dnpu_gates.py`` (targets at the start point's mean output
   +- 0.3 V, one-sided squared loss, SGD lr 0.1 normalised, <= 100
   iterations) from 16 random starts per gate: every gate succeeds from
   some start; per-start success 0.12 (NOT B) to 1.0, so best-of-16 realises
   all 16 with high probability (expected failures ~0.13 gates, nearly all NOT B).

Why it is DNPU-like: hopping transport between localised sites with an
exponential field dependence, electrostatic tuning of the sites by the same
electrodes that inject charge, tens-of-nA output at a virtual-ground output,
smooth but strongly nonlinear and non-monotone responses, and -- checked for
the default seed by ``examples/dnpu_gates.py`` -- all 16 two-input Boolean
gates reachable by gradient descent on the control voltages with homodyne
gradients.
"""

from __future__ import annotations

import numpy as np

from labtrain.kinds.dnpu.layout import default_layout

__all__ = ["HoppingDNPU"]

N_ACTIVATION = 7


class HoppingDNPU:
    """Gated hopping network with 7 activation electrodes and a virtual-ground output (module docstring).

    Parameters
    ----------
    seed : int
        Picks the random device (site positions, disorder, links).
    n_sites : int
        Internal dopant sites.
    k_neighbours : int
        Nearest-site links per site.
    k_electrode : int
        Sites each electrode (and the output) is linked to.
    xi : float
        Localisation length in disc radii (link prefactor ``exp(-2 r / xi)``).
    v0_v : float
        Field scale of the hopping law ``i = g V0 sinh(dv / V0)`` (V).
    width_v : float
        Level broadening ``w`` of the gating factor ``sech^2(eps / w)`` (V).
    floor : float
        Smallest gating factor (a site never switches off completely).
    coupling : float
        Fraction of a site's electrostatic potential set by the 8 electrodes
        (the rest by a grounded back gate).
    disorder_v : float
        Standard deviation of the random site energies ``eps0`` (V).
    median_current_a : float
        Median ``|I_out|`` over random electrode voltages in the default ranges (sets the scale).
    tol_v : float
        Newton stops when every potential update is below this (V).
    max_iter : int
        Newton iteration limit (a ``RuntimeError`` beyond it).
    """

    n_electrodes = N_ACTIVATION

    def __init__(self, seed: int = 5, *, n_sites: int = 16, k_neighbours: int = 3, k_electrode: int = 3,
                 xi: float = 0.5, v0_v: float = 0.3, width_v: float = 0.07, floor: float = 0.02,
                 coupling: float = 0.9, gating: str = "resonant", coupling_power: float = 1.0, disorder_v: float = 0.2, median_current_a: float = 15e-9,
                 rim_order: tuple[int, ...] = (7, 0, 1, 3, 4, 5, 2, 6), tol_v: float = 1e-10,
                 max_iter: int = 60) -> None:
        if n_sites < 2 or k_neighbours < 1 or k_electrode < 1:
            raise ValueError(f"need n_sites >= 2, k_neighbours >= 1, k_electrode >= 1; got {n_sites}, "
                             f"{k_neighbours}, {k_electrode}")
        for name, val in (("xi", xi), ("v0_v", v0_v), ("width_v", width_v), ("median_current_a", median_current_a),
                          ("tol_v", tol_v)):
            if not val > 0:
                raise ValueError(f"{name} must be > 0, got {val}")
        if not 0 < floor < 1 or not 0 < coupling < 1:
            raise ValueError(f"floor and coupling must be in (0, 1), got {floor}, {coupling}")
        if gating not in ("resonant", "fermi"):
            raise ValueError(f"gating must be 'resonant' or 'fermi', got {gating!r}")
        self.gating = gating
        self.seed = int(seed)
        self.n_sites = int(n_sites)
        self.k_neighbours, self.k_electrode = int(k_neighbours), int(k_electrode)
        self.xi, self.v0_v, self.width_v, self.floor = float(xi), float(v0_v), float(width_v), float(floor)
        self.coupling, self.disorder_v = float(coupling), float(disorder_v)
        self.tol_v, self.max_iter = float(tol_v), int(max_iter)
        rng = np.random.default_rng([self.seed, 0xD17])
        # ---- geometry: electrodes 0..6 and the output (7) on the rim, sites inside
        order = [int(e) for e in rim_order]
        if sorted(order) != list(range(N_ACTIVATION + 1)):
            raise ValueError(f"rim_order must list electrodes 0..7 (7 = output) once each, got {rim_order}")
        self.rim_order = tuple(order)
        ang = np.empty(N_ACTIVATION + 1)
        ang[order] = 2 * np.pi * np.arange(N_ACTIVATION + 1) / (N_ACTIVATION + 1)
        self.electrode_xy = np.c_[np.cos(ang), np.sin(ang)]
        r = 0.85 * np.sqrt(rng.uniform(0, 1, n_sites))
        phi = rng.uniform(0, 2 * np.pi, n_sites)
        self.site_xy = np.c_[r * np.cos(phi), r * np.sin(phi)]
        self.eps0_v = rng.normal(0.0, self.disorder_v, n_sites)
        self.site_sign = rng.choice([-1.0, 1.0], n_sites)
        # ---- capacitive divider: c_ik ~ 1/d^2 over the 8 electrodes, scaled to `coupling`
        d_se = np.linalg.norm(self.site_xy[:, None, :] - self.electrode_xy[None, :, :], axis=-1)
        self.coupling_power = float(coupling_power)
        w = 1.0 / d_se**self.coupling_power
        self.c = self.coupling * w[:, :N_ACTIVATION] / w.sum(axis=1, keepdims=True)     # (n_sites, 7)
        # ---- links.  Node order: electrodes 0..6, output 7, sites 8..
        ns = n_sites
        d_ss = np.linalg.norm(self.site_xy[:, None, :] - self.site_xy[None, :, :], axis=-1)
        np.fill_diagonal(d_ss, np.inf)
        pairs: set[tuple[int, int]] = set()
        for i in range(ns):
            for j in np.argsort(d_ss[i])[:self.k_neighbours]:
                pairs.add((8 + min(i, j), 8 + max(i, j)))
        for e in range(N_ACTIVATION + 1):
            for i in np.argsort(d_se[:, e])[:self.k_electrode]:
                pairs.add((e, 8 + i))
        self._connect(pairs, d_ss)
        edges = np.array(sorted(pairs), dtype=np.int64)
        pos = np.vstack([self.electrode_xy, self.site_xy])
        length = np.linalg.norm(pos[edges[:, 0]] - pos[edges[:, 1]], axis=1)
        self.edges = edges
        self.g0 = np.exp(-2.0 * length / self.xi)
        n_nodes = 8 + ns
        inc = np.zeros((n_nodes, len(edges)))
        inc[edges[:, 0], np.arange(len(edges))] = 1.0
        inc[edges[:, 1], np.arange(len(edges))] = -1.0
        self._b_el = inc[:N_ACTIVATION]            # (7, m)
        self._b_out = inc[N_ACTIVATION]            # (m,)
        self._b_int = inc[8:]                      # (ns, m)
        # which site ends each link has (-1: an electrode end, gating factor 1)
        self._end_a = np.where(edges[:, 0] >= 8, edges[:, 0] - 8, -1)
        self._end_b = np.where(edges[:, 1] >= 8, edges[:, 1] - 8, -1)
        # H = B_int diag(w) B_int^T  ==  (w @ hess_map).reshape(ns, ns): one BLAS product per batch
        self._hess_map = np.einsum("im,jm->mij", self._b_int, self._b_int).reshape(len(edges), ns * ns)
        self.scale = 1.0
        self.median_current_a = float(median_current_a)
        lay = default_layout()
        cal = np.random.default_rng([self.seed, 0xCA1]).uniform(lay.low_v, lay.high_v, (4000, N_ACTIVATION))
        self.scale = self.median_current_a / float(np.median(np.abs(self.current_a(cal))))

    # ------------------------------------------------------------ building
    def _connect(self, pairs: set[tuple[int, int]], d_ss: np.ndarray) -> None:
        """Add the shortest site-site links until every site is joined to an electrode."""
        ns = self.n_sites
        while True:
            parent = list(range(8 + ns))

            def find(a: int) -> int:
                while parent[a] != a:
                    parent[a] = parent[parent[a]]
                    a = parent[a]
                return a

            for a, b in pairs:
                parent[find(a)] = find(b)
            for e in range(1, 8):           # the electrodes are one potential reference family
                parent[find(e)] = find(0)
            root = find(0)
            lonely = [i for i in range(ns) if find(8 + i) != root]
            if not lonely:
                return
            i = lonely[0]
            joined = [j for j in range(ns) if find(8 + j) == root]
            j = joined[int(np.argmin(d_ss[i, joined]))] if joined else int(np.argmin(d_ss[i]))
            pairs.add((8 + min(i, j), 8 + max(i, j)))

    # ------------------------------------------------------------- physics
    def _gating(self, electrode_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Link conductances ``g`` (..., m) and ``d ln q_i / d eps_i`` (..., n_sites) at given electrode voltages."""
        eps = self.eps0_v - electrode_v @ self.c.T                      # (..., ns)
        if self.gating == "resonant":
            s2 = 1.0 / np.cosh(eps / self.width_v) ** 2
            h = self.floor + (1.0 - self.floor) * s2
            q = np.sqrt(h)
            # d ln q / d eps = (1/2h) dh/deps;  dh/deps = -(1-floor) 2 s2 tanh / w
            dlnq = -(1.0 - self.floor) * s2 * np.tanh(eps / self.width_v) / (self.width_v * h)
        else:
            sig = 0.5 * (1.0 + np.tanh(-0.5 * self.site_sign * eps / self.width_v))
            h = self.floor + (1.0 - self.floor) * sig
            q = np.sqrt(h)
            dlnq = -(1.0 - self.floor) * sig * (1.0 - sig) * self.site_sign / (self.width_v * 2.0 * h)
        q1 = np.concatenate([q, np.ones(q.shape[:-1] + (1,))], axis=-1)  # index -1 -> 1
        g = self.scale * self.g0 * q1[..., self._end_a] * q1[..., self._end_b]
        return g, dlnq

    def _hess(self, w: np.ndarray) -> np.ndarray:
        """``B_int diag(w) B_int^T`` for a batch of link weights ``w`` (N, m) -> (N, ns, ns)."""
        return (w @ self._hess_map).reshape(len(w), self.n_sites, self.n_sites)

    def _drops(self, electrode_v: np.ndarray, site_v: np.ndarray) -> np.ndarray:
        return electrode_v @ self._b_el + site_v @ self._b_int

    def internal_v(self, electrode_v: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        """Site potentials ``(..., n_sites)`` (V) at electrode voltages ``(..., 7)``, output at 0 V.

        Batched Newton on Kirchhoff's current law with an Armijo line search on
        the convex co-content; ``guess`` (broadcastable) is the starting point
        (default: the linear-network solution).
        """
        ev = np.asarray(electrode_v, float)
        if ev.shape[-1] != N_ACTIVATION:
            raise ValueError(f"electrode_v must have shape (..., {N_ACTIVATION}), got {ev.shape}")
        lead = ev.shape[:-1]
        ev2 = ev.reshape(-1, N_ACTIVATION)
        g, _ = self._gating(ev2)                                         # (N, m)
        v0 = self.v0_v
        bi = self._b_int                                                 # (ns, m)
        if guess is None:
            # linear start: B_int G B_int^T x = -B_int G B_el^T V
            lap = self._hess(g)
            rhs = -(g * (ev2 @ self._b_el)) @ bi.T
            x = np.linalg.solve(lap, rhs[..., None])[..., 0]
        else:
            x = np.broadcast_to(np.asarray(guess, float), lead + (self.n_sites,)).reshape(-1, self.n_sites).copy()
        fixed = ev2 @ self._b_el                                         # (N, m)

        def energy(xx: np.ndarray) -> np.ndarray:
            return np.sum(g * v0 * v0 * np.cosh((fixed + xx @ bi) / v0), axis=-1)

        for _ in range(self.max_iter):
            ex = np.exp((fixed + x @ bi) / v0)
            ex_inv = 1.0 / ex
            res = (g * (0.5 * v0) * (ex - ex_inv)) @ bi.T               # (N, ns)  KCL residual = dE/dx
            gp = g * 0.5 * (ex + ex_inv)
            step = -np.linalg.solve(self._hess(gp), res[..., None])[..., 0]
            biggest = np.max(np.abs(step))
            if biggest * biggest < self.tol_v * v0:
                x = x + step  # quadratic convergence: the error left after this step is ~ step^2 / V0
                break
            if biggest < 0.1 * v0:
                x = x + step          # inside the quadratic basin: full Newton step
                continue
            # Armijo backtracking on the co-content, per example
            e0 = energy(x)
            slope = np.sum(res * step, axis=-1)                          # < 0
            t = np.ones(len(x))
            for _ls in range(30):
                trial = x + t[:, None] * step
                bad = energy(trial) > e0 + 1e-4 * t * slope + 1e-15 * np.abs(e0)
                if not np.any(bad):
                    break
                t = np.where(bad, 0.5 * t, t)
            x = x + t[:, None] * step
        else:
            raise RuntimeError(f"HoppingDNPU: Newton did not converge in {self.max_iter} iterations")
        return x.reshape(lead + (self.n_sites,))

    def current_a(self, electrode_v: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        """Output current ``(...)`` in amperes (before the amplifier clips) at electrode voltages ``(..., 7)``."""
        ev = np.asarray(electrode_v, float)
        x = self.internal_v(ev, guess)
        g, _ = self._gating(ev)
        d = self._drops(ev, x)
        # current into the output node: -(B_out . i)
        return -(g * self.v0_v * np.sinh(d / self.v0_v)) @ self._b_out

    def jacobian_a(self, electrode_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output current ``(...)`` and its exact gradient ``dI/dV`` ``(..., 7)`` (A/V).

        Implicit function theorem on KCL ``F(x, V) = B_int i(x, V) = 0``:
        ``dI/dV = s^T A - lambda^T B_int A`` with ``A = G' B_el^T + diag(V0 sinh) dg/dV``,
        ``G' = diag(g cosh(dv/V0))``, ``s = -B_out`` and ``H lambda = B_int G' s``,
        ``H = B_int G' B_int^T``.
        """
        ev = np.asarray(electrode_v, float)
        lead = ev.shape[:-1]
        ev2 = ev.reshape(-1, N_ACTIVATION)
        x = self.internal_v(ev2)
        g, dlnq = self._gating(ev2)
        v0 = self.v0_v
        d = self._drops(ev2, x)
        sh, gp = v0 * np.sinh(d / v0), g * np.cosh(d / v0)
        s = -self._b_out
        current = (g * sh) @ s
        # dg_e/dV_k = g_e (dlnq_a + dlnq_b) deps/dV_k,  deps_i/dV_k = -c_ik
        dl = np.concatenate([dlnq, np.zeros((len(ev2), 1))], axis=-1)
        dlnq_dv = -dl[..., None] * np.vstack([self.c, np.zeros((1, N_ACTIVATION))])   # (N, ns+1, 7)
        dg = g[..., None] * (dlnq_dv[:, self._end_a, :] + dlnq_dv[:, self._end_b, :])  # (N, m, 7)
        a = gp[..., None] * self._b_el.T[None] + sh[..., None] * dg                   # (N, m, 7)
        bi = self._b_int
        lam = np.linalg.solve(self._hess(gp), ((gp * s) @ bi.T)[..., None])[..., 0]             # (N, ns)
        jac = np.einsum("m,nmk->nk", s, a) - np.einsum("ni,im,nmk->nk", lam, bi, a)
        return current.reshape(lead), jac.reshape(lead + (N_ACTIVATION,))

    # ------------------------------------------------------------ records
    def snapshot(self) -> dict:
        return {"model": "HoppingDNPU", "seed": self.seed, "n_sites": self.n_sites, "n_links": int(len(self.edges)),
                "k_neighbours": self.k_neighbours, "k_electrode": self.k_electrode, "xi": self.xi,
                "v0_v": self.v0_v, "width_v": self.width_v, "floor": self.floor, "coupling": self.coupling,
                "disorder_v": self.disorder_v, "median_current_a": self.median_current_a, "scale_s": self.scale}
