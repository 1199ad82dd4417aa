"""Classes come from the method text: changing the text changes the class, not the code."""

from __future__ import annotations

import pytest

from instrument.analysis.indices import LotInfo, assess_lot
from protocols import load_method, parse_method
from tests.indices.example import (
    EXAMPLE_LOOPS,
    EXAMPLE_LOT,
    EXAMPLE_TEM,
    bundled_method_path,
    bundled_method_text,
    loop,
    method_with,
    synthetic_lot,
    tem,
)


def test_a_stricter_ct_threshold_in_the_text_caps_the_dose() -> None:
    method = method_with("delta_ct_pct_max: 20 ", "delta_ct_pct_max: 12 ")
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS)
    assert [j.status for j in result.doses] == ["safe", "unsafe", "unsafe"]
    assert result.doses[1].broken[0].text == "ΔCT 15.0 % > 12 %"
    assert result.highest_safe_dose_cells_per_kg == pytest.approx(7e5)
    assert result.safe_dose_ratio == pytest.approx(0.35)
    assert result.class_id == "iv-capped"
    assert result.decision.dose_cap_cells_per_kg == pytest.approx(7e5)
    assert result.decision.dose_cap_cells_per_ml == 1e4
    assert result.explanation.startswith(
        "Class iv-capped (IV with dose cap and anticoagulation) because its rule holds: "
        "safe-dose ratio 0.35 ≥ 0.25; release passed. "
        "iv-acceptable did not hold: safe-dose ratio 0.35 < 1. "
        "Highest safe dose 1.0e4 cells/mL = 7.0e5 cells/kg at 70 mL/kg"
    )
    assert "3.0e4 cells/mL broke ΔCT 15.0 % > 12 %" in result.explanation
    assert "Dose cap 7.0e5 cells/kg." in result.explanation


def test_an_even_stricter_threshold_leaves_no_safe_dose() -> None:
    method = method_with("delta_ct_pct_max: 20 ", "delta_ct_pct_max: 8 ")
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS)
    assert result.class_id == "iv-not-recommended"
    assert result.highest_safe_dose_cells_per_ml is None and result.safe_dose_ratio is None
    assert result.notes["safe_dose_ratio"].startswith(
        "no tested dose stayed under every threshold: the lowest, 1.0e4 cells/mL, "
        "broke ΔCT 10.0 % > 8 %"
    )
    assert "safe-dose ratio unknown (no tested dose stayed under" in result.explanation
    assert result.decision.route == "intramuscular or intratracheal"


def test_a_looser_platelet_threshold_alone_does_not_rescue_the_high_dose() -> None:
    method = method_with("platelet_consumption_pct_max: 30", "platelet_consumption_pct_max: 50")
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS)
    keys = [c.key for c in result.doses[-1].broken]
    assert "platelet_consumption_pct_max" not in keys and "delta_ct_pct_max" in keys


def test_a_higher_intended_dose_changes_the_class() -> None:
    method = method_with("intended_dose_cells_per_kg: 2.0e6", "intended_dose_cells_per_kg: 3.0e6")
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS)
    assert result.safe_dose_ratio == pytest.approx(0.7)
    assert result.class_id == "iv-capped"


def test_names_routes_and_wording_come_from_the_file() -> None:
    method = method_with('route: "intravenous"\n', 'route: "IV bolus over 10 min"\n')
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS)
    assert result.decision.route == "IV bolus over 10 min"
    assert result.decision.wording.startswith("Every tested dose up to at least")


def test_three_lots_fall_into_the_expected_classes_in_order() -> None:
    method = load_method(bundled_method_path())
    low = synthetic_lot("VL-BM-01", (2, 4, 8), (6, 7, 9), cd142_pct=10)
    intermediate = synthetic_lot("VL-UC-01", (8, 25, 45), (8, 30, 80), cd142_pct=50)
    high = synthetic_lot(
        "VL-AT-01", (30, 50, 70), (40, 150, 400), cd142_pct=55, clotted=(False, True, True)
    )
    results = [assess_lot(method, *lot) for lot in (low, intermediate, high)]
    assert [r.class_id for r in results] == ["iv-acceptable", "iv-capped", "iv-not-recommended"]
    assert [r.safe_dose_ratio for r in results[:2]] == pytest.approx([3.5, 0.35])
    assert results[2].safe_dose_ratio is None
    assert [r.release.passed for r in results] == [True, True, True]
    assert "every tested dose stayed under every threshold" in results[0].notes["highest_safe_dose"]
    slopes = [r.delta_ct_fit.slope_per_decade for r in results]
    assert slopes == sorted(slopes)
    tat_fits = [r.tat_fold_at_intended_dose for r in results]
    assert tat_fits == sorted(v for v in tat_fits if v is not None)


