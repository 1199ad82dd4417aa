"""Which instrument plays which role: edited in the Instruments view, saved as a station file."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ruamel.yaml import YAML

from gui.events import Emitter
from instrument.errors import StationError
from instrument.station import DRIVERS, InstrumentSpec, Station, load_station, simulated_station


@dataclass(frozen=True)
class RoleSetting:
    """The instrument chosen for one role: driver, port or URL, optional baud rate."""

    role: str
    driver: str
    resource: str = ""
    baudrate: int | None = None

    @property
    def default_baudrate(self) -> int:
        return int(DRIVERS.get(self.driver, {}).get("baudrate", 9600))


def known_roles() -> dict[str, str]:
    """Every role a driver of the core can play → that driver's name."""
    return {role: name for name, d in DRIVERS.items() for role in d["roles"]}


class StationModel:
    """The station being edited; ``changed`` fires after every change."""

    def __init__(self, name: str = "bench") -> None:
        self.name = name
        self.roles: dict[str, RoleSetting] = {
            role: RoleSetting(role, driver) for role, driver in known_roles().items()
        }
        self.simulated = False
        self.changed = Emitter()

    # -- editing ------------------------------------------------------------------------------
    def set_simulated(self, simulated: bool) -> None:
        if simulated != self.simulated:
            self.simulated = simulated
            self.changed.emit()

    def set_resource(self, role: str, resource: str) -> None:
        resource = resource.strip()
        if self.roles[role].resource != resource:
            self.roles[role] = replace(self.roles[role], resource=resource)
            self.changed.emit()

    def set_baudrate(self, role: str, baudrate: int | None) -> None:
        if self.roles[role].baudrate != baudrate:
            self.roles[role] = replace(self.roles[role], baudrate=baudrate)
            self.changed.emit()

    # -- what a run uses --------------------------------------------------------------------
    def spec(self, role: str) -> InstrumentSpec:
        """How the role is reached now (``resource=None``: the built-in simulator)."""
        setting = self.roles[role]
        if self.simulated:
            return InstrumentSpec(role=role, driver=setting.driver)
        return InstrumentSpec(
            role=role,
            driver=setting.driver,
            resource=setting.resource or None,
            baudrate=setting.baudrate,
        )

    def problems(self, roles: Iterable[str]) -> list[str]:
        """Why the station cannot serve these roles (empty when it can)."""
        out = []
        for role in roles:
            if role not in self.roles:
                out.append(f"no driver can play the instrument role '{role}'")
            elif not self.simulated and not self.roles[role].resource:
                out.append(
                    f"no port chosen for the '{role}' instrument: choose one in Instruments, "
                    "or switch to simulated instruments"
                )
        return out

    def to_station(self, roles: Iterable[str]) -> Station:
        """The core's Station for a run that needs ``roles``."""
        wanted = tuple(roles)
        if self.simulated:
            return simulated_station(wanted)
        return Station(
            name=self.name,
            instruments={role: self.spec(role) for role in wanted if role in self.roles},
            source="desktop app station",
        )

    # -- the station file ----------------------------------------------------------------------
    def station_yaml(self) -> str:
        """The station in the file format of ``instrument.station`` (real ports, not the mode)."""
        instruments: dict[str, object] = {}
        for role, setting in self.roles.items():
            if not setting.resource:
                instruments[role] = "simulate"
                continue
            entry: dict[str, object] = {"driver": setting.driver, "resource": setting.resource}
            if setting.baudrate is not None:
                entry["baudrate"] = setting.baudrate
            instruments[role] = entry
        yaml = YAML()
        yaml.default_flow_style = False
        out = io.StringIO()
        out.write(
            "# Saved by the hemocompat desktop app; use it with `hemocompat run --station`.\n"
        )
        yaml.dump({"station": self.name, "instruments": instruments}, out)
        return out.getvalue()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.station_yaml(), encoding="utf-8")
        tmp.replace(path)

    def restore(self, path: Path) -> str | None:
        """Take the roles from a station file; returns a problem to show, None when fine."""
        if not path.exists():
            return None
        try:
            station = load_station(path)
        except StationError as exc:
            return f"the saved station could not be read: {exc}"
        self.name = station.name
        for role, spec in station.instruments.items():
            if role in self.roles:
                self.roles[role] = replace(
                    self.roles[role],
                    driver=spec.driver,
                    resource=spec.resource or "",
                    baudrate=spec.baudrate,
                )
        self.changed.emit()
        return None
