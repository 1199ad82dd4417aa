"""One command for a whole lot: thromboelastometry dose series, loops, ELISA, indices, report."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrument.elisa_run import analyse_and_store, plate_layout, read_simulated_plate
from instrument.engine import RunEngine
from instrument.errors import RunError
from instrument.loop_engine import LoopRunEngine
from instrument.lots import collect_lot_data, get_lot, register_virtual, store_assessment
from instrument.runbase import RunObserver, RunOptions, RunOutcome
from instrument.station import Station, simulated_station
from instrument.storage import Store
from protocols import bundled_methods, bundled_protocols, load_method, load_protocol
from protocols.model import ElisaProtocol, LoopProtocol, SampleWells, TemProtocol

log = logging.getLogger("hemocompat.panel")

DEFAULT_TEM = "natem-msc-dose-series.yaml"
DEFAULT_LOOP = "chandler-loop-60min.yaml"
DEFAULT_ELISA = "tat-elisa.yaml"


@dataclass
class PanelOutcome:
    lot_id: str
    simulated: bool
    runs: dict[str, list[int]] = field(default_factory=dict)
    assessment: dict[str, Any] = field(default_factory=dict)
    assessment_id: int | None = None
    reports: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "lot_id": self.lot_id,
            "simulated": self.simulated,
            "runs": self.runs,
            "assessment_id": self.assessment_id,
            "assessment": self.assessment,
            "reports": self.reports,
        }


def _bundled(name: str) -> Path:
    return next(p for p in bundled_protocols() if p.name == name)


def run_panel(
    lot_id: str,
    store: Store,
    *,
    simulate: bool,
    station: Station | None = None,
    speed: float = 600.0,
    seed: int = 0,
    donor: str | None = None,
    operator: str = "unknown",
    method_path: Path | None = None,
    protocols: dict[str, Path] | None = None,
    out_dir: Path | None = None,
    observer: RunObserver | None = None,
    say: Callable[[str], None] = print,
) -> PanelOutcome:
    """Run every assay of the panel for one lot, then compute its indices, class and report."""
    paths = {"tem": _bundled(DEFAULT_TEM), "loop": _bundled(DEFAULT_LOOP)}
    paths["elisa"] = _bundled(DEFAULT_ELISA)
    paths.update(protocols or {})
    tem_p, loop_p, elisa_p = (load_protocol(paths[k]) for k in ("tem", "loop", "elisa"))
    if not (
        isinstance(tem_p, TemProtocol)
        and isinstance(loop_p, LoopProtocol)
        and isinstance(elisa_p, ElisaProtocol)
    ):
        raise RunError("the panel needs a thromboelastometry, a loop and an ELISA protocol")
    method = load_method(method_path or bundled_methods()[0])
    if simulate:
        donors = sorted(
            {
                c.donor_id
                for p in (tem_p, loop_p)
                for c in p.resolved_channels(lot_id, donor)
                if c.donor_id
            }
        )
        register_virtual(store, lot_id, donors)
    lot = get_lot(store, lot_id)
    outcome = PanelOutcome(lot_id=lot_id, simulated=simulate or bool(lot["simulated"]))
    options = RunOptions(
        operator=operator, lot=lot_id, donor=donor, seed=seed, speed=speed, auto_ack=simulate
    )

    say(f"[1/4] thromboelastometry: {tem_p.title}")
    tem_station = simulated_station(tuple(tem_p.instruments)) if simulate else station
    if tem_station is None:
        raise RunError("a panel on real instruments needs --station FILE")
    tem_run = RunEngine(tem_p, tem_station, store, options, observer).run()
    _require_completed("thromboelastometry", tem_run)
    outcome.runs["thromboelastometry"] = [tem_run.run_id]

    say(f"[2/4] Chandler loops: {loop_p.title}")
    loop_station = simulated_station(tuple(loop_p.instruments)) if simulate else station
    assert loop_station is not None
    loop_run = LoopRunEngine(loop_p, loop_station, store, options, observer).run()
    _require_completed("loop", loop_run)
    outcome.runs["chandler-loop"] = [loop_run.run_id]

    say("[3/4] TAT ELISA of the loop samples")
    tubes = [t["tube_id"] for t in store.tubes(loop_run.run_id) if t["status"] == "drawn"]
    capacity = max(1, len(elisa_p.free_layout_wells) // _replicates(elisa_p))
    outcome.runs["elisa"] = []
    reassay: list[tuple[str, float]] = []
    if not simulate:
        say("  read the plates on the reader with `hemocompat elisa run` (real instruments)")

    def read_plate(layout: tuple[SampleWells, ...], plate_seed: int, what: str) -> Any:
        reading, instrument = read_simulated_plate(
            elisa_p, layout, store, seed=plate_seed, speed=speed
        )
        plate = analyse_and_store(
            elisa_p,
            reading,
            layout,
            store,
            operator=operator,
            instrument=instrument,
            figure_dir=out_dir,
        )
        outcome.runs["elisa"].append(plate.run_id)
        verdict = "passed" if plate.result.passed else "FAILED"
        say(f"  plate {plate.run_id}: {len(layout)} {what}, QC {verdict}")
        return plate

    for start in range(0, len(tubes), capacity) if simulate else ():
        layout = plate_layout(elisa_p, store, (), tubes[start : start + capacity])
        plate = read_plate(layout, seed + start, "samples")
        reassay += [
            (s.sample_id, s.suggested_dilution)
            for s in plate.result.samples.values()
            if s.flag is not None and s.suggested_dilution
        ]
    for start in range(0, len(reassay), capacity):
        layout = reassay_layout(elisa_p, reassay[start : start + capacity])
        read_plate(layout, seed + 1000 + start, "re-assays at the suggested dilution")

    say("[4/4] indices, class and report")
    outcome.assessment_id, outcome.assessment = assess_and_store(
        store, lot_id, method, [tem_run.run_id, loop_run.run_id]
    )
    if out_dir is not None:
        outcome.reports = [str(p) for p in write_reports(store, lot_id, out_dir)]
    return outcome


def assess_and_store(
    store: Store, lot_id: str, method: Any, run_ids: list[int] | None = None
) -> tuple[int, dict[str, Any]]:
    """Compute and store the lot's assessment from its stored runs."""
    from instrument.analysis.indices import LotInfo, assess_lot

    data = collect_lot_data(store, lot_id, run_ids)
    lot = data.lot
    info = LotInfo(
        lot_id=lot_id,
        tissue_source=lot["tissue_source"],
        cd142_pct=lot["cd142_pct"],
        cd142_mfi=lot["cd142_mfi"],
        viability_pct=lot["viability_pct"],
    )
    assessment = assess_lot(method, info, data.tem, data.loops)
    assessment_id = store_assessment(store, lot_id, method, data, assessment)
    return assessment_id, assessment.to_dict()


