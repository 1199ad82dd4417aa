"""Chandler loop panels: the live run (motion per loop, bath, gate, prompts) and the results.

The live panel reads the run engine's ``live`` buffers (one motion trace per loop) on the
Run view's frame timer, the bath temperature the engine last read (``bath_temperature_c``),
and the observer's events (``clot``, ``equilibrated``, ``interlock``) and prompts drained by
the view. Acknowledging a prompt is the Run view's business (on a worker thread); the
panel's :class:`~gui.widgets.prompts.PromptPanel` only asks for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.widgets.common import format_duration, heading
from gui.widgets.prompts import PromptPanel
from gui.widgets.signal_plots import BathPlot, SignalPlotGrid

if TYPE_CHECKING:
    from gui.views.assays import StoredRun

_CLOT_IN_MESSAGE = re.compile(r"clotted at\s*([0-9]+(?:\.[0-9]+)?)\s*s")
#: Motion signal axis (‰ of free flow) and its grid step.
MOTION_RANGE = (0.0, 1100.0)
MOTION_STEP = 250.0
#: A new bath point is kept when the reading changes or this much run time has passed (s).
BATH_POINT_EVERY_S = 5.0

LOOP_COLUMNS = (
    "Loop",
    "Contents",
    "Dose",
    "Donor",
    "Clotted",
    "Clotting time",
    "Samples drawn",
    "PLT consumption",
)
#: Column headers on two lines, so that eight loops fit beside the event log.
_HEADERS = {
    "Dose": "Dose\n(cells/mL)",
    "Clotting time": "Clotting\ntime",
    "Samples drawn": "Samples\ndrawn",
    "PLT consumption": "PLT\nconsumption",
}


def clot_from_event(message: str) -> float | None:
    """The clotting time of a live ``clot`` event ("loop 3 clotted at 981 s")."""
    match = _CLOT_IN_MESSAGE.search(message)
    return float(match.group(1)) if match else None


def _dose_text(contents: str, dose: float | None) -> str:
    """Cells per mL of blood: ``1.0e4``; ``—`` for the vehicle."""
    if contents == "vehicle" or not dose:
        return "—"
    mantissa, _e, exponent = f"{float(dose):.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def _clot_time_text(seconds: float) -> str:
    return f"{seconds:.0f} s"


@dataclass
class LoopRow:
    """One loop of the table: what it holds and, once known, what happened to it."""

    loop: int
    contents: str
    lot_id: str | None
    dose_cells_per_ml: float | None
    donor_id: str | None
    clotted: bool | None = None
    clot_time_s: float | None = None
    clot_note: str = ""
    live_clot_s: float | None = None
    tubes_drawn: int | None = None
    tubes_total: int | None = None
    plt_consumption_pct: float | None = None
    plt_note: str = ""

    @property
    def contents_text(self) -> str:
        if self.contents == "vehicle":
            return "vehicle"
        return self.lot_id or "lot"


def rows_from_channels(channels: Iterable[Any]) -> list[LoopRow]:
    """Rows from the protocol's resolved channels (``ChannelSpec``), before a run."""
    return [
        LoopRow(
            c.channel,
            c.contents,
            c.lot_id if c.contents == "lot" else None,
            c.dose_cells_per_ml,
            c.donor_id,
        )
        for c in channels
    ]


def _count_tubes(rows: list[LoopRow], tubes: Iterable[Mapping[str, Any]]) -> None:
    by_loop = {r.loop: r for r in rows}
    for row in rows:
        row.tubes_drawn, row.tubes_total = 0, 0
    for tube in tubes:
        row = by_loop.get(int(tube["channel"]))
        if row is None or row.tubes_total is None or row.tubes_drawn is None:
            continue
        row.tubes_total += 1
        if tube["status"] == "drawn":
            row.tubes_drawn += 1


def _apply_parameters(
    row: LoopRow, parameters: Mapping[str, Any], notes: Mapping[str, str]
) -> None:
    if "clotted" in parameters:
        row.clotted = bool(parameters["clotted"])
    clot = parameters.get("clot_time_s")
    row.clot_time_s = None if clot is None else float(clot)
    row.clot_note = str(notes.get("clot_time_s", ""))
    plt = parameters.get("PLT_consumption_pct")
    row.plt_consumption_pct = None if plt is None else float(plt)
    row.plt_note = str(notes.get("PLT_consumption_pct", ""))