def test_failing_release_moves_a_low_effect_lot_to_the_default_class() -> None:
    method = load_method(bundled_method_path())
    lot, runs, loops = synthetic_lot("VL-AT-02", (2, 4, 8), (6, 7, 9), cd142_pct=90)
    result = assess_lot(method, lot, runs, loops)
    assert result.safe_dose_ratio == pytest.approx(3.5)
    assert result.release.passed is False
    assert result.class_id == "iv-not-recommended"
    assert "iv-acceptable did not hold: release failed (CD142+ 90 % > 60 %)" in result.explanation


def test_conditions_at_the_intended_dose_and_on_failed_release() -> None:
    text = bundled_method_text().replace(
        "  - id: iv-acceptable\n",
        "  - id: not-released\n"
        '    name: "Not released"\n'
        "    when: {release_passed: false}\n"
        '    route: "none"\n'
        "  - id: iv-acceptable\n",
    )
    text = text.replace(
        "when: {safe_dose_ratio_min: 1.0, release_passed: true}",
        "when: {safe_dose_ratio_min: 1.0, release_passed: true,"
        " delta_ct_pct_at_intended_dose_max: 15, tat_fold_at_intended_dose_max: 5}",
    )
    method = parse_method(text)
    example = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS)
    # ΔCT 18.8 % at the intended dose is above 15 %, so the lot is capped despite ratio 1.05
    assert example.class_id == "iv-capped"
    failed = [c for c in example.decision.rules[1].conditions if c.passed is False]
    assert [c.text for c in failed] == ["ΔCT at the intended dose 18.8 % > 15 %"]
    assert example.decision.rules[0].conditions[0].text == "release passed"
    failing = LotInfo("VL-X", cd142_pct=75, viability_pct=90)
    assert assess_lot(method, failing, EXAMPLE_TEM, EXAMPLE_LOOPS).class_id == "not-released"


def test_a_dose_safe_for_one_donor_but_not_another_is_unsafe() -> None:
    method = load_method(bundled_method_path())
    runs = [
        tem(0, 600, vehicle=True, donor="VD-A"),
        tem(0, 500, vehicle=True, donor="VD-B"),
        tem(1e4, 570, donor="VD-A"),
        tem(1e4, 350, donor="VD-B"),
    ]
    loops = [
        loop(0, (2, 3, 5), (250, 230), vehicle=True, donor="VD-A"),
        loop(0, (2, 3, 5), (250, 230), vehicle=True, donor="VD-B"),
        loop(1e4, (2, 3, 6), (250, 228), donor="VD-A"),
        loop(1e4, (2, 3, 6), (250, 228), donor="VD-B"),
    ]
    result = assess_lot(method, EXAMPLE_LOT, runs, loops)
    (dose,) = result.doses
    assert dose.status == "unsafe"
    assert [(c.donor_id, c.passed) for c in dose.checks if c.key == "delta_ct_pct_max"] == [
        ("VD-A", True),
        ("VD-B", False),
    ]
    assert "broke ΔCT 30.0 % > 20 % (donor VD-B)" in result.notes["safe_dose_ratio"]


def test_a_safe_dose_above_an_unsafe_one_does_not_count() -> None:
    method = load_method(bundled_method_path())
    lot, runs, loops = synthetic_lot("VL-ODD", (5, 25, 10), (6, 7, 9), cd142_pct=10)
    result = assess_lot(method, lot, runs, loops)
    assert [j.status for j in result.doses] == ["safe", "unsafe", "safe"]
    assert result.highest_safe_dose_cells_per_ml == 1e4
    assert (
        "1.0e5 cells/mL stayed under every threshold, but a lower dose did not"
        in result.explanation
    )


@pytest.mark.parametrize(("limit", "status"), [("18", "safe"), ("17.9", "unsafe")])
def test_a_value_equal_to_its_limit_stays_under_it(limit: str, status: str) -> None:
    method = method_with("delta_tat_ug_per_l_max: 50 ", f"delta_tat_ug_per_l_max: {limit} ")
    result = assess_lot(method, EXAMPLE_LOT, EXAMPLE_TEM, EXAMPLE_LOOPS)
    (check,) = [c for c in result.doses[1].checks if c.key == "delta_tat_ug_per_l_max"]
    assert check.value == 18.0
    assert result.doses[1].status == status
