"""Simulated TEM-4 thromboelastometer: a pure clock-driven model and the simulator serving it.

:class:`Tem4Model` is the device: its state machine and what it measures, driven only by the
device time passed in, with no I/O and no threads, so it can be tested byte for byte.
:class:`Tem4Simulator` serves a model on a pseudo-terminal and/or a TCP port from a thread,
maps wall time to device time by a speed factor, and injects faults (the serving loop and the
seq/replay machinery are shared with the LOOP-8, :mod:`simulators.streaming`). All data it
produces is SIMULATED (from the virtual lab), never a measurement.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from drivers.wire.tem4 import (
    ASSAYS,
    CHANNELS,
    DEFAULT_RATE_HZ,
    ERROR_CODES,
    MAX_RATE_HZ,
    MIN_RATE_HZ,
    encode_data,
    encode_error_reply,
    encode_heartbeat,
    encode_reply,
)
from simulators.faults import FaultPlan
from simulators.physiology import (
    NOISE_STREAM,
    TemSample,
    TemTruth,
    VirtualLab,
    tem_truth,
)
from simulators.standalone import serve_until_stopped
from simulators.streaming import HEARTBEAT_MS, SequencedModel, StreamingSimulator, echo_command

__all__ = [
    "HEARTBEAT_MS",
    "MANUFACTURER",
    "MODEL_NAME",
    "Tem4Model",
    "Tem4Simulator",
    "default_samples",
    "echo_command",
    "run_standalone",
]

log = logging.getLogger("hemocompat.sim.tem4")

MANUFACTURER = "HEMOTEC"
MODEL_NAME = "TEM-4"
MIN_SETPOINT_C = 20.0
MAX_SETPOINT_C = 45.0
_CHANNEL_COMMAND = re.compile(r"^CH(\d+):(START|STOP)$")


@dataclass
class _Channel:
    number: int
    running: bool = False
    assay: str = ""
    start_ms: int = 0
    rate_hz: int = DEFAULT_RATE_HZ
    next_k: int = 0
    runs: int = 0
    truth: TemTruth | None = None
    rng: np.random.Generator | None = None


class Tem4Model(SequencedModel):
    """The TEM-4 state machine and measurement, driven by device time (ms); no I/O, no threads.

    Frames come back as encoded bytes, in device-time order. D and E frames share one ``seq``
    counter (from 1) and the last 65 536 of them are kept for ``REPLAY``.
    """

    def __init__(
        self,
        lab: VirtualLab,
        samples: Mapping[int, TemSample],
        seed: int = 0,
        serial: str = "T4-SIM-0001",
        firmware: str = "1.4.2-sim",
        *,
        rate_hz: int = DEFAULT_RATE_HZ,
        over_temperature_at_ms: int | None = None,
    ) -> None:
        if "SIM" not in serial.upper():
            raise ValueError(
                f"simulated serial number {serial!r} must contain 'SIM' so that data from it "
                "can never be mistaken for a real instrument's"
            )
        for ch, sample in samples.items():
            if not 1 <= ch <= CHANNELS:
                raise ValueError(f"sample for channel {ch}: the TEM-4 has channels 1-{CHANNELS}")
            lab.donor(sample.donor_id)
            if sample.lot_id is not None:
                lab.lot(sample.lot_id)
        if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"rate_hz must be {MIN_RATE_HZ}-{MAX_RATE_HZ}, got {rate_hz}")
        super().__init__(over_temperature_at_ms=over_temperature_at_ms)
        self.lab = lab
        self.samples = dict(samples)
        self.seed = seed
        self.serial = serial
        self.firmware = firmware
        self.rate_hz = rate_hz
        self._channels = {n: _Channel(n) for n in range(1, CHANNELS + 1)}
        inst = lab.tem4
        self._setpoint_c = inst.default_setpoint_c
        self._temp_ref_c = inst.initial_cup_temperature_c
        self._temp_ref_ms = 0

    # ------------------------------------------------------------------ inspection

    @property
    def state(self) -> str:
        if self.over_temperature:
            return "OVERTEMP"
        return "RUN" if any(c.running for c in self._channels.values()) else "IDLE"

    def is_running(self, channel: int) -> bool:
        return self._channels[channel].running

    @property
    def any_running(self) -> bool:
        return any(c.running for c in self._channels.values())

    def ground_truth(self, channel: int) -> TemTruth:
        """The true trace of the channel's current (or last) run; LookupError before one."""
        ch = self._channels.get(channel)
        if ch is None:
            raise LookupError(f"the TEM-4 has channels 1-{CHANNELS}, not {channel}")
        if ch.truth is None:
            why = "has no virtual sample" if channel not in self.samples else "was never started"
            raise LookupError(f"channel {channel} {why}, so it has no ground truth")
        return ch.truth

    def cup_temperature_c(self, device_ms: int | None = None) -> float:
        """The temperature the device reports at ``device_ms`` (default: now)."""
        inst = self.lab.tem4
        if self.over_temperature:
            return inst.over_temperature_c
        t = self._now_ms if device_ms is None else device_ms
        decay = math.exp(-max(0, t - self._temp_ref_ms) / (1000.0 * inst.cup_time_constant_s))
        actual = self._setpoint_c + (self._temp_ref_c - self._setpoint_c) * decay
        return actual + inst.reading_offset_c

    # ------------------------------------------------------------------ time

    def _emit_until(self, end_ms: int) -> list[bytes]:
        # (time, priority, channel, t_ms, amp): D frames before H at the same millisecond
        items: list[tuple[int, int, int, int, int]] = []
        noise_sd = self.lab.tem4.amplitude_noise_sd_mm
        for ch in self._channels.values():
            if not ch.running or end_ms < ch.start_ms:
                continue
            k_last = ((end_ms - ch.start_ms + 1) * ch.rate_hz - 1) // 1000
            if k_last < ch.next_k:
                continue
            ks = np.arange(ch.next_k, k_last + 1, dtype=np.int64)
            t_ms = ks * 1000 // ch.rate_hz
            ch.next_k = k_last + 1
            assert ch.rng is not None
            amp = ch.rng.normal(0.0, noise_sd, ks.size)
            if ch.truth is not None:
                amp += ch.truth.amplitude_mm(t_ms / 1000.0)
            centi = np.maximum(np.rint(amp * 100.0), 0).astype(np.int64)
            start, n = ch.start_ms, ch.number
            items.extend(
                (start + t, 0, n, t, a) for t, a in zip(t_ms.tolist(), centi.tolist(), strict=True)
            )
        items.extend((at_ms, 1, 0, 0, 0) for at_ms in self._heartbeats_until(end_ms))
        if len(items) > 1:
            items.sort()
        out: list[bytes] = []
        state = self.state
        for at_ms, prio, n, t, a in items:
            if prio == 0:
                self._seq += 1
                frame = encode_data(self._seq, n, t, a)
                self._keep(frame)
            else:
                temp = round(self.cup_temperature_c(at_ms) * 100)
                frame = encode_heartbeat(self._seq, at_ms, temp, state)
            out.append(frame)
        return out

    def _fire_over_temperature(self) -> list[bytes]:
        self.over_temperature = True
        temp = self.lab.tem4.over_temperature_c
        log.warning("simulated over-temperature at device time %d ms", self._now_ms)
        out = [self._event(0, "OVERTEMP", f"cup {temp:.2f} C above limit")]
        for ch in self._channels.values():
            if ch.running:
                ch.running = False
                out.append(self._event(ch.number, "ABORT", "over-temperature"))
        return out

    # ------------------------------------------------------------------ commands

    def handle_command(self, line: str, device_ms: int) -> list[bytes]:
        """Answer one host command received at ``device_ms``.

        Frames due before the command come first, then the reply, then any frames the command
        produces (START/STOP events, replayed frames).
        """
        out = self.advance_to(device_ms)
        echo = echo_command(line)
        words = echo.upper().split()
        if not words:
            return out
        head = words[0]
        if echo.upper() == "*IDN?":
            out.append(encode_reply(echo, MANUFACTURER, MODEL_NAME, self.serial, self.firmware))
        elif echo.upper() == "STATUS?":
            states = ("RUN" if c.running else "IDLE" for c in self._channels.values())
            out.append(encode_reply(echo, self.state, *states))
        elif echo.upper() == "TEMP?":
            out.append(encode_reply(echo, f"{self.cup_temperature_c():.2f}"))
        elif head == "TEMP":
            out.append(self._set_temperature(echo, words))
        elif head == "RATE":
            out.append(self._set_rate(echo, words))
        elif head == "REPLAY":
            out += self._replay(echo, words)
        elif (m := _CHANNEL_COMMAND.match(head)) is not None:
            out += self._channel_command(echo, int(m.group(1)), m.group(2), words[1:])
        else:
            out.append(encode_error_reply(echo, 1, ERROR_CODES[1]))
        return out

    def _set_temperature(self, echo: str, words: list[str]) -> bytes:
        try:
            target = float(words[1]) if len(words) == 2 else math.nan
        except ValueError:
            target = math.nan
        if not MIN_SETPOINT_C <= target <= MAX_SETPOINT_C:
            text = f"setpoint must be a number from {MIN_SETPOINT_C:g} to {MAX_SETPOINT_C:g} C"
            return encode_error_reply(echo, 2, text)
        self._temp_ref_c = self.cup_temperature_c() - self.lab.tem4.reading_offset_c
        self._temp_ref_ms = self._now_ms
        self._setpoint_c = target
        return encode_reply(echo, "OK")

    def _set_rate(self, echo: str, words: list[str]) -> bytes:
        rate = int(words[1]) if len(words) == 2 and words[1].isdigit() else -1
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            text = f"rate must be a whole number from {MIN_RATE_HZ} to {MAX_RATE_HZ} Hz"
            return encode_error_reply(echo, 2, text)
        if self.any_running:
            return encode_error_reply(echo, 3, "cannot change the rate while a channel runs")
        self.rate_hz = rate
        return encode_reply(echo, "OK")

    def _channel_command(self, echo: str, n: int, action: str, args: list[str]) -> list[bytes]:
        if not 1 <= n <= CHANNELS:
            return [encode_error_reply(echo, 2, f"channel must be 1 to {CHANNELS}")]
        ch = self._channels[n]
        if action == "STOP":
            if args:
                return [encode_error_reply(echo, 2, "STOP takes no argument")]
            if not ch.running:
                return [encode_reply(echo, "OK")]
            ch.running = False
            return [encode_reply(echo, "OK"), self._event(n, "STOP", "host")]
        if len(args) != 1 or args[0] not in ASSAYS:
            return [encode_error_reply(echo, 2, f"assay must be one of {' '.join(ASSAYS)}")]
        if self.over_temperature:
            return [encode_error_reply(echo, 6, "over-temperature; measurements disabled")]
        if ch.running:
            return [encode_error_reply(echo, 3, f"channel {n} is already running")]
        self._start(ch, args[0])
        return [
            encode_reply(echo, "OK"),
            self._event(n, "START", args[0]),
            *self._emit_until(self._now_ms),
        ]

    def _start(self, ch: _Channel, assay: str) -> None:
        run = ch.runs
        ch.runs += 1
        seed = self.seed
        if run:  # a repeat on the same channel is a new replicate
            seed = int(np.random.SeedSequence([self.seed, ch.number, run]).generate_state(1)[0])
        sample = self.samples.get(ch.number)
        ch.truth = None if sample is None else tem_truth(self.lab, assay, sample, seed, ch.number)
        ch.rng = np.random.default_rng(
            np.random.SeedSequence([self.seed, ch.number, run, NOISE_STREAM])
        )
        ch.running, ch.assay = True, assay
        ch.start_ms, ch.rate_hz, ch.next_k = self._now_ms, self.rate_hz, 0


