"""Abs96Model: the kit 4PL and its noise, IEEE 488.2 / SCPI semantics, reader faults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from drivers.wire.scpi import (
    ESR_CME,
    ESR_DDE,
    ESR_EXE,
    ESR_OPC,
    ESR_PON,
    ErrorEntry,
    parse_error_entry,
    parse_plate,
    well_names,
)
from simulators.abs96 import (
    ERROR_QUEUE_SIZE,
    READ_BASE_S,
    READ_PER_WAVELENGTH_S,
    Abs96Model,
    ElisaKit,
    KitFileError,
    default_plate,
)

STANDARDS = {
    f"{row}{col}": ("standard", level)
    for row, level in zip("ABCDEF", (2.0, 4.0, 8.0, 15.0, 30.0, 60.0), strict=True)
    for col in (1, 2)
}
TWO_WAVELENGTH_READ_S = READ_BASE_S + 2 * READ_PER_WAVELENGTH_S
KIT_FILE = Path(__file__).resolve().parents[2] / "simulators" / "data" / "elisa_kit.yaml"


def errors(model: Abs96Model) -> list[ErrorEntry]:
    """Drain the model's error queue through SYST:ERR?."""
    entries: list[ErrorEntry] = []
    while True:
        entry = parse_error_entry(model.handle("SYST:ERR?", model.now_s) or "")
        if not entry.is_error:
            return entries
        entries.append(entry)


def read(model: Abs96Model, wavelengths: str = "492,650") -> dict[int, list[float]]:
    t = model.now_s
    assert model.handle(f"CONF:WAV {wavelengths}", t) is None
    assert model.handle("INIT", t) is None
    t += 100.0
    assert model.handle("*OPC?", t) == "1"
    nms = [int(nm) for nm in wavelengths.split(",")]
    return {nm: parse_plate(model.handle(f"FETC:PLAT? {nm}", t) or "") for nm in nms}


# ---------------------------------------------------------------------------- the kit


def test_kit_file_values(kit: ElisaKit) -> None:
    assert (kit.a, kit.b, kit.c_ug_per_l, kit.d) == (0.05, 1.3, 25.0, 3.2)
    assert kit.peak_nm == 492 and kit.background_od == 0.04
    assert kit.standards_ug_per_l == (2, 4, 8, 15, 30, 60)
    assert kit.curve_od(0) == kit.a
    assert kit.curve_od(25.0) == pytest.approx((kit.a + kit.d) / 2)
    assert kit.band(492) == 1.0 and kit.band(650) < 1e-3
    assert kit.source.endswith("elisa_kit.yaml")


def test_kit_file_marks_values_illustrative() -> None:
    text = KIT_FILE.read_text(encoding="utf-8")
    assert text.count("illustrative: true") >= 4 and "ILLUSTRATIVE" in text


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("d: 3.2", "d: -1"), "signal.curve_4pl.d"),
        (("well_cv: 0.03", "well_cv: lots"), "noise.well_cv"),
        (("read_cv:", "read_noise:"), "noise.read_cv"),
        (("[2, 4, 8, 15, 30, 60]", "[]"), "kit.standards_ug_per_l"),
        (("d: 3.2", "d: 0.01"), "signal.curve_4pl"),
        (("kit:", "kit: ["), "(syntax)"),
    ],
)
def test_kit_file_errors(tmp_path: Path, edit: tuple[str, str], key: str) -> None:
    path = tmp_path / "kit.yaml"
    path.write_text(KIT_FILE.read_text(encoding="utf-8").replace(*edit, 1), encoding="utf-8")
    with pytest.raises(KitFileError) as info:
        ElisaKit.load(path)
    assert info.value.key == key and str(path) in str(info.value)


def test_kit_file_missing(tmp_path: Path) -> None:
    with pytest.raises(KitFileError, match="cannot read"):
        ElisaKit.load(tmp_path / "none.yaml")


# ---------------------------------------------------------------------------- optics


def test_standards_follow_the_kit_4pl_within_noise(kit: ElisaKit) -> None:
    """Over many plates, net OD / 4PL averages 1 and spreads like the documented noise."""
    ratios: dict[float, list[float]] = {}
    for seed in range(40):
        model = Abs96Model(STANDARDS, seed=seed, kit=kit)
        plate = model.read((492, 650), 0)
        for well, (_, level) in STANDARDS.items():
            i = well_names().index(well)
            net = plate[492][i] - plate[650][i]
            ratios.setdefault(level, []).append(net / kit.curve_od(level))
    expected_cv = float(np.hypot(kit.plate_cv, kit.well_cv))
    for level, values in ratios.items():
        assert np.mean(values) == pytest.approx(1.0, abs=0.03), level
        assert 0.5 * expected_cv < np.std(values) < 1.6 * expected_cv, level


