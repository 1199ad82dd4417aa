"""The Lots view's table and plots: per-dose indices, dose–response, TAT time courses, and the
comparison across lots (ΔCT against dose by tissue source, trend limits per product).

Stored data, drawn once per lot: the curves are plain PlotDataItems, no live updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.models.lots import ComparisonData, DoseColumn, DosePoint, Fit, IndexRow, LotDetail

#: One colour per tissue source (as in ``hemocompat lots compare --png``).
TISSUE_COLOURS = {
    "bone-marrow": "#1f77b4",
    "umbilical-cord": "#2ca02c",
    "placenta": "#9467bd",
    "decidua": "#8c564b",
    "adipose": "#d62728",
    "dental-pulp": "#ff7f0e",
    "other": "#7f7f7f",
}
STATUS_COLOURS = {"safe": theme.OK, "unsafe": theme.DANGER}
VEHICLE_COLOUR = "#6b6b6b"
#: Height of a bottom axis with tick labels and a title.
AXIS_HEIGHT_PX = 44
THRESHOLD_PEN = {"color": theme.DANGER, "width": 2, "style": Qt.PenStyle.DashLine}


def short_dose(dose: float | None) -> str:
    """``30000`` → ``3.0e4``."""
    if dose is None or not math.isfinite(dose):
        return "—"
    mantissa, _e, exponent = f"{float(dose):.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def format_index(key: str, value: Any) -> str:
    """An index as the table shows it; None is "—" (the tooltip says why)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "dose_cells_per_kg":
        return short_dose(float(value))
    if isinstance(value, int | float):
        if key in ("tat_fold", "tat_auc_ratio"):
            return f"{value:.2f}"
        return f"{value:.1f}"
    return str(value)


def styled_plot(
    widget: pg.PlotWidget | pg.PlotItem, title: str, x_label: str, y_label: str
) -> pg.PlotItem:
    """Large tick labels and axis titles, a light grid, no auto-range buttons."""
    item = widget.getPlotItem() if isinstance(widget, pg.PlotWidget) else widget
    item.hideButtons()
    tick_font = QFont()
    tick_font.setPointSize(theme.PLOT_TICK_POINT_SIZE)
    for side in ("left", "bottom"):
        axis = item.getAxis(side)
        axis.setTickFont(tick_font)
        axis.setTextPen(pg.mkPen("#222"))
    style = {"font-size": theme.PLOT_LABEL_POINT_SIZE}
    item.setLabel("bottom", x_label, **style)
    item.setLabel("left", y_label, **style)
    if x_label:
        # pyqtgraph allows 0.8 of the title's height, which lets a 12-pt title touch the ticks.
        item.getAxis("bottom").setHeight(AXIS_HEIGHT_PX)
    item.setTitle(title, size="13pt", color="#111")
    item.showGrid(x=True, y=True, alpha=0.15)
    return item


def log_ticks(
    lo: float, hi: float, steps: Sequence[float], text: Callable[[float], str]
) -> list[tuple[float, str]]:
    """Tick positions (log10) and labels at ``steps`` × each power of ten within [lo, hi]."""
    if not (lo > 0 and hi >= lo):
        return []
    ticks = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for step in steps:
            value = step * 10.0**exponent
            if lo <= value * (1 + 1e-9) and value <= hi * (1 + 1e-9):
                ticks.append((math.log10(value), text(value)))
    return ticks


