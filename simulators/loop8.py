"""Simulated LOOP-8 Chandler loop rotator: a pure clock-driven model and the simulator serving it.

:class:`Loop8Model` is the device: eight loops on one rotor, a clot sensor per loop, its state
machine, driven only by the device time passed in (no I/O, no threads), so it can be tested
byte for byte. :class:`Loop8Simulator` serves a model on a pseudo-terminal and/or a TCP port
from a thread (the serving loop is shared with the TEM-4, :mod:`simulators.streaming`). All
data it produces is SIMULATED (from the virtual lab's loop model), never a measurement.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from drivers.wire.loop8 import (
    DEFAULT_RATE_HZ,
    DEFAULT_RPM,
    ERROR_CODES,
    LOOPS,
    MAX_RATE_HZ,
    MAX_RPM,
    MIN_RATE_HZ,
    MIN_RPM,
    MOTION_FREE_PERMILLE,
    encode_error_reply,
    encode_heartbeat,
    encode_loop,
    encode_reply,
)
from simulators.faults import FaultPlan
from simulators.physiology import NOISE_STREAM, LoopSample, LoopTruth, VirtualLab, loop_truth
from simulators.standalone import serve_until_stopped
from simulators.streaming import SequencedModel, StreamingSimulator, echo_command

__all__ = [
    "MANUFACTURER",
    "MODEL_NAME",
    "Loop8Model",
    "Loop8Simulator",
    "default_samples",
    "run_standalone",
]

log = logging.getLogger("hemocompat.sim.loop8")

MANUFACTURER = "HEMOTEC"
MODEL_NAME = "LOOP-8"


@dataclass
class _Loop:
    number: int
    running: bool = False
    start_ms: int = 0
    rate_hz: int = DEFAULT_RATE_HZ
    next_k: int = 0
    runs: int = 0
    truth: LoopTruth | None = None
    rng: np.random.Generator | None = None


class Loop8Model(SequencedModel):
    """The LOOP-8 state machine and clot sensors, driven by device time (ms); no I/O.

    ``START`` turns the rotor and starts every loop that holds a sample (``t_ms`` counts from
    it); a loop without one is ``EMPTY`` and sends no data. L and E frames share one ``seq``
    counter (from 1) and the last 65 536 of them are kept for ``REPLAY``.
    """

    def __init__(
        self,
        lab: VirtualLab,
        samples: Mapping[int, LoopSample],
        seed: int = 0,
        serial: str = "L8-SIM-0001",
        firmware: str = "1.0.3-sim",
        *,
        rate_hz: int = DEFAULT_RATE_HZ,
        rpm: int = DEFAULT_RPM,
        over_temperature_at_ms: int | None = None,
    ) -> None:
        if "SIM" not in serial.upper():
            raise ValueError(
                f"simulated serial number {serial!r} must contain 'SIM' so that data from it "
                "can never be mistaken for a real instrument's"
            )
        for n, sample in samples.items():
            if not 1 <= n <= LOOPS:
                raise ValueError(f"sample for loop {n}: the LOOP-8 has loops 1-{LOOPS}")
            lab.donor(sample.donor_id)
            if sample.lot_id is not None:
                lab.lot(sample.lot_id)
        lab.loop_model()
        self._instrument = lab.loop8_instrument()
        if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"rate_hz must be {MIN_RATE_HZ}-{MAX_RATE_HZ}, got {rate_hz}")
        if not MIN_RPM <= rpm <= MAX_RPM:
            raise ValueError(f"rpm must be {MIN_RPM}-{MAX_RPM}, got {rpm}")
        super().__init__(over_temperature_at_ms=over_temperature_at_ms)
        self.lab = lab
        self.samples = dict(samples)
        self.seed = seed
        self.serial = serial
        self.firmware = firmware
        self.rate_hz = rate_hz
        self.rpm = rpm
        self.rotating = False
        self._loops = {n: _Loop(n) for n in range(1, LOOPS + 1)}

    # ------------------------------------------------------------------ inspection

    @property
    def state(self) -> str:
        if self.over_temperature:
            return "OVERTEMP"
        return "RUN" if self.rotating else "IDLE"

    def loop_state(self, loop: int) -> str:
        """``RUN`` (measuring), ``IDLE`` (holds blood, not measuring) or ``EMPTY``."""
        if loop not in self.samples:
            return "EMPTY"
        return "RUN" if self._loops[loop].running else "IDLE"

    @property
    def any_running(self) -> bool:
        return self.rotating

    def ground_truth(self, loop: int) -> LoopTruth:
        """The true signals of the loop's current (or last) run; LookupError before one."""
        state = self._loops.get(loop)
        if state is None:
            raise LookupError(f"the LOOP-8 has loops 1-{LOOPS}, not {loop}")
        if state.truth is None:
            why = "has no virtual sample" if loop not in self.samples else "was never started"
            raise LookupError(f"loop {loop} {why}, so it has no ground truth")
        return state.truth

    def housing_temperature_c(self) -> float:
        """The rotor housing temperature the device reports."""
        inst = self._instrument
        return inst.over_temperature_c if self.over_temperature else inst.housing_temperature_c

    # ------------------------------------------------------------------ time

    def _emit_until(self, end_ms: int) -> list[bytes]:
        # (time, priority, loop, t_ms, motion): L frames before H at the same millisecond
        items: list[tuple[int, int, int, int, int]] = []
        noise_sd = self._instrument.motion_noise_sd_permille
        for lp in self._loops.values():
            if not lp.running or end_ms < lp.start_ms:
                continue
            k_last = ((end_ms - lp.start_ms + 1) * lp.rate_hz - 1) // 1000
            if k_last < lp.next_k:
                continue
            ks = np.arange(lp.next_k, k_last + 1, dtype=np.int64)
            t_ms = ks * 1000 // lp.rate_hz
            lp.next_k = k_last + 1
            assert lp.rng is not None and lp.truth is not None
            motion = lp.rng.normal(0.0, noise_sd, ks.size) + lp.truth.motion_permille(t_ms / 1e3)
            permille = np.clip(np.rint(motion), 0, MOTION_FREE_PERMILLE).astype(np.int64)
            start, n = lp.start_ms, lp.number
            items.extend(
                (start + t, 0, n, t, m)
                for t, m in zip(t_ms.tolist(), permille.tolist(), strict=True)
            )
        items.extend((at_ms, 1, 0, 0, 0) for at_ms in self._heartbeats_until(end_ms))
        if len(items) > 1:
            items.sort()
        out: list[bytes] = []
        state = self.state
        temp = round(self.housing_temperature_c() * 100)
        for at_ms, prio, n, t, m in items:
            if prio == 0:
                self._seq += 1
                frame = encode_loop(self._seq, n, t, m)
                self._keep(frame)
            else:
                frame = encode_heartbeat(self._seq, at_ms, temp, state)
            out.append(frame)
        return out

    def _fire_over_temperature(self) -> list[bytes]:
        self.over_temperature = True
        temp = self._instrument.over_temperature_c
        log.warning("simulated over-temperature at device time %d ms", self._now_ms)
        out = [self._event(0, "OVERTEMP", f"housing {temp:.2f} C above limit")]
        self.rotating = False
        for lp in self._loops.values():
            if lp.running:
                lp.running = False
                out.append(self._event(lp.number, "ABORT", "over-temperature"))
        return out

    # ------------------------------------------------------------------ commands

    def handle_command(self, line: str, device_ms: int) -> list[bytes]:
        """Answer one host command received at ``device_ms``.

        Frames due before the command come first, then the reply, then any frames the command
        produces (START/STOP events and first samples, replayed frames).
        """
        out = self.advance_to(device_ms)
        echo = echo_command(line)
        upper = echo.upper()
        words = upper.split()
        if not words:
            return out
        head = words[0]
        if upper == "*IDN?":
            out.append(encode_reply(echo, MANUFACTURER, MODEL_NAME, self.serial, self.firmware))
        elif upper == "STATUS?":
            loops = (self.loop_state(n) for n in range(1, LOOPS + 1))
            out.append(encode_reply(echo, self.state, self.rpm, *loops))
        elif upper == "ROT?":
            out.append(encode_reply(echo, self.rpm))
        elif head == "ROT":
            out.append(self._set_rpm(echo, words))
        elif head == "RATE":
            out.append(self._set_rate(echo, words))
        elif upper == "START":
            out += self._start(echo)
        elif upper == "STOP":
            out += self._stop(echo)
        elif head == "REPLAY":
            out += self._replay(echo, words)
        else:
            out.append(encode_error_reply(echo, 1, ERROR_CODES[1]))
        return out

    def _set_rpm(self, echo: str, words: list[str]) -> bytes:
        rpm = int(words[1]) if len(words) == 2 and words[1].isdigit() else -1
        if not MIN_RPM <= rpm <= MAX_RPM:
            text = f"rpm must be a whole number from {MIN_RPM} to {MAX_RPM}"
            return encode_error_reply(echo, 2, text)
        if self.rotating:
            return encode_error_reply(echo, 3, "cannot change the speed while the rotor turns")
        self.rpm = rpm
        return encode_reply(echo, "OK")

    def _set_rate(self, echo: str, words: list[str]) -> bytes:
        rate = int(words[1]) if len(words) == 2 and words[1].isdigit() else -1
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            text = f"rate must be a whole number from {MIN_RATE_HZ} to {MAX_RATE_HZ} Hz"
            return encode_error_reply(echo, 2, text)
        if self.rotating:
            return encode_error_reply(echo, 3, "cannot change the rate while the rotor turns")
        self.rate_hz = rate
        return encode_reply(echo, "OK")

    def _start(self, echo: str) -> list[bytes]:
        if self.over_temperature:
            return [encode_error_reply(echo, 6, "over-temperature; rotation disabled")]
        if self.rotating:
            return [encode_error_reply(echo, 3, "the rotor is already turning")]
        self.rotating = True
        out = [encode_reply(echo, "OK")]
        for lp in self._loops.values():
            sample = self.samples.get(lp.number)
            if sample is None:
                out.append(self._event(lp.number, "EMPTY", "no blood detected"))
                continue
            self._start_loop(lp, sample)
            out.append(self._event(lp.number, "START", f"{self.rpm} rpm"))
        out += self._emit_until(self._now_ms)
        return out

    def _start_loop(self, lp: _Loop, sample: LoopSample) -> None:
        run = lp.runs
        lp.runs += 1
        seed = self.seed
        if run:  # a repeat on the same loop is a new replicate
            seed = int(np.random.SeedSequence([self.seed, lp.number, run]).generate_state(1)[0])
        lp.truth = loop_truth(self.lab, sample, seed, lp.number)
        lp.rng = np.random.default_rng(
            np.random.SeedSequence([self.seed, lp.number, run, NOISE_STREAM])
        )
        lp.running = True
        lp.start_ms, lp.rate_hz, lp.next_k = self._now_ms, self.rate_hz, 0

    def _stop(self, echo: str) -> list[bytes]:
        out = [encode_reply(echo, "OK")]
        self.rotating = False
        for lp in self._loops.values():
            if lp.running:
                lp.running = False
                out.append(self._event(lp.number, "STOP", "host"))
        return out


