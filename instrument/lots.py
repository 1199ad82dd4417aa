"""MSC lot and blood-donor registries, and the assembly of a lot's data for its indices."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from instrument.compliance import audit
from instrument.errors import HemocompatError, StorageError
from instrument.storage import Store, metadata, run_channels, runs, utcnow

TISSUE_SOURCES = (
    "bone-marrow",
    "umbilical-cord",
    "placenta",
    "decidua",
    "adipose",
    "dental-pulp",
    "other",
)
COAGULABILITY = ("healthy", "hypercoagulable", "patient")
LOT_STATES = ("fresh", "cryopreserved")

lots = sa.Table(
    "lots",
    metadata,
    sa.Column("lot_id", sa.String(64), primary_key=True),
    sa.Column("product", sa.String(200), nullable=False),
    sa.Column("tissue_source", sa.String(40), nullable=False),
    sa.Column("cell_donor", sa.String(64), nullable=True),
    sa.Column("passage", sa.Integer, nullable=True),
    sa.Column("manufactured_on", sa.String(10), nullable=True),
    sa.Column("viability_pct", sa.Float, nullable=True),
    sa.Column("cd142_pct", sa.Float, nullable=True),
    sa.Column("cd142_mfi", sa.Float, nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("notes", sa.Text, nullable=False, default=""),
    sa.Column("simulated", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

donors = sa.Table(
    "donors",
    metadata,
    sa.Column("donor_id", sa.String(64), primary_key=True),
    sa.Column("draw_time", sa.String(32), nullable=True),
    sa.Column("anticoagulant", sa.String(40), nullable=False),
    sa.Column("anticoagulant_dose", sa.String(40), nullable=False, default=""),
    sa.Column("coagulability", sa.String(40), nullable=False),
    sa.Column("patient_group", sa.String(80), nullable=False, default=""),
    sa.Column("notes", sa.Text, nullable=False, default=""),
    sa.Column("simulated", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

assessments = sa.Table(
    "lot_assessments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lot_id", sa.String(64), nullable=False, index=True),
    sa.Column("method_id", sa.String(120), nullable=False),
    sa.Column("method_version", sa.Integer, nullable=False),
    sa.Column("method_sha256", sa.String(64), nullable=False),
    sa.Column("method_text", sa.Text, nullable=False),
    sa.Column("run_ids", sa.Text, nullable=False),
    sa.Column("class_id", sa.String(80), nullable=True),
    sa.Column("assessment", sa.Text, nullable=False),
    sa.Column("simulated", sa.Boolean, nullable=False),
    sa.Column("software_version", sa.String(40), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)


def _check(field: str, value: Any, ok: bool, allowed: str) -> str | None:
    return None if ok else f"{field}: {value!r} is not allowed; allowed: {allowed}"


def validate_lot(record: Mapping[str, Any]) -> list[str]:
    """Every problem of a lot record (empty list: valid)."""
    problems = [
        _check("lot_id", record.get("lot_id"), bool(record.get("lot_id")), "a non-empty ID"),
        _check(
            "tissue_source",
            record.get("tissue_source"),
            record.get("tissue_source") in TISSUE_SOURCES,
            ", ".join(TISSUE_SOURCES),
        ),
        _check(
            "state",
            record.get("state", "fresh"),
            record.get("state", "fresh") in LOT_STATES,
            ", ".join(LOT_STATES),
        ),
    ]
    for key, lo, hi in (("viability_pct", 0, 100), ("cd142_pct", 0, 100), ("cd142_mfi", 0, 1e7)):
        value = record.get(key)
        if value is not None and not (isinstance(value, int | float) and lo <= value <= hi):
            problems.append(f"{key}: {value!r} is out of range; allowed {lo}–{hi:g}")
    passage = record.get("passage")
    if passage is not None and not (isinstance(passage, int) and 0 <= passage <= 50):
        problems.append(f"passage: {passage!r} is not a whole number from 0 to 50")
    return [p for p in problems if p]


def add_lot(
    store: Store, record: Mapping[str, Any], *, replace: bool = False, reason: str | None = None
) -> None:
    problems = validate_lot(record)
    if problems:
        raise HemocompatError(f"lot {record.get('lot_id')!r}: " + "; ".join(problems))
    row = {
        "lot_id": record["lot_id"],
        "product": record.get("product") or "MSC",
        "tissue_source": record["tissue_source"],
        "cell_donor": record.get("cell_donor"),
        "passage": record.get("passage"),
        "manufactured_on": record.get("manufactured_on"),
        "viability_pct": record.get("viability_pct"),
        "cd142_pct": record.get("cd142_pct"),
        "cd142_mfi": record.get("cd142_mfi"),
        "state": record.get("state", "fresh"),
        "notes": record.get("notes", ""),
        "simulated": bool(record.get("simulated", False)),
        "created_at": utcnow(),
    }
    with store.engine.begin() as conn:
        exists = conn.execute(sa.select(lots).where(lots.c.lot_id == row["lot_id"])).first()
        if exists and not replace:
            raise HemocompatError(
                f"lot {row['lot_id']} is already registered; use `lots show {row['lot_id']}`"
            )
        lot_id = str(row["lot_id"])
        if exists:
            why = audit.require_reason(reason, f"replacing the record of lot {lot_id}")
            conn.execute(lots.update().where(lots.c.lot_id == row["lot_id"]).values(**row))
            old = dict(exists._mapping)
            audit.record(
                conn, "lot.update", "lot", lot_id, old=old, new=row, reason=why, lot_id=lot_id
            )
        else:
            conn.execute(lots.insert().values(**row))
            audit.record(conn, "lot.create", "lot", lot_id, new=row, lot_id=lot_id)


def get_lot(store: Store, lot_id: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(lots).where(lots.c.lot_id == lot_id)).first()
        if row is None:
            known = [r[0] for r in conn.execute(sa.select(lots.c.lot_id).order_by(lots.c.lot_id))]
            raise StorageError(
                f"no lot {lot_id!r} in the registry ({', '.join(known) or 'it is empty'}); "
                "add it with `hemocompat lots add`"
            )
    return dict(row._mapping)


def list_lots(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(lots).order_by(lots.c.lot_id))]


def record_cd142(store: Store, lot_id: str, *, pct: float, mfi: float, note: str) -> None:
    """Set a lot's % CD142+ and CD142 MFI (e.g. from flow cytometry) and append ``note`` (where
    the numbers come from) as a new line of the lot's notes."""
    problems = validate_lot(
        {"lot_id": lot_id, "tissue_source": "other", "cd142_pct": pct, "cd142_mfi": mfi}
    )
    if problems:
        raise HemocompatError(f"lot {lot_id!r}: " + "; ".join(problems))
    old = get_lot(store, lot_id)
    notes = old["notes"] or ""
    with store.engine.begin() as conn:
        conn.execute(
            lots.update()
            .where(lots.c.lot_id == lot_id)
            .values(cd142_pct=pct, cd142_mfi=mfi, notes=(notes + "\n" if notes else "") + note)
        )
        before = {"cd142_pct": old["cd142_pct"], "cd142_mfi": old["cd142_mfi"]}
        after = {"cd142_pct": pct, "cd142_mfi": mfi}
        audit.record(
            conn, "lot.cd142", "lot", lot_id, old=before, new=after, reason=note, lot_id=lot_id
        )


