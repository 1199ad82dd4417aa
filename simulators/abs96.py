"""Simulated ABS-96 absorbance plate reader: a TAT ELISA plate behind the reader's SCPI command
set, served on a TCP socket that pyvisa-py opens as ``TCPIP::127.0.0.1::PORT::SOCKET``
(docs/protocols/abs96.md).

:class:`Abs96Model` is pure: it answers one program message at a given device time, with the
IEEE 488.2 error queue, event status register and ``*OPC?`` semantics. The plate's absorbances
come from a kit-like 4PL (:class:`ElisaKit`, ``simulators/data/elisa_kit.yaml``) with seeded
plate, well and read noise. :class:`Abs96Simulator` owns the endpoint, turns wall time into
device time (× ``speed``) and injects faults. Every value it serves is SIMULATED.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from drivers.wire import scpi
from drivers.wire.scpi import (
    ERROR_CODES,
    ESR_OPC,
    ESR_PON,
    MAX_OD,
    MAX_WAVELENGTHS,
    N_WELLS,
    ProgramUnit,
    header_matches,
)
from simulators.endpoints import TcpEndpoint
from simulators.faults import FaultInjector, FaultPlan, ScheduledFault
from simulators.standalone import serve_until_stopped

__all__ = [
    "DEFAULT_WAVELENGTHS",
    "ERROR_QUEUE_SIZE",
    "LAMP_FAILURE",
    "MANUFACTURER",
    "MODEL_NAME",
    "OVER_TEMPERATURE",
    "READ_BASE_S",
    "READ_PER_WAVELENGTH_S",
    "Abs96Model",
    "Abs96Simulator",
    "ElisaKit",
    "KitFileError",
    "default_plate",
    "run_standalone",
]

log = logging.getLogger("hemocompat.sim.abs96")

MANUFACTURER = "HEMOTEC"
MODEL_NAME = "ABS-96"
FIRMWARE = "1.4.0"
#: Wavelengths after power-on and ``*RST``.
DEFAULT_WAVELENGTHS: tuple[int, ...] = (492,)
#: Device time of one plate read: a fixed part (plate in, lamp, plate out) and one per
#: wavelength (filter change and 96 wells). Illustrative.
READ_BASE_S = 4.0
READ_PER_WAVELENGTH_S = 2.0
#: Entries the error queue holds; the last becomes -350 "Queue overflow" when it overflows.
ERROR_QUEUE_SIZE = 10
#: Device-specific error codes.
LAMP_FAILURE = 201
OVER_TEMPERATURE = 202
_CHAMBER_C = 25.0
_OVER_TEMPERATURE_C = 45.0
_MAX_LINE = 4096
_KIT_FILE = "elisa_kit.yaml"

WellContent = Sequence[Any]
"""``("blank",)``, ``("standard", µg/L)``, ``("sample", true µg/L, dilution)``,
``("control", µg/L)`` or ``("empty",)``; wells not listed are empty."""


# ---------------------------------------------------------------------------- the kit


class KitFileError(ValueError):
    """The kit file is missing a value or has one out of range; names file and key."""

    def __init__(self, source: str, key: str, detail: str) -> None:
        self.source = source
        self.key = key
        super().__init__(f"{source}: {key}: {detail}")


@dataclass(frozen=True, slots=True)
class ElisaKit:
    """The illustrative kit constants of the simulated TAT ELISA (see elisa_kit.yaml)."""

    name: str
    standards_ug_per_l: tuple[float, ...]
    peak_nm: float
    band_sigma_nm: float
    a: float
    b: float
    c_ug_per_l: float
    d: float
    background_od: float
    background_sd_od: float
    plate_cv: float
    well_cv: float
    read_cv: float
    source: str = field(default="", compare=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ElisaKit:
        """Load a kit file (default: the packaged ``simulators/data/elisa_kit.yaml``)."""
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        if path is None:
            source = f"simulators/data/{_KIT_FILE}"
            text = resources.files("simulators").joinpath("data", _KIT_FILE).read_text("utf-8")
        else:
            source = str(path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise KitFileError(source, "(file)", f"cannot read the file: {exc}") from None
        try:
            data = YAML(typ="safe").load(text)
        except YAMLError as exc:
            raise KitFileError(source, "(syntax)", f"not valid YAML: {exc}") from None

        def get(path_: str, lo: float, hi: float) -> float:
            node: Any = data
            for key in path_.split("."):
                if not isinstance(node, dict) or key not in node:
                    raise KitFileError(source, path_, "missing")
                node = node[key]
            if isinstance(node, bool) or not isinstance(node, int | float):
                raise KitFileError(source, path_, f"{node!r} is not a number")
            if not (math.isfinite(node) and lo <= node <= hi):
                raise KitFileError(source, path_, f"{node!r} is outside {lo:g}–{hi:g}")
            return float(node)

        kit_node = data.get("kit") if isinstance(data, dict) else None
        levels = kit_node.get("standards_ug_per_l") if isinstance(kit_node, dict) else None
        if not (
            isinstance(levels, list)
            and levels
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in levels)
            and all(x > 0 for x in levels)
        ):
            raise KitFileError(source, "kit.standards_ug_per_l", "give a list of levels > 0")
        kit = cls(
            name=str(kit_node.get("name", "kit")) if isinstance(kit_node, dict) else "kit",
            standards_ug_per_l=tuple(float(x) for x in levels),
            peak_nm=get("signal.peak_nm", 340, 1000),
            band_sigma_nm=get("signal.band_sigma_nm", 1, 1000),
            a=get("signal.curve_4pl.a", 0, MAX_OD),
            b=get("signal.curve_4pl.b", 0.1, 10),
            c_ug_per_l=get("signal.curve_4pl.c_ug_per_l", 1e-6, 1e6),
            d=get("signal.curve_4pl.d", 0, MAX_OD),
            background_od=get("plate.background_od", 0, 1),
            background_sd_od=get("plate.background_sd_od", 0, 0.5),
            plate_cv=get("noise.plate_cv", 0, 1),
            well_cv=get("noise.well_cv", 0, 1),
            read_cv=get("noise.read_cv", 0, 1),
            source=source,
        )
        if kit.d <= kit.a:
            raise KitFileError(source, "signal.curve_4pl", "d must exceed a (a rising curve)")
        return kit

    def curve_od(self, conc_ug_per_l: float) -> float:
        """The 4PL: chromogen OD at the peak wavelength for TAT in the well (no noise)."""
        if conc_ug_per_l <= 0:
            return self.a
        ratio: float = (conc_ug_per_l / self.c_ug_per_l) ** self.b
        return self.d + (self.a - self.d) / (1.0 + ratio)

    def band(self, nm: float) -> float:
        """Relative chromogen absorbance at ``nm`` (1 at the peak)."""
        return math.exp(-0.5 * ((nm - self.peak_nm) / self.band_sigma_nm) ** 2)


def _well_concentrations(contents: Mapping[str, WellContent]) -> list[float | None]:
    """TAT in each well (µg/L, after dilution), None for an empty well."""
    conc: list[float | None] = [None] * N_WELLS
    seen: dict[int, str] = {}
    for well, content in contents.items():
        index = scpi.well_index(well)
        if index in seen:
            raise ValueError(f"well {well!r} is given twice (also as {seen[index]!r})")
        seen[index] = well
        conc[index] = _content_conc(well, content)
    return conc


def _positive(well: str, what: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not math.isfinite(float(value))
        or float(value) <= 0
    ):
        raise ValueError(f"well {well}: the {what} {value!r} must be a finite number > 0")
    return float(value)


def _content_conc(well: str, content: WellContent) -> float | None:
    if isinstance(content, str) or not isinstance(content, Sequence) or not content:
        raise ValueError(
            f"well {well}: {content!r} is not a content tuple such as ('blank',), "
            f"('standard', 8.0), ('sample', 120.0, 5) or ('control', 40.0)"
        )
    kind, args = content[0], tuple(content[1:])
    shapes = {"empty": 0, "blank": 0, "standard": 1, "control": 1, "sample": 2}
    if kind not in shapes or len(args) != shapes[kind]:
        raise ValueError(
            f"well {well}: {tuple(content)!r} is not one of ('empty',), ('blank',), "
            f"('standard', conc), ('control', conc), ('sample', true_conc, dilution)"
        )
    if kind == "empty":
        return None
    if kind == "blank":
        return 0.0
    if kind in ("standard", "control"):
        return _positive(well, "concentration (µg/L)", args[0])
    return _positive(well, "true concentration (µg/L)", args[0]) / _positive(
        well, "dilution", args[1]
    )


def default_plate(kit: ElisaKit | None = None) -> dict[str, tuple[Any, ...]]:
    """A TAT plate: standards in duplicate (A–F, columns 1–2), blanks (G–H, 1–2), two
    controls (columns 11–12) and four samples in duplicate, one diluted 1:5 and one 1:20."""
    kit = kit if kit is not None else ElisaKit.load()
    plate: dict[str, tuple[Any, ...]] = {}
    for row, level in zip("ABCDEF", kit.standards_ug_per_l, strict=False):
        plate[f"{row}1"] = plate[f"{row}2"] = ("standard", level)
    for well in ("G1", "G2", "H1", "H2"):
        plate[well] = ("blank",)
    plate["A11"] = plate["A12"] = ("control", 5.0)
    plate["B11"] = plate["B12"] = ("control", 40.0)
    samples = [(3.0, 1.0), (12.0, 1.0), (120.0, 5.0), (400.0, 20.0)]
    for row, (true, dilution) in zip("ABCD", samples, strict=True):
        plate[f"{row}3"] = plate[f"{row}4"] = ("sample", true, dilution)
    return plate


# ---------------------------------------------------------------------------- the model


@dataclass
class _Line:
    """A program message whose execution waits behind an ``*OPC?``."""

    units: deque[ProgramUnit]
    replies: list[str] = field(default_factory=list)


class _Blocked(Exception):  # noqa: N818 - control flow, never leaves the model
    """``*OPC?`` while a read is running: the rest of the message waits."""


class Abs96Model:
    """The reader's state machine and the plate it holds; pure and driven by device time.

    ``handle(line, device_s)`` executes one program message (``;``-separated commands) and
    returns its reply, or None when it has none or waits behind ``*OPC?``; such waiting
    messages complete in :meth:`take_replies` once the read is done. The plate's optical
    properties are fixed by ``seed``; each read adds fresh read noise from (seed, read
    number), so a session is reproducible.
    """

    def __init__(
        self,
        plate_contents: Mapping[str, WellContent] | None = None,
        seed: int = 0,
        kit: ElisaKit | None = None,
        *,
        serial: str | None = None,
        chamber_c: float = _CHAMBER_C,
    ) -> None:
        self.kit = kit if kit is not None else ElisaKit.load()
        self.seed = seed
        self.serial = serial if serial is not None else f"A96-SIM-{seed:04d}"
        self.chamber_c = chamber_c
        self._conc = _well_concentrations(plate_contents or {})
        rng = np.random.default_rng([seed, 0x96])
        kit_ = self.kit
        self.plate_factor = float(np.exp(kit_.plate_cv * rng.standard_normal()))
        self._well_factor = np.exp(kit_.well_cv * rng.standard_normal(N_WELLS))
        self._background = kit_.background_od + kit_.background_sd_od * rng.standard_normal(N_WELLS)
        #: Fault switches: INIT fails with error 201; FETC:PLAT? returns 95 values.
        self.lamp_failure = False
        self.short_plate = False
        self._over_temperature_at_s: float | None = None
        self._over_temperature = False
        self._now_s = 0.0
        self._wavelengths = DEFAULT_WAVELENGTHS
        self._data: dict[int, list[float]] | None = None
        self._read_done_at: float | None = None
        self._read_wavelengths: tuple[int, ...] = ()
        self._reads = 0
        self._errors: deque[scpi.ErrorEntry] = deque()
        self._esr = ESR_PON
        self._opc_armed = False
        self._waiting: deque[_Line] = deque()

    # -- state ---------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        return self._now_s

    @property
    def wavelengths(self) -> tuple[int, ...]:
        return self._wavelengths

    @property
    def busy(self) -> bool:
        """True while a plate read is running."""
        return self._read_done_at is not None

    @property
    def read_done_at_s(self) -> float | None:
        """Device time the running read completes, or None."""
        return self._read_done_at

    @property
    def reads(self) -> int:
        """Plate reads completed since the model was created."""
        return self._reads

    @property
    def error_queue(self) -> tuple[scpi.ErrorEntry, ...]:
        return tuple(self._errors)

    def read_time_s(self, n_wavelengths: int) -> float:
        """Device time one read takes at ``n_wavelengths`` wavelengths."""
        return READ_BASE_S + READ_PER_WAVELENGTH_S * n_wavelengths

    def well_conc(self, well: str) -> float | None:
        """TAT in a well (µg/L, after dilution), None if empty."""
        return self._conc[scpi.well_index(well)]

    def expected_od(self, well: str, nm: int) -> float:
        """The noise-free absorbance of a well (no plate, well or read noise)."""
        conc = self._conc[scpi.well_index(well)]
        chromogen = 0.0 if conc is None else self.kit.band(nm) * self.kit.curve_od(conc)
        return min(MAX_OD, self.kit.background_od + chromogen)

    def inject_over_temperature(self, at_s: float) -> None:
        """From device time ``at_s`` the chamber reads 45 °C and error 202 is queued once."""
        self._over_temperature_at_s = at_s

    def temperature_c(self, device_s: float) -> float:
        """Read-chamber temperature: a slow ±0.1 °C drift, or 45 °C after over-temperature."""
        base = _OVER_TEMPERATURE_C if self._over_temperature else self.chamber_c
        return round(base + 0.1 * math.sin(2.0 * math.pi * device_s / 900.0), 2)

    # -- optics --------------------------------------------------------------------------

    def read(self, wavelengths: Sequence[int], read_index: int) -> dict[int, list[float]]:
        """The absorbances of one read (A1 … H12 per wavelength), 4 decimals, ≤ 4.000."""
        kit = self.kit
        rng = np.random.default_rng([self.seed, 0x96, read_index + 1])
        plate: dict[int, list[float]] = {}
        for nm in wavelengths:
            band = kit.band(nm)
            noise = 1.0 + kit.read_cv * rng.standard_normal(N_WELLS)
            values: list[float] = []
            for i in range(N_WELLS):
                conc = self._conc[i]
                od = float(self._background[i])
                if conc is not None:
                    curve = kit.curve_od(conc)
                    chromogen = kit.a + (curve - kit.a) * self.plate_factor
                    od += band * chromogen * float(self._well_factor[i])
                values.append(round(min(MAX_OD, od * float(noise[i])), 4))
            plate[int(nm)] = values
        return plate

    # -- the command interpreter ---------------------------------------------------------

    def advance(self, device_s: float) -> None:
        """Move device time on: complete a read that is due, fire over-temperature."""
        self._now_s = max(self._now_s, device_s)
        if self._read_done_at is not None and self._now_s >= self._read_done_at:
            self._data = self.read(self._read_wavelengths, self._reads)
            self._reads += 1
            self._read_done_at = None
            if self._opc_armed:
                self._esr |= ESR_OPC
                self._opc_armed = False
        at = self._over_temperature_at_s
        if at is not None and not self._over_temperature and self._now_s >= at:
            self._over_temperature = True
            self.queue_error(OVER_TEMPERATURE)

    def queue_error(self, code: int, detail: str = "") -> None:
        """Add an entry to the error queue (and its bit to the event status register)."""
        message = ERROR_CODES.get(code, "Device-specific error")
        if detail:
            message += ";" + detail
        self._esr |= scpi.esr_bit_for_error(code)
        if len(self._errors) >= ERROR_QUEUE_SIZE:
            self._errors[-1] = scpi.ErrorEntry(-350, ERROR_CODES[-350])
            return
        self._errors.append(scpi.ErrorEntry(code, message))

    def handle(self, line: str, device_s: float) -> str | None:
        """Execute one program message; its reply (query replies joined by ``;``), or None.

        None also when the message waits behind ``*OPC?`` (see :meth:`take_replies`).
        """
        self.advance(device_s)
        units = deque(scpi.parse_program_message(line))
        if not units:
            return None
        pending = _Line(units)
        self._waiting.append(pending)
        if len(self._waiting) > 1:
            return None
        self._run_waiting()
        if self._waiting and self._waiting[0] is pending:
            return None
        return ";".join(pending.replies) if pending.replies else None

    def take_replies(self, device_s: float) -> list[str]:
        """Replies of messages that waited behind ``*OPC?`` and have now completed."""
        self.advance(device_s)
        if not self._waiting:
            return []
        return self._run_waiting()

    def discard_io(self) -> None:
        """Forget messages waiting behind ``*OPC?`` (the client disconnected)."""
        self._waiting.clear()

    def refuse(self, code: int) -> None:
        """An injected refusal: the command is not executed and ``code`` is queued."""
        self.queue_error(code, "injected fault")

    def _run_waiting(self) -> list[str]:
        done: list[str] = []
        while self._waiting:
            message = self._waiting[0]
            while message.units:
                unit = message.units[0]
                try:
                    reply = self._execute(unit)
                except _Blocked:
                    return done
                message.units.popleft()
                if reply is not None:
                    message.replies.append(reply)
            self._waiting.popleft()
            if message.replies:
                done.append(";".join(message.replies))
        return done

    def _execute(self, unit: ProgramUnit) -> str | None:
        for pattern, takes_params, method in _COMMANDS:
            if header_matches(unit.header, pattern):
                if unit.params and not takes_params:
                    self.queue_error(-108, "this command takes no parameters")
                    return None
                result: str | None = getattr(self, method)(unit.params)
                return result
        self.queue_error(-113)
        return None

    def _idn(self, _params: tuple[str, ...]) -> str:
        return f"{MANUFACTURER},{MODEL_NAME},{self.serial},{FIRMWARE}"

    def _opc_query(self, _params: tuple[str, ...]) -> str:
        if self.busy:
            raise _Blocked
        return "1"

    def _esr_query(self, _params: tuple[str, ...]) -> str:
        value, self._esr = self._esr, 0
        return str(value)

    def _error_query(self, _params: tuple[str, ...]) -> str:
        entry = self._errors.popleft() if self._errors else scpi.ErrorEntry(0, "No error")
        return str(entry)

    def _wavelength_query(self, _params: tuple[str, ...]) -> str:
        return scpi.format_wavelengths(self._wavelengths)

    def _temperature_query(self, _params: tuple[str, ...]) -> str:
        return f"{self.temperature_c(self._now_s):.2f}"

    def _rst(self, _params: tuple[str, ...]) -> None:
        self._wavelengths = DEFAULT_WAVELENGTHS
        self._data = None
        self._read_done_at = None
        self._opc_armed = False

    def _cls(self, _params: tuple[str, ...]) -> None:
        self._errors.clear()
        self._esr = 0
        self._opc_armed = False

    def _opc(self, _params: tuple[str, ...]) -> None:
        if self.busy:
            self._opc_armed = True
        else:
            self._esr |= ESR_OPC

    def _configure(self, params: tuple[str, ...]) -> None:
        if not params:
            self.queue_error(-109, "give one or two wavelengths in nm")
            return
        if len(params) > MAX_WAVELENGTHS:
            self.queue_error(-108, "at most two wavelengths")
            return
        values: list[int] = []
        for text in params:
            try:
                number = scpi.parse_number(text)
            except scpi.ReplyFormatError:
                self.queue_error(-104, f"{text[:20]!r} is not a number")
                return
            if number != int(number):
                self.queue_error(-224, f"{text[:20]} nm is not a whole number")
                return
            nm = int(number)
            problem = scpi.wavelength_problem(nm)
            if problem is not None:
                self.queue_error(-222, problem.replace("–", "-"))
                return
            values.append(nm)
        if len(set(values)) != len(values):
            self.queue_error(-224, "the wavelengths must differ")
            return
        if self.busy:
            self.queue_error(-221, "a read is running")
            return
        self._wavelengths = tuple(values)
        self._data = None

    def _init(self, _params: tuple[str, ...]) -> None:
        if self.busy:
            self.queue_error(-213, "a read is already running")
            return
        if self.lamp_failure:
            self.queue_error(LAMP_FAILURE)
            self._data = None
            return
        self._data = None
        self._read_wavelengths = self._wavelengths
        self._read_done_at = self._now_s + self.read_time_s(len(self._wavelengths))

    def _fetch(self, params: tuple[str, ...]) -> str | None:
        if len(params) > 1:
            self.queue_error(-108)
            return None
        if self._data is None:
            detail = "the read is still running" if self.busy else "no completed read"
            self.queue_error(-230, detail)
            return None
        nm = self._read_wavelengths[0]
        if params:
            try:
                number = scpi.parse_number(params[0])
            except scpi.ReplyFormatError:
                self.queue_error(-104, f"{params[0][:20]!r} is not a number")
                return None
            if number != int(number) or int(number) not in self._data:
                self.queue_error(-222, f"{params[0][:20]} nm was not read")
                return None
            nm = int(number)
        values = self._data[nm]
        if self.short_plate:
            values = values[:-1]
        return scpi.format_plate(values)


#: The command set: header pattern (upper case = short form, [optional] nodes), whether it
#: takes parameters, and the model method that executes it.
_COMMANDS: tuple[tuple[str, bool, str], ...] = (
    ("*IDN?", False, "_idn"),
    ("*OPC?", False, "_opc_query"),
    ("*ESR?", False, "_esr_query"),
    ("SYSTem:ERRor[:NEXT]?", False, "_error_query"),
    ("CONFigure:WAVelength?", False, "_wavelength_query"),
    ("FETCh:PLATe?", True, "_fetch"),
    ("TEMPerature?", False, "_temperature_query"),
    ("*RST", False, "_rst"),
    ("*CLS", False, "_cls"),
    ("*OPC", False, "_opc"),
    ("CONFigure:WAVelength", True, "_configure"),
    ("INITiate[:IMMediate]", False, "_init"),
)


# ---------------------------------------------------------------------------- the server


class Abs96Simulator:
    """Serves an :class:`Abs96Model` on a TCP port from a thread (a SIMULATED reader).

    Device time is wall time × ``speed`` since :meth:`start`. ``faults`` (a
    :class:`FaultPlan` or its spec string) adds ``stall@T=S`` (commands wait unanswered for
    S s of wall time, then run: replies arrive late), ``disconnect@T`` (the client is
    dropped), ``error:PREFIX=N`` (matching commands are not executed and error ``N`` is
    queued), ``overtemp@T`` (error 202, chamber at 45 °C), ``short_plate`` (``FETC:PLAT?``
    returns 95 values) and ``lamp_failure`` (``INIT`` fails with error 201); the last two are
    also keyword arguments.
    """

    _READ_TIMEOUT_S = 0.005

    def __init__(
        self,
        model: Abs96Model | None = None,
        *,
        speed: float = 1.0,
        faults: FaultPlan | str | None = None,
        port: int = 0,
        short_plate: bool = False,
        lamp_failure: bool = False,
    ) -> None:
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        plan = FaultPlan.parse(faults) if isinstance(faults, str) else (faults or FaultPlan())
        plan.require_only(
            "ABS-96",
            frozenset({"stall", "disconnect", "error", "overtemp", "short_plate", "lamp_failure"}),
            "it sends no data frames or sequence numbers. Use stall@T=S, disconnect@T, "
            "error:PREFIX=CODE, overtemp@T (T a device time such as 30s), short_plate or "
            "lamp_failure.",
        )
        self.model = model if model is not None else Abs96Model(default_plate())
        self.model.short_plate = self.model.short_plate or short_plate or plan.short_plate
        self.model.lamp_failure = self.model.lamp_failure or lamp_failure or plan.lamp_failure
        if plan.over_temperature_at_ms is not None:
            self.model.inject_over_temperature(plan.over_temperature_at_ms / 1000.0)
        self.faults = plan
        self.speed = float(speed)
        self._injector = FaultInjector(plan, self.model.seed)
        self._port_request = port
        self._endpoint: TcpEndpoint | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wall0 = 0.0
        self._device0_s = 0.0
        self._stall_until = 0.0
        self._rx = b""
        self._held: deque[str] = deque()
        self._connected = False
        #: The exception that stopped the serving thread, if any.
        self.error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Abs96Simulator:
        """Listen on the TCP port and start serving; returns self."""
        if self._thread is not None:
            raise RuntimeError("the simulator was already started; create a new one")
        self._endpoint = TcpEndpoint("127.0.0.1", self._port_request)
        self._device0_s = self.model.now_s
        self._wall0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="abs96-simulator", daemon=True)
        self._thread.start()
        log.info(
            "ABS-96 plate reader simulator (SIMULATED) serving %s, speed %s",
            self.resource,
            self.speed,
        )
        return self

    def stop(self) -> None:
        """Stop serving, join the thread and close the port (idempotent)."""
        self._stop.set()
        if self._endpoint is not None:
            self._endpoint.close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                log.error("ABS-96 simulator thread did not stop within 5 s")

    def __enter__(self) -> Abs96Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- properties ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._endpoint is None:
            raise RuntimeError("the simulator is not started; call start() first")
        return self._endpoint.port

    @property
    def resource(self) -> str:
        """The VISA resource string a driver opens: ``TCPIP::127.0.0.1::PORT::SOCKET``."""
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    @property
    def device_s(self) -> float:
        """The reader's device time now (seconds)."""
        if self._thread is None:
            return self.model.now_s
        return self._device0_s + (time.monotonic() - self._wall0) * self.speed

    # -- serving ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:
            self.error = exc
            log.exception("ABS-96 simulator stopped by an error")

    def _serve(self) -> None:
        endpoint = self._endpoint
        assert endpoint is not None
        while not self._stop.is_set():
            self._fire(self._injector.due(round(self.device_s * 1000), 0))
            data = endpoint.read(self._READ_TIMEOUT_S)
            if self._stop.is_set():
                return
            connected = bool(data) or endpoint.has_client
            if connected != self._connected:
                self._connected = connected
                self._rx, self._held = b"", deque()
                self.model.discard_io()
            if data:
                self._receive(data)
            if time.monotonic() < self._stall_until:
                continue
            while self._held:
                self._respond(self._held.popleft())
            for reply in self.model.take_replies(self.device_s):
                self._send(reply)

    def _receive(self, data: bytes) -> None:
        *lines, self._rx = (self._rx + data).split(b"\n")
        if len(self._rx) > _MAX_LINE:
            log.warning("discarding %d bytes received without a line feed", len(self._rx))
            self._rx = b""
            self.model.queue_error(-363)
        for raw in lines:
            self._held.append(raw.rstrip(b"\r").decode("ascii", "replace"))

    def _respond(self, line: str) -> None:
        code = self._injector.error_reply_code(line)
        if code is not None:
            log.info("injected error %d for %r", code, line)
            self.model.advance(self.device_s)
            self.model.refuse(code)
            return
        reply = self.model.handle(line, self.device_s)
        log.debug("%r at device %.3f s -> %r", line, self.model.now_s, reply)
        if reply is not None:
            self._send(reply)

    def _send(self, reply: str) -> None:
        assert self._endpoint is not None
        self._endpoint.write(reply.encode("ascii") + b"\n")

    def _fire(self, faults: list[ScheduledFault]) -> None:
        for fault in faults:
            if fault.kind == "stall":
                self._stall_until = time.monotonic() + fault.stall_s
                log.info("fault: stalling for %g s (%s)", fault.stall_s, fault.describe())
            else:
                log.info("fault: dropping the client (%s)", fault.describe())
                assert self._endpoint is not None
                self._endpoint.drop_client()


def run_standalone(
    seed: int = 0,
    speed: float = 1.0,
    out: Callable[[str], None] = print,
    *,
    plate: Mapping[str, WellContent] | None = None,
    faults: FaultPlan | str | None = None,
    port: int = 0,
    until: threading.Event | None = None,
) -> None:
    """Run an ABS-96 simulator until Ctrl+C (or ``until`` is set), printing its address."""
    kit = ElisaKit.load()
    contents = dict(plate) if plate is not None else default_plate(kit)
    model = Abs96Model(contents, seed=seed, kit=kit)
    sim = Abs96Simulator(model, speed=speed, faults=faults, port=port)
    with sim:
        out(
            "ABS-96 plate reader simulator running. Its data is SIMULATED (kit-like ELISA), "
            "not measured."
        )
        out(f"  VISA resource: {sim.resource}")
        out(f"  serial number {sim.model.serial}, seed {seed}, speed {speed:g}x")
        out(f"  plate: {len(contents)} wells filled; kit constants from {kit.source}")
        if not sim.faults.is_empty:
            out(f"  fault injection: {sim.faults}")
        serve_until_stopped(sim, "ABS-96", out, until)
