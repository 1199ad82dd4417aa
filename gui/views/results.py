"""Results: stored runs, their parameters, events and traces (read on worker threads)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.tasks import TaskRunner
from gui.views.assays import RESULT_PANELS, StoredRun, load_stored_run
from gui.widgets.common import SimulatedBadge, heading

RUN_COLUMNS = ("Run", "Created (UTC)", "Protocol", "Operator", "Status", "Data")
RUNS_LISTED = 200


class ResultsView(QWidget):
    """Lists runs from the store; shows and exports the selected one."""

    message = Signal(str)
    #: A stored run is on screen (run id).
    run_shown = Signal(int)

    def __init__(
        self,
        tasks: TaskRunner,
        store_provider: Callable[[], Any],
        choose_directory: Callable[[], Path | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self._store_provider = store_provider
        self._choose_directory = choose_directory
        self.runs: list[dict[str, Any]] = []
        self.shown: StoredRun | None = None
        self.exported: list[Path] = []
        self._wanted_run: int | None = None
        self._panels: dict[str, QWidget] = {}
        self.panel: Any = None
        self._build()

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(18, 14, 18, 14)
        outer.setSpacing(8)
        top = QHBoxLayout()
        top.addWidget(heading("Results"))
        top.addStretch(1)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self._refresh_clicked)
        top.addWidget(self.refresh_button)
        outer.addLayout(top)

        splitter = QSplitter(Qt.Orientation.Vertical)
        self.runs_table = QTableWidget(0, len(RUN_COLUMNS))
        self.runs_table.setHorizontalHeaderLabels(RUN_COLUMNS)
        self.runs_table.verticalHeader().setVisible(False)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs_table.setAlternatingRowColors(True)
        header = self.runs_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.runs_table.itemSelectionChanged.connect(self._selection_changed)
        splitter.addWidget(self.runs_table)

        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 6, 0, 0)
        header_row = QHBoxLayout()
        self.title_label = heading("Choose a run", sub=True)
        self.title_label.setWordWrap(True)
        header_row.addWidget(self.title_label, 1)
        self.badge = SimulatedBadge()
        self.badge.setVisible(False)
        header_row.addWidget(self.badge)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_selected)
        self.export_button.setToolTip(
            "The run record, channels, samples and results as CSV files (hemocompat export --csv). "
            "A lot's report (PDF, XLSX, CSV) is written from the Lots view (Ctrl+5)."
        )
        header_row.addWidget(self.export_button)
        detail_layout.addLayout(header_row)
        self.info_label = QLabel("")
        self.info_label.setObjectName("muted")
        self.info_label.setWordWrap(True)
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        detail_layout.addWidget(self.info_label)
        self.panel_stack = QStackedWidget()
        detail_layout.addWidget(self.panel_stack, 1)
        splitter.addWidget(detail)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 4)
        splitter.setSizes([170, 760])
        outer.addWidget(splitter, 1)
        self.events_list = QListWidget()
        self.events_list.setWordWrap(True)
        self._panel_for("thromboelastometry")

    def _panel_for(self, assay: str) -> Any:
        panel: Any = self._panels.get(assay)
        if panel is None:
            factory = RESULT_PANELS.get(assay)
            if factory is None:
                return None
            panel = factory()
            self._panels[assay] = panel
            self.panel_stack.addWidget(panel)
        self.panel_stack.setCurrentWidget(panel)
        panel.add_tab(self.events_list, "Events")
        self.panel = panel
        return panel

    # -- runs list -----------------------------------------------------------------------------
    def _refresh_clicked(self) -> None:
        self.refresh()

    def refresh(self, select_run: int | None = None) -> None:
        """Re-read the runs list on a worker (then select ``select_run`` if given)."""
        if select_run is not None:
            self._wanted_run = select_run
        if self.tasks.busy("list-runs"):
            return
        provider = self._store_provider
        self.refresh_button.setEnabled(False)
        self.tasks.submit(
            "list-runs", lambda: provider().list_runs(RUNS_LISTED), self._runs_listed, self._failed
        )

    def _runs_listed(self, runs: list[dict[str, Any]]) -> None:
        self.refresh_button.setEnabled(True)
        self.runs = runs
        keep = self._wanted_run if self._wanted_run is not None else self.selected_run_id()
        self._wanted_run = None
        self.runs_table.blockSignals(True)
        try:
            self.runs_table.setRowCount(len(runs))
            for row, run in enumerate(runs):
                cells = (
                    str(run["id"]),
                    str(run["created_at"])[:19].replace("T", " "),
                    f"{run['protocol_id']} v{run['protocol_version']}",
                    str(run["operator"]),
                    str(run["status"]),
                    "SIMULATED" if run["simulated"] else "measured",
                )
                for col, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if col == 5 and run["simulated"]:
                        item.setForeground(QColor(theme.SIMULATED_BG))
                        font = QFont(item.font())
                        font.setBold(True)
                        item.setFont(font)
                    if col == 4 and run["status"] != "completed":
                        item.setForeground(QColor(theme.DANGER))
                    self.runs_table.setItem(row, col, item)
        finally:
            self.runs_table.blockSignals(False)
        if keep is not None:
            self.select_run(keep)

    def selected_run_id(self) -> int | None:
        rows = self.runs_table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.runs):
            return None
        return int(self.runs[rows[0].row()]["id"])

    def select_run(self, run_id: int) -> bool:
        for row, run in enumerate(self.runs):
            if run["id"] == run_id:
                if self.selected_run_id() == run_id:
                    self._load(run_id)
                else:
                    self.runs_table.selectRow(row)
                return True
        return False

    def _selection_changed(self) -> None:
        run_id = self.selected_run_id()
        if run_id is not None:
            self._load(run_id)

    # -- one run -------------------------------------------------------------------------------
    def _load(self, run_id: int) -> None:
        provider = self._store_provider
        self.title_label.setText(f"Run {run_id}: loading…")
        self.export_button.setEnabled(False)
        self.tasks.submit(
            f"load-run-{run_id}",
            lambda: load_stored_run(provider(), run_id),
            self._loaded,
            self._failed,
        )

    def _loaded(self, stored: StoredRun) -> None:
        if self.selected_run_id() != stored.run["id"]:
            return  # the user moved on meanwhile
        self.shown = stored
        run = stored.run
        self.title_label.setText(f"Run {run['id']}: {run['protocol_title']} — {run['status']}")
        self.badge.setVisible(bool(run["simulated"]))
        instruments = "; ".join(
            f"{i['role']}: {i['model']} S/N {i['serial']} fw {i['firmware']} on {i['resource']}"
            for i in run.get("instruments", [])
        )
        detail = f"  ({run['status_detail']})" if run.get("status_detail") else ""
        sim = (
            f"  ·  simulation seed {run['seed']}, speed {run['speed'] or 'max'}"
            if run["simulated"]
            else ""
        )
        self.info_label.setText(
            f"{run['protocol_id']} v{run['protocol_version']} · operator {run['operator']} · "
            f"started {str(run.get('started_at') or '')[:19].replace('T', ' ')} UTC · "
            f"{run.get('sample_count', 0)} raw samples{sim}{detail}\n{instruments}"
        )
        panel = self._panel_for(str(run["assay"]))
        if panel is not None:
            panel.show_run(stored)
        self.events_list.clear()
        for event in stored.events:
            where = f" ch{event['channel']}" if event["channel"] else ""
            item = QListWidgetItem(
                f"{str(event['wall_time'])[11:19]}  {event['kind']}{where}: {event['message']}"
            )
            item.setForeground(QColor(theme.EVENT_COLOURS.get(event["kind"], "#222222")))
            self.events_list.addItem(item)
        self.export_button.setEnabled(True)
        self.run_shown.emit(int(run["id"]))

    def _failed(self, exc: BaseException) -> None:
        self.refresh_button.setEnabled(True)
        self.title_label.setText("Could not read the results database")
        self.info_label.setText(str(exc))
        self.message.emit(f"Results: {exc}")

    # -- export --------------------------------------------------------------------------------
    def export_selected(self) -> None:
        run_id = self.selected_run_id()
        if run_id is None:
            return
        directory = self._choose_directory()
        if directory is None:
            return
        provider = self._store_provider
        self.export_button.setEnabled(False)

        def work() -> list[Path]:
            from instrument.cli import export_csv

            return export_csv(provider(), run_id, Path(directory))

        self.message.emit(f"Exporting run {run_id} to {directory}…")
        self.tasks.submit(f"export-{run_id}", work, self._exported, self._export_failed)

    def _exported(self, paths: list[Path]) -> None:
        self.exported = paths
        self.export_button.setEnabled(True)
        folder = paths[0].parent if paths else ""
        self.message.emit(f"Exported {len(paths)} CSV files to {folder}")

    def _export_failed(self, exc: BaseException) -> None:
        self.export_button.setEnabled(True)
        self.message.emit(f"Export failed: {exc}")
