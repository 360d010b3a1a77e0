"""Common pieces of every learning protocol: the estimate it returns and the loss."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from labtrain.chip.base import Chip, Measurement

__all__ = ["GradientEstimate", "GradientEstimator", "half_squared_error"]


def half_squared_error(output_v: np.ndarray, target_v: np.ndarray) -> float:
    """Loss ``C = mean_b 1/2 ||v_O - t||^2`` in volts squared."""
    diff = np.asarray(output_v) - np.asarray(target_v)
    return float(0.5 * np.mean(np.sum(diff**2, axis=1)))


@dataclass
class GradientEstimate:
    """What one protocol step learned from the chip.

    Attributes
    ----------
    gradient : ndarray
        Estimate of dC/dtheta per parameter (for conductances: V^2/S).
    loss : float
        Loss of the free state on this batch (V^2), before the update.
    output_v : ndarray, shape (B, n_outputs)
        Free-state outputs.
    n_phases : int
        How many batch measurements the estimate took (free + nudged phases).
    """

    gradient: np.ndarray
    loss: float
    output_v: np.ndarray
    n_phases: int


class GradientEstimator(abc.ABC):
    """A learning rule that turns chip measurements into a gradient estimate.

    Subclasses set ``name`` and ``requires`` (chip capabilities) and implement
    :meth:`estimate`.  They talk to the chip only through the Chip interface.
    """

    name: str = "estimator"
    requires: frozenset[str] = frozenset()
    #: unit of :attr:`GradientEstimate.loss` and of :meth:`measurement_loss` ("1": dimensionless)
    loss_unit: str = "V^2"

    def check(self, chip: Chip) -> None:
        """Raise :class:`~labtrain.chip.CapabilityError` if ``chip`` cannot run this rule."""
        chip.require(self.requires, self.name)

    @abc.abstractmethod
    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        """Measure the chip on a batch and estimate dC/dtheta."""

    def measurement_loss(self, measurement: Measurement, targets_v: np.ndarray) -> float:
        """The loss this rule minimises, of a free measurement (the run loop's evaluation uses it).

        Default: :func:`half_squared_error` of the outputs; rules on phase
        outputs override it with a circular cost.
        """
        return half_squared_error(measurement.output_v, targets_v)

    @property
    def label(self) -> str:
        """Name for tables (``gradcheck``): the rule's name and its variant."""
        return self.name

    @property
    def setting(self) -> str:
        """Its main setting for tables, e.g. ``"beta_s = 1e-06"`` ("" when it has none)."""
        return ""

    def describe(self) -> dict:
        """Settings, for the run snapshot."""
        return {"rule": self.name}
