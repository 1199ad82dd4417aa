"""Desktop app tests: offscreen Qt, a temporary database and folders, no leftover threads."""

from __future__ import annotations

import os

# Before Qt is imported anywhere: render into memory, no display server needed.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

import gc
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

try:
    import PySide6.QtWidgets  # noqa: F401
except ImportError as exc:  # the app is an optional extra
    QT_MISSING: str | None = f"PySide6 is not installed ({exc}): install hemocompat[gui]"
else:
    QT_MISSING = None
    from gui.qt_compat import guard_singleton_refcounts

    guard_singleton_refcounts()

_FD_DIR = Path("/proc/self/fd")


def _open_endpoints() -> set[tuple[str, str]]:
    """Open sockets and pseudo-terminals of this process (Linux only, else empty)."""
    if not _FD_DIR.is_dir():
        return set()
    found = set()
    for fd in os.listdir(_FD_DIR):
        try:
            target = os.readlink(_FD_DIR / fd)
        except OSError:
            continue
        if target.startswith(("socket:", "/dev/pts/", "/dev/ptmx")):
            found.add((fd, target))
    return found


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves a thread running or a pty/socket open.

    Garbage is collected on this (the GUI) thread only, as the app does (gui/gc_control.py):
    a collection on a worker thread would destroy Qt objects there.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    threads_before = set(threading.enumerate())
    fds_before = _open_endpoints()
    yield
    deadline = time.monotonic() + 3.0
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        fds = _open_endpoints() - fds_before
        if not (threads or fds) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    gc.collect()
    if gc_was_enabled:
        gc.enable()
    assert not threads, f"threads left running: {[t.name for t in threads]}"
    assert not fds, f"ptys or sockets left open: {sorted(fds)}"


@dataclass
class Confirmations:
    """Stands in for the Yes/No dialogs: answers ``answer`` and records the questions."""

    answer: bool = True
    asked: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, title: str, text: str) -> bool:
        self.asked.append((title, text))
        return self.answer


@pytest.fixture
def confirm() -> Confirmations:
    return Confirmations()


@pytest.fixture
def window(qtbot: Any, tmp_path: Path, confirm: Confirmations) -> Iterator[Any]:
    """The main window on a temporary database and temporary app folders."""
    if QT_MISSING:
        pytest.skip(QT_MISSING)
    from gui.main_window import MainWindow
    from gui.paths import AppPaths
    from instrument.storage import Store

    store = Store(tmp_path / "runs.db")
    win = MainWindow(
        store=store,
        paths=AppPaths.under(tmp_path / "app"),
        simulated=False,
        confirm=confirm,
        choose_directory=lambda: tmp_path / "export",
    )
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    qtbot.waitUntil(lambda: not win.tasks.busy("open-store"), timeout=10_000)
    yield win
    win.shutdown()
    store.close()
