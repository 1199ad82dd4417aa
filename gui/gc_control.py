"""Garbage collection on the GUI thread only.

Python's cyclic collector runs in whichever thread happens to allocate when a threshold is
crossed. In this app that is often a worker (the driver's reader thread, the storage
writer), and the cycles it collects include pyqtgraph items and their Qt objects (pyqtgraph
builds many reference cycles), whose C++ destructors then run on the wrong thread: Qt
objects must be destroyed on their own thread, and a destructor that needs the GIL while the
GUI thread deletes a related object deadlocks (seen as a hung run). So while the window is
open, automatic collection is off and a timer on the GUI thread collects instead, by
generation, when the allocation counts pass the usual thresholds (pyqtgraph's own
``GarbageCollector`` does the same).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

CHECK_INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Disables automatic collection; collects on this object's (GUI) thread on a timer."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        self.thresholds = gc.get_threshold()
        self.collections = 0
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_INTERVAL_MS)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.thresholds[generation]:
                gc.collect(generation)
                self.collections += 1
                return

    def stop(self) -> None:
        """Collect once more here and give collection back to the interpreter."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
