"""The worked example of docs/indices.md, checked against numbers computed by hand."""

from __future__ import annotations

import json
import math

import pytest

from instrument.analysis.indices import LotAssessment, Stat, assess_lot
from protocols import load_method
from tests.indices.example import (
    DOCS,
    EXAMPLE_LOOPS,
    EXAMPLE_LOT,
    EXAMPLE_TEM,
    bundled_method_path,
)


@pytest.fixture(scope="module")
def assessment() -> LotAssessment:
    return assess_lot(load_method(bundled_method_path()), EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS)


def test_tem_indices(assessment: LotAssessment) -> None:
    low, mid, high = assessment.tem
    assert [i.dose_cells_per_ml for i in assessment.tem] == [1e4, 3e4, 1e5]
    assert low.vehicle_ct_s == Stat(600.0, pytest.approx(math.sqrt(200)), 2)
    assert low.vehicle_cft_s is not None and low.vehicle_cft_s.mean == 200.0
    assert low.vehicle_mcf_mm is not None and low.vehicle_mcf_mm.mean == 56.0
    assert low.ct_s == Stat(540.0, None, 1)
    assert [i.delta_ct_pct for i in assessment.tem] == pytest.approx([10.0, 15.0, 34.0])
    assert [i.delta_cft_pct for i in assessment.tem] == pytest.approx([10.0, 15.0, 35.0])
    assert [i.delta_mcf_mm for i in assessment.tem] == pytest.approx([0.0, 2.0, 5.0])
    assert mid.delta_mcf_pct == pytest.approx(2 / 56 * 100)
    assert high.delta_mcf_pct == pytest.approx(8.93, abs=0.005)
    assert all(not i.notes for i in assessment.tem)


def test_loop_indices(assessment: LotAssessment) -> None:
    low, mid, high = assessment.loops
    vehicle_60 = low.tat[-1].vehicle_tat_ug_per_l
    assert vehicle_60 == Stat(7.0, pytest.approx(math.sqrt(2)), 2)
    assert [i.tat_time_s for i in assessment.loops] == [3600.0] * 3
    assert [i.tat_fold for i in assessment.loops] == pytest.approx([13 / 7, 25 / 7, 60 / 7])
    assert [i.delta_tat_ug_per_l for i in assessment.loops] == pytest.approx([6.0, 18.0, 53.0])
    assert [p.fold for p in mid.tat] == pytest.approx([1.0, 11 / 4, 25 / 7])
    # trapezoids over 0, 30, 60 min: 15·(v0 + 2·v30 + v60) per loop
    assert low.vehicle_tat_auc_ug_per_l_min == Stat(255.0, pytest.approx(math.sqrt(450)), 2)
    assert [i.tat_auc_ug_per_l_min.mean for i in assessment.loops if i.tat_auc_ug_per_l_min] == (
        pytest.approx([405.0, 735.0, 1830.0])
    )
    assert [i.tat_auc_ratio for i in assessment.loops] == pytest.approx(
        [405 / 255, 735 / 255, 1830 / 255]
    )
    assert low.vehicle_platelet_consumption_pct == Stat(9.0, pytest.approx(math.sqrt(2)), 2)
    assert [i.excess_platelet_consumption_pct for i in assessment.loops] == pytest.approx(
        [2.0, 12.0, 41.0]
    )
    assert (low.clotted, mid.clotted, high.clotted) == (False, False, True)
    assert (high.clotted_n, high.loops_n, high.clot_time_s) == (1, 2, Stat(2400.0, None, 1))
    # the clotted loop has no 60 min draw: the means there come from the other loop, noted
    assert high.tat[-1].tat_ug_per_l == Stat(60.0, None, 1)
    assert high.tat[-1].note == "TAT of the dose from 1 of 2 loops"
    assert "1 of 2 lot loops left out" in high.notes["tat_auc_ug_per_l_min"]
    assert high.platelet_consumption_pct == Stat(50.0, None, 1)


def test_dose_judgements(assessment: LotAssessment) -> None:
    assert [(j.dose_cells_per_ml, j.status) for j in assessment.doses] == [
        (1e4, "safe"),
        (3e4, "safe"),
        (1e5, "unsafe"),
    ]
    assert [j.dose_cells_per_kg for j in assessment.doses] == pytest.approx([7e5, 2.1e6, 7e6])
    broken = assessment.doses[-1].broken
    assert [c.key for c in broken] == [
        "delta_ct_pct_max",
        "loop_clotting_allowed",
        "tat_fold_max",
        "delta_tat_ug_per_l_max",
        "platelet_consumption_pct_max",
    ]
    assert broken[0].text == "ΔCT 34.0 % > 20 %"
    assert all(c.passed for c in assessment.doses[1].checks)


def test_safe_dose_release_and_class(assessment: LotAssessment) -> None:
    assert assessment.highest_safe_dose_cells_per_ml == 3e4
    assert assessment.highest_safe_dose_cells_per_kg == pytest.approx(2.1e6)
    assert assessment.safe_dose_ratio == pytest.approx(1.05)
    assert assessment.release.passed is True
    assert assessment.class_id == "iv-acceptable"
    assert assessment.decision.route == "intravenous"
    assert assessment.decision.dose_cap_cells_per_kg is None
    assert [r.holds for r in assessment.decision.rules] == [True]


def test_dose_response_fits(assessment: LotAssessment) -> None:
    ct = assessment.delta_ct_fit
    assert ct.intercept == pytest.approx(-89.03, abs=0.005)
    assert ct.slope_per_decade == pytest.approx(24.20, abs=0.005)
    assert ct.r_squared == pytest.approx(0.914, abs=0.0005)
    assert assessment.delta_ct_pct_at_intended_dose == pytest.approx(18.8, abs=0.05)
    tat = assessment.tat_fold_fit
    assert tat.intercept == pytest.approx(-25.70, abs=0.005)
    assert tat.slope_per_decade == pytest.approx(6.76, abs=0.005)
    assert tat.r_squared == pytest.approx(0.939, abs=0.0005)
    assert assessment.tat_fold_at_intended_dose == pytest.approx(4.42, abs=0.005)


def test_explanation_is_the_one_in_the_docs(assessment: LotAssessment) -> None:
    assert assessment.explanation.startswith("Class iv-acceptable (IV acceptable) because")
    assert "1.0e5 cells/mL broke ΔCT 34.0 % > 20 %" in assessment.explanation
    assert assessment.explanation in DOCS.read_text(encoding="utf-8")


def test_to_dict_is_json_ready(assessment: LotAssessment) -> None:
    data = assessment.to_dict()
    again = json.loads(json.dumps(data, allow_nan=False))
    assert again == data
    assert again["decision"]["class_id"] == "iv-acceptable"
    assert again["method_id"] == "msc-iv-hemocompatibility"
    assert again["method_sha256"] == load_method(bundled_method_path()).sha256
    assert again["loops"][2]["tat"][2]["time_s"] == 3600.0
    assert again["doses"][2]["checks"][0]["passed"] is False
    assert again["lot"]["cd142_pct"] == 50
