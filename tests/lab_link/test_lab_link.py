"""instrument.lab_link: results into the registry (no I/O: a scripted analyzer), lot/run
exports as ASTM E1394 and HL7 ORU^R01 read back by independent parsers, MLLP with ACKs."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hl7  # type: ignore[import-untyped]
import pytest

from drivers.astm import AstmLink, AstmTimings
from drivers.wire import astm as wire
from instrument import lab_link
from instrument.lab_link import LisSendError, receive_results, send_mllp
from instrument.lots import collect_lot_data
from tests.lab_link.conftest import LoopRegistry
from tests.lab_link.mllp_peer import lis_listener
from tests.lab_link.scripted import ScriptedPeer, Step

FAST = AstmTimings().scaled(0.01)
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _analyzer_sends(*messages: Sequence[str]) -> AstmLink:
    """A link whose scripted analyzer sends each message in its own transfer."""
    script: list[Step] = []
    for records in messages:
        script += [("peer", wire.ENQ), ("host", wire.ACK)]
        for frame in wire.frames_for_records(records):
            script += [("peer", frame), ("host", wire.ACK)]
        script.append(("peer", wire.EOT))
    return AstmLink(ScriptedPeer(script), timings=FAST)


def _cbc(sample_id: str, results: Sequence[tuple[str, str, str]], **header: str) -> list[str]:
    records: list[wire.AstmRecord] = [
        wire.HeaderRecord(sender=("XN", "2.0", "SN-9"), timestamp="20240501115900", **header),
        wire.PatientRecord(1),
        wire.OrderRecord(1, specimen_id=sample_id, report_type="F"),
    ]
    for k, (code, value, unit) in enumerate(results, start=1):
        flag = "X" if value == "" else ""
        records.append(
            wire.ResultRecord(
                k,
                test_id=("", "", "", code),
                value=value,
                units=unit,
                status=flag or "F",
                completed_at="20240501115800",
            )
        )
    records.append(wire.TerminatorRecord())
    return wire.encode_message(records)


def test_results_attach_to_tubes_and_feed_platelet_consumption(registry: LoopRegistry) -> None:
    t0, t60, v0, v60 = registry.tubes
    link = _analyzer_sends(
        _cbc(t0, [("PLT", "250", "10*9/L"), ("WBC", "6.1", "10^3/uL"), ("HGB", "14.1", "g/dL")]),
        _cbc(t60, [("PLT", "100", "10*9/L")]),
        _cbc(v0, [("PLT", "240", "10^9/L")]),
        _cbc(v60, [("PLT", "216", "10*9/L"), ("RBC", "4.6", "10*12/L")]),
    )
    report = receive_results(link, registry.store, until=registry.tubes, timeout_s=5)
    assert report.ended == "all samples received" and report.messages == 4
    assert len(report.stored) == 7 and report.problems == [] and report.unknown == []
    values = {
        (v["tube_id"], v["analyte"]): v for v in registry.store.sample_values(registry.run_id)
    }
    assert values[(t0, "PLT")]["value"] == 250.0 and values[(t0, "PLT")]["unit"] == "10^9/L"
    assert values[(t0, "WBC")]["unit"] == "10^9/L"  # 10^3/µL is the same number
    assert values[(t0, "HGB")]["unit"] == "g/dL"  # other units are kept as sent
    assert values[(v60, "RBC")]["unit"] == "10^12/L"
    assert values[(t0, "PLT")]["origin"] == "ASTM E1394 from XN 2.0 SN-9, completed 20240501115800"
    assert values[(t0, "PLT")]["entered_by"] == "analyzer"
    assert not values[(t0, "PLT")]["simulated"]
    # The lot indices read the counts: 60 % consumption in the lot's loop, 10 % in the vehicle.
    data = collect_lot_data(registry.store, "L-UC-7")
    loops = {loop.is_vehicle: loop for loop in data.loops}
    assert loops[False].platelets_by_time_s == {0.0: 250.0, 3600.0: 100.0}
    assert loops[True].platelets_by_time_s == {0.0: 240.0, 3600.0: 216.0}


def test_resent_results_are_stored_once_and_unknown_samples_reported(
    registry: LoopRegistry,
) -> None:
    t0 = registry.tubes[0]
    message = _cbc(t0, [("PLT", "250", "10*9/L"), ("WBC", "6.1", "10*9/L")])
    stranger = _cbc("S-123456", [("PLT", "180", "10*9/L")])
    link = _analyzer_sends(message, stranger, message)
    report = receive_results(link, registry.store, until="idle", idle_s=0.2, timeout_s=5)
    assert report.ended == "idle" and report.transfers == 3
    assert [(v.sample_id, v.analyte) for v in report.stored] == [(t0, "PLT"), (t0, "WBC")]
    assert [(v.sample_id, v.analyte) for v in report.duplicates] == [(t0, "PLT"), (t0, "WBC")]
    assert report.unknown_samples == ["S-123456"]
    assert report.unknown[0].value == 180.0
    assert len(registry.store.sample_values(registry.run_id)) == 2


def test_a_correction_is_a_new_value_and_cannot_be_done_is_kept_empty(
    registry: LoopRegistry,
) -> None:
    t0 = registry.tubes[0]
    first = _cbc(t0, [("PLT", "250", "10*9/L"), ("MPV", "", "fL"), ("WBC", "n/a", "10*9/L")])
    link = _analyzer_sends(first)
    report = receive_results(link, registry.store, timeout_s=5)
    flags = {v.analyte: (v.value, v.flag) for v in report.stored}
    assert flags == {
        "PLT": (250.0, ""),
        "MPV": (None, "cannot be done"),
        "WBC": (None, "not numeric: n/a"),
    }
    corrected = [t.replace("|250|", "|245|").replace("||F||", "||C||") for t in first[:4]]
    link = _analyzer_sends([*corrected, "L|1|N"])
    report = receive_results(link, registry.store, timeout_s=5)
    assert [(v.value, v.origin.endswith("(correction)")) for v in report.stored] == [(245.0, True)]
    plt = registry.store.sample_values(registry.run_id, "PLT")
    assert [v["value"] for v in plt] == [245.0]  # the latest value supersedes


def test_incomplete_messages_and_bad_records_are_reported(registry: LoopRegistry) -> None:
    t0 = registry.tubes[0]
    whole = _cbc(t0, [("PLT", "250", "10*9/L")])
    cut = whole[:-1]  # no terminator: the analyzer will send it again
    orphan = [whole[0], "R|1|^^^PLT|1|10*9/L", "Rx", "L|1|N"]
    link = _analyzer_sends(cut, orphan)
    report = receive_results(link, registry.store, until="idle", idle_s=0.2, timeout_s=5)
    assert report.incomplete_messages == 1 and report.stored == []
    assert any("incomplete message" in p for p in report.problems)
    assert any("without an order" in p for p in report.problems)
    assert any("not understood" in p for p in report.problems)


def test_simulated_sender_marks_values_simulated(registry: LoopRegistry) -> None:
    link = _analyzer_sends(_cbc(registry.tubes[0], [("PLT", "250", "10*9/L")], processing_id="D"))
    receive_results(link, registry.store, timeout_s=5)
    assert registry.store.sample_values(registry.run_id)[0]["simulated"]


def test_nothing_received_ends_at_the_timeout(registry: LoopRegistry) -> None:
    link = AstmLink(ScriptedPeer([]), timings=FAST)
    report = receive_results(link, registry.store, timeout_s=0.1)
    assert report.ended == "timeout" and report.messages == 0


# -- exports --------------------------------------------------------------------------------------
def _with_counts(registry: LoopRegistry) -> None:
    for tube, plt in zip(registry.tubes, (250.0, 100.0, 240.0, 216.0), strict=True):
        registry.store.add_sample_value(
            tube,
            analyte="PLT",
            value=plt,
            unit="10^9/L",
            origin="test",
            entered_by="tester",
            simulated=False,
        )
    registry.store.add_sample_value(
        registry.tubes[1],
        analyte="TAT",
        value=88.5,
        unit="ug/L",
        origin="test",
        entered_by="tester",
        simulated=False,
        flag="> ULOQ",
    )


def test_astm_export_of_a_run_decodes_into_the_expected_records(registry: LoopRegistry) -> None:
    _with_counts(registry)
    data = lab_link.export_astm(registry.store, run_id=registry.run_id, now=NOW, message_id="X1")
    assert data.endswith(b"L|1|N\r")
    records = wire.decode_message(data.decode("latin-1").split("\r")[:-1])
    header = records[0]
    assert isinstance(header, wire.HeaderRecord)
    assert (header.message_id, header.processing_id, header.timestamp) == (
        "X1",
        "P",
        "20240501120000",
    )
    patients = [r for r in records if isinstance(r, wire.PatientRecord)]
    assert [p.practice_id for p in patients] == ["L-UC-7", "VEHICLE"]
    orders = [r.specimen_id for r in records if isinstance(r, wire.OrderRecord)]
    t0, t60, v0, v60 = registry.tubes
    assert orders == [f"R{registry.run_id}-loop1", t0, t60, f"R{registry.run_id}-loop2", v0, v60]
    results = [r for r in records if isinstance(r, wire.ResultRecord)]
    plt = [(r.value, r.units) for r in results if r.code == "PLT"]
    assert plt == [("250", "10*9/L"), ("100", "10*9/L"), ("240", "10*9/L"), ("216", "10*9/L")]
    tat = next(r for r in results if r.code == "TAT")
    assert (tat.value, tat.units, tat.flags) == ("88.5", "ug/L", "> ULOQ")
    clot = next(r for r in results if r.code == "clot_time_s")
    assert (clot.value, clot.units) == ("1800", "s")
    # every frame of it also decodes with the independent library
    astm_codec = pytest.importorskip("astm.codec")
    texts = data.decode("latin-1").split("\r")[:-1]
    for text, frame in zip(texts, wire.frames_for_records(texts), strict=True):
        _seq, decoded, _cs = astm_codec.decode_message(frame, "latin-1")
        assert len(decoded) == 1 and decoded[0][0] == text[0]


def test_astm_export_of_a_simulated_lot_says_so(tmp_path: Path) -> None:
    from tests.lab_link.conftest import make_loop_registry

    reg = make_loop_registry(tmp_path / "sim.db", simulated=True)
    try:
        data = lab_link.export_astm(reg.store, lot_id="L-UC-7", now=NOW)
    finally:
        reg.store.close()
    records = wire.decode_message(data.decode("latin-1").split("\r")[:-1])
    header, comment = records[0], records[1]
    assert isinstance(header, wire.HeaderRecord) and header.processing_id == "D"
    assert isinstance(comment, wire.CommentRecord) and "SIMULATED" in comment.text[0]
    first_order = next(r for r in records if isinstance(r, wire.OrderRecord))
    assert first_order.specimen_id == "LOT-L-UC-7"
    lot_results = {r.code: r.value for r in records if isinstance(r, wire.ResultRecord)}
    assert lot_results["CD142_pct"] == "35" and lot_results["viability_pct"] == "93"


def _field(segment: Any, number: int, component: int = 1) -> str:
    """A segment's field (first repeat) or component, unescaped, "" when absent."""
    return str(segment.extract_field(1, number, 1, component))


