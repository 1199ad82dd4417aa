"""What the Lots view shows, read from storage (plain Python, no Qt; call on a worker thread).

The lot registry with each lot's latest class, one lot's stored assessment turned into rows,
points and curves, the comparison across lots, and the two actions: re-assessing a lot with a
method file (as ``hemocompat assess``) and writing its report (as ``hemocompat report``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The disclaimer every place that shows a class carries (the CLI prints the same).
DISCLAIMER = (
    "These indices and classes are hemocompat's documented construct for research use "
    "(docs/indices.md), not a clinical rule."
)

#: Method threshold key → the index row it limits.
THRESHOLD_ROWS = {
    "delta_ct_pct_max": "delta_ct_pct",
    "loop_clotting_allowed": "clotted",
    "tat_fold_max": "tat_fold",
    "delta_tat_ug_per_l_max": "delta_tat_ug_per_l",
    "platelet_consumption_pct_max": "excess_platelet_consumption_pct",
}

#: Report formats: key → (what is written, file suffix or "" for a folder).
REPORT_KINDS = {"pdf": ("PDF", ".pdf"), "xlsx": ("XLSX", ".xlsx"), "csv": ("CSV files", "")}


# -- the registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LotEntry:
    """One row of the registry: the lot record and its latest class."""

    lot: dict[str, Any]
    class_id: str | None
    class_name: str | None
    simulated: bool

    @property
    def lot_id(self) -> str:
        return str(self.lot["lot_id"])


def list_lot_entries(store: Any) -> list[LotEntry]:
    """Every registered lot with the class of its latest assessment (None: not assessed)."""
    from instrument.lots import latest_assessment, list_lots

    entries = []
    for lot in list_lots(store):
        latest = latest_assessment(store, lot["lot_id"])
        decision = (latest or {}).get("assessment", {}).get("decision") or {}
        entries.append(
            LotEntry(
                lot=lot,
                class_id=latest["class_id"] if latest else None,
                class_name=decision.get("name") if latest else None,
                simulated=bool(lot["simulated"]) or bool(latest and latest["simulated"]),
            )
        )
    return entries


# -- one lot -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DoseColumn:
    """One column of the indices table: a tested dose in one donor's blood."""

    dose_cells_per_ml: float
    donor_id: str
    dose_cells_per_kg: float | None
    status: str | None  # safe | unsafe | not assessed (None: the dose has no judgement)


@dataclass(frozen=True)
class IndexRow:
    """One index across the dose columns; ``failed[i]`` is the text of a broken threshold."""

    key: str
    label: str
    values: tuple[Any, ...]
    failed: tuple[str | None, ...]
    tips: tuple[str, ...]
    limit: str = ""  # the method's threshold on this index, as text ("" if none)


@dataclass(frozen=True)
class DosePoint:
    """One (donor, dose) point of the dose–response plot."""

    dose_cells_per_ml: float
    donor_id: str
    value: float
    status: str | None


@dataclass(frozen=True)
class Fit:
    """y = intercept + slope · log10(dose), drawn over the tested doses."""

    intercept: float
    slope_per_decade: float
    r_squared: float | None
    dose_min: float
    dose_max: float

    def at(self, dose_cells_per_ml: float) -> float:
        return self.intercept + self.slope_per_decade * math.log10(dose_cells_per_ml)


@dataclass(frozen=True)
class TatCourse:
    """The TAT time course of one loop of a Chandler-loop run."""

    run_id: int
    loop: int
    label: str
    vehicle: bool
    dose_cells_per_ml: float | None
    times_s: tuple[float, ...]
    tat_ug_per_l: tuple[float, ...]


