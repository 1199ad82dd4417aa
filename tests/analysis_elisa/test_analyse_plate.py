"""Plate analysis: accuracy on simulated plates, QC findings, flags and input errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from instrument.analysis.elisa import (
    Blank,
    Control,
    CurveFitError,
    ElisaInputError,
    ElisaResult,
    PlateMap,
    QcSettings,
    Sample,
    SampleConcentration,
    Standard,
    analyse_plate,
    inverse_4pl,
    standard_curve_points,
)
from instrument.analysis.plate import PlateReading
from tests.analysis_elisa.synthetic import (
    KIT_4PL,
    KIT_5PL,
    STANDARD_LEVELS,
    default_design,
    simulate_reading,
    true_od,
)


def in_range_errors(cv: float, plates: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative errors of in-range samples, and of an oracle that inverts the true curve."""
    design = default_design()
    plate_map = design.plate_map()
    errors, oracle = [], []
    for seed in range(plates):
        reading = simulate_reading(design, seed, cv=cv)
        result = analyse_plate(reading, plate_map)
        for sid, (true, dilution, wells) in design.samples.items():
            assert 2.0 <= true / dilution <= 60.0  # every sample is inside the standard range
            sample = result.samples[sid]
            if sample.value_ug_per_l is None:  # noise pushed it past an end standard
                continue
            errors.append(sample.value_ug_per_l / true - 1)
            od = np.mean([reading.od[492][w] - reading.od[650][w] for w in wells])
            oracle.append(float(inverse_4pl(od, *KIT_4PL.values())) * dilution / true - 1)
    return np.abs(errors), np.abs(oracle)


def test_recovery_over_120_plates_at_3_percent_read_noise() -> None:
    errors, oracle = in_range_errors(cv=0.03, plates=120)
    print(
        f"\n3 % CV, {errors.size} in-range samples: mean |error| {errors.mean():.1%}, "
        f"95th percentile {np.percentile(errors, 95):.1%}, worst {errors.max():.1%}, "
        f"within 10 %: {np.mean(errors <= 0.10):.1%} "
        f"(true-curve oracle: mean {np.nanmean(oracle):.1%}, worst {np.nanmax(oracle):.1%})"
    )
    assert errors.size >= 0.99 * 120 * 8
    assert errors.mean() < 0.04
    assert np.mean(errors <= 0.10) >= 0.95
    # The fitted curve adds little to what the read noise alone costs.
    assert errors.mean() < 1.35 * np.nanmean(oracle)


def test_recovery_over_100_plates_at_1_percent_read_noise() -> None:
    errors, _ = in_range_errors(cv=0.01, plates=100)
    print(
        f"\n1 % CV, {errors.size} in-range samples: mean |error| {errors.mean():.1%}, "
        f"worst {errors.max():.1%}"
    )
    assert errors.size == 100 * 8
    assert errors.max() < 0.10
    assert errors.mean() < 0.015


def test_clean_plate_passes_with_full_range_and_exact_values() -> None:
    design = default_design()
    result = analyse_plate(simulate_reading(design, 0, cv=0.0), design.plate_map())
    assert result.passed, result.findings
    assert result.failures == ()
    assert (result.lloq_ug_per_l, result.uloq_ug_per_l) == (2.0, 60.0)
    assert result.fit is not None and result.fit.r_squared > 0.9999
    assert result.blank_od_mean == pytest.approx(KIT_4PL["a"], abs=0.01)
    assert result.simulated and result.model == "4PL"
    for std in result.standards:
        assert std.backcalc_ok and std.cv_ok
        assert std.recovery_pct == pytest.approx(100, abs=1.0)
    for sid, (true, dilution, wells) in design.samples.items():
        sample = result.samples[sid]
        assert sample.valid and sample.flag is None
        assert sample.value_ug_per_l == pytest.approx(true, rel=0.01)
        assert (sample.dilution, sample.wells) == (dilution, wells)
    assert result.controls["Low"].in_range and result.controls["High"].in_range
    assert result.controls["High"].value_ug_per_l == pytest.approx(40, rel=0.01)


