"""Simulated JULABO circulator (water bath): a clock-driven thermal model behind the vendor's
RS232 command set, served on a real pty and/or TCP port (see docs/protocols/julabo.md).

:class:`BathModel` is pure: it answers one command at a given device time. The
:class:`BathSimulator` owns the endpoints, turns wall time into device time (× ``speed``),
applies fault injection and, like a real bath, may ignore the first command after a client
connects while its interface wakes up.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers.wire import julabo as wire
from simulators.endpoints import EndpointUnavailable, PtyEndpoint, TcpEndpoint
from simulators.faults import FaultInjector, FaultPlan, ScheduledFault
from simulators.standalone import serve_until_stopped

__all__ = [
    "DEFAULT_VERSION",
    "OVERTEMPERATURE_CODE",
    "BathModel",
    "BathSimulator",
    "Excursion",
    "run_standalone",
]

log = logging.getLogger("hemocompat.sim.julabo")

DEFAULT_VERSION = "JULABO CORIO CD-200F VERSION 1.0"

#: Status code the model latches when the bath exceeds its safety limit (excess-temperature
#: protector tripped: heater and pump switch off until the alarm is cleared at the bath).
OVERTEMPERATURE_CODE = -14


@dataclass(frozen=True, slots=True)
class Excursion:
    """A bath fault: the bath temperature is off by ``delta_c`` during [start_s, end_s)."""

    start_s: float
    end_s: float
    delta_c: float


class BathModel:
    """First-order thermal model of a circulating water bath, driven by device time.

    Running, the bath temperature approaches the setpoint with time constant ``tau_s``;
    stopped, it relaxes to ``room_c``. Readings carry seeded Gaussian noise (``noise_c`` SD).
    Above ``max_c`` the excess-temperature protector trips (status -14, circulator off).
    """

    def __init__(
        self,
        room_c: float = 22.0,
        setpoint_c: float = 37.0,
        tau_s: float = 300.0,
        noise_c: float = 0.01,
        seed: int = 0,
        max_c: float = 50.0,
        *,
        temperature_c: float | None = None,
        running: bool = False,
        remote: bool = True,
        version: str = DEFAULT_VERSION,
        setpoint_limits: tuple[float, float] = (-20.0, 150.0),
    ) -> None:
        if tau_s <= 0:
            raise ValueError(f"tau_s must be > 0 s, got {tau_s!r}")
        if noise_c < 0:
            raise ValueError(f"noise_c must be ≥ 0 °C, got {noise_c!r}")
        self.room_c = float(room_c)
        self.tau_s = float(tau_s)
        self.noise_c = float(noise_c)
        self.max_c = float(max_c)
        self.version = version
        self.setpoint_limits = setpoint_limits
        self.remote = remote
        self._setpoint_c = float(setpoint_c)
        self._temp_c = float(room_c if temperature_c is None else temperature_c)
        self._running = running
        self._now_s = 0.0
        self._rng = random.Random(seed)
        self._alarm: int | None = None
        self._command_error: int | None = None
        self._excursions: list[Excursion] = []
        self._scheduled: list[tuple[float, int]] = []
        self._lock = threading.RLock()

    # -- state -----------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Device time the model has been advanced to."""
        return self._now_s

    @property
    def running(self) -> bool:
        return self._running

    @property
    def setpoint_c(self) -> float:
        return self._setpoint_c

    @property
    def alarm_code(self) -> int | None:
        """The latched alarm code, or None."""
        return self._alarm

    def temperature_c(self, device_s: float | None = None) -> float:
        """The true (noise-free) bath temperature, including any active excursion."""
        with self._lock:
            if device_s is not None:
                self.advance(device_s)
            return self._temp_c + self._offset(self._now_s)

    def status_code(self) -> int:
        """The code STATUS would report now (without consuming a pending command error)."""
        with self._lock:
            if self._alarm is not None:
                return self._alarm
            if self._command_error is not None:
                return self._command_error
            return (2 if self.remote else 0) + (1 if self._running else 0)

    # -- fault injection -------------------------------------------------------------------

    def inject_excursion(self, start_s: float, duration_s: float, delta_c: float) -> None:
        """Offset the bath temperature by ``delta_c`` for ``duration_s`` from ``start_s``
        (a heater or circulation fault), then return to the modelled temperature."""
        if duration_s <= 0:
            raise ValueError(f"duration_s must be > 0 s, got {duration_s!r}")
        with self._lock:
            self._excursions.append(Excursion(start_s, start_s + duration_s, delta_c))

    def inject_alarm(self, at_s: float, code: int = OVERTEMPERATURE_CODE) -> None:
        """Latch status ``code`` (negative) at device time ``at_s``; alarms (not warnings)
        also stop the circulator."""
        if code >= 0:
            raise ValueError(f"alarm codes are negative, got {code!r}")
        with self._lock:
            self._scheduled.append((at_s, code))
            self._scheduled.sort()

    def report_command_error(self, code: int) -> None:
        """Make the next STATUS report command error ``code`` (negative), once."""
        if code >= 0:
            raise ValueError(f"error codes are negative, got {code!r}")
        with self._lock:
            self._command_error = code

    def clear_alarm(self) -> None:
        """Reset a latched alarm, as the operator does at the bath's keypad."""
        with self._lock:
            self._alarm = None

    # -- time ------------------------------------------------------------------------------

    def advance(self, device_s: float) -> None:
        """Run the thermal model forward to ``device_s`` (earlier times are ignored).

        Time is cut at every scheduled alarm and excursion boundary, and the moment the bath
        crosses ``max_c`` is solved exactly, so results do not depend on how often the model
        is queried.
        """
        with self._lock:
            self._fire_scheduled()
            self._check_overtemperature()
            while self._now_s < device_s:
                end = min(device_s, self._next_boundary())
                crossing = self._crossing_s(end)
                self._integrate(end if crossing is None else crossing)
                if crossing is not None:
                    self._trip(OVERTEMPERATURE_CODE)
                self._fire_scheduled()
                self._check_overtemperature()

    def _next_boundary(self) -> float:
        times = [at for at, _ in self._scheduled if at > self._now_s]
        for e in self._excursions:
            times += [t for t in (e.start_s, e.end_s) if t > self._now_s]
        return min(times, default=math.inf)

    def _crossing_s(self, end_s: float) -> float | None:
        """When, before ``end_s``, the bath would exceed ``max_c`` (None if it does not)."""
        if self._alarm is not None:
            return None
        target = self._setpoint_c if self._running else self.room_c
        limit = self.max_c - self._offset(self._now_s)
        if not self._temp_c < limit < target:
            return None
        at = self._now_s + self.tau_s * math.log((self._temp_c - target) / (limit - target))
        return at if at < end_s else None

    def _fire_scheduled(self) -> None:
        while self._scheduled and self._scheduled[0][0] <= self._now_s:
            _, code = self._scheduled.pop(0)
            self._trip(code)

    def _check_overtemperature(self) -> None:
        if self._alarm is None and self._temp_c + self._offset(self._now_s) > self.max_c:
            self._trip(OVERTEMPERATURE_CODE)

    def _integrate(self, until_s: float) -> None:
        dt = until_s - self._now_s
        if dt > 0:
            target = self._setpoint_c if self._running else self.room_c
            self._temp_c = target + (self._temp_c - target) * math.exp(-dt / self.tau_s)
            self._now_s = until_s

    def _offset(self, t_s: float) -> float:
        return sum(e.delta_c for e in self._excursions if e.start_s <= t_s < e.end_s)

    def _trip(self, code: int) -> None:
        self._alarm = code
        entry = wire.STATUS_CODES.get(code)
        if entry is None or entry.kind == "alarm":
            self._running = False  # an alarm switches heater and pump off

    # -- commands --------------------------------------------------------------------------

    def handle(self, command: str, device_s: float) -> str | None:
        """Answer one command line (terminator removed) at ``device_s``.

        Returns the reply text (no terminator), or None for OUT commands, which the bath
        never answers. Unknown commands are answered with ``-08 INVALID COMMAND``.
        """
        with self._lock:
            self.advance(device_s)
            cmd = wire.parse_command(command)
            if cmd.is_out:
                self._handle_out(cmd)
                return None
            reply = self._handle_in(cmd)
            if reply is None:
                self._command_error = -8
                return wire.format_status(-8)
            return reply

    def _handle_in(self, cmd: wire.Command) -> str | None:
        if cmd.argument is not None:
            return None
        if cmd.name == wire.VERSION:
            return self.version
        if cmd.name == wire.STATUS:
            code = self.status_code()
            if code == self._command_error and self._alarm is None:
                self._command_error = None  # a command error is reported once
            return wire.format_status(code)
        if cmd.name == wire.IN_PV_00:
            reading = self._temp_c + self._offset(self._now_s)
            if self.noise_c:
                reading += self._rng.gauss(0.0, self.noise_c)
            return f"{reading:.2f}"
        if cmd.name == wire.IN_SP_00:
            return f"{self._setpoint_c:.2f}"
        if cmd.name == wire.IN_MODE_05:
            return "1" if self._running else "0"
        return None

    def _handle_out(self, cmd: wire.Command) -> None:
        if cmd.name not in (wire.OUT_SP_00, wire.OUT_MODE_05) or cmd.argument is None:
            self._command_error = -8
            return
        if not self.remote:
            self._command_error = -9
            return
        if cmd.name == wire.OUT_SP_00:
            try:
                value = wire.parse_temperature(cmd.argument)
            except wire.ReplyFormatError:
                self._command_error = -8
                return
            low, high = self.setpoint_limits
            if value < low:
                self._command_error = -10
            elif value > high:
                self._command_error = -11
            else:
                self._setpoint_c = value
            return
        if cmd.argument == "1":
            if self._alarm is not None:
                self._command_error = -9
            else:
                self._running = True
        elif cmd.argument == "0":
            self._running = False
        else:
            self._command_error = -8


