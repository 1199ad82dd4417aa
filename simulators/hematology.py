"""Simulated hematology analyzer: sends complete blood counts (CBC) of loop sample tubes to
the host over ASTM E1381/E1394, on a real pty and/or TCP port (see docs/protocols/astm.md).

The analyzer "has measured" a list of :class:`CbcResult` (sample ID and analyte values:
PLT, WBC, RBC, HGB, …). It sends one message (``H P O R… L``) per sample, each in its own
transfer: all at once when a host connects (``autosend``), one every ``interval_s`` seconds,
when :meth:`HematologySimulator.transmit` is called, or in answer to a host query (``Q``
record). It plays the instrument side of LIS01-A2 itself — it uses only the pure codecs of
:mod:`drivers.wire.astm` — and checks the host's side: a frame with a bad checksum must be
NAKed, a good one ACKed; anything else is recorded in ``protocol_errors``.

Faults on the analyzer's side (:class:`AstmFaultPlan`, spec such as
``corrupt@2,corrupt=0.05,contention@1,busy@2,noack@3,disconnect@7``):

- ``corrupt=P``: each frame it sends has a wrong checksum with probability P;
- ``corrupt@N``: the Nth frame transmission (retransmissions count) has a wrong checksum;
- ``contention@N``: it answers the host's Nth ENQ with ENQ (both want to send), then sends
  its own transfer first, as the instrument has priority;
- ``busy@N``: it answers the host's Nth ENQ with NAK (busy);
- ``noack@N``: it does not answer the Nth frame the host sends (the host's ACK timer runs out);
- ``disconnect@N``: it drops the connection right after its Nth frame transmission.

A transfer that fails (six NAKs of one frame, no ACK in time, connection dropped) is sent
again from its start after ``retry_after_abort_s``; the host must store every result once.
The data are SIMULATED: the header's processing ID is ``D``.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.wire import astm as wire
from simulators.endpoints import EndpointUnavailable, PtyEndpoint, TcpEndpoint
from simulators.standalone import serve_until_stopped

__all__ = [
    "ANALYTES",
    "AstmFaultPlan",
    "CbcResult",
    "HematologySimulator",
    "InstrumentTimings",
    "SimStats",
    "cbc_message",
    "default_results",
    "load_results_csv",
    "run_standalone",
]

log = logging.getLogger("hemocompat.sim.hematology")

#: Analyte code → (unit as sent, name, reference range). Units in UCUM (10*9/L = 10^9/L).
ANALYTES: dict[str, tuple[str, str, str]] = {
    "WBC": ("10*9/L", "White blood cells", "4.0-10.0"),
    "RBC": ("10*12/L", "Red blood cells", "4.2-5.9"),
    "HGB": ("g/L", "Hemoglobin", "120-170"),
    "HCT": ("%", "Hematocrit", "37-50"),
    "PLT": ("10*9/L", "Platelets", "150-400"),
    "MPV": ("fL", "Mean platelet volume", "7.5-11.5"),
}

SENDER = ("HEMA-SIM", "1.0", "SIM-0001")
_TS = "%Y%m%d%H%M%S"


@dataclass(frozen=True, slots=True)
class CbcResult:
    """One measured sample: its tube ID and analyte values (units from :data:`ANALYTES`)."""

    sample_id: str
    values: Mapping[str, float]
    completed_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.sample_id or any(c in self.sample_id for c in "|\\^&\r\n"):
            raise ValueError(f"sample ID {self.sample_id!r} is empty or holds a delimiter")
        for code, value in self.values.items():
            if code not in ANALYTES:
                raise ValueError(f"unknown analyte {code!r}; known: {', '.join(ANALYTES)}")
            if not math.isfinite(value):
                raise ValueError(f"{self.sample_id} {code}: value {value!r} is not finite")


def _flag(code: str, value: float) -> str:
    low, high = (float(x) for x in ANALYTES[code][2].split("-"))
    return "L" if value < low else "H" if value > high else "N"


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"


def cbc_message(result: CbcResult, message_id: str, sent_at: datetime) -> list[str]:
    """The E1394 record texts of one sample's results (H, P, O, R per analyte, L)."""
    done = (result.completed_at or sent_at).strftime(_TS)
    codes = list(result.values)
    records: list[wire.AstmRecord] = [
        wire.HeaderRecord(
            message_id=message_id,
            sender=SENDER,
            processing_id="D",
            timestamp=sent_at.strftime(_TS),
        ),
        wire.PatientRecord(1),
        wire.OrderRecord(
            1,
            specimen_id=result.sample_id,
            test_ids=tuple(("", "", "", c) for c in codes),
            specimen_type="WB",
            report_type="F",
        ),
    ]
    for seq, code in enumerate(codes, start=1):
        value = float(result.values[code])
        unit, _name, ref = ANALYTES[code]
        records.append(
            wire.ResultRecord(
                seq,
                test_id=("", "", "", code),
                value=_number(value),
                units=unit,
                reference_range=ref,
                flags=_flag(code, value),
                status="F",
                completed_at=done,
                instrument=SENDER[2],
            )
        )
    records.append(wire.TerminatorRecord(1, "N"))
    return wire.encode_message(records)


