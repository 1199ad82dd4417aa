"""Blocking work (connect, run, load, export) on worker threads, results on the GUI thread.

Each task runs on its own named Python thread; when it ends, a queued Qt signal carries the
task back to the GUI thread, where its ``on_done`` or ``on_error`` callback runs. Plain
threads (rather than a QThreadPool) end when their work ends, so a closed window leaves no
thread behind and :meth:`TaskRunner.wait_all` can join them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger("hemocompat.gui.tasks")


@dataclass(eq=False)
class Task:
    """One piece of work and what to do with its result."""

    name: str
    fn: Callable[[], Any]
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException], None] | None = None
    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = field(default=None, repr=False)
    delivered: bool = False


class TaskRunner(QObject):
    """Starts tasks and delivers their outcome on the thread this object lives in."""

    _finished = Signal(object)
    #: Emitted on the GUI thread after any task's callbacks ran (name, ok).
    task_finished = Signal(str, bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._lock = threading.Lock()
        self._tasks: list[Task] = []
        self._closed = False

    def submit(
        self,
        name: str,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Task:
        """Run ``fn()`` on a new worker thread named ``gui-<name>``."""
        if self._closed:
            raise RuntimeError("the task runner is shut down")
        task = Task(name, fn, on_done, on_error)
        task.thread = threading.Thread(
            target=self._work, args=(task,), name=f"gui-{name}", daemon=True
        )
        with self._lock:
            self._tasks.append(task)
        task.thread.start()
        return task

    def busy(self, name: str | None = None) -> bool:
        """True while a task (with this name) has not been delivered."""
        with self._lock:
            return any(name is None or t.name == name for t in self._tasks)

    def wait_all(self, timeout: float = 10.0) -> bool:
        """Join every worker thread (shutdown and tests only); True if all ended."""
        with self._lock:
            threads = [t.thread for t in self._tasks if t.thread is not None]
        for thread in threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in threads)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop delivering results and join the workers."""
        self._closed = True
        return self.wait_all(timeout)

    # -- worker thread ------------------------------------------------------------------------
    def _work(self, task: Task) -> None:
        try:
            task.result = task.fn()
        except BaseException as exc:
            task.error = exc
        with contextlib.suppress(RuntimeError):  # the window (and this object) is gone
            self._finished.emit(task)

    # -- GUI thread -----------------------------------------------------------------------------
    @Slot(object)
    def _deliver(self, task: Task) -> None:
        with self._lock:
            if task in self._tasks:
                self._tasks.remove(task)
        if task.thread is not None:
            task.thread.join(1.0)  # it has emitted; ending takes microseconds
        task.delivered = True
        if self._closed:
            return
        ok = task.error is None
        if ok:
            if task.on_done is not None:
                task.on_done(task.result)
        elif task.on_error is not None:
            task.on_error(task.error)  # type: ignore[arg-type]
        else:
            log.error("task %s failed", task.name, exc_info=task.error)
        self.task_finished.emit(task.name, ok)
