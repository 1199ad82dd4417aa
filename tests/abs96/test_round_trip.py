"""Driver ↔ simulator over a real TCP socket, through pyvisa-py (``TCPIP::…::SOCKET``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from drivers.abs96 import Abs96Reader, PlateDataError, ReaderError, ReaderTimeout
from drivers.transport import LinkLostError, VisaTransport
from drivers.wire.scpi import well_names
from instrument.analysis.elisa import Blank, PlateMap, Sample, Standard, analyse_plate
from instrument.analysis.plate import PlateReading
from simulators.abs96 import Abs96Model, Abs96Simulator, ElisaKit, default_plate, run_standalone

LEVELS = (2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
STANDARDS = {
    f"{row}{col}": ("standard", level)
    for row, level in zip("ABCDEF", LEVELS, strict=True)
    for col in (1, 2)
}
BLANKS = {well: ("blank",) for well in ("G1", "G2", "H1", "H2")}


def connect(sim: Abs96Simulator, **kwargs: float) -> Abs96Reader:
    return Abs96Reader(VisaTransport(sim.resource, timeout_ms=2000), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def sim(kit: ElisaKit) -> Iterator[Abs96Simulator]:
    model = Abs96Model({**STANDARDS, **BLANKS}, seed=11, kit=kit)
    with Abs96Simulator(model, speed=100) as simulator:
        yield simulator
    assert simulator.error is None


def test_round_trip_reads_a_plate_of_standards(sim: Abs96Simulator, kit: ElisaKit) -> None:
    assert sim.resource == f"TCPIP::127.0.0.1::{sim.port}::SOCKET"
    with connect(sim, op_timeout_s=5.0) as reader:
        identity = reader.identify()
        assert identity.model == "ABS-96" and identity.simulated
        reader.reset()
        reader.configure_wavelengths(492, 650)
        assert reader.wavelengths() == (492, 650)
        assert reader.temperature() == pytest.approx(25.0, abs=0.2)
        started = time.monotonic()
        plate = reader.read_plate()
        elapsed = time.monotonic() - started
        assert reader.errors() == []
    assert elapsed >= 8.0 / 100  # 8 s of device time at speed 100
    assert set(plate) == {492, 650} and all(len(v) == 96 for v in plate.values())
    index = {well: i for i, well in enumerate(well_names())}

    def net(well: str) -> float:
        return plate[492][index[well]] - plate[650][index[well]]

    means = [np.mean([net(f"{row}1"), net(f"{row}2")]) for row in "ABCDEF"]
    assert means == sorted(means)  # OD rises with concentration
    # Each standard matches the kit 4PL within the simulator's documented noise.
    tolerance = 4 * float(np.hypot(np.hypot(kit.plate_cv, kit.well_cv), kit.read_cv))
    for row, level in zip("ABCDEF", LEVELS, strict=True):
        for col in (1, 2):
            assert net(f"{row}{col}") / kit.curve_od(level) == pytest.approx(1, abs=tolerance)
    assert np.mean([net(w) for w in BLANKS]) == pytest.approx(kit.a, abs=0.02)
    empty = [plate[492][index[w]] for w in well_names() if w not in STANDARDS and w not in BLANKS]
    assert np.mean(empty) == pytest.approx(kit.background_od, rel=0.1)


def test_simulated_plate_analyses_to_the_true_concentrations(kit: ElisaKit) -> None:
    """The ELISA analysis recovers the simulator's sample concentrations."""
    contents = default_plate(kit)
    model = Abs96Model(contents, seed=3, kit=kit)
    with Abs96Simulator(model, speed=100) as sim, connect(sim) as reader:
        reader.configure_wavelengths(492, 650)
        values = reader.read_plate()
    reading = PlateReading.from_row_major(values, sim.resource, simulated=True)
    entries: list[Standard | Blank | Sample] = [
        Standard(level, (f"{row}1", f"{row}2"))
        for row, level in zip("ABCDEF", kit.standards_ug_per_l, strict=True)
    ]
    entries.append(Blank(("G1", "G2", "H1", "H2")))
    truth = {}
    for row in "ABCD":
        _, true, dilution = contents[f"{row}3"]
        entries.append(Sample(f"S-{row}", dilution, (f"{row}3", f"{row}4")))
        truth[f"S-{row}"] = true
    result = analyse_plate(reading, PlateMap(tuple(entries)))
    for sample_id, true in truth.items():
        found = result.samples[sample_id].value_ug_per_l
        assert found is not None and found == pytest.approx(true, rel=0.2), sample_id


def test_short_plate_fault(kit: ElisaKit) -> None:
    model = Abs96Model(STANDARDS, kit=kit)
    with (
        Abs96Simulator(model, speed=100, short_plate=True) as sim,
        connect(sim) as reader,
        pytest.raises(PlateDataError) as info,
    ):
        reader.read_plate()
    assert info.value.count == 95 and sim.resource in str(info.value)
    assert "95 absorbances came at 492 nm, expected 96" in str(info.value)