def default_samples(lab: VirtualLab) -> dict[int, TemSample]:
    """Standalone set-up: vehicle and VL-UC-01 at three doses in VD-HEALTHY-01 blood."""
    donor = "VD-HEALTHY-01"
    lab.donor(donor)
    lab.lot("VL-UC-01")
    return {
        1: TemSample(donor, None, 0.0),
        2: TemSample(donor, "VL-UC-01", 2.0e4),
        3: TemSample(donor, "VL-UC-01", 1.0e5),
        4: TemSample(donor, "VL-UC-01", 5.0e5),
    }


# ---------------------------------------------------------------------- the simulator


class Tem4Simulator(StreamingSimulator[Tem4Model]):
    """Serves a :class:`Tem4Model` on a pty and/or TCP port from a thread (SIMULATED data).

    Device time is (wall time since start) x ``speed``; ``speed=math.inf`` runs as fast as the
    client reads (backpressure through the endpoint). ``pty=True`` uses a pseudo-terminal where
    the OS has them and is skipped elsewhere.
    """

    INSTRUMENT = "TEM-4"
    SLUG = "tem4"
    SEQ_FRAME_PREFIXES = (b"$D,", b"$E,")

    def __init__(
        self,
        samples: Mapping[int, TemSample],
        *,
        seed: int = 0,
        speed: float = 1.0,
        lab: VirtualLab | None = None,
        faults: FaultPlan | str | None = None,
        pty: bool = True,
        tcp: bool = True,
        rate_hz: int = DEFAULT_RATE_HZ,
        tcp_port: int = 0,
        serial: str = "T4-SIM-0001",
    ) -> None:
        def make_model(lab: VirtualLab, plan: FaultPlan) -> Tem4Model:
            return Tem4Model(
                lab,
                samples,
                seed,
                serial=serial,
                rate_hz=rate_hz,
                over_temperature_at_ms=plan.over_temperature_at_ms,
            )

        super().__init__(
            make_model,
            seed=seed,
            speed=speed,
            lab=lab,
            faults=faults,
            pty=pty,
            tcp=tcp,
            tcp_port=tcp_port,
        )

    def ground_truth(self, channel: int) -> TemTruth:
        """Thread-safe :meth:`Tem4Model.ground_truth`."""
        with self._lock:
            return self._model.ground_truth(channel)


