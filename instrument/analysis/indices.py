"""Per-lot hemocompatibility indices, dose judgements and the class a method file assigns.

Definitions and a worked example: docs/indices.md. Every index of a dose compares it with the
vehicle control measured with the same donor's blood. The thresholds, release criteria and
class rules come from a decision-method file (`protocols.method`); nothing of the decision is
a constant here. Pure computation: the inputs are plain dataclasses that a caller fills from
storage. Missing data never raise: an index that cannot be computed is None, and `notes` says
why under the index's name.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

import numpy as np

from instrument.analysis.loop import platelet_consumption_pct
from protocols.method import ClassRule, MethodFile, ReleaseCriteria

DoseStatus = Literal["safe", "unsafe", "not assessed"]

# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemChannelData:
    """One thromboelastometry run: the lot at a dose (or the vehicle) in one donor's blood.

    Several runs with the same dose and donor are replicates and are averaged. None marks a
    parameter the run did not give (no clot, CFT not reached, ...).
    """

    dose_cells_per_ml: float
    donor_id: str
    ct_s: float | None
    cft_s: float | None
    mcf_mm: float | None
    is_vehicle: bool


@dataclass(frozen=True)
class LoopChannelData:
    """One Chandler loop: the lot at a dose (or the vehicle) in one donor's blood.

    `clotted` is None when it is not known. TAT (µg/L) and platelet counts (any unit, e.g.
    10⁹/L) are keyed by the draw time in seconds after the loops start; a scheduled draw without
    a value is None. Loops with the same dose and donor are replicates.
    """

    dose_cells_per_ml: float
    donor_id: str
    is_vehicle: bool
    clotted: bool | None
    clot_time_s: float | None
    tat_by_time_s: Mapping[float, float | None] = field(default_factory=dict)
    platelets_by_time_s: Mapping[float, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class LotInfo:
    """The lot under test and its release data (None: not measured)."""

    lot_id: str
    tissue_source: str | None = None
    cd142_pct: float | None = None
    cd142_mfi: float | None = None
    viability_pct: float | None = None


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (n − 1; None for a single value) and count of replicates."""

    mean: float
    sd: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat | None:
        """The statistics of the values, None when there are none."""
        data = list(values)
        if not data:
            return None
        sd = statistics.stdev(data) if len(data) > 1 else None
        return cls(mean=statistics.fmean(data), sd=sd, n=len(data))


@dataclass(frozen=True)
class TemDoseIndices:
    """TEM indices of one dose in one donor's blood versus that donor's vehicle runs.

    Positive deltas are procoagulant: ΔCT % and ΔCFT % are shortenings, ΔMCF a firmer clot.
    """

    donor_id: str
    dose_cells_per_ml: float
    ct_s: Stat | None
    cft_s: Stat | None
    mcf_mm: Stat | None
    vehicle_ct_s: Stat | None
    vehicle_cft_s: Stat | None
    vehicle_mcf_mm: Stat | None
    delta_ct_pct: float | None
    delta_cft_pct: float | None
    delta_mcf_mm: float | None
    delta_mcf_pct: float | None
    notes: Mapping[str, str]


@dataclass(frozen=True)
class TatPoint:
    """TAT of a dose and of its vehicle at one draw time, with fold change and difference."""

    time_s: float
    tat_ug_per_l: Stat | None
    vehicle_tat_ug_per_l: Stat | None
    fold: float | None
    delta_ug_per_l: float | None
    note: str = ""


@dataclass(frozen=True)
class LoopDoseIndices:
    """Chandler-loop indices of one dose in one donor's blood versus that donor's vehicle loops.

    `tat_fold` and `delta_tat_ug_per_l` are those of the last draw time; the platelet
    consumption is from the first to the last count, and `excess_platelet_consumption_pct` is
    the dose's consumption minus the vehicle's, in percentage points.
    """

    donor_id: str
    dose_cells_per_ml: float
    loops_n: int
    clotted_n: int
    clot_unknown_n: int
    clotted: bool | None
    clot_time_s: Stat | None
    vehicle_loops_n: int
    vehicle_clotted_n: int
    tat: tuple[TatPoint, ...]
    tat_time_s: float | None
    tat_fold: float | None
    delta_tat_ug_per_l: float | None
    tat_auc_ug_per_l_min: Stat | None
    vehicle_tat_auc_ug_per_l_min: Stat | None
    tat_auc_ratio: float | None
    platelet_consumption_pct: Stat | None
    vehicle_platelet_consumption_pct: Stat | None
    excess_platelet_consumption_pct: float | None
    notes: Mapping[str, str]


@dataclass(frozen=True)
class Check:
    """One threshold, release criterion or rule condition applied to one value.

    `passed` is None when the value is unknown; `text` says what was compared, or why not.
    """

    key: str
    value: float | bool | None
    limit: float | bool
    passed: bool | None
    text: str
    donor_id: str | None = None


@dataclass(frozen=True)
class DoseJudgement:
    """Whether a dose stayed under every threshold of the method, for every donor tested.

    `safe`: every check passed; `unsafe`: at least one threshold was exceeded; `not assessed`:
    none was exceeded but at least one could not be checked.
    """

    dose_cells_per_ml: float
    dose_cells_per_kg: float
    status: DoseStatus
    checks: tuple[Check, ...]

    @property
    def broken(self) -> tuple[Check, ...]:
        """The checks this dose failed."""
        return tuple(c for c in self.checks if c.passed is False)

    @property
    def unassessed(self) -> tuple[Check, ...]:
        """The checks that could not be made."""
        return tuple(c for c in self.checks if c.passed is None)


