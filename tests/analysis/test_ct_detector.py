"""Live CT detection: same answer as the offline analysis in any chunking, once, promptly."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.analysis.tem import (
    CT_SMOOTHING_S,
    CT_SUSTAIN_SAMPLES,
    CtDetector,
    DefaultTemSettings,
    compute_tem_parameters,
)

from .synthetic_tem import TraceSpec, random_spec, sample


def feed_in_chunks(
    detector: CtDetector, t: np.ndarray, amp: np.ndarray, cuts: np.ndarray
) -> list[tuple[float, float]]:
    """Feed the trace split at ``cuts``; return (CT, time of the last sample fed) per report."""
    reports = []
    for t_chunk, a_chunk in zip(np.split(t, cuts), np.split(amp, cuts), strict=True):
        ct = detector.feed(t_chunk, a_chunk)
        if ct is not None:
            reports.append((ct, float(t_chunk[-1])))
    return reports


def random_cuts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Chunk boundaries mixing single samples, small and large chunks."""
    count = int(rng.integers(1, min(n - 1, 600)))
    return np.sort(rng.choice(np.arange(1, n), size=count, replace=False))


@pytest.mark.parametrize("rate_hz", [1, 10, 100])
@pytest.mark.parametrize("category", ["normal", "extem", "hypo_weak", "hyper", "no_clot"])
def test_any_chunking_gives_the_offline_ct_exactly_once(category: str, rate_hz: int) -> None:
    rng = np.random.default_rng(rate_hz)
    for seed in range(2):
        spec = random_spec(category, seed)
        t, amp = sample(spec, rate_hz, seed, missing=4)
        offline = compute_tem_parameters(t, amp).ct_s
        for _ in range(4):
            reports = feed_in_chunks(CtDetector(), t, amp, random_cuts(rng, t.size))
            if offline is None:
                assert reports == []
            else:
                assert [ct for ct, _ in reports] == [offline]


@pytest.mark.parametrize("rate_hz", [1, 10, 100])
def test_ct_is_reported_as_soon_as_the_crossing_is_sustained(rate_hz: int) -> None:
    spec = random_spec("normal", 3)
    t, amp = sample(spec, rate_hz, 3)
    start = int(np.searchsorted(t, spec.ct_s - 30.0))
    detector = CtDetector()
    assert detector.feed(t[:start], amp[:start]) is None
    reported_at = None
    for i in range(start, t.size):
        ct = detector.feed(t[i : i + 1], amp[i : i + 1])
        if ct is not None:
            reported_at = float(t[i])
            break
    assert reported_at is not None and detector.ct_s is not None
    latency = reported_at - detector.ct_s
    assert 0.0 < latency <= 2.0 * CT_SMOOTHING_S + (CT_SUSTAIN_SAMPLES + 1) / rate_hz
    assert detector.status == "found"
    assert detector.feed(t[i + 1 :], amp[i + 1 :]) is None
    assert detector.ct_s == compute_tem_parameters(t, amp).ct_s


@pytest.mark.parametrize("rate_hz", [1, 10, 100])
@pytest.mark.parametrize("spike_mm", [3.0, 25.0, 90.0])
def test_single_spike_on_flat_baseline_is_not_a_clot(rate_hz: int, spike_mm: float) -> None:
    spec = TraceSpec(ct_s=1e9, mcf_mm=0.0, n=1.0, k_per_s=0.001, duration_s=600.0)
    t, amp = sample(spec, rate_hz, 7)
    amp[t.size // 2] += spike_mm
    detector = CtDetector()
    assert feed_in_chunks(detector, t, amp, np.arange(50, t.size, 50)) == []
    assert detector.status == "searching"
    params = compute_tem_parameters(t, amp)
    assert params.ct_s is None
    assert params.notes["CT_s"] == "no clot: amplitude never reached 2 mm within 10.0 min"


@pytest.mark.parametrize("rate_hz", [1, 10, 100])
def test_spike_before_the_clot_does_not_move_ct(rate_hz: int) -> None:
    spec = TraceSpec.from_cft(ct_s=400.0, cft_s=120.0, mcf_mm=60.0, n=2.0)
    t, amp = sample(spec, rate_hz, 11, noise_sd_mm=0.0, quantum_mm=None)
    clean = compute_tem_parameters(t, amp).ct_s
    spiked = amp.copy()
    spiked[int(np.searchsorted(t, 200.0))] += 40.0
    assert clean is not None
    assert abs(clean - 400.0) <= 1.0 / rate_hz
    assert compute_tem_parameters(t, spiked).ct_s == clean
    step = 7 * max(1, rate_hz // 10)
    assert feed_in_chunks(CtDetector(), t, spiked, np.arange(step, t.size, step))[0][0] == clean


def test_other_threshold_matches_offline_settings() -> None:
    spec = random_spec("normal", 5)
    t, amp = sample(spec, 10, 5)
    settings = DefaultTemSettings(ct_threshold_mm=4.0)
    offline = compute_tem_parameters(t, amp, settings).ct_s
    reports = feed_in_chunks(CtDetector(threshold_mm=4.0), t, amp, np.arange(33, t.size, 33))
    assert offline is not None and offline > spec.ct_s
    assert [ct for ct, _ in reports] == [offline]


def test_trace_already_clotted_at_start_never_reports_ct() -> None:
    t = np.arange(0.0, 120.0, 0.1)
    amp = np.full(t.size, 35.0)
    detector = CtDetector()
    assert feed_in_chunks(detector, t, amp, np.arange(10, t.size, 10)) == []
    assert detector.status == "clotted_at_start"
    assert detector.ct_s is None


def test_chunks_must_continue_in_time() -> None:
    detector = CtDetector()
    detector.feed(np.array([0.0, 0.1, 0.2]), np.zeros(3))
    with pytest.raises(ValueError, match="continue to increase across chunks"):
        detector.feed(np.array([0.2, 0.3]), np.zeros(2))
    assert detector.feed(np.array([]), np.array([])) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold_mm": 0.0}, "threshold_mm must be positive"),
        ({"sustain_samples": 0}, "sustain_samples must be at least 1"),
        ({"smoothing_s": -1.0}, "smoothing_s must be positive"),
    ],
)
def test_detector_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CtDetector(**kwargs)  # type: ignore[arg-type]