def default_results(count: int = 6, seed: int = 0, first_tube: int = 1) -> list[CbcResult]:
    """Plausible whole-blood CBCs for tubes ``S-000001``… (platelets falling over time)."""
    rng = random.Random(seed)
    out = []
    for k in range(count):
        plt = max(5.0, 260.0 * (1.0 - 0.12 * k) + rng.gauss(0, 8))
        out.append(
            CbcResult(
                f"S-{first_tube + k:06d}",
                {
                    "WBC": round(rng.uniform(4.5, 8.5), 1),
                    "RBC": round(rng.uniform(4.2, 5.2), 2),
                    "HGB": round(rng.uniform(125, 160)),
                    "PLT": round(plt),
                },
            )
        )
    return out


def load_results_csv(path: Path) -> list[CbcResult]:
    """Results from a CSV file: a ``sample_id`` column and one column per analyte (PLT, WBC,
    RBC, HGB, HCT, MPV); empty cells are left out. Errors name the file and line."""
    out: list[CbcResult] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "sample_id" not in columns:
            raise ValueError(f"{path}: the header needs a sample_id column, got {columns}")
        unknown = [c for c in columns if c != "sample_id" and c.upper() not in ANALYTES]
        if unknown:
            raise ValueError(f"{path}: unknown analyte columns {unknown}; known: {list(ANALYTES)}")
        for line, row in enumerate(reader, start=2):
            values: dict[str, float] = {}
            for key, text in row.items():
                if key is None or key.strip() == "sample_id" or not (text or "").strip():
                    continue
                try:
                    values[key.strip().upper()] = float(text)
                except ValueError:
                    raise ValueError(f"{path}:{line}: {key} {text!r} is not a number") from None
            try:
                out.append(CbcResult((row.get("sample_id") or "").strip(), values))
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    return out


# -- faults and timings ------------------------------------------------------------------------
_FAULT_SYNTAX = (
    "accepted parts: corrupt=P (0..1), corrupt@N, contention@N, busy@N, noack@N, disconnect@N "
    "(N counts frames sent, host ENQs or host frames from 1)"
)
_AT = re.compile(r"^(corrupt|contention|busy|noack|disconnect)@(\d+)$")


