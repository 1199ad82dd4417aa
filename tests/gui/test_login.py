"""Logging in to the app: the dialog, refusals, roles in the window, the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from instrument.compliance import users as users_module
from instrument.compliance.audit import Actor, acting_as, entries, verify
from instrument.compliance.users import add_user, init_admin
from instrument.storage import Store
from tests.gui.conftest import QT_MISSING

pytestmark = pytest.mark.skipif(QT_MISSING is not None, reason=QT_MISSING or "")

PASSWORDS = {"root": "hunter-42-admin", "tom": "blue-ocean-17", "meg": "red-mountain-38"}


@pytest.fixture
def lab_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A database with an administrator, a technician and a method developer."""
    monkeypatch.setattr(
        users_module, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    monkeypatch.setenv("HEMOCOMPAT_CONFIG_DIR", str(tmp_path / "config"))
    db = tmp_path / "lab.db"
    store = Store(db)
    with acting_as(Actor("setup", "open-bench")):
        init_admin(store, "root", full_name="Rita Root", password=PASSWORDS["root"], created_by="s")
    with acting_as(Actor("root", "admin")):
        for user, role in (("tom", "technician"), ("meg", "method-developer")):
            add_user(
                store,
                user,
                full_name=f"{user.title()} Example",
                roles=[role],
                password=PASSWORDS[user],
                created_by="root",
            )
    store.close()
    yield db


def _dialog(qtbot: Any, db: Path) -> Any:
    from gui.login import LoginDialog

    dialog = LoginDialog(db)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _submit(qtbot: Any, dialog: Any, user: str, password: str) -> None:
    dialog.username_edit.setText(user)
    dialog.password_edit.setText(password)
    dialog.login_button.click()
    qtbot.waitUntil(dialog.login_button.isEnabled, timeout=10_000)


def test_wrong_password_is_refused_with_the_attempts_left_and_nothing_logged_in(
    qtbot: Any, lab_db: Path
) -> None:
    dialog = _dialog(qtbot, lab_db)
    _submit(qtbot, dialog, "tom", "not-his-password")
    text = dialog.error_label.text()
    assert text.startswith("Login refused: wrong user name or password")
    assert "attempts left before the account is locked" in text
    assert dialog.user is None and dialog.isVisible()
    assert dialog.password_edit.text() == ""
    _submit(qtbot, dialog, "tom", PASSWORDS["tom"])
    assert dialog.user is not None and dialog.user.roles == ("technician",)
    assert not dialog.isVisible()
    store = Store(lab_db)
    try:
        assert verify(store).ok
        actions = [e["action"] for e in entries(store)]
        assert "login.failed" in actions and actions[-1] == "login"
    finally:
        store.close()


def test_the_window_shows_the_user_and_refuses_what_the_role_does_not_allow(
    qtbot: Any, lab_db: Path, tmp_path: Path
) -> None:
    from gui.main_window import MainWindow
    from gui.models.session import AppUser
    from gui.paths import AppPaths

    tom = AppUser("tom", "Tom Example", ("technician",))
    window = MainWindow(db=lab_db, paths=AppPaths.under(tmp_path / "app"), simulated=True, user=tom)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.tasks.busy("open-store"), timeout=10_000)
    try:
        assert "Tom Example (technician)" in window.user_label.text()
        run = window.run_view
        assert run.operator_edit.text() == "tom" and run.operator_edit.isReadOnly()
        assert "technician" not in (run.start_blocker() or "")
        protocols = window.protocols_view
        refusal = protocols.save_refusal()
        assert refusal is not None and "method-developer role" in refusal
        assert "logged in as tom (technician)" in refusal
        protocols.editor.setPlainText(protocols.editor.toPlainText() + "\n# edited\n")
        assert protocols.save_new_version() is None
        assert not list((tmp_path / "app").rglob("*-v*.yaml"))
        assert window.lots_view.user == tom
    finally:
        window.shutdown()


def test_a_method_developer_saves_a_recorded_version_but_cannot_start_a_run(
    qtbot: Any, lab_db: Path, tmp_path: Path
) -> None:
    from gui.main_window import MainWindow
    from gui.models.session import AppUser
    from gui.paths import AppPaths
    from instrument.compliance.protocol_versions import recorded_versions

    meg = AppUser("meg", "Meg Example", ("method-developer",))
    window = MainWindow(db=lab_db, paths=AppPaths.under(tmp_path / "app"), simulated=True, user=meg)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.tasks.busy("open-store"), timeout=10_000)
    try:
        blocker = window.run_view.start_blocker() or ""
        assert "Starting a run needs the technician role" in blocker
        assert not window.run_view.start_button.isEnabled()
        protocols = window.protocols_view
        assert protocols.save_refusal() is None
        protocols.editor.setPlainText(protocols.editor.toPlainText() + "\n# edited\n")
        path = protocols.save_new_version()
        assert path is not None and path.exists()
        qtbot.waitUntil(lambda: not window.tasks.busy("record-version"), timeout=10_000)
        store = Store(lab_db)
        try:
            versions = recorded_versions(store)
            assert [(v["path"], v["created_by"]) for v in versions] == [(str(path), "meg")]
            trail = entries(store)
            assert trail[-1]["action"] == "protocol.new-version" and trail[-1]["actor"] == "meg"
        finally:
            store.close()
    finally:
        window.shutdown()
