"""drivers.wire.scpi: command formatting, header matching, reply parsing, error table, ESR."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.wire import scpi
from drivers.wire.scpi import (
    ErrorEntry,
    PlateLengthError,
    ProgramUnit,
    ReplyFormatError,
    decode_esr,
    esr_bit_for_error,
    format_command,
    format_error_entry,
    format_plate,
    header_matches,
    parse_error_entry,
    parse_idn,
    parse_int,
    parse_number,
    parse_opc,
    parse_plate,
    parse_program_message,
    parse_wavelengths,
    well_index,
    well_names,
)

# ---------------------------------------------------------------------------- commands


def test_format_command() -> None:
    assert format_command("CONF:WAV", 492, 650) == "CONF:WAV 492,650"
    assert format_command("FETC:PLAT?", 650) == "FETC:PLAT? 650"
    assert format_command("*RST") == "*RST"
    assert format_command("X:Y", 1.5, "ABC") == "X:Y 1.5,ABC"


@pytest.mark.parametrize(
    ("header", "params"),
    [
        ("CONF WAV", ()),
        ("CONF:WAV\n", ()),
        ("", ()),
        ("CONF:WAV", (True,)),
        ("CONF:WAV", (float("nan"),)),
        ("CONF:WAV", ("49;2",)),
        ("CONF:WAV", ("",)),
        ("CONF:WAV", ("µ",)),
    ],
)
def test_format_command_rejects(header: str, params: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        format_command(header, *params)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "pattern", "matches"),
    [
        ("CONF:WAV", "CONFigure:WAVelength", True),
        ("conf:wav", "CONFigure:WAVelength", True),
        (":CONFIGURE:WAVELENGTH", "CONFigure:WAVelength", True),
        ("CONF:WAVELENGTH", "CONFigure:WAVelength", True),
        ("CONFIG:WAV", "CONFigure:WAVelength", False),
        ("CONF:WAV?", "CONFigure:WAVelength", False),
        ("CONF:WAV", "CONFigure:WAVelength?", False),
        ("CONF:WAV?", "CONFigure:WAVelength?", True),
        ("SYST:ERR?", "SYSTem:ERRor[:NEXT]?", True),
        ("SYST:ERR:NEXT?", "SYSTem:ERRor[:NEXT]?", True),
        ("system:error:next?", "SYSTem:ERRor[:NEXT]?", True),
        ("SYST:NEXT?", "SYSTem:ERRor[:NEXT]?", False),
        ("INIT", "INITiate[:IMMediate]", True),
        ("INIT:IMM", "INITiate[:IMMediate]", True),
        ("INITIATE:IMMEDIATE", "INITiate[:IMMediate]", True),
        ("INITI", "INITiate[:IMMediate]", False),
        ("*idn?", "*IDN?", True),
        ("*IDN", "*IDN?", False),
        ("*OPC", "*OPC?", False),
        ("*OPC?", "*OPC", False),
    ],
)
def test_header_matches(header: str, pattern: str, matches: bool) -> None:
    assert header_matches(header, pattern) is matches


def test_parse_program_message() -> None:
    assert parse_program_message("CONF:WAV 492, 650") == [ProgramUnit("CONF:WAV", ("492", "650"))]
    assert parse_program_message("INIT;*OPC?") == [
        ProgramUnit("INIT", ()),
        ProgramUnit("*OPC?", ()),
    ]
    assert parse_program_message("  ") == []
    assert parse_program_message(";;") == []
    assert parse_program_message('X "a;b,c",2') == [ProgramUnit("X", ('"a;b,c"', "2"))]
    assert parse_program_message("FETC:PLAT?\t650") == [ProgramUnit("FETC:PLAT?", ("650",))]
    assert ProgramUnit("TEMP?", ()).is_query and not ProgramUnit("INIT", ()).is_query


def test_wells() -> None:
    names = well_names()
    assert len(names) == scpi.N_WELLS == 96
    assert names[:13] == [f"A{c}" for c in range(1, 13)] + ["B1"] and names[-1] == "H12"
    assert [well_index(n) for n in names] == list(range(96))
    assert well_index("b07") == 18
    for bad in ("A13", "I1", "A0", "", "11", "AA1"):
        with pytest.raises(ValueError, match="not a well"):
            well_index(bad)


def test_wavelength_problem() -> None:
    assert scpi.wavelength_problem(340) is None and scpi.wavelength_problem(1000) is None
    assert "outside" in (scpi.wavelength_problem(339) or "")
    assert "whole number" in (scpi.wavelength_problem(492.0) or "")
    assert "whole number" in (scpi.wavelength_problem(True) or "")


# ---------------------------------------------------------------------------- replies


def test_parse_idn() -> None:
    idn = parse_idn("HEMOTEC,ABS-96,A96-SIM-0007,1.4.0\n")
    assert (idn.manufacturer, idn.model, idn.serial, idn.firmware) == (
        "HEMOTEC",
        "ABS-96",
        "A96-SIM-0007",
        "1.4.0",
    )
    for bad in ("HEMOTEC,ABS-96,1", "a,b,c,d,e", ",ABS-96,1,2", "A,B,C,\x00"):
        with pytest.raises(ReplyFormatError):
            parse_idn(bad)


def test_numbers() -> None:
    assert parse_number("25.04") == 25.04
    assert parse_number("+2.504E+01") == 25.04
    assert parse_number("-.5") == -0.5
    assert parse_int("32") == 32
    for bad in ("nan", "inf", "1_0", "٣", "9.9E37", "-9.9e37", "9.91E37", "1e999", "", "1,5"):
        with pytest.raises(ReplyFormatError):
            parse_number(bad)
    for bad in ("3.0", "x", "1" * 13):
        with pytest.raises(ReplyFormatError):
            parse_int(bad)
    parse_opc("1\n")
    with pytest.raises(ReplyFormatError, match="operation complete"):
        parse_opc("0")


def test_error_entries() -> None:
    assert parse_error_entry('0,"No error"') == ErrorEntry(0, "No error")
    assert not parse_error_entry('0,"No error"').is_error
    entry = parse_error_entry('-222, "Data out of range;1200 nm"')
    assert entry == ErrorEntry(-222, "Data out of range;1200 nm") and entry.is_error
    assert parse_error_entry('+201,"Lamp ""A"" failure"') == ErrorEntry(201, 'Lamp "A" failure')
    assert format_error_entry(201, 'Lamp "A"') == '201,"Lamp ""A"""'
    assert str(ErrorEntry(-113, "Undefined header")) == '-113,"Undefined header"'
    for bad in ("No error", "-113,Undefined header", '-113,"open', "0", '0,"a"b"'):
        with pytest.raises(ReplyFormatError):
            parse_error_entry(bad)


