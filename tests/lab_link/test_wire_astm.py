"""E1381 framing and E1394 records (drivers.wire.astm): exact bytes and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.wire import astm as wire
from tests.lab_link.scripted import control_names


def test_checksum_is_the_mod_256_sum_from_frame_number_to_etx() -> None:
    body = b"1H|\\^&\r\x03"
    assert wire.checksum(body) == b"%02X" % (sum(body) % 256)
    assert wire.encode_frame(1, b"L|1|N\r", final=True) == control_names(
        "<STX>1L|1|N<CR><ETX>04<CR><LF>"
    )
    assert wire.checksum(b"\xff\xff") == b"FE"  # 510 mod 256, two upper-case hex digits


def test_intermediate_frames_end_with_etb_and_no_cr() -> None:
    frame = wire.encode_frame(2, b"R|1|^^^PLT", final=False)
    assert frame[:2] == b"\x022" and frame[-5:-4] == wire.ETB and frame[-2:] == wire.CRLF
    assert wire.parse_frame(frame) == wire.Frame(2, b"R|1|^^^PLT", final=False)


def test_frame_numbers_run_1_to_7_then_0() -> None:
    frames = wire.frames_for_records([f"R|{k}|^^^X|{k}" for k in range(10)])
    assert [wire.parse_frame(f).number for f in frames] == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2]


def test_long_record_is_split_at_240_characters_with_etb() -> None:
    record = "C|1|I|" + "x" * 600 + "|G"
    frames = wire.frames_for_records([record], first_number=7)
    parsed = [wire.parse_frame(f) for f in frames]
    assert [p.number for p in parsed] == [7, 0, 1]
    assert [p.final for p in parsed] == [False, False, True]
    assert [len(p.text) for p in parsed] == [240, 240, len(record) + 1 - 480]
    assert all(len(f) <= 247 for f in frames)
    assembler = wire.FrameAssembler()
    assert assembler.add(parsed[0]) == [] and assembler.pending
    assert assembler.add(parsed[1]) == []
    assert assembler.add(parsed[2]) == [record]
    assert not assembler.pending


def test_a_final_frame_with_several_records_yields_them_all() -> None:
    frame = wire.parse_frame(wire.encode_frame(1, b"P|1\rO|1|S-1\r", final=True))
    assert wire.FrameAssembler().add(frame) == ["P|1", "O|1|S-1"]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (control_names("<STX>1L|1|N<CR><ETX>05<CR><LF>"), wire.ChecksumError),
        (control_names("<STX>1L|1|N<CR><ETX>0G<CR><LF>"), wire.ChecksumError),
        (control_names("<STX>8L|1|N<CR><ETX>0B<CR><LF>"), wire.MalformedFrameError),
        (control_names("<STX>1L|1|N<CR>X04<CR><LF>"), wire.MalformedFrameError),
        (control_names("<STX>1L|1|N<CR><ETX>04<CR>"), wire.MalformedFrameError),
        (b"1L|1|N\r\x0304\r\n", wire.MalformedFrameError),
    ],
)
def test_bad_frames_are_rejected(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        wire.parse_frame(raw)


def test_split_stream_cuts_controls_and_frames_and_keeps_a_partial_frame() -> None:
    f1 = wire.encode_frame(1, b"H|\\^&\r", final=True)
    f2 = wire.encode_frame(2, b"L|1|N\r", final=True)
    tokens, rest = wire.split_stream(b"noise" + wire.ENQ + f1 + f2[:6])
    assert tokens == [wire.ENQ, f1]
    assert rest == f2[:6]
    tokens, rest = wire.split_stream(rest + f2[6:] + wire.EOT)
    assert tokens == [f2, wire.EOT] and rest == b""


def test_split_stream_hands_on_a_broken_frame_for_a_nak() -> None:
    broken = b"\x021H|\\^&\r"  # the rest of the frame was lost
    tokens, rest = wire.split_stream(broken + wire.EOT)
    assert tokens == [broken, wire.EOT] and rest == b""
    with pytest.raises(wire.MalformedFrameError):
        wire.parse_frame(tokens[0])


def test_escapes_round_trip_and_decode_hex() -> None:
    d = wire.DEFAULT_DELIMITERS
    assert wire.escape("10^9/L | a\\b & c", d) == "10&S&9/L &F& a&R&b &E& c"
    assert wire.unescape("10&S&9/L &F& a&R&b &E& c", d) == "10^9/L | a\\b & c"
    assert wire.unescape("A&X0D0A&B&H&bold&N&", d) == "A\r\nBbold"
    assert wire.unescape("lonely & ampersand", d) == "lonely & ampersand"


TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@given(TEXT)
def test_escape_unescape_round_trip(value: str) -> None:
    d = wire.DEFAULT_DELIMITERS
    assert wire.unescape(wire.escape(value, d), d) == value


def _message() -> list[wire.AstmRecord]:
    return [
        wire.HeaderRecord(
            message_id="M1",
            sender=("HEMA", "2.1", "SN-7"),
            processing_id="P",
            timestamp="20240501120000",
        ),
        wire.PatientRecord(1, practice_id="L-0042", name=("LOT", "L-0042")),
        wire.OrderRecord(
            1,
            specimen_id="S-000012",
            test_ids=(("", "", "", "PLT"), ("", "", "", "WBC")),
            collected_at="20240501113000",
            report_type="F",
        ),
        wire.ResultRecord(
            1,
            test_id=("", "", "", "PLT"),
            value="182",
            units="10^9/L",
            reference_range="150-400",
            flags="N",
            status="F",
            completed_at="20240501120000",
        ),
        wire.CommentRecord(1, "I", ("clumps|suspected",), "G"),
        wire.TerminatorRecord(1, "N"),
    ]


def test_records_encode_to_the_standard_layout() -> None:
    texts = wire.encode_message(_message())
    assert texts == [
        "H|\\^&|M1||HEMA^2.1^SN-7|||||||P|LIS2-A2|20240501120000",
        "P|1|L-0042|||LOT^L-0042",
        "O|1|S-000012||^^^PLT\\^^^WBC|||20240501113000||||||||||||||||||F",
        "R|1|^^^PLT|182|10&S&9/L|150-400|N||F||||20240501120000",
        "C|1|I|clumps&F&suspected|G",
        "L|1|N",
    ]
    assert wire.decode_message(texts) == _message()
    result = wire.decode_message(texts)[3]
    assert isinstance(result, wire.ResultRecord)
    assert result.code == "PLT" and result.units == "10^9/L"


def test_header_delimiters_apply_to_the_following_records() -> None:
    d = wire.Delimiters(field="!", repeat="~", component="#", escape="%")
    records = [
        wire.HeaderRecord(delimiters=d, sender=("X",)),
        wire.OrderRecord(1, specimen_id="S-1", test_ids=(("", "", "", "PLT"),)),
        wire.ResultRecord(1, test_id=("", "", "", "PLT"), value="99", units="a|b!c"),
        wire.TerminatorRecord(),
    ]
    texts = wire.encode_message(records)
    assert texts[0].startswith("H!~#%!")
    assert texts[2] == "R!1!###PLT!99!a|b%F%c"
    assert wire.decode_message(texts) == records


def test_unknown_record_types_and_fields_are_kept() -> None:
    record = wire.decode_record("M|1|VENDOR^X|data")
    assert isinstance(record, wire.OtherRecord)
    assert record.type == "M" and record.field(3) == (("VENDOR", "X"),)
    assert wire.encode_record(record) == "M|1|VENDOR^X|data"
    order = wire.decode_record("O|1|S-1||^^^PLT|||||||||||||||||||||F|||X1")
    assert isinstance(order, wire.OrderRecord)
    assert dict(order.extra)[29] == (("X1",),)
    assert wire.encode_record(order) == "O|1|S-1||^^^PLT|||||||||||||||||||||F|||X1"


def test_sample_id_falls_back_to_the_instrument_specimen_id() -> None:
    order = wire.decode_record("O|1||S-000044^3^2|^^^PLT")
    assert isinstance(order, wire.OrderRecord)
    assert order.sample_id == "S-000044"


def test_query_record_round_trip() -> None:
    q = wire.QueryRecord(1, ("S-000001", "S-000002"), (("", "", "", "ALL"),), "O")
    text = wire.encode_record(q)
    assert text == "Q|1|^S-000001\\^S-000002||^^^ALL||||||||O"
    assert wire.decode_record(text) == q


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty record"),
        ("H|\\", "too short"),
        ("H|\\^^|", "four different"),
        ("R*1", "field delimiter"),
        ("R|x|^^^PLT", "not a whole number"),
    ],
)
def test_bad_records_raise_clear_errors(text: str, match: str) -> None:
    with pytest.raises(wire.RecordError, match=match):
        wire.decode_record(text)


def test_group_messages_marks_interrupted_ones_incomplete() -> None:
    h = wire.HeaderRecord()
    o = wire.OrderRecord(1, specimen_id="S-1")
    end = wire.TerminatorRecord()
    messages = wire.group_messages([h, o, h, o, end, o])
    assert [m.complete for m in messages] == [False, True, False]
    assert messages[1].header == h and messages[2].header is None
