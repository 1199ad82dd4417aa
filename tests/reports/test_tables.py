"""The tabular content the renderers share, read from assessments of different shapes."""

from __future__ import annotations

import dataclasses

from instrument.report_model import LotReport
from instrument.reports import class_summary, index_table, is_simulated


def test_the_class_is_read_from_the_decision_or_the_top_level() -> None:
    nested = {"decision": {"class_id": "a", "name": "A", "route": "iv"}, "explanation": "why"}
    assert class_summary(nested)["class_id"] == "a"
    assert class_summary(nested)["class_name"] == "A"
    assert class_summary(nested)["route"] == "iv"
    assert class_summary(nested)["explanation"] == "why"
    top = {"class": "b", "class_name": "B", "route": "im", "decision": {"class_id": "a"}}
    assert class_summary(top)["class_id"] == "b"
    assert class_summary(top)["class_name"] == "B"
    assert class_summary({}) == dict.fromkeys(class_summary({}), None)


def test_with_several_donors_the_deciding_value_is_shown(report: LotReport) -> None:
    checks = [
        {"key": "delta_ct_pct_max", "value": 12.0, "limit": 20, "passed": True, "donor_id": "A"},
        {"key": "delta_ct_pct_max", "value": 25.0, "limit": 20, "passed": False, "donor_id": "B"},
        {"key": "tat_fold_max", "value": None, "limit": 5, "passed": None, "donor_id": "A"},
    ]
    dose = {"dose_cells_per_ml": 1e5, "status": "unsafe", "checks": checks}
    table = index_table(dataclasses.replace(report, assessment={"doses": [dose]}))
    (row,) = (dict(zip(table.columns, r, strict=True)) for r in table.rows)
    assert row["delta_ct_pct"] == 25.0
    assert row["tat_fold"] is None
    assert row["exceeded"] == "delta_ct_pct"
    assert row["not_assessed"] == "tat_fold"


def test_simulated_when_the_report_a_run_or_an_instrument_says_so(
    report: LotReport, measured_report: LotReport
) -> None:
    assert is_simulated(report)
    assert not is_simulated(measured_report)
    run = dataclasses.replace(measured_report.runs[1], simulated=True)
    assert is_simulated(dataclasses.replace(measured_report, runs=(run,)))
