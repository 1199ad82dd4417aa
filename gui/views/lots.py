"""Lots: the MSC lot registry, one lot's class, indices and plots, the comparison across lots,
re-assessment and the lot report (every database read and write on a worker thread)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.models.lots import (
    DISCLAIMER,
    REPORT_KINDS,
    ComparisonData,
    LotDetail,
    LotEntry,
    dose_text,
    list_lot_entries,
    load_comparison,
    load_lot_detail,
    reassess,
    write_report,
)
from gui.models.session import AppUser, open_bench_user
from gui.tasks import TaskRunner
from gui.widgets.common import SimulatedBadge, heading
from gui.widgets.lot_plots import (
    ComparisonPlot,
    DoseResponsePlot,
    IndicesTable,
    TatCoursePlot,
    TrendPlot,
)
from instrument.compliance.users import METHOD_DEVELOPER, TECHNICIAN

LOT_COLUMNS = (
    "Lot",
    "Product",
    "Tissue source",
    "Passage",
    "Viability %",
    "CD142+ %",
    "Data",
    "Class",
)
#: Colour of the class name by its place in the method's list (most to least permissive).
CLASS_COLOURS = {"first": theme.OK, "between": theme.WARNING, "last": theme.DANGER}


def _number(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"


def _wrapped(text: str = "", object_name: str | None = None) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if object_name:
        label.setObjectName(object_name)
    return label


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


class LotsView(QWidget):
    """The lot registry; the selected lot's class, indices, plots and report; the comparison.

    ``ask_path(kind, suggested) -> Path | None`` chooses where a report goes (a file for
    ``pdf``/``xlsx``, a folder for ``csv``; default: a file dialog), and
    ``ask_method() -> Path | None`` the method file for re-assessing; tests pass functions or
    call :meth:`export_report` and :meth:`reassess` with a path.
    """

    message = Signal(str)

    def __init__(
        self,
        tasks: TaskRunner,
        store_provider: Callable[[], Any],
        ask_path: Callable[[str, str], Path | None] | None = None,
        ask_method: Callable[[], Path | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self._store_provider = store_provider
        self._ask_path = ask_path or self._path_dialog
        self._ask_method = ask_method or self._method_dialog
        self.entries: list[LotEntry] = []
        self.detail: LotDetail | None = None
        self.comparison: ComparisonData | None = None
        self.method_path: Path | None = None  # None: the bundled method
        self.exported: dict[str, list[Path]] = {}
        self.last_error: str | None = None
        self._wanted_lot: str | None = None
        #: Who uses the app (set by the main window); re-assessing needs a role that may.
        self.user: AppUser = open_bench_user()
        self._build()

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(18, 14, 18, 10)
        outer.setSpacing(6)
        top = QHBoxLayout()
        top.addWidget(heading("Lots"))
        self.disclaimer_label = QLabel(DISCLAIMER)
        self.disclaimer_label.setObjectName("muted")
        self.disclaimer_label.setWordWrap(True)
        top.addSpacing(16)
        top.addWidget(self.disclaimer_label, 1)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self._refresh_clicked)
        top.addWidget(self.refresh_button)
        outer.addLayout(top)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_lot_tab(), "Lot")
        self.comparison_tab = self._build_comparison_tab()
        self.tabs.addTab(self.comparison_tab, "Comparison")
        outer.addWidget(self.tabs, 1)

    def _build_lot_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.setSpacing(6)
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.lots_table = _table(LOT_COLUMNS)
        self.lots_table.itemSelectionChanged.connect(self._selection_changed)
        splitter.addWidget(self.lots_table)

        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 6, 0, 0)
        detail_layout.setSpacing(4)
        header = QHBoxLayout()
        self.title_label = heading("Choose a lot", sub=True)
        header.addWidget(self.title_label)
        self.badge = SimulatedBadge()
        self.badge.setVisible(False)
        header.addWidget(self.badge)
        header.addStretch(1)
        self.method_label = QLabel("Method: bundled")
        self.method_label.setObjectName("muted")
        header.addWidget(self.method_label)
        self.method_button = QPushButton("Method file…")
        self.method_button.setToolTip("The decision method Re-assess uses (default: bundled).")
        self.method_button.clicked.connect(self._method_clicked)
        header.addWidget(self.method_button)
        self.reassess_button = QPushButton("Re-assess")
        self.reassess_button.setToolTip(
            "Recompute the indices and class from the lot's stored runs with the method file "
            "(a new assessment version, as `hemocompat assess`)."
        )
        self.reassess_button.clicked.connect(self._reassess_clicked)
        header.addWidget(self.reassess_button)
        self.export_buttons: dict[str, QPushButton] = {}
        for kind, (what, _suffix) in REPORT_KINDS.items():
            button = QPushButton(f"{kind.upper()}…")
            button.setToolTip(f"Write the lot report as {what} (as `hemocompat report --{kind}`).")
            button.clicked.connect(lambda _checked=False, k=kind: self._export_clicked(k))
            header.addWidget(button)
            self.export_buttons[kind] = button
        detail_layout.addLayout(header)
        self.record_label = _wrapped("", "muted")
        detail_layout.addWidget(self.record_label)

        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(self._build_class_card())
        indices = QWidget()
        indices_layout = QVBoxLayout(indices)
        indices_layout.setContentsMargins(0, 0, 0, 0)
        indices_layout.addWidget(heading("Indices vs vehicle, same blood", sub=True))
        self.indices_table = IndicesTable()
        indices_layout.addWidget(self.indices_table, 1)
        body.addWidget(indices)
        plots = QSplitter(Qt.Orientation.Vertical)
        self.dose_plot = DoseResponsePlot()
        self.tat_plot = TatCoursePlot()
        plots.addWidget(self.dose_plot)
        plots.addWidget(self.tat_plot)
        plots.setSizes([340, 300])
        body.addWidget(plots)
        body.setSizes([340, 610, 440])
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 3)
        body.setStretchFactor(2, 4)
        detail_layout.addWidget(body, 1)
        splitter.addWidget(detail)
        splitter.setSizes([165, 745])
        splitter.setStretchFactor(1, 1)
        layout.addWidget(splitter, 1)
        self._enable_actions(False)
        return page

    def _build_class_card(self) -> QWidget:
        card = QWidget()
        layout = QVBoxLayout(card)
        layout.setContentsMargins(0, 0, 10, 0)
        layout.setSpacing(6)
        self.class_label = _wrapped("")
        font = QFont(self.font())
        font.setPointSize(theme.HEADING_POINT_SIZE)
        font.setBold(True)
        self.class_label.setFont(font)
        layout.addWidget(self.class_label)
        self.route_label = _wrapped("")
        layout.addWidget(self.route_label)
        self.dose_label = _wrapped("")
        layout.addWidget(self.dose_label)
        self.wording_label = _wrapped("")
        self.wording_label.setStyleSheet("font-style: italic;")
        layout.addWidget(self.wording_label)
        self.explanation_label = _wrapped("")
        layout.addWidget(self.explanation_label)
        self.thresholds_label = _wrapped("", "muted")
        layout.addWidget(self.thresholds_label)
        self.assessment_label = _wrapped("", "muted")
        layout.addWidget(self.assessment_label)
        self.card_disclaimer = _wrapped(DISCLAIMER, "muted")
        layout.addWidget(self.card_disclaimer)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(card)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        return scroll

    def _build_comparison_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(8, 8, 8, 4)
        # The metric columns come with the data (instrument.compare.METRICS), so that opening
        # the window does not import the database layer on the GUI thread.
        self.compare_table = _table(("Tissue source", "Lot", "Product", "Class", "Data"))
        self.compare_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        splitter = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.compare_table, 1)
        self.flags_label = _wrapped("")
        self.flags_label.setStyleSheet(f"color: {theme.DANGER}; font-weight: 600;")
        top_layout.addWidget(self.flags_label)
        self.compare_notes_label = _wrapped("", "muted")
        top_layout.addWidget(self.compare_notes_label)
        splitter.addWidget(top)

        plots = QSplitter(Qt.Orientation.Horizontal)
        self.compare_plot = ComparisonPlot()
        plots.addWidget(self.compare_plot)
        trend = QWidget()
        trend_layout = QVBoxLayout(trend)
        trend_layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Trend of"))
        self.metric_combo = QComboBox()
        self.metric_combo.currentIndexChanged.connect(self._show_trend)
        row.addWidget(self.metric_combo)
        row.addStretch(1)
        trend_layout.addLayout(row)
        self.trend_plot = TrendPlot()
        trend_layout.addWidget(self.trend_plot, 1)
        plots.addWidget(trend)
        plots.setSizes([700, 600])
        splitter.addWidget(plots)
        splitter.setSizes([220, 640])
        layout.addWidget(splitter, 1)
        return page

    # -- the registry and the comparison ---------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self.refresh()

    def _refresh_clicked(self) -> None:
        self.refresh()

    def refresh(self, select_lot: str | None = None) -> None:
        """Re-read the registry and the comparison on a worker (then select ``select_lot``)."""
        if select_lot is not None:
            self._wanted_lot = select_lot
        if self.tasks.busy("list-lots"):
            return
        provider = self._store_provider

        def work() -> tuple[list[LotEntry], ComparisonData]:
            store = provider()
            return list_lot_entries(store), load_comparison(store)

        self.refresh_button.setEnabled(False)
        self.tasks.submit("list-lots", work, self._listed, self._failed)

    def _listed(self, result: tuple[list[LotEntry], ComparisonData]) -> None:
        self.refresh_button.setEnabled(True)
        entries, comparison = result
        keep = self._wanted_lot or self.selected_lot_id()
        self._wanted_lot = None
        self.entries = entries
        table = self.lots_table
        table.blockSignals(True)
        try:
            table.setRowCount(len(entries))
            for row, entry in enumerate(entries):
                lot = entry.lot
                cells = (
                    entry.lot_id,
                    str(lot["product"]),
                    str(lot["tissue_source"]),
                    _number(lot["passage"]),
                    _number(lot["viability_pct"], 1),
                    _number(lot["cd142_pct"], 1),
                    "SIMULATED" if entry.simulated else "",
                    entry.class_name or "not assessed",
                )
                for col, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if col == LOT_COLUMNS.index("Data") and entry.simulated:
                        item.setForeground(QColor(theme.SIMULATED_BG))
                        bold = QFont(item.font())
                        bold.setBold(True)
                        item.setFont(bold)
                    if col == LOT_COLUMNS.index("Class"):
                        item.setToolTip(entry.class_id or "no assessment stored")
                        if entry.class_id is None:
                            item.setForeground(QColor(theme.MUTED))
                    table.setItem(row, col, item)
        finally:
            table.blockSignals(False)
        self._show_comparison(comparison)
        if keep is None and entries:
            keep = entries[0].lot_id
        if keep is not None:
            self.select_lot(keep)

    def selected_lot_id(self) -> str | None:
        rows = self.lots_table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.entries):
            return None
        return self.entries[rows[0].row()].lot_id

    def select_lot(self, lot_id: str) -> bool:
        for row, entry in enumerate(self.entries):
            if entry.lot_id == lot_id:
                if self.selected_lot_id() == lot_id:
                    self._load(lot_id)
                else:
                    self.lots_table.selectRow(row)
                return True
        return False

    def _selection_changed(self) -> None:
        lot_id = self.selected_lot_id()
        if lot_id is not None:
            self._load(lot_id)

    def _show_comparison(self, data: ComparisonData) -> None:
        self.comparison = data
        table = self.compare_table
        metrics = list(data.metrics)
        columns = ("Tissue source", "Lot", "Product", *data.metrics.values(), "Class", "Data")
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels(columns)
        table.setRowCount(len(data.rows))
        if self.metric_combo.count() != len(metrics):
            self.metric_combo.blockSignals(True)
            self.metric_combo.clear()
            for key, label in data.metrics.items():
                self.metric_combo.addItem(label, key)
            self.metric_combo.blockSignals(False)
        flagged_bg = QColor("#fde2e2")
        for r, row in enumerate(data.rows):
            flags = {f.metric for f in data.flagged(row.lot_id)}
            cells = [
                row.tissue_source,
                row.lot_id,
                row.product,
                *["—" if row.values.get(m) is None else f"{row.values[m]:.3g}" for m in metrics],
                row.class_id or "—",
                "SIMULATED" if row.simulated else "",
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                metric = metrics[c - 3] if 3 <= c < 3 + len(metrics) else None
                limit = data.limits.get(metric, {}).get(row.lot_id) if metric else None
                if limit is not None:
                    mean, sd = limit
                    item.setToolTip(
                        f"other lots of {row.product}: mean {mean:.3g} ± 3 SD {3 * sd:.3g}"
                    )
                if flags:
                    item.setBackground(flagged_bg)
                if metric in flags or (c == 1 and flags):
                    item.setForeground(QColor(theme.DANGER))
                    bold = QFont(item.font())
                    bold.setBold(True)
                    item.setFont(bold)
                if c == len(cells) - 1 and row.simulated:
                    item.setForeground(QColor(theme.SIMULATED_BG))
                table.setItem(r, c, item)
        self.flags_label.setText(
            "\n".join(f"OUT OF TREND  {f.text}" for f in data.comparison.flags)
        )
        self.flags_label.setVisible(bool(data.comparison.flags))
        notes = list(data.comparison.notes)
        if not data.rows:
            notes.insert(0, "No lots registered yet.")
        self.compare_notes_label.setText("\n".join(notes))
        self.compare_plot.show_comparison(data)
        self._show_trend()

    def _show_trend(self) -> None:
        if self.comparison is not None:
            self.trend_plot.show_metric(self.comparison, str(self.metric_combo.currentData()))

    # -- one lot -------------------------------------------------------------------------------
    def _load(self, lot_id: str) -> None:
        provider = self._store_provider
        self.title_label.setText(f"{lot_id}: loading…")
        self._enable_actions(False)
        self.tasks.submit(
            f"load-lot-{lot_id}",
            lambda: load_lot_detail(provider(), lot_id),
            self._loaded,
            self._failed,
        )

    def _loaded(self, detail: LotDetail) -> None:
        if self.selected_lot_id() != detail.lot_id:
            return  # the user moved on meanwhile
        self.detail = detail
        lot = detail.lot
        self.title_label.setText(f"{detail.lot_id} · {lot['product']}")
        self.badge.setVisible(detail.simulated)
        mfi = f" (MFI {lot['cd142_mfi']:g})" if lot.get("cd142_mfi") is not None else ""
        record = [
            str(lot["tissue_source"]),
            f"passage {_number(lot['passage'])}",
            f"viability {_number(lot['viability_pct'], 1)} %",
            f"CD142+ {_number(lot['cd142_pct'], 1)} %{mfi}",
            str(lot["state"]),
        ]
        if lot.get("cell_donor"):
            record.append(f"cell donor {lot['cell_donor']}")
        if lot.get("manufactured_on"):
            record.append(f"made {lot['manufactured_on']}")
        runs = ", ".join(f"{r['id']} ({r['assay']})" for r in detail.runs) or "none"
        notes = f"  ·  {lot['notes']}" if lot.get("notes") else ""
        self.record_label.setText(f"{' · '.join(record)}{notes}\nCompleted runs: {runs}")
        self._show_class(detail)
        self.indices_table.show_indices(detail.columns, detail.rows)
        self.dose_plot.show_detail(detail)
        self.tat_plot.show_detail(detail)
        self._enable_actions(True)

    def _show_class(self, detail: LotDetail) -> None:
        a, decision = detail.assessment, detail.decision
        if not a:
            self.class_label.setText("Not assessed")
            self.class_label.setStyleSheet(f"color: {theme.MUTED};")
            for label in (self.route_label, self.dose_label, self.wording_label):
                label.setText("")
            self.explanation_label.setText(
                "No assessment is stored for this lot. Run the whole panel "
                f"(`hemocompat panel {detail.lot_id}`) or Re-assess from its stored runs."
            )
            self.thresholds_label.setText("")
            self.assessment_label.setText("")
            return
        colour = CLASS_COLOURS.get(detail.class_position or "", "#111")
        self.class_label.setText(f"{detail.class_name}")
        self.class_label.setStyleSheet(f"color: {colour};")
        self.class_label.setToolTip(f"class id: {detail.class_id}")
        route = decision.get("route")
        self.route_label.setText(f"<b>Suggested route:</b> {route}" if route else "")
        safe_ml = a.get("highest_safe_dose_cells_per_ml")
        safe_kg = a.get("highest_safe_dose_cells_per_kg")
        ratio = a.get("safe_dose_ratio")
        intended = a.get("intended_dose_cells_per_kg")
        if safe_ml is None:
            dose = "<b>Highest safe dose:</b> none — no tested dose stayed under every threshold"
        else:
            dose = (
                f"<b>Highest safe dose:</b> {dose_text(safe_ml)} = "
                f"<b>{dose_text(safe_kg, 'cells/kg')}</b>"
            )
            if ratio is not None and intended is not None:
                dose += f" ({ratio:.2f} × the intended {dose_text(intended, 'cells/kg')})"
        cap = decision.get("dose_cap_cells_per_kg")
        if cap is not None:
            dose += f"<br><b>Dose cap:</b> {dose_text(cap, 'cells/kg')}"
        self.dose_label.setText(dose)
        self.wording_label.setText(str(decision.get("wording") or ""))
        self.explanation_label.setText(str(a.get("explanation") or ""))
        self.thresholds_label.setText(
            "Thresholds of the method: " + "; ".join(detail.threshold_texts())
            if detail.thresholds
            else ""
        )
        stored = detail.stored or {}
        sim = " · SIMULATED data" if stored.get("simulated") else ""
        self.assessment_label.setText(
            f"Assessment {stored.get('id')} of {str(stored.get('created_at', ''))[:19]} UTC · "
            f"method {stored.get('method_id')} v{stored.get('method_version')} "
            f"(SHA-256 {str(stored.get('method_sha256', ''))[:12]}…) · runs "
            f"{', '.join(map(str, stored.get('run_ids', [])))}{sim}"
        )

    def _enable_actions(self, enabled: bool) -> None:
        assessed = enabled and self.detail is not None and bool(self.detail.assessment)
        self.reassess_button.setEnabled(enabled and not self.tasks.busy("reassess"))
        for kind, button in self.export_buttons.items():
            button.setEnabled(assessed and not self.tasks.busy(f"report-{kind}"))

    def _failed(self, exc: BaseException) -> None:
        self.refresh_button.setEnabled(True)
        self.last_error = str(exc)
        self.title_label.setText("Could not read the lot")
        self.record_label.setText(str(exc))
        self.message.emit(f"Lots: {exc}")

    # -- re-assess -----------------------------------------------------------------------------
    def _method_clicked(self) -> None:
        path = self._ask_method()
        if path is not None:
            self.set_method(path)

    def set_method(self, path: Path | None) -> None:
        """The method file Re-assess uses (None: the bundled one)."""
        self.method_path = path
        self.method_label.setText(f"Method: {path.name}" if path else "Method: bundled")
        self.method_label.setToolTip(str(path) if path else "")

    def _reassess_clicked(self) -> None:
        self.reassess()

    def reassess(self, method_path: Path | None = None) -> bool:
        """Recompute the selected lot's assessment on a worker; False if nothing to do."""
        lot_id = self.selected_lot_id()
        if lot_id is None or self.tasks.busy("reassess"):
            return False
        refusal = self.user.refusal("Re-assessing a lot", TECHNICIAN, METHOD_DEVELOPER)
        if refusal:
            self.message.emit(refusal)
            return False
        if method_path is not None:
            self.set_method(method_path)
        provider, method = self._store_provider, self.method_path
        self.reassess_button.setEnabled(False)
        self.message.emit(f"Re-assessing {lot_id}…")
        self.tasks.submit(
            "reassess",
            lambda: (lot_id, reassess(provider(), lot_id, method)),
            self._reassessed,
            self._reassess_failed,
        )
        return True

    def _reassessed(self, result: tuple[str, tuple[int, dict[str, Any]]]) -> None:
        lot_id, (assessment_id, body) = result
        self.reassess_button.setEnabled(True)
        name = (body.get("decision") or {}).get("name") or "not classified"
        self.message.emit(f"{lot_id}: assessment {assessment_id}, class {name}")
        self.refresh(select_lot=lot_id)

    def _reassess_failed(self, exc: BaseException) -> None:
        self.reassess_button.setEnabled(True)
        self.last_error = str(exc)
        self.message.emit(f"Re-assess failed: {exc}")

    # -- reports -------------------------------------------------------------------------------
    def _export_clicked(self, kind: str) -> None:
        if self.detail is None:
            return
        suffix = REPORT_KINDS[kind][1]
        path = self._ask_path(kind, f"{self.detail.lot_id}_report{suffix}")
        if path is not None:
            self.export_report(kind, path)

    def export_report(self, kind: str, path: Path) -> bool:
        """Write the shown lot's report (``pdf``, ``xlsx`` or ``csv`` into a folder) on a
        worker; False if no assessed lot is shown or the same export is still running."""
        detail = self.detail
        name = f"report-{kind}"
        if detail is None or not detail.assessment or self.tasks.busy(name):
            return False
        provider, lot_id = self._store_provider, detail.lot_id
        self.export_buttons[kind].setEnabled(False)
        self.message.emit(f"Writing the {REPORT_KINDS[kind][0]} report of {lot_id} to {path}…")
        self.tasks.submit(
            name,
            lambda: write_report(provider(), lot_id, kind, Path(path)),
            lambda paths: self._exported(kind, paths),
            lambda exc: self._export_failed(kind, exc),
        )
        return True

    def _exported(self, kind: str, paths: list[Path]) -> None:
        self.exported[kind] = paths
        self.export_buttons[kind].setEnabled(self.detail is not None)
        where = paths[0] if len(paths) == 1 else (paths[0].parent if paths else "")
        self.message.emit(f"Wrote the {REPORT_KINDS[kind][0]} report: {where}")

    def _export_failed(self, kind: str, exc: BaseException) -> None:
        self.export_buttons[kind].setEnabled(self.detail is not None)
        self.last_error = str(exc)
        self.message.emit(f"The {kind.upper()} report failed: {exc}")

    # -- dialogs -------------------------------------------------------------------------------
    def _path_dialog(self, kind: str, suggested: str) -> Path | None:
        if kind == "csv":
            chosen = QFileDialog.getExistingDirectory(
                self, "Write the CSV files of the report into…"
            )
            return Path(chosen) / suggested if chosen else None
        what, suffix = REPORT_KINDS[kind]
        chosen, _filter = QFileDialog.getSaveFileName(
            self, f"Save the {what} report as…", suggested, f"{what} (*{suffix})"
        )
        return Path(chosen) if chosen else None

    def _method_dialog(self) -> Path | None:
        chosen, _filter = QFileDialog.getOpenFileName(
            self, "Decision method file", "", "Method files (*.yaml *.yml)"
        )
        return Path(chosen) if chosen else None
