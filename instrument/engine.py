"""The thromboelastometry run: a TEM-4 plan executed on its own thread, stored and analysed.

The shared run machinery (threads, storage writer, status, observer) is in
:mod:`instrument.runbase`; this module adds the TEM-4 steps, live CT and the clot parameters.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from drivers.tem4 import DataFrame, HeartbeatFrame, Tem4Driver
from drivers.transport import SerialTransport
from instrument.analysis.tem import CtDetector, compute_tem_parameters
from instrument.errors import RunError
from instrument.plan import Step, compile_plan
from instrument.runbase import (
    ChannelResult,
    Connection,
    Prompt,
    RunBase,
    RunObserver,
    RunOptions,
    RunOutcome,
)
from instrument.station import InstrumentSpec, Station
from instrument.storage import Store
from protocols.model import TemProtocol

__all__ = [
    "ChannelResult",
    "Prompt",
    "RunEngine",
    "RunObserver",
    "RunOptions",
    "RunOutcome",
]

log = logging.getLogger("hemocompat.engine")


class RunEngine(RunBase):
    """Runs one thromboelastometry protocol on one station and stores everything."""

    source = "tem"
    quantity = ("amplitude", "mm")

    def __init__(
        self,
        protocol: TemProtocol,
        station: Station,
        store: Store,
        options: RunOptions | None = None,
        observer: RunObserver | None = None,
    ) -> None:
        super().__init__(protocol, station, store, options, observer)
        self.protocol: TemProtocol = protocol
        self.plan = compile_plan(protocol, self.channels)
        self.cup_temperature_c: float | None = None
        self._detectors = {
            c.channel: CtDetector(threshold_mm=protocol.analysis.ct_threshold_mm)
            for c in self.channels
        }

    # -- steps ------------------------------------------------------------------------------
    def _execute(self, step: Step) -> None:
        if step.kind == "connect":
            self._connect(step.role)
            return
        role = step.role
        args = step.args
        if step.kind == "set_temperature":
            self._command(role, lambda d: d.set_temperature(args["celsius"]))
        elif step.kind == "wait_temperature":
            target, tol = args["celsius"], args["tolerance"]

            def in_band() -> bool:
                self._check_links()
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
            warning = self._command(role, lambda d: d.set_rate(args["hz"]))
            if warning:
                self._queue_event(role, "warning", warning, None, None, {})
        elif step.kind == "start_channel":
            # "busy" (3) on a retry after a lost link: the first START had reached the device.
            self._command(
                role, lambda d: d.start_channel(args["channel"], args["assay"]), done_if_code=3
            )
        elif step.kind == "acquire":
            self._wait_for_data(round(args["duration_s"] * 1000), args["channels"])
        elif step.kind == "stop_channel":
            self._command(role, lambda d: d.stop_channel(args["channel"]))
        else:
            raise RunError(f"unknown step kind {step.kind!r}")

    def _connect(self, role: str) -> None:
        spec = self.station.spec(role)
        simulator: Any = None
        baudrate = spec.baudrate or 115200
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
        else:
            resource = _require_resource(spec)

        def reopen() -> SerialTransport:
            # A simulator's pseudo-terminal gets a new path after a dropped client: ask it.
            url = simulator.url if simulator is not None else resource
            return SerialTransport(url, baudrate=baudrate, name=role)

        driver = Tem4Driver(reopen(), name=role)
        try:
            identity = driver.identify()
        except BaseException:
            driver.close()
            if simulator is not None:
                simulator.stop()
            raise
        simulated = spec.simulated or "SIM" in identity.serial.upper()
        self._register_connection(
            Connection(role, driver, resource, simulated, simulator, reopen=reopen), identity
        )
        self._stop_left_running(role, driver, identity)
        self._start_stream(self.connections[role])
        self.cup_temperature_c = self._command(role, lambda d: d.temperature())

    def _stop_left_running(self, role: str, driver: Tem4Driver, identity: Any) -> None:
        """An instrument still measuring for a program that stopped is stopped first."""
        status = driver.status()
        running = [n for n, state in enumerate(status.channels, 1) if state == "RUN"]
        if not running:
            return
        failures = driver.stop_all()
        if failures:
            raise RunError(
                f"{identity.model} {identity.serial} on {driver.resource} is still measuring "
                f"on channel(s) {', '.join(map(str, running))} for an earlier session and "
                f"could not be stopped ({failures[0]}); stop it at the instrument"
            )
        driver.poll()  # frames of the earlier session are not this run's
        self._queue_event(
            role,
            "safe_state",
            f"{identity.model} {identity.serial} was still measuring on channel(s) "
            f"{', '.join(map(str, running))}, left running by a program that stopped; "
            "stopped them before this run",
            None,
            None,
            {"channels": running},
        )

    def _make_safe(self) -> None:
        """Leave instruments safe: every channel stopped (errors logged, never raised)."""
        for conn in self.connections.values():
            try:
                if not self._await_link(conn):
                    log.error("could not stop %s channels: the link is down", conn.role)
                    continue
                with conn.gate:
                    conn.driver.stop_all()
            except Exception as exc:
                log.warning("could not stop %s channels: %s", conn.role, exc)

    # -- recovery hooks ------------------------------------------------------------------------
    def _transport_for(self, role: str, resource: str) -> SerialTransport:
        spec = self.station.instruments.get(role)
        baudrate = spec.baudrate if spec is not None and spec.baudrate else 115200
        return SerialTransport(resource, baudrate=baudrate, name=role)

    def _driver_for(self, role: str, transport: Any) -> Tem4Driver:
        return Tem4Driver(transport, name=role)

    def _running_channels(self, driver: Any) -> list[int]:
        states = driver.status().channels
        return [c.channel for c in self.channels if states[c.channel - 1] == "RUN"]

    # -- reader thread (driver sink) ----------------------------------------------------------
    def _on_message(self, msg: object) -> None:
        if isinstance(msg, DataFrame):
            self._on_sample("tem", msg.seq, msg.channel, msg.t_ms, msg.amp_mm)
            return
        if isinstance(msg, HeartbeatFrame):
            self.cup_temperature_c = msg.temp_c
        self._on_stream_item("tem", msg)

    # -- writer thread: live CT ----------------------------------------------------------------
    def _detected(self, channel: int, t_s: float) -> None:
        assert self.run_id is not None
        message = f"CT reached on channel {channel}: {t_s:.1f} s"
        self.store.add_event(
            self.run_id,
            source="tem",
            kind="ct",
            message=message,
            channel=channel,
            t_ms=round(t_s * 1000),
            data={"CT_s": round(t_s, 1)},
        )
        self.observer.event("ct", message, channel)

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
            parameters: dict[str, Any] = dict(params.to_dict(self.protocol.style))
            notes = {k: v for k, v in params.notes.items() if k in parameters}
            self.store.add_result(
                self.run_id,
                source="tem",
                channel=spec.channel,
                parameters=parameters,
                notes=notes,
                settings=_settings_dict(self.protocol),
            )
            out.append(self._channel_result(spec, parameters, notes))
        return out


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
