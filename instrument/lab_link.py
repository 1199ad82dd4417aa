"""Laboratory links: complete blood counts from a hematology analyzer into the sample
registry (ASTM E1381/E1394), and lot or run results out to a LIS (ASTM E1394 and HL7 v2.5.1
ORU^R01, to files, over an ASTM link or over MLLP).

Received results attach to loop sample tubes by specimen ID (``S-000123``): PLT in 10^9/L
is what the loop analysis and the lot indices read for platelet consumption; WBC, RBC, HGB
and any other analyte are stored with their own codes. A result the registry already holds
(same tube, analyte, value, unit and origin: a resend) is stored once; a sample ID that is
not in the registry is reported with its values, never dropped silently. Only complete
messages (header to terminator) are used: an interrupted one is reported and the analyzer
sends it again. See docs/lab-integration.md.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from drivers.astm import AstmLink, Transfer
from drivers.transport import LinkLostError, TransportError
from drivers.wire import astm as wire
from instrument.errors import HemocompatError, StorageError
from instrument.storage import Store, sample_values, software_version

__all__ = [
    "LisExport",
    "LisSendError",
    "MllpAck",
    "Observation",
    "ReceiveReport",
    "ReceivedValue",
    "Specimen",
    "Subject",
    "astm_records",
    "collect_export",
    "export_astm",
    "export_hl7",
    "hl7_message",
    "normalize_unit",
    "receive_results",
    "send_astm",
    "send_mllp",
    "write_export_file",
]

log = logging.getLogger("hemocompat.lab_link")

MLLP_START = b"\x0b"
MLLP_END = b"\x1c\x0d"
_TS = "%Y%m%d%H%M%S"

#: Units as analyzers write them → the registry's notation (same magnitude only; no
#: conversions that change the number).
_UNIT_ALIASES = {
    "10*9/L": "10^9/L",
    "10^9/L": "10^9/L",
    "X10^9/L": "10^9/L",
    "10E9/L": "10^9/L",
    "10^3/UL": "10^9/L",
    "10*3/UL": "10^9/L",
    "K/UL": "10^9/L",
    "/NL": "10^9/L",
    "10*12/L": "10^12/L",
    "10^12/L": "10^12/L",
    "X10^12/L": "10^12/L",
    "10E12/L": "10^12/L",
    "10^6/UL": "10^12/L",
    "10*6/UL": "10^12/L",
    "M/UL": "10^12/L",
    "T/L": "10^12/L",
}
#: Registry unit → UCUM for exports (HL7 OBX-6 and ASTM R-5).
_UCUM = {
    "10^9/L": "10*9/L",
    "10^12/L": "10*12/L",
    "cells/mL": "{cells}/mL",
    "permille": "[ppth]",
}
#: Readable names of the analytes and lot attributes an export commonly holds.
_NAMES = {
    "PLT": "Platelets",
    "WBC": "White blood cells",
    "RBC": "Red blood cells",
    "HGB": "Hemoglobin",
    "HCT": "Hematocrit",
    "MPV": "Mean platelet volume",
    "TAT": "Thrombin-antithrombin complex",
    "DOSE": "MSC dose",
    "CD142_pct": "CD142+ cells",
    "CD142_MFI": "CD142 median fluorescence",
    "viability_pct": "Viability",
    "passage": "Passage",
    "CLASS": "Hemocompatibility class",
}


def normalize_unit(unit: str) -> str:
    """An analyzer's unit in the registry's notation (``10*9/L`` → ``10^9/L``)."""
    key = unit.strip().replace(" ", "").replace("µ", "U").replace("μ", "U").upper()
    return _UNIT_ALIASES.get(key, unit.strip())


# -- receiving -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReceivedValue:
    """One result from the analyzer as it was (or would have been) stored."""

    sample_id: str
    analyte: str
    value: float | None
    unit: str
    flag: str
    origin: str


@dataclass(slots=True)
class ReceiveReport:
    """What :func:`receive_results` did: values stored, resends recognised, sample IDs not in
    the registry (with their values), messages that were incomplete, and problems."""

    transfers: int = 0
    messages: int = 0
    incomplete_messages: int = 0
    stored: list[ReceivedValue] = field(default_factory=list)
    duplicates: list[ReceivedValue] = field(default_factory=list)
    unknown: list[ReceivedValue] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reconnects: int = 0
    ended: str = ""

    @property
    def unknown_samples(self) -> list[str]:
        """Sample IDs the analyzer reported that match no tube, in order of arrival."""
        return list(dict.fromkeys(v.sample_id for v in self.unknown))

    @property
    def samples(self) -> list[str]:
        """Sample IDs with at least one stored or already stored value."""
        return list(dict.fromkeys(v.sample_id for v in self.stored + self.duplicates))


Until = Literal["eot", "idle", "timeout"] | Collection[str]


def receive_results(
    link: AstmLink,
    store: Store,
    *,
    until: Until = "eot",
    timeout_s: float = 60.0,
    idle_s: float = 10.0,
    reconnect: Callable[[], AstmLink] | None = None,
    entered_by: str = "analyzer",
) -> ReceiveReport:
    """Receive CBC results from the analyzer and attach them to the registry's tubes.

    ``until``: ``"eot"`` stops after the first transfer that ends normally; ``"idle"`` when
    no transfer has started for ``idle_s`` seconds; ``"timeout"`` after ``timeout_s``; a
    collection of sample IDs when each of them has a result (stored or already stored).
    ``timeout_s`` bounds every mode. If the link is lost and ``reconnect`` is given, it is
    called for a new link (links it returns are closed here); otherwise receiving stops.
    """
    report = ReceiveReport()
    deadline = time.monotonic() + timeout_s
    wanted = None if isinstance(until, str) else set(until)
    current: AstmLink | None = link
    try:
        while current is not None:
            now = time.monotonic()
            if now >= deadline:
                report.ended = "timeout"
                break
            wait = deadline - now
            if until == "idle":
                wait = min(wait, idle_s)
            try:
                transfer = current.receive(wait)
            except LinkLostError as exc:
                transfer = Transfer((), "link-lost", detail=str(exc))
            if transfer is None:
                report.ended = "idle" if until == "idle" else "timeout"
                break
            if transfer.records or transfer.ended != "link-lost":
                report.transfers += 1
            _process_transfer(transfer, store, report, entered_by)
            if transfer.ended == "link-lost":
                if reconnect is None:
                    report.ended = "link-lost"
                    report.problems.append(f"the link was lost: {transfer.detail}")
                    break
                current = _reconnect(current, link, reconnect, deadline, report)
                continue
            if until == "eot" and transfer.ended == "eot":
                report.ended = "eot"
                break
            if wanted is not None and wanted <= set(report.samples) | set(report.unknown_samples):
                report.ended = "all samples received"
                break
    finally:
        if current is not None and current is not link:
            current.close()
    return report


def _reconnect(
    current: AstmLink,
    original: AstmLink,
    reconnect: Callable[[], AstmLink],
    deadline: float,
    report: ReceiveReport,
) -> AstmLink | None:
    if current is not original:
        current.close()
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            fresh = reconnect()
        except TransportError as exc:
            last = exc
            time.sleep(0.05)
            continue
        report.reconnects += 1
        log.info("reconnected to the analyzer at %s", fresh.resource)
        return fresh
    report.ended = "link-lost"
    report.problems.append(f"could not reconnect to the analyzer: {last}")
    return None


def _decode_records(texts: Sequence[str], report: ReceiveReport) -> list[wire.AstmRecord]:
    records: list[wire.AstmRecord] = []
    d = wire.DEFAULT_DELIMITERS
    for text in texts:
        try:
            record = wire.decode_record(text, d)
        except wire.RecordError as exc:
            report.problems.append(f"record not understood, skipped: {exc}")
            continue
        if isinstance(record, wire.HeaderRecord):
            d = record.delimiters
        records.append(record)
    return records


def _process_transfer(
    transfer: Transfer, store: Store, report: ReceiveReport, entered_by: str
) -> None:
    for message in wire.group_messages(_decode_records(transfer.records, report)):
        if not message.complete:
            report.incomplete_messages += 1
            report.problems.append(
                f"an incomplete message ({len(message.records)} records, transfer ended by "
                f"{transfer.ended}) was not used; the analyzer sends it again"
            )
            continue
        report.messages += 1
        _store_message(message, store, report, entered_by)


def _parse_value(result: wire.ResultRecord) -> tuple[float | None, str]:
    """(value, flag) of a result; a non-numeric or 'cannot be done' result is kept as None
    with the reason in the flag."""
    flags = [] if result.flags in ("", "N") else [result.flags]
    if result.status == "X":
        return None, "/".join([*flags, "cannot be done"])
    text = result.value.strip()
    try:
        value = float(text)
    except ValueError:
        shown = text or "empty"
        return None, "/".join([*flags, f"not numeric: {shown}"])
    if not math.isfinite(value):
        return None, "/".join([*flags, f"not numeric: {text}"])
    return value, "/".join(flags)


def _store_message(
    message: wire.Message, store: Store, report: ReceiveReport, entered_by: str
) -> None:
    header = message.header
    assert header is not None
    sender = " ".join(c for c in header.sender if c) or "analyzer"
    simulated_sender = header.processing_id.upper() == "D"
    order: wire.OrderRecord | None = None
    tubes: dict[str, dict[str, Any] | None] = {}
    for record in message.records:
        if isinstance(record, wire.OrderRecord):
            order = record
            continue
        if not isinstance(record, wire.ResultRecord):
            continue
        if order is None or not order.sample_id:
            report.problems.append(f"result {record.code} without an order/sample ID, skipped")
            continue
        sample_id = order.sample_id
        analyte = record.code.strip().upper()
        if not analyte:
            report.problems.append(f"{sample_id}: result without a test code, skipped")
            continue
        value, flag = _parse_value(record)
        unit = normalize_unit(record.units)
        when = record.completed_at or header.timestamp
        status = {"C": " (correction)", "P": " (preliminary)"}.get(record.status, "")
        origin = f"ASTM E1394 from {sender}, completed {when or 'unknown'}{status}"
        received = ReceivedValue(sample_id, analyte, value, unit, flag, origin)
        if sample_id not in tubes:
            try:
                tubes[sample_id] = store.tube(sample_id)
            except StorageError:
                tubes[sample_id] = None
        tube = tubes[sample_id]
        if tube is None:
            report.unknown.append(received)
            continue
        if _already_stored(store, received):
            report.duplicates.append(received)
            continue
        store.add_sample_value(
            sample_id,
            analyte=analyte,
            value=value,
            unit=unit,
            origin=origin,
            entered_by=entered_by,
            simulated=bool(tube["simulated"]) or simulated_sender,
            flag=flag,
        )
        report.stored.append(received)
    for sample_id in (s for s, t in tubes.items() if t is None):
        log.warning("the analyzer sent results for %s, which is not in the registry", sample_id)


def _already_stored(store: Store, v: ReceivedValue) -> bool:
    query = sa.select(sa.func.count()).where(
        sample_values.c.tube_id == v.sample_id,
        sample_values.c.analyte == v.analyte,
        sample_values.c.unit == v.unit,
        sample_values.c.origin == v.origin,
        sample_values.c.value.is_(None) if v.value is None else sample_values.c.value == v.value,
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one()) > 0


# -- export model ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Observation:
    """One exported result: a code (analyte or parameter), its value and unit (registry
    notation), abnormal flag, status (F final) and observation time (YYYYMMDDHHMMSS)."""

    code: str
    name: str
    value: float | str | None
    unit: str = ""
    flag: str = ""
    status: str = "F"
    observed_at: str = ""


@dataclass(frozen=True, slots=True)
class Specimen:
    """A specimen and its results: a sample tube, a run channel, or the lot itself."""

    specimen_id: str
    description: str
    collected_at: str
    observations: tuple[Observation, ...]


@dataclass(frozen=True, slots=True)
class Subject:
    """A pseudonymised subject: an MSC lot (or the vehicle control) — never a person."""

    subject_id: str
    kind: str
    specimens: tuple[Specimen, ...]


@dataclass(frozen=True, slots=True)
class LisExport:
    """What an export holds, independent of the message format."""

    title: str
    subjects: tuple[Subject, ...]
    simulated: bool
    created_at: str
    message_id: str


_SUFFIX_UNITS = (
    ("_cells_per_ml", "cells/mL"),
    ("_e9_per_l", "10^9/L"),
    ("_ug_per_l", "ug/L"),
    ("_permille", "permille"),
    ("_pct", "%"),
    ("_deg", "deg"),
    ("_mm", "mm"),
    ("_min", "min"),
    ("_s", "s"),
)


def _unit_of(name: str) -> str:
    return next((unit for suffix, unit in _SUFFIX_UNITS if name.endswith(suffix)), "")


def _name(code: str) -> str:
    return _NAMES.get(code, code)


def _parameter_obs(name: str, value: Any, when: str) -> Observation | None:
    if isinstance(value, bool):
        return Observation(name, _name(name), "Y" if value else "N", "", observed_at=when)
    if isinstance(value, int | float) and math.isfinite(value):
        return Observation(name, _name(name), float(value), _unit_of(name), observed_at=when)
    if isinstance(value, str) and value:
        return Observation(name, _name(name), value, "", observed_at=when)
    return None


def _stamp(iso: str | None) -> str:
    """An ISO time from the database as YYYYMMDDHHMMSS (UTC), or ""."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(_TS)