def import_lots_csv(store: Store, path: Path) -> int:
    """Import lots from CSV (header = lot fields); all rows are checked before any is stored."""
    numeric = {"viability_pct": float, "cd142_pct": float, "cd142_mfi": float, "passage": int}
    records, problems = [], []
    with path.open(newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            record: dict[str, Any] = {k: (v.strip() if v else None) for k, v in row.items() if k}
            for key, kind in numeric.items():
                if record.get(key):
                    try:
                        record[key] = kind(record[key])
                    except ValueError:
                        problems.append(f"{path}:{line}: {key} {record[key]!r} is not a number")
            problems += [f"{path}:{line}: {p}" for p in validate_lot(record)]
            records.append(record)
    if problems:
        raise HemocompatError("nothing imported:\n" + "\n".join(problems))
    for record in records:
        add_lot(store, record)
    return len(records)


def add_donor(
    store: Store, record: Mapping[str, Any], *, replace: bool = False, reason: str | None = None
) -> None:
    if not record.get("donor_id"):
        raise HemocompatError("donor_id is required (a pseudonymised ID, never a name)")
    if record.get("coagulability", "healthy") not in COAGULABILITY:
        raise HemocompatError(
            f"coagulability {record.get('coagulability')!r}; allowed: {', '.join(COAGULABILITY)}"
        )
    row = {
        "donor_id": record["donor_id"],
        "draw_time": record.get("draw_time"),
        "anticoagulant": record.get("anticoagulant") or "none",
        "anticoagulant_dose": record.get("anticoagulant_dose") or "",
        "coagulability": record.get("coagulability", "healthy"),
        "patient_group": record.get("patient_group") or "",
        "notes": record.get("notes", ""),
        "simulated": bool(record.get("simulated", False)),
        "created_at": utcnow(),
    }
    with store.engine.begin() as conn:
        exists = conn.execute(sa.select(donors).where(donors.c.donor_id == row["donor_id"])).first()
        if exists and not replace:
            raise HemocompatError(f"donor {row['donor_id']} is already registered")
        donor_id = str(row["donor_id"])
        if exists:
            why = audit.require_reason(reason, f"replacing the record of donor {donor_id}")
            conn.execute(donors.update().where(donors.c.donor_id == row["donor_id"]).values(**row))
            old = dict(exists._mapping)
            audit.record(conn, "donor.update", "donor", donor_id, old=old, new=row, reason=why)
        else:
            conn.execute(donors.insert().values(**row))
            audit.record(conn, "donor.create", "donor", donor_id, new=row)


def get_donor(store: Store, donor_id: str) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(donors).where(donors.c.donor_id == donor_id)).first()
    return None if row is None else dict(row._mapping)


