"""Instruments: serial ports, which instrument plays which role, connect and identify."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.models.connections import Health, InstrumentConnection, open_connection
from gui.models.station import StationModel
from gui.tasks import TaskRunner
from gui.widgets.common import heading

HEALTH_POLL_MS = 2000

COLUMNS = (
    "Role",
    "Driver",
    "Port or URL",
    "Baud",
    "Status",
    "Model",
    "Serial",
    "Firmware",
    "Temperature",
)
COL_RESOURCE, COL_BAUD, COL_STATUS = 2, 3, 4
COL_MODEL, COL_SERIAL, COL_FIRMWARE, COL_TEMP = 5, 6, 7, 8


def _link_summary(link: dict[str, int]) -> str:
    if not link:
        return ""
    bad = {k: v for k, v in link.items() if v and k in ("corrupt", "gaps", "data_lost")}
    return ", ".join(f"{k} {v}" for k, v in bad.items()) or "link OK"


class InstrumentsView(QWidget):
    """Edits the station model and holds the connections opened from here."""

    #: (role, connection or None) after connecting or disconnecting.
    connection_changed = Signal(str, object)
    #: A message for the status bar.
    message = Signal(str)

    def __init__(
        self,
        station: StationModel,
        tasks: TaskRunner,
        station_file: Path,
        save_station: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.station = station
        self.tasks = tasks
        self.station_file = station_file
        self._save_station = save_station
        self.connections: dict[str, InstrumentConnection] = {}
        self._busy_roles: set[str] = set()
        self._updating = False
        self._build()
        self.station.changed.connect(self._station_changed)
        self._health_timer = QTimer(self)
        self._health_timer.setInterval(HEALTH_POLL_MS)
        self._health_timer.timeout.connect(self._poll_health)
        self._health_timer.start()
        self._station_changed()
        self.rescan_ports()

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(12)
        layout.addWidget(heading("Instruments"))

        self.simulated_check = QCheckBox(
            "Simulated instruments — the built-in simulators run inside the app "
            "(data is marked SIMULATED)"
        )
        self.simulated_check.toggled.connect(self.station.set_simulated)
        layout.addWidget(self.simulated_check)

        ports_box = QGroupBox("Serial ports on this computer")
        ports_layout = QHBoxLayout(ports_box)
        self.ports_list = QListWidget()
        self.ports_list.setMaximumHeight(120)
        self.ports_list.setToolTip("Double-click a port to use it for the selected role.")
        self.ports_list.itemDoubleClicked.connect(lambda item: self._use_port(item.text()))
        ports_layout.addWidget(self.ports_list, 1)
        self.rescan_button = QPushButton("Rescan ports")
        self.rescan_button.clicked.connect(self.rescan_ports)
        ports_layout.addWidget(self.rescan_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(ports_box)

        visa_box = QGroupBox("VISA resources (plate reader: hemocompat elisa run --resource …)")
        visa_layout = QHBoxLayout(visa_box)
        self.visa_list = QListWidget()
        self.visa_list.setMaximumHeight(90)
        self.visa_list.setWordWrap(True)
        self.visa_list.addItem("(press “Find VISA resources”: it asks the local network, ~1 s)")
        self.visa_list.setToolTip(
            "A plate reader on a raw socket announces nothing: its resource is "
            "TCPIP::HOST::PORT::SOCKET."
        )
        visa_layout.addWidget(self.visa_list, 1)
        self.visa_button = QPushButton("Find VISA resources")
        self.visa_button.clicked.connect(self.find_visa_resources)
        visa_layout.addWidget(self.visa_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(visa_box)

        station_box = QGroupBox("Station: which instrument plays which role")
        station_layout = QVBoxLayout(station_box)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_RESOURCE, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(140)
        station_layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_selected)
        self.disconnect_button = QPushButton("Disconnect")
        self.disconnect_button.clicked.connect(self.disconnect_selected)
        buttons.addWidget(self.connect_button)
        buttons.addWidget(self.disconnect_button)
        buttons.addStretch(1)
        self.save_button = QPushButton("Save station")
        self.save_button.clicked.connect(self._save_station)
        buttons.addWidget(self.save_button)
        station_layout.addLayout(buttons)
        self.station_file_label = QLabel(
            f"Station file (read at start, saved on every change): {self.station_file}"
        )
        self.station_file_label.setObjectName("muted")
        self.station_file_label.setWordWrap(True)
        self.station_file_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        station_layout.addWidget(self.station_file_label)
        layout.addWidget(station_box)

        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        layout.addStretch(1)
        self._fill_table()

    def _fill_table(self) -> None:
        roles = list(self.station.roles)
        self.table.setRowCount(len(roles))
        self._resource_boxes: dict[str, QComboBox] = {}
        self._baud_boxes: dict[str, QSpinBox] = {}
        for row, role in enumerate(roles):
            setting = self.station.roles[role]
            self.table.setItem(row, 0, QTableWidgetItem(role))
            self.table.setItem(row, 1, QTableWidgetItem(setting.driver))
            combo = QComboBox()
            combo.setEditable(True)
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            line_edit = combo.lineEdit()
            assert line_edit is not None
            line_edit.setPlaceholderText("/dev/ttyUSB0, COM3 or socket://host:port")
            combo.currentTextChanged.connect(
                lambda text, r=role: None if self._updating else self.station.set_resource(r, text)
            )
            self.table.setCellWidget(row, COL_RESOURCE, combo)
            self._resource_boxes[role] = combo
            baud = QSpinBox()
            baud.setRange(0, 4_000_000)
            baud.setSingleStep(9600)
            baud.setSpecialValueText(f"default ({setting.default_baudrate})")
            baud.valueChanged.connect(
                lambda value, r=role: (
                    None if self._updating else self.station.set_baudrate(r, value or None)
                )
            )
            self.table.setCellWidget(row, COL_BAUD, baud)
            self._baud_boxes[role] = baud
            for col in range(COL_STATUS, len(COLUMNS)):
                self.table.setItem(row, col, QTableWidgetItem(""))
            self._show_row_state(role)
        if roles:
            self.table.selectRow(0)
        self.table.itemSelectionChanged.connect(self._update_buttons)

    # -- model → view --------------------------------------------------------------------------
    def _station_changed(self) -> None:
        self._updating = True
        try:
            self.simulated_check.setChecked(self.station.simulated)
            for role, combo in self._resource_boxes.items():
                setting = self.station.roles[role]
                if combo.currentText() != setting.resource:
                    combo.setEditText(setting.resource)
                combo.setEnabled(not self.station.simulated)
                baud = self._baud_boxes[role]
                baud.setValue(setting.baudrate or 0)
                baud.setEnabled(not self.station.simulated)
        finally:
            self._updating = False
        self._update_buttons()

    def _row(self, role: str) -> int:
        return list(self.station.roles).index(role)

    def _set_cell(self, role: str, col: int, text: str) -> None:
        item = self.table.item(self._row(role), col)
        if item is not None:
            item.setText(text)

    def _show_row_state(self, role: str) -> None:
        conn = self.connections.get(role)
        if role in self._busy_roles:
            status = "working…"
        elif conn is None:
            status = "not connected"
        else:
            status = "connected (SIMULATED)" if conn.simulated else "connected"
        self._set_cell(role, COL_STATUS, status)
        ident = conn.identity if conn is not None else None
        self._set_cell(role, COL_MODEL, ident.model if ident else "")
        self._set_cell(role, COL_SERIAL, ident.serial if ident else "")
        self._set_cell(role, COL_FIRMWARE, ident.firmware if ident else "")
        temp = conn.health.temperature_c if conn is not None else None
        self._set_cell(role, COL_TEMP, f"{temp:.2f} °C" if temp is not None else "")

    def _selected_role(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        roles = list(self.station.roles)
        if rows:
            return roles[rows[0].row()]
        return roles[0] if roles else None

    def _update_buttons(self) -> None:
        role = self._selected_role()
        busy = role in self._busy_roles if role else True
        connected = role in self.connections if role else False
        self.connect_button.setEnabled(role is not None and not busy and not connected)
        self.disconnect_button.setEnabled(role is not None and not busy and connected)

    # -- ports ---------------------------------------------------------------------------------
    def rescan_ports(self) -> None:
        if self.tasks.busy("scan-ports"):
            return
        from drivers.transport import available_serial_ports

        self.rescan_button.setEnabled(False)
        self.tasks.submit(
            "scan-ports", available_serial_ports, self._ports_found, self._ports_failed
        )

    def _ports_found(self, ports: list[str]) -> None:
        self.rescan_button.setEnabled(True)
        self.ports_list.clear()
        if ports:
            self.ports_list.addItems(ports)
        else:
            self.ports_list.addItem("(no serial ports found — check the USB adapter)")
        for role, combo in self._resource_boxes.items():
            self._updating = True
            try:
                current = combo.currentText()
                combo.clear()
                combo.addItems(ports)
                combo.setEditText(current or self.station.roles[role].resource)
            finally:
                self._updating = False

    def _ports_failed(self, exc: BaseException) -> None:
        self.rescan_button.setEnabled(True)
        self.status_label.setText(f"Could not list the serial ports: {exc}")

    def find_visa_resources(self) -> None:
        if self.tasks.busy("scan-visa"):
            return
        from drivers.transport import available_visa_resources

        self.visa_button.setEnabled(False)
        self.tasks.submit(
            "scan-visa", available_visa_resources, self._visa_found, self._visa_failed
        )

    def _visa_found(self, resources: list[str]) -> None:
        self.visa_button.setEnabled(True)
        self.visa_list.clear()
        self.visa_list.addItems(resources or ["(no VISA resources found)"])

    def _visa_failed(self, exc: BaseException) -> None:
        self.visa_button.setEnabled(True)
        self.visa_list.clear()
        self.visa_list.addItem(f"Could not list the VISA resources: {exc}")

    def _use_port(self, port: str) -> None:
        role = self._selected_role()
        if role is not None and not port.startswith("("):
            self.station.set_resource(role, port)

    # -- connect / disconnect --------------------------------------------------------------------
    def connect_selected(self) -> None:
        role = self._selected_role()
        if role is None or role in self._busy_roles or role in self.connections:
            return
        spec = self.station.spec(role)
        where = "the built-in simulator" if spec.simulated else (spec.resource or "?")
        self._busy_roles.add(role)
        self._show_row_state(role)
        self._update_buttons()
        self.status_label.setText(f"Connecting to the '{role}' instrument on {where}…")
        self.tasks.submit(
            f"connect-{role}",
            lambda: open_connection(spec),
            partial(self._connected, role),
            partial(self._connect_failed, role),
        )

    def _connected(self, role: str, conn: InstrumentConnection) -> None:
        self._busy_roles.discard(role)
        self.connections[role] = conn
        ident = conn.identity
        self.status_label.setText(
            f"Connected: {ident.manufacturer} {ident.model}, serial {ident.serial}, firmware "
            f"{ident.firmware} on {conn.resource}" + (" — SIMULATED" if conn.simulated else "")
        )
        self._show_row_state(role)
        self._update_buttons()
        self.connection_changed.emit(role, conn)

    def _connect_failed(self, role: str, exc: BaseException) -> None:
        self._busy_roles.discard(role)
        self.status_label.setText(f"Could not connect the '{role}' instrument: {exc}")
        self._show_row_state(role)
        self._update_buttons()

    def disconnect_selected(self) -> None:
        role = self._selected_role()
        if role is not None:
            self.disconnect_role(role)

    def disconnect_role(self, role: str, then: Callable[[], None] | None = None) -> None:
        """Close the connection of a role on a worker; ``then`` runs after (GUI thread)."""
        conn = self.connections.pop(role, None)
        if conn is None:
            if then is not None:
                then()
            return
        self._busy_roles.add(role)
        self._show_row_state(role)
        self._update_buttons()
        self.connection_changed.emit(role, None)

        def done(_result: object = None, r: str = role) -> None:
            self._busy_roles.discard(r)
            self._show_row_state(r)
            self._update_buttons()
            self.status_label.setText(f"Disconnected the '{r}' instrument.")
            if then is not None:
                then()

        def failed(exc: BaseException, r: str = role) -> None:
            self.status_label.setText(f"Closing the '{r}' instrument reported: {exc}")
            done()

        self.tasks.submit(f"disconnect-{role}", conn.close, done, failed)

    def close_all_blocking(self) -> None:
        """Close every connection now (shutdown only)."""
        for conn in list(self.connections.values()):
            try:
                conn.close()
            except Exception as exc:  # shutting down: report, carry on
                self.message.emit(f"closing {conn.role}: {exc}")
        self.connections.clear()

    # -- health ----------------------------------------------------------------------------------
    def _poll_health(self) -> None:
        for role, conn in list(self.connections.items()):
            name = f"health-{role}"
            if self.tasks.busy(name) or role in self._busy_roles:
                continue
            self.tasks.submit(
                name,
                conn.poll_health,
                partial(self._health, role),
                partial(self._health_failed, role),
            )

    def _health(self, role: str, health: Health) -> None:
        conn = self.connections.get(role)
        if conn is None:
            return
        self._show_row_state(role)
        summary = _link_summary(health.link)
        self.table.item(self._row(role), COL_STATUS).setToolTip(summary)  # type: ignore[union-attr]
        self.connection_changed.emit(role, conn)

    def _health_failed(self, role: str, exc: BaseException) -> None:
        if role in self.connections:
            self.status_label.setText(
                f"The '{role}' instrument stopped answering: {exc}. Disconnect and reconnect."
            )
            self._set_cell(role, COL_STATUS, "not answering")
            item = self.table.item(self._row(role), COL_STATUS)
            if item is not None:
                item.setForeground(Qt.GlobalColor.red)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self._update_buttons()

    def stop_timers(self) -> None:
        self._health_timer.stop()