def test_reader_faults_from_the_spec(kit: ElisaKit) -> None:
    """``short_plate`` and ``lamp_failure`` are selectable from a fault spec (``--faults``)."""
    model = Abs96Model(STANDARDS, kit=kit)
    with Abs96Simulator(model, speed=100, faults="short_plate") as sim, connect(sim) as reader:
        with pytest.raises(PlateDataError) as short:
            reader.read_plate()
        assert short.value.count == 95
    model = Abs96Model(STANDARDS, kit=kit)
    with Abs96Simulator(model, speed=100, faults="lamp_failure") as sim, connect(sim) as reader:
        with pytest.raises(ReaderError) as lamp:
            reader.read_plate()
        assert (lamp.value.code, lamp.value.command) == (201, "INIT")


def test_lamp_failure_fault(kit: ElisaKit) -> None:
    model = Abs96Model(STANDARDS, kit=kit)
    with Abs96Simulator(model, speed=100, lamp_failure=True) as sim, connect(sim) as reader:
        with pytest.raises(ReaderError) as info:
            reader.read_plate()
        assert reader.errors() == []
    assert (info.value.code, info.value.command, info.value.resource) == (
        201,
        "INIT",
        sim.resource,
    )


def test_error_reply_fault(kit: ElisaKit) -> None:
    with (
        Abs96Simulator(Abs96Model(kit=kit), speed=100, faults="error:CONF=5x1") as sim,
        connect(sim) as reader,
    ):
        with pytest.raises(ReaderError) as info:
            reader.configure_wavelengths(405)
        assert info.value.code == 5
        reader.configure_wavelengths(405)  # only the first one was refused
        assert reader.wavelengths() == (405,)


def test_refused_query_is_explained_by_the_error_queue(kit: ElisaKit) -> None:
    with (
        Abs96Simulator(Abs96Model(kit=kit), speed=100, faults="error:TEMP=7") as sim,
        connect(sim, reply_timeout_s=0.2) as reader,
    ):
        with pytest.raises(ReaderError) as info:
            reader.temperature()
        assert (info.value.code, info.value.command) == (7, "TEMP?")
        assert reader.wavelengths() == (492,)


def test_stall_then_late_replies_are_discarded(kit: ElisaKit) -> None:
    with (
        Abs96Simulator(Abs96Model(kit=kit), speed=1, faults="stall@0s=0.6") as sim,
        connect(sim, reply_timeout_s=0.1) as reader,
    ):
        with pytest.raises(ReaderTimeout) as info:
            reader.temperature()
        assert sim.resource in str(info.value) and "'TEMP?'" in str(info.value)
        time.sleep(0.7)  # the stall ends; the late replies are now waiting
        assert reader.wavelengths() == (492,)
        assert reader.temperature() == pytest.approx(25.0, abs=0.2)


def test_disconnect_then_reconnect_keeps_settings(kit: ElisaKit) -> None:
    with Abs96Simulator(Abs96Model(kit=kit), speed=1, faults="disconnect@0.5s") as sim:
        with connect(sim, reply_timeout_s=0.3) as reader:
            reader.configure_wavelengths(450, 620)
            time.sleep(0.6)
            with pytest.raises((LinkLostError, ReaderTimeout)):
                reader.temperature()
        with connect(sim) as reader:
            assert reader.wavelengths() == (450, 620)


def test_over_temperature_fault(kit: ElisaKit) -> None:
    with (
        Abs96Simulator(Abs96Model(kit=kit), speed=100, faults="overtemp@1s") as sim,
        connect(sim) as reader,
    ):
        time.sleep(0.05)
        assert reader.temperature() == pytest.approx(45.0, abs=0.2)
        assert [e.code for e in reader.errors()] == [202]


@pytest.mark.parametrize("faults", ["drop=0.1", "corrupt=0.5", "garbage=0.01", "stall@seq5=1"])
def test_simulator_refuses_frame_faults(faults: str) -> None:
    with pytest.raises(ValueError, match="cannot inject"):
        Abs96Simulator(Abs96Model(), faults=faults)


@pytest.mark.parametrize("speed", [0, -1, float("inf"), float("nan")])
def test_simulator_speed_must_be_finite(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Abs96Simulator(Abs96Model(), speed=speed)


def test_simulator_properties_before_start() -> None:
    sim = Abs96Simulator(Abs96Model())
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.resource
    assert sim.device_s == 0.0
    sim.stop()


def test_run_standalone_prints_the_resource_and_serves() -> None:
    lines: list[str] = []
    until = threading.Event()
    thread = threading.Thread(
        target=run_standalone,
        kwargs={"seed": 4, "speed": 100, "out": lines.append, "until": until},
        name="abs96-standalone",
    )
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not any("VISA resource" in line for line in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.01)
        resource = next(line for line in lines if "VISA resource" in line).split(": ", 1)[1]
        assert resource.startswith("TCPIP::127.0.0.1::") and resource.endswith("::SOCKET")
        with Abs96Reader(VisaTransport(resource)) as reader:
            assert reader.identify().serial == "A96-SIM-0004"
    finally:
        until.set()
        thread.join(5)
    assert "SIMULATED" in lines[0]
