"""Optimisers that apply a gradient estimate to a chip's parameters.

Continuous optimisers (SGD, momentum, Adam) work in *normalised* coordinates:
every parameter is measured as a fraction of its allowed range, so a learning
rate of 0.01 moves a parameter by at most about 1 % of its range per step,
whatever its unit.  They keep a full-precision shadow copy of the parameters,
so updates smaller than one pot tap accumulate instead of being rounded away;
the chip gets the shadow values and reports what it took.

:class:`TapStep` is the clocked hardware rule: every parameter moves one
device step (one pot tap) in the descent direction, or stays if its gradient
is inside a dead band.
"""

from __future__ import annotations

import abc
import warnings

import numpy as np

from labtrain.chip.base import Chip

__all__ = ["Optimizer", "SGD", "Momentum", "Adam", "TapStep", "make_optimizer", "OPTIMIZERS"]


class Optimizer(abc.ABC):
    """Base class: ``apply(chip, gradient, mask)`` updates the chip, returns what it took."""

    name = "optimizer"

    def __init__(self) -> None:
        self.shadow: np.ndarray | None = None  # normalised parameters in [0, 1]
        self.steps = 0

    @abc.abstractmethod
    def _delta(self, grad: np.ndarray) -> np.ndarray:
        """Normalised parameter change for a normalised gradient."""

    def apply(self, chip: Chip, gradient: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        spec = chip.parameter_spec
        if self.shadow is None:
            self.shadow = (chip.get_parameters() - spec.lower) / spec.span
        grad = np.asarray(gradient, float) * spec.span
        if mask is not None:
            grad = np.where(mask, grad, 0.0)
        self.steps += 1
        delta = self._delta(grad)
        if mask is not None:
            delta = np.where(mask, delta, 0.0)
        self.shadow = np.clip(self.shadow + delta, 0.0, 1.0)
        target = spec.lower + self.shadow * spec.span
        if mask is not None:
            # Masked-out parameters keep exactly what the chip holds (no round-trip drift).
            target = np.where(mask, target, chip.get_parameters())
        return chip.set_parameters(target)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that fully describe the optimiser's state (for checkpoints)."""
        state = {"steps": np.array(self.steps)}
        if self.shadow is not None:
            state["shadow"] = self.shadow.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.steps = int(state["steps"])
        self.shadow = np.array(state["shadow"], float) if "shadow" in state else None


def _learning_rate(learning_rate: float | None, lr: float | None, who: str) -> float:
    """``learning_rate``, or the deprecated ``lr=`` keyword (the experiment-file key is ``learning_rate``)."""
    if lr is not None:
        if learning_rate is not None:
            raise TypeError(f"{who}: give learning_rate, not both learning_rate and lr")
        warnings.warn(f"{who}(lr=...) is deprecated: use learning_rate=... (the name experiment files and run "
                      f"files use)", DeprecationWarning, stacklevel=3)
        learning_rate = lr
    if learning_rate is None:
        raise TypeError(f"{who}: missing learning_rate")
    return float(learning_rate)


class SGD(Optimizer):
    """Plain gradient descent: ``delta = -learning_rate * grad``.

    Parameters
    ----------
    learning_rate : float
        Step size in normalised units (fraction of each parameter's range); ``[learning] learning_rate``
        in experiment files.  (``lr=`` is a deprecated alias.)
    lr_halflife_steps : float
        Exponential step-size decay: step ``t`` (1, 2, ...) uses
        ``learning_rate * 2**(-(t - 1) / lr_halflife_steps)``.  0: constant.  The
        schedule depends only on the step count, so the first ``n`` steps of
        a longer run are the same steps (and a resumed run continues it).
    """

    name = "sgd"

    def __init__(self, learning_rate: float | None = None, lr_halflife_steps: float = 0.0, *,
                 lr: float | None = None) -> None:
        super().__init__()
        if lr_halflife_steps < 0:
            raise ValueError(f"lr_halflife_steps must be >= 0, got {lr_halflife_steps}")
        self.learning_rate = _learning_rate(learning_rate, lr, type(self).__name__)
        self.lr_halflife_steps = float(lr_halflife_steps)

    @property
    def lr(self) -> float:
        """Deprecated alias of :attr:`learning_rate`."""
        return self.learning_rate

    @lr.setter
    def lr(self, value: float) -> None:
        self.learning_rate = float(value)

    @property
    def current_lr(self) -> float:
        """Step size of the current step ``self.steps`` (``learning_rate`` before the first)."""
        if not self.lr_halflife_steps or self.steps < 1:
            return self.learning_rate
        return self.learning_rate * 2.0 ** (-(self.steps - 1) / self.lr_halflife_steps)

    def _delta(self, grad: np.ndarray) -> np.ndarray:
        return -self.current_lr * grad


class Momentum(SGD):
    """Heavy-ball momentum: ``v = mu v + grad``, ``delta = -learning_rate v``."""

    name = "momentum"

    def __init__(self, learning_rate: float | None = None, momentum: float = 0.9, lr_halflife_steps: float = 0.0,
                 *, lr: float | None = None) -> None:
        super().__init__(_learning_rate(learning_rate, lr, "Momentum"), lr_halflife_steps)
        self.momentum = float(momentum)
        self.velocity: np.ndarray | None = None

    def _delta(self, grad: np.ndarray) -> np.ndarray:
        self.velocity = grad.copy() if self.velocity is None else self.momentum * self.velocity + grad
        return -self.current_lr * self.velocity

    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        if self.velocity is not None:
            state["velocity"] = self.velocity.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        self.velocity = np.array(state["velocity"], float) if "velocity" in state else None


class Adam(SGD):
    """Adam (Kingma & Ba) with bias correction."""

    name = "adam"

    def __init__(self, learning_rate: float | None = None, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, lr_halflife_steps: float = 0.0, *, lr: float | None = None) -> None:
        super().__init__(_learning_rate(learning_rate, lr, "Adam"), lr_halflife_steps)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def _delta(self, grad: np.ndarray) -> np.ndarray:
        if self.m is None or self.v is None:
            self.m, self.v = np.zeros_like(grad), np.zeros_like(grad)
        self.m = m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = v = self.beta2 * self.v + (1 - self.beta2) * grad**2
        m_hat = m / (1 - self.beta1**self.steps)
        v_hat = v / (1 - self.beta2**self.steps)
        return -self.current_lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        if self.m is not None and self.v is not None:
            state["m"], state["v"] = self.m.copy(), self.v.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        self.m = np.array(state["m"], float) if "m" in state else None
        self.v = np.array(state["v"], float) if "v" in state else None


class TapStep(Optimizer):
    """Clocked rule: each parameter moves one device step against its gradient's sign.

    Parameters
    ----------
    deadband : float
        Normalised gradients with ``|grad| <= deadband`` leave their parameter
        alone (a comparator's dead band on the bench).
    """

    name = "tap_step"

    def __init__(self, deadband: float = 0.0) -> None:
        super().__init__()
        self.deadband = float(deadband)

    def _delta(self, grad: np.ndarray) -> np.ndarray:  # pragma: no cover - apply() is overridden
        return -np.sign(grad)

    def apply(self, chip: Chip, gradient: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        grad = np.asarray(gradient, float) * chip.parameter_spec.span
        direction = -np.sign(grad) * (np.abs(grad) > self.deadband)
        if mask is not None:
            direction = np.where(mask, direction, 0.0)
        self.steps += 1
        return chip.step_parameters(direction)


OPTIMIZERS = ("sgd", "momentum", "adam", "tap_step")


def make_optimizer(name: str, learning_rate: float | None = None, momentum: float = 0.9, deadband: float = 0.0,
                   lr_halflife_steps: float = 0.0, *, lr: float | None = None) -> Optimizer:
    """Build an optimiser by name (one of :data:`OPTIMIZERS`); ``lr_halflife_steps`` as in :class:`SGD`
    (``lr=`` is a deprecated alias of ``learning_rate``; ``tap_step`` takes none)."""
    if lr is not None or name != "tap_step":
        learning_rate = _learning_rate(learning_rate, lr, "make_optimizer")
    if name == "sgd":
        return SGD(learning_rate, lr_halflife_steps)
    if name == "momentum":
        return Momentum(learning_rate, momentum, lr_halflife_steps)
    if name == "adam":
        return Adam(learning_rate, lr_halflife_steps=lr_halflife_steps)
    if name == "tap_step":
        return TapStep(deadband)
    raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS}")
