"""Learning protocols: turn chip measurements into parameter updates.

They use only the Chip interface and declare the capabilities they need.
"""

from .analytic import AnalyticGradient, adjoint_gradient
from .base import GradientEstimate, GradientEstimator, half_squared_error
from .gep import CoupledLearning, EquilibriumPropagation, GEPRule, gep_family
from .fidelity import (Fidelity, compare_gradients, exact_gradient, finite_difference_gradient, gradient_fidelity,
                       random_linear_problem)
from .masks import MASK_MODES, UpdateMask

__all__ = [
    "AnalyticGradient", "EquilibriumPropagation", "CoupledLearning", "GEPRule", "gep_family",
    "GradientEstimate", "GradientEstimator", "half_squared_error", "UpdateMask", "MASK_MODES",
    "adjoint_gradient", "exact_gradient", "Fidelity", "compare_gradients", "gradient_fidelity",
    "finite_difference_gradient", "random_linear_problem",
]
