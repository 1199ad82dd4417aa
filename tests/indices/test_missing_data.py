"""Missing data never raise: the indices that cannot be computed are None and say why."""

from __future__ import annotations

import json

import pytest

from instrument.analysis.indices import LoopChannelData, LotInfo, TemChannelData, assess_lot
from protocols import MethodFile, load_method
from tests.indices.example import (
    DONOR,
    EXAMPLE_LOOPS,
    EXAMPLE_LOT,
    EXAMPLE_TEM,
    bundled_method_path,
    loop,
    tem,
)


@pytest.fixture(scope="module")
def method() -> MethodFile:
    return load_method(bundled_method_path())


def test_no_vehicle_for_the_donor(method: MethodFile) -> None:
    runs = [tem(0, 600, 200, 56, vehicle=True, donor="VD-OTHER"), tem(1e4, 540, 180, 57)]
    loops = [
        loop(0, (2, 3, 5), (250, 230), vehicle=True, donor="VD-OTHER"),
        loop(1e4, (2, 4, 6), (250, 225)),
    ]
    result = assess_lot(method, EXAMPLE_LOT, runs, loops)
    (tem_index,) = result.tem
    assert tem_index.ct_s is not None and tem_index.ct_s.mean == 540.0
    assert tem_index.vehicle_ct_s is None and tem_index.delta_ct_pct is None
    assert tem_index.notes["delta_ct_pct"] == (
        f"no vehicle run with the blood of donor {DONOR}, which the comparison needs"
    )
    (loop_index,) = result.loops
    assert loop_index.tat_fold is None and loop_index.tat_auc_ratio is None
    assert loop_index.excess_platelet_consumption_pct is None
    assert loop_index.platelet_consumption_pct is not None  # the lot's own consumption is known
    assert f"no vehicle loop with the blood of donor {DONOR}" in loop_index.notes["tat_fold"]
    (dose,) = result.doses
    assert dose.status == "not assessed" and not dose.broken
    assert result.safe_dose_ratio is None
    assert result.class_id == "iv-not-recommended"
    assert "could not be judged: ΔCT not assessed: no vehicle run" in result.explanation


def test_one_dose_only(method: MethodFile) -> None:
    runs = [tem(0, 600, 200, 56, vehicle=True), tem(3e4, 550, 190, 57)]
    loops = [loop(0, (2, 3, 5), (250, 230), vehicle=True), loop(3e4, (2, 4, 7), (250, 226))]
    result = assess_lot(method, EXAMPLE_LOT, runs, loops)
    for fit, what in ((result.delta_ct_fit, "ΔCT"), (result.tat_fold_fit, "TAT fold change")):
        assert fit.intercept is None and fit.slope_per_decade is None and fit.r_squared is None
        assert fit.note == (
            f"one dose only (3.0e4 cells/mL): a dose–response fit needs {what} at 2 or more doses"
        )
    assert result.delta_ct_pct_at_intended_dose is None
    assert result.notes["delta_ct_pct_at_intended_dose"].startswith(
        "no dose–response fit: one dose"
    )
    assert result.highest_safe_dose_cells_per_kg == pytest.approx(2.1e6)
    assert result.class_id == "iv-acceptable"
    assert "lower bound" in result.notes["highest_safe_dose"]


def test_two_doses_fit_exactly_and_say_so(method: MethodFile) -> None:
    runs = [tem(0, 600, vehicle=True), tem(1e4, 570), tem(1e5, 450)]
    result = assess_lot(method, EXAMPLE_LOT, runs, [])
    fit = result.delta_ct_fit
    assert fit.slope_per_decade == pytest.approx(20.0) and fit.intercept == pytest.approx(-75.0)
    assert "two points" in fit.note


def test_intended_dose_outside_the_tested_range_is_not_extrapolated(method: MethodFile) -> None:
    runs = [tem(0, 600, vehicle=True), tem(1e5, 570), tem(1e6, 450)]
    result = assess_lot(method, EXAMPLE_LOT, runs, [])
    assert result.delta_ct_fit.slope_per_decade is not None
    assert result.delta_ct_pct_at_intended_dose is None
    assert result.notes["delta_ct_pct_at_intended_dose"] == (
        "2.9e4 cells/mL is outside the tested range 1.0e5–1.0e6 cells/mL; "
        "the fit is not extrapolated"
    )


def test_tat_missing_for_some_samples(method: MethodFile) -> None:
    loops = [
        loop(0, (2, 4, None), (250, 230), vehicle=True),
        loop(0, (2, None, None), (250, None), vehicle=True),
        loop(1e4, (2, 6, 12), (250, 225)),
        loop(1e4, (None, 8, 14), (250, 220)),
    ]
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM[:3], loops)
    (index,) = result.loops
    first, middle, last = index.tat
    assert first.fold == pytest.approx(1.0) and first.note == "TAT of the dose from 1 of 2 loops"
    assert middle.fold == pytest.approx(7 / 4) and middle.note == "vehicle TAT from 1 of 2 loops"
    assert last.fold is None and last.delta_ug_per_l is None
    assert last.tat_ug_per_l is not None and last.tat_ug_per_l.mean == 13.0
    assert last.note == "no vehicle TAT value (2 loops)"
    assert index.tat_fold is None
    assert index.notes["tat_fold"] == (
        "no TAT fold change at the last draw (60 min): no vehicle TAT value (2 loops)"
    )
    # AUC over the draws both sides have (0 and 30 min), from the loops complete there
    assert index.tat_auc_ug_per_l_min is not None
    assert (index.tat_auc_ug_per_l_min.mean, index.tat_auc_ug_per_l_min.n) == (120.0, 1)
    assert index.vehicle_tat_auc_ug_per_l_min is not None
    assert index.vehicle_tat_auc_ug_per_l_min.mean == 90.0
    assert index.tat_auc_ratio == pytest.approx(120 / 90)
    assert "without 60 min" in index.notes["tat_auc_ug_per_l_min"]
    assert index.notes["vehicle_platelet_consumption_pct"] == (
        "1 of 2 vehicle loops left out: no count from 0 min to 60 min, or a first count of 0"
    )
    (dose,) = result.doses
    assert dose.status == "not assessed"
    assert {c.key for c in dose.unassessed} == {"tat_fold_max", "delta_tat_ug_per_l_max"}


