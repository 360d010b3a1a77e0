"""Growing numpy buffers for live curves (amortised O(1) append; no Python lists re-plotted)."""

from __future__ import annotations

import numpy as np

__all__ = ["XYBuffer"]


class XYBuffer:
    """x/y samples in preallocated arrays that double when full.

    :attr:`x` and :attr:`y` are views of the filled part: handing them to a
    plot costs nothing, and later appends never change a view already given out.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._x = np.empty(max(16, int(capacity)))
        self._y = np.empty_like(self._x)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def _reserve(self, n: int) -> None:
        if n > len(self._x):
            size = max(n, 2 * len(self._x))
            x, y = np.empty(size), np.empty(size)
            x[:self.n], y[:self.n] = self._x[:self.n], self._y[:self.n]
            self._x, self._y = x, y

    def append(self, x: float, y: float) -> None:
        self._reserve(self.n + 1)
        self._x[self.n], self._y[self.n] = x, y
        self.n += 1

    def extend(self, x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
        if x.shape != y.shape:
            raise ValueError(f"x and y differ in length: {x.shape} vs {y.shape}")
        self._reserve(self.n + len(x))
        self._x[self.n:self.n + len(x)], self._y[self.n:self.n + len(y)] = x, y
        self.n += len(x)

    def clear(self) -> None:
        self.n = 0

    @property
    def x(self) -> np.ndarray:
        return self._x[:self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[:self.n]

    @property
    def last(self) -> tuple[float, float] | None:
        return (float(self._x[self.n - 1]), float(self._y[self.n - 1])) if self.n else None
