"""Assay-specific panels of the Run and Results views, chosen by the protocol's ``assay``.

The Run view hosts one live panel per assay and the Results view one result panel; adding
an assay (ELISA: plate and standard curve) means adding its panels to :data:`LIVE_PANELS` and
:data:`RESULT_PANELS`. Thromboelastometry is here; the Chandler loop panels (motion per
loop, bath temperature and gate, prompts) are in :mod:`gui.views.loop_panel`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QTabWidget, QVBoxLayout, QWidget

from gui.views.loop_panel import LoopLivePanel, LoopResultPanel
from gui.widgets.common import ChannelParameters, ParameterTable
from gui.widgets.trace_plots import TracePlotGrid

_CT_IN_MESSAGE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*s\s*$")


def clotting_time_s(parameters: Mapping[str, Any]) -> float | None:
    """CT in seconds from a result (ROTEM ``CT_s`` or TEG ``R_min``); None if not reached."""
    if parameters.get("CT_s") is not None:
        return float(parameters["CT_s"])
    if parameters.get("R_min") is not None:
        return float(parameters["R_min"]) * 60.0
    return None


def ct_from_event(message: str) -> float | None:
    """The CT of a live "ct" event ("CT reached on channel 3: 267.4 s")."""
    match = _CT_IN_MESSAGE.search(message)
    return float(match.group(1)) if match else None


class LivePanel(Protocol):
    """What the Run view asks of an assay's live panel (all calls on the GUI thread)."""

    def start(self, engine: Any, protocol: Any) -> None:
        """A run of ``protocol`` begins on ``engine``: set up plots, reset data."""

    def refresh(self) -> None:
        """Show what is new (~30 times a second)."""

    def on_event(self, kind: str, message: str, channel: int | None) -> None:
        """An observer event of the run."""

    def finish(self, outcome: Any) -> None:
        """The run ended."""

    def preview(self, protocol: Any, channels: Sequence[Any] | None) -> None:
        """Before a run: the set-up of ``protocol`` with its resolved ``channels`` (None: the
        lot/donor set-up does not resolve)."""

    def show_state(self, state: Any) -> None:
        """The run's step and protocol time (a drained ``FeedState``), once per frame."""

    def on_prompt(self, prompt: Any) -> None:
        """The run asks the operator to do something (``instrument.runbase.Prompt``)."""

    #: Shown by the Run view under the plots instead of its parameter table (None: that
    #: table, filled from the outcome's channel parameters).
    results_widget: QWidget | None
    results_title: str


class TemLivePanel(QWidget):
    """Thromboelastometry: the four channels' amplitude traces with CT markers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.grid = TracePlotGrid(columns=2)
        layout.addWidget(self.grid)
        self._live: Mapping[int, Any] = {}
        self.grid.configure([(c, f"channel {c}") for c in (1, 2, 3, 4)], 3600.0)
        self.results_widget: QWidget | None = None
        self.results_title = "Clot parameters (n.r. = not reached)"

    def preview(self, protocol: Any, channels: Sequence[Any] | None) -> None:
        """The plots keep the last run until the next one starts."""

    def show_state(self, state: Any) -> None:
        """Nothing beyond the traces: progress is the Run view's."""

    def on_prompt(self, prompt: Any) -> None:
        """Thromboelastometry runs raise no prompts; the Run view logs any."""

    def start(self, engine: Any, protocol: Any) -> None:
        self.grid.configure([(c.channel, c.label) for c in engine.channels], protocol.duration_s)
        self._live = engine.live

    def refresh(self) -> None:
        self.grid.refresh(self._live)

    def on_event(self, kind: str, message: str, channel: int | None) -> None:
        if kind == "ct" and channel is not None:
            ct = ct_from_event(message)
            if ct is not None:
                self.grid.mark_ct(channel, ct)

    def finish(self, outcome: Any) -> None:
        self.refresh()
        for result in getattr(outcome, "channels", []):
            ct = clotting_time_s(result.parameters)
            plot = self.grid.plots.get(result.channel)
            if ct is not None and plot is not None and plot.ct_s is None:
                self.grid.mark_ct(result.channel, ct)


@dataclass
class StoredRun:
    """A run as read from storage for the Results view."""

    run: dict[str, Any]
    results: list[dict[str, Any]]
    events: list[dict[str, Any]]
    traces: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = field(default_factory=dict)
    #: Sample tubes and operator prompts of the run (loop runs).
    tubes: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def labels(self) -> dict[int, str]:
        return {c["channel"]: c["label"] for c in self.run.get("channels", [])}

    def parameter_columns(self) -> list[ChannelParameters]:
        labels = self.labels
        return [
            ChannelParameters(
                r["channel"], labels.get(r["channel"], "?"), r["parameters"], r["notes"]
            )
            for r in sorted(self.results, key=lambda r: r["channel"])
        ]


def load_stored_run(store: Any, run_id: int) -> StoredRun:
    """Everything the Results view shows of a run (blocking: call on a worker thread)."""
    run = store.get_run(run_id)
    stored = StoredRun(run, store.latest_results(run_id), store.events(run_id))
    for channel in run.get("channels", []):
        _seq, t_ms, values = store.channel_samples(run_id, channel["source"], channel["channel"])
        stored.traces[channel["channel"]] = (
            np.asarray(t_ms, dtype=np.float64) / 1000.0,
            np.asarray(values, dtype=np.float64),
        )
    if run.get("assay") == "chandler-loop":
        stored.tubes = store.tubes(run_id)
        stored.prompts = store.prompts(run_id)
    return stored


class ResultPanel(Protocol):
    """What the Results view asks of an assay's result panel."""

    def show_run(self, stored: StoredRun) -> None:
        """Show a stored run."""

    def add_tab(self, widget: QWidget, title: str) -> None:
        """Host a page of the view (events) next to the assay's own pages."""


class TemResultPanel(QWidget):
    """Thromboelastometry results: the stored traces re-plotted, parameters and events."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.grid = TracePlotGrid(columns=2, fill=True)
        splitter.addWidget(self.grid)
        self.tabs = QTabWidget()
        self.table = ParameterTable()
        self.tabs.addTab(self.table, "Clot parameters")
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([800, 560])
        layout.addWidget(splitter)
        self.grid.configure([(c, f"channel {c}") for c in (1, 2, 3, 4)], 3600.0)

    def add_tab(self, widget: QWidget, title: str) -> None:
        """Another page next to the parameters (the Results view's event list)."""
        if self.tabs.indexOf(widget) < 0:
            self.tabs.addTab(widget, title)

    def show_run(self, stored: StoredRun) -> None:
        labels = stored.labels
        channels = sorted(stored.traces) or sorted(labels)
        self.grid.configure(
            [(ch, labels.get(ch, f"channel {ch}")) for ch in channels],
            float(stored.run.get("duration_s") or 3600.0),
        )
        for ch, (t_s, amp) in stored.traces.items():
            self.grid.set_trace(ch, t_s, amp)
        columns = stored.parameter_columns()
        self.table.show_parameters(columns)
        self.tabs.setCurrentWidget(self.table)
        for column in columns:
            ct = clotting_time_s(column.parameters)
            if ct is not None:
                self.grid.mark_ct(column.channel, ct)


#: assay → live panel factory (Run view).
LIVE_PANELS: dict[str, Callable[[], QWidget]] = {
    "thromboelastometry": TemLivePanel,
    "chandler-loop": LoopLivePanel,
}
#: assay → result panel factory (Results view).
RESULT_PANELS: dict[str, Callable[[], QWidget]] = {
    "thromboelastometry": TemResultPanel,
    "chandler-loop": LoopResultPanel,
}