def test_reference_wavelength_is_optional() -> None:
    design = default_design()
    reading = simulate_reading(design, 3, cv=0.0)
    only_signal = PlateReading((492,), {492: reading.od[492]}, "signal only")
    with pytest.raises(ElisaInputError, match=r"no 650 nm reference reading.*reference_nm=None"):
        analyse_plate(only_signal, design.plate_map())
    result = analyse_plate(only_signal, design.plate_map(), reference_nm=None)
    assert result.passed and result.reference_nm is None
    assert result.samples["S-20"].value_ug_per_l == pytest.approx(20, rel=0.03)


def test_without_blanks_the_curve_absorbs_the_background() -> None:
    design = default_design()
    entries = tuple(e for e in design.plate_map().entries if not isinstance(e, Blank))
    result = analyse_plate(simulate_reading(design, 3, cv=0.0), PlateMap(entries))
    assert result.blank_od_mean == 0.0 and result.blank_wells == ()
    assert result.samples["S-10"].value_ug_per_l == pytest.approx(10, rel=0.01)


def test_5pl_is_selectable_and_recovers_a_5pl_plate() -> None:
    params = KIT_5PL
    levels = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
    design = default_design(samples={"S-6": (6.0, 1.0), "S-45": (45.0, 1.0)}, levels=levels)
    reading = simulate_reading(design, 11, params=params, cv=0.0)

    five = analyse_plate(reading, design.plate_map(), model="5PL")
    four = analyse_plate(reading, design.plate_map(), model="4PL")

    assert five.passed and five.fit is not None and five.fit.model == "5PL"
    assert five.fit.params["g"] == pytest.approx(0.3, rel=0.05)
    assert five.samples["S-6"].value_ug_per_l == pytest.approx(6.0, rel=0.005)
    assert five.samples["S-45"].value_ug_per_l == pytest.approx(45.0, rel=0.005)
    worst5 = max(abs(s.recovery_pct - 100) for s in five.standards)  # type: ignore[operator]
    worst4 = max(abs(s.recovery_pct - 100) for s in four.standards)  # type: ignore[operator]
    assert worst5 < 2.0 and worst4 > 25.0
    assert not four.passed and "STD_BACKCALC" in codes(four)


def test_5pl_noisy_plates_recover_samples() -> None:
    params = KIT_5PL
    levels = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
    design = default_design(samples={"S-6": (6.0, 1.0), "S-45": (45.0, 1.0)}, levels=levels)
    errors = []
    for seed in range(20):
        result = analyse_plate(
            simulate_reading(design, seed, params=params, cv=0.015), design.plate_map(), model="5PL"
        )
        errors += [abs(value(result.samples[s]) / t - 1) for s, (t, _, _) in design.samples.items()]
    assert max(errors) < 0.10


# --- QC findings ----------------------------------------------------------------------------


BAD_MODEL: Any = "3PL"


def codes(result: ElisaResult) -> set[str]:
    return {f.code for f in result.findings}


def value(sample: SampleConcentration) -> float:
    assert sample.value_ug_per_l is not None, sample
    return sample.value_ug_per_l


def test_badly_pipetted_standard_fails_back_calculation_by_name() -> None:
    design = default_design()
    wells = design.standards[15.0]
    reading = simulate_reading(design, 5, cv=0.0, overrides={w: 8.0 for w in wells})
    result = analyse_plate(reading, design.plate_map())

    assert not result.passed
    backcalc = result.findings_with("STD_BACKCALC")
    assert "standard 15 µg/L (wells D1, D2)" in [f.where for f in backcalc]
    [mine] = [f for f in backcalc if f.where.startswith("standard 15 ")]
    assert "outside ±20 %" in mine.message and "pipetting" in mine.message
    [outlier] = result.findings_with("STD_OUTLIER")
    assert outlier.where == "standard 15 µg/L (wells D1, D2)"
    assert "likely pipetting error" in outlier.message and "reads 8.01 µg/L" in outlier.message
    assert not result.standards[3].backcalc_ok


@pytest.mark.parametrize(
    ("level", "pipetted", "seed"),
    [
        (15.0, 10.0, 1),
        (15.0, 22.0, 2),
        (8.0, 5.0, 3),
        (8.0, 12.0, 4),
        (30.0, 45.0, 1),
        (2.0, 3.5, 4),
    ],
)
def test_the_likely_outlier_is_found_even_when_neighbours_fail(
    level: float, pipetted: float, seed: int
) -> None:
    design = default_design()
    overrides = {w: pipetted for w in design.standards[level]}
    result = analyse_plate(simulate_reading(design, seed, overrides=overrides), design.plate_map())
    assert result.findings_with("STD_BACKCALC")
    [outlier] = result.findings_with("STD_OUTLIER")
    assert outlier.where.startswith(f"standard {level:g} µg/L")