def _run_specimens(
    store: Store, run_id: int, lot_id: str | None
) -> tuple[dict[str, list[Specimen]], bool]:
    """Specimens of one run by subject ID (a lot ID or VEHICLE), and whether simulated."""
    run = store.get_run(run_id)
    when = _stamp(run.get("ended_at") or run.get("started_at") or run.get("created_at"))
    results = {(r["source"], r["channel"]): r for r in store.latest_results(run_id)}
    by_subject: dict[str, list[Specimen]] = {}
    subject_of_channel: dict[int, str] = {}
    for ch in run["channels"]:
        vehicle = ch["contents"] != "lot"
        subject = "VEHICLE" if vehicle else str(ch["lot_id"])
        if lot_id is not None and not vehicle and subject != lot_id:
            continue
        subject_of_channel[ch["channel"]] = subject
        obs = [Observation("DOSE", _name("DOSE"), float(ch["dose_cells_per_ml"]), "cells/mL")]
        result = results.get((ch["source"], ch["channel"]))
        for name, value in (result["parameters"] if result else {}).items():
            o = _parameter_obs(str(name), value, when)
            if o is not None:
                obs.append(o)
        specimen = Specimen(
            f"R{run_id}-{ch['source']}{ch['channel']}",
            f"run {run_id} {run['assay']} {ch['source']} channel {ch['channel']}",
            _stamp(run.get("started_at")),
            tuple(obs),
        )
        by_subject.setdefault(subject, []).append(specimen)
    values_by_tube: dict[str, list[dict[str, Any]]] = {}
    for v in store.sample_values(run_id):
        values_by_tube.setdefault(v["tube_id"], []).append(v)
    for tube in store.tubes(run_id):
        owner = subject_of_channel.get(tube["channel"])
        values = values_by_tube.get(tube["tube_id"], [])
        if owner is None or not values:
            continue
        obs = [
            Observation(
                v["analyte"],
                _name(v["analyte"]),
                v["value"],
                v["unit"],
                v["flag"] or "",
                observed_at=_stamp(v["entered_at"]),
            )
            for v in values
        ]
        description = (
            f"{tube['tube_type']} tube, {tube['source']} {tube['channel']} at "
            f"{tube['time_point_s']:g} s"
        )
        by_subject.setdefault(owner, []).append(
            Specimen(tube["tube_id"], description, _stamp(tube["drawn_at"]), tuple(obs))
        )
    return by_subject, bool(run["simulated"])