@dataclass(frozen=True, slots=True)
class AstmFaultPlan:
    """Faults the analyzer injects; see the module docstring for the spec syntax."""

    corrupt: float = 0.0
    corrupt_frames: frozenset[int] = frozenset()
    contention_enqs: frozenset[int] = frozenset()
    busy_enqs: frozenset[int] = frozenset()
    noack_frames: frozenset[int] = frozenset()
    disconnect_frames: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 <= self.corrupt <= 1.0:
            raise ValueError(f"corrupt={self.corrupt!r} must be between 0 and 1")

    @property
    def is_empty(self) -> bool:
        return self == AstmFaultPlan()

    @classmethod
    def parse(cls, spec: str) -> AstmFaultPlan:
        """Parse ``corrupt@2,contention@1,…``; ValueError names the bad part and the syntax."""
        sets: dict[str, set[int]] = {
            "corrupt": set(),
            "contention": set(),
            "busy": set(),
            "noack": set(),
            "disconnect": set(),
        }
        corrupt = 0.0
        for raw in spec.split(","):
            part = raw.strip().lower()
            if not part or part == "none":
                continue
            m = _AT.match(part)
            if m and int(m.group(2)) >= 1:
                sets[m.group(1)].add(int(m.group(2)))
                continue
            name, eq, value = part.partition("=")
            if name == "corrupt" and eq:
                try:
                    corrupt = float(value)
                except ValueError:
                    raise ValueError(
                        f"bad fault spec part {raw.strip()!r}; {_FAULT_SYNTAX}"
                    ) from None
                if 0.0 <= corrupt <= 1.0:
                    continue
            raise ValueError(f"bad fault spec part {raw.strip()!r}; {_FAULT_SYNTAX}")
        return cls(
            corrupt=corrupt,
            corrupt_frames=frozenset(sets["corrupt"]),
            contention_enqs=frozenset(sets["contention"]),
            busy_enqs=frozenset(sets["busy"]),
            noack_frames=frozenset(sets["noack"]),
            disconnect_frames=frozenset(sets["disconnect"]),
        )


@dataclass(frozen=True, slots=True)
class InstrumentTimings:
    """The analyzer's LIS01-A2 timers (the standard's by default) and retry limits."""

    establish_s: float = 15.0
    ack_s: float = 15.0
    frame_s: float = 30.0
    contention_wait_s: float = 1.0
    busy_retry_s: float = 10.0
    retry_after_abort_s: float = 10.0
    max_retransmissions: int = 6

    def scaled(self, factor: float) -> InstrumentTimings:
        """Every timer multiplied by ``factor`` (for fast tests)."""
        return replace(
            self,
            establish_s=self.establish_s * factor,
            ack_s=self.ack_s * factor,
            frame_s=self.frame_s * factor,
            contention_wait_s=self.contention_wait_s * factor,
            busy_retry_s=self.busy_retry_s * factor,
            retry_after_abort_s=self.retry_after_abort_s * factor,
        )


@dataclass(slots=True)
class SimStats:
    """What the analyzer did on the link."""

    frames_sent: int = 0
    retransmissions: int = 0
    corrupted_frames: int = 0
    acks_received: int = 0
    naks_received: int = 0
    transfers_started: int = 0
    transfers_completed: int = 0
    transfers_aborted: int = 0
    contentions: int = 0
    busy_replies_received: int = 0
    host_enqs: int = 0
    host_frames: int = 0
    host_frames_ignored: int = 0
    naks_sent: int = 0
    disconnects: int = 0


@dataclass(slots=True)
class _Outgoing:
    records: list[str]
    sample_ids: tuple[str, ...]
    not_before: float = 0.0
    attempts: int = 0


class _Abort(Exception):  # noqa: N818 - internal control flow, never escapes the thread
    """The current transfer failed; the message is sent again later."""


@dataclass(slots=True)
class _Rx:
    buffer: bytes = b""
    queue: deque[bytes] = field(default_factory=deque)