def test_end_standards_have_the_wider_tolerance() -> None:
    design = default_design()
    reading = simulate_reading(design, 5, cv=0.0)
    result = analyse_plate(reading, design.plate_map())
    tolerances = [s.tolerance_pct for s in result.standards]
    assert tolerances == [25.0, 20.0, 20.0, 20.0, 20.0, 25.0]


def test_range_ends_at_the_outermost_passing_standards() -> None:
    design = default_design()
    wells = design.standards[2.0]
    reading = simulate_reading(design, 5, cv=0.0, overrides={w: 3.5 for w in wells})
    result = analyse_plate(reading, design.plate_map())
    assert [s.backcalc_ok for s in result.standards] == [True] * 5 + [False]
    assert (result.lloq_ug_per_l, result.uloq_ug_per_l) == (2.0, 30.0)
    assert not result.passed


def test_disagreeing_standard_replicates_give_a_cv_finding() -> None:
    design = default_design()
    first, _ = design.standards[30.0]
    reading = simulate_reading(design, 5, cv=0.0, overrides={first: 20.0})
    result = analyse_plate(reading, design.plate_map())
    [finding] = result.findings_with("STD_CV")
    assert finding.where == "standard 30 µg/L (wells E1, E2)"
    assert "exceeds 15 %" in finding.message and finding.severity == "fail"
    assert not result.passed


def test_disagreeing_sample_replicates_invalidate_that_sample_only() -> None:
    design = default_design()
    first, _ = design.samples["S-20"][2]
    reading = simulate_reading(design, 5, cv=0.0, overrides={first: 12.0})
    result = analyse_plate(reading, design.plate_map())
    assert result.passed
    sample = result.samples["S-20"]
    assert not sample.valid and sample.cv_pct is not None and sample.cv_pct > 15
    assert any("re-assay this sample" in n for n in sample.notes)
    [finding] = result.findings_with("SAMPLE_CV")
    assert finding.severity == "warning" and "S-20" in finding.where
    assert all(s.valid for sid, s in result.samples.items() if sid != "S-20")


def test_control_out_of_range() -> None:
    design = default_design()
    design.controls["High"] = (40.0, 45.0, 55.0, design.controls["High"][3])
    result = analyse_plate(simulate_reading(design, 5, cv=0.0), design.plate_map())
    [finding] = result.findings_with("CONTROL_RANGE")
    assert finding.where == "control 'High' (wells B11, B12)"
    assert "reads 40 µg/L, outside its accepted range 45–55 µg/L" in finding.message
    assert not result.controls["High"].in_range and result.controls["Low"].in_range
    assert not result.passed


def test_non_monotonic_standards_are_reported() -> None:
    design = default_design()
    swapped = {w: 30.0 for w in design.standards[60.0]} | {w: 60.0 for w in design.standards[30.0]}
    result = analyse_plate(
        simulate_reading(design, 5, cv=0.0, overrides=swapped), design.plate_map()
    )
    assert not result.passed
    [finding] = result.findings_with("STD_NON_MONOTONIC")
    assert "non-monotonic standard curve" in finding.message
    assert "standard 60 µg/L" in finding.message and "standard 30 µg/L" in finding.message


def test_too_few_levels_for_qc_is_a_finding() -> None:
    design = default_design(levels=(2.0, 8.0, 30.0, 60.0))
    result = analyse_plate(simulate_reading(design, 5, cv=0.0), design.plate_map())
    [finding] = result.findings_with("STD_TOO_FEW_LEVELS")
    assert "4 standard levels; a 4PL curve needs at least 5" in finding.message
    assert not result.passed
    design6 = default_design()
    result5 = analyse_plate(simulate_reading(design6, 5, cv=0.0), design6.plate_map(), model="5PL")
    assert "STD_TOO_FEW_LEVELS" not in codes(result5)
    design5 = default_design(levels=(2.0, 4.0, 8.0, 30.0, 60.0))
    result5 = analyse_plate(simulate_reading(design5, 5, cv=0.0), design5.plate_map(), model="5PL")
    assert "needs at least 6" in result5.findings_with("STD_TOO_FEW_LEVELS")[0].message


