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
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.models.protocols import ProtocolDocument, ProtocolLibrary
from gui.models.session import AppUser, open_bench_user
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
from instrument.compliance.users import TECHNICIAN

#: Live plots and run state are refreshed this often (ms): ~30 frames a second.
FRAME_INTERVAL_MS = 33
#: The status-bar health line is rebuilt every this many frames.
HEALTH_EVERY_FRAMES = 15
#: Event log entries kept on screen (all events are stored with the run).
MAX_LOG_ENTRIES = 2000

SPEED_CHOICES = ("1", "10", "60", "300", "600", "max")
PAUSE_TOOLTIP = (
    "Pause holds the run before its next step (more time to prepare a cup or the loops); a "
    "step under way goes on — blood keeps clotting, so a measurement or a sampling schedule "
    "is never paused. Resume lets the next step start. The hold is stored with the run."
)
#: What Pause does in a loop run (see docs/gui.md).
PAUSE_TOOLTIP_LOOP = (
    "Pause holds the run before its next step (before the loops start turning, for "
    "example). Once the loops turn, the blood keeps clotting: the sampling schedule is never "
    "paused, and the bath interlock holds the timed steps by itself while the bath is outside "
    "its band. Resume lets the next step start."
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
        self.user: AppUser = open_bench_user()
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
        #: Prompts whose acknowledgement is being recorded on a worker.
        self._acknowledging: set[int] = set()
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
        self._form_box = form_box
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
        self.lot_edit.textChanged.connect(self._set_up_changed)
        form.addRow("MSC lot", self.lot_edit)
        self.donor_edit = QLineEdit()
        self.donor_edit.textChanged.connect(self._set_up_changed)
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
        # The set-up, and for assays with operator prompts (loop runs) the prompts beside it:
        # during such a run the prompts are in front, where the Start/Abort buttons are.
        self.setup_tabs = QTabWidget()
        self.setup_tabs.addTab(form_box, "Set-up")
        self.setup_tabs.tabBar().setVisible(False)
        setup_layout.addWidget(self.setup_tabs)

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
        self.step_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        # Room for a loop run's three-line step, so the box never clips it.
        self.step_label.setMinimumHeight(3 * self.step_label.fontMetrics().lineSpacing() + 4)
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
        self.status_label.setMinimumHeight(2 * self.status_label.fontMetrics().lineSpacing() + 4)
        progress_layout.addWidget(self.status_label)
        # Never squeezed by the prompts above it.
        progress_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        setup_layout.addWidget(progress_box)
        setup_layout.addStretch(1)
        self._setup_layout = setup_layout
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
        self.results_heading = heading("Clot parameters (n.r. = not reached)", sub=True)
        self.results_heading.setWordWrap(True)
        results_layout.addWidget(self.results_heading)
        self.results_stack = QStackedWidget()
        self.results_table = ParameterTable()
        self.results_stack.addWidget(self.results_table)
        results_layout.addWidget(self.results_stack)
        bottom.addWidget(results_box)
        bottom.setSizes([560, 560])
        self._bottom = bottom
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
            results_widget = getattr(panel, "results_widget", None)
            if results_widget is not None:
                self.results_stack.addWidget(results_widget)
            prompts = getattr(panel, "prompts", None)
            if prompts is not None:
                prompts.acknowledge_requested.connect(self._acknowledge_prompt)
                prompts.open_count_changed.connect(
                    lambda count, page=prompts: self._prompt_count_changed(page, count)
                )
                self.setup_tabs.addTab(prompts, "Prompts")
        self.panel_stack.setCurrentWidget(panel)
        self.live_panel = panel
        self._show_results_widget(panel)
        self._show_prompts_tab(getattr(panel, "prompts", None))
        return panel

    def _show_prompts_tab(self, prompts: QWidget | None) -> None:
        """The Prompts tab of the panel's assay beside Set-up (no tab bar without one)."""
        for index in range(1, self.setup_tabs.count()):
            self.setup_tabs.setTabVisible(index, self.setup_tabs.widget(index) is prompts)
        self.setup_tabs.tabBar().setVisible(prompts is not None)
        self._form_box.setTitle("" if prompts is not None else "Set-up")  # the tab says it
        layout = self._setup_layout
        layout.setStretchFactor(self.setup_tabs, 1 if prompts is not None else 0)
        layout.setStretch(layout.count() - 1, 0 if prompts is not None else 1)
        if prompts is None:
            self.setup_tabs.setCurrentIndex(0)

    def _prompt_count_changed(self, page: QWidget, count: int) -> None:
        index = self.setup_tabs.indexOf(page)
        if index < 0:
            return
        self.setup_tabs.setTabText(index, f"Prompts ({count} open)" if count else "Prompts")
        if count and self.state != "idle":
            self.setup_tabs.setCurrentIndex(index)

    def _show_results_widget(self, panel: Any) -> None:
        """The panel's own result table under the plots, or the parameter table."""
        widget = getattr(panel, "results_widget", None)
        self.results_stack.setCurrentWidget(widget if widget is not None else self.results_table)
        self.results_heading.setText(
            getattr(panel, "results_title", "") or "Clot parameters (n.r. = not reached)"
        )
        self._fit_results_width()

    def _fit_results_width(self) -> None:
        """A panel's table with a row per loop gets the width of its columns (the event log
        keeps at least 26 %); the parameter table and the log share the width."""
        widget = self.results_stack.currentWidget()
        total = sum(self._bottom.sizes()) or 1120
        share = 0.5
        if isinstance(widget, QTableWidget) and widget is not self.results_table:
            widget.resizeColumnsToContents()
            header = widget.horizontalHeader()
            needed = header.length() + widget.verticalScrollBar().sizeHint().width() + 8
            share = min(0.74, max(0.5, needed / total))
        self._bottom.setSizes([round(total * (1 - share)), round(total * share)])

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
        self._set_up_changed()

    def _set_up_changed(self) -> None:
        """Protocol, lot or donor changed: preview the set-up in the assay's panel."""
        self._update_start()
        if self.state != "idle":
            return
        protocol = self.document.protocol
        assay = getattr(protocol, "assay", None)
        if assay not in LIVE_PANELS or self.document.run_blocker():
            return
        try:
            channels = protocol.resolved_channels(
                lot=self.lot_edit.text().strip() or None,
                donor=self.donor_edit.text().strip() or None,
            )
        except ValueError:
            channels = None
        panel = self._show_panel(assay)
        preview = getattr(panel, "preview", None)
        if preview is not None:
            preview(protocol, channels)
            self._show_results_widget(panel)
        self.setup_tabs.setCurrentIndex(0)

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
    def set_user(self, user: AppUser) -> None:
        """A logged-in user is the operator of the runs they start (not editable)."""
        self.user = user
        if not user.open_bench:
            self.operator_edit.setText(user.username)
            self.operator_edit.setReadOnly(True)
            self.operator_edit.setToolTip(f"Logged in as {user.label}")
        self._update_start()

    def start_blocker(self) -> str | None:
        """Why Start is disabled now; None when a run can start."""
        if self.state != "idle":
            return None if self.state == "running" else "a run is starting or stopping"
        refusal = self.user.refusal("Starting a run", TECHNICIAN)
        if refusal:
            return refusal
        reason = self.document.run_blocker()
        if reason:
            return reason
        protocol = self.document.protocol
        if protocol.assay not in LIVE_PANELS:
            return (
                f"{protocol.assay} protocols cannot be run from the desktop app in this "
                f"version; {' and '.join(a.replace('-', ' ') for a in LIVE_PANELS)} protocols can"
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
        can_pause = self.state == "running" and self.engine is not None
        self.pause_button.setEnabled(can_pause)
        if not can_pause:
            self.pause_button.setText("Pause")
        loop = getattr(self.document.protocol, "assay", None) == "chandler-loop"
        if self.engine is not None:
            loop = getattr(self.engine.protocol, "assay", None) == "chandler-loop"
        self.pause_button.setToolTip(PAUSE_TOOLTIP_LOOP if loop else PAUSE_TOOLTIP)
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
        from instrument.loop_engine import LoopRunEngine

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
            engine: Any
            if protocol.assay == "chandler-loop":
                engine = LoopRunEngine(protocol, station, store, options, feed)
            else:
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
        self._acknowledging.clear()
        self.progress_bar.setValue(0)
        self.status_label.setText("")
        self.status_label.setStyleSheet("")
        self.step_label.setText("Preparing the instruments…")
        panel = self._show_panel(protocol.assay)
        panel.start(engine, protocol)
        prompts = getattr(panel, "prompts", None)
        if prompts is not None:
            self.setup_tabs.setCurrentWidget(prompts)
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
        if engine is None or self.state != "running":
            return
        if engine.held:
            engine.release()
            self.pause_button.setText("Pause")
        else:
            engine.hold("paused by the operator in the app")
            self.pause_button.setText("Resume")

    # -- prompts --------------------------------------------------------------------------------
    def _acknowledge_prompt(self, prompt_id: int) -> None:
        """Done clicked: the engine records the acknowledgement (store writes) on a worker."""
        engine = self.engine
        prompts = getattr(self.live_panel, "prompts", None)
        if engine is None or prompts is None or not callable(getattr(engine, "acknowledge", None)):
            return
        operator = self.operator_edit.text().strip() or None
        self._acknowledging.add(prompt_id)

        def work() -> float:
            t_s = float(engine.device_time_s())
            engine.acknowledge(prompt_id, by=operator)
            return t_s

        def done(t_s: float) -> None:
            self._acknowledging.discard(prompt_id)
            prompts.mark_done(prompt_id, t_s, operator or "operator")

        def failed(exc: BaseException) -> None:
            self._acknowledging.discard(prompt_id)
            prompts.mark_failed(prompt_id, str(exc))
            self._log("warning", f"prompt {prompt_id} could not be recorded as done: {exc}")

        self.tasks.submit(f"ack-{prompt_id}", work, done, failed)

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
        panel = self.live_panel
        for prompt in state.prompts:
            self._log("prompt", str(getattr(prompt, "message", prompt)))
            if panel is not None and hasattr(panel, "on_prompt"):
                panel.on_prompt(prompt)
        if panel is not None:
            if hasattr(panel, "show_state"):
                panel.show_state(state)
            panel.refresh()
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
        bath = getattr(engine, "bath_temperature_c", None)
        if bath is not None:
            parts.append(f"bath {bath:.2f} °C")
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
        if getattr(self.live_panel, "results_widget", None) is None:
            self.results_table.show_parameters(
                [
                    ChannelParameters(c.channel, c.label, dict(c.parameters), dict(c.notes))
                    for c in outcome.channels
                    if c.parameters
                ]
            )
        else:
            self._fit_results_width()
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
