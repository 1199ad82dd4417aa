"""The whole-blood (Chandler) loop run: water bath, LOOP-8 rotator, timed sampling prompts.

Protocol time of a loop run is the rotator's device time minus the time the run spent
suspended by the bath interlock: while the bath is outside its band, timed steps (the
sampling schedule and the run's duration) wait, the interruption is logged, and they resume
when the bath is back in band. The loops keep rotating and every motion sample is stored.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.transport import SerialTransport, TransportError
from instrument.analysis.loop import (
    LoopClotDetector,
    loop_clot_time,
    platelet_consumption_pct,
)
from instrument.errors import RunError
from instrument.plan import Step, compile_loop_plan
from instrument.runbase import ChannelResult, Connection, Prompt, RunBase, RunObserver, RunOptions
from instrument.station import Station
from instrument.storage import Store
from protocols.model import LoopProtocol

log = logging.getLogger("hemocompat.engine.loop")

#: Wall seconds between bath temperature readings during a run (at most).
BATH_POLL_WALL_S = 0.05
#: Protocol seconds between bath readings (real time; scaled runs poll at BATH_POLL_WALL_S).
BATH_POLL_PROTOCOL_S = 5.0


@dataclass(frozen=True)
class BathIdentity:
    manufacturer: str
    model: str
    serial: str
    firmware: str

    @classmethod
    def from_version(cls, text: str) -> BathIdentity:
        """``JULABO CORIO CD-200F VERSION 1.0`` → manufacturer, model, firmware."""
        words = text.split()
        maker = words[0] if words else "unknown"
        if "VERSION" in words:
            i = words.index("VERSION")
            model, firmware = " ".join(words[1:i]) or "unknown", " ".join(words[i + 1 :])
        else:
            model, firmware = " ".join(words[1:]) or "unknown", "unknown"
        return cls(maker, model, "not reported", firmware or "unknown")


@dataclass
class _OpenPrompt:
    prompt: Prompt
    loop: int
    raised_t_s: float
    overdue_flagged: bool = False


class LoopRunEngine(RunBase):
    """Runs one Chandler-loop protocol: bath, rotator, sampling prompts, interlock, analysis."""

    source = "loop"
    quantity = ("motion", "permille")

    def __init__(
        self,
        protocol: LoopProtocol,
        station: Station,
        store: Store,
        options: RunOptions | None = None,
        observer: RunObserver | None = None,
        bath_excursion: tuple[float, float, float] | None = None,
    ) -> None:
        super().__init__(protocol, station, store, options, observer)
        self.protocol: LoopProtocol = protocol
        self.plan = compile_loop_plan(protocol, self.channels)
        self.bath_temperature_c: float | None = None
        self.bath_in_band = True
        self.suspended_s = 0.0
        self.interruptions: list[dict[str, float]] = []
        self._suspended_since_ms: int | None = None
        self._bath_excursion = bath_excursion
        self._prompts: dict[int, _OpenPrompt] = {}
        #: Prompts whose acknowledgement is being stored: still open for the run's end, so the
        #: run cannot finish (and analyse) before the tube and its counts are written.
        self._answering: set[int] = set()
        self._prompt_lock = threading.Lock()
        self._detectors = {
            c.channel: LoopClotDetector(
                protocol.clot_detection.threshold_permille, protocol.clot_detection.hold_s
            )
            for c in self.channels
        }

    # -- operator -----------------------------------------------------------------------------
    def acknowledge(self, prompt_id: int, by: str | None = None, at_s: float | None = None) -> None:
        """The operator did what prompt ``prompt_id`` asked; record when (device time ``at_s``,
        default now)."""
        with self._prompt_lock:
            open_prompt = self._prompts.get(prompt_id)
            if open_prompt is None or prompt_id in self._answering:
                raise RunError(f"prompt {prompt_id} is not open (already answered or unknown)")
            self._answering.add(prompt_id)
        answered = False
        try:
            t_s = self.device_time_s() if at_s is None else at_s
            self.store.update_prompt(
                prompt_id,
                status="acknowledged",
                answered_t_s=t_s,
                answered_by=by or self.options.operator,
            )
            if open_prompt.prompt.tube_id is not None:
                self.store.mark_tube(open_prompt.prompt.tube_id, "drawn", drawn_t_s=t_s)
                self._simulated_counts(open_prompt, t_s)
            answered = True
        finally:
            with self._prompt_lock:
                self._answering.discard(prompt_id)
                if answered:
                    del self._prompts[prompt_id]
        late = t_s - open_prompt.prompt.due_t_s
        self._queue_event(
            "loop",
            "prompt",
            f"acknowledged at {t_s:.0f} s ({late:+.0f} s from due): {open_prompt.prompt.message}",
            open_prompt.loop,
            round(t_s * 1000),
            {"prompt_id": prompt_id, "tube_id": open_prompt.prompt.tube_id},
        )

    def open_prompts(self) -> list[Prompt]:
        with self._prompt_lock:
            return [p.prompt for p in self._prompts.values()]

    def device_time_s(self) -> float:
        """The rotator's time since START (s): the latest sample of any loop."""
        return max(self._latest_t_ms.values(), default=0) / 1000.0

    def protocol_time_s(self) -> float:
        """Device time minus the time suspended by the interlock (what the schedule uses)."""
        suspended = self.suspended_s
        if self._suspended_since_ms is not None:
            suspended += self.device_time_s() - self._suspended_since_ms / 1000.0
        return self.device_time_s() - suspended

    # -- steps ------------------------------------------------------------------------------
    def _execute(self, step: Step) -> None:
        args = step.args
        if step.kind == "connect":
            self._connect(step.role)
        elif step.kind == "set_bath":
            self._bath().set_setpoint(args["celsius"])
            self._bath().start()
        elif step.kind == "wait_bath":
            self._wait_bath(args["celsius"], args["tolerance"], args["hold_s"], args["timeout_s"])
        elif step.kind == "prompt":
            self._prompt_and_wait(args["message"])
        elif step.kind == "set_rpm":
            self._command("loop", lambda d: d.set_rpm(args["rpm"]))
        elif step.kind == "start_rotation":
            # "busy" (3) on a retry after a lost link: the first START had reached the device.
            self._command("loop", lambda d: d.start(), done_if_code=3)
            self._schedule_bath_excursion()
        elif step.kind == "acquire":
            self._acquire(args["duration_s"], args["channels"])
        elif step.kind == "stop_rotation":
            self._command("loop", lambda d: d.stop())
        else:
            raise RunError(f"unknown step kind {step.kind!r}")

    def _schedule_bath_excursion(self) -> None:
        """Simulated bath fault, timed from the start of rotation (time zero of the run)."""
        bath = self.connections.get("bath")
        if self._bath_excursion is None or bath is None or bath.simulator is None:
            return
        at_s, duration_s, delta_c = self._bath_excursion
        sim = bath.simulator
        sim.model.inject_excursion(sim.device_s + at_s, duration_s, delta_c)

    def _bath(self) -> Any:
        return self.connections["bath"].driver

    def _connect(self, role: str) -> None:
        spec = self.station.spec(role)
        from instrument import simulation

        simulator = None
        if role == "bath":
            from drivers.julabo import JulaboBath

            settings: dict[str, Any] = dict(JulaboBath.serial_settings())
            if spec.simulated:
                simulator = simulation.start_bath_simulator(
                    self.protocol, self.options.seed, self.options.speed
                )
                resource = simulator.url
                settings.update(bytesize=8, parity="N")  # a pty carries 8N1 only
            else:
                resource = spec.resource or ""
                if spec.baudrate:
                    settings["baudrate"] = spec.baudrate
            transport = SerialTransport(resource, name=role, **settings)
            bath = JulaboBath(transport, name=role)
            try:
                identity: Any = BathIdentity.from_version(bath.identify())
            except BaseException:
                bath.close()
                if simulator is not None:
                    simulator.stop()
                raise
            conn = Connection(role, bath, resource, spec.simulated, simulator, streaming=False)
            self._register_connection(conn, identity)
            self.bath_temperature_c = bath.temperature()
            return
        from drivers.loop8 import Loop8Driver

        baudrate = spec.baudrate or 57600
        if spec.simulated:
            simulator = simulation.start_loop8_simulator(
                self.protocol,
                self.channels,
                self.options.seed,
                self.options.speed,
                self.options.faults,
            )
            resource = simulator.url
        else:
            resource = spec.resource or ""

        def reopen() -> SerialTransport:
            # A simulator's pseudo-terminal gets a new path after a dropped client: ask it.
            url = simulator.url if simulator is not None else resource
            return SerialTransport(url, baudrate=baudrate, name=role)

        rotor = Loop8Driver(reopen(), name=role)
        try:
            identity = rotor.identify()
        except BaseException:
            rotor.close()
            if simulator is not None:
                simulator.stop()
            raise
        simulated = spec.simulated or "SIM" in identity.serial.upper()
        self._register_connection(
            Connection(role, rotor, resource, simulated, simulator, reopen=reopen), identity
        )
        self._stop_left_running(role, rotor, identity)
        self._start_stream(self.connections[role])

    def _stop_left_running(self, role: str, rotor: Any, identity: Any) -> None:
        """A rotor still turning for a program that stopped is stopped first, never left
        rotating unattended."""
        status = rotor.status()
        if status.state != "RUN":
            return
        failures = rotor.stop_all()
        if failures:
            raise RunError(
                f"{identity.model} {identity.serial} on {rotor.resource} is still rotating for "
                f"an earlier session and could not be stopped ({failures[0]}); stop it at the "
                "instrument"
            )
        rotor.poll()  # frames of the earlier session are not this run's
        self._queue_event(
            role,
            "safe_state",
            f"{identity.model} {identity.serial} was still rotating at {status.rpm} rpm, left "
            "running by a program that stopped; rotation stopped before this run",
            None,
            None,
            {"rpm": status.rpm, "loops": list(status.loops)},
        )

    def _read_bath(self) -> float | None:
        try:
            temp = float(self._bath().temperature())
        except (TransportError, Exception) as exc:
            self._queue_event("bath", "link", f"bath reading failed: {exc}", None, None, {})
            return None
        self.bath_temperature_c = temp
        return temp

    def _wait_bath(self, target: float, tol: float, hold_s: float, timeout_s: float) -> None:
        """Equilibration gate: the bath within ±tol of target for ``hold_s`` continuously."""
        start = self.clock.now()
        in_band_since: float | None = None
        while not self._cancel.is_set():
            temp = self._read_bath()
            now = self.clock.now()
            if temp is not None and abs(temp - target) <= tol:
                if in_band_since is None:
                    in_band_since = now
                if now - in_band_since >= hold_s or not math.isfinite(self.clock.speed):
                    self._queue_event(
                        "bath",
                        "equilibrated",
                        f"bath at {temp:.2f} °C, within ±{tol:g} °C of {target:.2f} °C "
                        f"for {hold_s:g} s",
                        None,
                        None,
                        {"temperature_c": temp},
                    )
                    return
            else:
                in_band_since = None
            if now - start > timeout_s:
                raise RunError(
                    f"the bath did not settle within ±{tol:g} °C of {target:.2f} °C for "
                    f"{hold_s:g} s within {timeout_s / 60:g} min (last reading {temp} °C); "
                    "check the bath's setpoint, liquid level and circulation"
                )
            time.sleep(max(self.clock.wall_seconds(BATH_POLL_PROTOCOL_S), BATH_POLL_WALL_S))

    def _prompt_and_wait(self, message: str) -> None:
        prompt_id = self._raise_prompt(message, None, 0, self.protocol_time_s())
        while not self._cancel.is_set():
            with self._prompt_lock:
                if prompt_id not in self._prompts:
                    return
            time.sleep(0.02)

    def _raise_prompt(self, message: str, tube_id: str | None, loop: int, due_t_s: float) -> int:
        assert self.run_id is not None
        now_s = self.device_time_s()
        prompt_id = self.store.add_prompt(
            self.run_id, message=message, tube_id=tube_id, due_t_s=due_t_s, raised_t_s=now_s
        )
        prompt = Prompt(
            prompt_id, message, due_t_s, self.protocol.sampling.overdue_after_s, tube_id
        )
        with self._prompt_lock:
            self._prompts[prompt_id] = _OpenPrompt(prompt, loop, now_s)
        self._queue_event("loop", "prompt", message, loop or None, round(now_s * 1000), {})
        self.observer.prompt(prompt)
        if self.options.auto_ack:
            # A simulated technician who does every step on time: the draw is recorded at its
            # due time (in device time, after any interlock suspension), not at the moment the
            # engine got round to it, which at high simulation speeds is minutes later.
            on_time_s = due_t_s + self.suspended_s if tube_id is not None else now_s
            self.acknowledge(prompt_id, by="auto-ack (simulation)", at_s=on_time_s)
        return prompt_id

    # -- acquisition with sampling schedule and interlock ------------------------------------
    def _acquire(self, duration_s: float, channels: list[int]) -> None:
        sampling = self.protocol.sampling
        schedule = sorted(sampling.times_s)
        next_point = 0
        last_bath_read = -math.inf
        self._last_data_wall = time.monotonic()
        while not self._cancel.is_set():
            now_wall = time.monotonic()
            if now_wall - last_bath_read >= max(
                self.clock.wall_seconds(BATH_POLL_PROTOCOL_S), BATH_POLL_WALL_S
            ):
                last_bath_read = now_wall
                self._interlock()
            t_run = self.protocol_time_s()
            while (
                self._suspended_since_ms is None
                and next_point < len(schedule)
                and t_run >= schedule[next_point]
                and self._latest_t_ms
            ):
                self._sampling_prompts(schedule[next_point], sampling)
                next_point += 1
            self._flag_overdue(t_run)
            self.observer.progress(min(1.0, max(0.0, t_run / duration_s)), t_run)
            if t_run >= duration_s and next_point >= len(schedule) and not self._draws_pending():
                return
            if self._write_error is not None:
                raise RunError(f"storing samples failed: {self._write_error}")
            if self._check_links():
                self._last_data_wall = time.monotonic()  # the reconnection's business
            elif time.monotonic() - self._last_data_wall > 30.0:
                raise RunError(
                    "no data from the loop rotator for 30 s; check the cable and the "
                    "instrument; data so far is stored"
                )
            time.sleep(0.01)

    def _interlock(self) -> None:
        temp = self._read_bath()
        if temp is None:
            return
        band = self.protocol.bath
        in_band = abs(temp - band.setpoint_c) <= band.tolerance_c
        now_ms = round(self.device_time_s() * 1000)
        if not in_band and self._suspended_since_ms is None:
            self._suspended_since_ms = now_ms
            self.bath_in_band = False
            self._queue_event(
                "bath",
                "interlock",
                f"bath at {temp:.2f} °C, outside {band.setpoint_c:.2f} ± {band.tolerance_c:g} °C:"
                " timed steps suspended (loops keep rotating)",
                None,
                now_ms,
                {"temperature_c": temp, "state": "suspended"},
            )
        elif in_band and self._suspended_since_ms is not None:
            start_ms, self._suspended_since_ms = self._suspended_since_ms, None
            duration = (now_ms - start_ms) / 1000.0
            self.suspended_s += duration
            self.bath_in_band = True
            self.interruptions.append(
                {"start_t_s": start_ms / 1000.0, "end_t_s": now_ms / 1000.0, "duration_s": duration}
            )
            self._queue_event(
                "bath",
                "interlock",
                f"bath back in band at {temp:.2f} °C after {duration:.0f} s: timed steps resumed",
                None,
                now_ms,
                {"temperature_c": temp, "state": "resumed", "duration_s": duration},
            )

    def _sampling_prompts(self, time_point_s: float, sampling: Any) -> None:
        assert self.run_id is not None
        for loop in sampling.loops:
            tube_id = self.store.register_tube(
                self.run_id,
                source="loop",
                channel=loop,
                time_point_s=time_point_s,
                tube_type=sampling.tube,
                volume_ml=sampling.volume_ml,
                simulated=self.simulated,
            )
            message = (
                f"Draw {sampling.volume_ml:.1f} mL from loop {loop} into {sampling.tube} tube "
                f"{tube_id} ({time_point_s / 60:g} min sample)"
            )
            self._raise_prompt(message, tube_id, loop, time_point_s)

    def _draws_pending(self) -> bool:
        """Sampling draws still open and not yet overdue: the run's end waits for them (the
        last time point's draws are raised at the end; the loops keep turning meanwhile)."""
        with self._prompt_lock:
            return bool(self._answering) or any(
                p.prompt.tube_id is not None and not p.overdue_flagged
                for p in self._prompts.values()
            )

    def _flag_overdue(self, t_run: float) -> None:
        with self._prompt_lock:
            late = [
                p
                for p in self._prompts.values()
                if not p.overdue_flagged
                and p.prompt.id not in self._answering
                and p.prompt.tube_id is not None
                and t_run > p.prompt.due_t_s + p.prompt.overdue_after_s
            ]
            for p in late:
                p.overdue_flagged = True
        for p in late:
            self.store.update_prompt(p.prompt.id, overdue=True)
            self._queue_event(
                "loop",
                "overdue",
                f"OVERDUE by {t_run - p.prompt.due_t_s:.0f} s: {p.prompt.message}",
                p.loop,
                None,
                {"prompt_id": p.prompt.id},
            )

    def _simulated_counts(self, open_prompt: _OpenPrompt, t_s: float) -> None:
        """In a simulated run the virtual lab supplies the tube's platelet count."""
        conn = self.connections.get("loop")
        if conn is None or conn.simulator is None or open_prompt.prompt.tube_id is None:
            return
        truth = conn.simulator.ground_truth(open_prompt.loop)
        self.store.add_sample_value(
            open_prompt.prompt.tube_id,
            analyte="PLT",
            value=round(float(truth.platelets_e9_per_l(t_s)), 1),
            unit="10^9/L",
            origin="virtual lab hematology count (SIMULATED)",
            entered_by="simulation",
            simulated=True,
        )

    def _make_safe(self) -> None:
        """Abort or end: stop rotation; the bath keeps running (the blood stays at 37 °C)."""
        conn = self.connections.get("loop")
        if conn is not None:
            try:
                if self._await_link(conn):
                    with conn.gate:
                        conn.driver.stop()
                else:
                    log.error("could not stop the loop rotator: the link is down")
            except Exception as exc:
                log.warning("could not stop the loop rotator: %s", exc)
        if self._suspended_since_ms is not None:
            self._interlock_end_at_stop()
        with self._prompt_lock:
            left = list(self._prompts.values())
            self._prompts.clear()
        for p in left:
            self.store.update_prompt(p.prompt.id, status="never acknowledged")
            if p.prompt.tube_id is not None:
                self.store.mark_tube(p.prompt.tube_id, "missed")
            self._queue_event(
                "loop",
                "missed",
                f"never acknowledged: {p.prompt.message}",
                p.loop,
                None,
                {"prompt_id": p.prompt.id},
            )
        if self.run_id is not None:
            self._flush_events_only()

    def _interlock_end_at_stop(self) -> None:
        assert self._suspended_since_ms is not None
        now_ms = round(self.device_time_s() * 1000)
        duration = (now_ms - self._suspended_since_ms) / 1000.0
        self.interruptions.append(
            {
                "start_t_s": self._suspended_since_ms / 1000.0,
                "end_t_s": now_ms / 1000.0,
                "duration_s": duration,
            }
        )
        self.suspended_s += duration
        self._suspended_since_ms = None

    def _flush_events_only(self) -> None:
        with self._lock:
            events, self._pending_events = self._pending_events, []
        assert self.run_id is not None
        for source, kind, message, channel, t_ms, data in events:
            self.store.add_event(
                self.run_id,
                source=source,
                kind=kind,
                message=message,
                channel=channel,
                t_ms=t_ms,
                data=data,
            )

    # -- reader thread ----------------------------------------------------------------------
    def _on_message(self, msg: object) -> None:
        from drivers.loop8 import LoopFrame

        if isinstance(msg, LoopFrame):
            self._on_sample("loop", msg.seq, msg.loop, msg.t_ms, float(msg.motion_permille))
        else:
            self._on_stream_item("loop", msg)

    # -- recovery hooks ------------------------------------------------------------------------
    def _transport_for(self, role: str, resource: str) -> SerialTransport:
        spec = self.station.instruments.get(role)
        baudrate = spec.baudrate if spec is not None and spec.baudrate else 57600
        return SerialTransport(resource, baudrate=baudrate, name=role)

    def _driver_for(self, role: str, transport: Any) -> Any:
        from drivers.loop8 import Loop8Driver

        return Loop8Driver(transport, name=role)

    def _running_channels(self, driver: Any) -> list[int]:
        status = driver.status()
        if status.state != "RUN":
            return []
        return [c.channel for c in self.channels if status.loops[c.channel - 1] == "RUN"]

    def _detected(self, channel: int, t_s: float) -> None:
        assert self.run_id is not None
        message = f"loop {channel} clotted at {t_s:.0f} s"
        self.store.add_event(
            self.run_id,
            source="loop",
            kind="clot",
            message=message,
            channel=channel,
            t_ms=round(t_s * 1000),
            data={"clot_time_s": t_s},
        )
        self.observer.event("clot", message, channel)

    # -- analysis ------------------------------------------------------------------------------
    def _analyse(self) -> list[ChannelResult]:
        assert self.run_id is not None
        detection = self.protocol.clot_detection
        # The protocol's blood-contact time (extended by interlock suspensions), not the
        # minutes the loops keep turning while the last draws are taken.
        end_s = min(self.device_time_s(), self.protocol.duration_s + self.suspended_s)
        platelets: dict[int, list[tuple[float, float]]] = {}
        for row in self.store.sample_values(self.run_id, "PLT"):
            if row["value"] is not None:
                platelets.setdefault(row["channel"], []).append((row["time_point_s"], row["value"]))
        out = []
        for spec in self.channels:
            _seq, t_ms, values = self.store.channel_samples(self.run_id, "loop", spec.channel)
            result = loop_clot_time(
                np.asarray(t_ms, dtype=np.float64) / 1000.0,
                np.asarray(values, dtype=np.float64),
                detection.threshold_permille,
                detection.hold_s,
                end_s,
            )
            parameters: dict[str, Any] = {
                "clotted": result.clot_time_s is not None,
                "clot_time_s": None if result.clot_time_s is None else round(result.clot_time_s, 1),
            }
            notes = {"clot_time_s": result.note} if result.note else {}
            counts = sorted(platelets.get(spec.channel, []))
            if len(counts) >= 2:
                parameters["PLT_baseline_e9_per_l"] = counts[0][1]
                parameters["PLT_end_e9_per_l"] = counts[-1][1]
                parameters["PLT_consumption_pct"] = round(
                    platelet_consumption_pct(counts[0][1], counts[-1][1]), 1
                )
            else:
                notes["PLT_consumption_pct"] = (
                    "platelet consumption needs counts at two time points "
                    f"(this loop has {len(counts)})"
                )
            self.store.add_result(
                self.run_id,
                source="loop",
                channel=spec.channel,
                parameters=parameters,
                notes=notes,
                settings={
                    "threshold_permille": detection.threshold_permille,
                    "hold_s": detection.hold_s,
                    "analysed_until_s": end_s,
                },
            )
            out.append(self._channel_result(spec, parameters, notes))
        return out

    def _outcome_extra(self) -> dict[str, Any]:
        if self.run_id is None:
            return {}
        prompts = self.store.prompts(self.run_id)
        return {
            "tubes": [
                {k: t[k] for k in ("tube_id", "channel", "time_point_s", "drawn_t_s", "status")}
                for t in self.store.tubes(self.run_id)
            ],
            "prompts_overdue": sum(1 for p in prompts if p["overdue"]),
            "prompts_never_acknowledged": sum(
                1 for p in prompts if p["status"] == "never acknowledged"
            ),
            "interruptions": self.interruptions,
        }