def test_poor_fit_is_reported_through_r_squared() -> None:
    design = default_design()
    scrambled = dict(
        zip(
            [w for wells in design.standards.values() for w in wells],
            [2, 2, 30, 30, 4, 4, 60, 60, 8, 8, 15, 15],
            strict=True,
        )
    )
    reading = simulate_reading(
        design, 5, cv=0.0, overrides={w: float(c) for w, c in scrambled.items()}
    )
    result = analyse_plate(reading, design.plate_map())
    assert result.fit is not None and result.fit.r_squared < 0.98
    assert "FIT_R2" in codes(result) and not result.passed


def test_r_squared_threshold_is_configurable() -> None:
    design = default_design()
    reading = simulate_reading(design, 5)
    strict = QcSettings(min_r_squared=0.999999)
    result = analyse_plate(reading, design.plate_map(), qc=strict)
    assert [f.code for f in result.failures] == ["FIT_R2"]
    assert result.qc is strict


def test_flat_standards_fail_the_fit_without_raising() -> None:
    design = default_design()
    reading = simulate_reading(design, 5)
    for wells in design.standards.values():
        for w in wells:
            reading.od[492][w], reading.od[650][w] = 1.0, 0.04
    result = analyse_plate(reading, design.plate_map())
    assert result.fit is None and not result.passed
    [failed] = result.findings_with("FIT_FAILED")
    assert "all standards give the same response" in failed.message
    assert "STD_NON_MONOTONIC" in codes(result)
    assert all(
        s.flag == "no curve" and s.value_ug_per_l is None and not s.valid
        for s in result.samples.values()
    )
    assert (result.lloq_ug_per_l, result.uloq_ug_per_l) == (None, None)
    with pytest.raises(CurveFitError, match="no fitted curve"):
        standard_curve_points(result)


def test_noise_instead_of_standards_is_caught_by_fit_quality() -> None:
    design = default_design()
    noise = {w: 10.0 for wells in design.standards.values() for w in wells}
    result = analyse_plate(simulate_reading(design, 5, overrides=noise), design.plate_map())
    assert not result.passed
    assert {"FIT_R2", "STD_NON_MONOTONIC", "STD_BACKCALC"} <= codes(result)
    assert result.fit is not None and result.fit.r_squared < 0.5


def test_failed_plate_keeps_values_but_marks_every_sample_invalid() -> None:
    design = default_design()
    design.controls["Low"] = (5.0, 8.0, 9.0, design.controls["Low"][3])
    result = analyse_plate(simulate_reading(design, 2, cv=0.0), design.plate_map())
    assert not result.passed
    assert all(not s.valid for s in result.samples.values())
    assert result.samples["S-10"].value_ug_per_l == pytest.approx(10, rel=0.01)
    assert "the plate failed QC" in result.samples["S-10"].notes[0]


# --- out-of-range samples -------------------------------------------------------------------


def test_samples_above_uloq_get_a_dilution_computed_from_their_od() -> None:
    design = default_design(
        samples={
            "S-200": (200.0, 1.0),
            "S-400": (400.0, 1.0),
            "S-2000x10": (2000.0, 10.0),
            "S-2000": (2000.0, 1.0),
        }
    )
    result = analyse_plate(simulate_reading(design, 5, cv=0.0), design.plate_map())
    assert result.passed
    s200 = result.samples["S-200"]
    assert s200.flag == "> ULOQ" and s200.value_ug_per_l is None and s200.valid
    assert s200.limit_ug_per_l == 60.0
    assert s200.reassay == "re-assay at a 1:20 dilution" and s200.suggested_dilution == 20
    assert result.samples["S-400"].reassay == "re-assay at a 1:50 dilution"
    assert result.samples["S-2000x10"].reassay == "re-assay at a 1:200 dilution"
    assert result.samples["S-2000x10"].limit_ug_per_l == 600.0
    for sid, (true, _, _) in design.samples.items():
        new = result.samples[sid].suggested_dilution
        assert new is not None and 2.0 < true / new < 60.0  # the re-assay lands in range
    assert "cannot be estimated" in result.samples["S-2000"].reassay  # type: ignore[operator]
    assert len(result.findings_with("SAMPLE_ABOVE_ULOQ")) == 4