# -- the indices table -------------------------------------------------------------------------
class IndicesTable(QTableWidget):
    """One row per index, one column per dose (and donor); broken thresholds in red bold."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setMinimumSectionSize(90)
        rows = self.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 14)
        self.columns: tuple[DoseColumn, ...] = ()
        self.rows: tuple[IndexRow, ...] = ()

    def show_indices(self, columns: Sequence[DoseColumn], rows: Sequence[IndexRow]) -> None:
        self.clear()
        self.columns, self.rows = tuple(columns), tuple(rows)
        donors = {c.donor_id for c in columns}
        self.setColumnCount(len(columns))
        self.setRowCount(len(rows))
        self.setHorizontalHeaderLabels(
            [
                f"{short_dose(c.dose_cells_per_ml)} /mL\n{short_dose(c.dose_cells_per_kg)} /kg"
                + (f"\n{c.donor_id}" if len(donors) > 1 else "")
                for c in columns
            ]
        )
        self.setVerticalHeaderLabels([r.label for r in rows])
        for r, row in enumerate(rows):
            header = self.verticalHeaderItem(r)
            if header is not None and row.limit:
                header.setToolTip(f"threshold of the method: {row.limit}")
        bold = QFont(self.font())
        bold.setBold(True)
        for r, row in enumerate(rows):
            for c, value in enumerate(row.values):
                item = QTableWidgetItem(format_index(row.key, value))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                tip = [t for t in (row.failed[c], row.tips[c]) if t]
                if tip:
                    item.setToolTip("\n".join(tip))
                if row.failed[c]:
                    item.setForeground(QColor(theme.DANGER))
                    item.setFont(bold)
                elif value is None:
                    item.setForeground(QColor(theme.MUTED))
                if row.key == "status" and value in STATUS_COLOURS:
                    item.setForeground(QColor(STATUS_COLOURS[value]))
                    item.setFont(bold)
                self.setItem(r, c, item)

    def value(self, key: str, column: int) -> Any:
        """The stored value shown in a cell (tests)."""
        row = next(r for r in self.rows if r.key == key)
        return row.values[column]

    def text(self, key: str, column: int) -> str:
        index = [r.key for r in self.rows].index(key)
        item = self.item(index, column)
        return item.text() if item is not None else ""


# -- dose–response -----------------------------------------------------------------------------
class DoseResponsePlot(QWidget):
    """ΔCT % and TAT fold change against dose (log axis), with the fitted lines, the method's
    thresholds (dashed red), the intended dose and the highest safe dose."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setMinimumSize(320, 220)
        layout.addWidget(self.canvas, 1)
        self.caption = QLabel(
            f"<span style='color:{theme.OK}'>●</span> safe "
            f"<span style='color:{theme.DANGER}'>●</span> unsafe · "
            f"<span style='color:{theme.DANGER}'>- -</span> limit · dotted: "
            f"<span style='color:{theme.ACCENT}'>intended</span>, "
            f"<span style='color:{theme.OK}'>highest safe</span> dose"
        )
        self.caption.setObjectName("muted")
        self.caption.setWordWrap(True)
        layout.addWidget(self.caption)
        self.delta_ct = styled_plot(self.canvas.addPlot(row=0, col=0), "", "", "ΔCT (%)")
        self.tat_fold = styled_plot(
            self.canvas.addPlot(row=1, col=0), "", "dose (cells/mL blood)", "TAT fold"
        )
        self.tat_fold.setXLink(self.delta_ct)
        for item in (self.delta_ct, self.tat_fold):
            item.setLogMode(x=True, y=False)
            item.getViewBox().setMouseEnabled(x=False, y=False)
        #: quantity → the scatter item of its points (tests read ``xData``)
        self.points: dict[str, pg.PlotDataItem] = {}
        self.threshold_lines: dict[str, pg.InfiniteLine] = {}

    def show_detail(self, detail: LotDetail) -> None:
        a = detail.assessment
        fits: list[str] = []
        self._one(
            self.delta_ct,
            "delta_ct_pct",
            detail.delta_ct_points,
            detail.delta_ct_fit,
            detail.thresholds.get("delta_ct_pct_max"),
            "ΔCT",
            " %",
            fits,
        )
        self._one(
            self.tat_fold,
            "tat_fold",
            detail.tat_fold_points,
            detail.tat_fold_fit,
            detail.thresholds.get("tat_fold_max"),
            "TAT fold",
            "",
            fits,
        )
        doses = [p.dose_cells_per_ml for p in (*detail.delta_ct_points, *detail.tat_fold_points)]
        for item in (self.delta_ct, self.tat_fold):
            for dose, colour, text in (
                (a.get("intended_dose_cells_per_ml"), theme.ACCENT, "intended"),
                (a.get("highest_safe_dose_cells_per_ml"), theme.OK, "highest safe"),
            ):
                if isinstance(dose, int | float) and dose > 0:
                    line = pg.InfiniteLine(
                        pos=math.log10(dose),
                        angle=90,
                        pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DotLine),
                    )
                    line.setToolTip(f"{text} dose {short_dose(float(dose))} cells/mL")
                    item.addItem(line, ignoreBounds=True)
                    doses.append(float(dose))
        if doses:
            lo, hi = min(doses) / 10**0.25, max(doses) * 10**0.25
            self.delta_ct.setXRange(math.log10(lo), math.log10(hi), padding=0)
            ticks = log_ticks(lo, hi, (1, 3), short_dose)
            for item in (self.delta_ct, self.tat_fold):
                item.getAxis("bottom").setTicks([ticks])
        self.canvas.setToolTip("\n".join(fits))
        self.delta_ct.setTitle(
            "Dose–response vs vehicle" + ("  (SIMULATED)" if detail.simulated else ""),
            size="13pt",
            color=theme.SIMULATED_BG if detail.simulated else "#111",
        )

    def _one(
        self,
        item: pg.PlotItem,
        key: str,
        points: Sequence[DosePoint],
        fit: Fit | None,
        limit: float | None,
        name: str,
        unit: str,
        fits: list[str],
    ) -> None:
        item.clear()
        if fit is not None:
            xs = np.logspace(math.log10(fit.dose_min), math.log10(fit.dose_max), 30)
            r2 = f", R² {fit.r_squared:.2f}" if fit.r_squared is not None else ""
            item.addItem(
                pg.PlotDataItem(
                    xs,
                    [fit.at(x) for x in xs],
                    pen=pg.mkPen("#444", width=2),
                )
            )
            fits.append(f"{name}: {fit.slope_per_decade:+.3g}{unit} per tenfold dose{r2}")
        brushes = [pg.mkBrush(STATUS_COLOURS.get(p.status or "", theme.MUTED)) for p in points]
        scatter = pg.PlotDataItem(
            [p.dose_cells_per_ml for p in points],
            [p.value for p in points],
            pen=None,
            symbol="o",
            symbolSize=13,
            symbolBrush=brushes,
            symbolPen=pg.mkPen("#111", width=1),
        )
        item.addItem(scatter)
        self.points[key] = scatter
        values = [p.value for p in points]
        if limit is not None:
            line = pg.InfiniteLine(pos=float(limit), angle=0, pen=pg.mkPen(**THRESHOLD_PEN))
            item.addItem(line)
            self.threshold_lines[key] = line
            values.append(float(limit))
        if values:
            lo, hi = min(0.0, *values), max(values)
            item.setYRange(lo, hi + 0.12 * (hi - lo or 1.0), padding=0.02)


