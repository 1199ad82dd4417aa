"""Station files: which instrument plays which role, and how to reach it.

```yaml
station: bench-1
database: postgresql://bench1@labdb.example.org/hemocompat   # optional; else --db or default
instruments:
  tem:
    driver: tem4
    resource: /dev/ttyUSB0        # a device path or a pyserial URL (socket://host:port)
    baudrate: 115200              # optional
  # or, to use the built-in simulator for a role:
  # tem: simulate
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from instrument.errors import StationError

#: driver name → roles it can play and its default serial settings.
DRIVERS: dict[str, dict[str, Any]] = {
    "tem4": {"roles": ("tem",), "baudrate": 115200},
    "julabo": {"roles": ("bath",), "baudrate": 4800},
    "loop8": {"roles": ("loop",), "baudrate": 57600},
}
SIMULATE = "simulate"


@dataclass(frozen=True)
class InstrumentSpec:
    """How to reach the instrument of one role (or ``simulate`` for the built-in simulator)."""

    role: str
    driver: str
    resource: str | None = None
    baudrate: int | None = None

    @property
    def simulated(self) -> bool:
        return self.resource is None


@dataclass(frozen=True)
class Station:
    name: str
    instruments: dict[str, InstrumentSpec] = field(default_factory=dict)
    source: str = "<default>"
    #: The results database of this bench (a file path or SQLAlchemy URL), if it names one.
    database: str | None = None

    def spec(self, role: str) -> InstrumentSpec:
        if role not in self.instruments:
            known = ", ".join(sorted(self.instruments)) or "none"
            raise StationError(
                f"{self.source}: the station has no instrument for role '{role}' (it has: "
                f"{known}). Add `{role}:` under `instruments:` or run with --simulate."
            )
        return self.instruments[role]


def simulated_station(roles: tuple[str, ...] = ("tem",)) -> Station:
    """A station where every role is played by its built-in simulator."""
    driver_for = {role: name for name, d in DRIVERS.items() for role in d["roles"]}
    return Station(
        name="simulated",
        instruments={r: InstrumentSpec(role=r, driver=driver_for[r]) for r in roles},
        source="--simulate",
    )


def load_station(path: str | Path) -> Station:
    """Read and check a station file; every problem is reported with the file name."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise StationError(f"cannot read station file {p}: {exc.strerror or exc}") from exc
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise StationError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("instruments"), dict):
        raise StationError(f"{p}: a station file needs an `instruments:` mapping of role → spec")
    problems: list[str] = []
    specs: dict[str, InstrumentSpec] = {}
    for role, raw in data["instruments"].items():
        where = f"{p}: instruments.{role}"
        if raw == SIMULATE:
            driver = next((n for n, d in DRIVERS.items() if role in d["roles"]), None)
            if driver is None:
                problems.append(f"{where}: no simulator for role '{role}'")
                continue
            specs[role] = InstrumentSpec(role=role, driver=driver)
            continue
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected `simulate` or a mapping with driver and resource")
            continue
        unknown = set(raw) - {"driver", "resource", "baudrate"}
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        driver = raw.get("driver")
        if driver not in DRIVERS:
            problems.append(f"{where}.driver: {driver!r} is not a driver; allowed: {list(DRIVERS)}")
            continue
        if role not in DRIVERS[driver]["roles"]:
            problems.append(f"{where}: driver {driver} cannot play role '{role}'")
        resource = raw.get("resource")
        if not isinstance(resource, str) or not resource:
            problems.append(f"{where}.resource: missing (a device path or socket://host:port)")
            continue
        baud = raw.get("baudrate")
        if baud is not None and (not isinstance(baud, int) or baud <= 0):
            problems.append(f"{where}.baudrate: {baud!r} is not a positive integer")
            baud = None
        specs[role] = InstrumentSpec(role=role, driver=driver, resource=resource, baudrate=baud)
    unknown_top = set(data) - {"station", "database", "instruments"}
    if unknown_top:
        problems.append(
            f"{p}: unknown keys {sorted(unknown_top)} (allowed: station, database, instruments)"
        )
    database = data.get("database")
    if database is not None and (not isinstance(database, str) or not database.strip()):
        problems.append(f"{p}: database: {database!r} is not a file path or database URL")
        database = None
    if problems:
        raise StationError("\n".join(problems))
    return Station(
        name=str(data.get("station", p.stem)),
        instruments=specs,
        source=str(p),
        database=database,
    )
