"""The Lots view on a database filled by the real simulated panel of a virtual-lab lot."""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed (hemocompat[gui])")

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from gui import theme
from gui.models.lots import DISCLAIMER, dose_text
from gui.widgets.lot_plots import format_index

LOT = "VL-UC-01"
#: Registry-only lots of one product; the last one's CD142+ is far outside the others'.
TREND_LOTS = {"TR-1": 20.0, "TR-2": 22.0, "TR-3": 21.0, "TR-4": 80.0}
EXPORT_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def panel_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database after ``hemocompat panel VL-UC-01 --simulate --speed max`` (TEM dose series,
    loops, ELISA, indices and class), plus four lots for the comparison."""
    from instrument.lots import add_lot
    from instrument.panel import run_panel
    from instrument.storage import Store

    db = tmp_path_factory.mktemp("lots") / "lots.db"
    store = Store(db)
    try:
        outcome = run_panel(LOT, store, simulate=True, speed=math.inf, say=lambda _text: None)
        assert outcome.assessment_id is not None
        for lot_id, cd142 in TREND_LOTS.items():
            add_lot(
                store,
                {
                    "lot_id": lot_id,
                    "product": "trend-test MSC",
                    "tissue_source": "bone-marrow",
                    "cd142_pct": cd142,
                    "notes": "registry record for the comparison (SIMULATED)",
                    "simulated": True,
                },
            )
    finally:
        store.close()
    return db


@contextmanager
def _open_window(qtbot: Any, db: Path, app_dir: Path) -> Iterator[Any]:
    from gui.main_window import MainWindow
    from gui.paths import AppPaths
    from instrument.storage import Store

    store = Store(db)
    win = MainWindow(store=store, paths=AppPaths.under(app_dir), simulated=False)
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    try:
        yield win
    finally:
        win.shutdown()
        store.close()


@pytest.fixture
def lots_window(qtbot: Any, tmp_path: Path, panel_db: Path) -> Iterator[Any]:
    with _open_window(qtbot, panel_db, tmp_path / "app") as window:
        yield window


def _show_lot(window: Any, qtbot: Any, lot_id: str = LOT) -> Any:
    view = window.lots_view
    window.show_view("Lots")
    qtbot.waitUntil(lambda: bool(view.entries), timeout=20_000)
    assert view.select_lot(lot_id)
    qtbot.waitUntil(
        lambda: view.detail is not None and view.detail.lot_id == lot_id, timeout=20_000
    )
    return view


def _stored(db: Path, lot_id: str = LOT) -> dict[str, Any]:
    from instrument.lots import latest_assessment
    from instrument.storage import Store

    store = Store(db)
    try:
        latest = latest_assessment(store, lot_id)
    finally:
        store.close()
    assert latest is not None
    return latest


def test_the_lot_its_class_indices_and_plots_come_from_the_stored_assessment(
    lots_window: Any, qtbot: Any, panel_db: Path
) -> None:
    view = _show_lot(lots_window, qtbot)
    latest = _stored(panel_db)
    a = latest["assessment"]
    decision = a["decision"]

    # The registry: the lot with its class and the SIMULATED mark.
    row = [e.lot_id for e in view.entries].index(LOT)
    cells = [view.lots_table.item(row, c).text() for c in range(view.lots_table.columnCount())]
    assert cells[0] == LOT and cells[2] == "umbilical-cord"
    assert cells[7] == decision["name"] and cells[6] == "SIMULATED"
    assert view.badge.isVisible()

    # The class, its route, the highest safe dose, the explanation and what decided it.
    assert view.class_label.text() == decision["name"]
    assert decision["route"] in view.route_label.text()
    assert dose_text(a["highest_safe_dose_cells_per_kg"], "cells/kg") in view.dose_label.text()
    explanation = view.explanation_label.text()
    assert explanation == a["explanation"]
    broken = [c["text"] for d in a["doses"] for c in d["checks"] if c["passed"] is False]
    held = decision["rules"][decision["rule_index"]]["conditions"]
    assert broken or held
    for text in [*broken, *(c["text"] for c in held)]:
        assert text in explanation
    assert "ΔCT ≤ 20 %" in view.thresholds_label.text()  # the bundled method's threshold
    assert DISCLAIMER in view.disclaimer_label.text() and "not a clinical rule" in DISCLAIMER
    assert view.card_disclaimer.text() == DISCLAIMER

    # The indices table holds exactly the stored values, one column per dose.
    table = view.indices_table
    doses = sorted({t["dose_cells_per_ml"] for t in a["tem"]})
    assert [c.dose_cells_per_ml for c in table.columns] == doses
    tem = {t["dose_cells_per_ml"]: t for t in a["tem"]}
    loops = {entry["dose_cells_per_ml"]: entry for entry in a["loops"]}
    for col, dose in enumerate(doses):
        expected = {
            "delta_ct_pct": tem[dose]["delta_ct_pct"],
            "delta_cft_pct": tem[dose]["delta_cft_pct"],
            "delta_mcf_mm": tem[dose]["delta_mcf_mm"],
            "clotted": loops[dose]["clotted"],
            "clot_time_s": loops[dose]["clot_time_s"],
            "tat_fold": loops[dose]["tat_fold"],
            "delta_tat_ug_per_l": loops[dose]["delta_tat_ug_per_l"],
            "tat_auc_ug_per_l_min": loops[dose]["tat_auc_ug_per_l_min"]["mean"],
            "platelet_consumption_pct": loops[dose]["platelet_consumption_pct"]["mean"],
            "excess_platelet_consumption_pct": loops[dose]["excess_platelet_consumption_pct"],
        }
        for key, value in expected.items():
            assert table.value(key, col) == value, (key, dose)
            assert table.text(key, col) == format_index(key, value)
        judgement = next(d for d in a["doses"] if d["dose_cells_per_ml"] == dose)
        assert table.text("status", col) == judgement["status"]
    # A broken threshold is red.
    rows = [r.key for r in table.rows]
    for col, dose in enumerate(doses):
        judgement = next(d for d in a["doses"] if d["dose_cells_per_ml"] == dose)
        if any(c["key"] == "delta_ct_pct_max" and not c["passed"] for c in judgement["checks"]):
            item = table.item(rows.index("delta_ct_pct"), col)
            assert item.foreground().color() == QColor(theme.DANGER)

    # Dose–response: a point per dose, the method's limits as lines.
    plot = view.dose_plot
    assert list(plot.points["delta_ct_pct"].xData) == doses
    assert list(plot.points["delta_ct_pct"].yData) == [tem[d]["delta_ct_pct"] for d in doses]
    assert list(plot.points["tat_fold"].xData) == sorted(loops)
    assert plot.threshold_lines["delta_ct_pct"].value() == 20
    assert plot.threshold_lines["tat_fold"].value() == 5

    # TAT time courses: one curve per vehicle and lot loop of the loop run.
    curves = view.tat_plot.curves
    loop_run = next(r for r in view.detail.runs if r["assay"] == "chandler-loop")
    assert len(curves) == 8 and {run for run, _loop in curves} == {loop_run["id"]}
    vehicles = [c for c in view.detail.tat_courses if c.vehicle]
    assert len(vehicles) == 2
    for curve in curves.values():
        assert len(curve.xData) >= 4 and min(curve.yData) > 0

    # The comparison: every lot, the out-of-trend lot highlighted.
    view.tabs.setCurrentIndex(1)
    compare = view.compare_table
    assert compare.rowCount() == 1 + len(TREND_LOTS)
    lots_shown = [compare.item(r, 1).text() for r in range(compare.rowCount())]
    assert set(lots_shown) == {LOT, *TREND_LOTS}
    flagged_row = lots_shown.index("TR-4")
    assert compare.item(flagged_row, 1).foreground().color() == QColor(theme.DANGER)
    assert "TR-4" in view.flags_label.text() and "OUT OF TREND" in view.flags_label.text()
    assert view.trend_plot.flagged_lots == ["TR-4"]  # CD142+ % is the first metric
    assert LOT in view.compare_plot.curves


def test_exports_run_on_workers_and_write_the_lot_report(
    lots_window: Any, qtbot: Any, tmp_path: Path
) -> None:
    from openpyxl import load_workbook
    from pypdf import PdfReader

    view = _show_lot(lots_window, qtbot)
    pdf, xlsx, csv_dir = tmp_path / "lot.pdf", tmp_path / "lot.xlsx", tmp_path / "lot_csv"
    assert view.export_report("pdf", pdf)
    # The view does not wait for the report: the work is on a worker, the button disabled.
    assert view.tasks.busy("report-pdf") and not view.export_buttons["pdf"].isEnabled()
    assert view.export_report("xlsx", xlsx)
    asked: list[tuple[str, str]] = []

    def ask(kind: str, suggested: str) -> Path:
        asked.append((kind, suggested))
        return csv_dir

    view._ask_path = ask
    qtbot.mouseClick(view.export_buttons["csv"], Qt.MouseButton.LeftButton)
    assert asked == [("csv", f"{LOT}_report")]
    qtbot.waitUntil(lambda: len(view.exported) == 3, timeout=EXPORT_TIMEOUT_MS)
    assert view.last_error is None
    assert all(button.isEnabled() for button in view.export_buttons.values())

    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert LOT in text and "SIMULATED" in text
    book = load_workbook(xlsx)
    assert {"Summary", "Indices", "Runs", "TAT"} <= set(book.sheetnames)
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(min_row=3, values_only=True)}
    assert summary["lot_id"] == LOT and summary["simulated"] is True
    names = sorted(p.name for p in view.exported["csv"])
    assert names == ["indices.csv", "parameters.csv", "summary.csv", "tat.csv"]
    with (csv_dir / "summary.csv").open(encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    assert records and all(r["simulated"] == "yes" for r in records)
    assert {"field": "lot_id", "value": LOT} in [
        {"field": r["field"], "value": r["value"]} for r in records
    ]


def test_reassess_with_a_stricter_method_gives_the_default_class(
    qtbot: Any, tmp_path: Path, panel_db: Path
) -> None:
    from protocols import bundled_methods, parse_method

    db = tmp_path / "copy.db"
    for suffix in ("", "-wal", "-shm"):
        source = panel_db.with_name(panel_db.name + suffix)
        if source.exists():
            shutil.copy(source, db.with_name(db.name + suffix))
    a = _stored(db)["assessment"]
    # A ΔCT limit below every dose's ΔCT: no dose is safe, so only the default class holds.
    strict = max(0, math.floor(min(t["delta_ct_pct"] for t in a["tem"])) - 1)
    text = bundled_methods()[0].read_text(encoding="utf-8")
    text = text.replace("delta_ct_pct_max: 20", f"delta_ct_pct_max: {strict}", 1)
    text = text.replace("version: 1", "version: 2", 1)
    method_file = tmp_path / "strict-method.yaml"
    method_file.write_text(text, encoding="utf-8")
    default_class = parse_method(text).classes[-1]

    with _open_window(qtbot, db, tmp_path / "app") as window:
        view = _show_lot(window, qtbot)
        assert view.reassess(method_file)
        assert view.tasks.busy("reassess") and not view.reassess_button.isEnabled()
        qtbot.waitUntil(
            lambda: view.detail is not None and view.detail.class_id == default_class.id,
            timeout=30_000,
        )
        assert view.class_label.text() == default_class.name
        assert f"ΔCT ≤ {strict} %" in view.thresholds_label.text()
        assert view.dose_plot.threshold_lines["delta_ct_pct"].value() == strict
        assert "none" in view.dose_label.text()  # no highest safe dose
        assert view.detail.stored is not None and view.detail.stored["method_version"] == 2
        qtbot.waitUntil(lambda: not view.tasks.busy(), timeout=10_000)
        row = [e.lot_id for e in view.entries].index(LOT)
        assert view.lots_table.item(row, 7).text() == default_class.name
