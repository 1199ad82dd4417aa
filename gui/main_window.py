"""The main window: a sidebar with the views (Instruments … Lots) and a status bar."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from gui import theme
from gui.gc_control import GuiThreadCollector
from gui.models.protocols import ProtocolDocument, ProtocolLibrary
from gui.models.session import AppUser, open_bench_user
from gui.models.station import StationModel
from gui.paths import AppPaths, load_settings, save_settings
from gui.qt_compat import guard_singleton_refcounts
from gui.tasks import TaskRunner
from gui.views.instruments import InstrumentsView
from gui.views.lots import LotsView
from gui.views.protocols import ProtocolsView
from gui.views.results import ResultsView
from gui.views.run import RunView
from gui.widgets.common import SimulatedBadge
from gui.widgets.trace_plots import configure_pyqtgraph

log = logging.getLogger("hemocompat.gui")

VIEWS = ("Instruments", "Protocols", "Run", "Results", "Lots")
DEFAULT_PROTOCOL = "natem-msc-dose-series.yaml"
CLOSE_QUESTION = (
    "A run is in progress. Closing the window aborts it: the channels are stopped, the data "
    "measured so far is kept and the run is marked aborted.\n\nAbort the run and close?"
)


class MainWindow(QMainWindow):
    """The desktop app. Pass ``store`` (or ``db``) and ``paths`` to use other locations.

    ``confirm(title, text) -> bool`` and ``choose_directory() -> Path | None`` default to
    dialogs; tests pass functions instead.
    """

    def __init__(
        self,
        store: Any = None,
        db: str | Path | None = None,
        paths: AppPaths | None = None,
        simulated: bool | None = None,
        confirm: Callable[[str, str], bool] | None = None,
        choose_directory: Callable[[], Path | None] | None = None,
        user: AppUser | None = None,
        parent: QWidget | None = None,
    ) -> None:
        guard_singleton_refcounts()
        super().__init__(parent)
        configure_pyqtgraph()
        self.paths = paths or AppPaths.default()
        self._store = store
        self._owns_store = store is None
        self._db = db
        self._store_lock = threading.Lock()
        self.confirm = confirm or self._ask
        self._choose_directory = choose_directory or self._ask_directory
        self._close_after_run = False
        self._shut_down = False
        self.settings = load_settings(self.paths)
        #: Who uses the app; every audit entry written meanwhile is attributed to them.
        self.user = user or open_bench_user()
        self._acting = self.user.acting()
        self._acting.__enter__()

        self.collector = GuiThreadCollector(self)
        self.tasks = TaskRunner(self)
        self.station = StationModel()
        station_problem = self.station.restore(self.paths.station_file)
        self.station.simulated = bool(
            simulated if simulated is not None else self.settings.get("simulated", False)
        )
        self.station.changed.connect(self._station_changed)
        self.library = ProtocolLibrary(self.paths.protocol_dir)
        self.document = ProtocolDocument()

        self.setWindowTitle("hemocompat — hemocompatibility testing")
        self.resize(1600, 1000)
        self.setMinimumSize(1200, 760)
        theme.apply_theme(self)
        self._build()
        self.library.refresh()
        self._open_initial_protocol()
        self._restore_run_setup()
        self._apply_user()
        self._station_changed()
        if station_problem:
            self.show_message(station_problem)
        self.tasks.submit("open-store", self.store, self._store_opened, self._store_failed)
        self.tasks.submit("warm-up", _warm_up)

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.addItems(VIEWS)
        self.sidebar.setFixedWidth(190)
        layout.addWidget(self.sidebar)
        self.stack = QStackedWidget()
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.instruments_view = InstrumentsView(
            self.station, self.tasks, self.paths.station_file, self._save_station
        )
        self.protocols_view = ProtocolsView(self.library, self.document, self.confirm)
        self.run_view = RunView(
            self.station,
            self.library,
            self.document,
            self.tasks,
            self.store,
            self.protocols_view.open_path,
            self._prepare_instruments,
        )
        self.results_view = ResultsView(self.tasks, self.store, self._choose_directory)
        self.lots_view = LotsView(self.tasks, self.store)
        for view in (
            self.instruments_view,
            self.protocols_view,
            self.run_view,
            self.results_view,
            self.lots_view,
        ):
            self.stack.addWidget(view)
            view.message.connect(self.show_message)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.sidebar.setCurrentRow(VIEWS.index("Run"))
        for index in range(len(VIEWS)):
            shortcut = QShortcut(QKeySequence(f"Ctrl+{index + 1}"), self)
            shortcut.activated.connect(lambda i=index: self.sidebar.setCurrentRow(i))

        self.run_view.run_finished.connect(self._run_finished)
        self.run_view.state_changed.connect(self._run_state_changed)
        self.run_view.health_changed.connect(self._show_health)
        self.instruments_view.connection_changed.connect(self._connection_changed)

        status = self.statusBar()
        self.health_label = QLabel("No instrument connected")
        self.run_state_label = QLabel("Idle")
        self.status_badge = SimulatedBadge()
        self.user_label = QLabel(self.user.label)
        self.user_label.setObjectName("userLabel")
        status.addPermanentWidget(self.user_label)
        status.addPermanentWidget(self.health_label)
        status.addPermanentWidget(self.run_state_label)
        status.addPermanentWidget(self.status_badge)

    def show_view(self, name: str) -> None:
        self.sidebar.setCurrentRow(VIEWS.index(name))

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 15000)

    # -- store ---------------------------------------------------------------------------------
    def store(self) -> Any:
        """The results database, opened on first use (thread-safe)."""
        with self._store_lock:
            if self._store is None:
                from instrument.storage import Store

                self._store = Store(self._db)
            return self._store

    def _store_opened(self, _store: Any) -> None:
        self.results_view.refresh()

    def _store_failed(self, exc: BaseException) -> None:
        self.show_message(f"The results database cannot be opened: {exc}")

    # -- protocols and settings ------------------------------------------------------------------
    def _open_initial_protocol(self) -> None:
        wanted = self.settings.get("protocol")
        entry = self.library.entry(Path(wanted)) if isinstance(wanted, str) else None
        if entry is None:
            entry = self.library.find(DEFAULT_PROTOCOL)
        if entry is None and self.library.entries:
            entry = self.library.entries[0]
        if entry is not None:
            self.protocols_view.open_entry(entry)

    def _restore_run_setup(self) -> None:
        view = self.run_view
        operator = self.settings.get("operator")
        if isinstance(operator, str) and operator:
            view.operator_edit.setText(operator)
        speed = self.settings.get("speed")
        if isinstance(speed, str) and speed:
            view.speed_combo.setCurrentText(speed)
        seed = self.settings.get("seed")
        if isinstance(seed, int):
            view.seed_spin.setValue(seed)

    def _apply_user(self) -> None:
        """Roles decide what the views allow; a logged-in user is the operator of runs."""
        self.protocols_view.user = self.user
        self.protocols_view.on_saved = self._record_version
        self.run_view.set_user(self.user)
        self.lots_view.user = self.user

    def _record_version(self, path: Path, previous_text: str, previous_source: str) -> None:
        from instrument.compliance.protocol_versions import record_saved_version

        def record() -> object:
            return record_saved_version(
                self.store(), path, previous_text=previous_text, previous_path=previous_source
            )

        self.tasks.submit(
            "record-version",
            record,
            on_error=lambda exc: self.show_message(
                f"Saved {path.name}, but recording the version in the database failed: {exc}"
            ),
        )

    def _save_settings(self) -> None:
        view = self.run_view
        self.settings.update(
            {
                "simulated": self.station.simulated,
                "operator": view.operator_edit.text().strip(),
                "speed": view.speed_combo.currentText(),
                "seed": view.seed_spin.value(),
                "protocol": str(self.document.path) if self.document.path else None,
            }
        )
        try:
            save_settings(self.paths, self.settings)
        except OSError as exc:
            log.warning("could not save the app settings: %s", exc)

    def _save_station(self) -> None:
        try:
            self.station.save(self.paths.station_file)
        except OSError as exc:
            self.show_message(f"Could not save the station to {self.paths.station_file}: {exc}")

    def _station_changed(self) -> None:
        self._save_station()
        self._update_badges()
        if not self.instruments_view.connections and not self.run_view.running:
            self.health_label.setText(
                "Simulated instruments" if self.station.simulated else "No instrument connected"
            )

    # -- instruments and run ----------------------------------------------------------------------
    def _prepare_instruments(self, then: Callable[[], None]) -> None:
        """Hand the instruments to the run: close the Instruments view's connections first."""
        roles = list(self.instruments_view.connections)
        if not roles:
            then()
            return
        remaining = set(roles)

        def closed(role: str) -> None:
            remaining.discard(role)
            if not remaining:
                then()

        for role in roles:
            self.instruments_view.disconnect_role(role, partial(closed, role))

    def _connection_changed(self, role: str, conn: Any) -> None:
        if self.run_view.running:
            return
        if conn is None:
            self.health_label.setText(f"{role}: not connected")
        else:
            ident, health = conn.identity, conn.health
            temp = f" · {health.temperature_c:.2f} °C" if health.temperature_c is not None else ""
            link = health.link
            counters = (
                f" · corrupt {link.get('corrupt', 0)} · gaps {link.get('gaps', 0)}" if link else ""
            )
            self.health_label.setText(
                f"{role}: {ident.model} {ident.serial} on {conn.resource}{temp}{counters}"
            )
        self._update_badges()

    def _show_health(self, text: str, simulated: bool) -> None:
        self.health_label.setText(text)
        self._update_badges(simulated)

    def _update_badges(self, run_simulated: bool | None = None) -> None:
        simulated = self.station.simulated or any(
            c.simulated for c in self.instruments_view.connections.values()
        )
        if self.run_view.running and run_simulated is not None:
            simulated = run_simulated
        self.status_badge.setVisible(simulated)

    def _run_state_changed(self, state: str) -> None:
        labels = {
            "idle": "Idle",
            "starting": "Starting…",
            "running": "Running",
            "aborting": "Aborting…",
        }
        self.run_state_label.setText(labels.get(state, state))
        self._update_badges(self.station.simulated if state != "idle" else None)

    def _run_finished(self, run_id: int, status: str) -> None:
        self.run_state_label.setText(f"Last run {run_id}: {status}" if run_id >= 0 else "Idle")
        self._station_changed()
        if run_id >= 0:
            self.results_view.refresh(select_run=run_id)
        if self._close_after_run:
            QTimer.singleShot(0, self.close)

    # -- closing -------------------------------------------------------------------------------
    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _ask_directory(self) -> Path | None:
        chosen = QFileDialog.getExistingDirectory(self, "Export the run as CSV files into…")
        return Path(chosen) if chosen else None

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self.run_view.running:
            if self._close_after_run:
                event.ignore()  # already aborting; the window closes when the run has ended
                return
            if not self.confirm("Abort the run?", CLOSE_QUESTION):
                event.ignore()
                return
            self.run_view.abort("aborted: the window was closed during the run")
            if self.run_view.running:
                self._close_after_run = True
                self.show_message("Aborting the run; the window closes when it has stopped…")
                event.ignore()
                return
        self.shutdown()
        event.accept()

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop timers, abort a run, close instruments, join the workers (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self._save_settings()
        self.run_view.stop_timers()
        self.instruments_view.stop_timers()
        engine = self.run_view.engine
        if self.run_view.running and engine is not None:
            engine.abort("aborted: the program was closed")
        self.tasks.shutdown(timeout)
        self.instruments_view.close_all_blocking()
        if self._owns_store and self._store is not None:
            self._store.close()
        self.collector.stop()
        self._acting.__exit__(None, None, None)


def _warm_up() -> None:
    """Import what a run needs while the operator looks at the window."""
    import instrument.engine  # noqa: F401
    import simulators.tem4  # noqa: F401
