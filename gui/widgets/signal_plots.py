"""Single-curve signal plots: the loops' motion signals and the bath temperature.

The same rules as the thromboelastometry plots (gui/widgets/trace_plots.py) keep a frame
short: each curve is created once with ``clipToView`` and peak ``autoDownsample`` (set on the
PlotItem as well, which otherwise discards them), ``setData`` once per changed curve per
frame, fixed axes cached as pixmaps, and the grid as one static line item inside the plot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from numpy.typing import NDArray
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QGraphicsItem, QGridLayout, QWidget

from gui import theme
from gui.widgets.common import compact_label
from gui.widgets.trace_plots import AUTO_DOWNSAMPLE_FACTOR, GRID_PEN, TraceSource, _grid_step

_EMPTY = np.empty(0, dtype=np.float64)


def _styled_plot(parent: QWidget, font: QFont) -> pg.PlotWidget:
    """A PlotWidget with the app's tick fonts, cached axes and downsampling settings."""
    widget = pg.PlotWidget(parent=parent)
    item = widget.getPlotItem()
    item.hideButtons()
    tick_font = QFont(font)
    tick_font.setPointSize(theme.PLOT_TICK_POINT_SIZE)
    for side in ("left", "bottom"):
        axis = item.getAxis(side)
        axis.setTickFont(tick_font)
        axis.setTextPen(pg.mkPen("#222"))
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    item.getViewBox().setMouseEnabled(x=True, y=False)
    item.setDownsampling(auto=True, mode="peak")
    item.setClipToView(True)
    return widget


def _curve(colour: QColor, width: int) -> pg.PlotDataItem:
    return pg.PlotDataItem(
        clipToView=True,
        autoDownsample=True,
        downsampleMethod="peak",
        autoDownsampleFactor=AUTO_DOWNSAMPLE_FACTOR,
        pen=pg.mkPen(colour, width=width),
    )


def _grid(duration_min: float, y_low: float, y_high: float, y_step: float) -> pg.PlotCurveItem:
    """Static grid lines (one item, drawn inside the plot)."""
    x_step = _grid_step(duration_min)
    xs = np.arange(0.0, duration_min + x_step / 2, x_step)
    ys = np.arange(y_low, y_high + y_step / 2, y_step)
    x = np.concatenate([np.repeat(xs, 2), np.tile([-x_step, duration_min + x_step], len(ys))])
    y = np.concatenate([np.tile([y_low, y_high], len(xs)), np.repeat(ys, 2)])
    item = pg.PlotCurveItem(pen=pg.mkPen(GRID_PEN, width=1))
    item.setData(x, y, connect="pairs")
    item.setZValue(-10)
    return item


@dataclass(eq=False)
class SignalPlot:
    """One loop's plot: its curve, the threshold line and the clotting marker."""

    channel: int
    label: str
    widget: pg.PlotWidget
    curve: pg.PlotDataItem
    marker: pg.InfiniteLine
    grid_lines: pg.PlotCurveItem
    version: int = 0
    marked_s: float | None = None

    @property
    def point_count(self) -> int:
        x = self.curve.xData
        return 0 if x is None else len(x)

    def show_data(self, t_s: NDArray[np.float64], values: NDArray[np.float64]) -> None:
        self.curve.setData(t_s / 60.0, values, skipFiniteCheck=True)


