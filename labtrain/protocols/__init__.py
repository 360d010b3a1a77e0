"""Learning protocols: turn chip measurements into parameter updates.

They use only the Chip interface and declare the capabilities they need.
"""

from labtrain.protocols.analytic import AnalyticGradient, adjoint_gradient
from labtrain.protocols.base import GradientEstimate, GradientEstimator, half_squared_error
from labtrain.protocols.gep import CoupledLearning, EquilibriumPropagation, GEPRule, gep_family
from labtrain.protocols.fidelity import (Fidelity, compare_gradients, exact_gradient, finite_difference_gradient,
                                        gradient_fidelity)
from labtrain.protocols.masks import MASK_MODES, UpdateMask

__all__ = [
    "AnalyticGradient", "EquilibriumPropagation", "CoupledLearning", "GEPRule", "gep_family",
    "GradientEstimate", "GradientEstimator", "half_squared_error", "UpdateMask", "MASK_MODES",
    "adjoint_gradient", "exact_gradient", "Fidelity", "compare_gradients", "gradient_fidelity",
    "finite_difference_gradient",
]
