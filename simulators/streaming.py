"""What the simulated sequenced-stream instruments (TEM-4, LOOP-8) share.

:class:`SequencedModel` is the part of a device model common to both: the device clock, the
one ``seq`` counter of data and event frames with its 65 536-frame replay buffer, heartbeats
every device second, ``REPLAY`` and the over-temperature fault. :class:`StreamingSimulator`
serves such a model on a pseudo-terminal and/or a TCP port from a thread, maps wall time to
device time by a speed factor and injects faults. All data they produce is SIMULATED.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Generic, Self, TypeVar

from drivers.wire.sequenced import (
    ERROR_CODES,
    SEQ_BUFFER,
    encode_error_reply,
    encode_event,
    encode_reply,
)
from simulators.endpoints import EndpointUnavailable, PtyEndpoint, TcpEndpoint
from simulators.faults import FAULT_KINDS, FaultInjector, FaultPlan, ScheduledFault
from simulators.physiology import VirtualLab

__all__ = [
    "HEARTBEAT_MS",
    "SequencedModel",
    "StreamingSimulator",
    "echo_command",
]

#: Device time between two heartbeats.
HEARTBEAT_MS = 1000
_MAX_LINE = 1024


def echo_command(line: str) -> str:
    """The command as the device echoes it in ``$R``: trimmed, printable, commas as ';'."""
    text = "".join(c for c in line.strip() if " " <= c <= "~")
    return text.replace(",", ";").replace("$", "?")


class SequencedModel:
    """Device clock, seq counter, replay buffer and over-temperature of a simulated device.

    Subclasses implement :meth:`handle_command`, :attr:`any_running`, ``_emit_until(end_ms)``
    (data frames and heartbeats up to a device time) and ``_fire_over_temperature()``.
    """

    def __init__(self, *, over_temperature_at_ms: int | None = None) -> None:
        self.over_temperature_at_ms = over_temperature_at_ms
        self.over_temperature = False
        self._now_ms = 0
        self._seq = 0
        self._buffer: deque[bytes] = deque(maxlen=SEQ_BUFFER)
        self._history: list[bytes] | None = None
        self._next_heartbeat_ms = HEARTBEAT_MS

    @property
    def device_ms(self) -> int:
        """Device time up to which frames have been emitted."""
        return self._now_ms

    @property
    def last_seq(self) -> int:
        """Seq of the last data/event frame generated (0 before the first); also their count."""
        return self._seq

    def record_history(self) -> None:
        """Keep every data/event frame generated from now on (tests and benchmarks account
        for each frame; the replay buffer keeps only the last 65 536)."""
        if self._history is None:
            self._history = []

    @property
    def history(self) -> list[bytes]:
        """The frames generated since :meth:`record_history` (empty if never called)."""
        return self._history if self._history is not None else []

    def _keep(self, frame: bytes) -> None:
        """A generated data/event frame: into the replay buffer (and the history)."""
        self._buffer.append(frame)
        if self._history is not None:
            self._history.append(frame)

    @property
    def oldest_buffered_seq(self) -> int:
        return self._seq - len(self._buffer) + 1

    @property
    def any_running(self) -> bool:
        raise NotImplementedError

    def handle_command(self, line: str, device_ms: int) -> list[bytes]:
        """Answer one host command received at ``device_ms`` (frames due first)."""
        raise NotImplementedError

    def _emit_until(self, end_ms: int) -> list[bytes]:
        raise NotImplementedError

    def _fire_over_temperature(self) -> list[bytes]:
        raise NotImplementedError

    def advance_to(self, device_ms: int) -> list[bytes]:
        """Emit every data, event and heartbeat frame due up to and including ``device_ms``."""
        out: list[bytes] = []
        if device_ms <= self._now_ms:
            return out
        fault_at = self.over_temperature_at_ms
        if fault_at is not None and not self.over_temperature and fault_at <= device_ms:
            at = max(fault_at, self._now_ms)
            out += self._emit_until(at)
            self._now_ms = at
            out += self._fire_over_temperature()
        out += self._emit_until(device_ms)
        self._now_ms = device_ms
        return out

    def _heartbeats_until(self, end_ms: int) -> list[int]:
        """Device times of the heartbeats due up to ``end_ms`` (each returned once)."""
        due: list[int] = []
        while self._next_heartbeat_ms <= end_ms:
            due.append(self._next_heartbeat_ms)
            self._next_heartbeat_ms += HEARTBEAT_MS
        return due

    def _event(self, channel: int, code: str, text: str) -> bytes:
        self._seq += 1
        frame = encode_event(self._seq, channel, code, text)
        self._keep(frame)
        return frame

    def _replay(self, echo: str, words: list[str]) -> list[bytes]:
        if len(words) != 2 or not words[1].isdigit() or int(words[1]) < 1:
            return [encode_error_reply(echo, 2, "sequence number must be a whole number >= 1")]
        seq = int(words[1])
        if seq > self._seq + 1:
            text = f"sequence number {seq} not sent yet (last is {self._seq})"
            return [encode_error_reply(echo, 2, text)]
        oldest = self.oldest_buffered_seq
        if seq < oldest:
            text = f"sequence number {seq} no longer buffered (oldest is {oldest})"
            return [encode_error_reply(echo, 4, text)]
        return [encode_reply(echo, "OK"), *itertools.islice(self._buffer, seq - oldest, None)]


M = TypeVar("M", bound=SequencedModel)


class StreamingSimulator(Generic[M]):
    """Serves a :class:`SequencedModel` on a pty and/or TCP port from a thread (SIMULATED).

    Device time is (wall time since start) x ``speed``; ``speed=math.inf`` runs as fast as the
    client reads (backpressure through the endpoint). ``pty=True`` uses a pseudo-terminal where
    the OS has them and is skipped elsewhere. Subclasses name the instrument and the prefix of
    its data frames, and build the model.
    """

    #: Most device time emitted per output chunk, so a burst never allocates without bound.
    CHUNK_MS = 1000
    #: In free-running mode with nothing running, device time advances at most this fast.
    IDLE_FREE_RUN_SPEED = 100.0
    _READ_TIMEOUT_S = 0.005
    #: The instrument's name in logs and messages, and a slug for the logger and thread.
    INSTRUMENT: ClassVar[str] = "instrument"
    SLUG: ClassVar[str] = "sequenced"
    #: Frame starts that carry a seq (fault triggers ``seq<N>`` watch them).
    SEQ_FRAME_PREFIXES: ClassVar[tuple[bytes, ...]] = (b"$E,",)

    def __init__(
        self,
        make_model: Callable[[VirtualLab, FaultPlan], M],
        *,
        seed: int,
        speed: float,
        lab: VirtualLab | None,
        faults: FaultPlan | str | None,
        pty: bool,
        tcp: bool,
        tcp_port: int,
    ) -> None:
        if not (speed > 0):
            raise ValueError(f"speed must be > 0 (or math.inf for free-running), got {speed!r}")
        if not (pty or tcp):
            raise ValueError("the simulator needs at least one endpoint: pty=True or tcp=True")
        self.lab = lab if lab is not None else VirtualLab.load()
        plan = FaultPlan.parse(faults) if isinstance(faults, str) else (faults or FaultPlan())
        plan.require_only(
            self.INSTRUMENT,
            FAULT_KINDS - {"short_plate", "lamp_failure"},
            "only a plate reader reads plates",
        )
        self.faults = plan
        self.speed = speed
        self.seed = seed
        self._log = logging.getLogger(f"hemocompat.sim.{self.SLUG}")
        self._model = make_model(self.lab, plan)
        self._injector = FaultInjector(plan, seed)
        self._want_pty, self._want_tcp, self._tcp_port_request = pty, tcp, tcp_port
        self._pty: PtyEndpoint | None = None
        self._tcp: TcpEndpoint | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rx: dict[int, bytearray] = {}
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
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
                    self._log.info("no pty endpoint: %s", exc)
            if self._want_tcp:
                self._tcp = TcpEndpoint("127.0.0.1", self._tcp_port_request)
        except BaseException:
            self._close_endpoints()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"{self.SLUG}-simulator", daemon=True
        )
        self._thread.start()
        self._log.info(
            "%s simulator (SIMULATED data) serving on %s, seed %d, speed %s",
            self.INSTRUMENT,
            ", ".join(ep.description for ep in self._endpoints()),
            self.seed,
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
                self._log.error("%s simulator thread did not stop within 5 s", self.INSTRUMENT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _endpoints(self) -> list[PtyEndpoint | TcpEndpoint]:
        return [ep for ep in (self._pty, self._tcp) if ep is not None]

    def _close_endpoints(self) -> None:
        for ep in self._endpoints():
            ep.close()

    # ------------------------------------------------------------------ properties

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
    def model(self) -> M:
        """The device model; owned by the serving thread, so read it via ground_truth()."""
        return self._model

    @property
    def frames_emitted(self) -> int:
        """How many data/event frames the device has generated so far."""
        with self._lock:
            return self._model.last_seq

    def record_frames(self) -> None:
        """From now on keep every data/event frame the device generates (see emitted_frames)."""
        with self._lock:
            self._model.record_history()

    def emitted_frames(self) -> list[bytes]:
        """Every data/event frame generated since :meth:`record_frames`, in seq order."""
        with self._lock:
            return list(self._model.history)

    @property
    def device_ms(self) -> int:
        """Device time up to which the model has generated frames."""
        with self._lock:
            return self._model.device_ms

    # ------------------------------------------------------------------ serving

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:
            self.error = exc
            self._log.exception("%s simulator stopped by an error", self.INSTRUMENT)

    def _serve(self) -> None:
        wall0 = time.monotonic()
        free = math.isinf(self.speed)
        idle_ref = (wall0, 0)  # (wall, device ms) where free-running idle pacing starts
        read_timeout = 0.0
        while not self._stop.is_set():
            endpoints = self._endpoints()
            for ep in endpoints:
                data = ep.read(read_timeout)
                if data:
                    self._receive(id(ep), data)
            if self._stop.is_set():
                break
            now = self._model.device_ms
            read_timeout = 0.0 if free else self._READ_TIMEOUT_S
            if free:
                if not any(ep.has_client for ep in endpoints):
                    self._stop.wait(0.02)
                    continue
                target = now + self.CHUNK_MS
                wall = time.monotonic()
                if self._model.any_running:
                    idle_ref = (wall, now)
                else:
                    rate = self.IDLE_FREE_RUN_SPEED * 1000
                    target = min(target, idle_ref[1] + int((wall - idle_ref[0]) * rate))
                    if target <= now:
                        self._stop.wait(0.01)
                        continue
            else:
                target = int((time.monotonic() - wall0) * self.speed * 1000)
                if target > now + self.CHUNK_MS:
                    target, read_timeout = now + self.CHUNK_MS, 0.0  # catching up
            next_fault = self._injector.next_time_ms()
            if next_fault is not None and now < next_fault < target:
                target = next_fault
            if target > now:
                with self._lock:
                    frames = self._model.advance_to(target)
                self._send(frames)
            self._fire(self._injector.due(self._model.device_ms, 0))

    def _receive(self, key: int, data: bytes) -> None:
        buf = self._rx.setdefault(key, bytearray())
        buf += data
        while (nl := buf.find(b"\n")) >= 0:
            raw = bytes(buf[:nl]).rstrip(b"\r")
            del buf[: nl + 1]
            self._command(raw.decode("ascii", "replace"))
        if len(buf) > _MAX_LINE:
            self._log.warning("discarding %d bytes received without a line end", len(buf))
            buf.clear()

    def _command(self, line: str) -> None:
        if not line.strip():
            return
        self._log.debug("command %r at device %d ms", line, self._model.device_ms)
        code = self._injector.error_reply_code(line)
        with self._lock:
            if code is None:
                frames = self._model.handle_command(line, self._model.device_ms)
            else:
                self._log.info("injected error %d for command %r", code, line)
                text = ERROR_CODES.get(code, "injected fault")
                frames = [encode_error_reply(echo_command(line), code, text)]
        self._send(frames)

    def _send(self, frames: list[bytes]) -> None:
        if not frames:
            return
        injector = self._injector
        check_seq = injector.has_seq_triggers
        prefixes = self.SEQ_FRAME_PREFIXES
        pending: list[bytes] = []
        for frame in frames:
            pending.append(injector.outgoing(frame))
            if check_seq and frame[:3] in prefixes:
                seq = int(frame[3 : frame.index(b",", 3)])
                fired = injector.due(-1, seq)
                if fired:
                    self._write(b"".join(pending))
                    pending.clear()
                    self._fire(fired)
                    check_seq = injector.has_seq_triggers
        self._write(b"".join(pending))

    def _write(self, blob: bytes) -> None:
        if blob:
            for ep in self._endpoints():
                ep.write(blob)

    def _fire(self, faults: list[ScheduledFault]) -> None:
        for fault in faults:
            self._log.warning("injecting fault: %s", fault.describe())
            if fault.kind == "stall":
                self._stop.wait(fault.stall_s)
            else:
                for ep in self._endpoints():
                    ep.drop_client()
                self._rx.clear()
