"""The simulated bath's thermal model and command handling, on device time (no I/O)."""

from __future__ import annotations

import math

import pytest

from simulators.julabo import DEFAULT_VERSION, BathModel


def _started(**kw: float) -> BathModel:
    model = BathModel(noise_c=0.0, **kw)  # type: ignore[arg-type]
    assert model.handle("OUT_MODE_05 1", 0.0) is None
    return model


def test_running_bath_approaches_setpoint_with_time_constant_tau() -> None:
    model = _started(room_c=22.0, setpoint_c=37.0, tau_s=300.0)
    expected = 37.0 - 15.0 * math.exp(-1.0)
    assert model.temperature_c(300.0) == pytest.approx(expected, abs=1e-9)
    assert model.handle("IN_PV_00", 300.0) == f"{expected:.2f}"
    assert abs(model.temperature_c(5 * 300.0) - 37.0) < 0.11
    assert model.handle("IN_MODE_05", 1500.0) == "1"


def test_stopped_bath_relaxes_to_room_temperature() -> None:
    model = BathModel(room_c=22.0, noise_c=0.0, temperature_c=37.0, running=True)
    model.handle("OUT_MODE_05 0", 0.0)
    assert model.temperature_c(300.0) == pytest.approx(22.0 + 15.0 * math.exp(-1.0))
    assert model.handle("IN_MODE_05", 300.0) == "0"
    assert model.handle("STATUS", 300.0) == "02 REMOTE STOP"


def test_time_never_runs_backwards() -> None:
    model = _started()
    later = model.temperature_c(100.0)
    assert model.temperature_c(50.0) == later
    assert model.now_s == 100.0


def test_readings_have_seeded_noise() -> None:
    def readings(seed: int) -> list[str]:
        model = BathModel(noise_c=0.05, seed=seed, temperature_c=37.0, running=True)
        return [model.handle("IN_PV_00", float(t)) or "" for t in range(20)]

    first = readings(1)
    assert first == readings(1)
    assert first != readings(2)
    values = [float(r) for r in first]
    assert len(set(values)) > 1 and all(abs(v - 37.0) < 0.3 for v in values)


def test_setpoint_query_and_change() -> None:
    model = BathModel()
    assert model.handle("IN_SP_00", 0.0) == "37.00"
    assert model.handle("OUT_SP_00 25.50", 1.0) is None
    assert model.handle("IN_SP_00", 1.0) == "25.50"
    assert model.handle("in_sp_00", 1.0) == "25.50"  # the bath accepts lower case
    assert model.handle("VERSION", 1.0) == DEFAULT_VERSION


def test_excursion_moves_the_bath_out_of_band_then_back() -> None:
    model = _started(temperature_c=37.0)
    model.inject_excursion(100.0, 50.0, 2.5)
    assert model.temperature_c(99.9) == pytest.approx(37.0)
    assert model.temperature_c(100.0) == pytest.approx(39.5)
    assert model.handle("IN_PV_00", 149.0) == "39.50"
    assert model.temperature_c(150.0) == pytest.approx(37.0)
    assert model.handle("STATUS", 150.0) == "03 REMOTE START"  # within the safety limit


def test_exceeding_the_safety_limit_trips_the_protector_and_stops_the_bath() -> None:
    model = _started(setpoint_c=45.0, max_c=40.0, room_c=22.0, tau_s=300.0)
    trip_s = 300.0 * math.log(23.0 / 5.0)  # 45 - 23·exp(-t/τ) = 40
    assert model.handle("STATUS", trip_s - 5.0) == "03 REMOTE START"
    assert model.handle("STATUS", trip_s + 5.0) == "-14 TEMPERATURE/LEVEL ALARM"
    assert model.handle("IN_MODE_05", trip_s + 5.0) == "0"
    model.handle("OUT_MODE_05 1", trip_s + 6.0)  # refused while the alarm is latched
    assert model.handle("IN_MODE_05", trip_s + 7.0) == "0"
    assert model.temperature_c(trip_s + 600.0) < 40.0  # cools towards room temperature
    assert model.handle("STATUS", trip_s + 600.0) == "-14 TEMPERATURE/LEVEL ALARM"  # latched
    model.clear_alarm()
    assert (
        model.handle("STATUS", trip_s + 601.0)
        == "-09 COMMAND NOT ALLOWED IN CURRENT OPERATING MODE"
    )
    assert model.handle("STATUS", trip_s + 601.0) == "02 REMOTE STOP"