@dataclass(frozen=True)
class DoseResponseFit:
    """Least-squares line y = a + b·log10(dose); a and b are None when it cannot be fitted."""

    quantity: str
    intercept: float | None
    slope_per_decade: float | None
    r_squared: float | None
    doses_cells_per_ml: tuple[float, ...]
    values: tuple[float, ...]
    note: str = ""

    def predict(self, dose_cells_per_ml: float) -> tuple[float | None, str]:
        """The fitted value at a dose within the tested range, or None and why not."""
        if self.intercept is None or self.slope_per_decade is None:
            return None, f"no dose–response fit: {self.note}"
        lo, hi = min(self.doses_cells_per_ml), max(self.doses_cells_per_ml)
        if not lo * (1 - 1e-9) <= dose_cells_per_ml <= hi * (1 + 1e-9):
            return None, (
                f"{_dose(dose_cells_per_ml)} cells/mL is outside the tested range "
                f"{_dose(lo)}–{_dose(hi)} cells/mL; the fit is not extrapolated"
            )
        return self.intercept + self.slope_per_decade * math.log10(dose_cells_per_ml), ""


@dataclass(frozen=True)
class ReleaseResult:
    """The lot release check: passed when every criterion holds, None when one is unknown."""

    passed: bool | None
    checks: tuple[Check, ...]
    note: str = ""


@dataclass(frozen=True)
class RuleResult:
    """A class rule tried on the lot: whether it held, and each of its conditions."""

    class_id: str
    holds: bool
    conditions: tuple[Check, ...]


@dataclass(frozen=True)
class ClassDecision:
    """The class of the lot: the first class of the method whose rule holds.

    `rules` lists the rules tried, in order, ending with the one that decided.
    """

    class_id: str
    name: str
    route: str
    wording: str
    rule_index: int
    dose_cap_cells_per_kg: float | None
    dose_cap_cells_per_ml: float | None
    rules: tuple[RuleResult, ...]


