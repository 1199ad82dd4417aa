"""Thromboelastometry traces in their familiar symmetric form, live or from storage.

Each channel gets one PlotWidget with two curves, +A/2 and −A/2 (the amplitude mirrored
about zero, as on the instrument's own display). The curves are created once, with
``clipToView`` and peak-preserving ``autoDownsample``, and each refresh calls ``setData``
once per curve, only for channels whose LiveTrace ``version`` changed.

What a frame costs is mostly painting, so the plots avoid what repaints for nothing: the
axes are cached as pixmaps (their tick labels are not redrawn when a curve changes), the
grid is one static line item inside the plot rather than the axes' grid (which would make
every curve update repaint the axes), wide pens are used only where plots are large, and
the fill under the curves is for stored traces (drawn once), not for live ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyqtgraph as pg
from numpy.typing import NDArray
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QGraphicsItem, QGridLayout, QWidget

from gui import theme
from gui.widgets.common import compact_label

#: Half-range of the amplitude axis (mm) until a trace needs more.
DEFAULT_HALF_RANGE_MM = 40.0

#: Samples per pixel column before peak downsampling (pyqtgraph's default is 5).
AUTO_DOWNSAMPLE_FACTOR = 1.0
#: Grids with up to this many plots draw 2-px curves; denser (smaller) ones 1 px.
WIDE_PEN_MAX_PLOTS = 4
GRID_PEN = (0, 0, 0, 40)
ZERO_PEN = (90, 100, 110, 160)

_EMPTY = np.empty(0, dtype=np.float64)


class TraceSource(Protocol):
    """What a plot reads: ``instrument.live.LiveTrace`` (bounded, thread-safe)."""

    version: int

    def snapshot(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options of the app: white background, fast straight lines."""
    pg.setConfigOptions(background="w", foreground="k", antialias=False, useOpenGL=False)


def _curve(colour: QColor, fill: bool, width: int) -> pg.PlotDataItem:
    pen = pg.mkPen(colour, width=width)
    kwargs: dict[str, Any] = {}
    if fill:
        brush = QColor(colour)
        brush.setAlpha(60)
        kwargs = {"fillLevel": 0.0, "fillBrush": pg.mkBrush(brush)}
    return pg.PlotDataItem(
        clipToView=True,
        autoDownsample=True,
        downsampleMethod="peak",
        # Peak downsampling keeps each pixel column's min and max, so about one bin per
        # pixel looks the same as more and draws a fraction of the segments.
        autoDownsampleFactor=AUTO_DOWNSAMPLE_FACTOR,
        pen=pen,
        **kwargs,
    )


@dataclass(eq=False)
class ChannelPlot:
    """The plot of one channel: the widget, its two curves and the CT marker."""

    channel: int
    label: str
    widget: pg.PlotWidget
    upper: pg.PlotDataItem
    lower: pg.PlotDataItem
    ct_line: pg.InfiniteLine
    grid_lines: pg.PlotCurveItem
    zero_line: pg.PlotCurveItem
    version: int = 0  # a new LiveTrace (version 0) is empty, like a reset plot
    ct_s: float | None = None
    #: Device time (s) of the newest point on screen; NaN before the first.
    last_t_s: float = math.nan
    half_range_mm: float = DEFAULT_HALF_RANGE_MM
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def point_count(self) -> int:
        x = self.upper.xData
        return 0 if x is None else len(x)

    def show_data(self, t_s: NDArray[np.float64], amp_mm: NDArray[np.float64]) -> None:
        """Put a whole trace on screen: one setData per curve."""
        t_min = t_s / 60.0
        half = amp_mm * 0.5
        self.upper.setData(t_min, half, skipFiniteCheck=True)
        self.lower.setData(t_min, -half, skipFiniteCheck=True)
        self.last_t_s = float(t_s[-1]) if len(t_s) else math.nan
        if len(half):
            peak = float(np.nanmax(np.abs(half)))
            if peak > self.half_range_mm - 2:
                self.half_range_mm = math.ceil((peak + 5) / 10) * 10
                self.set_ranges(self.extra.get("duration_min", 60.0))

    def set_ranges(self, duration_min: float) -> None:
        """Fixed axes (no autorange work per frame) and grid lines to match them."""
        self.extra["duration_min"] = duration_min
        item = self.widget.getPlotItem()
        half = self.half_range_mm
        item.setXRange(0.0, duration_min, padding=0.01)
        item.setYRange(-half, half, padding=0)
        x_step = _grid_step(duration_min)
        xs = np.arange(0.0, duration_min + x_step / 2, x_step)
        ys = np.arange(-half, half + 5.0, 10.0)
        x = np.concatenate([np.repeat(xs, 2), np.tile([-x_step, duration_min + x_step], len(ys))])
        y = np.concatenate([np.tile([-half, half], len(xs)), np.repeat(ys, 2)])
        self.grid_lines.setData(x, y, connect="pairs")
        self.zero_line.setData(np.array([-x_step, duration_min + x_step]), np.zeros(2))


def _grid_step(duration_min: float) -> float:
    """Vertical grid lines every 5, 10, 15, 30 or 60 minutes (6 to 12 of them)."""
    for step in (5.0, 10.0, 15.0, 30.0, 60.0):
        if duration_min / step <= 12:
            return step
    return 120.0