def test_a_dose_without_loops_cannot_be_called_safe(method: MethodFile) -> None:
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS[:4])
    assert [j.status for j in result.doses] == ["safe", "not assessed", "unsafe"]
    texts = [c.text for c in result.doses[1].unassessed]
    assert "loop clotting not assessed: no Chandler-loop data at this dose" in texts
    assert result.highest_safe_dose_cells_per_ml == 1e4
    assert result.class_id == "iv-capped"


def test_tem_runs_without_a_clot(method: MethodFile) -> None:
    runs = [
        tem(0, 600, None, 40, vehicle=True),
        tem(0, None, None, None, vehicle=True),
        tem(1e4, None, None, None),
    ]
    (index,) = assess_lot(method, EXAMPLE_LOT, runs, []).tem
    assert index.vehicle_ct_s is not None and index.vehicle_ct_s.n == 1
    assert index.notes["vehicle_ct_s"] == "vehicle CT missing in 1 of 2 runs; mean of the others"
    assert index.delta_ct_pct is None
    assert index.notes["delta_ct_pct"] == "CT of the dose unknown: no CT in any of the 1 runs"
    assert index.notes["delta_cft_pct"] == "CFT of the dose unknown: no CFT in any of the 1 runs"
    assert index.notes["delta_mcf_pct"] == "MCF of the dose unknown: no MCF in any of the 1 runs"


def test_release_data_not_measured(method: MethodFile) -> None:
    lot = LotInfo("VL-UC-02", cd142_pct=None, viability_pct=95)
    result = assess_lot(method, lot, EXAMPLE_TEM, EXAMPLE_LOOPS)
    assert result.release.passed is None
    assert [c.text for c in result.release.checks] == [
        "CD142+ not measured",
        "viability 95 % ≥ 70 %",
    ]
    assert result.class_id == "iv-not-recommended"
    assert "release not assessed (CD142+ not measured)" in result.explanation


def test_unknown_loop_clotting(method: MethodFile) -> None:
    loops = [
        loop(0, (2, 3, 5), (250, 230), vehicle=True),
        LoopChannelData(
            1e4, DONOR, False, None, None, {0.0: 2, 3600.0: 6}, {0.0: 250, 3600.0: 225}
        ),
    ]
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM[:3], loops)
    (index,) = result.loops
    assert index.clotted is None and index.notes["clotted"] == "clotting unknown in 1 of 1 loops"
    (dose,) = result.doses
    assert [c.key for c in dose.unassessed] == ["loop_clotting_allowed"]


def test_a_clotted_vehicle_loop_is_flagged(method: MethodFile) -> None:
    loops = [
        loop(0, (2, 3, 5), (250, 230), vehicle=True, clotted=True, clot_time_s=3000),
        loop(1e4, (2, 4, 6), (250, 225)),
    ]
    (index,) = assess_lot(method, EXAMPLE_LOT, [], loops).loops
    assert index.vehicle_clotted_n == 1
    assert index.notes["vehicle"].startswith("1 of 1 vehicle loops clotted")


def test_nothing_measured(method: MethodFile) -> None:
    result = assess_lot(method, LotInfo("VL-EMPTY"))
    assert (result.tem, result.loops, result.doses) == ((), (), ())
    assert result.notes["highest_safe_dose"] == "no dose of the lot was measured"
    assert result.delta_ct_fit.note == "no ΔCT value at any dose"
    assert result.class_id == "iv-not-recommended"
    assert result.explanation.startswith(
        "Class iv-not-recommended (IV not recommended; consider intramuscular or intratracheal "
        "delivery): the default class, as no earlier rule held. iv-acceptable did not hold: "
        "safe-dose ratio unknown (no dose of the lot was measured); release not assessed"
    )
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("tem_runs", "loops", "message"),
    [
        ([TemChannelData(0, DONOR, 600, None, None, False)], [], "tem[0]: dose_cells_per_ml"),
        ([TemChannelData(1e4, " ", 600, None, None, False)], [], "tem[0]: donor_id is empty"),
        ([TemChannelData(1e4, DONOR, float("nan"), None, None, False)], [], "tem[0]: ct_s"),
        ([], [loop(1e4, (2, -1, 3), (250, 200))], "loops[0]: tat_by_time_s[1800]"),
        ([], [loop(1e4, (2, 3, 4), (250, float("inf")))], "loops[0]: platelets_by_time_s[3600]"),
    ],
)
def test_impossible_input_is_refused(
    method: MethodFile,
    tem_runs: list[TemChannelData],
    loops: list[LoopChannelData],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        assess_lot(method, EXAMPLE_LOT, tem_runs, loops)
