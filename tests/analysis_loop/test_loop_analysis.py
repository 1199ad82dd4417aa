"""Loop clotting time and platelet consumption."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.analysis.loop import (
    LoopClotDetector,
    loop_clot_time,
    platelet_consumption_pct,
)


def _trace(clot_s: float | None, rate_hz: float = 1.0, duration_s: float = 3600.0, seed: int = 0):
    t = np.arange(0.0, duration_s + 1e-9, 1.0 / rate_hz)
    m = np.full_like(t, 1000.0)
    if clot_s is not None:
        m = 1000.0 / (1.0 + np.exp((t - clot_s) / 20.0))  # crosses 500 at clot_s
    rng = np.random.default_rng(seed)
    return t, np.clip(m + rng.normal(0, 5, t.size), 0, 1000)


@pytest.mark.parametrize("clot_s", [300.0, 1234.5, 3000.0])
@pytest.mark.parametrize("rate_hz", [1.0, 10.0])
def test_clot_time_within_a_sample_period_of_the_crossing(clot_s: float, rate_hz: float) -> None:
    t, m = _trace(clot_s, rate_hz)
    result = loop_clot_time(t, m, threshold_permille=500, hold_s=30, duration_s=3600)
    assert result.clot_time_s is not None
    assert abs(result.clot_time_s - clot_s) <= 1.0 / rate_hz + 1.0


def test_no_clot_is_said() -> None:
    t, m = _trace(None)
    result = loop_clot_time(t, m, 300, 30, 3600)
    assert result.clot_time_s is None and result.note == "no clot within 60 min"


def test_a_brief_dip_is_not_a_clot_and_a_late_fall_needs_its_hold() -> None:
    t, m = _trace(None)
    m[100:110] = 100.0  # 10 s dip (an air bubble passing the sensor)
    m[-10:] = 50.0  # falls in the last 10 s: the hold time is not reached
    result = loop_clot_time(t, m, 300, 30, 3600)
    assert result.clot_time_s is None
    assert "ended before the 30 s hold" in result.note


def test_live_detector_agrees_with_offline_for_any_chunking() -> None:
    t, m = _trace(900.0)
    offline = loop_clot_time(t, m, 300, 30).clot_time_s
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, t.size), size=40, replace=False))
    det = LoopClotDetector(300, 30)
    found = [det.feed(a, b) for a, b in zip(np.split(t, cuts), np.split(m, cuts), strict=True)]
    assert [f for f in found if f is not None] == [offline]


def test_platelet_consumption() -> None:
    assert platelet_consumption_pct(250.0, 40.0) == pytest.approx(84.0)
    with pytest.raises(ValueError, match="baseline"):
        platelet_consumption_pct(0.0, 10.0)
