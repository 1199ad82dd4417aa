"""Comparison across lots: indices by tissue source, and per-product trends with ±3 SD limits."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrument.lots import latest_assessment, list_lots
from instrument.storage import Store

#: The lot indices compared across lots (key in the comparison row → label with unit).
METRICS = {
    "cd142_pct": "CD142+ %",
    "delta_ct_pct_at_intended_dose": "ΔCT % @dose",
    "tat_fold_at_intended_dose": "TAT× @dose",
    "highest_safe_dose_cells_per_kg": "safe /kg",
}
#: Fewest other lots of a product needed before limits are drawn for a lot.
MIN_REFERENCE_LOTS = 3


@dataclass
class LotRow:
    lot_id: str
    product: str
    tissue_source: str
    simulated: bool
    class_id: str | None
    values: dict[str, float | None]


@dataclass
class TrendFlag:
    lot_id: str
    metric: str
    value: float
    mean: float
    sd: float

    @property
    def text(self) -> str:
        side = "above" if self.value > self.mean else "below"
        return (
            f"{self.lot_id}: {METRICS[self.metric]} {self.value:.3g} is {side} the product's "
            f"mean ± 3 SD ({self.mean:.3g} ± {3 * self.sd:.3g}) of the other lots"
        )


@dataclass
class Comparison:
    rows: list[LotRow]
    flags: list[TrendFlag] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def compare_lots(store: Store, product: str | None = None) -> Comparison:
    """Every assessed lot (optionally of one product), with leave-one-out ±3 SD trend flags."""
    rows: list[LotRow] = []
    for lot in list_lots(store):
        if product is not None and lot["product"] != product:
            continue
        latest = latest_assessment(store, lot["lot_id"])
        a: dict[str, Any] = latest["assessment"] if latest else {}
        values: dict[str, float | None] = {"cd142_pct": lot["cd142_pct"]}
        for key in METRICS:
            if key != "cd142_pct":
                values[key] = _number(a.get(key))
        rows.append(
            LotRow(
                lot_id=lot["lot_id"],
                product=lot["product"],
                tissue_source=lot["tissue_source"],
                simulated=bool(lot["simulated"]) or bool(latest and latest["simulated"]),
                class_id=latest["class_id"] if latest else None,
                values=values,
            )
        )
    rows.sort(key=lambda r: (r.tissue_source, r.lot_id))
    comparison = Comparison(rows=rows)
    for prod in sorted({r.product for r in rows}):
        members = [r for r in rows if r.product == prod]
        for metric in METRICS:
            comparison.flags += _trend_flags(members, metric)
        if len(members) <= MIN_REFERENCE_LOTS:
            comparison.notes.append(
                f"product {prod!r}: {len(members)} lot(s); trend limits need at least "
                f"{MIN_REFERENCE_LOTS} other lots with the value"
            )
    return comparison


def trend_limits(rows: Sequence[LotRow], metric: str) -> dict[str, tuple[float, float]]:
    """Each lot's reference for ``metric``: mean and SD over the *other* given lots with a
    value (leave-one-out), for lots with at least :data:`MIN_REFERENCE_LOTS` such others."""
    limits: dict[str, tuple[float, float]] = {}
    for row in rows:
        others = [
            float(v) for o in rows if o is not row and (v := o.values.get(metric)) is not None
        ]
        if len(others) >= MIN_REFERENCE_LOTS:
            limits[row.lot_id] = (statistics.fmean(others), statistics.stdev(others))
    return limits


def _trend_flags(rows: Sequence[LotRow], metric: str) -> list[TrendFlag]:
    flags = []
    limits = trend_limits(rows, metric)
    for row in rows:
        value = row.values.get(metric)
        if value is None or row.lot_id not in limits:
            continue
        mean, sd = limits[row.lot_id]
        if abs(value - mean) > 3 * sd:
            flags.append(TrendFlag(row.lot_id, metric, value, mean, sd))
    return flags


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def comparison_png(store: Store, comparison: Comparison, path: Path) -> Path:
    """ΔCT against dose for every compared lot, coloured by tissue source; SIMULATED if any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "bone-marrow": "#1f77b4",
        "umbilical-cord": "#2ca02c",
        "placenta": "#9467bd",
        "decidua": "#8c564b",
        "adipose": "#d62728",
        "dental-pulp": "#ff7f0e",
        "other": "#7f7f7f",
    }
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    seen: set[str] = set()
    for row in comparison.rows:
        latest = latest_assessment(store, row.lot_id)
        if latest is None:
            continue
        points = sorted(
            (t["dose_cells_per_ml"], t["delta_ct_pct"])
            for t in latest["assessment"].get("tem", [])
            if t.get("delta_ct_pct") is not None
        )
        if not points:
            continue
        label = row.tissue_source if row.tissue_source not in seen else None
        seen.add(row.tissue_source)
        xs, ys = zip(*points, strict=True)
        colour = colours.get(row.tissue_source, "#7f7f7f")
        ax.plot(xs, ys, "o-", color=colour, label=label)
        ax.annotate(
            row.lot_id, (xs[-1], ys[-1]), fontsize=7, xytext=(4, 0), textcoords="offset points"
        )
    ax.set_xscale("log")
    ax.set_xlabel("dose (cells/mL blood)")
    ax.set_ylabel("ΔCT vs vehicle (%)")
    title = "Clotting-time shortening by lot and tissue source"
    if any(r.simulated for r in comparison.rows):
        title += " — SIMULATED"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if seen:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