@dataclass(frozen=True)
class LotAssessment:
    """Everything computed for one lot under one method file, with the reasons for any gap."""

    lot: LotInfo
    method_id: str
    method_version: int
    method_sha256: str
    blood_volume_ml_per_kg: float
    intended_dose_cells_per_kg: float
    intended_dose_cells_per_ml: float
    tem: tuple[TemDoseIndices, ...]
    loops: tuple[LoopDoseIndices, ...]
    doses: tuple[DoseJudgement, ...]
    delta_ct_fit: DoseResponseFit
    tat_fold_fit: DoseResponseFit
    delta_ct_pct_at_intended_dose: float | None
    tat_fold_at_intended_dose: float | None
    highest_safe_dose_cells_per_ml: float | None
    highest_safe_dose_cells_per_kg: float | None
    safe_dose_ratio: float | None
    release: ReleaseResult
    decision: ClassDecision
    explanation: str
    notes: Mapping[str, str]

    @property
    def class_id(self) -> str:
        """The id of the lot's class."""
        return self.decision.class_id

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, strings, numbers, booleans and None, ready for JSON."""
        result = _plain(self)
        assert isinstance(result, dict)
        return result


# -- entry point --------------------------------------------------------------------------------


def assess_lot(
    method: MethodFile,
    lot: LotInfo,
    tem: Sequence[TemChannelData] = (),
    loops: Sequence[LoopChannelData] = (),
) -> LotAssessment:
    """Compute every index of the lot, judge each dose and classify the lot by the method.

    Raises ValueError for impossible input (negative or non-finite numbers, a lot channel
    without a positive dose, an empty donor ID); missing data only leave gaps with reasons.
    """
    _check_inputs(tem, loops)
    blood_volume = method.blood_volume_ml_per_kg
    intended_per_ml = method.intended_dose_cells_per_ml
    tem_indices = _tem_indices(tem)
    loop_indices = _loop_indices(loops)
    doses = _judge_doses(method, tem_indices, loop_indices)
    notes: dict[str, str] = {}

    delta_ct_fit = _fit(
        "delta_ct_pct",
        "ΔCT",
        [(i.dose_cells_per_ml, i.delta_ct_pct) for i in tem_indices],
    )
    tat_fold_fit = _fit(
        "tat_fold",
        "TAT fold change",
        [(i.dose_cells_per_ml, i.tat_fold) for i in loop_indices],
    )
    ct_at_intended, why = delta_ct_fit.predict(intended_per_ml)
    if ct_at_intended is None:
        notes["delta_ct_pct_at_intended_dose"] = why
    tat_at_intended, why = tat_fold_fit.predict(intended_per_ml)
    if tat_at_intended is None:
        notes["tat_fold_at_intended_dose"] = why

    safe, safe_note = _highest_safe_dose(doses)
    safe_per_ml = safe.dose_cells_per_ml if safe is not None else None
    safe_per_kg = safe_per_ml * blood_volume if safe_per_ml is not None else None
    ratio = safe_per_kg / method.intended_dose_cells_per_kg if safe_per_kg is not None else None
    if safe is None:
        notes["highest_safe_dose"] = safe_note
        notes["safe_dose_ratio"] = safe_note
    elif safe_note:
        notes["highest_safe_dose"] = safe_note

    release = _release(method.release, lot)
    facts = _Facts(
        safe_dose_ratio=ratio,
        safe_dose_note=safe_note,
        release=release,
        delta_ct_at_intended=ct_at_intended,
        delta_ct_note=notes.get("delta_ct_pct_at_intended_dose", ""),
        tat_fold_at_intended=tat_at_intended,
        tat_fold_note=notes.get("tat_fold_at_intended_dose", ""),
    )
    decision = _decide(method, facts, safe_per_ml, safe_per_kg)
    if decision.dose_cap_cells_per_kg is None and method.classes[decision.rule_index].dose_cap:
        notes["dose_cap"] = f"no dose cap: {safe_note}"
    explanation = _explain(method, decision, doses, safe, ratio, safe_note, release)
    return LotAssessment(
        lot=lot,
        method_id=method.id,
        method_version=method.version,
        method_sha256=method.sha256,
        blood_volume_ml_per_kg=blood_volume,
        intended_dose_cells_per_kg=method.intended_dose_cells_per_kg,
        intended_dose_cells_per_ml=intended_per_ml,
        tem=tem_indices,
        loops=loop_indices,
        doses=doses,
        delta_ct_fit=delta_ct_fit,
        tat_fold_fit=tat_fold_fit,
        delta_ct_pct_at_intended_dose=ct_at_intended,
        tat_fold_at_intended_dose=tat_at_intended,
        highest_safe_dose_cells_per_ml=safe_per_ml,
        highest_safe_dose_cells_per_kg=safe_per_kg,
        safe_dose_ratio=ratio,
        release=release,
        decision=decision,
        explanation=explanation,
        notes=notes,
    )


# -- input checks -------------------------------------------------------------------------------


def _check_inputs(tem: Sequence[TemChannelData], loops: Sequence[LoopChannelData]) -> None:
    for index, run in enumerate(tem):
        where = f"tem[{index}]"
        _check_channel(where, run.donor_id, run.dose_cells_per_ml, run.is_vehicle)
        for name in ("ct_s", "cft_s", "mcf_mm"):
            _check_value(where, name, getattr(run, name))
    for index, loop in enumerate(loops):
        where = f"loops[{index}]"
        _check_channel(where, loop.donor_id, loop.dose_cells_per_ml, loop.is_vehicle)
        _check_value(where, "clot_time_s", loop.clot_time_s)
        for name in ("tat_by_time_s", "platelets_by_time_s"):
            for time_s, value in getattr(loop, name).items():
                _check_value(where, f"{name} key", time_s)
                _check_value(where, f"{name}[{time_s:g}]", value)


def _check_channel(where: str, donor_id: str, dose: float, is_vehicle: bool) -> None:
    if not donor_id.strip():
        raise ValueError(f"{where}: donor_id is empty; every channel needs its blood donor")
    if not math.isfinite(dose) or dose < 0 or (not is_vehicle and dose <= 0):
        raise ValueError(
            f"{where}: dose_cells_per_ml must be a finite number > 0 for a lot channel "
            f"(≥ 0 for a vehicle); got {dose!r}"
        )


def _check_value(where: str, name: str, value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise ValueError(f"{where}: {name} must be a finite number ≥ 0 or None; got {value!r}")


def _dose_key(dose: float) -> float:
    """Doses equal to 6 significant digits are the same dose (1e4 and 1.0e4 and 10000)."""
    return float(f"{dose:.6g}")


# -- TEM ----------------------------------------------------------------------------------------


def _tem_indices(runs: Sequence[TemChannelData]) -> tuple[TemDoseIndices, ...]:
    vehicles: dict[str, list[TemChannelData]] = defaultdict(list)
    groups: dict[tuple[float, str], list[TemChannelData]] = defaultdict(list)
    for run in runs:
        if run.is_vehicle:
            vehicles[run.donor_id].append(run)
        else:
            groups[(_dose_key(run.dose_cells_per_ml), run.donor_id)].append(run)
    results = []
    for (dose, donor), group in sorted(groups.items()):
        notes: dict[str, str] = {}
        controls = vehicles.get(donor, [])
        no_vehicle = f"no vehicle run with the blood of donor {donor}"
        stats: dict[str, Stat | None] = {}
        for name, what in (("ct_s", "CT"), ("cft_s", "CFT"), ("mcf_mm", "MCF")):
            stats[name] = _replicates([getattr(r, name) for r in group], what, "runs", name, notes)
            vehicle_key = f"vehicle_{name}"
            if controls:
                values = [getattr(r, name) for r in controls]
                stats[vehicle_key] = _replicates(
                    values, f"vehicle {what}", "runs", vehicle_key, notes
                )
            else:
                stats[vehicle_key] = None
                notes[vehicle_key] = no_vehicle
        same_blood = "" if controls else f"{no_vehicle}, which the comparison needs"
        delta_ct = _relative_change(
            stats, "ct_s", "CT", notes, "delta_ct_pct", same_blood, shortening=True
        )
        delta_cft = _relative_change(
            stats, "cft_s", "CFT", notes, "delta_cft_pct", same_blood, shortening=True
        )
        delta_mcf_pct = _relative_change(
            stats, "mcf_mm", "MCF", notes, "delta_mcf_pct", same_blood, shortening=False
        )
        mcf, vehicle_mcf = stats["mcf_mm"], stats["vehicle_mcf_mm"]
        delta_mcf_mm = None
        if mcf is not None and vehicle_mcf is not None:
            delta_mcf_mm = mcf.mean - vehicle_mcf.mean
        else:
            notes["delta_mcf_mm"] = notes.get("delta_mcf_pct", "MCF unknown")
        results.append(
            TemDoseIndices(
                donor_id=donor,
                dose_cells_per_ml=dose,
                ct_s=stats["ct_s"],
                cft_s=stats["cft_s"],
                mcf_mm=mcf,
                vehicle_ct_s=stats["vehicle_ct_s"],
                vehicle_cft_s=stats["vehicle_cft_s"],
                vehicle_mcf_mm=vehicle_mcf,
                delta_ct_pct=delta_ct,
                delta_cft_pct=delta_cft,
                delta_mcf_mm=delta_mcf_mm,
                delta_mcf_pct=delta_mcf_pct,
                notes=notes,
            )
        )
    return tuple(results)


def _replicates(
    values: Sequence[float | None], what: str, unit: str, key: str, notes: dict[str, str]
) -> Stat | None:
    """Mean of the known replicate values; a note when some or all are missing."""
    known = [v for v in values if v is not None]
    missing = len(values) - len(known)
    if not known:
        notes[key] = f"no {what} in any of the {len(values)} {unit}"
        return None
    if missing:
        notes[key] = f"{what} missing in {missing} of {len(values)} {unit}; mean of the others"
    return Stat.of(known)


def _relative_change(
    stats: Mapping[str, Stat | None],
    name: str,
    what: str,
    notes: dict[str, str],
    key: str,
    same_blood: str,
    *,
    shortening: bool,
) -> float | None:
    """(vehicle − dose)/vehicle × 100 for shortenings, (dose − vehicle)/vehicle × 100 otherwise."""
    dose, vehicle = stats[name], stats[f"vehicle_{name}"]
    if same_blood:
        notes[key] = same_blood
        return None
    if dose is None:
        notes[key] = f"{what} of the dose unknown: {notes[name]}"
        return None
    if vehicle is None:
        notes[key] = f"vehicle {what} unknown: {notes[f'vehicle_{name}']}"
        return None
    if vehicle.mean == 0:
        notes[key] = f"vehicle {what} is 0, so the relative change is undefined"
        return None
    change = (vehicle.mean - dose.mean) if shortening else (dose.mean - vehicle.mean)
    return change / vehicle.mean * 100.0


# -- Chandler loops -----------------------------------------------------------------------------


def _loop_indices(loops: Sequence[LoopChannelData]) -> tuple[LoopDoseIndices, ...]:
    vehicles: dict[str, list[LoopChannelData]] = defaultdict(list)
    groups: dict[tuple[float, str], list[LoopChannelData]] = defaultdict(list)
    for loop in loops:
        if loop.is_vehicle:
            vehicles[loop.donor_id].append(loop)
        else:
            groups[(_dose_key(loop.dose_cells_per_ml), loop.donor_id)].append(loop)
    return tuple(
        _loop_group(dose, donor, group, vehicles.get(donor, []))
        for (dose, donor), group in sorted(groups.items())
    )


def _loop_group(
    dose: float,
    donor: str,
    group: Sequence[LoopChannelData],
    controls: Sequence[LoopChannelData],
) -> LoopDoseIndices:
    notes: dict[str, str] = {}
    no_vehicle = f"no vehicle loop with the blood of donor {donor}"
    clotted_n = sum(1 for loop in group if loop.clotted is True)
    unknown_n = sum(1 for loop in group if loop.clotted is None)
    clotted: bool | None = True if clotted_n else (None if unknown_n else False)
    if clotted is None:
        notes["clotted"] = f"clotting unknown in {unknown_n} of {len(group)} loops"
    clot_times = [loop.clot_time_s for loop in group if loop.clotted is True]
    clot_time = Stat.of(t for t in clot_times if t is not None)
    if clot_time is None:
        notes["clot_time_s"] = "no loop clotted" if not clotted_n else "no clotting time recorded"
    elif None in clot_times:
        notes["clot_time_s"] = "a clotted loop has no clotting time; mean of the others"
    vehicle_clotted_n = sum(1 for loop in controls if loop.clotted is True)
    if not controls:
        notes["vehicle"] = no_vehicle
    elif vehicle_clotted_n:
        notes["vehicle"] = (
            f"{vehicle_clotted_n} of {len(controls)} vehicle loops clotted: the blood or the "
            "loops themselves activate coagulation; check before trusting the comparison"
        )

    tat = _tat_points(group, controls, no_vehicle)
    tat_time = tat[-1].time_s if tat else None
    tat_fold = tat[-1].fold if tat else None
    delta_tat = tat[-1].delta_ug_per_l if tat else None
    if not tat:
        notes["tat_fold"] = notes["delta_tat_ug_per_l"] = "no TAT values were given"
    else:
        last = f"at the last draw ({_minutes(tat[-1].time_s)}): {tat[-1].note}"
        if tat_fold is None:
            notes["tat_fold"] = f"no TAT fold change {last}"
        if delta_tat is None:
            notes["delta_tat_ug_per_l"] = f"no ΔTAT {last}"
    auc, vehicle_auc, auc_ratio = _tat_auc(group, controls, tat, no_vehicle, notes)
    consumption, vehicle_consumption, excess = _platelets(group, controls, no_vehicle, notes)
    return LoopDoseIndices(
        donor_id=donor,
        dose_cells_per_ml=dose,
        loops_n=len(group),
        clotted_n=clotted_n,
        clot_unknown_n=unknown_n,
        clotted=clotted,
        clot_time_s=clot_time,
        vehicle_loops_n=len(controls),
        vehicle_clotted_n=vehicle_clotted_n,
        tat=tat,
        tat_time_s=tat_time,
        tat_fold=tat_fold,
        delta_tat_ug_per_l=delta_tat,
        tat_auc_ug_per_l_min=auc,
        vehicle_tat_auc_ug_per_l_min=vehicle_auc,
        tat_auc_ratio=auc_ratio,
        platelet_consumption_pct=consumption,
        vehicle_platelet_consumption_pct=vehicle_consumption,
        excess_platelet_consumption_pct=excess,
        notes=notes,
    )


def _tat_points(
    group: Sequence[LoopChannelData], controls: Sequence[LoopChannelData], no_vehicle: str
) -> tuple[TatPoint, ...]:
    times = sorted({float(t) for loop in (*group, *controls) for t in loop.tat_by_time_s})
    points = []
    for time_s in times:
        dose_values = [loop.tat_by_time_s.get(time_s) for loop in group]
        dose_stat = Stat.of(v for v in dose_values if v is not None)
        vehicle_values = [loop.tat_by_time_s.get(time_s) for loop in controls]
        vehicle_stat = Stat.of(v for v in vehicle_values if v is not None)
        reasons = []
        if dose_stat is None:
            reasons.append(f"no TAT value of the dose ({len(group)} loops)")
        elif dose_stat.n < len(group):
            reasons.append(f"TAT of the dose from {dose_stat.n} of {len(group)} loops")
        if not controls:
            reasons.append(no_vehicle)
        elif vehicle_stat is None:
            reasons.append(f"no vehicle TAT value ({len(controls)} loops)")
        elif vehicle_stat.n < len(controls):
            reasons.append(f"vehicle TAT from {vehicle_stat.n} of {len(controls)} loops")
        fold = delta = None
        if dose_stat is not None and vehicle_stat is not None:
            delta = dose_stat.mean - vehicle_stat.mean
            if vehicle_stat.mean > 0:
                fold = dose_stat.mean / vehicle_stat.mean
            else:
                reasons.append("vehicle TAT is 0 µg/L, so the fold change is undefined")
        points.append(
            TatPoint(
                time_s=time_s,
                tat_ug_per_l=dose_stat,
                vehicle_tat_ug_per_l=vehicle_stat,
                fold=fold,
                delta_ug_per_l=delta,
                note="; ".join(reasons),
            )
        )
    return tuple(points)


def _tat_auc(
    group: Sequence[LoopChannelData],
    controls: Sequence[LoopChannelData],
    points: Sequence[TatPoint],
    no_vehicle: str,
    notes: dict[str, str],
) -> tuple[Stat | None, Stat | None, float | None]:
    """Trapezoid AUC (µg/L·min) of each loop over the draw times both the dose and the vehicle
    have, averaged over the loops that have a value at every one of those times."""
    keys = ("tat_auc_ug_per_l_min", "vehicle_tat_auc_ug_per_l_min", "tat_auc_ratio")
    if not controls:
        for key in keys:
            notes[key] = no_vehicle
        return None, None, None
    common = [
        p.time_s
        for p in points
        if p.tat_ug_per_l is not None and p.vehicle_tat_ug_per_l is not None
    ]
    if len(common) < 2:
        why = (
            "the TAT AUC needs values of both the dose and the vehicle at 2 or more draw times; "
            f"there are {len(common)}"
        )
        for key in keys:
            notes[key] = why
        return None, None, None
    skipped = [p.time_s for p in points if p.time_s not in common]
    over = f"over {', '.join(_minutes(t) for t in common)}"
    if skipped:
        over += f" (without {', '.join(_minutes(t) for t in skipped)}: a value is missing there)"

    def auc_of(loops: Sequence[LoopChannelData], key: str, what: str) -> Stat | None:
        aucs = []
        for loop in loops:
            values = [v for t in common if (v := loop.tat_by_time_s.get(t)) is not None]
            if len(values) == len(common):
                aucs.append(_trapezoid([t / 60.0 for t in common], values))
        left_out = len(loops) - len(aucs)
        if not aucs:
            notes[key] = f"no {what} loop has TAT at every draw time {over}"
        elif left_out:
            notes[key] = f"{over}; {left_out} of {len(loops)} {what} loops left out (a TAT missing)"
        else:
            notes[key] = over
        return Stat.of(aucs)

    auc = auc_of(group, keys[0], "lot")
    vehicle_auc = auc_of(controls, keys[1], "vehicle")
    ratio = None
    if auc is None or vehicle_auc is None:
        notes[keys[2]] = "the AUC of the dose or of the vehicle is unknown"
    elif vehicle_auc.mean == 0:
        notes[keys[2]] = "the vehicle's TAT AUC is 0, so the ratio is undefined"
    else:
        ratio = auc.mean / vehicle_auc.mean
    return auc, vehicle_auc, ratio


def _trapezoid(x: Sequence[float], y: Sequence[float]) -> float:
    return float(sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2.0 for i in range(len(x) - 1)))


def _platelets(
    group: Sequence[LoopChannelData],
    controls: Sequence[LoopChannelData],
    no_vehicle: str,
    notes: dict[str, str],
) -> tuple[Stat | None, Stat | None, float | None]:
    """Consumption % of each loop from the first to the last count time of the dose and its
    vehicle, averaged; and the dose's excess over the vehicle in percentage points."""
    keys = (
        "platelet_consumption_pct",
        "vehicle_platelet_consumption_pct",
        "excess_platelet_consumption_pct",
    )
    times = sorted({float(t) for loop in (*group, *controls) for t in loop.platelets_by_time_s})
    if len(times) < 2:
        why = f"platelet counts at {len(times)} draw time{'s' if len(times) != 1 else ''}; 2 needed"
        for key in keys:
            notes[key] = why
        return None, None, None
    first, last = times[0], times[-1]
    span = f"from {_minutes(first)} to {_minutes(last)}"

    def consumption_of(loops: Sequence[LoopChannelData], key: str, what: str) -> Stat | None:
        values = []
        for loop in loops:
            start = loop.platelets_by_time_s.get(first)
            end = loop.platelets_by_time_s.get(last)
            if start is not None and end is not None and start > 0:
                values.append(platelet_consumption_pct(start, end))
        left_out = len(loops) - len(values)
        if not loops:
            notes[key] = no_vehicle
        elif not values:
            notes[key] = f"no {what} loop has a platelet count (first one > 0) {span}"
        elif left_out:
            notes[key] = (
                f"{left_out} of {len(loops)} {what} loops left out: no count {span}, "
                "or a first count of 0"
            )
        return Stat.of(values)

    consumption = consumption_of(group, keys[0], "lot")
    vehicle = consumption_of(controls, keys[1], "vehicle")
    excess = None
    if consumption is None or vehicle is None:
        notes[keys[2]] = (
            no_vehicle if not controls else "the consumption of the dose or the vehicle is unknown"
        )
    else:
        excess = consumption.mean - vehicle.mean
    return consumption, vehicle, excess


