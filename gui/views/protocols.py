"""Protocols: the library, a YAML editor with live validation, versioned saving, a dry run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.models.protocols import ProtocolDocument, ProtocolEntry, ProtocolLibrary
from gui.models.session import AppUser, open_bench_user
from gui.widgets.code_editor import CodeEditor
from gui.widgets.common import format_duration, heading
from instrument.compliance.users import METHOD_DEVELOPER

#: Quiet time after the last keystroke before the text is validated.
VALIDATE_DEBOUNCE_MS = 300

PATH_ROLE = Qt.ItemDataRole.UserRole
ISSUE_ROLE = Qt.ItemDataRole.UserRole + 1
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


class ProtocolsView(QWidget):
    """Shows the library and edits the one shared :class:`ProtocolDocument`."""

    message = Signal(str)

    def __init__(
        self,
        library: ProtocolLibrary,
        document: ProtocolDocument,
        confirm: Callable[[str, str], bool],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.document = document
        self._confirm = confirm
        #: Who is using the app (set by the main window); saving needs the method-developer role.
        self.user: AppUser = open_bench_user()
        #: Called with (new file, previous text, previous source) after a version is saved.
        self.on_saved: Callable[[Path, str, str], None] | None = None
        self._loading = False
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(VALIDATE_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.document.validate)
        self._build()
        self.library.changed.connect(self._fill_library)
        self.document.changed.connect(self._document_changed)
        self._fill_library()
        self._document_changed()

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(18, 14, 18, 14)
        outer.setSpacing(10)
        outer.addWidget(heading("Protocols"))
        splitter = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(splitter, 1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.itemClicked.connect(self._tree_clicked)
        left_layout.addWidget(self.tree, 1)
        self.folder_label = QLabel(f"Your protocols: {self.library.user_dir}")
        self.folder_label.setObjectName("muted")
        self.folder_label.setWordWrap(True)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        left_layout.addWidget(self.folder_label)
        refresh = QPushButton("Refresh list")
        refresh.clicked.connect(self.library.refresh)
        left_layout.addWidget(refresh)
        splitter.addWidget(left)

        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 0, 0, 0)
        self.file_label = heading("", sub=True)
        self.file_label.setWordWrap(True)
        middle_layout.addWidget(self.file_label)
        self.editor = CodeEditor()
        self.editor.textChanged.connect(self._text_edited)
        middle_layout.addWidget(self.editor, 1)
        buttons = QHBoxLayout()
        self.save_button = QPushButton("Save as new version")
        self.save_button.clicked.connect(self.save_new_version)
        self.revert_button = QPushButton("Revert changes")
        self.revert_button.clicked.connect(self.revert)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        middle_layout.addLayout(buttons)
        splitter.addWidget(middle)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.validity_label = heading("", sub=True)
        right_layout.addWidget(self.validity_label)
        self.issue_list = QListWidget()
        self.issue_list.setWordWrap(True)
        self.issue_list.itemClicked.connect(self._issue_clicked)
        self.issue_list.itemActivated.connect(self._issue_clicked)
        right_layout.addWidget(self.issue_list, 1)
        right_layout.addWidget(heading("Dry run: what the run will do", sub=True))
        self.plan_table = QTableWidget(0, 3)
        self.plan_table.setHorizontalHeaderLabels(["#", "Step", "Expected"])
        self.plan_table.verticalHeader().setVisible(False)
        self.plan_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.plan_table.setWordWrap(True)
        header = self.plan_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.plan_table.verticalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        right_layout.addWidget(self.plan_table, 3)
        self.duration_label = QLabel("")
        self.duration_label.setWordWrap(True)
        right_layout.addWidget(self.duration_label)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 5)
        splitter.setStretchFactor(2, 4)
        splitter.setSizes([360, 700, 560])

    # -- library -------------------------------------------------------------------------------
    def _fill_library(self) -> None:
        self.tree.clear()
        groups = {
            True: QTreeWidgetItem(self.tree, ["Bundled (read-only)"]),
            False: QTreeWidgetItem(self.tree, ["Your protocols"]),
        }
        for group in groups.values():
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
        for entry in self.library.entries:
            item = QTreeWidgetItem(groups[entry.bundled], [entry.short_name])
            item.setData(0, PATH_ROLE, str(entry.path))
            item.setToolTip(0, f"{entry.summary}\n{entry.path}\n{entry.error or entry.title}")
            if entry.error:
                item.setForeground(0, QColor(theme.DANGER))
        if not any(not e.bundled for e in self.library.entries):
            QTreeWidgetItem(groups[False], ["(none yet: “Save as new version” puts them here)"])
        self.tree.expandAll()
        self._select_current()

    def _select_current(self) -> None:
        if self.document.path is None:
            return
        current = str(self.document.path)
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            if group is None:
                continue
            for j in range(group.childCount()):
                child = group.child(j)
                if child is not None and child.data(0, PATH_ROLE) == current:
                    self.tree.setCurrentItem(child)
                    return

    def _tree_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        path = item.data(0, PATH_ROLE)
        if path:
            self.open_path(Path(path))

    def open_entry(self, entry: ProtocolEntry) -> bool:
        return self.open_path(entry.path)

    def open_path(self, path: Path) -> bool:
        """Open a library file in the editor (asks before dropping unsaved edits)."""
        if self.document.path is not None and path.resolve() == self.document.path.resolve():
            return True
        if self.document.modified and not self._confirm(
            "Discard changes?",
            f"{self.document.source} has changes that are not saved. Discard them and open "
            f"{path.name}?",
        ):
            self._select_current()
            return False
        entry = self.library.entry(path)
        self._debounce.stop()
        self.document.open(path, bundled=entry.bundled if entry else False)
        self._select_current()
        return True

    # -- editing ---------------------------------------------------------------------------------
    def _text_edited(self) -> None:
        if self._loading:
            return
        self.document.set_text(self.editor.toPlainText())
        self._debounce.start()
        self._show_state()

    def validate_now(self) -> None:
        """Validate without waiting for the debounce (tests, before saving)."""
        self._debounce.stop()
        self.document.validate()

    def revert(self) -> None:
        if self.document.path is not None:
            self._debounce.stop()
            self.document.open(self.document.path, self.document.bundled)

    def save_refusal(self) -> str | None:
        """Why this user may not save protocol versions, or None."""
        return self.user.refusal("Saving a new protocol version", METHOD_DEVELOPER)

    def save_new_version(self) -> Path | None:
        refusal = self.save_refusal()
        if refusal:
            self.message.emit(refusal)
            return None
        self.validate_now()
        if not self.document.valid:
            self.message.emit("Fix the errors before saving a new version.")
            return None
        previous_text, previous_source = self.document.saved_text, self.document.source
        try:
            path = self.document.save_new_version(self.library)
        except (OSError, ValueError) as exc:
            self.message.emit(f"Could not save the new version: {exc}")
            return None
        self.message.emit(f"Saved {path}")
        if self.on_saved is not None:
            self.on_saved(path, previous_text, previous_source)
        return path

    # -- document → view -------------------------------------------------------------------------
    def _document_changed(self) -> None:
        doc = self.document
        if self.editor.toPlainText() != doc.text:
            self._loading = True
            try:
                self.editor.setPlainText(doc.text)
            finally:
                self._loading = False
        self._show_issues()
        self._show_plan()
        self._show_state()

    def _show_state(self) -> None:
        doc = self.document
        where = str(doc.path) if doc.path is not None else "no file"
        flags = []
        if doc.bundled:
            flags.append("bundled, read-only: save as a new version to change it")
        if doc.modified:
            flags.append("modified")
        self.file_label.setText(f"{doc.source}" + (f"  ({'; '.join(flags)})" if flags else ""))
        self.file_label.setToolTip(where)
        self.save_button.setEnabled(doc.modified or doc.bundled)
        self.save_button.setToolTip(
            "Writes <id>-v<N>.yaml with the next version number into your protocol folder; "
            "existing files are never overwritten."
        )
        self.revert_button.setEnabled(doc.modified)

    def _show_issues(self) -> None:
        doc = self.document
        self.issue_list.clear()
        marks: dict[int, str] = {}
        for issue in doc.issues:
            where = f"{issue.line}:{issue.column}" if issue.line > 0 else "file"
            path = f"{issue.path}: " if issue.path else ""
            item = QListWidgetItem(f"{where}  {path}{issue.message}")
            item.setData(ISSUE_ROLE, (issue.line, issue.column))
            item.setForeground(QColor(theme.DANGER))
            self.issue_list.addItem(item)
            if issue.line > 0:
                marks.setdefault(issue.line, str(issue))
        self.editor.set_issue_lines(marks)
        if not doc.issues:
            item = QListWidgetItem("No problems found." if doc.protocol is not None else "")
            item.setData(ISSUE_ROLE, (0, 0))
            item.setForeground(QColor(theme.MUTED))
            self.issue_list.addItem(item)
        if doc.protocol is not None:
            self.validity_label.setText("✔ Valid protocol")
            self.validity_label.setStyleSheet(f"color: {theme.OK};")
        elif doc.issues:
            count = len(doc.issues)
            self.validity_label.setText(f"✖ {count} problem{'s' if count != 1 else ''}")
            self.validity_label.setStyleSheet(f"color: {theme.DANGER};")
        else:
            self.validity_label.setText("")

    def _issue_clicked(self, item: QListWidgetItem) -> None:
        line, column = item.data(ISSUE_ROLE) or (0, 0)
        if line > 0:
            self.editor.jump_to(line, column)

    def _show_plan(self) -> None:
        from instrument.plan import compile_loop_plan, compile_plan, expected_duration_s
        from protocols import TemProtocol
        from protocols.model import LoopProtocol

        protocol = self.document.protocol
        self.plan_table.setRowCount(0)
        if protocol is None:
            self.duration_label.setText("No dry run until the protocol is valid.")
            return
        if not isinstance(protocol, (TemProtocol, LoopProtocol)):
            self.duration_label.setText(
                f"No step preview for {protocol.assay} protocols in this version "
                f"(expected duration {format_duration(protocol.expected_duration_s)})."
            )
            return
        try:
            resolved = protocol.resolved_channels()
            note = ""
        except ValueError as exc:
            resolved, note = None, f" Note: {exc}."
        if isinstance(protocol, LoopProtocol):
            steps = compile_loop_plan(protocol, resolved or protocol.channels)
        else:
            steps = compile_plan(protocol, resolved)
        self.plan_table.setRowCount(len(steps))
        for row, step in enumerate(steps):
            for col, text in enumerate(
                (
                    str(row + 1),
                    step.description,
                    format_duration(step.expected_s) if step.expected_s > 0 else "—",
                )
            ):
                cell = QTableWidgetItem(text)
                if col != 1:
                    cell.setTextAlignment(RIGHT)
                self.plan_table.setItem(row, col, cell)
        total = expected_duration_s(steps)
        self.duration_label.setText(
            f"Expected duration {format_duration(total)} (h:mm:ss, temperature settling "
            f"estimated).{note}"
        )
