"""What every run shares: its record, threads, storage writer, status, observer and outcome.

Threads of a run: the engine thread (plan steps, against a Clock), one reader thread per
streaming instrument connection (inside its driver: parse frames, push them here), and the
storage writer (batches of at most 1 s of device time). Nothing here touches Qt; views poll
:class:`LiveTrace` buffers and receive observer callbacks on worker threads.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.transport import TransportError
from instrument.clock import Clock
from instrument.errors import HemocompatError, RunError
from instrument.live import LiveTrace
from instrument.plan import Step
from instrument.station import Station
from instrument.storage import SampleRow, Store
from protocols.model import ChannelSpec

log = logging.getLogger("hemocompat.engine")

#: The writer stores pending samples at least this often (wall seconds).
FLUSH_INTERVAL_S = 0.05
#: A stored batch never spans more than this much device time.
MAX_BATCH_MS = 1000
#: Wall seconds without any data from a running instrument before the run fails.
STALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunOptions:
    operator: str = "unknown"
    lot: str | None = None
    donor: str | None = None
    seed: int = 0
    speed: float = 1.0
    faults: str | None = None
    #: Acknowledge operator prompts at once (simulation, CI).
    auto_ack: bool = False


@dataclass
class ChannelResult:
    channel: int
    label: str
    contents: str
    lot_id: str | None
    dose_cells_per_ml: float
    donor_id: str | None
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class RunOutcome:
    run_id: int
    status: str
    detail: str
    simulated: bool
    protocol: dict[str, Any]
    channels: list[ChannelResult]
    link_stats: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "detail": self.detail,
            "simulated": self.simulated,
            "protocol": self.protocol,
            "channels": [
                {
                    "channel": c.channel,
                    "contents": {
                        "kind": c.contents,
                        "label": c.label,
                        "lot_id": c.lot_id,
                        "dose_cells_per_ml": c.dose_cells_per_ml,
                        "donor_id": c.donor_id,
                    },
                    "parameters": c.parameters,
                    "notes": c.notes,
                }
                for c in self.channels
            ],
            "link_stats": self.link_stats,
            **self.extra,
        }


@dataclass(frozen=True)
class Prompt:
    """A manual step the bench must do and acknowledge (draw a sample, place a cup)."""

    id: int
    message: str
    due_t_s: float
    overdue_after_s: float
    tube_id: str | None = None


class RunObserver:
    """Callbacks from a run (called on engine/writer threads; keep them short)."""

    def step_started(self, index: int, step: Step) -> None:
        """A plan step begins."""

    def progress(self, fraction: float, elapsed_s: float) -> None:
        """Acquisition progress in protocol time."""

    def event(self, kind: str, message: str, channel: int | None) -> None:
        """Something worth showing happened (CT reached, link trouble, device event)."""

    def prompt(self, prompt: Prompt) -> None:
        """The operator must do something and acknowledge it (``engine.acknowledge``)."""


@dataclass
class Connection:
    role: str
    driver: Any
    resource: str
    simulated: bool
    simulator: Any = None
    streaming: bool = True


class RunBase:
    """Record, threads and storage of one run; subclasses supply the plan and the analysis."""

    #: The instrument role whose samples this run streams into ``live``.
    source = "tem"
    quantity = ("amplitude", "mm")

    def __init__(
        self,
        protocol: Any,
        station: Station,
        store: Store,
        options: RunOptions | None,
        observer: RunObserver | None,
    ) -> None:
        self.protocol = protocol
        self.station = station
        self.store = store
        self.options = options or RunOptions()
        self.observer = observer or RunObserver()
        try:
            self.channels: tuple[ChannelSpec, ...] = protocol.resolved_channels(
                lot=self.options.lot, donor=self.options.donor
            )
        except ValueError as exc:
            raise RunError(f"{protocol.source}: {exc}") from None
        self.plan: list[Step] = []
        self.clock = Clock(self.options.speed)
        self.live: dict[int, LiveTrace] = {c.channel: LiveTrace() for c in self.channels}
        self.run_id: int | None = None
        self.status = "created"
        self.detail = ""
        self.connections: dict[str, Connection] = {}
        self.samples_stored = 0
        self._cancel = threading.Event()
        self._abort_reason = ""
        self._thread: threading.Thread | None = None
        self._outcome: RunOutcome | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[str, int, int, int, float]] = []
        self._pending_events: list[
            tuple[str, str, str, int | None, int | None, dict[str, Any]]
        ] = []
        self._latest_t_ms: dict[int, int] = {}
        self._last_data_wall = time.monotonic()
        self._writer_stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None

    # -- public API -----------------------------------------------------------------------
    @property
    def simulated(self) -> bool:
        return any(c.simulated for c in self.connections.values()) or any(
            s.simulated for s in self.station.instruments.values()
        )

    def start(self) -> None:
        """Run the plan on the engine thread; returns at once."""
        if self._thread is not None:
            raise RunError("this run has already been started")
        self._thread = threading.Thread(target=self._run_safely, name="run-engine", daemon=True)
        self._thread.start()

    def run(self) -> RunOutcome:
        """Run the plan on the calling thread until it ends."""
        self._run_safely()
        assert self._outcome is not None
        return self._outcome

    def wait(self, timeout: float | None = None) -> RunOutcome | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._outcome

    def abort(self, reason: str = "aborted by the operator") -> None:
        """Stop at once: instruments are made safe, data so far is kept, status 'aborted'."""
        self._abort_reason = reason
        self._cancel.set()

    @property
    def finished(self) -> bool:
        return self._outcome is not None

    # -- hooks for subclasses -------------------------------------------------------------------
    def _execute(self, step: Step) -> None:
        raise NotImplementedError

    def _analyse(self) -> list[ChannelResult]:
        raise NotImplementedError

    def _make_safe(self) -> None:
        """Leave instruments safe after the run or an abort (never raises)."""

    def _on_batch(self, rows: Sequence[tuple[str, int, int, int, float]]) -> None:
        """Called on the writer thread with every stored batch (live detection)."""

    def _outcome_extra(self) -> dict[str, Any]:
        return {}

    # -- engine thread ----------------------------------------------------------------------
    def _run_safely(self) -> None:
        simulated = any(s.simulated for s in self.station.instruments.values())
        self.run_id = self.store.create_run(
            assay=self.protocol.assay,
            protocol_id=self.protocol.id,
            protocol_version=self.protocol.version,
            protocol_title=self.protocol.title,
            protocol_source=self.protocol.source,
            protocol_text=self.protocol.text,
            protocol_sha256=self.protocol.sha256,
            style=getattr(self.protocol, "style", self.protocol.assay),
            operator=self.options.operator,
            simulated=simulated,
            duration_s=self.protocol.duration_s,
            seed=self.options.seed if simulated else None,
            speed=self.options.speed if simulated else None,
        )
        quantity, unit = self.quantity
        self.store.add_channels(
            self.run_id,
            [
                {
                    "source": self.source,
                    "channel": c.channel,
                    "contents": c.contents,
                    "lot_id": c.lot_id if c.contents == "lot" else None,
                    "dose_cells_per_ml": c.dose_cells_per_ml,
                    "donor_id": c.donor_id,
                    "label": c.label,
                    "quantity": quantity,
                    "unit": unit,
                }
                for c in self.channels
            ],
        )
        self._set_status("running")
        results: list[ChannelResult] = []
        try:
            self._writer = threading.Thread(
                target=self._writer_loop, name="run-writer", daemon=True
            )
            self._writer.start()
            for index, step in enumerate(self.plan):
                if self._cancel.is_set():
                    break
                self.observer.step_started(index, step)
                log.info("step %d: %s", index + 1, step.description)
                if step.kind == "analyse":
                    self._stop_acquisition()
                    results = self._analyse()
                    self._set_status("completed")
                else:
                    self._execute(step)
            if self._cancel.is_set():
                self._set_status("aborted", self._abort_reason)
        except (HemocompatError, TransportError) as exc:
            self._set_status("failed", str(exc))
        except Exception as exc:  # keep the data and say what happened
            log.exception("run %s failed", self.run_id)
            self._set_status("failed", f"internal error: {exc.__class__.__name__}: {exc}")
        finally:
            self._make_safe()
            self._stop_acquisition()
            self._close_connections()
            if self._write_error is not None and self.status == "completed":
                self._set_status("failed", f"storage failed: {self._write_error}")
        stats: dict[str, int] = {}
        for conn in self.connections.values():
            if hasattr(conn.driver, "stats"):
                stats.update({f"{conn.role}.{k}": v for k, v in vars(conn.driver.stats).items()})
        self._outcome = RunOutcome(
            run_id=self.run_id,
            status=self.status,
            detail=self.detail,
            simulated=self.simulated,
            protocol={
                "id": self.protocol.id,
                "version": self.protocol.version,
                "title": self.protocol.title,
                "sha256": self.protocol.sha256,
                "source": self.protocol.source,
            },
            channels=results or [self._channel_result(s, {}, {}) for s in self.channels],
            link_stats=stats,
            extra=self._outcome_extra(),
        )

    def _set_status(self, status: str, detail: str = "") -> None:
        if self.status in ("failed", "aborted") and status == "completed":
            return
        self.status, self.detail = status, detail
        assert self.run_id is not None
        self.store.set_status(self.run_id, status, detail)
        if status != "running":
            self.observer.event("status", f"run {status}" + (f": {detail}" if detail else ""), None)

    def _register_connection(self, conn: Connection, identity: Any) -> None:
        self.connections[conn.role] = conn
        assert self.run_id is not None
        self.store.add_instrument(
            self.run_id,
            conn.role,
            manufacturer=identity.manufacturer,
            model=identity.model,
            serial=identity.serial,
            firmware=identity.firmware,
            resource=conn.resource,
            simulated=conn.simulated,
        )
        self._queue_event(
            conn.role,
            "connected",
            f"{identity.model} {identity.serial} (firmware {identity.firmware}) on "
            f"{conn.resource}" + (" [SIMULATED]" if conn.simulated else ""),
            None,
            None,
            {},
        )

    def _wait_for_data(
        self, target_ms: int, channels: Sequence[int], progress_of: Any = None
    ) -> None:
        """Block until every channel's device time reaches ``target_ms`` (or abort/stall)."""
        self._last_data_wall = time.monotonic()
        started = time.monotonic()
        speed = self.clock.speed
        wall_limit = (
            self.clock.wall_seconds(target_ms / 1000) * 3 + 60 if math.isfinite(speed) else None
        )
        while not self._cancel.is_set():
            latest = [self._latest_t_ms.get(ch, -1) for ch in channels]
            done_ms = min(latest)
            self.observer.progress(max(0.0, min(1.0, done_ms / target_ms)), max(done_ms, 0) / 1e3)
            if progress_of is not None:
                progress_of(done_ms)
            if done_ms >= target_ms:
                return
            if self._write_error is not None:
                raise RunError(f"storing samples failed: {self._write_error}")
            now = time.monotonic()
            if now - self._last_data_wall > STALL_TIMEOUT_S:
                raise RunError(
                    f"no data from the {self.source} instrument for {STALL_TIMEOUT_S:g} s "
                    f"(channels at {', '.join(f'{t / 1000:.1f} s' for t in latest)}); "
                    "check the cable and the instrument; data so far is stored"
                )
            if wall_limit is not None and now - started > wall_limit:
                raise RunError("acquisition took far longer than the protocol duration")
            time.sleep(0.02)

    def _stop_acquisition(self) -> None:
        for conn in self.connections.values():
            if conn.streaming:
                conn.driver.stop_streaming()
        if self._writer is not None:
            self._writer_stop.set()
            self._writer.join()
            self._writer = None

    def _close_connections(self) -> None:
        for conn in self.connections.values():
            try:
                conn.driver.close()
            finally:
                if conn.simulator is not None:
                    conn.simulator.stop()

    # -- reader threads -----------------------------------------------------------------------
    def _on_sample(self, source: str, seq: int, channel: int, t_ms: int, value: float) -> None:
        with self._lock:
            self._pending.append((source, seq, channel, t_ms, value))
        if t_ms > self._latest_t_ms.get(channel, -1):
            self._latest_t_ms[channel] = t_ms
        self._last_data_wall = time.monotonic()
        trace = self.live.get(channel)
        if trace is not None:
            trace.append(t_ms / 1000.0, value)

    def _queue_event(
        self,
        source: str,
        kind: str,
        message: str,
        channel: int | None,
        t_ms: int | None,
        data: dict[str, Any],
    ) -> None:
        with self._lock:
            self._pending_events.append((source, kind, message, channel, t_ms, data))
        self.observer.event(kind, message, channel)

    # -- writer thread -------------------------------------------------------------------------
    def _writer_loop(self) -> None:
        while True:
            stopping = self._writer_stop.wait(FLUSH_INTERVAL_S)
            try:
                self._flush()
            except Exception as exc:  # surfaced by the acquisition loop
                log.exception("storing samples failed")
                self._write_error = exc
                return
            if stopping:
                return

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            pending_events, self._pending_events = self._pending_events, []
        assert self.run_id is not None
        for source, kind, message, channel, t_ms, data in pending_events:
            self.store.add_event(
                self.run_id,
                source=source,
                kind=kind,
                message=message,
                channel=channel,
                t_ms=t_ms,
                data=data,
            )
        start = 0
        while start < len(pending):
            end = start + 1
            first_t = pending[start][3]
            while end < len(pending) and pending[end][3] - first_t < MAX_BATCH_MS:
                end += 1
            batch = pending[start:end]
            self.store.append_samples(self.run_id, [SampleRow(*row) for row in batch])
            self.samples_stored += len(batch)
            start = end
        if pending:
            self._on_batch(pending)

    # -- results -------------------------------------------------------------------------------
    @staticmethod
    def _channel_result(
        spec: ChannelSpec, parameters: dict[str, Any], notes: dict[str, str]
    ) -> ChannelResult:
        return ChannelResult(
            channel=spec.channel,
            label=spec.label,
            contents=spec.contents,
            lot_id=spec.lot_id if spec.contents == "lot" else None,
            dose_cells_per_ml=spec.dose_cells_per_ml,
            donor_id=spec.donor_id,
            parameters=parameters,
            notes=notes,
        )
