"""The workbook: sheets, headers, banner, values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import openpyxl  # type: ignore[import-untyped]
import pytest

from instrument.report_model import LotReport
from instrument.reports import write_xlsx
from tests.reports.sample import LOT_ID, METHOD_SHA, TEM_SHA

SHEETS = ["Summary", "Indices", "Runs", "Parameters", "TAT", "Lot", "Donors"]


@pytest.fixture(scope="module")
def book(report: LotReport, tmp_path_factory: pytest.TempPathFactory) -> openpyxl.Workbook:
    path = write_xlsx(report, tmp_path_factory.mktemp("xlsx") / "report.xlsx")
    return openpyxl.load_workbook(path)


def _records(sheet: openpyxl.worksheet.worksheet.Worksheet, first: int = 2) -> list[dict]:
    header = [c.value for c in sheet[1]]
    return [
        dict(zip(header, row, strict=True))
        for row in sheet.iter_rows(min_row=first, values_only=True)
    ]


def test_the_workbook_has_the_sheets_in_order(book: openpyxl.Workbook) -> None:
    assert book.sheetnames == SHEETS


def test_every_header_row_is_bold_and_frozen_and_columns_are_sized(
    book: openpyxl.Workbook,
) -> None:
    for sheet in book.worksheets:
        assert all(cell.font.bold for cell in sheet[1]), sheet.title
        assert sheet.freeze_panes in {"A2", "A3"}, sheet.title
        for column in range(1, sheet.max_column + 1):
            letter = openpyxl.utils.get_column_letter(column)
            assert sheet.column_dimensions[letter].width >= 8, (sheet.title, letter)


def test_the_summary_carries_a_simulated_banner_and_the_class(book: openpyxl.Workbook) -> None:
    summary = book["Summary"]
    assert summary.freeze_panes == "A3"
    assert str(summary["A2"].value).startswith("SIMULATED")
    assert summary["A2"].font.bold
    fields = {row[0]: row[1] for row in summary.iter_rows(min_row=3, values_only=True)}
    assert fields["lot_id"] == LOT_ID
    assert fields["simulated"] is True
    assert fields["class_id"] == "iv-acceptable"
    assert fields["class_name"] == "IV acceptable"
    assert fields["route"] == "intravenous"
    assert fields["explanation"].startswith("Class iv-acceptable")
    assert fields["method_sha256"] == METHOD_SHA
    assert fields["software_version"] == "0.1.0"
    assert fields["highest_safe_dose_cells_per_kg"] == pytest.approx(2.1e6)


def test_a_measured_workbook_has_no_banner(measured_report: LotReport, tmp_path: Path) -> None:
    book = openpyxl.load_workbook(write_xlsx(measured_report, tmp_path / "m.xlsx"))
    summary = book["Summary"]
    assert summary.freeze_panes == "A2"
    assert summary["A2"].value == "lot_id"
    assert book.properties.keywords in (None, "")


def test_indices_have_one_row_per_dose(book: openpyxl.Workbook) -> None:
    rows = _records(book["Indices"])
    assert [r["dose_cells_per_ml"] for r in rows] == [1e4, 3e4, 1e5]
    assert [r["status"] for r in rows] == ["safe", "safe", "unsafe"]
    assert rows[2]["delta_ct_pct"] == 34.0
    assert rows[2]["loop_clotting"] is True
    assert "delta_ct_pct" in rows[2]["exceeded"]
    assert rows[0]["exceeded"] is None


def test_runs_parameters_and_tat(book: openpyxl.Workbook) -> None:
    runs = _records(book["Runs"])
    assert [r["run_id"] for r in runs] == [11, 12, 13]
    assert runs[0]["protocol_sha256"] == TEM_SHA
    assert runs[0]["simulated"] is True
    assert "SN TEM4-000123" in runs[0]["instruments"]
    parameters = _records(book["Parameters"])
    assert len(parameters) == 4 * 9 + 4 * 5 + 2
    ct = [p for p in parameters if p["run_id"] == 11 and p["parameter"] == "CT_s"]
    assert [p["value"] for p in ct] == [600, 540, 510, 396]
    li30 = next(p for p in parameters if p["parameter"] == "LI30_pct")
    assert li30["value"] is None
    assert li30["note"] == "the run ended before CT + 30 min"
    tat = _records(book["TAT"])
    assert len(tat) == 16
    assert {"run_id": 12, "loop": 4, "time_s": 3600, "tat_ug_per_l": None} in tat
    assert {"run_id": 12, "loop": 3, "time_s": 3600, "tat_ug_per_l": 25} in tat


def test_lot_and_donors(book: openpyxl.Workbook) -> None:
    lot = {row[0]: row[1] for row in book["Lot"].iter_rows(min_row=2, values_only=True)}
    assert lot["lot_id"] == LOT_ID
    assert lot["cd142_pct"] == 42
    donors = _records(book["Donors"])
    assert [d["donor_id"] for d in donors] == ["VD-HEALTHY-01", "VD-HYPER-02"]


def test_text_that_looks_like_a_formula_stays_text(report: LotReport, tmp_path: Path) -> None:
    run = dataclasses.replace(report.runs[0], operator='=HYPERLINK("http://x")')
    book = openpyxl.load_workbook(
        write_xlsx(dataclasses.replace(report, runs=(run,)), tmp_path / "f.xlsx")
    )
    assert book["Runs"]["G2"].value == '=HYPERLINK("http://x")'
    assert book["Runs"]["G2"].data_type == "s"