class HematologySimulator:
    """A hematology analyzer (SIMULATED) serving ASTM on a pty and/or TCP port from a thread."""

    _POLL_S = 0.01
    _SETTLE_S = 0.1

    def __init__(
        self,
        results: Sequence[CbcResult] = (),
        *,
        faults: AstmFaultPlan | str | None = None,
        timings: InstrumentTimings | None = None,
        autosend: bool = True,
        interval_s: float | None = None,
        pty: bool = True,
        tcp: bool = True,
        tcp_port: int = 0,
        seed: int = 0,
        max_frame_text: int = wire.MAX_FRAME_TEXT,
        clock_start: datetime | None = None,
    ) -> None:
        if not (pty or tcp):
            raise ValueError("the simulator needs at least one endpoint: pty=True or tcp=True")
        if interval_s is not None and not interval_s > 0:
            raise ValueError(f"interval_s must be > 0 s, got {interval_s!r}")
        plan = AstmFaultPlan.parse(faults) if isinstance(faults, str) else faults
        self.faults = plan or AstmFaultPlan()
        self.timings = timings or InstrumentTimings()
        self.autosend = autosend
        self.interval_s = interval_s
        self.max_frame_text = max_frame_text
        start = clock_start or datetime.now(UTC).replace(microsecond=0, tzinfo=None)
        self._start_time = start
        self.results: dict[str, CbcResult] = {}
        for k, r in enumerate(results):
            stamped = r if r.completed_at else replace(r, completed_at=start + timedelta(minutes=k))
            self.results[r.sample_id] = stamped
        self.stats = SimStats()
        #: Problems with the host's side of the protocol (ACK of a corrupt frame, …).
        self.protocol_errors: list[str] = []
        #: Sample IDs of every message whose transfer completed, in order (repeats included).
        self.delivered: list[str] = []
        #: Record texts of every transfer received from the host.
        self.received: list[list[str]] = []
        self.transcript: deque[tuple[str, bytes]] = deque(maxlen=10_000)
        self.error: BaseException | None = None
        self._rng = random.Random(f"hematology-{seed}")
        self._want_pty, self._want_tcp, self._tcp_port_request = pty, tcp, tcp_port
        self._pty: PtyEndpoint | None = None
        self._tcp: TcpEndpoint | None = None
        self._ep: PtyEndpoint | TcpEndpoint | None = None
        self._rx = _Rx()
        self._lock = threading.Lock()
        self._outbox: deque[_Outgoing] = deque()
        self._busy = False
        self._message_counter = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._autosent = False
        self._client_since: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> HematologySimulator:
        """Open the endpoints and start serving; returns self."""
        if self._thread is not None:
            raise RuntimeError("the simulator was already started; create a new one")
        try:
            if self._want_pty:
                try:
                    self._pty = PtyEndpoint()
                except EndpointUnavailable as exc:
                    if not self._want_tcp:
                        raise
                    log.info("no pty endpoint: %s", exc)
            if self._want_tcp:
                self._tcp = TcpEndpoint("127.0.0.1", self._tcp_port_request)
        except BaseException:
            self._close_endpoints()
            raise
        self._thread = threading.Thread(target=self._run, name="hematology-simulator", daemon=True)
        self._thread.start()
        log.info(
            "hematology analyzer simulator (SIMULATED) serving on %s",
            ", ".join(ep.description for ep in self._endpoints()),
        )
        return self

    def stop(self) -> None:
        """Stop serving, join the thread and close the endpoints (idempotent)."""
        self._stop.set()
        self._close_endpoints()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                log.error("hematology simulator thread did not stop within 5 s")

    def __enter__(self) -> HematologySimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _endpoints(self) -> list[PtyEndpoint | TcpEndpoint]:
        return [ep for ep in (self._pty, self._tcp) if ep is not None]

    def _close_endpoints(self) -> None:
        for ep in self._endpoints():
            ep.close()

    @property
    def pty_path(self) -> str | None:
        return self._pty.path if self._pty is not None else None

    @property
    def tcp_port(self) -> int | None:
        return self._tcp.port if self._tcp is not None else None

    @property
    def url(self) -> str:
        """What a host opens: the pty path if there is one, else ``socket://127.0.0.1:PORT``."""
        if self._pty is not None:
            return self._pty.path
        if self._tcp is not None:
            return self._tcp.url
        raise RuntimeError("the simulator is not started; call start() first")

    # -- what to send --------------------------------------------------------------------------
    def transmit(
        self, results: Iterable[CbcResult | str] | None = None, *, delay_s: float = 0.0
    ) -> None:
        """Queue results to send (by result or sample ID; None: every known result), due in
        ``delay_s`` seconds (then one per ``interval_s``). A contention sends the oldest
        queued message at once, due or not: the analyzer has priority."""
        chosen: list[CbcResult] = []
        for item in self.results.values() if results is None else results:
            if isinstance(item, str):
                if item not in self.results:
                    raise KeyError(f"no result for sample {item!r}; known: {list(self.results)}")
                chosen.append(self.results[item])
            else:
                n = len(self.results)
                stamped = (
                    item
                    if item.completed_at
                    else replace(item, completed_at=self._start_time + timedelta(minutes=n))
                )
                self.results.setdefault(item.sample_id, stamped)
                chosen.append(self.results[item.sample_id])
        now = time.monotonic() + delay_s
        with self._lock:
            for k, result in enumerate(chosen):
                delay = k * self.interval_s if self.interval_s else 0.0
                self._outbox.append(self._message(result, now + delay))

    def _message(self, result: CbcResult, not_before: float) -> _Outgoing:
        self._message_counter += 1
        sent_at = self._start_time + timedelta(seconds=self._message_counter)
        records = cbc_message(result, f"M{self._message_counter:05d}", sent_at)
        return _Outgoing(records, (result.sample_id,), not_before)

    @property
    def pending(self) -> int:
        """Messages queued or being sent."""
        with self._lock:
            return len(self._outbox) + (1 if self._busy else 0)

    def wait_until_idle(self, timeout: float) -> bool:
        """Wait until every queued message has been delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending == 0 and (self._autosent or not self.autosend):
                return True
            if self.error is not None:
                return False
            time.sleep(0.01)
        return False

    # -- serving -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:
            self.error = exc
            log.exception("hematology simulator stopped by an error")

    def _client_endpoint(self) -> PtyEndpoint | TcpEndpoint | None:
        if self._ep is not None and self._ep.has_client:
            return self._ep
        for ep in self._endpoints():
            if ep.has_client:
                return ep
        return None

    def _serve(self) -> None:
        while not self._stop.is_set():
            ep = self._client_endpoint()
            if ep is None:
                self._client_since = None
                self._stop.wait(self._POLL_S)
                continue
            if ep is not self._ep:
                self._ep = ep
                self._rx = _Rx()
            now = time.monotonic()
            if self._client_since is None:
                self._client_since = now
            if self.autosend and not self._autosent:
                self._autosent = True
                self.transmit()
            # A host that has just opened the port may still flush its input buffer (pyserial
            # does): let it settle before the first ENQ.
            settled = now - self._client_since >= self._SETTLE_S
            out = self._next_outgoing() if settled else None
            if out is not None:
                self._send(out)
                continue
            token = self._next_token(time.monotonic() + self._POLL_S)
            if token == wire.ENQ:
                self._answer_host_enq()

    def _next_outgoing(self) -> _Outgoing | None:
        now = time.monotonic()
        with self._lock:
            for out in self._outbox:
                if out.not_before <= now:
                    self._outbox.remove(out)
                    self._busy = True
                    return out
        return None

    # -- I/O -------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        assert self._ep is not None
        self.transcript.append((">", data))
        self._ep.write(data)

    def _next_token(self, deadline: float) -> bytes | None:
        rx = self._rx
        while not rx.queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set() or self._ep is None:
                return None
            data = self._ep.read(min(remaining, 0.02))
            if data:
                tokens, rx.buffer = wire.split_stream(rx.buffer + data)
                rx.queue.extend(tokens)
        token = rx.queue.popleft()
        self.transcript.append(("<", token))
        return token

    def _reply(self, timeout: float, wanted: tuple[bytes, ...], any_is_nak: bool) -> bytes | None:
        deadline = time.monotonic() + timeout
        while True:
            token = self._next_token(deadline)
            if token is None or token in wanted:
                return token
            if any_is_nak:
                return wire.NAK

    # -- sending (the analyzer's results) --------------------------------------------------------
    def _send(self, out: _Outgoing) -> None:
        try:
            self._establish()
            frames = wire.frames_for_records(out.records, max_text=self.max_frame_text)
            for frame in frames:
                self._send_frame(frame)
            self._write(wire.EOT)
        except _Abort as exc:
            self.stats.transfers_aborted += 1
            out.attempts += 1
            out.not_before = time.monotonic() + self.timings.retry_after_abort_s
            log.info("transfer of %s aborted (%s); sending it again later", out.sample_ids, exc)
            with self._lock:
                self._outbox.appendleft(out)
                self._busy = False
            return
        self.stats.transfers_completed += 1
        with self._lock:
            self.delivered.extend(out.sample_ids)
            self._busy = False

    def _establish(self) -> None:
        t = self.timings
        self.stats.transfers_started += 1
        while not self._stop.is_set():
            self._write(wire.ENQ)
            reply = self._reply(t.establish_s, (wire.ACK, wire.NAK, wire.ENQ), False)
            if reply == wire.ACK:
                return
            if reply == wire.ENQ:
                # Both sides want to send: the instrument has priority; wait ≥ 1 s, ENQ again.
                self.stats.contentions += 1
                self._stop.wait(t.contention_wait_s)
                continue
            if reply == wire.NAK:
                self.stats.busy_replies_received += 1
                self._stop.wait(t.busy_retry_s)
                continue
            self._write(wire.EOT)
            raise _Abort(f"no reply to ENQ within {t.establish_s:g} s")
        raise _Abort("simulator stopping")

    def _send_frame(self, frame: bytes) -> None:
        t = self.timings
        retransmissions = 0
        while True:
            if self._stop.is_set():
                raise _Abort("simulator stopping")
            self.stats.frames_sent += 1
            n = self.stats.frames_sent
            corrupt = n in self.faults.corrupt_frames or (
                self.faults.corrupt > 0 and self._rng.random() < self.faults.corrupt
            )
            self._write(_corrupt_checksum(frame) if corrupt else frame)
            if corrupt:
                self.stats.corrupted_frames += 1
            if n in self.faults.disconnect_frames:
                assert self._ep is not None
                self.stats.disconnects += 1
                log.info("fault: dropping the connection after frame transmission %d", n)
                self._ep.drop_client()
                self._rx = _Rx()
                self._client_since = None
                raise _Abort("connection dropped (fault injection)")
            reply = self._reply(t.ack_s, (wire.ACK, wire.NAK, wire.EOT), True)
            if reply in (wire.ACK, wire.EOT):
                self.stats.acks_received += 1
                if corrupt:
                    self.protocol_errors.append(
                        f"the host acknowledged frame transmission {n} whose checksum was wrong"
                    )
                return
            if reply is None:
                self._write(wire.EOT)
                raise _Abort(f"no ACK within {t.ack_s:g} s")
            self.stats.naks_received += 1
            if not corrupt:
                self.protocol_errors.append(
                    f"the host NAKed frame transmission {n}, a valid frame {frame!r}"
                )
            if retransmissions >= t.max_retransmissions:
                self._write(wire.EOT)
                raise _Abort(f"frame NAKed {retransmissions + 1} times")
            retransmissions += 1
            self.stats.retransmissions += 1

    # -- receiving (queries and other messages from the host) --------------------------------
    def _answer_host_enq(self) -> None:
        self.stats.host_enqs += 1
        n = self.stats.host_enqs
        if n in self.faults.busy_enqs:
            self._write(wire.NAK)
            return
        if n in self.faults.contention_enqs:
            log.info("fault: answering the host's ENQ %d with ENQ (contention)", n)
            self._write(wire.ENQ)
            self.stats.contentions += 1
            self._stop.wait(self.timings.contention_wait_s)
            with self._lock:
                out = self._outbox.popleft() if self._outbox else None
                self._busy = out is not None
            if out is not None:
                self._send(out)
            return
        self._write(wire.ACK)
        self._receive_transfer()

    def _receive_transfer(self) -> None:
        assembler = wire.FrameAssembler()
        records: list[str] = []
        expected, last = 1, -1
        while True:
            token = self._next_token(time.monotonic() + self.timings.frame_s)
            if token is None or token == wire.EOT:
                break
            if token in (wire.ACK, wire.NAK, wire.ENQ):
                continue
            self.stats.host_frames += 1
            if self.stats.host_frames in self.faults.noack_frames:
                self.stats.host_frames_ignored += 1
                log.info("fault: not answering host frame %d", self.stats.host_frames)
                continue
            try:
                frame = wire.parse_frame(token)
            except wire.FrameError:
                self.stats.naks_sent += 1
                self._write(wire.NAK)
                continue
            if frame.number == expected:
                self._write(wire.ACK)
                records += assembler.add(frame)
                last, expected = expected, wire.next_frame_number(expected)
            elif frame.number == last:
                self._write(wire.ACK)
            else:
                self.stats.naks_sent += 1
                self._write(wire.NAK)
        self.received.append(records)
        self._answer_queries(records)

    def _answer_queries(self, records: list[str]) -> None:
        try:
            decoded = wire.decode_message(records)
        except wire.RecordError as exc:
            log.warning("cannot decode the host's message: %s", exc)
            return
        wanted: list[str] = []
        for record in decoded:
            if isinstance(record, wire.QueryRecord) and record.status != "A":
                ids = record.specimen_ids
                wanted += list(self.results) if "ALL" in ids else list(ids)
        if not wanted:
            return
        known = [self.results[s] for s in dict.fromkeys(wanted) if s in self.results]
        self.transmit(known)
        unknown = [s for s in dict.fromkeys(wanted) if s not in self.results and s != "ALL"]
        if unknown:
            self._message_counter += 1
            header = wire.HeaderRecord(message_id=f"M{self._message_counter:05d}", sender=SENDER)
            texts = wire.encode_message([header, wire.TerminatorRecord(1, "I")])
            with self._lock:
                self._outbox.append(_Outgoing(texts, ()))


def _corrupt_checksum(frame: bytes) -> bytes:
    """The frame with a wrong (but well-formed) checksum."""
    good = int(frame[-4:-2], 16)
    return frame[:-4] + b"%02X" % (good ^ 0x5A) + frame[-2:]


def run_standalone(
    results: Sequence[CbcResult] | None = None,
    *,
    faults: AstmFaultPlan | str | None = None,
    interval_s: float | None = None,
    tcp_port: int = 0,
    out: Callable[[str], None] = print,
    until: threading.Event | None = None,
) -> None:
    """Run the analyzer until Ctrl+C (or ``until`` is set), printing where it listens."""
    chosen = list(results) if results is not None else default_results()
    sim = HematologySimulator(chosen, faults=faults, interval_s=interval_s, tcp_port=tcp_port)
    with sim:
        out("Hematology analyzer simulator running. Its results are SIMULATED, not measured.")
        if sim.pty_path is not None:
            out(f"  serial port (pty): {sim.pty_path}")
        out(f"  TCP: socket://127.0.0.1:{sim.tcp_port}")
        for r in chosen:
            values = ", ".join(f"{k} {_number(v)}" for k, v in r.values.items())
            out(f"  {r.sample_id}: {values}")
        out("  the results are sent when a host connects (ASTM E1381/E1394)")
        if not sim.faults.is_empty:
            out(f"  fault injection: {sim.faults}")
        serve_until_stopped(sim, "analyzer", out, until)