def test_sample_at_the_plateau_gets_a_conservative_dilution() -> None:
    design = default_design(samples={"S-sat": (50.0, 1.0)})
    reading = simulate_reading(design, 5, cv=0.0)
    for well in design.samples["S-sat"][2]:
        reading.od[492][well] = 3.9
    sample = analyse_plate(reading, design.plate_map()).samples["S-sat"]
    assert sample.flag == "> ULOQ"
    assert sample.reassay is not None and "cannot be estimated" in sample.reassay
    assert sample.suggested_dilution == 100  # aims at 20 × ULOQ, the most it extrapolates


def test_samples_below_lloq() -> None:
    design = default_design(
        samples={"S-neat": (1.0, 1.0), "S-x10": (5.0, 10.0), "S-x50": (1.0, 50.0)}
    )
    result = analyse_plate(simulate_reading(design, 5, cv=0.0), design.plate_map())
    neat = result.samples["S-neat"]
    assert neat.flag == "< LLOQ" and neat.value_ug_per_l is None and neat.limit_ug_per_l == 2.0
    assert neat.reassay is None and neat.suggested_dilution is None
    assert "report as < 2 µg/L" in neat.notes[-1]
    x10 = result.samples["S-x10"]
    assert x10.flag == "< LLOQ" and x10.limit_ug_per_l == 20.0
    assert x10.reassay == "re-assay undiluted" and x10.suggested_dilution == 1
    x50 = result.samples["S-x50"]  # 0.02 µg/L in the well: at the blank, no estimate possible
    assert x50.reassay == "re-assay undiluted"
    assert len(result.findings_with("SAMPLE_BELOW_LLOQ")) == 3
    assert result.passed


def test_below_lloq_suggests_an_intermediate_dilution_when_one_fits() -> None:
    design = default_design(samples={"S-20x50": (20.0, 50.0)})  # 0.4 µg/L in the well
    sample = analyse_plate(simulate_reading(design, 5, cv=0.0), design.plate_map()).samples[
        "S-20x50"
    ]
    assert sample.flag == "< LLOQ"
    assert sample.suggested_dilution == 2 and sample.reassay == "re-assay at a 1:2 dilution"


def test_min_dilution_bounds_the_suggestion() -> None:
    design = default_design(samples={"S-x10": (5.0, 10.0), "S-x2": (1.0, 2.0)})
    qc = QcSettings(min_dilution=2.0)
    result = analyse_plate(simulate_reading(design, 5, cv=0.0), design.plate_map(), qc=qc)
    assert result.samples["S-x10"].reassay == "re-assay at a 1:2 dilution"
    assert result.samples["S-x2"].reassay is None


# --- curve points ---------------------------------------------------------------------------


def test_standard_curve_points_for_plotting() -> None:
    design = default_design()
    result = analyse_plate(simulate_reading(design, 1), design.plate_map())
    x, y = standard_curve_points(result)
    assert x.shape == y.shape == (200,)
    assert x[0] == pytest.approx(1.0) and x[-1] == pytest.approx(120.0)
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)
    x2, y2 = standard_curve_points(result, 50, x_min=2, x_max=60)
    assert x2.size == 50 and x2[0] == pytest.approx(2)
    assert result.fit is not None
    assert np.allclose(y2[[0, -1]], result.fit.predict([2.0, 60.0]))
    with pytest.raises(ValueError, match="x_min < x_max"):
        standard_curve_points(result, x_min=10, x_max=5)


# --- input errors ---------------------------------------------------------------------------


def test_plate_map_without_standards() -> None:
    design = default_design()
    entries = tuple(e for e in design.plate_map().entries if not isinstance(e, Standard))
    with pytest.raises(ElisaInputError, match="no standards"):
        analyse_plate(simulate_reading(design, 1), PlateMap(entries))