class _Client:
    """Per-endpoint serving state: received bytes and whether a client was seen."""

    def __init__(self, endpoint: PtyEndpoint | TcpEndpoint) -> None:
        self.endpoint = endpoint
        self.rx = b""
        self.connected = False
        self.wake_pending = False

    def reset(self) -> None:
        self.rx = b""
        self.connected = False
        self.wake_pending = False


class BathSimulator:
    """Serves a :class:`BathModel` on a pty and/or TCP port from a thread (SIMULATED bath).

    Device time is the model's time at start plus wall time × ``speed``. ``faults`` (a
    :class:`FaultPlan` or its spec string) adds lost replies (``drop``), line noise before a
    reply (``garbage``), stalls, disconnects, over-temperature and injected command errors.
    With ``drop_first_command`` the first command after a client connects is ignored, as a
    real bath's waking interface does. ``pty=True`` uses a pseudo-terminal where the OS has
    them and is skipped elsewhere if TCP is served.
    """

    _READ_TIMEOUT_S = 0.005
    _MAX_COMMAND = 256  # bytes without a CR after which the input is discarded

    def __init__(
        self,
        model: BathModel | None = None,
        *,
        speed: float = 1.0,
        faults: FaultPlan | str | None = None,
        pty: bool = True,
        tcp: bool = True,
        seed: int = 0,
        drop_first_command: bool = True,
        tcp_port: int = 0,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        if not (pty or tcp):
            raise ValueError("the simulator needs at least one endpoint: pty=True or tcp=True")
        self.model = model if model is not None else BathModel(seed=seed)
        plan = FaultPlan.parse(faults) if isinstance(faults, str) else (faults or FaultPlan())
        plan.require_only(
            "JULABO bath",
            frozenset({"drop", "garbage", "stall", "disconnect", "error", "overtemp"}),
            "its replies carry no checksum and no sequence number. Use drop=P (a reply is "
            "lost), garbage=P (line noise before a reply), stall@T=S, disconnect@T, "
            "error:PREFIX=CODE or overtemp@T (T a device time such as 30s).",
        )
        self.faults = plan
        self.speed = speed
        self.drop_first_command = drop_first_command
        if plan.over_temperature_at_ms is not None:
            self.model.inject_alarm(plan.over_temperature_at_ms / 1000.0, OVERTEMPERATURE_CODE)
        self._injector = FaultInjector(plan, seed)
        self._want_pty, self._want_tcp, self._tcp_port_request = pty, tcp, tcp_port
        self._pty: PtyEndpoint | None = None
        self._tcp: TcpEndpoint | None = None
        self._clients: list[_Client] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wall0 = 0.0
        self._device0_s = 0.0
        self._stall_until = 0.0
        self.commands_ignored = 0
        self.error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> BathSimulator:
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
        self._clients = [_Client(ep) for ep in self._endpoints()]
        self._device0_s = self.model.now_s
        self._wall0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="julabo-simulator", daemon=True)
        self._thread.start()
        log.info(
            "JULABO bath simulator (SIMULATED) serving on %s, speed %s",
            ", ".join(ep.description for ep in self._endpoints()),
            self.speed,
        )
        return self

    def stop(self) -> None:
        """Stop serving, join the thread and close the endpoints (idempotent)."""
        self._stop.set()
        self._close_endpoints()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                log.error("JULABO bath simulator thread did not stop within 5 s")

    def __enter__(self) -> BathSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _endpoints(self) -> list[PtyEndpoint | TcpEndpoint]:
        return [ep for ep in (self._pty, self._tcp) if ep is not None]

    def _close_endpoints(self) -> None:
        for ep in self._endpoints():
            ep.close()

    # -- properties ------------------------------------------------------------------------

    @property
    def pty_path(self) -> str | None:
        """The device path to open like a serial port, or None without a pty."""
        return self._pty.path if self._pty is not None else None

    @property
    def tcp_port(self) -> int | None:
        return self._tcp.port if self._tcp is not None else None

    @property
    def url(self) -> str:
        """What a driver opens: the pty path if there is one, else ``socket://127.0.0.1:PORT``."""
        if self._pty is not None:
            return self._pty.path
        if self._tcp is not None:
            return self._tcp.url
        raise RuntimeError("the simulator is not started; call start() first")

    @property
    def device_s(self) -> float:
        """The bath's device time now (seconds)."""
        if self._thread is None:
            return self.model.now_s
        return self._device0_s + (time.monotonic() - self._wall0) * self.speed

    # -- serving ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:
            self.error = exc
            log.exception("JULABO bath simulator stopped by an error")

    def _serve(self) -> None:
        while not self._stop.is_set():
            for client in self._clients:
                self._fire(self._injector.due(round(self.device_s * 1000), 0))
                data = client.endpoint.read(self._READ_TIMEOUT_S)
                if self._stop.is_set():
                    return
                connected = bool(data) or client.endpoint.has_client
                if connected and not client.connected:
                    client.rx = b""
                    client.wake_pending = self.drop_first_command
                client.connected = connected
                if data:
                    self._receive(client, data)

    def _receive(self, client: _Client, data: bytes) -> None:
        commands, client.rx = wire.split_commands(client.rx + data)
        if len(client.rx) > self._MAX_COMMAND:
            log.warning("discarding %d bytes received without a CR", len(client.rx))
            client.rx = b""
        for command in commands:
            reply = self._respond(client, command)
            if reply is not None:
                # drop=P loses the reply, garbage=P sends a line of noise before it
                data = self._injector.outgoing(wire.encode_reply(reply))
                if data:
                    client.endpoint.write(data)
                else:
                    log.info("fault: reply to %r dropped", command)

    def _respond(self, client: _Client, command: str) -> str | None:
        if client.wake_pending:
            client.wake_pending = False
            self.commands_ignored += 1
            log.info("ignoring the first command %r after the client connected", command)
            return None
        if time.monotonic() < self._stall_until:
            self.commands_ignored += 1
            log.debug("stalled: no reply to %r", command)
            return None
        device_s = self.device_s
        code = self._injector.error_reply_code(command)
        if code is not None:
            log.info("injected error -%02d for command %r", code, command)
            self.model.advance(device_s)
            self.model.report_command_error(-code)
            if wire.is_out_command(command):
                return None
            entry = wire.STATUS_CODES.get(-code)
            return wire.format_status(-code, entry.device_text if entry else "ERROR")
        reply = self.model.handle(command, device_s)
        log.debug("%r at device %.3f s -> %r", command, device_s, reply)
        return reply

    def _fire(self, faults: list[ScheduledFault]) -> None:
        for fault in faults:
            if fault.kind == "stall":
                self._stall_until = time.monotonic() + fault.stall_s
                log.info("fault: stalling for %g s (%s)", fault.stall_s, fault.describe())
            else:
                log.info("fault: dropping the client (%s)", fault.describe())
                for client in self._clients:
                    client.endpoint.drop_client()
                    client.reset()


