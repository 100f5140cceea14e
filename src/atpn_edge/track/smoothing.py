"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012) for landmarks and head pose, numpy only.

A first-order low-pass filter whose cutoff rises with the signal's speed: slow motion is smoothed
hard (jitter goes), fast motion passes with little lag. The cutoff is
    f_c = min_cutoff + beta * |dx/dt|,    alpha(f) = 1 / (1 + 1 / (2 pi f dt)).
`value_scale` divides the speed before `beta` sees it, so landmark filters can take the face size
and behave the same for a small and a large face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff: float = 1.0  # Hz: smoothing of a still signal (lower = smoother, more lag)
    beta: float = 0.05  # speed coefficient (higher = less lag on fast motion)
    derivative_cutoff: float = 1.0  # Hz: smoothing of the speed estimate

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.derivative_cutoff <= 0 or self.beta < 0:
            raise ValueError(f"OneEuroConfig needs min_cutoff > 0, derivative_cutoff > 0, beta >= 0: {self}")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters an array of any fixed shape, element-wise; `reset()` forgets the history."""

    def __init__(self, config: OneEuroConfig = OneEuroConfig()) -> None:
        self.config = config
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def reset(self) -> None:
        self._value = self._speed = self._time = None

    def __call__(self, value: np.ndarray, timestamp: float, value_scale: float = 1.0) -> np.ndarray:
        value = np.asarray(value, np.float64)
        if self._value is None or self._value.shape != value.shape or self._time is None or timestamp <= self._time:
            self._value, self._speed, self._time = value.copy(), np.zeros_like(value), timestamp
            return value.copy()
        dt = timestamp - self._time
        c = self.config
        speed = (value - self._value) / dt
        self._speed = self._speed + _alpha(c.derivative_cutoff, dt) * (speed - self._speed)
        cutoff = c.min_cutoff + c.beta * np.abs(self._speed) / max(value_scale, 1e-9)
        self._value = self._value + _alpha(cutoff, dt) * (value - self._value)
        self._time = timestamp
        return self._value.copy()