# -- judging doses ------------------------------------------------------------------------------


def _judge_doses(
    method: MethodFile,
    tem: Sequence[TemDoseIndices],
    loops: Sequence[LoopDoseIndices],
) -> tuple[DoseJudgement, ...]:
    t = method.thresholds
    doses = sorted({i.dose_cells_per_ml for i in tem} | {i.dose_cells_per_ml for i in loops})
    judgements = []
    for dose in doses:
        tem_at = [i for i in tem if i.dose_cells_per_ml == dose]
        loops_at = [i for i in loops if i.dose_cells_per_ml == dose]
        checks: list[Check] = []
        if t.delta_ct_pct_max is not None:
            checks += _numeric_checks("delta_ct_pct_max", tem_at, t.delta_ct_pct_max, _TEM_DELTA_CT)
        if t.loop_clotting_allowed is False:
            checks += _clotting_checks(loops_at)
        if t.tat_fold_max is not None:
            checks += _numeric_checks("tat_fold_max", loops_at, t.tat_fold_max, _TAT_FOLD)
        if t.delta_tat_ug_per_l_max is not None:
            checks += _numeric_checks(
                "delta_tat_ug_per_l_max", loops_at, t.delta_tat_ug_per_l_max, _DELTA_TAT
            )
        if t.platelet_consumption_pct_max is not None:
            checks += _numeric_checks(
                "platelet_consumption_pct_max",
                loops_at,
                t.platelet_consumption_pct_max,
                _PLATELETS,
            )
        judgements.append(
            DoseJudgement(
                dose_cells_per_ml=dose,
                dose_cells_per_kg=dose * method.blood_volume_ml_per_kg,
                status=_status(checks),
                checks=tuple(checks),
            )
        )
    return tuple(judgements)