def test_excursion_above_the_safety_limit_trips_the_protector() -> None:
    model = _started(temperature_c=37.0, max_c=40.0)
    model.inject_excursion(10.0, 5.0, 4.0)
    assert model.handle("STATUS", 12.0) == "-14 TEMPERATURE/LEVEL ALARM"


def test_injected_alarm_at_a_device_time() -> None:
    model = _started(temperature_c=37.0)
    model.inject_alarm(60.0, -1)
    assert model.handle("STATUS", 59.0) == "03 REMOTE START"
    assert model.handle("STATUS", 61.0) == "-01 LOW LEVEL ALARM"
    assert not model.running
    # stopped exactly at the alarm: cooling started at 60 s, not at 61 s
    assert model.temperature_c(360.0) == pytest.approx(22.0 + 15.0 * math.exp(-1.0))


def test_injected_warning_does_not_stop_the_bath() -> None:
    model = _started(temperature_c=37.0)
    model.inject_alarm(1.0, -3)
    assert model.handle("STATUS", 2.0) == "-03 EXCESS TEMPERATURE WARNING"
    assert model.running


@pytest.mark.parametrize("command", ["IN_PV_99", "HELLO", "IN_PV_00 5", ""])
def test_invalid_query_gets_the_error_status_which_status_reports_once(command: str) -> None:
    model = BathModel()
    assert model.handle(command, 0.0) == "-08 INVALID COMMAND"
    assert model.handle("STATUS", 0.0) == "-08 INVALID COMMAND"
    assert model.handle("STATUS", 0.0) == "02 REMOTE STOP"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("OUT_SP_00 -30", "-10 VALUE TOO SMALL"),
        ("OUT_SP_00 200", "-11 VALUE TOO LARGE"),
        ("OUT_SP_00 abc", "-08 INVALID COMMAND"),
        ("OUT_MODE_05 7", "-08 INVALID COMMAND"),
        ("OUT_SP_01 20", "-08 INVALID COMMAND"),
    ],
)
def test_refused_out_commands_get_no_reply_and_show_in_status(command: str, code: str) -> None:
    model = BathModel(setpoint_c=37.0)
    assert model.handle(command, 0.0) is None
    assert model.handle("STATUS", 0.0) == code
    assert model.handle("IN_SP_00", 0.0) == "37.00"
    assert model.handle("IN_MODE_05", 0.0) == "0"


def test_out_commands_need_remote_mode() -> None:
    model = BathModel(remote=False)
    assert model.handle("STATUS", 0.0) == "00 MANUAL STOP"
    assert model.handle("OUT_MODE_05 1", 0.0) is None
    assert model.handle("STATUS", 0.0) == "-09 COMMAND NOT ALLOWED IN CURRENT OPERATING MODE"
    assert model.handle("IN_MODE_05", 0.0) == "0"


def test_invalid_model_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="tau_s"):
        BathModel(tau_s=0.0)
    with pytest.raises(ValueError, match="alarm codes are negative"):
        BathModel().inject_alarm(1.0, 3)
    with pytest.raises(ValueError, match="duration_s"):
        BathModel().inject_excursion(1.0, 0.0, 1.0)


def test_trip_time_does_not_depend_on_how_often_the_bath_is_queried() -> None:
    model = _started(setpoint_c=45.0, max_c=40.0, room_c=22.0, tau_s=300.0)
    trip_s = 300.0 * math.log(23.0 / 5.0)
    # one query long after the trip: the bath stopped heating at 40 °C, at trip_s
    assert model.temperature_c(trip_s + 300.0) == pytest.approx(22.0 + 18.0 * math.exp(-1.0))
    assert model.alarm_code == -14
