"""Assemble a lot's report content (instrument.report_model) from storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instrument.compliance.signatures import report_signatures
from instrument.errors import HemocompatError
from instrument.lots import get_donor, get_lot, latest_assessment
from instrument.report_model import LotReport, RunSection, Trace
from instrument.storage import Store, software_version, utcnow

#: Points per trace drawn in a report (the stored data is complete; figures are decimated).
REPORT_POINTS = 1500


def _trace(store: Store, run_id: int, ch: dict[str, Any], marker: float | None) -> Trace:
    _seq, t_ms, values = store.channel_samples(run_id, ch["source"], ch["channel"])
    step = max(1, len(t_ms) // REPORT_POINTS)
    return Trace(
        channel=ch["channel"],
        label=ch["label"],
        t_s=tuple(t / 1000.0 for t in t_ms[::step]),
        values=tuple(values[::step]),
        unit=ch["unit"],
        marker_s=marker,
    )


def run_section(store: Store, run_id: int, figure_dir: Path | None = None) -> RunSection:
    run = store.get_run(run_id)
    results = store.latest_results(run_id)
    by_channel = {r["channel"]: r for r in results}
    labels = {c["channel"]: c["label"] for c in run["channels"]}
    traces: list[Trace] = []
    for ch in run["channels"]:
        params = by_channel.get(ch["channel"], {}).get("parameters", {})
        marker = params.get("CT_s", params.get("clot_time_s"))
        if marker is None and params.get("R_min") is not None:
            marker = params["R_min"] * 60.0
        traces.append(_trace(store, run_id, ch, marker))
    tat: dict[int, dict[float, float | None]] = {}
    if run["assay"] == "chandler-loop":
        for t in store.tubes(run_id):
            tat.setdefault(t["channel"], {})[t["time_point_s"]] = None
        for v in store.sample_values(run_id, "TAT"):
            tat.setdefault(v["channel"], {})[v["time_point_s"]] = v["value"]
    qc: list[str] = []
    figure = None
    if run["assay"] == "elisa":
        plate = by_channel.get(0)
        if plate is not None:
            qc = [f"{k}: {v}" for k, v in plate["notes"].items()]
        if figure_dir is not None:
            candidate = figure_dir / f"elisa_run{run_id}_standard_curve.png"
            figure = str(candidate) if candidate.exists() else None
    donors = {c["donor_id"] for c in run["channels"] if c["donor_id"]}
    link = [
        e["message"] for e in store.events(run_id) if e["kind"] in ("link", "overdue", "missed")
    ]
    return RunSection(
        run_id=run_id,
        assay=run["assay"],
        title=run["protocol_title"],
        protocol_id=run["protocol_id"],
        protocol_version=run["protocol_version"],
        protocol_sha256=run["protocol_sha256"],
        operator=run["operator"],
        started_at=run["started_at"],
        status=run["status"],
        simulated=bool(run["simulated"]),
        instruments=tuple(run["instruments"]),
        donor_id=", ".join(sorted(donors)) or None,
        parameters=tuple(
            {
                "channel": r["channel"],
                "label": labels.get(r["channel"], r["parameters"].get("sample_id", "")),
                "parameters": r["parameters"],
            }
            for r in results
        ),
        traces=tuple(traces) if run["assay"] != "elisa" else (),
        tat_courses=tat,
        figure_png=figure,
        qc_flags=tuple(qc + link[:20]),
    )


def build_lot_report(store: Store, lot_id: str, figure_dir: Path | None = None) -> LotReport:
    """The report of a lot from its latest assessment and the runs behind it."""
    lot = get_lot(store, lot_id)
    latest = latest_assessment(store, lot_id)
    if latest is None:
        raise HemocompatError(
            f"lot {lot_id} has no assessment yet: run `hemocompat panel {lot_id}` or "
            f"`hemocompat assess {lot_id}` first"
        )
    run_ids = list(latest["run_ids"])
    loop_ids = [r for r in run_ids if store.get_run(r)["assay"] == "chandler-loop"]
    tubes = {t["tube_id"] for r in loop_ids for t in store.tubes(r)}
    elisa_ids = [
        r["id"]
        for r in store.list_runs(500)
        if r["assay"] == "elisa"
        and any(
            res["parameters"].get("sample_id") in tubes for res in store.latest_results(r["id"])
        )
    ]
    sections = [run_section(store, r, figure_dir) for r in [*run_ids, *sorted(elisa_ids)]]
    donor_ids = sorted({d for s in sections for d in (s.donor_id or "").split(", ") if d})
    donors = tuple(d for d in (get_donor(store, i) for i in donor_ids) if d is not None)
    return LotReport(
        lot=lot,
        donors=donors,
        runs=tuple(sections),
        assessment=latest["assessment"],
        method={
            "id": latest["method_id"],
            "version": latest["method_version"],
            "sha256": latest["method_sha256"],
        },
        software_version=software_version(),
        generated_at=utcnow(),
        simulated=bool(latest["simulated"]) or any(s.simulated for s in sections),
        signatures=report_signatures(store, lot_id, [s.run_id for s in sections]),
    )