def list_donors(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        query = sa.select(donors).order_by(donors.c.donor_id)
        return [dict(r._mapping) for r in conn.execute(query)]


def register_virtual(store: Store, lot_id: str | None, donor_ids: list[str]) -> None:
    """Register virtual-lab lots and donors (marked simulated) that the registry lacks."""
    from simulators.physiology import VirtualLab

    lab = VirtualLab.load()
    if lot_id is not None:
        try:
            get_lot(store, lot_id)
        except StorageError:
            lot = lab.lot(lot_id)
            add_lot(store, _virtual_lot_record(lot_id, lot))
    for donor_id in donor_ids:
        if get_donor(store, donor_id) is None:
            donor = lab.donor(donor_id)
            state = str(donor.coagulability)
            add_donor(
                store,
                {
                    "donor_id": donor_id,
                    "anticoagulant": "heparin (loops) / citrate (TEM)",
                    "coagulability": state if state in COAGULABILITY else "patient",
                    "patient_group": "" if state in COAGULABILITY else state,
                    "notes": "virtual-lab donor (SIMULATED)",
                    "simulated": True,
                },
            )


def _virtual_lot_record(lot_id: str, lot: Any) -> dict[str, Any]:
    tissue = str(lot.tissue_source).lower().replace("_", "-").replace(" ", "-")
    aliases = {"bm": "bone-marrow", "uc": "umbilical-cord", "pl": "placenta", "at": "adipose"}
    tissue = aliases.get(tissue, tissue)
    return {
        "lot_id": lot_id,
        "product": "virtual MSC lot",
        "tissue_source": tissue if tissue in TISSUE_SOURCES else "other",
        "passage": lot.passage,
        "viability_pct": lot.viability_pct,
        "cd142_pct": lot.cd142_positive_pct,
        "cd142_mfi": lot.cd142_mfi_relative,
        "state": "fresh",
        "notes": "virtual-lab lot (SIMULATED)",
        "simulated": True,
    }


# -- a lot's data for its indices -------------------------------------------------------------
@dataclass(frozen=True)
class LotData:
    lot: dict[str, Any]
    run_ids: tuple[int, ...]
    tem: tuple[Any, ...]
    loops: tuple[Any, ...]
    simulated: bool


def lot_runs(store: Store, lot_id: str) -> list[dict[str, Any]]:
    """Completed runs with a channel holding the lot (newest first)."""
    query = (
        sa.select(runs)
        .where(
            runs.c.status == "completed",
            runs.c.id.in_(sa.select(run_channels.c.run_id).where(run_channels.c.lot_id == lot_id)),
        )
        .order_by(runs.c.id.desc())
    )
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def collect_lot_data(store: Store, lot_id: str, run_ids: list[int] | None = None) -> LotData:
    """Turn the stored runs of a lot (and their vehicle channels) into index inputs."""
    from instrument.analysis.indices import LoopChannelData, TemChannelData

    lot = get_lot(store, lot_id)
    chosen = [r for r in lot_runs(store, lot_id) if run_ids is None or r["id"] in run_ids]
    tem: list[Any] = []
    loops: list[Any] = []
    for run in chosen:
        info = store.get_run(run["id"])
        by_channel = {r["channel"]: r["parameters"] for r in store.latest_results(run["id"])}
        for ch in info["channels"]:
            if ch["contents"] == "lot" and ch["lot_id"] != lot_id:
                continue
            params = by_channel.get(ch["channel"], {})
            vehicle = ch["contents"] == "vehicle"
            if run["assay"] == "thromboelastometry":
                tem.append(
                    TemChannelData(
                        dose_cells_per_ml=ch["dose_cells_per_ml"],
                        donor_id=ch["donor_id"] or "",
                        ct_s=params.get("CT_s", _min_to_s(params.get("R_min"))),
                        cft_s=params.get("CFT_s", _min_to_s(params.get("K_min"))),
                        mcf_mm=params.get("MCF_mm", params.get("MA_mm")),
                        is_vehicle=vehicle,
                    )
                )
            elif run["assay"] == "chandler-loop":
                tat: dict[float, float | None] = {}
                plt: dict[float, float | None] = {}
                tubes = [t for t in store.tubes(run["id"]) if t["channel"] == ch["channel"]]
                for t in tubes:
                    tat.setdefault(t["time_point_s"], None)
                    plt.setdefault(t["time_point_s"], None)
                for v in store.sample_values(run["id"]):
                    if v["channel"] != ch["channel"]:
                        continue
                    target = (
                        tat if v["analyte"] == "TAT" else plt if v["analyte"] == "PLT" else None
                    )
                    if target is not None:
                        target[v["time_point_s"]] = v["value"]
                loops.append(
                    LoopChannelData(
                        dose_cells_per_ml=ch["dose_cells_per_ml"],
                        donor_id=ch["donor_id"] or "",
                        is_vehicle=vehicle,
                        clotted=bool(params.get("clotted", False)),
                        clot_time_s=params.get("clot_time_s"),
                        tat_by_time_s=tat,
                        platelets_by_time_s=plt,
                    )
                )
    return LotData(
        lot=lot,
        run_ids=tuple(r["id"] for r in chosen),
        tem=tuple(tem),
        loops=tuple(loops),
        simulated=bool(lot["simulated"]) or any(r["simulated"] for r in chosen),
    )


def _min_to_s(value: Any) -> float | None:
    return None if value is None else float(value) * 60.0


def store_assessment(store: Store, lot_id: str, method: Any, data: LotData, assessment: Any) -> int:
    from instrument.storage import software_version

    body = assessment.to_dict()
    with store.engine.begin() as conn:
        result = conn.execute(
            assessments.insert().values(
                lot_id=lot_id,
                method_id=method.id,
                method_version=method.version,
                method_sha256=method.sha256,
                method_text=method.text,
                run_ids=json.dumps(list(data.run_ids)),
                class_id=getattr(assessment, "class_id", None),
                assessment=json.dumps(body, default=str),
                simulated=data.simulated,
                software_version=software_version(),
                created_at=utcnow(),
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        new = {
            "assessment_id": int(key[0]),
            "method": f"{method.id} v{method.version}",
            "method_sha256": method.sha256,
            "run_ids": list(data.run_ids),
            "class_id": getattr(assessment, "class_id", None),
        }
        audit.record(conn, "assessment.create", "assessment", key[0], new=new, lot_id=lot_id)
        return int(key[0])


def latest_assessment(store: Store, lot_id: str) -> dict[str, Any] | None:
    query = (
        sa.select(assessments)
        .where(assessments.c.lot_id == lot_id)
        .order_by(assessments.c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out["assessment"] = json.loads(out["assessment"])
    out["run_ids"] = json.loads(out["run_ids"])
    return out
