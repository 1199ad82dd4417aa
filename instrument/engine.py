"""The run engine: executes a protocol's plan on its own thread, acquires, stores, analyses.

Threads of a run: the engine thread (steps, against a Clock), one reader thread per
instrument connection (inside the driver: parse frames, push them here), and the storage
writer (batches of at most 1 s of device time, live CT detection). Nothing here touches Qt;
views poll :class:`LiveTrace` buffers and receive observer callbacks.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.tem4 import DataFrame, EventFrame, HeartbeatFrame, LinkNotice, Tem4Driver
from drivers.transport import SerialTransport, TransportError
from instrument.analysis.tem import CtDetector, compute_tem_parameters
from instrument.clock import Clock
from instrument.errors import HemocompatError, RunError
from instrument.live import LiveTrace
from instrument.plan import Step, compile_plan
from instrument.station import InstrumentSpec, Station
from instrument.storage import SampleRow, Store
from protocols.model import TemProtocol

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


@dataclass
class ChannelResult:
    channel: int
    label: str
    contents: str
    lot_id: str | None
    dose_cells_per_ml: float
    donor_id: str | None
    parameters: dict[str, float | None] = field(default_factory=dict)
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
        }


class RunObserver:
    """Callbacks from a run (called on engine/writer threads; keep them short)."""

    def step_started(self, index: int, step: Step) -> None:
        """A plan step begins."""

    def progress(self, fraction: float, elapsed_s: float) -> None:
        """Acquisition progress in device time."""

    def event(self, kind: str, message: str, channel: int | None) -> None:
        """Something worth showing happened (CT reached, link trouble, device event)."""


@dataclass
class _Connection:
    role: str
    driver: Tem4Driver
    resource: str
    simulated: bool
    simulator: Any = None


class RunEngine:
    """Runs one protocol on one station and stores everything in ``store``."""

    def __init__(
        self,
        protocol: TemProtocol,
        station: Station,
        store: Store,
        options: RunOptions | None = None,
        observer: RunObserver | None = None,
    ) -> None:
        self.protocol = protocol
        self.station = station
        self.store = store
        self.options = options or RunOptions()
        self.observer = observer or RunObserver()
        try:
            self.channels = protocol.resolved_channels(
                lot=self.options.lot, donor=self.options.donor
            )
        except ValueError as exc:
            raise RunError(f"{protocol.source}: {exc}") from None
        self.plan = compile_plan(protocol, self.channels)
        self.clock = Clock(self.options.speed)
        self.live: dict[int, LiveTrace] = {c.channel: LiveTrace() for c in self.channels}
        self.run_id: int | None = None
        self.status = "created"
        self.detail = ""
        self.cup_temperature_c: float | None = None
        self.connections: dict[str, _Connection] = {}
        self._cancel = threading.Event()
        self._abort_reason = ""
        self._thread: threading.Thread | None = None
        self._outcome: RunOutcome | None = None
        self._pending: list[tuple[int, int, int, float]] = []
        self._pending_events: list[
            tuple[str, str, str, int | None, int | None, dict[str, Any]]
        ] = []
        self._lock = threading.Lock()
        self._latest_t_ms: dict[int, int] = {}
        self._last_data_wall = time.monotonic()
        self._detectors = {
            c.channel: CtDetector(threshold_mm=protocol.analysis.ct_threshold_mm)
            for c in self.channels
        }
        self._det_buf: dict[int, tuple[list[float], list[float]]] = {}
        self._writer_stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None
        self.samples_stored = 0

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
        """Stop at once: channels are stopped, data so far is kept, the run is marked aborted."""
        self._abort_reason = reason
        self._cancel.set()

    @property
    def finished(self) -> bool:
        return self._outcome is not None

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
            style=self.protocol.style,
            operator=self.options.operator,
            simulated=simulated,
            duration_s=self.protocol.duration_s,
            seed=self.options.seed if simulated else None,
            speed=self.options.speed if simulated else None,
        )
        self.store.add_channels(
            self.run_id,
            [
                {
                    "source": "tem",
                    "channel": c.channel,
                    "contents": c.contents,
                    "lot_id": c.lot_id if c.contents == "lot" else None,
                    "dose_cells_per_ml": c.dose_cells_per_ml,
                    "donor_id": c.donor_id,
                    "label": c.label,
                    "quantity": "amplitude",
                    "unit": "mm",
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
            channels=results or self._channel_results_without_parameters(),
            link_stats=stats,
        )

    def _set_status(self, status: str, detail: str = "") -> None:
        if self.status in ("failed", "aborted") and status == "completed":
            return
        self.status, self.detail = status, detail
        assert self.run_id is not None
        self.store.set_status(self.run_id, status, detail)
        if status != "running":
            self.observer.event("status", f"run {status}" + (f": {detail}" if detail else ""), None)

    def _execute(self, step: Step) -> None:
        if step.kind == "connect":
            self._connect(step.role)
            return
        driver = self.connections[step.role].driver
        args = step.args
        if step.kind == "set_temperature":
            driver.set_temperature(args["celsius"])
        elif step.kind == "wait_temperature":
            target, tol = args["celsius"], args["tolerance"]

            def in_band() -> bool:
                temp = self.cup_temperature_c
                return temp is not None and abs(temp - target) <= tol

            if not self.clock.wait_for(in_band, args["timeout_s"], self._cancel):
                if self._cancel.is_set():
                    return
                raise RunError(
                    f"the cups did not reach {target:.2f} ± {tol:g} °C within "
                    f"{args['timeout_s']:g} s (last reading: {self.cup_temperature_c} °C); "
                    "check the instrument's heater and the room temperature"
                )
        elif step.kind == "equilibrate":
            self.clock.sleep(args["seconds"], self._cancel)
        elif step.kind == "set_rate":
            warning = driver.set_rate(args["hz"])
            if warning:
                self._queue_event(step.role, "warning", warning, None, None, {})
        elif step.kind == "start_channel":
            driver.start_channel(args["channel"], args["assay"])
        elif step.kind == "acquire":
            self._acquire(args["duration_s"], args["channels"])
        elif step.kind == "stop_channel":
            driver.stop_channel(args["channel"])
        else:
            raise RunError(f"unknown step kind {step.kind!r}")

    def _connect(self, role: str) -> None:
        spec = self.station.spec(role)
        simulator = None
        if spec.simulated:
            from instrument.simulation import start_tem4_simulator

            simulator = start_tem4_simulator(
                self.protocol,
                self.channels,
                self.options.seed,
                self.options.speed,
                self.options.faults,
            )
            resource = simulator.url
            transport = SerialTransport(resource, name=role)
        else:
            resource = _require_resource(spec)
            transport = SerialTransport(resource, baudrate=spec.baudrate or 115200, name=role)
        driver = Tem4Driver(transport, name=role)
        try:
            identity = driver.identify()
        except BaseException:
            driver.close()
            if simulator is not None:
                simulator.stop()
            raise
        simulated = spec.simulated or "SIM" in identity.serial.upper()
        self.connections[role] = _Connection(role, driver, resource, simulated, simulator)
        assert self.run_id is not None
        self.store.add_instrument(
            self.run_id,
            role,
            manufacturer=identity.manufacturer,
            model=identity.model,
            serial=identity.serial,
            firmware=identity.firmware,
            resource=resource,
            simulated=simulated,
        )
        driver.start_streaming(self._on_message)
        self.cup_temperature_c = driver.temperature()
        self._queue_event(
            role,
            "connected",
            f"{identity.model} {identity.serial} (firmware {identity.firmware}) on {resource}"
            + (" [SIMULATED]" if simulated else ""),
            None,
            None,
            {},
        )

    def _acquire(self, duration_s: float, channels: list[int]) -> None:
        target_ms = round(duration_s * 1000)
        self._last_data_wall = time.monotonic()
        started = time.monotonic()
        wall_limit = (
            self.clock.wall_seconds(duration_s) * 3 + 60
            if math.isfinite(self.clock.speed)
            else None
        )
        while not self._cancel.is_set():
            latest = [self._latest_t_ms.get(ch, -1) for ch in channels]
            done_ms = min(latest)
            self.observer.progress(max(0.0, min(1.0, done_ms / target_ms)), max(done_ms, 0) / 1e3)
            if done_ms >= target_ms:
                return
            if self._write_error is not None:
                raise RunError(f"storing samples failed: {self._write_error}")
            now = time.monotonic()
            if now - self._last_data_wall > STALL_TIMEOUT_S:
                raise RunError(
                    f"no data from the thromboelastometer for {STALL_TIMEOUT_S:g} s "
                    f"(channels at {', '.join(f'{t / 1000:.1f} s' for t in latest)}); "
                    "check the cable and the instrument; data so far is stored"
                )
            if wall_limit is not None and now - started > wall_limit:
                raise RunError("acquisition took far longer than the protocol duration")
            time.sleep(0.02)

    def _make_safe(self) -> None:
        """Leave instruments safe: every channel stopped (errors logged, never raised)."""
        for conn in self.connections.values():
            try:
                conn.driver.stop_all()
            except Exception as exc:
                log.warning("could not stop %s channels: %s", conn.role, exc)

    def _stop_acquisition(self) -> None:
        for conn in self.connections.values():
            conn.driver.stop_streaming()
        if self._writer is not None:
            self._writer_stop.set()
            self._writer.join()
            self._writer = None

    def _close_connections(self) -> None:
        for conn in self.connections.values():
            conn.driver.close()
            if conn.simulator is not None:
                conn.simulator.stop()

    # -- reader threads (driver sinks) --------------------------------------------------------
    def _on_message(self, msg: object) -> None:
        if isinstance(msg, DataFrame):
            with self._lock:
                self._pending.append((msg.seq, msg.channel, msg.t_ms, msg.amp_mm))
            if msg.t_ms > self._latest_t_ms.get(msg.channel, -1):
                self._latest_t_ms[msg.channel] = msg.t_ms
            self._last_data_wall = time.monotonic()
            trace = self.live.get(msg.channel)
            if trace is not None:
                trace.append(msg.t_ms / 1000.0, msg.amp_mm)
        elif isinstance(msg, HeartbeatFrame):
            self.cup_temperature_c = msg.temp_c
            self._last_data_wall = time.monotonic()
        elif isinstance(msg, EventFrame):
            self._queue_event(
                "tem",
                "device",
                f"{msg.code}: {msg.text}",
                msg.channel or None,
                None,
                {"seq": msg.seq, "code": msg.code},
            )
        elif isinstance(msg, LinkNotice):
            self._queue_event("tem", "link", f"{msg.kind}: {msg.detail}", None, None, {})

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
        if not pending:
            return
        start = 0
        while start < len(pending):
            end = start
            first_t = pending[start][2]
            while end < len(pending) and pending[end][2] - first_t < MAX_BATCH_MS:
                end += 1
            end = max(end, start + 1)
            batch = pending[start:end]
            self.store.append_samples(
                self.run_id, [SampleRow("tem", s, c, t, v) for s, c, t, v in batch]
            )
            self.samples_stored += len(batch)
            start = end
        self._detect_ct(pending)

    def _detect_ct(self, pending: list[tuple[int, int, int, float]]) -> None:
        by_channel: dict[int, tuple[list[float], list[float]]] = {}
        for _seq, ch, t_ms, value in pending:
            if ch not in self._detectors:
                continue
            ts, vs = by_channel.setdefault(ch, ([], []))
            ts.append(t_ms / 1000.0)
            vs.append(value)
        assert self.run_id is not None
        for ch, (ts, vs) in by_channel.items():
            ct = self._detectors[ch].feed(np.asarray(ts), np.asarray(vs))
            if ct is not None:
                message = f"CT reached on channel {ch}: {ct:.1f} s"
                self.store.add_event(
                    self.run_id,
                    source="tem",
                    kind="ct",
                    message=message,
                    channel=ch,
                    t_ms=round(ct * 1000),
                    data={"CT_s": round(ct, 1)},
                )
                self.observer.event("ct", message, ch)

    # -- analysis ------------------------------------------------------------------------------
    def _analyse(self) -> list[ChannelResult]:
        assert self.run_id is not None
        duration_ms = self.protocol.duration_s * 1000
        out = []
        for spec in self.channels:
            _seq, t_ms, values = self.store.channel_samples(self.run_id, "tem", spec.channel)
            t = np.asarray(t_ms, dtype=np.float64)
            a = np.asarray(values, dtype=np.float64)
            keep = t <= duration_ms
            params = compute_tem_parameters(
                t[keep] / 1000.0, a[keep], self.protocol.analysis, style=self.protocol.style
            )
            parameters = params.to_dict(self.protocol.style)
            notes = dict(params.notes)
            self.store.add_result(
                self.run_id,
                source="tem",
                channel=spec.channel,
                parameters=parameters,
                notes=notes,
                settings=_settings_dict(self.protocol),
            )
            out.append(self._channel_result(spec, parameters, notes))
        self._set_status("completed")
        return out

    def _channel_result(
        self, spec: Any, parameters: dict[str, float | None], notes: dict[str, str]
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

    def _channel_results_without_parameters(self) -> list[ChannelResult]:
        return [self._channel_result(s, {}, {}) for s in self.channels]


def _settings_dict(protocol: TemProtocol) -> dict[str, Any]:
    a = protocol.analysis
    return {
        "style": protocol.style,
        "ct_threshold_mm": a.ct_threshold_mm,
        "cft_threshold_mm": a.cft_threshold_mm,
        "amplitude_times_min": list(a.amplitude_times_min),
        "lysis_index_time_min": a.lysis_index_time_min,
        "alpha_chart_mm_per_min": a.alpha_chart_mm_per_min,
        "duration_s": protocol.duration_s,
    }


def _require_resource(spec: InstrumentSpec) -> str:
    if spec.resource is None:
        raise RunError(f"instrument role '{spec.role}' has no resource")
    return spec.resource
