"""Abs96Reader against scripted exchanges: exact bytes for every command, validation before
sending, the error queue, plate checks and timeouts."""

from __future__ import annotations

import logging
import math
from contextlib import AbstractContextManager
from functools import partial

import numpy as np
import pytest

from drivers.abs96 import (
    MAX_ERROR_READS,
    Abs96Error,
    Abs96Reader,
    ErrorEntry,
    PlateDataError,
    ReaderError,
    ReaderTimeout,
    UnexpectedReplyError,
)
from drivers.testing import Pair, ScriptedTransport, expected_protocol
from drivers.transport import TransportError, TransportTimeoutError
from drivers.wire.scpi import format_plate, well_names

RESOURCE = "scripted://scripted"
NO_ERROR = '0,"No error"'
PLATE_492 = [round(0.04 + 0.03 * i, 4) for i in range(96)]
PLATE_650 = [round(0.035 + 0.0001 * i, 4) for i in range(96)]


def ex(command: str, reply: str | list[str] | None = None) -> Pair:
    """One exchange: the command as written (LF added) and the reply lines."""
    if reply is None:
        return (command.encode() + b"\n", None)
    lines = [reply] if isinstance(reply, str) else reply
    return (command.encode() + b"\n", [line.encode() + b"\n" for line in lines])


def reader(
    pairs: list[Pair], *, op_timeout_s: float = 30.0, reply_timeout_s: float = 2.0
) -> AbstractContextManager[Abs96Reader]:
    factory = partial(Abs96Reader, op_timeout_s=op_timeout_s, reply_timeout_s=reply_timeout_s)
    return expected_protocol(factory, pairs, write_terminator=b"\n")


def read_plate_pairs(p492: str, p650: str | None = None) -> list[Pair]:
    pairs = [
        ex("CONF:WAV?", "492,650" if p650 is not None else "492"),
        ex("INIT"),
        ex("SYST:ERR?", NO_ERROR),
        ex("*OPC?", "1"),
        ex("FETC:PLAT? 492", p492),
    ]
    if p650 is not None:
        pairs.append(ex("FETC:PLAT? 650", p650))
    return pairs


# ---------------------------------------------------------------------------- commands


def test_identify() -> None:
    with reader([ex("*IDN?", "HEMOTEC,ABS-96,A96-0042,1.4.0")]) as r:
        identity = r.identify()
    assert (identity.manufacturer, identity.model) == ("HEMOTEC", "ABS-96")
    assert (identity.serial, identity.firmware) == ("A96-0042", "1.4.0")
    assert not identity.simulated


def test_identify_simulated_and_other_model(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), reader([ex("*IDN?", "ACME,XR-1,SIM-7,2.0")]) as r:
        identity = r.identify()
    assert identity.simulated
    assert "identifies as" in caplog.text


def test_identify_malformed() -> None:
    with reader([ex("*IDN?", "HEMOTEC ABS-96")]) as r, pytest.raises(UnexpectedReplyError) as info:
        r.identify()
    assert info.value.reply == "HEMOTEC ABS-96"
    assert RESOURCE in str(info.value) and "*IDN?" in str(info.value)


def test_reset() -> None:
    with reader([ex("*CLS"), ex("*RST"), ex("SYST:ERR?", NO_ERROR)]) as r:
        r.reset()


def test_clear_status() -> None:
    with reader([ex("*CLS")]) as r:
        r.clear_status()


@pytest.mark.parametrize(
    ("args", "command"),
    [
        ((492, 650), "CONF:WAV 492,650"),
        ((405,), "CONF:WAV 405"),
        ((340, 1000), "CONF:WAV 340,1000"),
        ((np.int64(450), np.int32(620)), "CONF:WAV 450,620"),
    ],
)
def test_configure_wavelengths(args: tuple[int, ...], command: str) -> None:
    with reader([ex(command), ex("SYST:ERR?", NO_ERROR)]) as r:
        r.configure_wavelengths(*args)


def test_wavelengths() -> None:
    with reader([ex("CONF:WAV?", "492,650"), ex("CONF:WAV?", "405")]) as r:
        assert r.wavelengths() == (492, 650)
        assert r.wavelengths() == (405,)


