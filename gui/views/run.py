"""Run: set up and start a run, watch it live, abort it; the result when it ends."""

from __future__ import annotations

import getpass
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.models.protocols import ProtocolDocument, ProtocolLibrary
from gui.models.station import StationModel
from gui.tasks import TaskRunner
from gui.views.assays import LIVE_PANELS
from gui.widgets.common import (
    Banner,
    ChannelParameters,
    ParameterTable,
    SimulatedBadge,
    format_duration,
    heading,
)

#: Live plots and run state are refreshed this often (ms): ~30 frames a second.
FRAME_INTERVAL_MS = 33
#: The status-bar health line is rebuilt every this many frames.
HEALTH_EVERY_FRAMES = 15
#: Event log entries kept on screen (all events are stored with the run).
MAX_LOG_ENTRIES = 2000

SPEED_CHOICES = ("1", "10", "60", "300", "600", "max")
PAUSE_UNAVAILABLE = (
    "Pause is not available for this run: the run engine cannot pause it (clotting in the "
    "cups cannot be paused either). Use Abort to stop; the data so far stays stored."
)


def parse_speed(text: str) -> float | None:
    """A speed factor > 0, or ``max``; None when the text is neither."""
    text = re.sub(r"(?<=\d)\s*[×x]$", "", text.strip().lower())
    if text in ("max", "inf"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 and math.isfinite(value) else None


def link_state(message: str) -> str | None:
    """What a "link" event says about the connection: lost, restored, failed, or None.

    The observer passes the message only; its wording is what tells the states apart.
    """
    text = message.lower()
    if "given up" in text or "could not reconnect" in text:
        return "failed"
    if "restored" in text:
        return "restored"
    if text.startswith(("link_lost", "link lost", "lost the link")):
        return "lost"
    return None


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


class RunView(QWidget):
    """Runs the protocol open in the shared document on the station model's instruments."""

    #: A run ended (run id, status).
    run_finished = Signal(int, str)
    #: The run state changed ("idle", "starting", "running", "aborting").
    state_changed = Signal(str)
    #: Instrument health for the status bar (text, simulated).
    health_changed = Signal(str, bool)
    message = Signal(str)

    def __init__(
        self,
        station: StationModel,
        library: ProtocolLibrary,
        document: ProtocolDocument,
        tasks: TaskRunner,
        store_provider: Callable[[], Any],
        open_protocol: Callable[[Path], bool],
        prepare_instruments: Callable[[Callable[[], None]], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.station = station
        self.library = library
        self.document = document
        self.tasks = tasks
        self._store_provider = store_provider
        self._open_protocol = open_protocol
        self._prepare_instruments = prepare_instruments
        self.state = "idle"
        self.engine: Any = None
        self.feed: Any = None
        self.outcome: Any = None
        self.live_panel: Any = None
        self._panels: dict[str, QWidget] = {}
        self._launched_at = 0.0
        self._frames = 0
        self._syncing = False
        self._speed = 1.0
        self._build()
        self._frame_timer = QTimer(self)
        self._frame_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._frame_timer.setInterval(FRAME_INTERVAL_MS)
        self._frame_timer.timeout.connect(self._frame)
        self.library.changed.connect(self._fill_protocols)
        self.document.changed.connect(self._document_changed)
        self.station.changed.connect(self._station_changed)
        self._fill_protocols()
        self._station_changed()
        self._document_changed()

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(18, 14, 18, 14)
        outer.setSpacing(14)

        setup = QWidget()
        setup.setFixedWidth(390)
        setup_layout = QVBoxLayout(setup)
        setup_layout.setContentsMargins(0, 0, 0, 0)
        setup_layout.setSpacing(10)
        title_row = QHBoxLayout()
        title_row.addWidget(heading("Run"))
        title_row.addStretch(1)
        self.badge = SimulatedBadge()
        title_row.addWidget(self.badge)
        setup_layout.addLayout(title_row)

        form_box = QGroupBox("Set-up")
        form = QFormLayout(form_box)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        self.protocol_combo = QComboBox()
        self.protocol_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.protocol_combo.setMinimumContentsLength(18)
        self.protocol_combo.activated.connect(self._protocol_chosen)
        form.addRow("Protocol", self.protocol_combo)
        self.lot_edit = QLineEdit()
        self.lot_edit.textChanged.connect(self._update_start)
        form.addRow("MSC lot", self.lot_edit)
        self.donor_edit = QLineEdit()
        self.donor_edit.textChanged.connect(self._update_start)
        form.addRow("Blood donor", self.donor_edit)
        self.operator_edit = QLineEdit(_login_name())
        self.operator_edit.textChanged.connect(self._update_start)
        form.addRow("Operator", self.operator_edit)
        self.simulated_check = QCheckBox("Simulated instruments")
        self.simulated_check.toggled.connect(self._simulated_toggled)
        form.addRow("", self.simulated_check)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2_000_000_000)
        form.addRow("Seed", self.seed_spin)
        self.speed_combo = QComboBox()
        self.speed_combo.setEditable(True)
        self.speed_combo.addItems(SPEED_CHOICES)
        self.speed_combo.setCurrentText("300")
        self.speed_combo.setToolTip("Times faster than real time, or max (as fast as stored).")
        self.speed_combo.currentTextChanged.connect(self._update_start)
        form.addRow("Speed (×)", self.speed_combo)
        self.faults_edit = QLineEdit()
        self.faults_edit.textChanged.connect(self._update_start)
        self.faults_edit.setPlaceholderText("none, e.g. drop=0.01,disconnect@120s")
        self.faults_edit.setToolTip(
            "Link faults the simulator injects (training, checks): drop=P, corrupt=P, "
            "stall@Ts=S, disconnect@Ts, error:COMMAND=CODE, overtemp@Ts."
        )
        form.addRow("Faults", self.faults_edit)
        setup_layout.addWidget(form_box)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self.start_button.clicked.connect(self.start_run)
        self.abort_button = QPushButton("Abort")
        self.abort_button.setObjectName("abortButton")
        self.abort_button.clicked.connect(self._abort_clicked)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self._toggle_pause)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.abort_button)
        buttons.addWidget(self.pause_button)
        setup_layout.addLayout(buttons)
        self.reason_label = QLabel("")
        self.reason_label.setObjectName("reason")
        self.reason_label.setWordWrap(True)
        setup_layout.addWidget(self.reason_label)

        progress_box = QGroupBox("Progress")
        progress_layout = QVBoxLayout(progress_box)
        self.step_label = QLabel("No run yet.")
        self.step_label.setWordWrap(True)
        progress_layout.addWidget(self.step_label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        progress_layout.addWidget(self.progress_bar)
        self.elapsed_label = QLabel("Elapsed —")
        self.remaining_label = QLabel("Remaining —")
        for label in (self.elapsed_label, self.remaining_label):
            font = label.font()
            font.setPointSize(theme.BASE_POINT_SIZE + 3)
            font.setBold(True)
            label.setFont(font)
        progress_layout.addWidget(self.elapsed_label)
        progress_layout.addWidget(self.remaining_label)
        self.wall_label = QLabel("")
        progress_layout.addWidget(self.wall_label)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        progress_layout.addWidget(self.status_label)
        setup_layout.addWidget(progress_box)
        setup_layout.addStretch(1)
        outer.addWidget(setup)

        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        self.banner = Banner()
        centre_layout.addWidget(self.banner)
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.panel_stack = QStackedWidget()
        splitter.addWidget(self.panel_stack)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(heading("Events", sub=True))
        self.event_log = QListWidget()
        self.event_log.setWordWrap(True)
        log_layout.addWidget(self.event_log)
        bottom.addWidget(log_box)
        results_box = QWidget()
        results_layout = QVBoxLayout(results_box)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.addWidget(heading("Clot parameters (n.r. = not reached)", sub=True))
        self.results_table = ParameterTable()
        results_layout.addWidget(self.results_table)
        bottom.addWidget(results_box)
        bottom.setSizes([560, 560])
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([650, 310])
        centre_layout.addWidget(splitter, 1)
        outer.addWidget(centre, 1)
        self._show_panel("thromboelastometry")

    def _show_panel(self, assay: str) -> Any:
        panel = self._panels.get(assay)
        if panel is None:
            factory = LIVE_PANELS.get(assay)
            if factory is None:
                return None
            panel = factory()
            self._panels[assay] = panel
            self.panel_stack.addWidget(panel)
        self.panel_stack.setCurrentWidget(panel)
        self.live_panel = panel
        return panel

    # -- model → view --------------------------------------------------------------------------
    def _fill_protocols(self) -> None:
        self._syncing = True
        try:
            self.protocol_combo.clear()
            for entry in self.library.entries:
                prefix = "" if entry.bundled else "★ "
                self.protocol_combo.addItem(prefix + entry.summary, str(entry.path))
                self.protocol_combo.setItemData(
                    self.protocol_combo.count() - 1,
                    f"{entry.path}\n{entry.error or entry.title}",
                    Qt.ItemDataRole.ToolTipRole,
                )
        finally:
            self._syncing = False
        self._select_document_in_combo()

    def _select_document_in_combo(self) -> None:
        path = self.document.path
        index = self.protocol_combo.findData(str(path)) if path is not None else -1
        self._syncing = True
        try:
            self.protocol_combo.setCurrentIndex(index)
        finally:
            self._syncing = False

    def _protocol_chosen(self, index: int) -> None:
        if self._syncing or index < 0:
            return
        path = self.protocol_combo.itemData(index)
        if path and not self._open_protocol(Path(path)):
            self._select_document_in_combo()

    def select_protocol(self, file_name: str) -> bool:
        """Choose a library protocol by file name (as a click in the list would)."""
        for index in range(self.protocol_combo.count()):
            if Path(self.protocol_combo.itemData(index)).name == file_name:
                self.protocol_combo.setCurrentIndex(index)
                self._protocol_chosen(index)
                return True
        return False

    def _document_changed(self) -> None:
        self._select_document_in_combo()
        protocol = self.document.protocol
        samples = getattr(protocol, "samples", None)
        lot = getattr(samples, "lot_id", None) if samples is not None else None
        donor = getattr(samples, "donor_id", None) if samples is not None else None
        self.lot_edit.setPlaceholderText(f"protocol default: {lot}" if lot else "lot ID")
        self.donor_edit.setPlaceholderText(f"protocol default: {donor}" if donor else "donor ID")
        self._update_start()

    def _station_changed(self) -> None:
        simulated = self.station.simulated
        if self.simulated_check.isChecked() != simulated:
            self.simulated_check.setChecked(simulated)
        if self.state == "idle":
            self.badge.setVisible(simulated)
        self._update_start()

    def _simulated_toggled(self, checked: bool) -> None:
        if self.state == "idle":
            self.station.set_simulated(checked)
        elif checked != self.station.simulated:
            self.simulated_check.setChecked(self.station.simulated)

    # -- start ---------------------------------------------------------------------------------
    def start_blocker(self) -> str | None:
        """Why Start is disabled now; None when a run can start."""
        if self.state != "idle":
            return None if self.state == "running" else "a run is starting or stopping"
        reason = self.document.run_blocker()
        if reason:
            return reason
        protocol = self.document.protocol
        if protocol.assay not in LIVE_PANELS:
            return (
                f"{protocol.assay} protocols cannot be run from the desktop app in this "
                "version; thromboelastometry protocols can"
            )
        problems = self.station.problems(tuple(protocol.instruments))
        if problems:
            return problems[0]
        if self.station.simulated and parse_speed(self.speed_combo.currentText()) is None:
            return f"speed {self.speed_combo.currentText()!r} is not a number > 0 or max"
        if not self.operator_edit.text().strip():
            return "enter the operator's name"
        faults = self.faults_edit.text().strip()
        if self.station.simulated and faults:
            from simulators.faults import FaultPlan

            try:
                FaultPlan.parse(faults)
            except ValueError as exc:
                return f"faults: {exc}"
        return None

    def _update_start(self) -> None:
        reason = self.start_blocker()
        idle = self.state == "idle"
        self.start_button.setEnabled(idle and reason is None)
        self.start_button.setToolTip(reason or "Start the run")
        self.reason_label.setText(f"Cannot start: {reason}" if idle and reason else "")
        self.abort_button.setEnabled(self.state in ("starting", "running"))
        can_pause = self.state == "running" and self._engine_can_pause()
        self.pause_button.setEnabled(can_pause)
        self.pause_button.setToolTip("Pause the run" if can_pause else PAUSE_UNAVAILABLE)
        for widget in (
            self.protocol_combo,
            self.lot_edit,
            self.donor_edit,
            self.operator_edit,
            self.simulated_check,
        ):
            widget.setEnabled(idle)
        self.seed_spin.setEnabled(idle and self.station.simulated)
        self.speed_combo.setEnabled(idle and self.station.simulated)
        self.faults_edit.setEnabled(idle and self.station.simulated)

    def _engine_can_pause(self) -> bool:
        engine = self.engine
        return (
            engine is not None
            and callable(getattr(engine, "pause", None))
            and callable(getattr(engine, "resume", None))
        )

    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_start()
        self.state_changed.emit(state)

    def start_run(self) -> bool:
        """Start a run of the open protocol; False (and the reason shown) if it cannot."""
        reason = self.start_blocker()
        if self.state != "idle" or reason is not None:
            if reason:
                self.reason_label.setText(f"Cannot start: {reason}")
            return False
        from gui.models.run_feed import RunFeed
        from instrument.engine import RunEngine, RunOptions
        from instrument.errors import HemocompatError

        protocol = self.document.protocol
        simulated = self.station.simulated
        speed = parse_speed(self.speed_combo.currentText()) if simulated else 1.0
        assert speed is not None
        options = RunOptions(
            operator=self.operator_edit.text().strip(),
            lot=self.lot_edit.text().strip() or None,
            donor=self.donor_edit.text().strip() or None,
            seed=self.seed_spin.value(),
            speed=speed,
            faults=(self.faults_edit.text().strip() or None) if simulated else None,
        )
        try:
            store = self._store_provider()
            station = self.station.to_station(tuple(protocol.instruments))
            feed = RunFeed()
            engine = RunEngine(protocol, station, store, options, feed)
        except (HemocompatError, ValueError, KeyError) as exc:
            self.reason_label.setText(f"Cannot start: {exc}")
            return False
        self.engine, self.feed, self.outcome = engine, feed, None
        self._speed = speed
        self._frames = 0
        self.badge.setVisible(simulated)
        self.banner.clear_message()
        self.event_log.clear()
        self.results_table.show_parameters([])
        self.progress_bar.setValue(0)
        self.status_label.setText("")
        self.status_label.setStyleSheet("")
        self.step_label.setText("Preparing the instruments…")
        panel = self._show_panel(protocol.assay)
        panel.start(engine, protocol)
        mode = f"SIMULATED, speed {self.speed_combo.currentText()}" if simulated else "measured"
        self._log("status", f"starting {protocol.id} v{protocol.version} ({mode})")
        self._set_state("starting")
        self._prepare_instruments(self._launch)
        return True

    def _launch(self) -> None:
        if self.state != "starting" or self.engine is None:
            return
        engine, store = self.engine, self._store_provider()

        def work() -> tuple[list[int], Any]:
            stale = store.mark_interrupted_runs()
            return stale, engine.run()

        self.tasks.submit("run", work, self._run_done, self._run_crashed)
        self._launched_at = time.monotonic()
        self._set_state("running")
        self._frame_timer.start()

    # -- abort / pause ---------------------------------------------------------------------------
    def abort(self, reason: str = "aborted by the operator") -> None:
        if self.state == "starting":
            self.engine = None
            self._log("status", "start cancelled")
            self.step_label.setText("Start cancelled.")
            self._set_state("idle")
        elif self.state == "running" and self.engine is not None:
            self.engine.abort(reason)
            self._log("status", f"aborting: {reason}")
            self.step_label.setText("Aborting: stopping the channels, keeping the data…")
            self._set_state("aborting")

    def _abort_clicked(self) -> None:
        self.abort()

    def _toggle_pause(self) -> None:
        engine = self.engine
        if not self._engine_can_pause():
            return
        if self.pause_button.text() == "Pause":
            engine.pause()
            self.pause_button.setText("Resume")
        else:
            engine.resume()
            self.pause_button.setText("Pause")

    @property
    def running(self) -> bool:
        return self.state != "idle"

    # -- frames ----------------------------------------------------------------------------------
    def _frame(self) -> None:
        """~30 Hz: drain the observer inbox, refresh the live panel, progress and health."""
        feed, engine = self.feed, self.engine
        if feed is None or engine is None:
            return
        state = feed.drain()
        for event in state.events:
            self._on_event(event.kind, event.message, event.channel, event.wall_time)
        if state.dropped_events:
            self._log("warning", f"{state.dropped_events} events not shown (all are stored)")
        for prompt in state.prompts:
            self._log("prompt", str(getattr(prompt, "message", prompt)))
        if self.live_panel is not None:
            self.live_panel.refresh()
        self._show_progress(state)
        self._frames += 1
        if self._frames % HEALTH_EVERY_FRAMES == 1:
            self._emit_health()

    def _show_progress(self, state: Any) -> None:
        engine = self.engine
        steps = len(engine.plan) if engine is not None else 0
        if state.step_index >= 0:
            self.step_label.setText(
                f"Step {state.step_index + 1} of {steps}: {state.step_description}"
            )
        duration = float(getattr(engine.protocol, "duration_s", 0.0) or 0.0)
        measured = max(0.0, min(state.elapsed_s, duration))
        self.progress_bar.setValue(round(1000 * max(0.0, min(1.0, state.fraction))))
        wall = time.monotonic() - self._launched_at
        self.elapsed_label.setText(
            f"Elapsed {format_duration(measured)} of {format_duration(duration)}"
        )
        remaining = max(0.0, duration - measured)
        self.remaining_label.setText(f"Remaining {format_duration(remaining)}")
        if self._speed == 1.0:
            self.wall_label.setText("")
        elif math.isfinite(self._speed):
            self.wall_label.setText(
                f"Simulated at {self._speed:g}×: wall clock {format_duration(wall)}, "
                f"≈ {format_duration(remaining / self._speed)} to go"
            )
        else:
            self.wall_label.setText(f"Simulated at max speed: wall clock {format_duration(wall)}")

    def health_text(self) -> tuple[str, bool]:
        """Instrument health during a run: identity, temperature, link counters."""
        engine = self.engine
        if engine is None:
            return "", False
        parts = []
        for conn in list(getattr(engine, "connections", {}).values()):
            stats = getattr(conn.driver, "stats", None)
            text = f"{conn.role} on {conn.resource}"
            if stats is not None:
                text += (
                    f" · frames {stats.frames_ok} · corrupt {stats.corrupt} · gaps {stats.gaps}"
                    f" · lost {stats.data_lost}"
                )
            parts.append(text)
        temperature = getattr(engine, "cup_temperature_c", None)
        if temperature is not None:
            parts.append(f"cups {temperature:.2f} °C")
        return "   ".join(parts) or "connecting…", bool(engine.simulated)

    def _emit_health(self) -> None:
        text, simulated = self.health_text()
        self.health_changed.emit(text, simulated)

    # -- events --------------------------------------------------------------------------------
    def _on_event(
        self, kind: str, message: str, channel: int | None, wall_time: float | None = None
    ) -> None:
        self._log(kind, message, channel, wall_time)
        if self.live_panel is not None:
            self.live_panel.on_event(kind, message, channel)
        if kind == "link":
            self._link_event(message)

    def _link_event(self, message: str) -> None:
        """Banner for the link: lost (red), restored (amber, stays as a record), given up."""
        state = link_state(message)
        if state == "lost":
            self.banner.show_message(
                f"Connection to the instrument lost — {message} Check the cable and the "
                "instrument; data received so far is stored."
            )
        elif state == "restored":
            self.banner.show_message(f"The connection was lost and is back: {message}", True)
        elif state == "failed":
            self.banner.show_message(message)

    def _log(
        self, kind: str, message: str, channel: int | None = None, wall_time: float | None = None
    ) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(wall_time or time.time()))
        where = f" ch{channel}" if channel else ""
        item = QListWidgetItem(f"{stamp}  {kind}{where}: {message}")
        item.setForeground(QColor(theme.EVENT_COLOURS.get(kind, "#222222")))
        if kind == "ct":
            font = item.font()
            font.setBold(True)
            item.setFont(font)
        self.event_log.addItem(item)
        while self.event_log.count() > MAX_LOG_ENTRIES:
            self.event_log.takeItem(0)
        self.event_log.scrollToBottom()

    # -- end ----------------------------------------------------------------------------------
    def _run_done(self, result: tuple[list[int], Any]) -> None:
        stale, outcome = result
        self._frame_timer.stop()
        self._frame()  # the last events and samples
        self._emit_health()
        if stale:
            self._log(
                "warning",
                f"run(s) {', '.join(map(str, stale))} had been left "
                "unfinished by a program that stopped; they are marked interrupted",
            )
        self.outcome = outcome
        if self.live_panel is not None:
            self.live_panel.finish(outcome)
        ok = outcome.status == "completed"
        colour = theme.OK if ok else theme.DANGER
        sim = " — SIMULATED" if outcome.simulated else ""
        self.status_label.setText(
            f"Run {outcome.run_id}: {outcome.status}{sim}"
            + (f"\n{outcome.detail}" if outcome.detail else "")
        )
        self.status_label.setStyleSheet(f"color: {colour}; font-weight: 600;")
        if ok:
            self.progress_bar.setValue(1000)
            self.step_label.setText("Finished: parameters computed and stored.")
        else:
            self.step_label.setText(f"Ended: {outcome.status}.")
        self.results_table.show_parameters(
            [
                ChannelParameters(c.channel, c.label, dict(c.parameters), dict(c.notes))
                for c in outcome.channels
                if c.parameters
            ]
        )
        self._set_state("idle")
        self.badge.setVisible(self.station.simulated)
        self.run_finished.emit(int(outcome.run_id), str(outcome.status))

    def _run_crashed(self, exc: BaseException) -> None:
        self._frame_timer.stop()
        self._frame()
        self.status_label.setText(f"The run could not run: {exc}")
        self.status_label.setStyleSheet(f"color: {theme.DANGER}; font-weight: 600;")
        self._log("error", str(exc))
        self._set_state("idle")
        self.run_finished.emit(-1, "failed")

    def stop_timers(self) -> None:
        self._frame_timer.stop()