@dataclass(frozen=True)
class _Index:
    """How a thresholded index is read from the per-dose results and worded in checks."""

    field: str
    label: str
    assay: str
    digits: int
    unit: str
    at_last_draw: bool = False


_TEM_DELTA_CT = _Index("delta_ct_pct", "ΔCT", "TEM", 1, " %")
_TAT_FOLD = _Index("tat_fold", "TAT fold change", "Chandler-loop TAT", 2, "", at_last_draw=True)
_DELTA_TAT = _Index("delta_tat_ug_per_l", "ΔTAT", "Chandler-loop TAT", 1, " µg/L", True)
_PLATELETS = _Index(
    "excess_platelet_consumption_pct",
    "platelet consumption beyond the vehicle",
    "platelet",
    1,
    " points",
)


def _numeric_checks(
    key: str,
    indices: Sequence[TemDoseIndices] | Sequence[LoopDoseIndices],
    limit: float,
    index: _Index,
) -> list[Check]:
    """One check per donor tested at the dose: the index must be at most the limit."""
    if not indices:
        text = f"{index.label} not assessed: no {index.assay} data at this dose"
        return [Check(key, None, limit, None, text)]
    checks = []
    for result in indices:
        value = getattr(result, index.field)
        if value is None:
            text = f"{index.label} not assessed: {result.notes.get(index.field, 'unknown')}"
            checks.append(Check(key, None, limit, None, text, result.donor_id))
            continue
        sign = "≤" if value <= limit else ">"
        text = f"{index.label} {value:.{index.digits}f}{index.unit} {sign} {_g(limit)}{index.unit}"
        if index.at_last_draw and isinstance(result, LoopDoseIndices) and result.tat_time_s:
            text += f" at {_minutes(result.tat_time_s)}"
        checks.append(Check(key, value, limit, value <= limit, text, result.donor_id))
    return checks


