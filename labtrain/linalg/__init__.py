"""Sparse linear algebra for physical networks: SPD solvers chosen per problem.

See :mod:`labtrain.linalg.spd` (direct and iterative solvers behind one
interface, ``solver = "auto" | "superlu" | "cholmod" | "cg"``),
:mod:`labtrain.linalg.cg` (block preconditioned conjugate gradients),
:mod:`labtrain.linalg.batched` (many matrices of one pattern, factored
together) and :mod:`labtrain.linalg.assembly` (fixed patterns, values linear in
the parameters).
"""

from labtrain.linalg.assembly import BlockDiagonalPattern, csc_assembly, laplacian_terms
from labtrain.linalg.cg import CGDidNotConvergeError, CGResult, block_pcg, make_preconditioner
from labtrain.linalg.spd import (SOLVERS, GraphProfile, NotPositiveDefiniteError, SPDFactor, SPDSolver,
                                 check_solver, cholmod_available, choose_solver, graph_profile, pyamg_available)

__all__ = ["SOLVERS", "SPDSolver", "SPDFactor", "GraphProfile", "graph_profile", "choose_solver", "check_solver",
           "cholmod_available", "pyamg_available", "NotPositiveDefiniteError", "block_pcg", "make_preconditioner",
           "CGResult", "CGDidNotConvergeError", "csc_assembly", "laplacian_terms", "BlockDiagonalPattern"]