# -- TAT time courses ---------------------------------------------------------------------------
class TatCoursePlot(QWidget):
    """TAT against time per loop (log axis): vehicle loops dashed grey, doses in colour."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.widget = pg.PlotWidget()
        self.widget.setMinimumSize(320, 180)
        layout.addWidget(self.widget)
        self.item = styled_plot(self.widget, "TAT per loop", "time (min)", "TAT (µg/L)")
        self.item.setLogMode(x=False, y=True)
        self.item.getViewBox().setMouseEnabled(x=False, y=False)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        layout.addWidget(self.caption)
        #: loop → its curve (tests)
        self.curves: dict[tuple[int, int], pg.PlotDataItem] = {}

    def show_detail(self, detail: LotDetail) -> None:
        self.item.clear()
        self.curves = {}
        doses = sorted({c.dose_cells_per_ml for c in detail.tat_courses if not c.vehicle})
        names: dict[str, str] = {}
        for course in detail.tat_courses:
            if not course.times_s:
                continue
            if course.vehicle:
                colour, name = QColor(VEHICLE_COLOUR), "vehicle"
                pen = pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine)
            else:
                colour = theme.channel_colour(1 + doses.index(course.dose_cells_per_ml))
                name = short_dose(course.dose_cells_per_ml)
                pen = pg.mkPen(colour, width=2)
            curve = pg.PlotDataItem(
                [t / 60.0 for t in course.times_s],
                course.tat_ug_per_l,
                pen=pen,
                symbol="o" if course.loop % 2 else "s",
                symbolSize=8,
                symbolBrush=pg.mkBrush(colour),
                symbolPen=None,
            )
            names.setdefault(name, colour.name())
            curve.setToolTip(f"loop {course.loop}: {course.label}")
            self.item.addItem(curve)
            self.curves[(course.run_id, course.loop)] = curve
        runs = sorted({c.run_id for c in detail.tat_courses})
        where = f", run {', '.join(map(str, runs))}" if runs else " (no loop run)"
        sim = "  (SIMULATED)" if detail.simulated else ""
        self.item.setTitle(
            f"TAT per loop{where}{sim}",
            size="13pt",
            color=theme.SIMULATED_BG if detail.simulated else "#111",
        )
        self.caption.setText(
            " · ".join(
                f"<span style='color:{colour}'><b>—</b> {name}</span>"
                + (" (dashed)" if name == "vehicle" else "")
                for name, colour in names.items()
            )
            + (" cells/mL · a line per loop" if names else "no TAT values stored")
        )
        values = [v for c in detail.tat_courses for v in c.tat_ug_per_l if v > 0]
        if values:
            lo, hi = min(values) / 1.2, max(values) * 1.2
            self.item.setYRange(math.log10(lo), math.log10(hi), padding=0)
            ticks = log_ticks(lo, hi, (1, 2, 5), lambda v: f"{v:g}")
            self.item.getAxis("left").setTicks([ticks])
        self.item.enableAutoRange(axis="x")


# -- comparison --------------------------------------------------------------------------------
class ComparisonPlot(QWidget):
    """ΔCT against dose for every lot, coloured by tissue source (the flagged lots thicker)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.widget = pg.PlotWidget()
        self.widget.setMinimumSize(320, 180)
        layout.addWidget(self.widget)
        self.item = styled_plot(
            self.widget,
            "Clotting-time shortening by lot and tissue source",
            "dose (cells/mL blood)",
            "ΔCT vs vehicle (%)",
        )
        self.item.setLogMode(x=True, y=False)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        layout.addWidget(self.caption)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._label_font = QFont()
        self._label_font.setPointSize(theme.PLOT_TICK_POINT_SIZE)

    def show_comparison(self, data: ComparisonData) -> None:
        self.item.clear()
        self.curves = {}
        seen: set[str] = set()
        for row in data.rows:
            points = data.curves.get(row.lot_id)
            if not points:
                continue
            colour = QColor(TISSUE_COLOURS.get(row.tissue_source, "#7f7f7f"))
            flagged = bool(data.flagged(row.lot_id))
            curve = pg.PlotDataItem(
                [p[0] for p in points],
                [p[1] for p in points],
                pen=pg.mkPen(colour, width=4 if flagged else 2),
                symbol="o",
                symbolSize=11 if flagged else 9,
                symbolBrush=pg.mkBrush(colour),
                symbolPen=pg.mkPen(theme.DANGER, width=2) if flagged else None,
            )
            seen.add(row.tissue_source)
            self.item.addItem(curve)
            self.curves[row.lot_id] = curve
            label = pg.TextItem(
                row.lot_id + ("  OUT OF TREND" if flagged else ""),
                color=theme.DANGER if flagged else "#222",
                anchor=(0, 0.5),
            )
            label.setFont(self._label_font)
            label.setPos(math.log10(points[-1][0]) + 0.03, points[-1][1])
            self.item.addItem(label)
        self.caption.setText(
            " · ".join(
                f"<span style='color:{TISSUE_COLOURS.get(t, '#7f7f7f')}'><b>—●</b> {t}</span>"
                for t in sorted(seen)
            )
            + (" · thick, red-ringed: out of trend" if data.comparison.flags else "")
            if seen
            else "No assessed lot has ΔCT values yet."
        )
        title = "Clotting-time shortening by lot and tissue source"
        sim = data.simulated
        self.item.setTitle(
            title + ("  (SIMULATED)" if sim else ""),
            size="13pt",
            color=theme.SIMULATED_BG if sim else "#111",
        )
        self.item.enableAutoRange()
        doses = [p[0] for pts in data.curves.values() for p in pts if p[0] > 0]
        if doses:
            lo, hi = min(doses) / 10**0.2, max(doses) * 10**0.6
            self.item.setXRange(math.log10(lo), math.log10(hi), padding=0)
            self.item.getAxis("bottom").setTicks([log_ticks(lo, hi, (1, 3), short_dose)])


