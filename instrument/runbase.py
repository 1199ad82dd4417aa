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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from drivers.sequenced import DeviceError, InstrumentError, LinkNotice
from drivers.transport import LinkLostError, TransportError
from drivers.wire.sequenced import EventFrame, HeartbeatFrame
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
#: ... and sooner once the pending samples span this much device time (fast simulation).
FLUSH_SPAN_MS = 250
#: Shortest wall time between two stores, so that free-running simulation commits in bulk.
MIN_FLUSH_GAP_S = 0.01
#: A stored batch never spans more than this much device time.
MAX_BATCH_MS = 1000
#: Samples waiting for the writer beyond which the reader waits for it (backpressure, so
#: that an instrument faster than storage, such as a free-running simulator, cannot grow
#: memory without bound; the instrument's own buffer and the link hold the rest).
MAX_PENDING_SAMPLES = 20_000
#: Wall seconds without any data from a running instrument before the run fails.
STALL_TIMEOUT_S = 30.0
#: Wall seconds between attempts to reconnect a lost link (the last one repeats).
RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
#: Wall seconds a lost link may stay down before the run fails (data so far is kept).
RECONNECT_LIMIT_S = 60.0
#: Device seconds between two heartbeats of a sequenced instrument (TEM-4, LOOP-8).
HEARTBEAT_S = 1.0
#: Wall seconds the end of acquisition waits for the last frames, beyond two heartbeats.
DRAIN_MARGIN_S = 2.0

T = TypeVar("T")


class LiveDetector(Protocol):
    """Finds an event in a growing trace; ``feed`` returns its time on the call that finds it."""

    def feed(self, t_s: Any, values: Any) -> float | None: ...


@dataclass(frozen=True)
class RunOptions:
    operator: str = "unknown"
    lot: str | None = None
    donor: str | None = None
    seed: int = 0
    speed: float = 1.0
    faults: str | None = None
    #: Acknowledge operator prompts at once, each draw at its due time (simulation, CI).
    auto_ack: bool = False
    #: Wall seconds a lost instrument link may stay down before the run fails.
    reconnect_limit_s: float = RECONNECT_LIMIT_S


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
    #: Opens a new transport to the same instrument (after a lost link); None: cannot.
    reopen: Callable[[], Any] | None = None
    #: The serial number that answered at connect; a reconnection must find the same one.
    serial: str = ""
    #: Serialises commands with a reconnection that swaps the driver's transport.
    gate: threading.RLock = field(default_factory=threading.RLock)
    supervisor: LinkSupervisor | None = None