def default_samples(lab: VirtualLab) -> dict[int, LoopSample]:
    """Standalone set-up in VD-HEALTHY-01 blood with 1 IU/mL heparin: vehicle, four lots at
    clinically relevant doses, and an unheparinised vehicle as the clotting control."""
    donor = "VD-HEALTHY-01"
    lab.donor(donor)
    for lot in ("VL-BM-01", "VL-UC-01", "VL-PL-01", "VL-AT-01"):
        lab.lot(lot)
    return {
        1: LoopSample(donor),
        2: LoopSample(donor, "VL-BM-01", 1.0e5),
        3: LoopSample(donor, "VL-UC-01", 2.0e4),
        4: LoopSample(donor, "VL-UC-01", 1.0e5),
        5: LoopSample(donor, "VL-PL-01", 1.0e5),
        6: LoopSample(donor, "VL-AT-01", 2.0e4),
        7: LoopSample(donor, "VL-AT-01", 1.0e5),
        8: LoopSample(donor, heparin_iu_per_ml=0.0),
    }


# ---------------------------------------------------------------------- the simulator


class Loop8Simulator(StreamingSimulator[Loop8Model]):
    """Serves a :class:`Loop8Model` on a pty and/or TCP port from a thread (SIMULATED data).

    Device time is (wall time since start) x ``speed``; ``speed=math.inf`` runs as fast as the
    client reads. ``pty=True`` uses a pseudo-terminal where the OS has them.
    """

    INSTRUMENT = "LOOP-8"
    SLUG = "loop8"
    SEQ_FRAME_PREFIXES = (b"$L,", b"$E,")

    def __init__(
        self,
        samples: Mapping[int, LoopSample],
        *,
        seed: int = 0,
        speed: float = 1.0,
        lab: VirtualLab | None = None,
        faults: FaultPlan | str | None = None,
        pty: bool = True,
        tcp: bool = True,
        rate_hz: int = DEFAULT_RATE_HZ,
        tcp_port: int = 0,
        serial: str = "L8-SIM-0001",
    ) -> None:
        def make_model(lab: VirtualLab, plan: FaultPlan) -> Loop8Model:
            return Loop8Model(
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

    def ground_truth(self, loop: int) -> LoopTruth:
        """Thread-safe :meth:`Loop8Model.ground_truth`."""
        with self._lock:
            return self._model.ground_truth(loop)


def _describe(sample: LoopSample) -> str:
    what = (
        "vehicle"
        if sample.is_vehicle
        else f"{sample.lot_id} at {sample.dose_cells_per_ml:g} cells/mL"
    )
    return (
        f"donor {sample.donor_id}, {what}, heparin {sample.heparin_iu_per_ml:g} IU/mL, "
        f"{sample.volume_ml:g} mL"
    )


def run_standalone(
    seed: int = 0,
    speed: float = 1.0,
    samples: Mapping[int, LoopSample] | None = None,
    faults: FaultPlan | str | None = None,
    out: Callable[[str], None] = print,
    *,
    lab: VirtualLab | None = None,
    tcp_port: int = 0,
    until: threading.Event | None = None,
) -> None:
    """Run a LOOP-8 simulator until Ctrl+C (or ``until`` is set), printing where it listens."""
    lab = lab if lab is not None else VirtualLab.load()
    chosen = dict(samples) if samples is not None else default_samples(lab)
    sim = Loop8Simulator(chosen, seed=seed, speed=speed, lab=lab, faults=faults, tcp_port=tcp_port)
    with sim:
        out("LOOP-8 simulator running. Its data is SIMULATED (virtual lab), not measured.")
        if sim.pty_path is not None:
            out(f"  serial port (pty): {sim.pty_path}")
        out(f"  TCP: socket://127.0.0.1:{sim.tcp_port}")
        out(f"  serial number {sim.model.serial}, seed {seed}, speed {speed:g}x")
        for n in range(1, LOOPS + 1):
            out(f"  L{n}: {_describe(chosen[n]) if n in chosen else 'empty'}")
        if not sim.faults.is_empty:
            out(f"  fault injection: {sim.faults}")
        serve_until_stopped(sim, "LOOP-8", out, until)
