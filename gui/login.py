"""The login dialog shown before the main window when the database has registered users."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from gui.models.session import AppUser, log_in
from gui.tasks import TaskRunner


class LoginDialog(QDialog):
    """User name and password; the check (argon2, lockout, audit) runs on a worker thread."""

    def __init__(self, db: str | Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("hemocompat — log in")
        self.setMinimumWidth(560)
        self.db = db
        self.user: AppUser | None = None
        self._tasks = TaskRunner(self)

        heading = QLabel("Log in")
        heading.setObjectName("heading")
        where = QLabel(f"Results database: {db or 'the default database'}")
        where.setWordWrap(True)
        self.username_edit = QLineEdit()
        self.username_edit.setObjectName("username")
        self.password_edit = QLineEdit()
        self.password_edit.setObjectName("password")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        form = QFormLayout()
        form.addRow("User name", self.username_edit)
        form.addRow("Password", self.password_edit)
        self.error_label = QLabel()
        self.error_label.setObjectName("loginError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020;")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.login_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.login_button.setText("Log in")
        self.buttons.accepted.connect(self.try_login)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(heading)
        layout.addWidget(where)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.username_edit.setFocus(Qt.FocusReason.OtherFocusReason)

    def try_login(self) -> None:
        username = self.username_edit.text().strip()
        password = self.password_edit.text()
        if not username or not password:
            self.error_label.setText("Enter your user name and password.")
            return
        self._set_busy(True)
        self.error_label.setText("Checking…")
        self._tasks.submit(
            "login",
            lambda: log_in(self.db, username, password),
            on_done=self._logged_in,
            on_error=self._refused,
        )

    def _logged_in(self, user: AppUser) -> None:
        self.user = user
        self._set_busy(False)
        self.accept()

    def _refused(self, exc: BaseException) -> None:
        self._set_busy(False)
        self.password_edit.clear()
        self.password_edit.setFocus(Qt.FocusReason.OtherFocusReason)
        self.error_label.setText(f"Login refused: {exc}")
        self.adjustSize()  # room for the whole message

    def _set_busy(self, busy: bool) -> None:
        for widget in (self.username_edit, self.password_edit, self.login_button):
            widget.setEnabled(not busy)

    def done(self, result: int) -> None:
        self._tasks.shutdown()
        super().done(result)
