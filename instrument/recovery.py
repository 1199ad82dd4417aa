"""Finishing runs that a stopped program left unfinished (status ``interrupted``).

A run killed mid-acquisition keeps everything up to its last stored batch. Its instrument
may still be measuring, and keeps its last 65 536 frames for ``REPLAY``: if its resource
answers with the same serial number, :func:`recover_run` reattaches, fetches every frame
after the last stored one, records to the protocol's end, stops the instrument and analyses
the run. If it cannot be reached (or was a built-in simulator, which ended with the program
that ran it), the run is analysed on the data stored. Either way the run ends ``completed``
with a detail starting ``recovered:`` that says how far the data goes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from instrument.errors import RunError
from instrument.runbase import RunBase, RunObserver, RunOptions, RunOutcome
from instrument.station import InstrumentSpec, Station
from instrument.storage import Store, samples

__all__ = [
    "RECOVERABLE_STATUSES",
    "InterruptedRun",
    "StoredExtent",
    "interrupted_runs",
    "recover_run",
    "stored_extent",
]

#: Statuses a run may be recovered from (a failed run may have lost its instrument link).
RECOVERABLE_STATUSES = ("interrupted", "failed")


@dataclass(frozen=True)
class StoredExtent:
    """How far the stored raw data of one instrument role of a run goes."""

    source: str
    samples: int
    last_seq: int
    #: Per channel: device time (ms) of its last stored sample.
    last_t_ms: dict[int, int]

    @property
    def reached_s(self) -> float:
        """Device time every channel with data has reached."""
        return min(self.last_t_ms.values(), default=0) / 1000


@dataclass(frozen=True)
class InterruptedRun:
    """A run that can be recovered, with where its instrument was and how far its data goes."""

    run_id: int
    title: str
    assay: str
    status: str
    detail: str
    started_at: str | None
    duration_s: float
    role: str
    instrument: str
    resource: str | None
    builtin_simulator: bool
    extent: StoredExtent


def stored_extent(store: Store, run_id: int, source: str) -> StoredExtent:
    """Count, last seq and per-channel last device time of the stored samples of a role."""
    query = (
        sa.select(
            samples.c.channel,
            sa.func.count(),
            sa.func.max(samples.c.seq),
            sa.func.max(samples.c.t_ms),
        )
        .where(samples.c.run_id == run_id, samples.c.source == source)
        .group_by(samples.c.channel)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return StoredExtent(
        source=source,
        samples=sum(int(r[1]) for r in rows),
        last_seq=max((int(r[2]) for r in rows), default=0),
        last_t_ms={int(r[0]): int(r[3]) for r in rows},
    )


def _streaming_role(assay: str) -> str:
    if assay == "thromboelastometry":
        return "tem"
    if assay == "chandler-loop":
        return "loop"
    raise RunError(f"runs of assay '{assay}' have no streaming instrument to recover")


def _describe(store: Store, run: dict[str, Any]) -> InterruptedRun:
    role = _streaming_role(run["assay"])
    inst = next((i for i in run["instruments"] if i["role"] == role), None)
    builtin = False
    for event in store.events(run["id"]):
        if event["kind"] == "connected" and event["source"] == role:
            builtin = bool(event["data"].get("builtin_simulator", False))
    return InterruptedRun(
        run_id=run["id"],
        title=run["protocol_title"],
        assay=run["assay"],
        status=run["status"],
        detail=run["status_detail"],
        started_at=run["started_at"],
        duration_s=float(run["duration_s"]),
        role=role,
        instrument=f"{inst['model']} {inst['serial']}" if inst else "not connected",
        resource=inst["resource"] if inst else None,
        builtin_simulator=builtin,
        extent=stored_extent(store, run["id"], role),
    )


def interrupted_runs(store: Store) -> list[InterruptedRun]:
    """Runs left unfinished, newest first (runs still marked running are marked first)."""
    store.mark_interrupted_runs()
    found = []
    for run in store.list_runs(limit=1000):
        if run["status"] == "interrupted" and run["assay"] in (
            "thromboelastometry",
            "chandler-loop",
        ):
            found.append(_describe(store, store.get_run(run["id"])))
    return found


def recover_run(
    store: Store,
    run_id: int,
    *,
    station: Station | None = None,
    reattach: bool = True,
    observer: RunObserver | None = None,
    reconnect_limit_s: float | None = None,
) -> RunOutcome:
    """Finish interrupted (or failed) run ``run_id``; see the module docstring.

    ``station`` overrides the resource stored with the run (the instrument moved to another
    port); ``reattach=False`` analyses the stored data without contacting the instrument.
    """
    from instrument.engine import RunEngine
    from instrument.loop_engine import LoopRunEngine
    from protocols import ChannelSpec, LoopProtocol, TemProtocol, parse_protocol

    store.mark_interrupted_runs()
    run = store.get_run(run_id)
    if run["status"] not in RECOVERABLE_STATUSES:
        raise RunError(
            f"run {run_id} is {run['status']}; only an interrupted or failed run can be "
            "recovered (`hemocompat recover` lists them)"
        )
    info = _describe(store, run)
    role = info.role
    protocol = parse_protocol(run["protocol_text"], run["protocol_source"])
    if not isinstance(protocol, TemProtocol | LoopProtocol):
        raise RunError(f"run {run_id}: its protocol has no streaming instrument to recover")
    specs = tuple(
        ChannelSpec(
            channel=c["channel"],
            contents=c["contents"],
            dose_cells_per_ml=c["dose_cells_per_ml"],
            lot_id=c["lot_id"],
            donor_id=c["donor_id"],
        )
        for c in run["channels"]
        if c["source"] == role
    )
    lot = next((s.lot_id for s in specs if s.lot_id), None)
    donor = next((s.donor_id for s in specs if s.donor_id), None)

    resource: str | None = info.resource
    baudrate: int | None = None
    unreachable = ""
    if station is not None:
        spec = station.spec(role)
        resource, baudrate = spec.resource, spec.baudrate
        if resource is None:
            raise RunError(
                f"{station.source}: role '{role}' is a built-in simulator; recovery needs the "
                "resource of the instrument that measured the run"
            )
    elif info.builtin_simulator:
        resource = None
        unreachable = "its built-in simulator ended with the program that ran it"
    if not reattach:
        resource, unreachable = None, "not reattached (--no-reattach)"
    elif resource is None and not unreachable:
        unreachable = "no instrument resource is stored with the run"

    recovery_station = Station(
        name="recovery",
        instruments={
            role: InstrumentSpec(
                role=role,
                driver="tem4" if role == "tem" else "loop8",
                resource=resource or "(unreachable)",
                baudrate=baudrate,
            )
        },
        source=f"run {run_id}",
    )
    options = RunOptions(
        operator=run["operator"],
        lot=lot,
        donor=donor,
        seed=run["seed"] or 0,
        reconnect_limit_s=reconnect_limit_s
        if reconnect_limit_s is not None
        else RunOptions().reconnect_limit_s,
    )
    engine: RunBase
    if isinstance(protocol, LoopProtocol):
        engine = LoopRunEngine(protocol, recovery_station, store, options, observer)
    else:
        engine = RunEngine(protocol, recovery_station, store, options, observer)
    engine.channels = specs
    serial = run_serial(run, role)
    outcome = engine.resume(
        run_id,
        last_seq=info.extent.last_seq,
        last_t_ms=info.extent.last_t_ms,
        resource=resource,
        serial=serial,
        unreachable=unreachable,
    )
    return dataclasses.replace(outcome, simulated=bool(run["simulated"]))


def run_serial(run: dict[str, Any], role: str) -> str:
    """The serial number of the instrument that measured ``role`` in a stored run."""
    inst = next((i for i in run["instruments"] if i["role"] == role), None)
    return str(inst["serial"]) if inst is not None else ""