def test_too_few_levels_to_fit_at_all() -> None:
    design = default_design(levels=(2.0, 15.0, 60.0))
    with pytest.raises(ElisaInputError, match=r"3 standard level.*4PL curve needs at least 4"):
        analyse_plate(simulate_reading(design, 1), design.plate_map())
    design = default_design(levels=(2.0, 8.0, 15.0, 60.0))
    with pytest.raises(ElisaInputError, match=r"5PL curve needs at least 5 .* QC asks for 6"):
        analyse_plate(simulate_reading(design, 1), design.plate_map(), model="5PL")


def test_well_used_twice() -> None:
    with pytest.raises(
        ElisaInputError, match=r"well C3 is used twice \(by standard 2 µg/L and sample 'S-1'\)"
    ):
        PlateMap((Standard(2.0, ("A1", "C3")), Sample("S-1", 1.0, ("C03", "C4"))))
    with pytest.raises(ElisaInputError, match=r"well A1 is used twice \(by blank\)"):
        PlateMap((Blank(("A1", "a1")),))


def test_well_missing_from_the_reading() -> None:
    design = default_design()
    reading = simulate_reading(design, 1)
    sample_well = design.samples["S-3"][2][0]
    del reading.od[650][sample_well]
    with pytest.raises(
        ElisaInputError, match=rf"simulated-1: .*{sample_well} \(sample 'S-3'\) at 650 nm"
    ):
        analyse_plate(reading, design.plate_map())


def test_signal_wavelength_missing() -> None:
    design = default_design()
    with pytest.raises(ElisaInputError, match="no 450 nm reading \\(it has 492 nm, 650 nm\\)"):
        analyse_plate(simulate_reading(design, 1), design.plate_map(), signal_nm=450)


@pytest.mark.parametrize("dilution", [0.0, -5.0, float("nan"), float("inf")])
def test_dilution_must_be_positive(dilution: float) -> None:
    with pytest.raises(ElisaInputError, match="sample 'S-1': the dilution must be a number > 0"):
        Sample("S-1", dilution, ("A1",))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Standard(0.0, ("A1",)), "a 0 µg/L standard is a blank"),
        (lambda: Standard(-1.0, ("A1",)), "concentration must be a number > 0"),
        (lambda: Standard(2.0, ()), "standard 2 µg/L lists no wells"),
        (lambda: Standard(2.0, ("A13",)), "standard 2 µg/L: 'A13' is not a well"),
        (lambda: Blank("A1"), "wells must be a list of well names"),
        (lambda: Control("C", 5.0, 3.0, ("A1",)), "range 5–3 µg/L is reversed"),
        (lambda: Control(" ", 3.0, 5.0, ("A1",)), "control has an empty name"),
        (lambda: Sample("", 1.0, ("A1",)), "sample has an empty sample_id"),
        (
            lambda: PlateMap((Standard(2.0, ("A1",)), Standard(2.0, ("A2",)))),
            "standard level 2 µg/L appears twice",
        ),
        (
            lambda: PlateMap((Sample("S", 1.0, ("A1",)), Sample("S", 2.0, ("A2",)))),
            "sample_id S appears twice",
        ),
        (
            lambda: analyse_plate(
                simulate_reading(default_design(), 1), default_design().plate_map(), model=BAD_MODEL
            ),
            "unknown curve model",
        ),
    ],
)
def test_plate_map_entries_validate(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ElisaInputError, match=message):
        build()


def test_wells_are_normalised() -> None:
    assert Sample("S", 2.0, ("b07", " C10 ")).wells == ("B7", "C10")
    std = Standard(15, ["D1", "d2"])  # type: ignore[arg-type]
    assert std.conc_ug_per_l == 15.0 and std.wells == ("D1", "D2")
    assert dataclasses.is_dataclass(std)


def test_non_finite_absorbance_in_a_used_well() -> None:
    design = default_design()
    reading = simulate_reading(design, 1)
    reading.od[492]["A1"] = float("nan")
    with pytest.raises(
        ElisaInputError, match="well A1 \\(standard 2 µg/L\\) has absorbance nan at 492 nm"
    ):
        analyse_plate(reading, design.plate_map())


def test_true_od_helper_matches_levels() -> None:
    # Guards the simulator the accuracy figures rest on.
    assert true_od(0.0, KIT_4PL) == KIT_4PL["a"]
    assert true_od(25.0, KIT_4PL) == pytest.approx((KIT_4PL["a"] + KIT_4PL["d"]) / 2)
    assert len(STANDARD_LEVELS) == 6