@dataclass(frozen=True)
class LotDetail:
    """Everything the Lots view shows of one lot."""

    lot: dict[str, Any]
    runs: tuple[dict[str, Any], ...]
    assessment: dict[str, Any]  # LotAssessment.to_dict() of the latest assessment ({} if none)
    stored: dict[str, Any] | None  # the stored assessment row (method, runs, when)
    thresholds: dict[str, Any]  # the method's thresholds (key → limit)
    class_ids: tuple[str, ...]  # the method's classes, in the order they are tried
    columns: tuple[DoseColumn, ...]
    rows: tuple[IndexRow, ...]
    delta_ct_points: tuple[DosePoint, ...]
    tat_fold_points: tuple[DosePoint, ...]
    delta_ct_fit: Fit | None
    tat_fold_fit: Fit | None
    tat_courses: tuple[TatCourse, ...]
    simulated: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def lot_id(self) -> str:
        return str(self.lot["lot_id"])

    @property
    def decision(self) -> dict[str, Any]:
        return dict(self.assessment.get("decision") or {})

    @property
    def class_id(self) -> str | None:
        return self.decision.get("class_id") or (self.stored or {}).get("class_id")

    @property
    def class_name(self) -> str | None:
        return self.decision.get("name") or self.class_id

    @property
    def class_position(self) -> str | None:
        """Where the class stands in the method's list, which runs from the most to the least
        permissive: "first", "last" (the default class) or "between"; None if unknown."""
        if self.class_id is None or self.class_id not in self.class_ids:
            return None
        index = self.class_ids.index(self.class_id)
        if index == len(self.class_ids) - 1:
            return "last"
        return "first" if index == 0 else "between"

    def threshold_texts(self) -> list[str]:
        """The method's thresholds as a reader would say them."""
        labels = {
            "delta_ct_pct_max": "ΔCT ≤ {:g} %",
            "tat_fold_max": "TAT fold change ≤ {:g}",
            "delta_tat_ug_per_l_max": "ΔTAT ≤ {:g} µg/L",
            "platelet_consumption_pct_max": "platelet consumption beyond the vehicle ≤ {:g} points",
        }
        texts = []
        for key, limit in self.thresholds.items():
            if key == "loop_clotting_allowed":
                texts.append("loop clotting allowed" if limit else "no loop may clot")
            elif key in labels and limit is not None:
                texts.append(labels[key].format(limit))
        return texts


def load_lot_detail(store: Any, lot_id: str) -> LotDetail:
    """A lot, its runs and its latest stored assessment (blocking)."""
    from instrument.lots import get_lot, latest_assessment, lot_runs

    lot = get_lot(store, lot_id)
    runs = tuple(lot_runs(store, lot_id))
    stored = latest_assessment(store, lot_id)
    assessment: dict[str, Any] = dict(stored["assessment"]) if stored else {}
    thresholds, class_ids = method_thresholds(stored, assessment)
    columns, rows = index_table(assessment, thresholds)
    used = set(stored["run_ids"]) if stored else {r["id"] for r in runs}
    loop_runs = [r["id"] for r in runs if r["assay"] == "chandler-loop" and r["id"] in used]
    courses = tuple(c for run_id in sorted(loop_runs) for c in tat_courses(store, run_id, lot_id))
    statuses = {float(d["dose_cells_per_ml"]): d.get("status") for d in assessment.get("doses", [])}
    return LotDetail(
        lot=lot,
        runs=runs,
        assessment=assessment,
        stored={k: v for k, v in stored.items() if k != "assessment"} if stored else None,
        thresholds=thresholds,
        class_ids=class_ids,
        columns=columns,
        rows=rows,
        delta_ct_points=_points(assessment.get("tem", []), "delta_ct_pct", statuses),
        tat_fold_points=_points(assessment.get("loops", []), "tat_fold", statuses),
        delta_ct_fit=_fit(assessment.get("delta_ct_fit")),
        tat_fold_fit=_fit(assessment.get("tat_fold_fit")),
        tat_courses=courses,
        simulated=bool(lot["simulated"])
        or bool(stored and stored["simulated"])
        or any(r["simulated"] for r in runs),
        notes=tuple(f"{k}: {v}" for k, v in (assessment.get("notes") or {}).items()),
    )