class TrendPlot(QWidget):
    """One metric per lot, each lot with the mean ± 3 SD of the *other* lots of its product
    (the limits ``hemocompat lots compare`` flags against); lots outside in red."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.widget = pg.PlotWidget()
        self.widget.setMinimumSize(320, 180)
        layout.addWidget(self.widget)
        self.item = styled_plot(self.widget, "", "lot", "")
        self.item.getViewBox().setMouseEnabled(x=False, y=False)
        self.item.getAxis("bottom").enableAutoSIPrefix(False)
        self.caption = QLabel(
            "<span style='color:#7b8794'><b>▮</b></span> mean ± 3 SD of the other lots of the "
            "product · <b>—</b> their mean · "
            f"<span style='color:{theme.DANGER}'>●</span> out of trend"
        )
        self.caption.setWordWrap(True)
        layout.addWidget(self.caption)
        self.values: pg.PlotDataItem | None = None
        self.flagged_lots: list[str] = []

    def show_metric(self, data: ComparisonData, metric: str) -> None:
        self.item.clear()
        rows = [r for r in data.rows if r.values.get(metric) is not None]
        limits = data.limits.get(metric, {})
        ticks = []
        xs, ys, brushes, sizes = [], [], [], []
        self.flagged_lots = []
        for x, row in enumerate(rows):
            value = float(row.values[metric])
            ticks.append((x, row.lot_id))
            flagged = bool(data.flagged(row.lot_id, metric))
            if flagged:
                self.flagged_lots.append(row.lot_id)
            xs.append(x)
            ys.append(value)
            brushes.append(pg.mkBrush(theme.DANGER if flagged else theme.ACCENT))
            sizes.append(16 if flagged else 11)
            if row.lot_id in limits:
                mean, sd = limits[row.lot_id]
                band = pg.PlotDataItem(
                    [x, x],
                    [mean - 3 * sd, mean + 3 * sd],
                    pen=pg.mkPen("#9aa5b1", width=10),
                )
                band.setZValue(-5)
                self.item.addItem(band)
                self.item.addItem(
                    pg.PlotDataItem([x - 0.2, x + 0.2], [mean, mean], pen=pg.mkPen("#333", width=2))
                )
        self.values = pg.PlotDataItem(
            xs, ys, pen=None, symbol="o", symbolBrush=brushes, symbolSize=sizes, symbolPen="#111"
        )
        self.item.addItem(self.values)
        self.item.getAxis("bottom").setTicks([ticks])
        label = data.metrics.get(metric, metric)
        self.item.setLabel("left", label, **{"font-size": theme.PLOT_LABEL_POINT_SIZE})
        self.item.setTitle(
            f"{label}: each lot vs the other lots' mean ± 3 SD"
            + ("  (SIMULATED)" if data.simulated else ""),
            size="12pt",
            color=theme.SIMULATED_BG if data.simulated else "#111",
        )
        self.item.setXRange(-0.6, max(len(rows) - 0.4, 0.6), padding=0)
        self.item.enableAutoRange(axis="y")