def test_hl7_oru_r01_parses_back_with_the_expected_obx_values(registry: LoopRegistry) -> None:
    _with_counts(registry)
    text = lab_link.export_hl7(registry.store, lot_id="L-UC-7", now=NOW, message_id="M42")
    assert "\n" not in text and text.endswith("\r")
    msg = hl7.parse(text)
    assert str(msg["MSH.F9.R1.C1"]) == "ORU" and str(msg["MSH.F9.R1.C2"]) == "R01"
    assert str(msg["MSH.F10"]) == "M42" and str(msg["MSH.F11"]) == "P"
    assert str(msg["MSH.F12"]) == "2.5.1"
    pids = msg.segments("PID")
    assert [_field(p, 3) for p in pids] == ["L-UC-7", "VEHICLE"]
    assert _field(pids[0], 3, 5) == "LOT"
    obx = [
        (_field(s, 3), _field(s, 2), _field(s, 5), _field(s, 6), _field(s, 8))
        for s in msg.segments("OBX")
    ]
    assert ("PLT", "NM", "250", "10*9/L", "") in obx
    assert ("PLT", "NM", "100", "10*9/L", "") in obx
    assert ("TAT", "NM", "88.5", "ug/L", "> ULOQ") in obx
    assert ("CD142_pct", "NM", "35", "%", "") in obx
    assert ("clotted", "ST", "Y", "", "") in obx
    obr = msg.segments("OBR")
    assert [_field(o, 3) for o in obr][:2] == ["LOT-L-UC-7", f"R{registry.run_id}-loop1"]
    # OBX follow their OBR: the PLT of tube 1 comes right after the tube's OBR
    segments = [str(s(0)) for s in msg]
    assert segments[:4] == ["MSH", "PID", "OBR", "OBX"]


