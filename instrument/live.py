"""Bounded live display buffers, filled by acquisition threads and read by views.

The full data lives in storage; a display buffer keeps at most ``max_points`` points of a
signal by halving its resolution whenever it fills, so hours of 100 Hz data stay small.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray


class LiveTrace:
    """An append-only (t, value) series with bounded memory; thread-safe."""

    def __init__(self, max_points: int = 20_000) -> None:
        if max_points < 16 or max_points % 2:
            raise ValueError("max_points must be an even number ≥ 16")
        self.max_points = max_points
        self._t = np.empty(max_points, dtype=np.float64)
        self._v = np.empty(max_points, dtype=np.float64)
        self._n = 0
        self._stride = 1
        self._skip = 0
        self._lock = threading.Lock()
        self.version = 0
        self.total_points = 0

    def append(self, t_s: float, value: float) -> None:
        with self._lock:
            self.total_points += 1
            if self._skip:
                self._skip -= 1
                return
            if self._n == self.max_points:
                half = self.max_points // 2
                self._t[:half] = self._t[0::2]
                self._v[:half] = self._v[0::2]
                self._n = half
                self._stride *= 2
            self._t[self._n] = t_s
            self._v[self._n] = value
            self._n += 1
            self._skip = self._stride - 1
            self.version += 1

    def snapshot(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Copies of the points held now, oldest first."""
        with self._lock:
            return self._t[: self._n].copy(), self._v[: self._n].copy()

    def last(self) -> tuple[float, float] | None:
        with self._lock:
            if self._n == 0:
                return None
            return float(self._t[self._n - 1]), float(self._v[self._n - 1])

    def __len__(self) -> int:
        return self._n
