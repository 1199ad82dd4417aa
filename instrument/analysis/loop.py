"""Chandler-loop analysis: loop clotting time from the motion signal, platelet consumption.

Loop clotting time (docs/analysis.md): the first time the motion signal goes below the
protocol's threshold and then stays below it for the protocol's hold time; "no clot
within T" otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class LoopClotResult:
    clot_time_s: float | None
    note: str = ""


def loop_clot_time(
    t_s: NDArray[np.float64],
    motion_permille: NDArray[np.float64],
    threshold_permille: float,
    hold_s: float,
    duration_s: float | None = None,
) -> LoopClotResult:
    """First time the motion stays below ``threshold_permille`` for ``hold_s`` seconds."""
    t = np.asarray(t_s, dtype=np.float64)
    m = np.asarray(motion_permille, dtype=np.float64)
    if t.shape != m.shape:
        raise ValueError(f"time and motion differ in length ({t.size} vs {m.size})")
    if t.size and np.any(np.diff(t) <= 0):
        raise ValueError("time stamps must increase")
    if duration_s is not None:
        keep = t <= duration_s
        t, m = t[keep], m[keep]
    span = f"{(duration_s if duration_s is not None else (t[-1] if t.size else 0)) / 60:g} min"
    if t.size == 0:
        return LoopClotResult(None, "no motion data")
    below = m < threshold_permille
    if not below.any():
        return LoopClotResult(None, f"no clot within {span}")
    # start index of every run of consecutive below-threshold samples
    edges = np.flatnonzero(np.diff(np.concatenate(([0], below.astype(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2] - 1
    for start, end in zip(starts, ends, strict=True):
        run_ends_with_trace = end == t.size - 1
        held = t[end] - t[start]
        if held >= hold_s:
            return LoopClotResult(float(t[start]))
        if run_ends_with_trace:
            return LoopClotResult(
                None,
                f"no clot within {span}: motion fell below {threshold_permille:g} ‰ at "
                f"{t[start]:.0f} s but the run ended before the {hold_s:g} s hold",
            )
    return LoopClotResult(None, f"no clot within {span}")


class LoopClotDetector:
    """Live loop clotting: feed chunks of (t, motion); returns the clot time once."""

    def __init__(self, threshold_permille: float, hold_s: float) -> None:
        self.threshold = threshold_permille
        self.hold_s = hold_s
        self._below_since: float | None = None
        self.clot_time_s: float | None = None

    def feed(self, t_s: NDArray[np.float64], motion: NDArray[np.float64]) -> float | None:
        if self.clot_time_s is not None:
            return None
        for t, m in zip(t_s.tolist(), motion.tolist(), strict=True):
            if m < self.threshold:
                if self._below_since is None:
                    self._below_since = t
                if t - self._below_since >= self.hold_s:
                    self.clot_time_s = self._below_since
                    return self.clot_time_s
            else:
                self._below_since = None
        return None


def platelet_consumption_pct(baseline_e9_per_l: float, later_e9_per_l: float) -> float:
    """Platelet consumption: fall from the first to a later count, % of the first."""
    if baseline_e9_per_l <= 0:
        raise ValueError(f"baseline platelet count must be > 0 (got {baseline_e9_per_l})")
    return (baseline_e9_per_l - later_e9_per_l) / baseline_e9_per_l * 100.0