def _clotting_checks(indices: Sequence[LoopDoseIndices]) -> list[Check]:
    key = "loop_clotting_allowed"
    if not indices:
        text = "loop clotting not assessed: no Chandler-loop data at this dose"
        return [Check(key, None, False, None, text)]
    checks = []
    for i in indices:
        if i.clotted is None:
            text = f"loop clotting not assessed: {i.notes.get('clotted', 'unknown')}"
        elif i.clotted:
            text = f"loop clotting: {i.clotted_n} of {i.loops_n} loops clotted"
        else:
            text = f"loop clotting: none of {i.loops_n} loops clotted"
        passed = None if i.clotted is None else not i.clotted
        checks.append(Check(key, i.clotted, False, passed, text, i.donor_id))
    return checks


def _status(checks: Sequence[Check]) -> DoseStatus:
    if any(c.passed is False for c in checks):
        return "unsafe"
    if checks and all(c.passed is True for c in checks):
        return "safe"
    return "not assessed"


def _highest_safe_dose(doses: Sequence[DoseJudgement]) -> tuple[DoseJudgement | None, str]:
    """The highest dose at or below which every tested dose is safe, and a note on it."""
    if not doses:
        return None, "no dose of the lot was measured"
    safe = None
    for judgement in doses:
        if judgement.status != "safe":
            break
        safe = judgement
    if safe is None:
        lowest = doses[0]
        return None, (
            f"no tested dose stayed under every threshold: the lowest, "
            f"{_dose(lowest.dose_cells_per_ml)} cells/mL, {_failure(lowest, _many_donors(doses))}"
        )
    if safe is doses[-1]:
        return safe, (
            "every tested dose stayed under every threshold, so the highest tested dose is a "
            "lower bound of the safe dose"
        )
    return safe, ""


