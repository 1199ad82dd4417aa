"""JulaboBath ↔ BathSimulator over a real pty and over TCP, with the bath's line settings."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from drivers.julabo import BathAlarm, BathTimeout, JulaboBath
from drivers.transport import LinkLostError, PortNotFoundError, SerialTransport
from simulators.julabo import BathModel, BathSimulator

needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="no pseudo-terminals on Windows")


@contextmanager
def _bath_on(
    url: str, settings: dict[str, Any] | None = None, **kwargs: float
) -> Iterator[JulaboBath]:
    line = {**JulaboBath.serial_settings(), **(settings or {})}
    transport = SerialTransport(url, **line, name="bath")
    kwargs.setdefault("reply_timeout", 0.3)
    with JulaboBath(transport, **kwargs) as bath:  # type: ignore[arg-type]
        yield bath


def _wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _reach_setpoint(sim: BathSimulator, url: str, settings: dict[str, Any] | None = None) -> None:
    with _bath_on(url, settings) as bath:
        assert bath.identify() == "JULABO CORIO CD-200F VERSION 1.0"
        assert sim.commands_ignored == 1  # the first VERSION was swallowed and repeated
        assert bath.status().code == 2
        bath.set_setpoint(37.0)
        bath.start()
        assert bath.running()
        assert bath.setpoint() == 37.0
        assert 20.0 < bath.temperature() < 37.0
        assert _wait_until(lambda: abs(bath.temperature() - 37.0) < 0.1)
        assert bath.check_alarm().code == 3
        bath.stop()
        assert not bath.running()
    assert sim.error is None


@needs_pty
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({}, id="bath-7E1-rtscts"),
        pytest.param({"bytesize": 8, "parity": "N"}, id="8N1-rtscts"),
    ],
)
def test_round_trip_over_a_pty_reaches_setpoint(settings: dict[str, Any]) -> None:
    model = BathModel(room_c=22.0, setpoint_c=25.0, tau_s=10.0, seed=3)
    with BathSimulator(model, speed=100, tcp=False) as sim:
        assert sim.pty_path is not None and sim.url == sim.pty_path
        _reach_setpoint(sim, sim.pty_path, settings)


def test_round_trip_over_tcp_reaches_setpoint() -> None:
    model = BathModel(room_c=22.0, setpoint_c=25.0, tau_s=10.0, seed=4)
    with BathSimulator(model, speed=100, pty=False) as sim:
        assert sim.tcp_port is not None
        assert sim.url == f"socket://127.0.0.1:{sim.tcp_port}"
        _reach_setpoint(sim, sim.url)


def test_excursion_is_seen_over_the_wire_then_ends() -> None:
    model = BathModel(temperature_c=37.0, running=True, noise_c=0.0)
    model.inject_excursion(0.0, 60.0, 2.0)
    with (
        BathSimulator(model, speed=100, pty=False, drop_first_command=False) as sim,
        _bath_on(sim.url) as bath,
    ):
        assert bath.temperature() == 39.0
        assert _wait_until(lambda: sim.device_s > 60.0)
        assert bath.temperature() == 37.0


def test_port_that_does_not_exist() -> None:
    with pytest.raises(PortNotFoundError, match="/dev/does-not-exist-julabo"):
        SerialTransport("/dev/does-not-exist-julabo", **JulaboBath.serial_settings())


def test_stalled_bath_times_out_naming_the_port() -> None:
    with BathSimulator(BathModel(), faults="stall@0s=30", pty=False) as sim:
        with _bath_on(sim.url, reply_timeout=0.1) as bath, pytest.raises(BathTimeout) as info:
            bath.temperature()
        assert sim.url in str(info.value) and info.value.port == sim.url
        assert sim.commands_ignored == 2  # the query and its wake-up retry


def test_over_temperature_fault_raises_bath_alarm() -> None:
    with (
        BathSimulator(BathModel(running=True), faults="overtemp@1s", speed=100, pty=False) as sim,
        _bath_on(sim.url) as bath,
    ):
        assert _wait_until(lambda: sim.device_s > 1.0)
        with pytest.raises(BathAlarm, match="excess-temperature protector") as info:
            bath.check_alarm()
        assert info.value.status.code == -14
        assert not bath.running()


def test_lost_replies_time_out_and_line_noise_is_skipped() -> None:
    with (
        BathSimulator(faults="drop=1", pty=False, drop_first_command=False) as sim,
        _bath_on(sim.url, reply_timeout=0.1, wake_retries=0) as bath,
        pytest.raises(BathTimeout),
    ):
        bath.temperature()
    with BathSimulator(
        BathModel(running=True), faults="garbage=1", pty=False, drop_first_command=False
    ) as sim:
        with _bath_on(sim.url) as bath:
            # every reply comes after a line of random bytes; the driver takes the reply
            assert bath.setpoint() == 37.0
            assert 15.0 < bath.temperature() < 40.0
            assert bath.running()
        raw = SerialTransport(sim.url, name="raw")  # what the line carries
        try:
            raw.write(b"IN_SP_00")
            lines: list[bytes] = []
            deadline = time.monotonic() + 2
            while len(lines) < 2 and time.monotonic() < deadline:
                lines += raw.read_lines(0.1)
        finally:
            raw.close()
        assert len(lines) == 2 and lines[1] == b"37.00" and lines[0] != b"37.00"


@pytest.mark.parametrize("faults", ["corrupt=0.1", "stall@seq5=1", "short_plate", "lamp_failure"])
def test_bath_refuses_faults_it_cannot_have(faults: str) -> None:
    with pytest.raises(ValueError, match="JULABO bath simulator cannot inject"):
        BathSimulator(faults=faults, pty=False)


def test_injected_command_error_shows_in_status() -> None:
    with (
        BathSimulator(faults="error:OUT_SP_00=10", pty=False, drop_first_command=False) as sim,
        _bath_on(sim.url) as bath,
    ):
        bath.set_setpoint(30.0)
        with pytest.raises(BathAlarm, match="'-10 VALUE TOO SMALL'"):
            bath.check_alarm()
        assert bath.setpoint() == 37.0  # the refused setpoint was not stored


def test_disconnect_fault_loses_the_link() -> None:
    with (
        BathSimulator(faults="disconnect@0.5s", pty=False, drop_first_command=False) as sim,
        _bath_on(sim.url) as bath,
    ):
        assert bath.running() is False
        assert _wait_until(lambda: sim.device_s > 0.6)
        with pytest.raises(LinkLostError):
            bath.temperature()
