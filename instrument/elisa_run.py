"""TAT ELISA plates: read on an ABS-96 (or imported from CSV), analysed, stored, linked.

A plate's sample wells hold tubes of the sample registry; their TAT concentrations attach to
those tubes only when the plate passes QC, so a failing plate is stored and reported, never
silently used.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from instrument.analysis.elisa import (
    Blank,
    Control,
    ElisaResult,
    PlateMap,
    QcSettings,
    Sample,
    Standard,
    WellRole,
    analyse_plate,
)
from instrument.analysis.plate import PlateReading
from instrument.errors import RunError
from instrument.storage import Store, metadata
from protocols.model import ChannelSpec, ElisaProtocol, SampleWells

log = logging.getLogger("hemocompat.elisa")

plate_reads = sa.Table(
    "plate_reads",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("wavelength_nm", sa.Integer, primary_key=True),
    sa.Column("well", sa.String(3), primary_key=True),
    sa.Column("od", sa.Float, nullable=False),
)


@dataclass
class ElisaOutcome:
    run_id: int
    simulated: bool
    protocol: dict[str, Any]
    result: ElisaResult
    layout: tuple[SampleWells, ...]
    attached: list[str] = field(default_factory=list)
    figure: str | None = None

    def to_json(self) -> dict[str, Any]:
        r = self.result
        fit = r.fit
        return {
            "run_id": self.run_id,
            "protocol": self.protocol,
            "simulated": self.simulated,
            "qc": {
                "passed": r.passed,
                "findings": [
                    {"code": f.code, "where": f.where, "message": f.message, "severity": f.severity}
                    for f in r.findings
                ],
            },
            "fit": None
            if fit is None
            else {
                "model": fit.model,
                "params": fit.params,
                "r_squared": fit.r_squared,
                "weighting": fit.weighting,
            },
            "lloq_ug_per_l": r.lloq_ug_per_l,
            "uloq_ug_per_l": r.uloq_ug_per_l,
            "samples": [
                {
                    "sample_id": s.sample_id,
                    "wells": list(s.wells),
                    "dilution": s.dilution,
                    "tat_ug_per_l": s.value_ug_per_l,
                    "flag": s.flag,
                    "cv_pct": s.cv_pct,
                    "valid": s.valid,
                    "reassay": s.reassay,
                }
                for s in r.samples.values()
            ],
            "controls": [
                {
                    "name": c.name,
                    "value_ug_per_l": c.value_ug_per_l,
                    "range_ug_per_l": [c.low_ug_per_l, c.high_ug_per_l],
                    "in_range": c.in_range,
                }
                for c in r.controls.values()
            ],
            "attached_to_tubes": self.attached,
            "standard_curve_png": self.figure,
        }


def plate_layout(
    protocol: ElisaProtocol, store: Store | None, run_ids: Sequence[int], sample_ids: Sequence[str]
) -> tuple[SampleWells, ...]:
    """The plate's sample wells: explicit ones, then drawn tubes of runs, then given IDs."""
    ids = list(sample_ids)
    if store is not None:
        for run_id in run_ids:
            store.get_run(run_id)
            ids += [t["tube_id"] for t in store.tubes(run_id) if t["status"] == "drawn"]
    try:
        return protocol.layout_samples(ids)
    except ValueError as exc:
        raise RunError(f"{protocol.source}: {exc}") from None


def plate_map(protocol: ElisaProtocol, layout: Sequence[SampleWells]) -> PlateMap:
    entries: list[WellRole] = [Standard(s.conc_ug_per_l, s.wells) for s in protocol.standards]
    entries.append(Blank(protocol.blanks))
    entries += [
        Control(c.name, c.low_ug_per_l, c.high_ug_per_l, c.wells) for c in protocol.controls
    ]
    entries += [Sample(s.sample_id, s.dilution, s.wells) for s in layout]
    return PlateMap(tuple(entries))