class TracePlotGrid(QWidget):
    """One symmetric amplitude plot per channel in a grid (2×2 for the four TEM-4 channels)."""

    def __init__(self, columns: int = 2, fill: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.columns = columns
        self.fill = fill
        self.plots: dict[int, ChannelPlot] = {}
        self._duration_min = 60.0
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)

    # -- set-up --------------------------------------------------------------------------------
    def configure(self, channels: Sequence[tuple[int, str]], duration_s: float) -> None:
        """Plots for these (channel, label) pairs over ``duration_s``; data is reset."""
        self._duration_min = max(duration_s / 60.0, 1.0)
        if [c for c, _l in channels] != list(self.plots):
            self._rebuild(channels)
        for channel, label in channels:
            plot = self.plots[channel]
            plot.label = label
            self._title(plot)
        self.reset()

    def _rebuild(self, channels: Sequence[tuple[int, str]]) -> None:
        for plot in self.plots.values():
            self._layout.removeWidget(plot.widget)
            plot.widget.setParent(None)
            plot.widget.deleteLater()
        self.plots = {}
        width = 2 if len(channels) <= WIDE_PEN_MAX_PLOTS else 1
        for index, (channel, label) in enumerate(channels):
            plot = self._make_plot(index, channel, label, width)
            self.plots[channel] = plot
            self._layout.addWidget(plot.widget, index // self.columns, index % self.columns)

    def _make_plot(self, index: int, channel: int, label: str, width: int) -> ChannelPlot:
        colour = theme.channel_colour(index)
        widget = pg.PlotWidget(parent=self)
        widget.setMinimumSize(220, 160)
        item = widget.getPlotItem()
        item.hideButtons()
        tick_font = QFont(self.font())
        tick_font.setPointSize(theme.PLOT_TICK_POINT_SIZE)
        label_style = {"font-size": theme.PLOT_LABEL_POINT_SIZE}
        for side in ("left", "bottom"):
            axis = item.getAxis(side)
            axis.setTickFont(tick_font)
            axis.setTextPen(pg.mkPen("#222"))
            # Repainted from a pixmap when a curve changes; redrawn only when it changes.
            axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        item.setLabel("bottom", "time (min)", **label_style)
        item.setLabel("left", "amplitude (mm)", **label_style)
        item.getViewBox().setMouseEnabled(x=True, y=False)
        # PlotItem.addItem() applies the PlotItem's own downsampling and clip settings to
        # each curve (both off by default), so set them here too, or they are lost.
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        grid_lines = pg.PlotCurveItem(pen=pg.mkPen(GRID_PEN, width=1))
        zero_line = pg.PlotCurveItem(pen=pg.mkPen(ZERO_PEN, width=1))
        for static in (grid_lines, zero_line):
            static.setZValue(-10)
            item.addItem(static, ignoreBounds=True)
        upper = _curve(colour, self.fill, width)
        lower = _curve(colour, self.fill, width)
        item.addItem(upper)
        item.addItem(lower)
        ct_pen = pg.mkPen(theme.DANGER, width=2, style=Qt.PenStyle.DashLine)
        ct_line = pg.InfiniteLine(
            pos=0.0,
            angle=90,
            movable=False,
            pen=ct_pen,
            label="CT",
            labelOpts={"position": 0.92, "color": theme.DANGER, "fill": (255, 255, 255, 220)},
        )
        label_font = QFont(self.font())
        label_font.setPointSize(theme.PLOT_TICK_POINT_SIZE)
        label_font.setBold(True)
        ct_line.label.setFont(label_font)
        ct_line.setVisible(False)
        item.addItem(ct_line, ignoreBounds=True)
        plot = ChannelPlot(channel, label, widget, upper, lower, ct_line, grid_lines, zero_line)
        plot.set_ranges(self._duration_min)
        return plot

    def _title(self, plot: ChannelPlot) -> None:
        ct = f" · CT {plot.ct_s:.0f} s" if plot.ct_s is not None else ""
        plot.widget.getPlotItem().setTitle(
            f"Ch {plot.channel} · {compact_label(plot.label)}{ct}", size="13pt", color="#111"
        )

    # -- data ----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Empty every curve and hide the CT markers (between runs, not between frames)."""
        for plot in self.plots.values():
            plot.upper.setData(_EMPTY, _EMPTY)
            plot.lower.setData(_EMPTY, _EMPTY)
            plot.version = 0
            plot.last_t_s = math.nan
            plot.ct_s = None
            plot.ct_line.setVisible(False)
            plot.half_range_mm = DEFAULT_HALF_RANGE_MM
            plot.set_ranges(self._duration_min)
            self._title(plot)

    def refresh(self, sources: Mapping[int, TraceSource]) -> int:
        """Show new data of each source whose version changed; returns channels updated."""
        updated = 0
        for channel, plot in self.plots.items():
            source = sources.get(channel)
            if source is None:
                continue
            version = source.version
            if version == plot.version:
                continue
            t_s, amp = source.snapshot()
            plot.version = version
            plot.show_data(t_s, amp)
            updated += 1
        return updated

    def set_trace(
        self, channel: int, t_s: NDArray[np.float64], amp_mm: NDArray[np.float64]
    ) -> None:
        """Show a stored trace (Results view)."""
        plot = self.plots.get(channel)
        if plot is not None:
            plot.show_data(t_s, amp_mm)

    def mark_ct(self, channel: int, ct_s: float) -> None:
        """A vertical marker at CT on the channel's plot."""
        plot = self.plots.get(channel)
        if plot is None:
            return
        plot.ct_s = ct_s
        plot.ct_line.setPos(ct_s / 60.0)
        plot.ct_line.label.setFormat(f"CT {ct_s:.0f} s")
        plot.ct_line.setVisible(True)
        self._title(plot)
