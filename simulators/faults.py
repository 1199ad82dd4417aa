"""Fault injection shared by the instrument simulators: a plan (what) and an injector (when).

A :class:`FaultPlan` is an immutable description, usually parsed from a CLI spec such as::

    drop=0.01,corrupt=0.005,garbage=0.001,stall@30s=2,disconnect@120s,error:CH2:START=5,overtemp@600s

Spec syntax (comma-separated parts, whitespace around parts ignored):

- ``drop=P`` / ``corrupt=P`` / ``garbage=P``: per outgoing data, event or heartbeat frame, the
  probability (0..1) that it is dropped, that its checksum is corrupted, or that a line of
  random bytes is sent before it. Replies to commands are never touched.
- ``stall@T=S``: at trigger T the device goes silent for S seconds of wall time.
- ``disconnect@T``: at trigger T the endpoint drops its client.
- ``error:PREFIX=CODE`` or ``error:PREFIX=CODExN``: commands starting with PREFIX
  (case-insensitive) are refused with instrument error CODE, every time or the first N times.
- ``overtemp@T``: at device time T the instrument reports over-temperature.
- ``short_plate``: a plate reader returns one absorbance too few for every plate it reads.
- ``lamp_failure``: a plate reader's lamp fails: every ``INIT`` (start of a read) is refused.

Each simulator accepts the parts that make sense for its instrument and refuses the others
with a ValueError (:meth:`FaultPlan.require_only`): a plate reader sends no sequenced frames,
a bath reply has no checksum, only a plate reader reads plates.

A trigger T is a device time (``30s``, ``1500ms``, ``2min``) or a data sequence number
(``seq1234``: when the frame with that seq is sent); ``overtemp`` takes a time only.
Random faults come from a RNG seeded by the simulator's seed, so a run is reproducible.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FAULT_KINDS", "ErrorReplyFault", "FaultInjector", "FaultPlan", "ScheduledFault"]

#: Every kind of fault a plan can hold, as :meth:`FaultPlan.kinds` names them; ``seq`` stands
#: for a trigger given as a sequence number.
FAULT_KINDS = frozenset(
    {
        "drop",
        "corrupt",
        "garbage",
        "stall",
        "disconnect",
        "seq",
        "error",
        "overtemp",
        "short_plate",
        "lamp_failure",
    }
)

SYNTAX_HELP = (
    "accepted parts: drop=P, corrupt=P, garbage=P (P from 0 to 1), stall@T=SECONDS, "
    "disconnect@T, error:COMMAND-PREFIX=CODE or =CODExCOUNT, overtemp@T, short_plate, "
    "lamp_failure; "
    "T is a device time such as 30s, 1500ms, 2min, or a sequence number such as seq1234"
)

_TRIGGER = re.compile(r"^(?:(?P<num>\d+(?:\.\d+)?)(?P<unit>ms|s|min)|seq(?P<seq>\d+))$")
_GARBAGE_BYTES = bytes(b for b in range(256) if b not in b"$\r\n")


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """A one-off fault at a device time (ms) or when a given seq is sent."""

    kind: Literal["stall", "disconnect"]
    at_ms: int | None = None
    at_seq: int | None = None
    stall_s: float = 0.0

    def __post_init__(self) -> None:
        if (self.at_ms is None) == (self.at_seq is None):
            raise ValueError("a scheduled fault needs exactly one of at_ms or at_seq")

    def describe(self) -> str:
        when = f"{self.at_ms} ms" if self.at_ms is not None else f"seq {self.at_seq}"
        extra = f" for {self.stall_s:g} s" if self.kind == "stall" else ""
        return f"{self.kind}{extra} at {when}"


@dataclass(frozen=True, slots=True)
class ErrorReplyFault:
    """Refuse commands that start with ``prefix`` with instrument error ``code``."""

    prefix: str
    code: int
    count: int | None = None  # None: every matching command


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What faults a simulator injects; see the module docstring for the spec syntax."""

    drop: float = 0.0
    corrupt: float = 0.0
    garbage: float = 0.0
    scheduled: tuple[ScheduledFault, ...] = ()
    error_replies: tuple[ErrorReplyFault, ...] = ()
    over_temperature_at_ms: int | None = None
    short_plate: bool = False
    lamp_failure: bool = False

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt", "garbage"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fault probability {name}={p!r} must be between 0 and 1")

    @property
    def is_empty(self) -> bool:
        return self == FaultPlan()

    def kinds(self) -> set[str]:
        """The kinds of fault in this plan (names from :data:`FAULT_KINDS`)."""
        kinds = {name for name in ("drop", "corrupt", "garbage") if getattr(self, name) > 0}
        kinds.update(f.kind for f in self.scheduled)
        if any(f.at_seq is not None for f in self.scheduled):
            kinds.add("seq")
        if self.error_replies:
            kinds.add("error")
        if self.over_temperature_at_ms is not None:
            kinds.add("overtemp")
        if self.short_plate:
            kinds.add("short_plate")
        if self.lamp_failure:
            kinds.add("lamp_failure")
        return kinds

    def require_only(self, instrument: str, supported: frozenset[str], hint: str) -> None:
        """Raise ValueError if the plan holds a fault ``instrument`` cannot inject."""
        unknown = supported - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        extra = sorted(self.kinds() - supported)
        if extra:
            shown = ["a seq<N> trigger" if k == "seq" else k for k in extra]
            raise ValueError(f"the {instrument} simulator cannot inject {', '.join(shown)}: {hint}")

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Parse a CLI fault spec; raise ValueError naming the bad part and the syntax."""
        probs = {"drop": 0.0, "corrupt": 0.0, "garbage": 0.0}
        scheduled: list[ScheduledFault] = []
        errors: list[ErrorReplyFault] = []
        overtemp: int | None = None
        switches = {"short_plate": False, "lamp_failure": False}
        text = spec.strip()
        if text.lower() in ("", "none"):
            return cls()
        for raw in text.split(","):
            part = raw.strip()
            if not part:
                continue
            try:
                if part.lower().startswith("error:"):
                    errors.append(_parse_error(part[6:]))
                    continue
                head, eq, value = part.partition("=")
                name, at, when = head.strip().partition("@")
                name = name.strip().lower()
                if name in probs and not at:
                    probs[name] = _probability(value if eq else "")
                elif name in switches and not at and not eq:
                    switches[name] = True
                elif name == "stall" and at:
                    ms, seq = _trigger(when)
                    if not eq:
                        raise ValueError("a stall needs its length, e.g. stall@30s=2")
                    seconds = _positive(value)
                    scheduled.append(ScheduledFault("stall", ms, seq, seconds))
                elif name == "disconnect" and at and not eq:
                    ms, seq = _trigger(when)
                    scheduled.append(ScheduledFault("disconnect", ms, seq))
                elif name == "overtemp" and at and not eq:
                    ms, seq = _trigger(when)
                    if ms is None:
                        raise ValueError("over-temperature takes a device time, e.g. 600s")
                    overtemp = ms
                else:
                    raise ValueError("not a known fault")
            except ValueError as exc:
                raise ValueError(f"bad fault spec part {part!r}: {exc}; {SYNTAX_HELP}") from None
        return cls(
            drop=probs["drop"],
            corrupt=probs["corrupt"],
            garbage=probs["garbage"],
            scheduled=tuple(scheduled),
            error_replies=tuple(errors),
            over_temperature_at_ms=overtemp,
            short_plate=switches["short_plate"],
            lamp_failure=switches["lamp_failure"],
        )


def _probability(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise ValueError(f"probability {text!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability {p:g} is outside 0..1")
    return p


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{text!r} must be > 0 seconds")
    return value


def _trigger(text: str) -> tuple[int | None, int | None]:
    m = _TRIGGER.match(text.strip().lower())
    if m is None:
        raise ValueError(f"trigger {text!r} is not a time (30s, 1500ms, 2min) or seq<N>")
    if m.group("seq") is not None:
        return None, int(m.group("seq"))
    scale = {"ms": 1.0, "s": 1000.0, "min": 60000.0}[m.group("unit")]
    return round(float(m.group("num")) * scale), None


def _parse_error(body: str) -> ErrorReplyFault:
    prefix, eq, value = body.rpartition("=")
    prefix = prefix.strip()
    if not eq or not prefix:
        raise ValueError("expected error:COMMAND-PREFIX=CODE, e.g. error:CH2:START=5")
    code_text, x, count_text = value.strip().lower().partition("x")
    if not code_text.isdigit() or not 1 <= int(code_text) <= 99:
        raise ValueError(f"error code {code_text!r} must be a whole number from 1 to 99")
    count = None
    if x:
        if not count_text.isdigit() or int(count_text) < 1:
            raise ValueError(f"count {count_text!r} must be a whole number >= 1")
        count = int(count_text)
    return ErrorReplyFault(prefix.upper(), int(code_text), count)


@dataclass
class FaultInjector:
    """Applies a :class:`FaultPlan` during one simulator run (mutable, single-threaded)."""

    plan: FaultPlan
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _pending: list[ScheduledFault] = field(init=False, repr=False)
    _error_counts: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"hemocompat-faults-{self.seed}")
        self._pending = list(self.plan.scheduled)
        self._error_counts = {}
        self._random = self.plan.drop > 0 or self.plan.corrupt > 0 or self.plan.garbage > 0

    def outgoing(self, frame: bytes) -> bytes:
        """The bytes to send for one device→host frame: unchanged, dropped (b""), damaged."""
        if not self._random or frame.startswith(b"$R"):
            return frame
        rng = self._rng
        drop, corrupt, garbage = rng.random(), rng.random(), rng.random()
        if drop < self.plan.drop:
            return b""
        if corrupt < self.plan.corrupt:
            frame = _corrupt_checksum(frame, rng)
        if garbage < self.plan.garbage:
            junk = bytes(rng.choice(_GARBAGE_BYTES) for _ in range(rng.randint(1, 16)))
            frame = junk + b"\r\n" + frame
        return frame

    def error_reply_code(self, command: str) -> int | None:
        """The error code to refuse this command with, if an error-reply fault matches."""
        key = command.strip().upper()
        for i, fault in enumerate(self.plan.error_replies):
            if not key.startswith(fault.prefix):
                continue
            used = self._error_counts.get(i, 0)
            if fault.count is not None and used >= fault.count:
                continue
            self._error_counts[i] = used + 1
            return fault.code
        return None

    def next_time_ms(self) -> int | None:
        """Device time of the earliest pending time-triggered fault (to end an output chunk)."""
        times = [f.at_ms for f in self._pending if f.at_ms is not None]
        return min(times) if times else None

    @property
    def has_seq_triggers(self) -> bool:
        return any(f.at_seq is not None for f in self._pending)

    def due(self, device_ms: int, last_seq: int) -> list[ScheduledFault]:
        """Scheduled faults whose trigger has been reached; each fires once, in order."""
        fired = [
            f
            for f in self._pending
            if (f.at_ms is not None and device_ms >= f.at_ms)
            or (f.at_seq is not None and last_seq >= f.at_seq)
        ]
        for f in fired:
            self._pending.remove(f)
        return fired


def _corrupt_checksum(frame: bytes, rng: random.Random) -> bytes:
    star = frame.rfind(b"*")
    if star < 0 or len(frame) < star + 3:
        return frame
    good = int(frame[star + 1 : star + 3], 16)
    bad = good ^ rng.randint(1, 255)
    return frame[: star + 1] + b"%02X" % bad + frame[star + 3 :]