class SignalPlotGrid(QWidget):
    """One plot per channel in a grid, a common fixed y range, a marker per channel."""

    def __init__(
        self,
        columns: int,
        y_range: tuple[float, float],
        y_step: float,
        y_label: str,
        marker_name: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.columns = columns
        self.y_range = y_range
        self.y_step = y_step
        self.y_label = y_label
        self.marker_name = marker_name
        self.threshold: float | None = None
        self.plots: dict[int, SignalPlot] = {}
        self._duration_min = 60.0
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._threshold_lines: list[pg.InfiniteLine] = []

    def configure(
        self,
        channels: Sequence[tuple[int, str]],
        duration_s: float,
        threshold: float | None = None,
    ) -> None:
        """Plots for these (channel, label) pairs over ``duration_s``; data is reset."""
        duration_min = max(duration_s / 60.0, 1.0)
        rebuild = (
            [c for c, _l in channels] != list(self.plots)
            or duration_min != self._duration_min
            or threshold != self.threshold
        )
        self._duration_min = duration_min
        self.threshold = threshold
        if rebuild:
            self._rebuild(channels)
        for channel, label in channels:
            self.plots[channel].label = label
        self.reset()

    def _rebuild(self, channels: Sequence[tuple[int, str]]) -> None:
        for plot in self.plots.values():
            self._layout.removeWidget(plot.widget)
            plot.widget.setParent(None)
            plot.widget.deleteLater()
        self.plots = {}
        rows = max(1, math.ceil(len(channels) / self.columns))
        for index, (channel, label) in enumerate(channels):
            row, col = divmod(index, self.columns)
            plot = self._make_plot(
                index, channel, label, last_row=row == rows - 1, first_col=col == 0
            )
            self.plots[channel] = plot
            self._layout.addWidget(plot.widget, row, col)

    def _make_plot(
        self, index: int, channel: int, label: str, last_row: bool, first_col: bool
    ) -> SignalPlot:
        widget = _styled_plot(self, self.font())
        widget.setMinimumSize(180, 110)
        item = widget.getPlotItem()
        label_style = {"font-size": theme.PLOT_LABEL_POINT_SIZE}
        if last_row:
            item.setLabel("bottom", "time (min)", **label_style)
        if first_col:
            item.setLabel("left", self.y_label, **label_style)
        low, high = self.y_range
        item.getAxis("left").setTicks(
            [[(v, f"{v:g}") for v in np.arange(low, high + 1e-9, self.y_step * 2)]]
        )
        grid_lines = _grid(self._duration_min, low, high, self.y_step)
        item.addItem(grid_lines, ignoreBounds=True)
        if self.threshold is not None:
            line = pg.InfiniteLine(
                pos=self.threshold,
                angle=0,
                movable=False,
                pen=pg.mkPen(theme.MUTED, width=1, style=Qt.PenStyle.DotLine),
            )
            item.addItem(line, ignoreBounds=True)
        curve = _curve(theme.channel_colour(index), 2)
        item.addItem(curve)
        marker = pg.InfiniteLine(
            pos=0.0,
            angle=90,
            movable=False,
            pen=pg.mkPen(theme.DANGER, width=2, style=Qt.PenStyle.DashLine),
            label=self.marker_name,
            labelOpts={
                "position": 0.85,
                "color": theme.DANGER,
                "fill": (255, 255, 255, 220),
                # Right of the line in the left half of the plot, left of it in the right half.
                "anchors": [(0, 0.5), (1, 0.5)],
            },
        )
        marker_font = QFont(self.font())
        marker_font.setPointSize(theme.PLOT_TICK_POINT_SIZE)
        marker_font.setBold(True)
        marker.label.setFont(marker_font)
        marker.setVisible(False)
        item.addItem(marker, ignoreBounds=True)
        # Fixed axes: no autorange work per frame (and the whole run always in view).
        item.getViewBox().disableAutoRange()
        item.setXRange(0.0, self._duration_min, padding=0.01)
        item.setYRange(low, high, padding=0)
        return SignalPlot(channel, label, widget, curve, marker, grid_lines)

    def _title(self, plot: SignalPlot) -> None:
        """``Loop 3 · 1.0e4/mL`` (the lot is in the table and the tooltip), in red once
        marked (the marker shows the time). A plot is at least as wide as its title."""
        colour = theme.DANGER if plot.marked_s is not None else "#111"
        _lot, sep, dose = compact_label(plot.label).partition(" ")
        short = dose if sep else plot.label
        plot.widget.getPlotItem().setTitle(
            f"Loop {plot.channel} · {short}", size="12pt", color=colour
        )
        plot.widget.setToolTip(f"Loop {plot.channel}: {plot.label}")

    # -- data ----------------------------------------------------------------------------------
    def reset(self) -> None:
        for plot in self.plots.values():
            plot.curve.setData(_EMPTY, _EMPTY)
            plot.version = 0
            plot.marked_s = None
            plot.marker.setVisible(False)
            self._title(plot)

    def refresh(self, sources: Mapping[int, TraceSource]) -> int:
        """Show new data of each source whose version changed; returns channels updated."""
        updated = 0
        for channel, plot in self.plots.items():
            source = sources.get(channel)
            if source is None or source.version == plot.version:
                continue
            version = source.version
            t_s, values = source.snapshot()
            plot.version = version
            plot.show_data(t_s, values)
            updated += 1
        return updated

    def set_trace(
        self, channel: int, t_s: NDArray[np.float64], values: NDArray[np.float64]
    ) -> None:
        plot = self.plots.get(channel)
        if plot is not None:
            plot.show_data(t_s, values)

    def mark(self, channel: int, t_s: float) -> None:
        """A vertical marker at ``t_s`` on the channel's plot (loop clotting)."""
        plot = self.plots.get(channel)
        if plot is None:
            return
        plot.marked_s = t_s
        plot.marker.setVisible(True)
        plot.marker.setPos(t_s / 60.0)
        plot.marker.label.setFormat(f"{t_s / 60:.1f} min")
        plot.marker.label.setVisible(True)  # a hidden label ignored the new text: show it
        plot.marker.setToolTip(f"{self.marker_name} at {t_s:.0f} s ({t_s / 60:.1f} min)")
        self._title(plot)


class BathPlot(pg.PlotWidget):
    """The bath temperature against run time, with the setpoint and its accepted band."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.setMinimumHeight(150)
        item = self.getPlotItem()
        item.hideButtons()
        tick_font = QFont(self.font())
        tick_font.setPointSize(theme.PLOT_TICK_POINT_SIZE)
        for side in ("left", "bottom"):
            axis = item.getAxis(side)
            axis.setTickFont(tick_font)
            axis.setTextPen(pg.mkPen("#222"))
            axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        label_style = {"font-size": theme.PLOT_LABEL_POINT_SIZE}
        item.setLabel("left", "bath (°C)", **label_style)
        item.setLabel("bottom", "time (min; before 0: equilibration)", **label_style)
        item.getViewBox().setMouseEnabled(x=True, y=False)
        band_colour = QColor(theme.OK)
        band_colour.setAlpha(40)
        self.band = pg.LinearRegionItem(
            values=(36.5, 37.5),
            orientation="horizontal",
            movable=False,
            brush=pg.mkBrush(band_colour),
            pen=pg.mkPen(band_colour),
        )
        self.band.setZValue(-20)
        item.addItem(self.band, ignoreBounds=True)
        self.setpoint_line = pg.InfiniteLine(
            pos=37.0,
            angle=0,
            movable=False,
            pen=pg.mkPen(theme.OK, width=1, style=Qt.PenStyle.DashLine),
        )
        item.addItem(self.setpoint_line, ignoreBounds=True)
        self.curve = pg.PlotDataItem(pen=pg.mkPen(theme.ACCENT, width=2))
        item.addItem(self.curve)
        item.getViewBox().disableAutoRange()
        self.setpoint_c = 37.0
        self.tolerance_c = 0.5
        self._x_range = (0.0, 60.0)
        self._y_range = (35.5, 38.5)

    @property
    def point_count(self) -> int:
        x = self.curve.xData
        return 0 if x is None else len(x)

    def configure(self, setpoint_c: float, tolerance_c: float, duration_s: float) -> None:
        self.setpoint_c, self.tolerance_c = setpoint_c, tolerance_c
        self.band.setRegion((setpoint_c - tolerance_c, setpoint_c + tolerance_c))
        self.setpoint_line.setPos(setpoint_c)
        margin = max(3 * tolerance_c, 1.0)
        self._y_range = (setpoint_c - margin, setpoint_c + margin)
        self._x_range = (0.0, max(duration_s / 60.0, 1.0))
        self.curve.setData(_EMPTY, _EMPTY)
        self._apply_ranges()
        self.getPlotItem().setTitle(
            f"Water bath · setpoint {setpoint_c:.2f} °C, band ±{tolerance_c:g} °C",
            size="12pt",
            color="#111",
        )

    def _apply_ranges(self) -> None:
        item = self.getPlotItem()
        item.setXRange(*self._x_range, padding=0.01)
        item.setYRange(*self._y_range, padding=0)

    def show_data(self, t_s: NDArray[np.float64], temp_c: NDArray[np.float64]) -> None:
        """The readings so far (t in run seconds; negative = before rotation started)."""
        self.curve.setData(t_s / 60.0, temp_c, skipFiniteCheck=True)
        if not len(t_s):
            return
        x_low = min(0.0, math.floor(float(t_s[0]) / 60.0))
        y_low = min(self._y_range[0], math.floor(float(np.min(temp_c))))
        y_high = max(self._y_range[1], math.ceil(float(np.max(temp_c))))
        if (x_low, y_low, y_high) != (self._x_range[0], *self._y_range):
            self._x_range = (x_low, self._x_range[1])
            self._y_range = (y_low, y_high)
            self._apply_ranges()
