"""The crossbar as a labtrain chip (ideal backend) and its local learning rule."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from labtrain.chip.base import REFERENCE_GRADIENT, Chip, Measurement, ParameterSpec
from labtrain.protocols.base import GradientEstimate, GradientEstimator, half_squared_error

from labtrain_crossbar.model import CrossbarModel

CROSSBAR_OUTPUTS = "crossbar_outputs"  #: every column's output voltage can be read (the delta rule needs it)


class CrossbarChip(Chip):
    """A memristive crossbar; parameters are the crosspoint conductances, row-major (S)."""

    backend = "ideal"
    output_unit = "V"
    capabilities = frozenset({CROSSBAR_OUTPUTS, REFERENCE_GRADIENT})

    def __init__(self, n_rows: int, n_cols: int, *, g_min_s: float, g_max_s: float, feedback_ohm: float,
                 conductance_s: np.ndarray | None = None, read_noise_v: float = 0.0, seed: int | None = None) -> None:
        if not 0 < g_min_s < g_max_s:
            raise ValueError(f"need 0 < g_min_s < g_max_s, got {g_min_s}, {g_max_s}")
        self.shape = (int(n_rows), int(n_cols))
        size = self.shape[0] * self.shape[1]
        self._spec = ParameterSpec("conductance", "S", np.full(size, g_min_s), np.full(size, g_max_s))
        self.feedback_ohm = float(feedback_ohm)
        self.read_noise_v = float(read_noise_v)
        self.rng = np.random.default_rng(seed)
        self._g = np.empty(size)
        self.set_parameters(np.full(size, np.sqrt(g_min_s * g_max_s)) if conductance_s is None else conductance_s)

    @property
    def n_inputs(self) -> int:
        return self.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.shape[1]

    @property
    def parameter_spec(self) -> ParameterSpec:
        return self._spec

    def get_parameters(self) -> np.ndarray:
        return self._g.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, float)
        if values.shape != (self._spec.size,) or not np.all(np.isfinite(values)):
            raise ValueError(f"expected {self._spec.size} finite conductances, got shape {values.shape}")
        self._g = np.clip(values, self._spec.lower, self._spec.upper)
        return self._g.copy()

    def reseed(self, seed: int | Sequence[int]) -> None:
        self.rng = np.random.default_rng(seed)

    def model(self, parameters: np.ndarray | None = None) -> CrossbarModel:
        g = self._g if parameters is None else np.asarray(parameters, float)
        return CrossbarModel(g.reshape(self.shape), self.feedback_ohm)

    def measure(self, inputs: np.ndarray, nudge=None, edge_drops: bool = False) -> Measurement:
        if nudge is not None or edge_drops:
            raise ValueError("a crossbar has no output nudge and no edge-drop readout")
        x = np.atleast_2d(np.asarray(inputs, float))
        out = self.model().output_v(x)
        if self.read_noise_v:
            out = out + self.rng.normal(0.0, self.read_noise_v, out.shape)
        return Measurement(out, unit="V")

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        model = self.model(parameters)
        return model.gradient(inputs, model.output_v(inputs) - np.asarray(targets, float)).ravel()

    def snapshot(self) -> dict:
        return {"type": "crossbar", "backend": self.backend, "shape": list(self.shape),
                "feedback_ohm": self.feedback_ohm, "read_noise_v": self.read_noise_v,
                "capabilities": sorted(self.capabilities)}


class DeltaRule(GradientEstimator):
    """The local outer-product rule: measure the outputs, ``dG_ij ~ R_f mean_b x_bi (v_out_bj - t_bj)``.

    Every crosspoint needs only its row's input and its column's error: a rule a crossbar can apply in
    place.  For this linear device it is the exact gradient of the squared error.
    """

    name = "delta"
    requires = frozenset({CROSSBAR_OUTPUTS})

    def __init__(self, feedback_ohm: float) -> None:
        self.feedback_ohm = float(feedback_ohm)

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        measured = chip.measure(inputs)
        error = measured.output_v - targets_v
        gradient = self.feedback_ohm * np.asarray(inputs, float).T @ error / len(inputs)
        return GradientEstimate(gradient.ravel(), half_squared_error(measured.output_v, targets_v),
                                measured.output_v, 1)

    def describe(self) -> dict:
        return {"rule": self.name, "feedback_ohm": self.feedback_ohm}