def test_od_rises_with_concentration_and_empty_wells_read_background(kit: ElisaKit) -> None:
    contents: dict[str, tuple[object, ...]] = {
        f"A{i + 1}": ("standard", c) for i, c in enumerate((1, 3, 10, 30, 100, 300))
    }
    contents["B1"] = ("blank",)
    plate = Abs96Model(contents, seed=3, kit=kit).read((492,), 0)[492]
    assert plate[:6] == sorted(plate[:6])
    blank, empty = plate[12], plate[13:]
    assert blank == pytest.approx(kit.background_od + kit.a, rel=0.2)
    assert np.mean(empty) == pytest.approx(kit.background_od, rel=0.05)
    assert max(empty) < 0.06


def test_sample_dilution_and_control(kit: ElisaKit) -> None:
    model = Abs96Model(
        {"A1": ("sample", 120.0, 5), "A2": ("control", 24.0), "A3": ("empty",)}, kit=kit
    )
    assert model.well_conc("A1") == 24.0 == model.well_conc("A2")
    assert model.well_conc("A3") is None and model.well_conc("H12") is None
    assert model.expected_od("A1", 492) == pytest.approx(kit.background_od + kit.curve_od(24))
    assert model.expected_od("A3", 492) == kit.background_od


def test_deterministic_for_a_seed(kit: ElisaKit) -> None:
    plate = default_plate(kit)
    first = Abs96Model(plate, seed=5, kit=kit)
    second = Abs96Model(plate, seed=5, kit=kit)
    assert read(first) == read(second)
    assert read(first) == read(second)  # the second read too
    other = Abs96Model(plate, seed=6, kit=kit)
    assert read(other) != read(Abs96Model(plate, seed=5, kit=kit))


def test_repeated_reads_differ_only_by_read_noise(kit: ElisaKit) -> None:
    model = Abs96Model(default_plate(kit), seed=1, kit=kit)
    one, two = read(model)[492], read(model)[492]
    assert one != two
    assert np.allclose(one, two, rtol=6 * kit.read_cv)
    assert model.reads == 2


def test_saturation_is_reported_as_four(kit: ElisaKit) -> None:
    strong = dataclasses.replace(kit, d=3.99, background_od=0.5)
    plate = Abs96Model({"A1": ("standard", 1e6)}, kit=strong).read((492,), 0)[492]
    assert plate[0] == 4.0