def test_hl7_escapes_delimiters_in_values(registry: LoopRegistry) -> None:
    registry.store.add_sample_value(
        registry.tubes[0],
        analyte="NOTE",
        value=None,
        unit="a|b^c&d~e",
        origin="test",
        entered_by="tester",
        simulated=False,
    )
    msg = hl7.parse(lab_link.export_hl7(registry.store, run_id=registry.run_id, now=NOW))
    note = next(s for s in msg.segments("OBX") if _field(s, 3) == "NOTE")
    assert _field(note, 6) == "a|b^c&d~e"
    assert _field(note, 11) == "X"  # no value


def test_export_needs_exactly_one_of_lot_or_run(registry: LoopRegistry) -> None:
    with pytest.raises(lab_link.HemocompatError, match="exactly one"):
        lab_link.collect_export(registry.store)


def test_export_files(registry: LoopRegistry, tmp_path: Path) -> None:
    path = lab_link.write_export_file(tmp_path / "out" / "run.hl7", "MSH|^~\\&|\r")
    assert path.read_bytes() == b"MSH|^~\\&|\r"


# -- MLLP -----------------------------------------------------------------------------------------
def test_mllp_send_with_acknowledgement(registry: LoopRegistry) -> None:
    _with_counts(registry)
    text = lab_link.export_hl7(registry.store, run_id=registry.run_id, now=NOW, message_id="M7")
    with lis_listener("AA") as (port, received):
        ack = send_mllp(text, "127.0.0.1", port, timeout_s=5)
    assert (ack.code, ack.control_id) == ("AA", "M7")
    assert received == [b"\x0b" + text.encode() + b"\x1c\r"]


