"""A whole simulated thromboelastometry run driven through the main window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed (hemocompat[gui])")

from PySide6.QtCore import Qt

NATEM = "natem-msc-dose-series.yaml"
RUN_TIMEOUT_MS = 90_000


def _set_up_simulated(window: Any, speed: str) -> Any:
    run = window.run_view
    window.show_view("Run")
    assert run.select_protocol(NATEM)
    run.simulated_check.click()
    assert window.station.simulated
    run.speed_combo.setCurrentText(speed)
    return run


def test_simulated_run_shows_traces_ct_markers_parameters_and_exports(
    window: Any, qtbot: Any, tmp_path: Path
) -> None:
    run = _set_up_simulated(window, "max")
    assert run.start_button.isEnabled(), run.reason_label.text()
    assert not run.pause_button.isEnabled()  # nothing to pause before the start
    assert "holds the run before its next step" in run.pause_button.toolTip()

    qtbot.mouseClick(run.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: run.state == "running", timeout=10_000)
    assert run.abort_button.isEnabled() and not run.start_button.isEnabled()
    qtbot.waitUntil(lambda: not run.running, timeout=RUN_TIMEOUT_MS)

    outcome = run.outcome
    assert outcome is not None and outcome.status == "completed", outcome.detail
    assert outcome.simulated

    # The live plots: both halves of every trace hold data, a CT marker on each channel.
    grid = run.live_panel.grid
    assert sorted(grid.plots) == [1, 2, 3, 4]
    for plot in grid.plots.values():
        assert plot.point_count > 1000
        assert plot.upper.yData.max() > 10 and plot.lower.yData.min() < -10
        assert plot.upper.yData.max() == pytest.approx(-plot.lower.yData.min())
        assert plot.ct_s is not None and plot.ct_s > 0
        assert plot.ct_line.isVisible()
        assert plot.ct_line.value() == pytest.approx(plot.ct_s / 60.0)

    # SIMULATED is shown in the Run view and in the status bar.
    assert run.badge.isVisible() and run.badge.text() == "SIMULATED"
    assert window.status_badge.isVisible()

    # The run's own parameter table and the event log.
    assert run.results_table.columnCount() == 4
    log = [run.event_log.item(i).text() for i in range(run.event_log.count())]
    assert sum(" ct ch" in line for line in log) == 4

    # The Results view selects the new run and re-plots it from storage.
    results = window.results_view
    qtbot.waitUntil(
        lambda: results.shown is not None and results.shown.run["id"] == outcome.run_id,
        timeout=20_000,
    )
    window.show_view("Results")
    table = results.panel.table
    assert table.columnCount() == 4
    assert table.channels == [1, 2, 3, 4]
    for channel in (1, 2, 3, 4):
        ct_text = table.value_text("CT_s", channel)
        assert ct_text is not None and float(ct_text) > 0
        assert float(ct_text) == pytest.approx(grid.plots[channel].ct_s, abs=0.11)
        stored_plot = results.panel.grid.plots[channel]
        assert stored_plot.point_count > 1000 and stored_plot.ct_line.isVisible()
    assert results.badge.isVisible()
    row = [
        results.runs_table.item(0, col).text() for col in range(results.runs_table.columnCount())
    ]
    assert str(outcome.run_id) in row and "SIMULATED" in row

    # Export CSV on a worker thread into the chosen folder.
    qtbot.mouseClick(results.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(results.exported), timeout=20_000)
    names = {p.name for p in results.exported}
    assert f"run{outcome.run_id}_samples.csv" in names
    assert all(p.parent == tmp_path / "export" and p.exists() for p in results.exported)


def test_lost_link_shows_a_banner_and_abort_keeps_the_data(window: Any, qtbot: Any) -> None:
    run = _set_up_simulated(window, "300")
    run.faults_edit.setText("disconnect@90s")
    assert run.start_run(), run.reason_label.text()
    qtbot.waitUntil(run.banner.isVisible, timeout=30_000)
    assert "lost" in run.banner.text().lower()
    # The core reconnects to the simulator; the banner turns amber and stays as a record.
    qtbot.waitUntil(lambda: run.banner.property("warning") is True, timeout=30_000)
    assert "back" in run.banner.text()
    log = [run.event_log.item(i).text() for i in range(run.event_log.count())]
    assert any("link" in line and "lost" in line for line in log)
    qtbot.mouseClick(run.abort_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not run.running, timeout=30_000)
    assert run.outcome.status == "aborted"
    assert run.banner.isVisible()  # stays until the next run


def test_closing_mid_run_asks_and_aborts_only_when_confirmed(
    window: Any, qtbot: Any, confirm: Any
) -> None:
    run = _set_up_simulated(window, "30")
    assert run.start_run(), run.reason_label.text()
    qtbot.waitUntil(lambda: run.state == "running", timeout=10_000)

    confirm.answer = False
    window.close()
    assert len(confirm.asked) == 1 and "run is in progress" in confirm.asked[0][1]
    assert window.isVisible() and run.state == "running"

    confirm.answer = True
    window.close()
    assert len(confirm.asked) == 2
    qtbot.waitUntil(lambda: not run.running, timeout=30_000)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)
    assert run.outcome.status == "aborted"
    assert "window was closed" in run.outcome.detail


def test_closing_when_idle_does_not_ask(window: Any, confirm: Any) -> None:
    window.close()
    assert not confirm.asked
    assert not window.isVisible()