def rows_from_outcome(outcome: Any) -> list[LoopRow]:
    """Rows from a finished run's ``RunOutcome`` (results and tubes)."""
    rows = []
    for result in outcome.channels:
        row = LoopRow(
            result.channel,
            result.contents,
            result.lot_id,
            result.dose_cells_per_ml,
            result.donor_id,
        )
        if result.parameters:
            _apply_parameters(row, result.parameters, result.notes)
        rows.append(row)
    tubes = outcome.extra.get("tubes") if isinstance(outcome.extra, dict) else None
    if tubes is not None:
        _count_tubes(rows, tubes)
    return rows


def rows_from_stored(stored: StoredRun) -> list[LoopRow]:
    """Rows from a stored run: its channels, newest results and tubes."""
    results = {r["channel"]: r for r in stored.results}
    rows = []
    for channel in sorted(stored.run.get("channels", []), key=lambda c: c["channel"]):
        row = LoopRow(
            channel["channel"],
            channel["contents"],
            channel.get("lot_id"),
            channel.get("dose_cells_per_ml"),
            channel.get("donor_id"),
        )
        result = results.get(channel["channel"])
        if result is not None:
            _apply_parameters(row, result["parameters"], result["notes"])
        rows.append(row)
    _count_tubes(rows, stored.tubes)
    return rows