def test_mllp_negative_ack_is_an_error(registry: LoopRegistry) -> None:
    text = lab_link.export_hl7(registry.store, run_id=registry.run_id, now=NOW, message_id="M8")
    with lis_listener("AE") as (port, _received), pytest.raises(LisSendError, match="AE: rejected"):
        send_mllp(text, "127.0.0.1", port, timeout_s=5)


def test_mllp_no_ack_times_out(registry: LoopRegistry) -> None:
    text = lab_link.export_hl7(registry.store, run_id=registry.run_id, now=NOW, message_id="M9")
    with (
        lis_listener(None) as (port, _received),
        pytest.raises(LisSendError, match="did not acknowledge"),
    ):
        send_mllp(text, "127.0.0.1", port, timeout_s=0.3)


def test_mllp_nobody_listening() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(LisSendError, match="cannot send to the LIS"):
        send_mllp("MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5.1\r", "127.0.0.1", port, timeout_s=1)


@pytest.mark.parametrize(
    ("text", "expected"), [("127.0.0.1:2575", ("127.0.0.1", 2575)), ("[::1]:7", ("::1", 7))]
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert lab_link.parse_host_port(text) == expected
    with pytest.raises(lab_link.HemocompatError, match="HOST:PORT"):
        lab_link.parse_host_port("localhost")
