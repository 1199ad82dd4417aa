"""Cross-check with an independent ASTM implementation (python-astm, packaged as astm-2025):
it decodes the project's frames into the same records, and the project decodes its frames."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from drivers.wire import astm as wire
from simulators.hematology import CbcResult, cbc_message

astm_codec = pytest.importorskip("astm.codec")


def _as_python_astm(record: wire.AstmRecord) -> list[Any]:
    """Our record in python-astm's shape: a list of fields; a field is a string (None when
    empty), a list of components, or a list of repeats (lists of components)."""
    text = wire.encode_record(record)
    d = wire.DEFAULT_DELIMITERS
    out: list[Any] = []
    for k, raw in enumerate(text.split(d.field)):
        if k == 1 and isinstance(record, wire.HeaderRecord):
            out.append([[None], [None, "&"]])  # python-astm splits the delimiter definition
            continue
        if d.repeat in raw:
            out.append([[c or None for c in rep.split(d.component)] for rep in raw.split(d.repeat)])
        elif d.component in raw:
            out.append([c or None for c in raw.split(d.component)])
        else:
            out.append(raw or None)
    return out


def _records() -> list[wire.AstmRecord]:
    texts = cbc_message(
        CbcResult("S-000012", {"PLT": 182, "WBC": 6.4, "RBC": 4.71, "HGB": 141}),
        "M00042",
        datetime(2024, 5, 1, 12, 0, 0),
    )
    return wire.decode_message(texts)


def test_python_astm_decodes_our_frames_into_the_same_records() -> None:
    records = _records()
    frames = wire.frames_for_records(wire.encode_message(records))
    assert len(frames) == len(records)
    for number, (frame, record) in enumerate(zip(frames, records, strict=True), start=1):
        seq, decoded, cs = astm_codec.decode_message(frame, "latin-1")
        assert seq == number % 8
        assert cs == frame[-4:-2].decode()
        assert cs == astm_codec.make_checksum(frame[1:-4]).decode()
        assert decoded == [_as_python_astm(record)]


def test_python_astm_joins_our_etb_frames() -> None:
    long_comment = wire.CommentRecord(1, "I", ("x" * 500,), "G")
    frames = wire.frames_for_records([wire.encode_record(long_comment)])
    assert len(frames) == 3
    joined = astm_codec.join(frames)
    _seq, decoded, _cs = astm_codec.decode_message(joined, "latin-1")
    assert decoded == [_as_python_astm(long_comment)]


def test_we_decode_python_astm_frames() -> None:
    # python-astm encodes bytes values (str values recurse in its encoder on Python 3)
    rows = [
        [b"H", [[None], [None, b"&"]], None, None, [b"HEMA", b"2.0"], None, None, None, None,
         None, None, b"P", b"LIS2-A2", b"20240501120000"],
        [b"P", b"1"],
        [b"O", b"1", b"S-000099", None, [None, None, None, b"PLT"]] + [None] * 20 + [b"F"],
        [b"R", b"1", [None, None, None, b"PLT"], b"210", b"10*9/L", None, b"N", None, b"F"],
        [b"L", b"1", b"N"],
    ]  # fmt: skip
    frames = list(astm_codec.iter_encode(rows, "latin-1"))
    assembler = wire.FrameAssembler()
    texts: list[str] = []
    for frame in frames:
        texts += assembler.add(wire.parse_frame(frame))
    decoded = wire.decode_message(texts)
    header, _patient, order, result, end = decoded
    assert isinstance(header, wire.HeaderRecord) and header.sender == ("HEMA", "2.0")
    assert isinstance(order, wire.OrderRecord) and order.sample_id == "S-000099"
    assert order.report_type == "F"
    assert isinstance(result, wire.ResultRecord)
    assert (result.code, result.value, result.units, result.status) == ("PLT", "210", "10*9/L", "F")
    assert isinstance(end, wire.TerminatorRecord) and end.code == "N"
