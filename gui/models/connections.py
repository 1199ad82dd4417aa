"""Connecting to one instrument from the Instruments view (blocking: call on a worker thread).

A connection opens the transport and driver, reads the identity and the temperature, and
can be polled for health. For a simulated role it first starts the built-in simulator,
inside the app, and connects to it through the same transport and driver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from instrument.station import InstrumentSpec


@dataclass(frozen=True)
class Health:
    """What the status bar shows about an instrument."""

    temperature_c: float | None
    link: dict[str, int]


@dataclass(frozen=True)
class IdentityInfo:
    manufacturer: str
    model: str
    serial: str
    firmware: str


class InstrumentConnection:
    """An open driver (and the simulator behind it, if simulated); thread-safe to poll."""

    def __init__(
        self,
        role: str,
        resource: str,
        driver: Any,
        identity: IdentityInfo,
        temperature_c: float | None,
        simulated: bool,
        simulator: Any = None,
    ) -> None:
        self.role = role
        self.resource = resource
        self.driver = driver
        self.identity = identity
        self.simulated = simulated
        self.simulator = simulator
        self._lock = threading.Lock()
        self._closed = False
        self.health = Health(temperature_c, {})

    def poll_health(self) -> Health:
        """Read the temperature and link counters (blocking, worker thread)."""
        with self._lock:
            if self._closed:
                return self.health
            drain = getattr(self.driver, "poll", None)
            if drain is not None:
                drain(0.0)  # hand on heartbeats kept while not streaming
            read = getattr(self.driver, "temperature", None)
            temperature = read() if read is not None else None  # the LOOP-8 has no sensor
            stats = getattr(self.driver, "stats", None)
            link = {k: int(v) for k, v in asdict(stats).items()} if stats is not None else {}
            self.health = Health(temperature, link)
            return self.health

    def close(self) -> None:
        """Close the driver and stop the simulator (blocking, idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.driver.close()
            finally:
                if self.simulator is not None:
                    self.simulator.stop()


def _open_sequenced(
    spec: InstrumentSpec,
    driver_class: Any,
    default_baudrate: int,
    start_simulator: Callable[[], Any],
    with_temperature: bool,
) -> InstrumentConnection:
    """A streaming instrument (TEM-4, LOOP-8): its simulator first when the role is simulated."""
    from drivers.transport import SerialTransport

    simulator = None
    if spec.simulated:
        simulator = start_simulator()
        resource = simulator.url
    else:
        assert spec.resource is not None
        resource = spec.resource
    driver = None
    try:
        baudrate = spec.baudrate or default_baudrate
        transport = SerialTransport(resource, baudrate=baudrate, name=spec.role)
        driver = driver_class(transport, name=spec.role)
        identity = driver.identify()
        temperature = driver.temperature() if with_temperature else None
    except BaseException:
        if driver is not None:
            driver.close()
        if simulator is not None:
            simulator.stop()
        raise
    info = IdentityInfo(identity.manufacturer, identity.model, identity.serial, identity.firmware)
    simulated = spec.simulated or "SIM" in identity.serial.upper()
    return InstrumentConnection(
        spec.role, resource, driver, info, temperature, simulated, simulator
    )


def _open_tem4(spec: InstrumentSpec) -> InstrumentConnection:
    from drivers.tem4 import Tem4Driver

    def start() -> Any:
        from simulators.physiology import VirtualLab
        from simulators.tem4 import Tem4Simulator, default_samples

        simulator = Tem4Simulator(default_samples(VirtualLab.load()), seed=0, speed=1.0)
        simulator.start()
        return simulator

    return _open_sequenced(spec, Tem4Driver, 115200, start, with_temperature=True)


def _open_loop8(spec: InstrumentSpec) -> InstrumentConnection:
    from drivers.loop8 import Loop8Driver

    def start() -> Any:
        from simulators.loop8 import Loop8Simulator, default_samples
        from simulators.physiology import VirtualLab

        simulator = Loop8Simulator(default_samples(VirtualLab.load()), seed=0, speed=1.0)
        simulator.start()
        return simulator

    # the rotator has no temperature sensor
    return _open_sequenced(spec, Loop8Driver, 57600, start, with_temperature=False)


def _open_julabo(spec: InstrumentSpec) -> InstrumentConnection:
    from drivers.julabo import JulaboBath
    from drivers.transport import SerialTransport
    from instrument.loop_engine import BathIdentity

    settings: dict[str, Any] = dict(JulaboBath.serial_settings())
    simulator = None
    if spec.simulated:
        from simulators.julabo import BathModel, BathSimulator

        model = BathModel(setpoint_c=37.0, temperature_c=37.0, running=True, seed=0)
        simulator = BathSimulator(model, speed=1.0, seed=0)
        simulator.start()
        resource = simulator.url
        settings.update(bytesize=8, parity="N")  # a pty carries 8N1 only
    else:
        assert spec.resource is not None
        resource = spec.resource
        if spec.baudrate:
            settings["baudrate"] = spec.baudrate
    bath = None
    try:
        bath = JulaboBath(SerialTransport(resource, name=spec.role, **settings), name=spec.role)
        identity = BathIdentity.from_version(bath.identify())
        temperature = bath.temperature()
    except BaseException:
        if bath is not None:
            bath.close()
        if simulator is not None:
            simulator.stop()
        raise
    info = IdentityInfo(identity.manufacturer, identity.model, identity.serial, identity.firmware)
    return InstrumentConnection(
        spec.role, resource, bath, info, temperature, spec.simulated, simulator
    )


#: Driver name → how the app connects to it for an identity and health check.
CONNECTORS: dict[str, Callable[[InstrumentSpec], InstrumentConnection]] = {
    "tem4": _open_tem4,
    "julabo": _open_julabo,
    "loop8": _open_loop8,
}


def open_connection(spec: InstrumentSpec) -> InstrumentConnection:
    """Connect (blocking); raises the transport's or driver's error, which says what to do."""
    connector = CONNECTORS.get(spec.driver)
    if connector is None:
        raise RuntimeError(
            f"the desktop app cannot connect to '{spec.driver}' instruments yet; "
            "a run still connects to them"
        )
    if not spec.simulated and not spec.resource:
        raise RuntimeError(f"choose a port or URL for the '{spec.role}' instrument first")
    return connector(spec)