def test_wavelengths_bad_reply() -> None:
    with reader([ex("CONF:WAV?", "492,492")]) as r, pytest.raises(UnexpectedReplyError):
        r.wavelengths()


def test_temperature() -> None:
    with reader([ex("TEMP?", "25.04"), ex("TEMP?", "+2.5E+01")]) as r:
        assert r.temperature() == 25.04
        assert r.temperature() == 25.0


@pytest.mark.parametrize("reply", ["nan", "25,04", "9.9E37", "hot", " "])
def test_temperature_bad_reply(reply: str) -> None:
    with reader([ex("TEMP?", reply)]) as r, pytest.raises(UnexpectedReplyError) as info:
        r.temperature()
    assert "TEMP?" in str(info.value) and RESOURCE in str(info.value)


def test_event_status() -> None:
    with reader([ex("*ESR?", "160"), ex("*ESR?", "0")]) as r:
        assert r.event_status() == 160
        assert r.event_status() == 0


@pytest.mark.parametrize("reply", ["256", "-1", "1.5", "x"])
def test_event_status_bad_reply(reply: str) -> None:
    with reader([ex("*ESR?", reply)]) as r, pytest.raises(UnexpectedReplyError):
        r.event_status()


def test_errors_drains_the_queue() -> None:
    pairs = [
        ex("SYST:ERR?", '-113,"Undefined header"'),
        ex("SYST:ERR?", '201,"Lamp failure"'),
        ex("SYST:ERR?", NO_ERROR),
    ]
    with reader(pairs) as r:
        assert r.errors() == [ErrorEntry(-113, "Undefined header"), ErrorEntry(201, "Lamp failure")]


def test_read_plate_two_wavelengths() -> None:
    pairs = read_plate_pairs(format_plate(PLATE_492), format_plate(PLATE_650))
    with reader(pairs) as r:
        plate = r.read_plate()
    assert list(plate) == [492, 650]
    assert plate[492] == PLATE_492 and plate[650] == PLATE_650


def test_read_plate_one_wavelength_accepts_any_scpi_number_format() -> None:
    values = [f"{v:+.3E}" for v in PLATE_492]
    with reader(read_plate_pairs(",".join(values))) as r:
        plate = r.read_plate()
    assert plate == {492: pytest.approx(PLATE_492, rel=1e-3)}


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("signal", "reference", "words"),
    [
        (339, None, "outside the ABS-96 range 340–1000 nm"),
        (1001, None, "outside"),
        (492, 1200, "reference wavelength 1200 nm is outside"),
        (492, 0, "outside"),
        (492.0, None, "not a whole number"),
        (True, None, "not a whole number"),
        ("492", None, "not a whole number"),
        (None, None, "not a whole number"),
        (492, 650.5, "not a whole number"),
        (492, 492, "must differ"),
        (math.nan, None, "not a whole number"),
    ],
)
def test_configure_rejects_before_sending(signal: object, reference: object, words: str) -> None:
    transport = ScriptedTransport([], write_terminator=b"\n")
    r = Abs96Reader(transport)
    with pytest.raises(ValueError, match="Nothing was sent") as info:
        r.configure_wavelengths(signal, reference)  # type: ignore[arg-type]
    assert words in str(info.value)
    assert RESOURCE in str(info.value)
    assert transport.written == []


