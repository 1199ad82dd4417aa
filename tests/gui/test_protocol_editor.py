"""The Protocols view: live validation, issue navigation, versioned saving; Start follows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed (hemocompat[gui])")

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from protocols import load_protocol

NATEM = "natem-msc-dose-series.yaml"


def _line_of(text: str, prefix: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(prefix))


def _open_natem(window: Any) -> Any:
    window.run_view.select_protocol(NATEM)
    window.show_view("Protocols")
    view = window.protocols_view
    assert view.document.path is not None and view.document.path.name == NATEM
    return view


def test_typing_an_error_lists_it_with_line_and_column_and_blocks_start(
    window: Any, qtbot: Any
) -> None:
    view = _open_natem(window)
    run = window.run_view
    window.station.set_simulated(True)
    assert run.start_button.isEnabled(), run.reason_label.text()

    editor = view.editor
    line = _line_of(editor.toPlainText(), "reagent:")
    editor.jump_to(line, len("reagent: NATEM") + 1)
    qtbot.keyClicks(editor, "X")  # reagent: NATEMX
    assert view.document.modified

    qtbot.waitUntil(lambda: bool(view.document.issues), timeout=5000)
    first = view.issue_list.item(0).text()
    assert first.startswith(f"{line}:10 ") and "reagent" in first and "NATEMX" in first
    assert line in editor.issue_lines
    assert "problem" in view.validity_label.text()

    # An invalid protocol cannot be started, and the Run view says why.
    assert not run.start_button.isEnabled()
    assert f"line {line}:10" in run.reason_label.text()
    assert not run.start_run()
    assert run.state == "idle"

    # Clicking the issue puts the cursor on it.
    editor.moveCursor(QTextCursor.MoveOperation.Start)
    item = view.issue_list.item(0)
    rect = view.issue_list.visualItemRect(item)
    qtbot.mouseClick(view.issue_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    cursor = editor.textCursor()
    assert (cursor.blockNumber() + 1, cursor.positionInBlock() + 1) == (line, 10)

    # Deleting the typo makes the text the saved file again: valid, runnable.
    editor.jump_to(line, len("reagent: NATEMX") + 1)
    qtbot.keyClick(editor, Qt.Key.Key_Backspace)
    qtbot.waitUntil(lambda: view.document.valid, timeout=5000)
    assert not view.document.modified and not editor.issue_lines
    assert run.start_button.isEnabled(), run.reason_label.text()


def test_unsaved_valid_changes_must_be_saved_as_a_new_version_before_a_run(
    window: Any, qtbot: Any, tmp_path: Path
) -> None:
    view = _open_natem(window)
    run = window.run_view
    window.station.set_simulated(True)
    editor = view.editor
    editor.moveCursor(QTextCursor.MoveOperation.End)
    editor.insertPlainText("\n# tuned for the bench\n")
    qtbot.waitUntil(lambda: view.document.valid, timeout=5000)
    assert view.document.modified
    assert not run.start_button.isEnabled()
    assert "save it as a new version" in run.reason_label.text()

    user_dir = window.library.user_dir
    # A file with the next name already exists: it is kept, the save takes the next one.
    user_dir.mkdir(parents=True, exist_ok=True)
    squatter = user_dir / "natem-msc-dose-series-v2.yaml"
    squatter.write_text("not a protocol\n", encoding="utf-8")

    qtbot.mouseClick(view.save_button, Qt.MouseButton.LeftButton)
    saved = user_dir / "natem-msc-dose-series-v3.yaml"
    assert saved.exists()
    assert squatter.read_text(encoding="utf-8") == "not a protocol\n"
    protocol = load_protocol(saved)
    assert protocol.version == 3 and protocol.text.endswith("# tuned for the bench\n")
    assert view.document.path == saved and not view.document.modified
    assert run.start_button.isEnabled(), run.reason_label.text()
    assert run.protocol_combo.currentData() == str(saved)

    # Saving again (no edit) gives v4; nothing is overwritten.
    view.save_new_version()
    assert load_protocol(user_dir / "natem-msc-dose-series-v4.yaml").version == 4
    assert load_protocol(saved).version == 3


def test_other_assays_open_but_cannot_be_run_here(window: Any) -> None:
    run = window.run_view
    window.station.set_simulated(True)
    assert run.select_protocol("tat-elisa.yaml")
    assert not run.start_button.isEnabled()
    assert "elisa protocols cannot be run" in run.reason_label.text()
    assert "chandler loop protocols can" in run.reason_label.text()
    assert window.protocols_view.plan_table.rowCount() == 0
    assert "No step preview" in window.protocols_view.duration_label.text()


def test_loop_protocols_can_be_run_and_dry_run(window: Any) -> None:
    run = window.run_view
    window.station.set_simulated(True)
    assert run.select_protocol("chandler-loop-60min.yaml")
    assert run.start_button.isEnabled(), run.reason_label.text()
    table = window.protocols_view.plan_table
    steps = [table.item(row, 1).text() for row in range(table.rowCount())]
    assert steps[0].startswith("Connect to the water bath")
    assert any(s.startswith("Operator fills and mounts the loops") for s in steps)
    assert steps[-1].startswith("Compute loop clotting times")


def test_dry_run_preview_lists_the_steps_and_the_duration(window: Any) -> None:
    view = _open_natem(window)
    table = view.plan_table
    steps = [table.item(row, 1).text() for row in range(table.rowCount())]
    assert steps[0].startswith("Connect") and steps[-1].startswith("Compute clot parameters")
    assert any("Record channels 1, 2, 3, 4 for 60 min" in s for s in steps)
    assert "Expected duration 1:01:30" in view.duration_label.text()


def test_switching_protocols_asks_before_dropping_edits(window: Any, confirm: Any) -> None:
    view = _open_natem(window)
    view.editor.appendPlainText("# edit")
    confirm.answer = False
    assert not window.run_view.select_protocol("extem-msc-dose-series.yaml") or (
        view.document.path.name == NATEM
    )
    assert view.document.path.name == NATEM and view.document.modified
    assert len(confirm.asked) == 1
    confirm.answer = True
    window.run_view.select_protocol("extem-msc-dose-series.yaml")
    assert view.document.path.name == "extem-msc-dose-series.yaml"