def run_standalone(
    seed: int = 0,
    speed: float = 1.0,
    faults: FaultPlan | str | None = None,
    out: Callable[[str], None] = print,
    *,
    setpoint_c: float = 37.0,
    prewarmed: bool = False,
    tcp_port: int = 0,
    until: threading.Event | None = None,
) -> None:
    """Run a JULABO bath simulator until Ctrl+C (or ``until`` is set), printing where it listens.

    ``prewarmed`` starts the bath circulating at its setpoint, as a lab keeps it; otherwise it
    starts stopped at room temperature.
    """
    model = BathModel(
        setpoint_c=setpoint_c,
        temperature_c=setpoint_c if prewarmed else None,
        running=prewarmed,
        seed=seed,
    )
    sim = BathSimulator(model, speed=speed, faults=faults, seed=seed, tcp_port=tcp_port)
    with sim:
        out("JULABO bath simulator running. Its data is SIMULATED (thermal model), not measured.")
        if sim.pty_path is not None:
            out(f"  serial port (pty): {sim.pty_path}  (8N1; a real bath runs 4800 7E1 RTS/CTS)")
        out(f"  TCP: socket://127.0.0.1:{sim.tcp_port}")
        state = "circulating at" if prewarmed else "stopped, setpoint"
        out(f"  {model.version}, {state} {setpoint_c:.2f} C, seed {seed}, speed {speed:g}x")
        if not sim.faults.is_empty:
            out(f"  fault injection: {sim.faults}")
        serve_until_stopped(sim, "bath", out, until)