@pytest.mark.parametrize(
    "kwargs", [{"op_timeout_s": 0}, {"reply_timeout_s": -1.0}, {"op_timeout_s": math.inf}]
)
def test_timeouts_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="finite number of seconds"):
        Abs96Reader(ScriptedTransport([]), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- errors


def test_configure_error_raises_reader_error() -> None:
    message = "Data out of range;1200 nm is outside the reader's range 340-1000 nm"
    pairs = [ex("CONF:WAV 492"), ex("SYST:ERR?", f'-222,"{message}"'), ex("SYST:ERR?", NO_ERROR)]
    with reader(pairs) as r, pytest.raises(ReaderError) as info:
        r.configure_wavelengths(492)
    err = info.value
    assert (err.code, err.message, err.command, err.resource) == (
        -222,
        message,
        "CONF:WAV 492",
        RESOURCE,
    )
    assert err.errors == (ErrorEntry(-222, message),)
    text = str(err)
    assert "error -222 (Data out of range, execution error)" in text
    assert RESOURCE in text and "'CONF:WAV 492'" in text and "filter set" in text


def test_whole_queue_is_drained_and_reported() -> None:
    pairs = [
        ex("*CLS"),
        ex("*RST"),
        ex("SYST:ERR?", '-113,"Undefined header"'),
        ex("SYST:ERR?", '-350,"Queue overflow"'),
        ex("SYST:ERR?", NO_ERROR),
    ]
    with reader(pairs) as r, pytest.raises(ReaderError) as info:
        r.reset()
    assert info.value.code == -113
    assert [e.code for e in info.value.errors] == [-113, -350]
    assert 'also held -350,"Queue overflow"' in str(info.value)
    assert "firmware" in str(info.value)


def test_lamp_failure_on_init() -> None:
    pairs = [
        ex("CONF:WAV?", "492"),
        ex("INIT"),
        ex("SYST:ERR?", '201,"Lamp failure"'),
        ex("SYST:ERR?", NO_ERROR),
    ]
    with reader(pairs) as r, pytest.raises(ReaderError) as info:
        r.read_plate()
    assert info.value.code == 201 and info.value.command == "INIT"
    assert "Lamp failure" in str(info.value) and "replace the lamp" in str(info.value)


def test_unknown_positive_code() -> None:
    pairs = [ex("INIT"), ex("SYST:ERR?", '7,"Device-specific error"'), ex("SYST:ERR?", NO_ERROR)]
    pairs.insert(0, ex("CONF:WAV?", "492"))
    with reader(pairs) as r, pytest.raises(ReaderError, match="device-specific error") as info:
        r.read_plate()
    assert "manual" in str(info.value)


def test_error_queue_that_never_empties() -> None:
    pairs = [ex("CONF:WAV 492")] + [ex("SYST:ERR?", '-200,"Execution error"')] * MAX_ERROR_READS
    with reader(pairs) as r, pytest.raises(ReaderError, match="power-cycle") as info:
        r.configure_wavelengths(492)
    assert len(info.value.errors) == MAX_ERROR_READS


def test_malformed_error_entry() -> None:
    pairs = [ex("CONF:WAV 492"), ex("SYST:ERR?", "No error")]
    with reader(pairs) as r, pytest.raises(UnexpectedReplyError, match="SYST:ERR"):
        r.configure_wavelengths(492)


def test_short_plate() -> None:
    with (
        reader(read_plate_pairs(format_plate(PLATE_492[:95]))) as r,
        pytest.raises(PlateDataError) as info,
    ):
        r.read_plate()
    err = info.value
    assert isinstance(err, ReaderError) and err.code is None
    assert (err.count, err.wavelength_nm, err.command) == (95, 492, "FETC:PLAT? 492")
    text = str(err)
    assert "95 absorbances came at 492 nm, expected 96" in text
    assert RESOURCE in text and "Read the plate again" in text


def test_long_plate() -> None:
    with (
        reader(read_plate_pairs(format_plate([*PLATE_492, 0.1]))) as r,
        pytest.raises(PlateDataError) as info,
    ):
        r.read_plate()
    assert info.value.count == 97


@pytest.mark.parametrize("bad", ["9.91E37", "9.9E37", "nan", "inf", "", "OVER", "1,2"])
def test_plate_value_not_finite(bad: str) -> None:
    values = [f"{v:.4f}" for v in PLATE_492]
    values[13] = bad  # B2
    with reader(read_plate_pairs(",".join(values))) as r, pytest.raises(PlateDataError) as info:
        r.read_plate()
    if "," in bad:
        assert info.value.count == 97
    else:
        assert info.value.count is None
        assert "B2" in str(info.value)
    assert well_names()[13] == "B2"


def test_second_wavelength_short() -> None:
    pairs = read_plate_pairs(format_plate(PLATE_492), format_plate(PLATE_650[:90]))
    with reader(pairs) as r, pytest.raises(PlateDataError) as info:
        r.read_plate()
    assert (info.value.count, info.value.wavelength_nm) == (90, 650)


def test_opc_reply_other_than_one() -> None:
    pairs = [ex("CONF:WAV?", "492"), ex("INIT"), ex("SYST:ERR?", NO_ERROR), ex("*OPC?", "0")]
    with reader(pairs) as r, pytest.raises(UnexpectedReplyError, match="operation complete"):
        r.read_plate()


def test_error_types() -> None:
    assert issubclass(ReaderTimeout, TransportError) and issubclass(ReaderTimeout, Abs96Error)
    assert issubclass(ReaderError, Abs96Error) and issubclass(PlateDataError, ReaderError)
    assert issubclass(UnexpectedReplyError, ReaderError)


# ---------------------------------------------------------------------------- timeouts


def test_opc_timeout_names_resource_and_advice() -> None:
    pairs = [ex("CONF:WAV?", "492,650"), ex("INIT"), ex("SYST:ERR?", NO_ERROR), ex("*OPC?")]
    with reader(pairs, op_timeout_s=0.05) as r, pytest.raises(ReaderTimeout) as info:
        r.read_plate()
    err = info.value
    assert err.command == "*OPC?" and err.resource == RESOURCE and err.timeout_s == 0.05
    assert "within 0.05 s" in str(err) and "op_timeout_s" in str(err)


def test_silent_query_explained_by_the_error_queue() -> None:
    pairs = [
        ex("CONF:WAV?"),
        ex("SYST:ERR?", '-113,"Undefined header"'),
        ex("SYST:ERR?", NO_ERROR),
    ]
    with reader(pairs, reply_timeout_s=0.05) as r, pytest.raises(ReaderError) as info:
        r.wavelengths()
    assert (info.value.code, info.value.command) == (-113, "CONF:WAV?")


def test_silent_query_without_error_is_a_timeout() -> None:
    pairs = [ex("TEMP?"), ex("SYST:ERR?", NO_ERROR)]
    with reader(pairs, reply_timeout_s=0.05) as r, pytest.raises(ReaderTimeout) as info:
        r.temperature()
    assert "'TEMP?'" in str(info.value) and "5025::SOCKET" in str(info.value)


def test_silent_reader_is_a_timeout() -> None:
    with (
        reader([ex("TEMP?"), ex("SYST:ERR?")], reply_timeout_s=0.05) as r,
        pytest.raises(ReaderTimeout, match="TEMP"),
    ):
        r.temperature()


def test_late_reply_is_discarded(caplog: pytest.LogCaptureFixture) -> None:
    """TEMP? answered late: its reply comes back to the SYST:ERR? asked about the silence,
    and that one's reply in turn arrives before the next command, which gets its own."""
    pairs = [
        ex("TEMP?"),
        ex("SYST:ERR?", "25.00"),
        (None, [NO_ERROR.encode() + b"\n"]),
        ex("TEMP?", "25.10"),
    ]
    with caplog.at_level(logging.WARNING), reader(pairs, reply_timeout_s=0.05) as r:
        with pytest.raises(ReaderTimeout):
            r.temperature()
        assert r.temperature() == 25.10
    assert caplog.text.count("discarding a late reply") == 2


def test_extra_reply_line_is_discarded(caplog: pytest.LogCaptureFixture) -> None:
    pairs = [ex("TEMP?", ["25.00", "junk"]), ex("TEMP?", "25.01")]
    with caplog.at_level(logging.WARNING), reader(pairs) as r:
        assert r.temperature() == 25.0
        assert r.temperature() == 25.01
    assert "'junk'" in caplog.text


class _WriteTimesOut(ScriptedTransport):
    def write(self, data: bytes) -> None:
        raise TransportTimeoutError(f"write to {self.resource} timed out", resource=self.resource)


def test_write_timeout_becomes_reader_timeout() -> None:
    r = Abs96Reader(_WriteTimesOut([]))
    with pytest.raises(ReaderTimeout, match="timed out"):
        r.clear_status()


def test_close_is_idempotent() -> None:
    transport = ScriptedTransport([], write_terminator=b"\n")
    with Abs96Reader(transport, name="plate") as r:
        assert r.transport is transport and r.resource == RESOURCE
        assert "plate" in repr(r)
    assert transport.closed
    r.close()
