"""The CSV files: names, the leading simulated column, values."""

from __future__ import annotations

import csv
from pathlib import Path

from instrument.report_model import LotReport
from instrument.reports import write_csv

NAMES = ["summary.csv", "indices.csv", "parameters.csv", "tat.csv"]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_four_files_each_led_by_the_simulated_column(report: LotReport, tmp_path: Path) -> None:
    paths = write_csv(report, tmp_path / "out")
    assert [p.name for p in paths] == NAMES
    for path in paths:
        with path.open(encoding="utf-8", newline="") as handle:
            header, *rows = list(csv.reader(handle))
        assert header[0] == "simulated"
        assert rows
        assert {row[0] for row in rows} == {"yes"}


def test_a_measured_report_says_no(measured_report: LotReport, tmp_path: Path) -> None:
    for path in write_csv(measured_report, tmp_path):
        assert {row["simulated"] for row in _read(path)} == {"no"}


def test_values(report: LotReport, tmp_path: Path) -> None:
    summary, indices, parameters, tat = (_read(p) for p in write_csv(report, tmp_path))
    fields = {row["field"]: row["value"] for row in summary}
    assert fields["class_id"] == "iv-acceptable"
    assert fields["route"] == "intravenous"
    assert fields["simulated"] == "yes"
    assert [float(r["dose_cells_per_ml"]) for r in indices] == [1e4, 3e4, 1e5]
    assert indices[2]["status"] == "unsafe"
    assert indices[2]["loop_clotting"] == "yes"
    assert len(parameters) == 4 * 9 + 4 * 5 + 2
    assert {"run_id", "channel", "label", "parameter", "value", "note"} <= set(parameters[0])
    assert len(tat) == 16
    missing = next(r for r in tat if r["loop"] == "4" and float(r["time_s"]) == 3600)
    assert missing["tat_ug_per_l"] == ""