def write_reports(store: Store, lot_id: str, out_dir: Path) -> list[Path]:
    from instrument.report_data import build_lot_report
    from instrument.reports import write_csv, write_pdf, write_xlsx

    report = build_lot_report(store, lot_id, figure_dir=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        write_pdf(report, out_dir / f"{lot_id}_report.pdf"),
        write_xlsx(report, out_dir / f"{lot_id}_report.xlsx"),
        *write_csv(report, out_dir / f"{lot_id}_csv"),
    ]


def reassay_layout(
    protocol: ElisaProtocol, samples: list[tuple[str, float]]
) -> tuple[SampleWells, ...]:
    """Wells for samples re-assayed at the dilution their first result suggested."""
    free = list(protocol.free_layout_wells)
    n = _replicates(protocol)
    if len(samples) * n > len(free):
        raise RunError(f"{len(samples)} re-assays need {len(samples) * n} wells; {len(free)} free")
    return tuple(
        SampleWells(sample_id=sid, wells=tuple(free[i * n : (i + 1) * n]), dilution=dilution)
        for i, (sid, dilution) in enumerate(samples)
    )


def _replicates(protocol: ElisaProtocol) -> int:
    return protocol.sample_layout.replicates if protocol.sample_layout is not None else 1


def _require_completed(what: str, outcome: RunOutcome) -> None:
    if outcome.status != "completed":
        raise RunError(
            f"the {what} run {outcome.run_id} ended {outcome.status}: {outcome.detail}; "
            "the panel stops here (everything measured so far is stored)"
        )