def test_error_classes_and_esr() -> None:
    assert esr_bit_for_error(0) == 0
    assert esr_bit_for_error(-113) == scpi.ESR_CME == 32
    assert esr_bit_for_error(-222) == scpi.ESR_EXE == 16
    assert esr_bit_for_error(-350) == scpi.ESR_DDE == 8
    assert esr_bit_for_error(-410) == scpi.ESR_QYE == 4
    assert esr_bit_for_error(201) == scpi.ESR_DDE
    assert decode_esr(0) == ()
    assert decode_esr(128 + 32 + 1) == ("operation complete", "command error", "power on")
    with pytest.raises(ValueError):
        decode_esr(256)


def test_wavelength_replies() -> None:
    assert parse_wavelengths("492,650\n") == (492, 650)
    assert parse_wavelengths("405") == (405,)
    for bad in ("", "492,492", "492,650,700", "339", "492.5", "abc", "492,"):
        with pytest.raises(ReplyFormatError):
            parse_wavelengths(bad)


def test_plate_round_trip() -> None:
    values = [round(0.04 + i / 30, 4) for i in range(96)]
    text = format_plate(values)
    assert text.startswith("0.0400,0.0733,") and " " not in text
    assert parse_plate(text + "\n") == values


def test_plate_lengths() -> None:
    text = format_plate([0.1] * 95)
    with pytest.raises(PlateLengthError) as info:
        parse_plate(text)
    assert (info.value.count, info.value.expected_count) == (95, 96)
    assert "has 95 absorbances, expected 96" in str(info.value)
    with pytest.raises(PlateLengthError) as info:
        parse_plate("")
    assert info.value.count == 0
    assert parse_plate("1,2,3", expected_count=3) == [1.0, 2.0, 3.0]
    with pytest.raises(ReplyFormatError, match="value 2"):
        parse_plate("1,x,3", expected_count=3)


def test_reply_error_shows_long_replies_shortened() -> None:
    err = ReplyFormatError("x" * 500, "a number")
    assert err.reply == "x" * 500 and len(str(err)) < 120


# ---------------------------------------------------------------------------- properties

_PARSERS = [parse_number, parse_int, parse_opc, parse_idn, parse_error_entry, parse_wavelengths]


@given(st.text(max_size=300))
def test_parsers_raise_only_reply_format_errors(text: str) -> None:
    """Whatever arrives, a parser returns a well-formed value or raises ReplyFormatError."""
    results = []
    for parser in _PARSERS:
        with contextlib.suppress(ReplyFormatError):
            results.append(parser(text))
    with contextlib.suppress(ReplyFormatError):
        assert len(parse_plate(text)) == 96
    for value in results:
        if isinstance(value, float):
            assert math.isfinite(value)


_NUMBERISH = st.sampled_from(
    ["0.1", "-0.0", "4.0000", "9.91E37", "nan", "", " ", "1e5", "٣", "1_0", "+.5", "x"]
)


@given(st.lists(_NUMBERISH, min_size=90, max_size=100))
def test_plate_parser_on_plate_like_replies(parts: list[str]) -> None:
    text = ",".join(parts)
    try:
        values = parse_plate(text)
    except PlateLengthError as exc:
        assert exc.count != 96
    except ReplyFormatError:
        pass
    else:
        assert len(values) == 96 and all(abs(v) < 9.9e37 for v in values)


@given(st.text(max_size=200))
def test_program_message_parser_never_fails(line: str) -> None:
    for unit in parse_program_message(line):
        assert (unit.header and ";" not in unit.header) or '"' in line
        for pattern in ("*IDN?", "CONFigure:WAVelength", "SYSTem:ERRor[:NEXT]?"):
            header_matches(unit.header, pattern)


@given(st.integers(-999, 999), st.text(st.characters(codec="ascii"), max_size=40))
def test_error_entry_round_trip(code: int, message: str) -> None:
    assert parse_error_entry(format_error_entry(code, message)) == ErrorEntry(code, message)