def run_standalone(
    seed: int = 0,
    speed: float = 1.0,
    samples: Mapping[int, TemSample] | None = None,
    faults: FaultPlan | str | None = None,
    out: Callable[[str], None] = print,
    *,
    lab: VirtualLab | None = None,
    tcp_port: int = 0,
    until: threading.Event | None = None,
) -> None:
    """Run a TEM-4 simulator until Ctrl+C (or ``until`` is set), printing where it listens."""
    lab = lab if lab is not None else VirtualLab.load()
    chosen = dict(samples) if samples is not None else default_samples(lab)
    sim = Tem4Simulator(chosen, seed=seed, speed=speed, lab=lab, faults=faults, tcp_port=tcp_port)
    with sim:
        out("TEM-4 simulator running. Its data is SIMULATED (virtual lab), not measured.")
        if sim.pty_path is not None:
            out(f"  serial port (pty): {sim.pty_path}")
        out(f"  TCP: socket://127.0.0.1:{sim.tcp_port}")
        out(f"  serial number {sim.model.serial}, seed {seed}, speed {speed:g}x")
        for ch in sorted(chosen):
            s = chosen[ch]
            what = "vehicle" if s.is_vehicle else f"{s.lot_id} at {s.dose_cells_per_ml:g} cells/mL"
            out(f"  CH{ch}: donor {s.donor_id}, {what}")
        if not sim.faults.is_empty:
            out(f"  fault injection: {sim.faults}")
        serve_until_stopped(sim, "TEM-4", out, until)