class LoopTable(QTableWidget):
    """One row per loop: contents, dose, donor and, once known, clotting and samples."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(LOOP_COLUMNS), parent)
        self.setHorizontalHeaderLabels([_HEADERS.get(c, c) for c in LOOP_COLUMNS])
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        rows = self.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.rows: list[LoopRow] = []

    def show_rows(self, rows: Sequence[LoopRow]) -> None:
        self.rows = list(rows)
        self.setRowCount(len(self.rows))
        for index, row in enumerate(self.rows):
            self._fill(index, row)
        # The donor column only when the loops do not all share one (then it is in the title).
        donors = {row.donor_id for row in self.rows}
        self.setColumnHidden(LOOP_COLUMNS.index("Donor"), len(donors) <= 1)

    @property
    def common_donor(self) -> str | None:
        donors = {row.donor_id for row in self.rows}
        return donors.pop() if len(donors) == 1 else None

    def mark_live_clot(self, loop: int, t_s: float) -> None:
        """A loop clotted during the run (live detection, before the analysis)."""
        for index, row in enumerate(self.rows):
            if row.loop == loop and row.clotted is None:
                row.live_clot_s = t_s
                self._fill(index, row)

    def _fill(self, index: int, row: LoopRow) -> None:
        bold = QFont(self.font())
        bold.setBold(True)
        if row.clotted is None:
            clotted = "yes (live)" if row.live_clot_s is not None else "—"
            clot_time = _clot_time_text(row.live_clot_s) if row.live_clot_s is not None else "—"
        else:
            clotted = "yes" if row.clotted else "no"
            clot_time = _clot_time_text(row.clot_time_s) if row.clot_time_s is not None else "n.r."
        drawn = "—" if row.tubes_total is None else f"{row.tubes_drawn} of {row.tubes_total}"
        plt = f"{row.plt_consumption_pct:.1f} %" if row.plt_consumption_pct is not None else "—"
        cells = (
            str(row.loop),
            row.contents_text,
            _dose_text(row.contents, row.dose_cells_per_ml),
            row.donor_id or "—",
            clotted,
            clot_time,
            drawn,
            plt,
        )
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if col in (0, 4, 5, 6, 7):
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            if col == 4 and text.startswith("yes"):
                item.setForeground(QColor(theme.DANGER))
                item.setFont(bold)
            if col == 5 and row.clot_note:
                item.setToolTip(row.clot_note)
                item.setForeground(QColor(theme.MUTED))
            elif col == 5 and (row.clot_time_s or row.live_clot_s) is not None:
                item.setToolTip(f"{(row.clot_time_s or row.live_clot_s or 0) / 60:.1f} min")
            if col == 6 and row.tubes_total and row.tubes_drawn != row.tubes_total:
                item.setForeground(QColor(theme.DANGER))
                item.setToolTip("some draws were never acknowledged (tubes marked missed)")
            if col == 7 and row.plt_note:
                item.setToolTip(row.plt_note)
            self.setItem(index, col, item)

    def value_text(self, loop: int, column: str) -> str | None:
        """The text shown for a loop in a column (tests, screenshots)."""
        for index, row in enumerate(self.rows):
            if row.loop == loop:
                item = self.item(index, LOOP_COLUMNS.index(column))
                return item.text() if item is not None else None
        return None


def _loops_summary(protocol: Any, donor: str | None) -> str:
    loops = getattr(protocol, "loops", None)
    if loops is None:
        return "Loops"
    blood = f"blood of {donor}" if donor else "blood"
    return (
        f"Loops — {loops.volume_ml:g} mL {blood} each, {loops.heparin_iu_per_ml:g} IU/mL "
        f"heparin, {loops.rpm} rpm"
    )


class LoopLivePanel(QWidget):
    """Chandler loops live: motion per loop with clotting markers, bath, gate and prompts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine: Any = None
        self.protocol: Any = None
        self._live: Mapping[int, Any] = {}
        self._bath_t: list[float] = []
        self._bath_c: list[float] = []
        self._pre_rotation: list[tuple[float, float]] = []
        self._clock_zero: float | None = None
        self._gate = "idle"
        self._gate_detail = ""
        self._bath_version = 0
        self._shown_bath_version = 0

        plots_layout = QVBoxLayout(self)
        plots_layout.setContentsMargins(0, 0, 0, 0)
        plots_layout.setSpacing(4)
        self.motion_title = heading("Motion signal per loop (‰ of free flow)", sub=True)
        plots_layout.addWidget(self.motion_title)
        self.grid = SignalPlotGrid(
            columns=4,
            y_range=MOTION_RANGE,
            y_step=MOTION_STEP,
            y_label="motion (‰)",
            marker_name="clotted",
        )
        plots_layout.addWidget(self.grid, 3)
        self.gate_label = QLabel("")
        self.gate_label.setObjectName("gate")
        self.gate_label.setWordWrap(True)
        plots_layout.addWidget(self.gate_label)
        self.bath_plot = BathPlot()
        plots_layout.addWidget(self.bath_plot, 1)

        #: The Run view shows the prompts beside its set-up (where Start and Abort are).
        self.prompts = PromptPanel()
        #: The Run view shows this under the plots (set-up, then the results).
        self.results_widget = LoopTable()
        self.results_title = "Loops"
        self.grid.configure([(n, f"loop {n}") for n in range(1, 9)], 3600.0)
        self._show_gate()

    # -- set-up --------------------------------------------------------------------------------
    def preview(self, protocol: Any, channels: Sequence[Any] | None) -> None:
        """The set-up of ``protocol`` before a run: loop contents, plot titles, bath band."""
        self.protocol = protocol
        if channels is not None:
            self.results_widget.show_rows(rows_from_channels(channels))
            self.grid.configure(
                [(c.channel, c.label) for c in channels],
                protocol.duration_s,
                protocol.clot_detection.threshold_permille,
            )
        self.results_title = _loops_summary(protocol, self.results_widget.common_donor)
        self.bath_plot.configure(
            protocol.bath.setpoint_c, protocol.bath.tolerance_c, protocol.duration_s
        )
        self._gate, self._gate_detail = "idle", ""
        self._show_gate()

    def start(self, engine: Any, protocol: Any) -> None:
        self.engine = engine
        self.preview(protocol, engine.channels)
        self._live = engine.live
        self._bath_t, self._bath_c, self._pre_rotation = [], [], []
        self._clock_zero = None
        self._bath_version = self._shown_bath_version = 0
        self.prompts.reset()
        self._gate = "connecting"
        self._show_gate()

    # -- frames --------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.grid.refresh(self._live)
        self._sample_bath()
        if self._bath_version != self._shown_bath_version:
            self._shown_bath_version = self._bath_version
            self.bath_plot.show_data(np.asarray(self._bath_t), np.asarray(self._bath_c))
            self._show_gate()

    def _device_time_s(self) -> float | None:
        latest = [trace.last() for trace in self._live.values()]
        times = [point[0] for point in latest if point is not None]
        return max(times) if times else None

    def _sample_bath(self) -> None:
        """Keep the bath reading the engine last took, at run time (before rotation: at the
        clock's time, placed before zero once rotation has started)."""
        engine = self.engine
        if engine is None:
            return
        temp = engine.bath_temperature_c
        if temp is None:
            return
        device_s = self._device_time_s()
        if device_s is None:
            clock_s = engine.clock.now()
            if not self._pre_rotation or (
                temp != self._pre_rotation[-1][1]
                or clock_s - self._pre_rotation[-1][0] >= BATH_POINT_EVERY_S
            ):
                self._pre_rotation.append((clock_s, float(temp)))
                if math.isfinite(engine.clock.speed):
                    # Shown at negative time relative to now until rotation starts.
                    self._bath_t = [t - clock_s for t, _c in self._pre_rotation]
                    self._bath_c = [c for _t, c in self._pre_rotation]
                    self._bath_version += 1
            return
        if self._clock_zero is None:
            self._clock_zero = engine.clock.now() - device_s
            if math.isfinite(engine.clock.speed):
                self._bath_t = [t - self._clock_zero for t, _c in self._pre_rotation]
                self._bath_c = [c for _t, c in self._pre_rotation]
            else:
                self._bath_t, self._bath_c = [], []
        if (
            not self._bath_t
            or temp != self._bath_c[-1]
            or device_s - self._bath_t[-1] >= BATH_POINT_EVERY_S
        ) and (not self._bath_t or device_s > self._bath_t[-1]):
            self._bath_t.append(device_s)
            self._bath_c.append(float(temp))
            self._bath_version += 1

    def show_state(self, state: Any) -> None:
        """The run's step and protocol time (drained from the observer by the Run view)."""
        self.prompts.show_time(float(state.elapsed_s))
        if self._gate == "connecting" and state.step_kind == "wait_bath":
            self._gate = "equilibrating"
            self._show_gate()

    def on_prompt(self, prompt: Any) -> None:
        self.prompts.add_prompt(prompt)

    def on_event(self, kind: str, message: str, channel: int | None) -> None:
        if kind == "clot" and channel is not None:
            clot = clot_from_event(message)
            if clot is not None:
                self.grid.mark(channel, clot)
                self.results_widget.mark_live_clot(channel, clot)
        elif kind == "equilibrated":
            self._gate, self._gate_detail = "passed", message
            self._show_gate()
        elif kind == "interlock":
            suspended = "suspended" in message
            self._gate = "suspended" if suspended else "resumed"
            self._gate_detail = message
            self._show_gate()

    def _show_gate(self) -> None:
        protocol = self.protocol
        engine = self.engine
        temp = getattr(engine, "bath_temperature_c", None) if engine is not None else None
        now = f"Bath {temp:.2f} °C · " if temp is not None else ""
        if protocol is not None:
            bath = protocol.bath
            band = f"{bath.setpoint_c:.2f} ± {bath.tolerance_c:g} °C"
            hold = format_duration(bath.equilibration_s)
        else:
            band, hold = "the setpoint", "the hold time"
        texts = {
            "idle": (
                f"Equilibration gate: the bath must stay within {band} for {hold} before the "
                "loops start",
                theme.MUTED,
                "#f4f6f8",
            ),
            "connecting": ("Equilibration gate: connecting to the bath…", theme.MUTED, "#f4f6f8"),
            "equilibrating": (
                f"Equilibration gate: waiting — needs {band} for {hold}",
                "#3a2600",
                "#fde7bd",
            ),
            "passed": (
                f"Equilibration gate passed: in {band} for {hold} before the loops started",
                theme.OK,
                "#e6f2e7",
            ),
            "suspended": (
                f"Bath out of band: {self._gate_detail}",
                "#ffffff",
                theme.DANGER,
            ),
            "resumed": (self._gate_detail, theme.OK, "#e6f2e7"),
        }
        text, colour, background = texts.get(self._gate, texts["idle"])
        self.gate_label.setText(now + text if self._gate not in ("idle", "connecting") else text)
        self.gate_label.setStyleSheet(
            f"QLabel#gate {{ color: {colour}; background: {background}; padding: 4px 8px;"
            " border-radius: 4px; font-weight: 600; }"
        )

    @property
    def gate_state(self) -> str:
        return self._gate

    def finish(self, outcome: Any) -> None:
        self.refresh()
        rows = rows_from_outcome(outcome)
        if any(r.clotted is not None for r in rows):
            self.results_widget.show_rows(rows)
        else:  # no analysis (aborted, failed): keep what was seen live, add the tubes
            tubes = outcome.extra.get("tubes") if isinstance(outcome.extra, dict) else None
            if tubes is not None:
                _count_tubes(self.results_widget.rows, tubes)
                self.results_widget.show_rows(self.results_widget.rows)
        for row in rows:
            plot = self.grid.plots.get(row.loop)
            if row.clot_time_s is not None and plot is not None:
                self.grid.mark(row.loop, row.clot_time_s)
        self.prompts.close_open("never acknowledged (the run ended)")
        self._show_gate()