def _many_donors(doses: Sequence[DoseJudgement]) -> bool:
    """Whether the checks span several blood donors, so that explanations must name them."""
    return len({c.donor_id for j in doses for c in j.checks if c.donor_id is not None}) > 1


def _failure(judgement: DoseJudgement, name_donors: bool) -> str:
    """What kept a dose from being safe, for explanations; donors named when asked."""

    def text(check: Check) -> str:
        if name_donors and check.donor_id:
            return f"{check.text} (donor {check.donor_id})"
        return check.text

    if judgement.status == "safe":
        return "stayed under every threshold, but a lower dose did not"
    if judgement.broken:
        return "broke " + "; ".join(text(c) for c in judgement.broken)
    if not judgement.checks:
        return "could not be judged: the method applies no threshold to it"
    return "could not be judged: " + "; ".join(text(c) for c in judgement.unassessed)


# -- dose-response fits -------------------------------------------------------------------------


def _fit(quantity: str, what: str, points: Sequence[tuple[float, float | None]]) -> DoseResponseFit:
    known = [(dose, value) for dose, value in points if value is not None]
    doses = tuple(dose for dose, _ in known)
    values = tuple(value for _, value in known)
    distinct = sorted(set(doses))
    if len(distinct) < 2:
        if not distinct:
            note = f"no {what} value at any dose"
        else:
            note = (
                f"one dose only ({_dose(distinct[0])} cells/mL): a dose–response fit needs "
                f"{what} at 2 or more doses"
            )
        return DoseResponseFit(quantity, None, None, None, doses, values, note)
    x = np.log10(np.asarray(doses, dtype=np.float64))
    y = np.asarray(values, dtype=np.float64)
    x_mean, y_mean = float(x.mean()), float(y.mean())
    slope = float(((x - x_mean) * (y - y_mean)).sum() / ((x - x_mean) ** 2).sum())
    intercept = y_mean - slope * x_mean
    residual = float(((y - (intercept + slope * x)) ** 2).sum())
    total = float(((y - y_mean) ** 2).sum())
    note = ""
    r_squared: float | None = None
    if total > 0:
        r_squared = 1.0 - residual / total
    else:
        note = f"all {what} values are equal, so R² is undefined"
    if len(values) == 2:
        note = "two points: the line passes through both, so R² = 1 says nothing about the fit"
    return DoseResponseFit(quantity, intercept, slope, r_squared, doses, values, note)


# -- release and classes ------------------------------------------------------------------------


def _release(criteria: ReleaseCriteria | None, lot: LotInfo) -> ReleaseResult:
    if criteria is None:
        return ReleaseResult(None, (), "the method has no release criteria")
    checks = []
    specs = (
        ("cd142_pct_max", criteria.cd142_pct_max, lot.cd142_pct, "CD142+", " %"),
        ("cd142_mfi_max", criteria.cd142_mfi_max, lot.cd142_mfi, "CD142 MFI", ""),
        ("viability_pct_min", criteria.viability_pct_min, lot.viability_pct, "viability", " %"),
    )
    for key, limit, value, what, unit in specs:
        is_max = key.endswith("_max")
        if limit is None:
            continue
        if value is None:
            checks.append(Check(key, None, limit, None, f"{what} not measured"))
            continue
        passed = value <= limit if is_max else value >= limit
        sign = ("≤" if passed else ">") if is_max else ("≥" if passed else "<")
        checks.append(
            Check(key, value, limit, passed, f"{what} {_g(value)}{unit} {sign} {_g(limit)}{unit}")
        )
    return ReleaseResult(_all_passed(checks), tuple(checks))


def _all_passed(checks: Sequence[Check]) -> bool | None:
    if any(c.passed is False for c in checks):
        return False
    if all(c.passed is True for c in checks):
        return True
    return None


@dataclass(frozen=True)
class _Facts:
    """The lot-level values that class rules test."""

    safe_dose_ratio: float | None
    safe_dose_note: str
    release: ReleaseResult
    delta_ct_at_intended: float | None
    delta_ct_note: str
    tat_fold_at_intended: float | None
    tat_fold_note: str


