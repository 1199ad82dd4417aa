"""The Instruments view: ports, role table, connect to the built-in simulator, saved station."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed (hemocompat[gui])")

from PySide6.QtCore import Qt

from instrument.station import load_station


def test_connect_to_the_simulator_shows_identity_and_temperature(window: Any, qtbot: Any) -> None:
    view = window.instruments_view
    window.show_view("Instruments")
    qtbot.waitUntil(lambda: view.ports_list.count() > 0, timeout=10_000)
    view.simulated_check.click()
    assert window.station.simulated and window.status_badge.isVisible()

    view.table.selectRow(0)
    qtbot.mouseClick(view.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "tem" in view.connections, timeout=20_000)
    row = [view.table.item(0, col).text() for col in (0, 4, 5, 6, 7, 8)]
    assert row[0] == "tem" and row[1] == "connected (SIMULATED)"
    assert row[2] == "TEM-4" and "SIM" in row[3] and row[4]
    assert row[5].endswith("°C")
    assert "TEM-4" in window.health_label.text()
    assert not view.connect_button.isEnabled() and view.disconnect_button.isEnabled()

    qtbot.mouseClick(view.disconnect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.tasks.busy("disconnect-tem"), timeout=10_000)
    assert "tem" not in view.connections
    assert view.table.item(0, 4).text() == "not connected"


def test_starting_a_run_hands_the_instrument_over(window: Any, qtbot: Any) -> None:
    view = window.instruments_view
    window.station.set_simulated(True)
    view.connect_selected()
    qtbot.waitUntil(lambda: "tem" in view.connections, timeout=20_000)
    run = window.run_view
    run.select_protocol("natem-msc-dose-series.yaml")
    run.speed_combo.setCurrentText("max")
    assert run.start_run()
    qtbot.waitUntil(
        lambda: "tem" not in view.connections and run.state != "starting", timeout=20_000
    )
    run.abort()
    qtbot.waitUntil(lambda: not run.running, timeout=30_000)
    assert run.outcome.status in ("aborted", "completed")


def test_real_instrument_without_a_port_cannot_start(window: Any) -> None:
    run = window.run_view
    run.select_protocol("natem-msc-dose-series.yaml")
    assert not window.station.simulated
    assert not run.start_button.isEnabled()
    assert "no port chosen" in run.reason_label.text()
    window.station.set_resource("tem", "socket://127.0.0.1:9")
    assert run.start_button.isEnabled(), run.reason_label.text()


def test_station_is_saved_in_the_station_file_format_and_restored(
    window: Any, tmp_path: Path
) -> None:
    view = window.instruments_view
    combo = view._resource_boxes["tem"]
    combo.setEditText("/dev/ttyUSB7")
    view._baud_boxes["tem"].setValue(57600)
    station_file = window.paths.station_file
    station = load_station(station_file)  # the core's own reader accepts it
    assert station.instruments["tem"].resource == "/dev/ttyUSB7"
    assert station.instruments["tem"].baudrate == 57600

    from gui.models.station import StationModel

    restored = StationModel()
    assert restored.restore(station_file) is None
    assert restored.roles["tem"].resource == "/dev/ttyUSB7"
    assert restored.roles["tem"].baudrate == 57600


def test_visa_resources_are_found_on_a_worker(window: Any, qtbot: Any) -> None:
    from drivers.transport import available_visa_resources

    view = window.instruments_view
    view.find_visa_resources()
    assert not view.visa_button.isEnabled()
    qtbot.waitUntil(lambda: not window.tasks.busy("scan-visa"), timeout=15_000)
    assert view.visa_button.isEnabled()
    shown = [view.visa_list.item(i).text() for i in range(view.visa_list.count())]
    expected = available_visa_resources() or ["(no VISA resources found)"]
    assert shown == expected


def test_the_bath_and_the_loop_rotator_connect_too(window: Any, qtbot: Any) -> None:
    view = window.instruments_view
    window.show_view("Instruments")
    view.simulated_check.click()
    for row, role, model in ((1, "bath", "CORIO"), (2, "loop", "LOOP-8")):
        assert view.table.item(row, 0).text() == role
        view.table.selectRow(row)
        qtbot.mouseClick(view.connect_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda role=role: role in view.connections, timeout=20_000)
        cells = [view.table.item(row, col).text() for col in (4, 5, 6, 7, 8)]
        assert cells[0] == "connected (SIMULATED)" and model in cells[1], cells
        if role == "bath":
            assert cells[4].endswith("°C") and 36.0 < float(cells[4].split()[0]) < 38.0
        else:
            assert cells[4] == ""  # the rotator has no temperature sensor
    for role in ("bath", "loop"):
        view.disconnect_role(role)
        qtbot.waitUntil(
            lambda role=role: not window.tasks.busy(f"disconnect-{role}"), timeout=10_000
        )
    assert not view.connections