def collect_export(
    store: Store,
    *,
    lot_id: str | None = None,
    run_id: int | None = None,
    message_id: str | None = None,
    now: datetime | None = None,
) -> LisExport:
    """Gather a lot's (its attributes, latest class, runs) or one run's results for export."""
    from instrument import lots

    if (lot_id is None) == (run_id is None):
        raise HemocompatError("export a lot or a run: give exactly one of a lot ID or a run ID")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    subjects: dict[str, list[Specimen]] = {}
    simulated = False
    if lot_id is not None:
        lot = lots.get_lot(store, lot_id)
        simulated = bool(lot["simulated"])
        obs = [
            o
            for o in (
                _parameter_obs("CD142_pct", lot["cd142_pct"], ""),
                _parameter_obs("CD142_MFI", lot["cd142_mfi"], ""),
                _parameter_obs("viability_pct", lot["viability_pct"], ""),
                _parameter_obs("passage", lot["passage"], ""),
            )
            if o is not None
        ]
        assessment = lots.latest_assessment(store, lot_id)
        if assessment is not None and assessment.get("class_id"):
            stamp = _stamp(assessment["created_at"])
            obs.append(
                Observation("CLASS", _name("CLASS"), assessment["class_id"], observed_at=stamp)
            )
        subjects[lot_id] = [
            Specimen(f"LOT-{lot_id}", f"MSC lot {lot_id} ({lot['tissue_source']})", "", tuple(obs))
        ]
        for run in sorted(lots.lot_runs(store, lot_id), key=lambda r: r["id"]):
            found, sim = _run_specimens(store, run["id"], lot_id)
            simulated = simulated or sim
            for subject, specimens in found.items():
                subjects.setdefault(subject, []).extend(specimens)
        title = f"lot {lot_id}"
    else:
        assert run_id is not None
        subjects, simulated = _run_specimens(store, run_id, None)
        title = f"run {run_id}"
    return LisExport(
        title=title,
        subjects=tuple(
            Subject(s, "vehicle" if s == "VEHICLE" else "lot", tuple(sp))
            for s, sp in subjects.items()
        ),
        simulated=simulated,
        created_at=moment.strftime(_TS),
        message_id=message_id or f"HC{moment.strftime('%Y%m%d%H%M%S%f')[:17]}",
    )


