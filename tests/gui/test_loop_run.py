"""Chandler loop runs driven through the main window: prompts answered with Done, results."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed (hemocompat[gui])")

from PySide6.QtCore import Qt

from protocols import bundled_protocols

LOOP = "chandler-loop-60min.yaml"
#: A version of the bundled loop protocol whose draws become overdue only after 30 min, so
#: that at 600× the test's clicks always come in time (at 600× the bundled 2 min are 0.2 s).
LOOP_V2 = "chandler-loop-60min-v2.yaml"
#: With this lot and donor the lot loops clot within the hour and the vehicle loops do not.
LOT, DONOR = "VL-AT-01", "VD-HYPER-01"
RUN_TIMEOUT_MS = 60_000


def _write_patient_version(window: Any) -> None:
    """Save the bundled protocol as version 2 with a longer overdue window (user folder)."""
    text = next(p for p in bundled_protocols() if p.name == LOOP).read_text(encoding="utf-8")
    assert "version: 1\n" in text and "overdue_after_s: 120 " in text
    text = text.replace("version: 1\n", "version: 2\n", 1).replace(
        "overdue_after_s: 120 ", "overdue_after_s: 1800", 1
    )
    folder = window.paths.protocol_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOOP_V2).write_text(text, encoding="utf-8")
    window.library.refresh()


def _set_up(window: Any, file_name: str, speed: str) -> Any:
    run = window.run_view
    window.show_view("Run")
    assert run.select_protocol(file_name)
    if not window.station.simulated:
        run.simulated_check.click()
    run.lot_edit.setText(LOT)
    run.donor_edit.setText(DONOR)
    run.speed_combo.setCurrentText(speed)
    return run


def test_loop_run_with_prompts_answered_shows_clotting_and_results(window: Any, qtbot: Any) -> None:
    _write_patient_version(window)
    run = window.run_view
    window.show_view("Run")
    assert run.select_protocol(LOOP_V2)
    panel = run.live_panel
    table = panel.results_widget
    # The set-up: one row per loop with the protocol's contents, before anything runs.
    assert [row.loop for row in table.rows] == list(range(1, 9))
    assert table.value_text(1, "Contents") == "vehicle"
    assert table.value_text(3, "Contents") == "VL-UC-01"  # the protocol's default lot
    assert table.value_text(3, "Dose") == "1.0e4" and table.value_text(8, "Dose") == "1.0e5"
    assert table.value_text(3, "Clotted") == "—"
    assert run.setup_tabs.tabText(1) == "Prompts" and run.setup_tabs.currentIndex() == 0

    run = _set_up(window, LOOP_V2, "600")
    # The lot and donor of the set-up apply to the loops (the donor is common: in the title).
    assert table.value_text(3, "Contents") == LOT
    assert table.value_text(1, "Donor") == DONOR and DONOR in run.results_heading.text()
    assert "1 IU/mL heparin" in run.results_heading.text()
    assert run.start_button.isEnabled(), run.reason_label.text()

    qtbot.mouseClick(run.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: run.state == "running", timeout=10_000)
    assert run.pause_button.isEnabled()
    assert "the sampling schedule is never paused" in run.pause_button.toolTip()
    prompts = panel.prompts

    # The first prompt (fill and mount the loops) holds the run until it is done.
    qtbot.waitUntil(lambda: bool(prompts.open_ids()), timeout=20_000)
    assert run.setup_tabs.currentWidget() is prompts
    # Pause holds the run before its next step; the hold and its release are stored.
    qtbot.mouseClick(run.pause_button, Qt.MouseButton.LeftButton)
    assert run.engine.held and run.pause_button.text() == "Resume"
    qtbot.mouseClick(run.pause_button, Qt.MouseButton.LeftButton)
    assert not run.engine.held and run.pause_button.text() == "Pause"
    (fill_id,) = prompts.open_ids()
    fill = prompts.cards[fill_id]
    assert fill.prompt.tube_id is None and fill.state == "waiting"
    assert "Fill loops 1, 2, 3, 4, 5, 6, 7, 8" in fill.message_label.text()

    clicked: set[int] = set()

    def answer_open_prompts() -> bool:
        for prompt_id in prompts.open_ids():
            card = prompts.cards.get(prompt_id)
            if card is not None and card.done_button.isEnabled():
                qtbot.mouseClick(card.done_button, Qt.MouseButton.LeftButton)
                clicked.add(prompt_id)
        return not run.running

    qtbot.waitUntil(answer_open_prompts, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.tasks.busy(), timeout=10_000)

    outcome = run.outcome
    assert outcome is not None and outcome.status == "completed", outcome.detail
    assert outcome.simulated

    # Every prompt was answered through the engine and moved to the done list.
    store = window.store()
    stored_prompts = store.prompts(outcome.run_id)
    assert len(stored_prompts) == 1 + 5 * 8  # fill + 5 time points × 8 loops
    assert {p["id"] for p in stored_prompts} == clicked
    assert all(p["status"] == "acknowledged" for p in stored_prompts)
    assert all(p["answered_by"] == run.operator_edit.text() for p in stored_prompts)
    assert prompts.open_ids() == []
    done = prompts.done_texts()
    assert len(done) == len(stored_prompts) and all(text.startswith("✓") for text in done)
    assert any("(60 min sample)" in text for text in done)
    assert all(t["status"] == "drawn" for t in store.tubes(outcome.run_id))
    kinds = [e["kind"] for e in store.events(outcome.run_id)]
    assert kinds.count("hold") == 1 and kinds.count("release") == 1

    # Motion plots with data, a clotting marker exactly on the loops that clotted.
    results = {r["channel"]: r["parameters"] for r in store.latest_results(outcome.run_id)}
    assert sorted(results) == list(range(1, 9))
    clotted = {loop for loop, params in results.items() if params["clotted"]}
    assert {1, 2}.isdisjoint(clotted) and {7, 8} <= clotted
    grid = panel.grid
    for loop, plot in grid.plots.items():
        assert plot.point_count > 1000
        assert plot.curve.yData.max() > 900  # free flow at the start
        if loop in clotted:
            assert plot.marker.isVisible()
            assert plot.marked_s == pytest.approx(results[loop]["clot_time_s"])
            assert plot.marker.value() == pytest.approx(plot.marked_s / 60.0)
            assert plot.curve.yData.min() < 300
        else:
            assert not plot.marker.isVisible() and plot.marked_s is None

    # Bath temperature and the gate.
    assert panel.bath_plot.point_count > 10
    assert panel.gate_state == "passed"
    assert "gate passed" in panel.gate_label.text()

    # The loop result table matches the stored results.
    assert [row.loop for row in table.rows] == list(range(1, 9))
    for loop, params in results.items():
        assert table.value_text(loop, "Clotted") == ("yes" if params["clotted"] else "no")
        expected = f"{params['clot_time_s']:.0f} s" if params["clotted"] else "n.r."
        assert table.value_text(loop, "Clotting time") == expected
        assert table.value_text(loop, "Samples drawn") == "5 of 5"

    # SIMULATED in the Run view and the status bar.
    assert run.badge.isVisible() and run.badge.text() == "SIMULATED"
    assert window.status_badge.isVisible()

    # The Results view shows the stored loop run with the same table and markers.
    view = window.results_view
    qtbot.waitUntil(
        lambda: view.shown is not None and view.shown.run["id"] == outcome.run_id,
        timeout=20_000,
    )
    window.show_view("Results")
    stored_panel = view.panel
    assert stored_panel.tabs.tabText(stored_panel.tabs.currentIndex()) == "Loops"
    for loop in results:
        assert stored_panel.table.value_text(loop, "Clotted") == table.value_text(loop, "Clotted")
        assert stored_panel.table.value_text(loop, "Clotting time") == table.value_text(
            loop, "Clotting time"
        )
        stored_plot = stored_panel.grid.plots[loop]
        assert stored_plot.point_count > 1000
        assert stored_plot.marker.isVisible() == (loop in clotted)
    assert stored_panel.tubes_table.rowCount() == 40
    assert view.badge.isVisible()


def test_an_unanswered_draw_turns_late_then_overdue(window: Any, qtbot: Any) -> None:
    run = _set_up(window, LOOP, "120")
    assert run.start_run(), run.reason_label.text()
    prompts = run.live_panel.prompts
    qtbot.waitUntil(lambda: bool(prompts.open_ids()), timeout=20_000)
    (fill_id,) = prompts.open_ids()
    qtbot.mouseClick(prompts.cards[fill_id].done_button, Qt.MouseButton.LeftButton)

    # The 0-min draws: due at once, late (amber) for 2 min, then overdue (red).
    seen: dict[int, list[str]] = {}

    def overdue() -> bool:
        for prompt_id, card in prompts.cards.items():
            states = seen.setdefault(prompt_id, [])
            if card.state and (not states or states[-1] != card.state):
                states.append(card.state)
        return any(card.state == "overdue" for card in prompts.cards.values())

    qtbot.waitUntil(overdue, timeout=30_000)
    card = next(c for c in prompts.cards.values() if c.state == "overdue")
    assert card.prompt.tube_id is not None and "(0 min sample)" in card.prompt.message
    assert card.status_label.text().startswith("OVERDUE by")
    assert theme_colour("DANGER") in card.styleSheet()
    assert "late" in seen[card.prompt.id]
    assert card.done_button.isEnabled()  # still answerable

    run.abort()
    qtbot.waitUntil(lambda: not run.running, timeout=30_000)
    assert run.outcome.status == "aborted"
    # The engine flagged it too, and the prompts left open were never acknowledged.
    log = [run.event_log.item(i).text() for i in range(run.event_log.count())]
    assert any(" overdue ch" in line and "OVERDUE by" in line for line in log)
    assert prompts.open_ids() == []
    assert any(text.startswith("✗ never acknowledged") for text in prompts.done_texts())
    stored = window.store().prompts(run.outcome.run_id)
    assert any(p["overdue"] and p["status"] == "never acknowledged" for p in stored)


def theme_colour(name: str) -> str:
    from gui import theme

    return str(getattr(theme, name))


@pytest.mark.parametrize(
    ("now_s", "state", "text"),
    [
        (800.0, "due_in", "Due in 1:40"),
        (900.0, "due", "Due now"),
        (960.0, "late", "Late by 1:00 · overdue in 1:00"),
        (1021.0, "overdue", "OVERDUE by 2:01"),
    ],
)
def test_prompt_urgency(now_s: float, state: str, text: str) -> None:
    from gui.widgets.prompts import prompt_urgency

    draw = SimpleNamespace(due_t_s=900.0, overdue_after_s=120.0, tube_id="S-000001")
    urgency = prompt_urgency(draw, now_s)
    assert urgency.state == state and urgency.text.startswith(text)
    fill = SimpleNamespace(due_t_s=0.0, overdue_after_s=120.0, tube_id=None)
    assert prompt_urgency(fill, 5000.0).state == "waiting"


def test_loop_panel_helpers() -> None:
    from gui.views.loop_panel import clot_from_event

    assert clot_from_event("loop 3 clotted at 981 s") == 981.0
    assert clot_from_event("bath at 37.0 °C") is None