def _conditions(rule: ClassRule, facts: _Facts) -> tuple[Check, ...]:
    checks = []
    if (minimum := rule.safe_dose_ratio_min) is not None:
        ratio = facts.safe_dose_ratio
        if ratio is None:
            text = f"safe-dose ratio unknown ({facts.safe_dose_note})"
            checks.append(Check("safe_dose_ratio_min", None, minimum, None, text))
        else:
            sign = "≥" if ratio >= minimum else "<"
            text = f"safe-dose ratio {_g(ratio)} {sign} {_g(minimum)}"
            checks.append(Check("safe_dose_ratio_min", ratio, minimum, ratio >= minimum, text))
    if (wanted := rule.release_passed) is not None:
        passed = facts.release.passed
        failed = [c.text for c in facts.release.checks if c.passed is not True]
        if passed is None:
            text = "release not assessed (" + ("; ".join(failed) or facts.release.note) + ")"
        elif passed:
            text = "release passed"
        else:
            text = "release failed (" + "; ".join(failed) + ")"
        holds = None if passed is None else passed == wanted
        checks.append(Check("release_passed", passed, wanted, holds, text))
    if (maximum := rule.delta_ct_pct_at_intended_dose_max) is not None:
        value = facts.delta_ct_at_intended
        key = "delta_ct_pct_at_intended_dose_max"
        if value is None:
            text = f"ΔCT at the intended dose unknown ({facts.delta_ct_note})"
            checks.append(Check(key, None, maximum, None, text))
        else:
            sign = "≤" if value <= maximum else ">"
            text = f"ΔCT at the intended dose {_pct(value)} {sign} {_g(maximum)} %"
            checks.append(Check(key, value, maximum, value <= maximum, text))
    if (maximum := rule.tat_fold_at_intended_dose_max) is not None:
        value = facts.tat_fold_at_intended
        key = "tat_fold_at_intended_dose_max"
        if value is None:
            text = f"TAT fold change at the intended dose unknown ({facts.tat_fold_note})"
            checks.append(Check(key, None, maximum, None, text))
        else:
            sign = "≤" if value <= maximum else ">"
            text = f"TAT fold change at the intended dose {_g(value)} {sign} {_g(maximum)}"
            checks.append(Check(key, value, maximum, value <= maximum, text))
    return tuple(checks)


def _decide(
    method: MethodFile,
    facts: _Facts,
    safe_per_ml: float | None,
    safe_per_kg: float | None,
) -> ClassDecision:
    tried = []
    for index, cls in enumerate(method.classes):
        conditions = _conditions(cls.when, facts)
        holds = all(c.passed is True for c in conditions)
        tried.append(RuleResult(cls.id, holds, conditions))
        if holds:
            return ClassDecision(
                class_id=cls.id,
                name=cls.name,
                route=cls.route,
                wording=cls.wording,
                rule_index=index,
                dose_cap_cells_per_kg=safe_per_kg if cls.dose_cap else None,
                dose_cap_cells_per_ml=safe_per_ml if cls.dose_cap else None,
                rules=tuple(tried),
            )
    raise ValueError(
        f"no class of method {method.id!r} applies to the lot; a validated method file ends "
        "with a default class (`when: {}`)"
    )


def _explain(
    method: MethodFile,
    decision: ClassDecision,
    doses: Sequence[DoseJudgement],
    safe: DoseJudgement | None,
    ratio: float | None,
    safe_note: str,
    release: ReleaseResult,
) -> str:
    chosen = decision.rules[-1]
    head = f"Class {decision.class_id} ({decision.name})"
    if chosen.conditions:
        why = "; ".join(c.text for c in chosen.conditions)
        sentences = [f"{head} because its rule holds: {why}."]
    else:
        sentences = [
            f"{head}: the default class"
            + (", as no earlier rule held." if decision.rule_index else ".")
        ]
    for rule in decision.rules[:-1]:
        failed = [c.text for c in rule.conditions if c.passed is not True]
        sentences.append(f"{rule.class_id} did not hold: {'; '.join(failed)}.")
    intended = f"the intended {_dose(method.intended_dose_cells_per_kg)} cells/kg"
    if safe is not None and ratio is not None:
        sentences.append(
            f"Highest safe dose {_dose(safe.dose_cells_per_ml)} cells/mL = "
            f"{_dose(safe.dose_cells_per_kg)} cells/kg at {_g(method.blood_volume_ml_per_kg)} "
            f"mL/kg, {_g(ratio)} × {intended}" + (f" ({safe_note})." if safe_note else ".")
        )
    else:
        sentences.append(f"No safe dose: {safe_note}.")
    start = doses.index(safe) + 1 if safe is not None else 1
    many = _many_donors(doses)
    above = [f"{_dose(j.dose_cells_per_ml)} cells/mL {_failure(j, many)}" for j in doses[start:]]
    if above:
        sentences.append("Higher doses: " + "; ".join(above) + ".")
    if decision.dose_cap_cells_per_kg is not None:
        sentences.append(f"Dose cap {_dose(decision.dose_cap_cells_per_kg)} cells/kg.")
    if release.checks:
        state = {True: "passed", False: "failed", None: "not assessed"}[release.passed]
        sentences.append(f"Release {state}: " + "; ".join(c.text for c in release.checks) + ".")
    else:
        sentences.append(f"Release not checked: {release.note}.")
    return " ".join(sentences)


# -- formatting ---------------------------------------------------------------------------------


def _dose(value: float) -> str:
    """A dose in short scientific notation: 3.0e4."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _g(value: float) -> str:
    """Up to three significant digits: 1.05, 34.3, 0.35, 20."""
    return f"{value:.3g}"


def _pct(value: float) -> str:
    return f"{value:.1f} %"


def _minutes(time_s: float) -> str:
    return f"{time_s / 60:g} min"


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