@pytest.mark.parametrize(
    ("contents", "words"),
    [
        ({"A13": ("blank",)}, "not a well"),
        ({"A1": ("standard", 0)}, "> 0"),
        ({"A1": ("standard", float("nan"))}, "> 0"),
        ({"A1": ("sample", 10.0)}, "is not one of"),
        ({"A1": ("sample", 10.0, -2)}, "dilution"),
        ({"A1": ("calibrator", 1)}, "is not one of"),
        ({"A1": "blank"}, "not a content tuple"),
        ({"A1": ("blank",), "a01": ("blank",)}, "given twice"),
        ({"A1": ("standard", True)}, "> 0"),
    ],
)
def test_plate_contents_are_checked(contents: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Abs96Model(contents)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- SCPI


def test_identity_and_defaults(kit: ElisaKit) -> None:
    model = Abs96Model(seed=7, kit=kit)
    assert model.handle("*IDN?", 0) == "HEMOTEC,ABS-96,A96-SIM-0007,1.4.0"
    assert model.handle("CONF:WAV?", 0) == "492"
    assert model.handle("*ESR?", 0) == str(ESR_PON)
    assert model.handle("*ESR?", 0) == "0"
    assert model.handle("SYST:ERR?", 0) == '0,"No error"'
    assert model.handle("", 0) is None


def test_long_forms_and_compound_messages(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    assert model.handle(":configure:wavelength 405,620;CONFIGURE:WAVELENGTH?", 0) == "405,620"
    assert model.handle("syst:err:next?;*idn?;temperature?", 0) == (
        '0,"No error";HEMOTEC,ABS-96,A96-SIM-0000,1.4.0;25.00'
    )


def test_read_timing_and_opc(kit: ElisaKit) -> None:
    model = Abs96Model(STANDARDS, kit=kit)
    model.handle("CONF:WAV 492,650", 0)
    assert model.handle("INIT", 1.0) is None
    assert model.busy and model.read_done_at_s == 1.0 + TWO_WAVELENGTH_READ_S
    # *OPC? holds its reply, and everything after it, until the read completes.
    assert model.handle("*OPC?", 2.0) is None
    assert model.handle("TEMP?", 2.0) is None
    assert model.handle("*IDN?;FETC:PLAT?", 3.0) is None
    assert model.take_replies(1.0 + TWO_WAVELENGTH_READ_S - 0.01) == []
    replies = model.take_replies(1.0 + TWO_WAVELENGTH_READ_S)
    assert len(replies) == 3 and replies[0] == "1"
    assert float(replies[1]) == pytest.approx(25.0, abs=0.1)
    idn, plate = replies[2].split(";")
    assert idn.startswith("HEMOTEC") and len(parse_plate(plate)) == 96
    assert model.take_replies(100.0) == []
    assert not model.busy and model.handle("*OPC?", 100.0) == "1"


def test_opc_command_sets_the_esr_bit(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    model.handle("*CLS", 0)
    model.handle("*OPC", 0)
    assert model.handle("*ESR?", 0) == str(ESR_OPC)
    model.handle("INIT;*OPC", 0)
    assert model.handle("*ESR?", 1.0) == "0"
    assert model.handle("*ESR?", 100.0) == str(ESR_OPC)


def test_fetch_before_a_completed_read_is_stale(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    assert model.handle("FETC:PLAT?", 0) is None
    model.handle("INIT", 0)
    assert model.handle("FETC:PLAT?", 1.0) is None
    assert [e.code for e in errors(model)] == [-230, -230]
    assert model.handle("FETC:PLAT?", 100.0) is not None
    model.handle("CONF:WAV 492,650", 100.0)  # new settings discard the data
    assert model.handle("FETC:PLAT?", 100.0) is None
    model.handle("INIT", 100.0)
    model.handle("*RST", 200.0)  # so does *RST
    assert model.handle("FETC:PLAT?", 200.0) is None
    errs = errors(model)
    assert [e.code for e in errs] == [-230, -230]
    assert errs[0].message == "Data corrupt or stale;no completed read"


def test_fetch_by_wavelength(kit: ElisaKit) -> None:
    model = Abs96Model(STANDARDS, kit=kit)
    plate = read(model)
    assert parse_plate(model.handle("FETC:PLAT?", 100) or "") == plate[492]
    assert parse_plate(model.handle("fetch:plate? 650.0", 100) or "") == plate[650]
    assert model.handle("FETC:PLAT? 405", 100) is None
    assert model.handle("FETC:PLAT? abc", 100) is None
    assert model.handle("FETC:PLAT? 492,650", 100) is None
    assert [e.code for e in errors(model)] == [-222, -104, -108]


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("CONF:WAV", -109),
        ("CONF:WAV 492,650,700", -108),
        ("CONF:WAV 339", -222),
        ("CONF:WAV 1001", -222),
        ("CONF:WAV 492.5", -224),
        ("CONF:WAV 492,492", -224),
        ("CONF:WAV blue", -104),
        ("CONFIG:WAV 492", -113),
        ("FOO?", -113),
        ("*RST 1", -108),
        ("INIT?", -113),
        ("TEMP? 3", -108),
    ],
)
def test_refused_commands_queue_errors(kit: ElisaKit, command: str, code: int) -> None:
    model = Abs96Model(kit=kit)
    model.handle("*CLS", 0)
    assert model.handle(command, 0) is None
    assert model.wavelengths == (492,)
    assert [e.code for e in errors(model)] == [code]
    bit = {1: ESR_CME, 2: ESR_EXE}[-code // 100]
    assert model.handle("*ESR?", 0) == str(bit)


def test_out_of_range_message_names_the_range(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    model.handle("CONF:WAV 1200", 0)
    assert model.handle("SYST:ERR?", 0) == (
        '-222,"Data out of range;1200 nm is outside the reader\'s range 340-1000 nm"'
    )


def test_busy_reader_refuses_init_and_configuration(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    model.handle("INIT", 0)
    model.handle("INIT", 1)
    model.handle("CONF:WAV 405", 1)
    assert model.wavelengths == (492,)
    assert [e.code for e in errors(model)] == [-213, -221]


def test_error_queue_overflow_and_cls(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    for _ in range(ERROR_QUEUE_SIZE + 5):
        model.handle("BAD", 0)
    queue = model.error_queue
    assert len(queue) == ERROR_QUEUE_SIZE and queue[-1].code == -350
    assert all(e.code == -113 for e in queue[:-1])
    model.handle("*RST", 0)
    assert len(model.error_queue) == ERROR_QUEUE_SIZE  # *RST keeps the queue
    model.handle("*CLS", 0)
    assert model.error_queue == () and model.handle("*ESR?", 0) == "0"


def test_rst_restores_defaults_and_aborts(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    model.handle("CONF:WAV 405,650;INIT", 0)
    model.handle("*RST", 1)
    assert model.wavelengths == (492,) and not model.busy
    assert model.handle("*OPC?", 1) == "1"


def test_lamp_failure_and_short_plate(kit: ElisaKit) -> None:
    model = Abs96Model(STANDARDS, kit=kit)
    model.lamp_failure = True
    model.handle("INIT", 0)
    assert not model.busy
    assert model.handle("SYST:ERR?", 0) == '201,"Lamp failure"'
    assert int(model.handle("*ESR?", 0) or "0") & ESR_DDE
    model.lamp_failure = False
    model.short_plate = True
    model.handle("INIT", 0)
    assert len((model.handle("FETC:PLAT?", 100) or "").split(",")) == 95


def test_over_temperature(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    model.inject_over_temperature(60.0)
    assert float(model.handle("TEMP?", 59.0) or "0") == pytest.approx(25.0, abs=0.2)
    assert float(model.handle("TEMP?", 61.0) or "0") == pytest.approx(45.0, abs=0.2)
    assert [e.code for e in errors(model)] == [202]
    model.handle("TEMP?", 120.0)
    assert errors(model) == []


def test_refuse_queues_an_injected_code(kit: ElisaKit) -> None:
    model = Abs96Model(kit=kit)
    model.refuse(5)
    assert model.handle("SYST:ERR?", 0) == '5,"Device-specific error;injected fault"'