def qc_settings(protocol: ElisaProtocol) -> QcSettings:
    q = protocol.qc
    return QcSettings(
        backcalc_tolerance_pct=q.backcalc_tolerance_pct,
        backcalc_tolerance_end_pct=q.backcalc_tolerance_edge_pct,
        max_cv_pct=q.max_cv_pct,
        min_r_squared=q.min_r_squared,
    )


def analyse_and_store(
    protocol: ElisaProtocol,
    reading: PlateReading,
    layout: Sequence[SampleWells],
    store: Store,
    *,
    operator: str,
    instrument: dict[str, Any] | None = None,
    figure_dir: Path | None = None,
) -> ElisaOutcome:
    """Analyse a plate reading, store the run, raw ODs and results, attach valid TAT values."""
    result = analyse_plate(
        reading,
        plate_map(protocol, layout),
        signal_nm=protocol.signal_nm,
        reference_nm=protocol.reference_nm,
        model=protocol.model,
        qc=qc_settings(protocol),
    )
    run_id = store.create_run(
        assay="elisa",
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        protocol_title=protocol.title,
        protocol_source=protocol.source,
        protocol_text=protocol.text,
        protocol_sha256=protocol.sha256,
        style=protocol.model,
        operator=operator,
        simulated=reading.simulated,
        duration_s=protocol.duration_s,
    )
    store.set_status(run_id, "running")
    if instrument is not None:
        store.add_instrument(run_id, "reader", **instrument)
    with store.engine.begin() as conn:
        conn.execute(
            plate_reads.insert(),
            [
                {"run_id": run_id, "wavelength_nm": nm, "well": well, "od": od}
                for nm, wells in reading.od.items()
                for well, od in wells.items()
            ],
        )
    store.add_event(
        run_id,
        source="reader",
        kind="plate",
        message=f"plate from {reading.source}" + (" [SIMULATED]" if reading.simulated else ""),
    )
    fit = result.fit
    store.add_result(
        run_id,
        source="elisa",
        channel=0,
        parameters={
            "qc_passed": result.passed,
            "model": result.model,
            "r_squared": None if fit is None else fit.r_squared,
            **({} if fit is None else {f"fit_{k}": v for k, v in fit.params.items()}),
            "lloq_ug_per_l": result.lloq_ug_per_l,
            "uloq_ug_per_l": result.uloq_ug_per_l,
        },
        notes={f"{f.code} {f.where}": f.message for f in result.findings},
        settings=json.loads(json.dumps(vars(qc_settings(protocol)))),
    )
    attached: list[str] = []
    tube_ids = {t["tube_id"] for t in store.tubes()}
    for index, s in enumerate(result.samples.values(), start=1):
        store.add_result(
            run_id,
            source="elisa",
            channel=index,
            parameters={
                "sample_id": s.sample_id,
                "TAT_ug_per_l": s.value_ug_per_l,
                "flag": s.flag,
                "cv_pct": s.cv_pct,
                "dilution": s.dilution,
                "valid": s.valid,
            },
            notes={"reassay": s.reassay} if s.reassay else {},
            settings={"wells": list(s.wells)},
        )
        if s.sample_id in tube_ids and result.passed and s.valid:
            store.add_sample_value(
                s.sample_id,
                analyte="TAT",
                value=s.value_ug_per_l,
                unit="ug/L",
                flag=s.flag or "",
                origin=f"ELISA run {run_id} ({protocol.id} v{protocol.version})",
                entered_by=operator,
                simulated=reading.simulated,
                reason=f"TAT measured on ELISA plate run {run_id}",
            )
            attached.append(s.sample_id)
    figure = None
    if figure_dir is not None and result.fit is not None:
        from instrument.figures import standard_curve_png

        figure = str(
            standard_curve_png(result, figure_dir / f"elisa_run{run_id}_standard_curve.png")
        )
    verdict = "passed" if result.passed else "FAILED"
    store.set_status(run_id, "completed", f"plate QC {verdict}")
    return ElisaOutcome(
        run_id=run_id,
        simulated=reading.simulated,
        protocol={"id": protocol.id, "version": protocol.version, "sha256": protocol.sha256},
        result=result,
        layout=tuple(layout),
        attached=attached,
        figure=figure,
    )