def _value_text(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


_SIMULATED_NOTE = "SIMULATED data from simulated instruments: test data, not measurements"


# -- ASTM E1394 export -----------------------------------------------------------------------
def astm_records(export: LisExport) -> list[str]:
    """The export as E1394 record texts: H, [C], then P, O, R… per subject and specimen, L."""
    records: list[wire.AstmRecord] = [
        wire.HeaderRecord(
            message_id=export.message_id,
            sender=("hemocompat", software_version()),
            comment=export.title,
            processing_id="D" if export.simulated else "P",
            timestamp=export.created_at,
        )
    ]
    if export.simulated:
        records.append(wire.CommentRecord(1, "L", (_SIMULATED_NOTE,), "G"))
    for p_seq, subject in enumerate(export.subjects, start=1):
        records.append(
            wire.PatientRecord(
                p_seq,
                practice_id=subject.subject_id,
                name=(subject.kind.upper(), subject.subject_id),
            )
        )
        for o_seq, specimen in enumerate(subject.specimens, start=1):
            records.append(
                wire.OrderRecord(
                    o_seq,
                    specimen_id=specimen.specimen_id,
                    test_ids=tuple(("", "", "", o.code) for o in specimen.observations),
                    collected_at=specimen.collected_at,
                    report_type="F",
                )
            )
            records.append(wire.CommentRecord(1, "L", (specimen.description,), "G"))
            for r_seq, o in enumerate(specimen.observations, start=1):
                records.append(
                    wire.ResultRecord(
                        r_seq,
                        test_id=("", o.name if o.name != o.code else "", "", o.code),
                        value=_value_text(o.value),
                        units=_UCUM.get(o.unit, o.unit),
                        flags=o.flag,
                        status=o.status,
                        completed_at=o.observed_at,
                    )
                )
    records.append(wire.TerminatorRecord(1, "N"))
    return wire.encode_message(records)


def export_astm(
    store: Store, *, lot_id: str | None = None, run_id: int | None = None, **kwargs: Any
) -> bytes:
    """A lot's or run's results as one E1394 message: records separated by CR (file form)."""
    export = collect_export(store, lot_id=lot_id, run_id=run_id, **kwargs)
    return b"".join(r.encode(wire.ENCODING) + wire.CR for r in astm_records(export))


def send_astm(link: AstmLink, export: LisExport) -> None:
    """Send an export over an ASTM E1381 link (the LIS plays the instrument side)."""
    link.send(astm_records(export))


# -- HL7 v2.5.1 ORU^R01 export -------------------------------------------------------------------
def hl7_message(export: LisExport) -> Any:
    """The export as an ``hl7.Message`` (ORU^R01, v2.5.1): MSH, then per subject PID (the lot
    as a pseudonymised subject) and per specimen OBR with its OBX results."""
    import hl7

    msg = hl7.parse("MSH|^~\\&|")
    seg = msg.segment("MSH")

    def put(segment: Any, number: int, *components: str) -> None:
        if len(components) == 1:
            segment.assign_field(msg.escape(components[0]), number)
        else:
            for k, c in enumerate(components, start=1):
                segment.assign_field(msg.escape(c), number, 1, k)

    put(seg, 3, "HEMOCOMPAT")
    put(seg, 4, "HEMOCOMPAT-LAB")
    put(seg, 5, "LIS")
    put(seg, 7, export.created_at)
    put(seg, 9, "ORU", "R01", "ORU_R01")
    put(seg, 10, export.message_id)
    put(seg, 11, "D" if export.simulated else "P")
    put(seg, 12, "2.5.1")

    def new(name: str) -> Any:
        segment = msg.create_segment([msg.create_field([name])])
        msg.append(segment)
        return segment

    if export.simulated:
        note = new("NTE")
        put(note, 1, "1")
        put(note, 2, "L")
        put(note, 3, _SIMULATED_NOTE)
    obr_seq = 0
    for p_seq, subject in enumerate(export.subjects, start=1):
        pid = new("PID")
        put(pid, 1, str(p_seq))
        put(pid, 3, subject.subject_id, "", "", "HEMOCOMPAT", subject.kind.upper())
        put(pid, 5, subject.kind.upper(), subject.subject_id)
        for specimen in subject.specimens:
            obr_seq += 1
            obr = new("OBR")
            put(obr, 1, str(obr_seq))
            put(obr, 2, specimen.specimen_id)
            put(obr, 3, specimen.specimen_id)
            put(obr, 4, "HC-RESULTS", specimen.description, "L")
            if specimen.collected_at:
                put(obr, 7, specimen.collected_at)
            put(obr, 22, export.created_at)
            put(obr, 25, "F")
            for x_seq, o in enumerate(specimen.observations, start=1):
                obx = new("OBX")
                put(obx, 1, str(x_seq))
                put(obx, 2, "NM" if isinstance(o.value, float) else "ST")
                put(obx, 3, o.code, o.name, "L")
                put(obx, 5, _value_text(o.value))
                if o.unit:
                    ucum = _UCUM.get(o.unit, o.unit)
                    put(obx, 6, ucum, ucum, "UCUM")
                if o.flag:
                    put(obx, 8, o.flag)
                put(obx, 11, "X" if o.value is None else o.status)
                if o.observed_at:
                    put(obx, 14, o.observed_at)
    return msg


def export_hl7(
    store: Store, *, lot_id: str | None = None, run_id: int | None = None, **kwargs: Any
) -> str:
    """A lot's or run's results as an HL7 v2.5.1 ORU^R01 message (segments end with CR)."""
    return str(hl7_message(collect_export(store, lot_id=lot_id, run_id=run_id, **kwargs)))


def write_export_file(path: Path, data: bytes | str) -> Path:
    """Write an ASTM (bytes) or HL7 (text) export, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# -- MLLP ------------------------------------------------------------------------------------
class LisSendError(HemocompatError):
    """The LIS did not accept an HL7 message (no answer, negative ACK, wrong ACK)."""


@dataclass(frozen=True, slots=True)
class MllpAck:
    """The LIS's acknowledgement: MSA-1 code (AA/CA accepted), MSA-2 the control ID."""

    code: str
    control_id: str
    text: str
    raw: str


def send_mllp(
    message: str, host: str, port: int, *, timeout_s: float = 10.0, encoding: str = "utf-8"
) -> MllpAck:
    """Send one HL7 message over MLLP (0x0B message 0x1C 0x0D) and check its ACK.

    Raises :class:`LisSendError` unless the LIS answers AA or CA for this message's control ID.
    """
    import hl7

    where = f"{host}:{port}"
    sent_id = str(hl7.parse(message).segment("MSH")(10))
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(MLLP_START + message.encode(encoding) + MLLP_END)
            raw = _read_mllp(sock, where, timeout_s)
    except TimeoutError as exc:
        raise LisSendError(
            f"the LIS at {where} did not acknowledge message {sent_id} within {timeout_s:g} s"
        ) from exc
    except OSError as exc:
        raise LisSendError(
            f"cannot send to the LIS at {where}: {exc.strerror or exc}. Check the host, the "
            f"port and that the LIS's MLLP listener is running."
        ) from exc
    text = raw.decode(encoding, "replace")
    try:
        ack = hl7.parse(text)
        msa = ack.segment("MSA")
    except Exception as exc:  # the LIS answered something that is not an HL7 ACK
        raise LisSendError(f"the LIS at {where} answered with no MSA segment: {text!r}") from exc
    code = str(msa(1))
    control_id = str(msa(2))
    reason = str(msa(3)) if len(msa) > 3 else ""
    result = MllpAck(code, control_id, reason, text)
    if control_id != sent_id:
        raise LisSendError(
            f"the LIS at {where} acknowledged message {control_id!r}, not {sent_id!r}"
        )
    if code not in ("AA", "CA"):
        raise LisSendError(
            f"the LIS at {where} rejected message {sent_id} ({code}"
            + (f": {reason}" if reason else "")
            + ")"
        )
    return result


def _read_mllp(sock: socket.socket, where: str, timeout_s: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while MLLP_END not in data:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = sock.recv(4096)
        if not chunk:
            raise LisSendError(f"the LIS at {where} closed the connection without an ACK")
        data += chunk
    start = data.find(MLLP_START)
    return data[start + 1 if start >= 0 else 0 : data.index(MLLP_END)]


# -- helpers for callers ------------------------------------------------------------------------
def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port), with an error a user can act on."""
    m = re.fullmatch(r"\[?([^\]]+?)\]?:(\d{1,5})", text.strip())
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise HemocompatError(f"{text!r} is not HOST:PORT (for example 127.0.0.1:2575)")
    return m.group(1), int(m.group(2))