class LoopResultPanel(QWidget):
    """A stored loop run: motion traces with clotting markers, the loop table, the tubes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.grid = SignalPlotGrid(
            columns=2,
            y_range=MOTION_RANGE,
            y_step=MOTION_STEP,
            y_label="motion (‰)",
            marker_name="clotted",
        )
        splitter.addWidget(self.grid)
        self.tabs = QTabWidget()
        self.table = LoopTable()
        self.tabs.addTab(self.table, "Loops")
        self.tubes_table = QTableWidget(0, 6)
        self.tubes_table.setHorizontalHeaderLabels(
            ("Tube", "Loop", "Time point", "Status", "Drawn at", "Prompt")
        )
        self.tubes_table.verticalHeader().setVisible(False)
        self.tubes_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tubes_table.setAlternatingRowColors(True)
        header = self.tubes_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.tabs.addTab(self.tubes_table, "Sample tubes")
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([640, 720])
        layout.addWidget(splitter)
        self.grid.configure([(n, f"loop {n}") for n in range(1, 9)], 3600.0)

    def add_tab(self, widget: QWidget, title: str) -> None:
        if self.tabs.indexOf(widget) < 0:
            self.tabs.addTab(widget, title)

    def show_run(self, stored: StoredRun) -> None:
        labels = stored.labels
        channels = sorted(stored.traces) or sorted(labels)
        threshold = None
        for result in stored.results:
            threshold = result.get("settings", {}).get("threshold_permille", threshold)
        self.grid.configure(
            [(ch, labels.get(ch, f"loop {ch}")) for ch in channels],
            float(stored.run.get("duration_s") or 3600.0),
            threshold,
        )
        for ch, (t_s, motion) in stored.traces.items():
            self.grid.set_trace(ch, t_s, motion)
        rows = rows_from_stored(stored)
        self.table.show_rows(rows)
        for row in rows:
            if row.clot_time_s is not None:
                self.grid.mark(row.loop, row.clot_time_s)
        self._show_tubes(stored)
        self.tabs.setCurrentWidget(self.table)

    def _show_tubes(self, stored: StoredRun) -> None:
        prompts = {p["tube_id"]: p for p in stored.prompts if p.get("tube_id")}
        self.tubes_table.setRowCount(len(stored.tubes))
        for index, tube in enumerate(stored.tubes):
            prompt = prompts.get(tube["tube_id"])
            if prompt is None:
                answered = ""
            elif prompt["status"] == "acknowledged":
                answered = f"by {prompt['answered_by']}" + (
                    " (overdue)" if prompt["overdue"] else ""
                )
            else:
                answered = str(prompt["status"])
            drawn = tube.get("drawn_t_s")
            cells = (
                str(tube["tube_id"]),
                str(tube["channel"]),
                f"{tube['time_point_s'] / 60:g} min",
                str(tube["status"]),
                format_duration(drawn) if drawn is not None else "—",
                answered,
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 3 and tube["status"] != "drawn":
                    item.setForeground(QColor(theme.DANGER))
                self.tubes_table.setItem(index, col, item)