class LinkSupervisor:
    """Brings a streaming instrument link back after the driver reported ``link_lost``.

    The reconnection runs on its own thread: attempts after 0.2, 0.5, 1, 2, 5, 5 … s (wall
    time) until the run's reconnect limit; each opens a new transport (a simulator is asked
    for its current address, since a pseudo-terminal may get a new path), hands it to the
    driver with ``replace_transport``, checks the instrument's identity and restarts
    streaming. The driver keeps its sequencing state, so the first heartbeat on the new link
    reveals the frames sent meanwhile and the driver fetches them with ``REPLAY``.
    """

    def __init__(self, run: RunBase, conn: Connection, sink: Callable[[Any], None]) -> None:
        self._run = run
        self._conn = conn
        self._sink = sink
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.down_since: float | None = None
        self.failure: RunError | None = None
        self.outages: list[dict[str, Any]] = []
        self._lost_t_ms = 0
        self._lost_detail = ""

    @property
    def down(self) -> bool:
        """The link is lost and being re-established (False once restored or given up)."""
        return self.down_since is not None and self.failure is None

    @property
    def online(self) -> bool:
        driver = self._conn.driver
        return (
            self.down_since is None
            and self.failure is None
            and driver.link_error is None
            and driver.streaming
        )

    def lost(self, detail: str) -> None:
        """The driver reported a lost link (called on its reader thread): reconnect."""
        conn, run = self._conn, self._run
        with self._lock:
            if self.down_since is not None or self.failure is not None or self._stop.is_set():
                return
            self.down_since = time.monotonic()
            self._lost_t_ms = run.latest_device_ms()
            self._lost_detail = detail
            if conn.reopen is None:
                self.failure = RunError(
                    f"lost the link to {conn.role} on {conn.resource} at "
                    f"{self._lost_t_ms / 1000:.1f} s device time ({detail}); data so far is stored"
                )
                return
            self._thread = threading.Thread(
                target=self._reconnect, name=f"run-reconnect-{conn.role}", daemon=True
            )
            self._thread.start()
        run._queue_event(
            conn.role,
            "link",
            f"link lost at {self._lost_t_ms / 1000:.1f} s device time ({detail}); reconnecting",
            None,
            self._lost_t_ms,
            {"state": "lost", "resource": conn.resource},
        )

    def wait_online(self, timeout_s: float) -> bool:
        """Wait until the link is back (True) or given up, stopped, timed out (False)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.online:
                return True
            if self.failure is not None or self._stop.is_set():
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def stop(self) -> None:
        """The run ends: stop trying and wait for the reconnection thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10.0)

    def _reconnect(self) -> None:
        conn, run = self._conn, self._run
        driver = conn.driver
        limit_s = run.options.reconnect_limit_s
        assert self.down_since is not None and conn.reopen is not None
        while driver.streaming and not self._stop.is_set():
            time.sleep(0.005)  # the reader thread ends right after reporting the loss
        attempts = 0
        last_error = self._lost_detail
        while not self._stop.is_set():
            remaining = self.down_since + limit_s - time.monotonic()
            if remaining <= 0:
                self._give_up(attempts, last_error)
                return
            delay = RECONNECT_BACKOFF_S[min(attempts, len(RECONNECT_BACKOFF_S) - 1)]
            if self._stop.wait(min(delay, remaining)):
                return
            attempts += 1
            try:
                with conn.gate:
                    if self._stop.is_set():
                        return
                    transport = conn.reopen()
                    driver.replace_transport(transport)
                    identity = driver.identify()
                    if conn.serial and identity.serial != conn.serial:
                        self._give_up(
                            attempts,
                            f"{transport.resource} now answers as {identity.model} "
                            f"{identity.serial}, not the {conn.serial} this run measures with",
                        )
                        return
                    driver.start_streaming(self._sink)
            except (TransportError, DeviceError, OSError) as exc:
                last_error = str(exc)
                log.info("reconnecting %s: attempt %d failed: %s", conn.role, attempts, exc)
                continue
            self._restored(attempts, driver.resource)
            return

    def _restored(self, attempts: int, resource: str) -> None:
        conn, run = self._conn, self._run
        assert self.down_since is not None
        outage_s = time.monotonic() - self.down_since
        resume = conn.driver.next_expected
        outage = {
            "role": conn.role,
            "lost_at_t_s": self._lost_t_ms / 1000,
            "outage_s": round(outage_s, 3),
            "attempts": attempts,
            "resource": resource,
            "resume_seq": resume,
        }
        with self._lock:
            self.outages.append(outage)
            self.down_since = None
        run._link_restored(outage_s)
        run._queue_event(
            conn.role,
            "link",
            f"link restored after {outage_s:.1f} s ({attempts} attempt(s)) on {resource}; "
            f"frames from seq {resume} are replayed by the instrument",
            None,
            self._lost_t_ms,
            {"state": "restored", **outage},
        )

    def _give_up(self, attempts: int, last_error: str) -> None:
        conn, run = self._conn, self._run
        t_s = self._lost_t_ms / 1000
        message = (
            f"lost the link to the {conn.role} instrument on {conn.resource} at {t_s:.1f} s "
            f"device time and could not reconnect within {run.options.reconnect_limit_s:g} s "
            f"({attempts} attempt(s); last error: {last_error}). All data received up to "
            f"{t_s:.1f} s is stored. Check the cable and the instrument; while it keeps "
            f"running, `hemocompat recover {run.run_id}` can still fetch what it buffered."
        )
        self.failure = RunError(message)
        run._queue_event(
            conn.role,
            "link",
            f"reconnection given up: {message}",
            None,
            self._lost_t_ms,
            {"state": "failed", "attempts": attempts},
        )


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
        #: Cleared while the operator holds the run: the next step waits (see ``hold``).
        self._released = threading.Event()
        self._released.set()
        self._held_since: float | None = None
        self._thread: threading.Thread | None = None
        self._outcome: RunOutcome | None = None
        self._lock = threading.Lock()
        self._taken = threading.Condition(self._lock)  # the writer took the pending samples
        self._pending: list[tuple[str, int, int, int, float]] = []
        self._pending_events: list[
            tuple[str, str, str, int | None, int | None, dict[str, Any]]
        ] = []
        self._pending_t0 = 0
        self._flush_signalled = False
        self._latest_t_ms: dict[int, int] = {}
        self._last_data_wall = time.monotonic()
        self._writer_stop = threading.Event()
        self._flush_now = threading.Event()
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None
        #: Per streaming role: (heartbeats received, seq of the last one).
        self._heartbeats: dict[str, tuple[int, int]] = {}
        self._outage_wall_s = 0.0
        #: While recovering an interrupted run: channels whose later frames belong elsewhere.
        self._recovering = False
        self._recovery_had: set[int] = set()
        self._recovery_closed: set[int] = set()
        #: Live detectors by channel (CT, loop clotting), fed with every stored batch.
        self._detectors: dict[int, LiveDetector] = {}

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

    def hold(self, reason: str = "held by the operator") -> bool:
        """Hold the run before its next step (e.g. more time to prepare the next cup).

        A step already under way goes on: blood keeps clotting, so a measurement or a
        sampling schedule is never paused. Returns False if the run is already held.
        """
        with self._lock:
            if not self._released.is_set():
                return False
            self._released.clear()
            self._held_since = time.monotonic()
        self._queue_event("run", "hold", f"{reason}: the next step waits", None, None, {})
        return True

    def release(self) -> bool:
        """Let a held run go on with its next step; False if it was not held."""
        with self._lock:
            if self._released.is_set() or self._held_since is None:
                return False
            held_s = time.monotonic() - self._held_since
            self._held_since = None
            self._released.set()
        self._queue_event(
            "run", "release", f"released after {held_s:.1f} s held", None, None, {"held_s": held_s}
        )
        return True

    @property
    def held(self) -> bool:
        return not self._released.is_set()

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
        """Called on the writer thread with every stored batch: feed the live detectors."""
        if self._recovering or not self._detectors:
            return  # live detection needs the whole trace; the analysis sees all of it
        by_channel: dict[int, tuple[list[float], list[float]]] = {}
        for _source, _seq, channel, t_ms, value in rows:
            if channel in self._detectors:
                ts, vs = by_channel.setdefault(channel, ([], []))
                ts.append(t_ms / 1000.0)
                vs.append(value)
        for channel, (ts, vs) in by_channel.items():
            found_s = self._detectors[channel].feed(np.asarray(ts), np.asarray(vs))
            if found_s is not None:
                self._detected(channel, found_s)

    def _detected(self, channel: int, t_s: float) -> None:
        """A live detector found its event (CT, loop clotting) at ``t_s`` on ``channel``."""

    def _on_message(self, msg: object) -> None:
        """The stream sink of the streaming instrument (runs on the driver's reader thread)."""
        raise NotImplementedError

    def _transport_for(self, role: str, resource: str) -> Any:
        """Open a transport to the instrument of ``role`` at ``resource`` (recovery)."""
        raise NotImplementedError

    def _driver_for(self, role: str, transport: Any) -> Any:
        """The driver of the instrument of ``role`` on ``transport`` (recovery)."""
        raise NotImplementedError

    def _running_channels(self, driver: Any) -> list[int]:
        """This run's channels the instrument is still measuring (``STATUS?`` on ``driver``)."""
        raise NotImplementedError

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
                while not self._released.wait(0.05) and not self._cancel.is_set():
                    pass  # held by the operator before this step
                if self._cancel.is_set():
                    break
                self.observer.step_started(index, step)
                log.info("step %d: %s", index + 1, step.description)
                if step.kind == "analyse":
                    self._stop_acquisition(drain=True)
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
            extra=self._extra(),
        )

    def _extra(self) -> dict[str, Any]:
        extra = self._outcome_extra()
        outages = [
            o
            for c in self.connections.values()
            if c.supervisor is not None
            for o in c.supervisor.outages
        ]
        if outages:
            extra["link_outages"] = outages
        return extra

    def _set_status(self, status: str, detail: str = "") -> None:
        if self.status in ("failed", "aborted") and status == "completed":
            return
        self.status, self.detail = status, detail
        assert self.run_id is not None
        self.store.set_status(self.run_id, status, detail)
        if status != "running":
            self.observer.event("status", f"run {status}" + (f": {detail}" if detail else ""), None)

    def _register_connection(self, conn: Connection, identity: Any) -> None:
        conn.serial = identity.serial
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
            {"resource": conn.resource, "builtin_simulator": conn.simulator is not None},
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
            if self._check_links():
                self._last_data_wall = now  # an outage is the reconnection's business
            elif now - self._last_data_wall > STALL_TIMEOUT_S:
                raise RunError(
                    f"no data from the {self.source} instrument for {STALL_TIMEOUT_S:g} s "
                    f"(channels at {', '.join(f'{t / 1000:.1f} s' for t in latest)}); "
                    "check the cable and the instrument; data so far is stored"
                )
            if wall_limit is not None and now - started > wall_limit + self._outage_wall_s:
                raise RunError("acquisition took far longer than the protocol duration")
            time.sleep(0.02)

    # -- links: reconnection, commands across an outage, the end of a stream ------------------
    def latest_device_ms(self) -> int:
        """The newest device time received on any channel (ms; 0 before the first sample)."""
        return max(self._latest_t_ms.values(), default=0)

    def _start_stream(self, conn: Connection) -> None:
        """Start streaming ``conn`` into :meth:`_on_message`, watched by a link supervisor."""
        conn.supervisor = LinkSupervisor(self, conn, self._on_message)
        conn.driver.start_streaming(self._on_message)

    def _check_links(self) -> bool:
        """Raise the failure of a link that could not be restored; True while one is down."""
        down = False
        for conn in self.connections.values():
            sup = conn.supervisor
            if sup is None:
                continue
            if sup.failure is not None:
                raise sup.failure
            down = down or sup.down
        return down

    def _link_lost(self, role: str, detail: str) -> None:
        conn = self.connections.get(role)
        sup = conn.supervisor if conn is not None else None
        if sup is None:
            self._queue_event(role, "link", f"link_lost: {detail}", None, None, {})
            return
        sup.lost(detail)

    def _link_restored(self, outage_s: float) -> None:
        self._outage_wall_s += outage_s
        self._last_data_wall = time.monotonic()

    def _command(
        self, role: str, action: Callable[[Any], T], *, done_if_code: int | None = None
    ) -> T | None:
        """Run ``action(driver)``; across a lost link, wait for the reconnection and retry.

        A retried command the instrument refuses with ``done_if_code`` (``busy``: already
        running) had reached it before the link went down, and counts as done.
        """
        conn = self.connections[role]
        retried = False
        while True:
            try:
                with conn.gate:
                    return action(conn.driver)
            except LinkLostError:
                sup = conn.supervisor
                if sup is None or self._cancel.is_set():
                    raise
                if not sup.wait_online(self.options.reconnect_limit_s + 1.0):
                    if sup.failure is not None:
                        raise sup.failure from None
                    raise
                retried = True
            except InstrumentError as exc:
                if retried and done_if_code is not None and exc.code == done_if_code:
                    return None
                raise

    def _await_link(self, conn: Connection) -> bool:
        """For making an instrument safe: wait for a link being re-established."""
        sup = conn.supervisor
        if sup is None or not sup.down:
            return True
        log.warning("waiting for the %s link to come back to make the instrument safe", conn.role)
        return sup.wait_online(self.options.reconnect_limit_s + 1.0)

    def _on_heartbeat(self, role: str, hb: HeartbeatFrame) -> None:
        count = self._heartbeats.get(role, (0, 0))[0]
        self._heartbeats[role] = (count + 1, hb.seq)
        self._last_data_wall = time.monotonic()

    def _on_stream_item(self, role: str, msg: object) -> None:
        """What both sequenced instruments send besides data: events and link notices."""
        if isinstance(msg, HeartbeatFrame):
            self._on_heartbeat(role, msg)
        elif isinstance(msg, EventFrame):
            if self._recovering:
                self._recovery_event(msg)
            self._queue_event(
                role,
                "device",
                f"{msg.code}: {msg.text}",
                msg.channel or None,
                None,
                {"seq": msg.seq, "code": msg.code},
            )
        elif isinstance(msg, LinkNotice):
            if msg.kind == "link_lost":
                self._link_lost(role, msg.detail)
            else:
                self._queue_event(role, "link", f"{msg.kind}: {msg.detail}", None, None, {})

    def _drain_streams(self, wait_links: bool) -> None:
        """Before streaming stops: wait until every frame the instruments say they sent (the
        seq of their next heartbeat) has been received, replays included."""
        speed = self.clock.speed
        beat_wall = 2 * HEARTBEAT_S / speed if math.isfinite(speed) else 0.0
        for conn in list(self.connections.values()):
            sup = conn.supervisor
            if sup is None or not conn.streaming:
                continue
            if sup.down and wait_links:
                sup.wait_online(self.options.reconnect_limit_s + 1.0)
            if not sup.online:
                continue
            start = self._heartbeats.get(conn.role, (0, 0))[0]
            deadline = time.monotonic() + beat_wall + DRAIN_MARGIN_S
            while True:
                count, hb_seq = self._heartbeats.get(conn.role, (0, 0))
                expected = conn.driver.next_expected
                if count > start and (expected is None or hb_seq < expected):
                    break
                if not sup.online:
                    break
                if time.monotonic() > deadline:
                    self._queue_event(
                        conn.role,
                        "warning",
                        f"could not confirm that every frame up to seq {hb_seq} was received "
                        f"before the stream stopped (next expected {expected})",
                        None,
                        None,
                        {"heartbeat_seq": hb_seq, "next_expected": expected},
                    )
                    break
                time.sleep(0.005)

    def _stop_acquisition(self, drain: bool = False) -> None:
        """Stop the streams (``drain``: first collect every frame sent) and the writer."""
        if self._writer is not None:
            self._drain_streams(wait_links=drain)
        for conn in self.connections.values():
            if conn.supervisor is not None:
                conn.supervisor.stop()
            if conn.streaming:
                conn.driver.stop_streaming()
        if self._writer is not None:
            self._writer_stop.set()
            self._flush_now.set()
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
        if self._recovering and channel in self._recovery_closed:
            return
        with self._lock:
            pending = self._pending
            if not pending:
                self._pending_t0 = t_ms
            pending.append((source, seq, channel, t_ms, value))
            due = not self._flush_signalled and t_ms - self._pending_t0 >= FLUSH_SPAN_MS
            if due:
                self._flush_signalled = True
            if len(pending) >= MAX_PENDING_SAMPLES:
                self._wait_for_writer()
        if due:
            self._flush_now.set()
        if t_ms > self._latest_t_ms.get(channel, -1):
            self._latest_t_ms[channel] = t_ms
        self._last_data_wall = time.monotonic()
        trace = self.live.get(channel)
        if trace is not None:
            trace.append(t_ms / 1000.0, value)

    def _wait_for_writer(self) -> None:
        """Backpressure (reader thread, lock held): wait until the writer takes the batch."""
        self._flush_now.set()
        while (
            len(self._pending) >= MAX_PENDING_SAMPLES
            and self._writer is not None
            and self._write_error is None
            and not self._writer_stop.is_set()
        ):
            self._taken.wait(0.1)

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
        """Store pending samples every 50 ms, or as soon as they span FLUSH_SPAN_MS of device
        time (but at most every MIN_FLUSH_GAP_S), so a crash loses well under 1 s of data."""
        last = time.monotonic()
        while True:
            self._flush_now.wait(FLUSH_INTERVAL_S)
            gap = MIN_FLUSH_GAP_S - (time.monotonic() - last)
            if gap > 0 and not self._writer_stop.is_set():
                time.sleep(gap)
            self._flush_now.clear()
            stopping = self._writer_stop.is_set()
            try:
                self._flush()
            except Exception as exc:  # surfaced by the acquisition loop
                log.exception("storing samples failed")
                self._write_error = exc
                return
            last = time.monotonic()
            if stopping:
                return

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            pending_events, self._pending_events = self._pending_events, []
            self._flush_signalled = False
            self._taken.notify_all()
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

    # -- recovery of an interrupted run -------------------------------------------------------
    def resume(
        self,
        run_id: int,
        *,
        last_seq: int,
        last_t_ms: Mapping[int, int],
        resource: str | None,
        serial: str,
        unreachable: str = "",
    ) -> RunOutcome:
        """Finish run ``run_id``, which a stopped program left unfinished, on this thread.

        With a ``resource`` that answers with the same ``serial``, the run reattaches: the
        instrument resends everything from ``last_seq + 1`` (``REPLAY``), channels it still
        measures are recorded to the protocol's end and stopped, and the run is analysed.
        Otherwise the stored data is analysed as it is. Either way the status becomes
        ``completed`` with a detail starting ``recovered:``.
        """
        if self._thread is not None or self.run_id is not None:
            raise RunError("resume() needs a fresh engine that has not run")
        self.run_id = run_id
        self._latest_t_ms.update(last_t_ms)
        self._recovering = True
        self._recovery_had = set(last_t_ms)
        role = self.source
        duration_s = float(self.protocol.duration_s)
        results: list[ChannelResult] = []
        reattached = False
        reason = unreachable
        self._queue_event(
            role,
            "recovery",
            f"recovering run {run_id}: stored data up to seq {last_seq}, "
            f"{self._analysed_until_s():.1f} s of {duration_s:.0f} s",
            None,
            None,
            {"last_seq": last_seq},
        )
        self._writer = threading.Thread(target=self._writer_loop, name="run-writer", daemon=True)
        self._writer.start()
        try:
            if resource is not None:
                try:
                    reattached = self._reattach(role, resource, serial, last_seq)
                except (TransportError, DeviceError, RunError) as exc:
                    reason = f"{resource} could not be reached or is another instrument: {exc}"
                    self._close_connections()
                    self.connections.clear()
            if reattached:
                running = self._command(role, self._running_channels) or []
                self._queue_event(
                    role,
                    "recovery",
                    f"reattached to {serial} on {resource}; "
                    + (
                        f"still measuring channel(s) {', '.join(map(str, running))}"
                        if running
                        else "it is idle"
                    )
                    + f"; frames from seq {last_seq + 1} are replayed",
                    None,
                    None,
                    {"resource": resource, "running": running, "replay_from": last_seq + 1},
                )
                if running:
                    self._wait_for_data(round(duration_s * 1000), running)
                self._make_safe()
                self._stop_acquisition(drain=True)
                if self._cancel.is_set():
                    raise RunError(self._abort_reason or "recovery aborted")
                results = self._analyse()
                self._set_status(
                    "completed",
                    f"recovered: reattached to {serial} on {resource}, replayed from seq "
                    f"{last_seq + 1}; analysed data up to {self._analysed_until_s():.1f} s",
                )
            else:
                self._stop_acquisition()
                results = self._analyse()
                self._set_status(
                    "completed",
                    f"recovered: analysed stored data up to {self._analysed_until_s():.1f} s"
                    + (f" ({reason})" if reason else ""),
                )
        except (HemocompatError, TransportError, DeviceError) as exc:
            self._set_status("failed", f"recovery failed: {exc}")
        finally:
            if reattached and self.status != "completed":
                self._make_safe()
            self._stop_acquisition()
            self._close_connections()
        stats: dict[str, int] = {}
        for conn in self.connections.values():
            stats.update({f"{conn.role}.{k}": v for k, v in vars(conn.driver.stats).items()})
        self._outcome = RunOutcome(
            run_id=run_id,
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
            extra=self._extra(),
        )
        return self._outcome

    def _analysed_until_s(self) -> float:
        """Device time every channel of the run has reached (capped at the duration)."""
        reached = min((self._latest_t_ms.get(c.channel, 0) for c in self.channels), default=0)
        return min(reached / 1000, float(self.protocol.duration_s))

    def _reattach(self, role: str, resource: str, serial: str, last_seq: int) -> bool:
        driver = self._driver_for(role, self._transport_for(role, resource))
        try:
            identity = driver.identify()
            if identity.serial != serial:
                raise RunError(
                    f"{resource} answers as {identity.model} {identity.serial}, not {serial}, "
                    f"which measured run {self.run_id}"
                )
            driver.poll()  # frames read while identifying come again with the replay
        except BaseException:
            driver.close()
            raise
        conn = Connection(
            role,
            driver,
            resource,
            "SIM" in serial.upper(),
            reopen=lambda: self._transport_for(role, resource),
            serial=serial,
        )
        self.connections[role] = conn
        driver.expect_seq(last_seq + 1)
        self._start_stream(conn)
        return True

    def _recovery_event(self, msg: EventFrame) -> None:
        """Frames after a channel's STOP/ABORT, or after a new START on a channel that had
        data, belong to another session (the instrument was used since): not this run's."""
        code = msg.code.upper()
        channels = [c.channel for c in self.channels] if msg.channel == 0 else [msg.channel]
        if code in ("STOP", "ABORT"):
            self._recovery_closed.update(channels)
        elif code == "START":
            self._recovery_closed.update(ch for ch in channels if ch in self._recovery_had)

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
