"""simulators/data/abs96.yaml through pyvisa-sim: the command set at the VISA level, and the
driver on VisaTransport(..., backend="<yaml>@sim")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pyvisa

from drivers.abs96 import Abs96Reader, ReaderError
from drivers.transport import VisaTransport
from drivers.wire.scpi import parse_error_entry, parse_plate

YAML_PATH = Path(__file__).resolve().parents[2] / "simulators" / "data" / "abs96.yaml"
BACKEND = f"{YAML_PATH}@sim"
SOCKET = "TCPIP::abs96.sim::5025::SOCKET"
RESOURCES = [SOCKET, "ASRL9::INSTR", "USB0::0xFFFF::0x0096::A96-SIM-YAML::INSTR"]


@pytest.fixture
def inst() -> Iterator[pyvisa.resources.MessageBasedResource]:
    rm = pyvisa.ResourceManager(BACKEND)
    resource: Any = rm.open_resource(
        SOCKET, read_termination="\n", write_termination="\n", timeout=100
    )
    try:
        yield resource
    finally:
        resource.close()
        rm.close()


@pytest.fixture
def reader() -> Iterator[Abs96Reader]:
    with Abs96Reader(
        VisaTransport(SOCKET, backend=BACKEND, timeout_ms=200), reply_timeout_s=0.2
    ) as r:
        yield r


def test_resources_are_listed() -> None:
    rm = pyvisa.ResourceManager(BACKEND)
    try:
        listed = rm.list_resources("?*")
    finally:
        rm.close()
    assert "TCPIP0::abs96.sim::5025::SOCKET" in listed and "ASRL9::INSTR" in listed
    assert any(r.startswith("USB0::0xFFFF::0x0096::A96-SIM-YAML") for r in listed)


def test_common_commands(inst: pyvisa.resources.MessageBasedResource) -> None:
    assert inst.query("*IDN?") == "HEMOTEC,ABS-96,A96-SIM-YAML,1.4.0"
    inst.write("*RST")
    inst.write("*CLS")
    assert inst.query("*OPC?") == "1"
    assert inst.query("SYST:ERR?") == '0,"No error"'
    assert inst.query("*ESR?") == "0"
    assert float(inst.query("TEMP?")) == 25.0


def test_wavelengths_and_the_error_queue(inst: pyvisa.resources.MessageBasedResource) -> None:
    assert inst.query("CONF:WAV?") == "492"
    inst.write("CONF:WAV 492,650")
    assert inst.query("CONF:WAV?") == "492,650"
    inst.write("CONF:WAV 1200")  # outside the range: refused, queued
    inst.write("BOGUS")
    assert inst.query("CONF:WAV?") == "492,650"
    assert parse_error_entry(inst.query("SYST:ERR?")).code == -113
    assert parse_error_entry(inst.query("SYST:ERR?")).code == -113
    assert inst.query("SYST:ERR?") == '0,"No error"'
    assert inst.query("*ESR?") == "32"  # command error
    with pytest.raises(pyvisa.errors.VisaIOError):
        inst.query("FOO?")  # a refused query gets no reply


def test_plate_replies(inst: pyvisa.resources.MessageBasedResource) -> None:
    inst.write("INIT")
    p492 = parse_plate(inst.query("FETC:PLAT? 492"))
    assert parse_plate(inst.query("FETC:PLAT?")) == p492
    p650 = parse_plate(inst.query("FETC:PLAT? 650"))
    assert all(a > b for a, b in zip(p492[:2], p650[:2], strict=True))  # A1, A2: standards


@pytest.mark.parametrize("resource", RESOURCES)
def test_driver_identifies_on_every_interface(resource: str) -> None:
    with Abs96Reader(VisaTransport(resource, backend=BACKEND, timeout_ms=200)) as r:
        identity = r.identify()
    assert identity.serial == "A96-SIM-YAML" and identity.simulated


def test_driver_commands(reader: Abs96Reader) -> None:
    reader.reset()
    reader.clear_status()
    reader.configure_wavelengths(492, 650)
    assert reader.wavelengths() == (492, 650)
    assert reader.temperature() == 25.0
    plate = reader.read_plate()
    assert list(plate) == [492, 650] and all(len(v) == 96 for v in plate.values())
    reader.configure_wavelengths(450)
    assert reader.wavelengths() == (450,)
    assert reader.event_status() == 0
    assert reader.errors() == []


def test_driver_reports_a_refused_command(reader: Abs96Reader) -> None:
    """500 nm is in the reader's range (so the driver sends it) but not in this YAML's
    filter set: pyvisa-sim queues -113 and the driver raises it."""
    with pytest.raises(ReaderError) as info:
        reader.configure_wavelengths(500, 650)
    assert (info.value.code, info.value.command) == (-113, "CONF:WAV 500,650")
    assert SOCKET in str(info.value)
    assert reader.wavelengths() == (492,)
    assert reader.event_status() == 32