def simulated_plate_contents(
    protocol: ElisaProtocol, layout: Sequence[SampleWells], store: Store
) -> dict[str, tuple[Any, ...]]:
    """What each well of a simulated plate holds, with the virtual lab's true TAT per tube."""
    contents: dict[str, tuple[Any, ...]] = {}
    for level in protocol.standards:
        for well in level.wells:
            contents[well] = ("standard", level.conc_ug_per_l)
    for well in protocol.blanks:
        contents[well] = ("blank",)
    for c in protocol.controls:
        for well in c.wells:
            contents[well] = ("control", math.sqrt(c.low_ug_per_l * c.high_ug_per_l))
    for s in layout:
        true = true_tat_ug_per_l(store, s.sample_id)
        for well in s.wells:
            contents[well] = ("sample", true, s.dilution)
    return contents


def true_tat_ug_per_l(store: Store, tube_id: str) -> float:
    """The virtual lab's TAT in a tube drawn from a simulated loop run (ground truth)."""
    from instrument.simulation import loop_samples
    from protocols import parse_protocol
    from protocols.model import LoopProtocol
    from simulators.physiology import VirtualLab, loop_truth

    tube = store.tube(tube_id)
    run = store.get_run(tube["run_id"])
    if not run["simulated"] or tube["drawn_t_s"] is None:
        raise RunError(
            f"tube {tube_id} comes from a measured run (or was never drawn): a simulated "
            "plate can only hold tubes of simulated loop runs"
        )
    protocol = parse_protocol(run["protocol_text"], run["protocol_source"])
    if not isinstance(protocol, LoopProtocol):
        raise RunError(f"tube {tube_id} does not come from a loop run")
    stored = {c["channel"]: c for c in run["channels"]}[tube["channel"]]
    spec = ChannelSpec(
        channel=tube["channel"],
        contents=stored["contents"],
        dose_cells_per_ml=stored["dose_cells_per_ml"],
        lot_id=stored["lot_id"],
        donor_id=stored["donor_id"],
    )
    sample = loop_samples(protocol, [spec])[tube["channel"]]
    truth = loop_truth(VirtualLab.load(), sample, int(run["seed"] or 0), tube["channel"])
    return float(truth.tat_ug_per_l(float(tube["drawn_t_s"])))


def read_simulated_plate(
    protocol: ElisaProtocol,
    layout: Sequence[SampleWells],
    store: Store,
    *,
    seed: int,
    speed: float,
    faults: str | None = None,
) -> tuple[PlateReading, dict[str, Any]]:
    """Read a simulated plate on a simulated ABS-96 through pyvisa-py (TCP socket)."""
    from dataclasses import replace

    from simulators.abs96 import Abs96Model, Abs96Simulator

    model = Abs96Model(simulated_plate_contents(protocol, layout, store), seed=seed)
    sim = Abs96Simulator(
        model, speed=speed if math.isfinite(speed) else 1000.0, faults=faults or None
    )
    sim.start()
    try:
        reading, instrument = read_plate_on(sim.resource, protocol)
    finally:
        sim.stop()
    return replace(reading, simulated=True), {**instrument, "simulated": True}


def read_plate_on(resource: str, protocol: ElisaProtocol) -> tuple[PlateReading, dict[str, Any]]:
    """Read a plate on a real ABS-96 at a VISA resource."""
    from drivers.abs96 import Abs96Reader
    from drivers.transport import VisaTransport

    reader = Abs96Reader(VisaTransport(resource, name="reader"))
    try:
        identity = reader.identify()
        reader.reset()
        reader.configure_wavelengths(protocol.signal_nm, protocol.reference_nm)
        values = reader.read_plate()
    finally:
        reader.close()
    simulated = bool(getattr(identity, "simulated", False))
    reading = PlateReading.from_row_major(values, f"{resource} (ABS-96)", simulated=simulated)
    return reading, {
        "manufacturer": identity.manufacturer,
        "model": identity.model,
        "serial": identity.serial,
        "firmware": identity.firmware,
        "resource": resource,
        "simulated": simulated,
    }
