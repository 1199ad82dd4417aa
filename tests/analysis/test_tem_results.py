"""TEM results: names and units of both styles, notes, settings, input checks and speed."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import pytest

from instrument.analysis.tem import (
    DefaultTemSettings,
    TemParameters,
    TemSettings,
    compute_tem_parameters,
)

from .synthetic_tem import TraceSpec, random_spec, sample, truth_of

ROTEM_KEYS = [
    "CT_s",
    "CFT_s",
    "alpha_deg",
    "MCF_mm",
    "A5_mm",
    "A10_mm",
    "A20_mm",
    "LI30_pct",
    "ML_pct",
]
TEG_KEYS = ["R_min", "K_min", "angle_deg", "MA_mm", "LY30_pct", "G_dyn_cm2"]


def lysing_trace() -> tuple[np.ndarray, np.ndarray, TraceSpec]:
    spec = replace(
        TraceSpec.from_cft(ct_s=300.0, cft_s=100.0, mcf_mm=60.0, n=2.0),
        lysis_fraction=0.5,
        lysis_onset_s=900.0,
        lysis_tau_s=900.0,
    )
    t, amp = sample(spec, 10, 1)
    return t, amp, spec


def test_teg_style_names_units_and_values() -> None:
    t, amp, spec = lysing_trace()
    p = compute_tem_parameters(t, amp, DefaultTemSettings(), style="teg")
    teg = p.to_dict()
    assert list(teg) == TEG_KEYS
    assert p.ct_s is not None and p.cft_s is not None and p.mcf_mm is not None
    assert p.alpha_deg is not None and p.ly30_pct is not None
    assert teg["R_min"] == round(p.ct_s / 60.0, 2)
    assert teg["R_min"] == pytest.approx(5.0, abs=0.02)
    assert teg["K_min"] == round(p.cft_s / 60.0, 2)
    assert teg["angle_deg"] == round(p.alpha_deg, 1)
    assert teg["MA_mm"] == round(p.mcf_mm, 2)
    assert teg["G_dyn_cm2"] == round(5000.0 * p.mcf_mm / (100.0 - p.mcf_mm))
    truth = truth_of(spec)
    assert truth.ly30_pct is not None and truth.ly30_pct > 10.0
    assert teg["LY30_pct"] == pytest.approx(truth.ly30_pct, abs=1.5)
    assert list(p.to_dict("rotem")) == ROTEM_KEYS


@pytest.mark.parametrize("ma_mm", [20.0, 50.0, 75.0])
def test_shear_modulus_from_ma(ma_mm: float) -> None:
    spec = TraceSpec(ct_s=120.0, mcf_mm=ma_mm, n=1.0, k_per_s=0.02, duration_s=1800.0)
    p = compute_tem_parameters(*sample(spec, 10, 3))
    assert p.g_dyn_cm2 is not None
    assert p.g_dyn_cm2 == pytest.approx(5000.0 * ma_mm / (100.0 - ma_mm), rel=0.005)
    if ma_mm == 50.0:
        assert p.to_dict("teg")["G_dyn_cm2"] == pytest.approx(5000.0, abs=10.0)


def test_values_are_rounded_per_unit() -> None:
    t, amp, _ = lysing_trace()
    p = compute_tem_parameters(t, amp)
    rotem = p.to_dict()
    exact = {
        "CT_s": (p.ct_s, 1),
        "CFT_s": (p.cft_s, 1),
        "alpha_deg": (p.alpha_deg, 1),
        "MCF_mm": (p.mcf_mm, 2),
        "A10_mm": (p.amplitudes_mm[10], 2),
        "LI30_pct": (p.lysis_index_pct, 1),
        "ML_pct": (p.ml_pct, 1),
    }
    for key, (value, digits) in exact.items():
        assert value is not None
        assert rotem[key] == round(value, digits)
    assert sum(rotem[key] != value for key, (value, _) in exact.items()) >= 5


@dataclass(frozen=True)
class MethodSettings:
    """A settings object from elsewhere: only the attribute names matter."""

    ct_threshold_mm: float
    cft_threshold_mm: float
    amplitude_times_min: tuple[float, ...]
    lysis_index_time_min: float
    alpha_chart_mm_per_min: float


def test_any_object_with_the_settings_attributes_is_accepted() -> None:
    t, amp, spec = lysing_trace()
    settings: TemSettings = MethodSettings(2.0, 20.0, (5, 7.5, 15), 45, 2.0)
    p = compute_tem_parameters(t, amp, settings)
    rotem = p.to_dict()
    assert [k for k in rotem if k.startswith(("A", "LI"))] == [
        "A5_mm",
        "A7.5_mm",
        "A15_mm",
        "LI45_pct",
    ]
    assert rotem["A7.5_mm"] == pytest.approx(float(spec.amplitude(spec.ct_s + 450.0)), abs=0.1)
    mcf = truth_of(spec).mcf_mm
    assert mcf is not None
    assert p.lysis_index_pct == pytest.approx(
        float(spec.amplitude(spec.ct_s + 2700.0)) / mcf * 100.0, abs=0.5
    )


def test_alpha_follows_the_chart_convention() -> None:
    t, amp, spec = lysing_trace()
    two = compute_tem_parameters(t, amp, DefaultTemSettings(alpha_chart_mm_per_min=2.0))
    four = compute_tem_parameters(t, amp, DefaultTemSettings(alpha_chart_mm_per_min=4.0))
    assert two.alpha_deg is not None and four.alpha_deg is not None
    slope_mm_min = spec.slope_at_ct() * 60.0
    assert math.tan(math.radians(two.alpha_deg)) == pytest.approx(slope_mm_min / 2.0, rel=0.03)
    assert math.tan(math.radians(four.alpha_deg)) == pytest.approx(
        math.tan(math.radians(two.alpha_deg)) / 2.0, rel=1e-9
    )


def test_unknown_style_is_rejected() -> None:
    t, amp, _ = lysing_trace()
    with pytest.raises(ValueError, match="unknown TEM result style 'tem'"):
        compute_tem_parameters(t, amp, style="tem")
    with pytest.raises(ValueError, match="use 'rotem' or 'teg'"):
        compute_tem_parameters(t, amp).to_dict("TEG")


def assert_all_none_with_note(p: TemParameters, note: str) -> None:
    for style, keys in (("rotem", ROTEM_KEYS), ("teg", TEG_KEYS)):
        values = p.to_dict(style)
        assert list(values) == keys
        assert all(v is None for v in values.values())
        assert all(p.notes[k] == note for k in keys)


def test_empty_trace_has_no_clot() -> None:
    p = compute_tem_parameters(np.array([]), np.array([]))
    assert_all_none_with_note(p, "no clot: amplitude never reached 2 mm within 0.0 min")


def test_trace_without_clot_reports_every_parameter_missing() -> None:
    spec = random_spec("no_clot", 4)
    p = compute_tem_parameters(*sample(spec, 10, 4), style="teg")
    assert_all_none_with_note(p, "no clot: amplitude never reached 2 mm within 60.0 min")


def test_short_recording_explains_what_was_not_reached() -> None:
    spec = replace(TraceSpec.from_cft(ct_s=240.0, cft_s=90.0, mcf_mm=55.0, n=2.0), duration_s=960)
    p = compute_tem_parameters(*sample(spec, 10, 2))
    assert p.amplitudes_mm[5] is not None and p.amplitudes_mm[10] is not None
    assert p.amplitudes_mm[20] is None and p.lysis_index_pct is None and p.ly30_pct is None
    assert p.notes["A20_mm"] == "A20 not reached: the trace ends 12.0 min after CT (needs 20 min)"
    assert (
        p.notes["LI30_pct"] == "LI30 not reached: the trace ends 12.0 min after CT (needs 30 min)"
    )
    assert p.notes["LY30_pct"].startswith("LY30 not reached: the trace ends")
    assert p.notes["LY30_pct"].endswith("after MA (needs 30 min)")
    assert set(p.notes) == {"A20_mm", "LI30_pct", "LY30_pct"}


def test_clot_present_from_the_start_has_no_ct_but_a_firmness() -> None:
    t = np.arange(0.0, 1800.0, 0.1)
    amp = np.round(40.0 + np.random.default_rng(0).normal(0.0, 0.05, t.size), 2)
    p = compute_tem_parameters(t, amp)
    assert p.ct_s is None and p.cft_s is None and p.alpha_deg is None
    assert (
        p.notes["CT_s"] == "CT undetermined: amplitude was already ≥ 2 mm at the start of the trace"
    )
    assert p.notes["R_min"].startswith("R undetermined")
    assert p.mcf_mm == pytest.approx(40.0, abs=0.1)
    assert p.amplitudes_mm[5] is None and "A5_mm" in p.notes


def test_spike_on_the_plateau_does_not_raise_mcf() -> None:
    spec = TraceSpec.from_cft(ct_s=200.0, cft_s=80.0, mcf_mm=60.0, n=1.5)
    t, amp = sample(spec, 10, 9)
    amp[int(np.searchsorted(t, 2400.0))] += 30.0
    p = compute_tem_parameters(t, amp)
    truth = truth_of(spec)
    assert p.mcf_mm is not None and truth.mcf_mm is not None
    assert abs(p.mcf_mm - truth.mcf_mm) < 0.2


def test_time_axis_may_start_anywhere() -> None:
    t, amp, _ = lysing_trace()
    at_zero = compute_tem_parameters(t, amp)
    shifted = compute_tem_parameters(t + 1000.0, amp)
    assert at_zero.ct_s is not None and shifted.ct_s is not None
    assert shifted.ct_s - at_zero.ct_s == pytest.approx(1000.0, abs=1e-6)
    assert shifted.cft_s == pytest.approx(at_zero.cft_s, abs=1e-6)


@pytest.mark.parametrize(
    ("t", "amp", "message"),
    [
        (np.arange(5.0), np.zeros(4), "t_s has 5 samples but amp_mm has 4"),
        (np.array([0.0, 1.0, 1.0, 2.0]), np.zeros(4), r"t_s\[2\] = 1 s follows t_s\[1\] = 1 s"),
        (np.array([0.0, 2.0, 1.0]), np.zeros(3), "t_s must increase strictly"),
        (np.arange(4.0), np.array([0.0, np.nan, 1.0, 2.0]), r"amp_mm\[1\] is nan"),
        (np.array([0.0, np.inf]), np.zeros(2), r"t_s\[1\] is inf"),
        (np.zeros((2, 2)), np.zeros((2, 2)), "must be one-dimensional"),
        (np.arange(3.0), np.array([0.0, 5e3, 0.0]), "outside ±1000 mm"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(t: np.ndarray, amp: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_tem_parameters(t, amp)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (DefaultTemSettings(ct_threshold_mm=20.0), "0 < ct_threshold_mm < cft_threshold_mm"),
        (DefaultTemSettings(alpha_chart_mm_per_min=0.0), "alpha_chart_mm_per_min must be"),
        (DefaultTemSettings(amplitude_times_min=(5, -10)), "amplitude_times_min must hold"),
        (DefaultTemSettings(lysis_index_time_min=0), "lysis_index_time_min must hold"),
    ],
)
def test_bad_settings_are_rejected(settings: DefaultTemSettings, message: str) -> None:
    t, amp, _ = lysing_trace()
    with pytest.raises(ValueError, match=message):
        compute_tem_parameters(t, amp, settings)


def test_hour_at_100_hz_is_analysed_well_within_100_ms() -> None:
    spec = random_spec("lysis", 2)
    t, amp = sample(spec, 100, 2, missing=5)
    assert t.size > 359_000
    compute_tem_parameters(t, amp)
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        compute_tem_parameters(t, amp)
        best = min(best, time.perf_counter() - started)
    assert best < 0.1