def method_thresholds(
    stored: Mapping[str, Any] | None, assessment: Mapping[str, Any]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The thresholds and the class ids (in order) of the method the assessment used, from the
    stored method text; without it, the limits of the dose checks (the assessment has them)."""
    text = stored.get("method_text") if stored else None
    if text and stored is not None:
        from protocols import MethodValidationError, parse_method

        try:
            method = parse_method(text, source=f"method {stored.get('method_id')}")
        except MethodValidationError:
            pass
        else:
            t = method.thresholds
            limits = {k: getattr(t, k) for k in THRESHOLD_ROWS if getattr(t, k) is not None}
            return limits, tuple(c.id for c in method.classes)
    found: dict[str, Any] = {}
    for dose in assessment.get("doses", []):
        for check in dose.get("checks", []):
            if check.get("key") in THRESHOLD_ROWS:
                found.setdefault(check["key"], check.get("limit"))
    return found, ()


def _mean(value: Any) -> Any:
    """A replicate statistic ``{mean, sd, n}`` by its mean; other values as they are."""
    return value.get("mean") if isinstance(value, Mapping) else value


def _stat_tip(name: str, value: Any) -> str:
    if not isinstance(value, Mapping) or value.get("mean") is None:
        return ""
    sd = value.get("sd")
    spread = f" ± {sd:.3g} (SD)" if isinstance(sd, int | float) else ""
    return f"{name}: {value['mean']:.4g}{spread}, n = {value.get('n')}"


def _key(entry: Mapping[str, Any]) -> tuple[float, str]:
    return (round(float(entry["dose_cells_per_ml"]), 6), str(entry.get("donor_id") or ""))


#: The rows of the indices table: key, label, where the value comes from (tem | loops | dose).
INDEX_ROWS = (
    ("status", "Status", "dose"),
    ("delta_ct_pct", "ΔCT (%)", "tem"),
    ("delta_cft_pct", "ΔCFT (%)", "tem"),
    ("delta_mcf_mm", "ΔMCF (mm)", "tem"),
    ("clotted", "Loop clotted", "loops"),
    ("clot_time_s", "Clotting time (s)", "loops"),
    ("tat_fold", "TAT fold change", "loops"),
    ("delta_tat_ug_per_l", "ΔTAT (µg/L)", "loops"),
    ("tat_auc_ug_per_l_min", "TAT AUC µg/L·min", "loops"),
    ("tat_auc_ratio", "TAT AUC ratio", "loops"),
    ("platelet_consumption_pct", "PLT consumption (%)", "loops"),
    ("excess_platelet_consumption_pct", "PLT excess (pts)", "loops"),
)


def index_table(
    assessment: Mapping[str, Any], thresholds: Mapping[str, Any]
) -> tuple[tuple[DoseColumn, ...], tuple[IndexRow, ...]]:
    """The per-dose indices of an assessment: one column per (dose, donor), one row per index,
    each value exactly as stored (statistics by their mean)."""
    tem = {_key(e): e for e in assessment.get("tem", [])}
    loops = {_key(e): e for e in assessment.get("loops", [])}
    doses = {round(float(d["dose_cells_per_ml"]), 6): d for d in assessment.get("doses", [])}
    keys = sorted(set(tem) | set(loops))
    columns = tuple(
        DoseColumn(
            dose_cells_per_ml=dose,
            donor_id=donor,
            dose_cells_per_kg=(doses.get(dose) or {}).get("dose_cells_per_kg"),
            status=(doses.get(dose) or {}).get("status"),
        )
        for dose, donor in keys
    )
    failed_by: dict[tuple[float, str], dict[str, str]] = {}
    for dose, judgement in doses.items():
        for check in judgement.get("checks", []):
            row = THRESHOLD_ROWS.get(str(check.get("key")))
            if row and check.get("passed") is False:
                failed_by.setdefault((dose, str(check.get("donor_id") or "")), {})[row] = str(
                    check["text"]
                )
    rows = []
    for key, name, source in INDEX_ROWS:
        label = name
        values: list[Any] = []
        failed: list[str | None] = []
        tips: list[str] = []
        for column, k in zip(columns, keys, strict=True):
            entry: Mapping[str, Any]
            if source == "dose":
                entry = {"status": column.status, "dose_cells_per_kg": column.dose_cells_per_kg}
            else:
                entry = (tem if source == "tem" else loops).get(k, {})
            raw = entry.get(key)
            values.append(_mean(raw))
            failed.append(failed_by.get(k, {}).get(key))
            tips.append(_tip(key, entry, raw))
        if key == "tat_fold" and any(e.get("tat_time_s") for e in loops.values()):
            times = {e["tat_time_s"] for e in loops.values() if e.get("tat_time_s") is not None}
            label = f"TAT fold {', '.join(f'{t / 60:g}' for t in sorted(times))} min"
        limit_text = ""
        if key in THRESHOLD_ROWS.values():
            limit_key = next(k for k, v in THRESHOLD_ROWS.items() if v == key)
            if limit_key in thresholds:
                limit = thresholds[limit_key]
                if key == "clotted":
                    limit_text = "loop clotting allowed" if limit else "no loop may clot"
                else:
                    label += f" ≤ {limit:g}"
                    limit_text = f"{limit_key}: {limit:g}"
        rows.append(IndexRow(key, label, tuple(values), tuple(failed), tuple(tips), limit_text))
    return columns, tuple(rows)


def _tip(key: str, entry: Mapping[str, Any], raw: Any) -> str:
    parts = [_stat_tip("mean", raw)] if isinstance(raw, Mapping) else []
    vehicle = entry.get(f"vehicle_{key}")
    if vehicle is not None:
        parts.append(_stat_tip("vehicle", vehicle) or f"vehicle: {vehicle}")
    if key == "clotted" and entry.get("loops_n") is not None:
        parts.append(f"{entry.get('clotted_n')} of {entry.get('loops_n')} loops clotted")
    note = (entry.get("notes") or {}).get(key)
    if note:
        parts.append(str(note))
    return "\n".join(p for p in parts if p)


def _points(
    entries: Sequence[Mapping[str, Any]], key: str, statuses: Mapping[float, Any]
) -> tuple[DosePoint, ...]:
    points = []
    for e in entries:
        value = e.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            dose = float(e["dose_cells_per_ml"])
            points.append(
                DosePoint(dose, str(e.get("donor_id") or ""), float(value), statuses.get(dose))
            )
    return tuple(sorted(points, key=lambda p: (p.dose_cells_per_ml, p.donor_id)))


def _fit(fit: Any) -> Fit | None:
    if not isinstance(fit, Mapping):
        return None
    doses = [float(d) for d in fit.get("doses_cells_per_ml") or [] if d]
    if fit.get("intercept") is None or fit.get("slope_per_decade") is None or not doses:
        return None
    return Fit(
        float(fit["intercept"]),
        float(fit["slope_per_decade"]),
        fit.get("r_squared"),
        min(doses),
        max(doses),
    )


def tat_courses(store: Any, run_id: int, lot_id: str) -> list[TatCourse]:
    """TAT against draw time for each vehicle loop and each loop of ``lot_id`` in a run; a
    re-assayed tube shows its latest value, as in the indices and the report."""
    run = store.get_run(run_id)
    values: dict[int, dict[float, float | None]] = {}
    for tube in store.tubes(run_id):
        values.setdefault(tube["channel"], {})[tube["time_point_s"]] = None
    for v in store.sample_values(run_id, "TAT"):
        values.setdefault(v["channel"], {})[v["time_point_s"]] = v["value"]
    courses = []
    for ch in run["channels"]:
        vehicle = ch["contents"] == "vehicle"
        if not vehicle and ch["lot_id"] != lot_id:
            continue
        points = sorted((t, x) for t, x in values.get(ch["channel"], {}).items() if x is not None)
        courses.append(
            TatCourse(
                run_id=run_id,
                loop=int(ch["channel"]),
                label=str(ch["label"]),
                vehicle=vehicle,
                dose_cells_per_ml=None if vehicle else ch["dose_cells_per_ml"],
                times_s=tuple(float(t) for t, _x in points),
                tat_ug_per_l=tuple(float(x) for _t, x in points),
            )
        )
    return courses


def dose_text(dose: float | None, unit: str = "cells/mL") -> str:
    """``30000`` → ``3.0e4 cells/mL`` (the notation of the explanation)."""
    if dose is None:
        return "—"
    mantissa, _e, exponent = f"{float(dose):.1e}".partition("e")
    return f"{mantissa}e{int(exponent)} {unit}"


# -- comparison across lots --------------------------------------------------------------------
@dataclass(frozen=True)
class ComparisonData:
    """The lots compared (``instrument.compare``), each lot's ΔCT curve and trend limits."""

    comparison: Any  # instrument.compare.Comparison
    metrics: dict[str, str]
    #: lot → [(dose cells/mL, ΔCT %)] of its latest assessment
    curves: dict[str, list[tuple[float, float]]]
    #: metric → lot → (mean, SD) of the other lots of its product
    limits: dict[str, dict[str, tuple[float, float]]]

    @property
    def rows(self) -> list[Any]:
        return list(self.comparison.rows)

    @property
    def simulated(self) -> bool:
        return any(r.simulated for r in self.comparison.rows)

    def flagged(self, lot_id: str, metric: str | None = None) -> list[Any]:
        return [
            f
            for f in self.comparison.flags
            if f.lot_id == lot_id and (metric is None or f.metric == metric)
        ]


def load_comparison(store: Any, product: str | None = None) -> ComparisonData:
    """Every assessed lot by tissue source, as ``hemocompat lots compare`` (blocking)."""
    from instrument.compare import METRICS, compare_lots, trend_limits
    from instrument.lots import latest_assessment

    comparison = compare_lots(store, product)
    curves: dict[str, list[tuple[float, float]]] = {}
    for row in comparison.rows:
        latest = latest_assessment(store, row.lot_id)
        if latest is None:
            continue
        curves[row.lot_id] = sorted(
            (float(t["dose_cells_per_ml"]), float(t["delta_ct_pct"]))
            for t in latest["assessment"].get("tem", [])
            if isinstance(t.get("delta_ct_pct"), int | float)
        )
    limits: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in METRICS}
    for prod in sorted({r.product for r in comparison.rows}):
        members = [r for r in comparison.rows if r.product == prod]
        for metric in METRICS:
            limits[metric].update(trend_limits(members, metric))
    return ComparisonData(comparison, dict(METRICS), curves, limits)


# -- actions -----------------------------------------------------------------------------------
def reassess(store: Any, lot_id: str, method_path: Path | None) -> tuple[int, dict[str, Any]]:
    """A new assessment of the lot from its stored runs, as ``hemocompat assess`` (blocking)."""
    from instrument.panel import assess_and_store
    from protocols import bundled_methods, load_method

    method = load_method(method_path or bundled_methods()[0])
    return assess_and_store(store, lot_id, method)


def write_report(store: Any, lot_id: str, kind: str, path: Path) -> list[Path]:
    """The lot's report as PDF, XLSX or a folder of CSV files, exactly as ``hemocompat report``
    writes it (blocking)."""
    from instrument.report_data import build_lot_report
    from instrument.reports import write_csv, write_pdf, write_xlsx

    if kind not in REPORT_KINDS:
        raise ValueError(f"report kind {kind!r}; allowed: {', '.join(REPORT_KINDS)}")
    report = build_lot_report(store, lot_id)
    if kind == "pdf":
        return [write_pdf(report, path)]
    if kind == "xlsx":
        return [write_xlsx(report, path)]
    return list(write_csv(report, path))
