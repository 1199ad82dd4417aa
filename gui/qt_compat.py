"""Keep the app alive on PySide6 builds that drop references to ``None`` and ``True``.

PySide6 6.12.0 (abi3 wheels) returns ``None`` from every void method, and ``True`` from
``Signal.emit``, without taking a reference. Python 3.12+ never frees these singletons
(they are immortal), so nothing happens there; on Python 3.11 their reference counts fall
by one per call and the interpreter aborts ("none_dealloc" / "bool_dealloc") after a few
thousand calls — within seconds in a live-plotting window. PySide6 6.11 and older are not
affected.

:func:`guard_singleton_refcounts` detects the defect with a short probe and, only then,
raises the reference counts of ``None``, ``True`` and ``False`` far out of reach, which is
what Python 3.12 does for every immortal object. Prefer a PySide6 without the defect (or
Python 3.12+); :data:`GUARD_NOTE` says so in the log.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger("hemocompat.gui")

#: Added to the singletons' reference counts when the defect is present.
PINNED_REFERENCES = 1 << 40
_PROBE_CALLS = 64
_state: dict[str, bool] = {}

GUARD_NOTE = (
    "this PySide6 build drops a reference to None/True on every call (PySide6 6.12.0 on "
    "Python 3.11); the app keeps those objects alive. Install PySide6 < 6.12 or use "
    "Python 3.12+ to avoid the workaround."
)


def pyside_drops_singleton_refs() -> bool:
    """True when a void PySide6 call loses a reference to ``None`` (measured, not guessed)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        probe.setObjectName("refcount-probe")
    lost = before - sys.getrefcount(None)
    return lost >= _PROBE_CALLS


def _add_references(obj: object, count: int) -> bool:
    """Add ``count`` to ``obj``'s reference count; False (and nothing changed) if unsure."""
    if hasattr(sys, "getobjects"):  # a Py_TRACE_REFS build: the count is not the first field
        return False
    before = sys.getrefcount(obj)
    cell = ctypes.c_ssize_t.from_address(id(obj))
    if cell.value != before - 1:  # getrefcount() holds one extra reference while it looks
        return False
    cell.value += count
    if sys.getrefcount(obj) != before + count:
        cell.value -= count
        return False
    return True


def guard_singleton_refcounts() -> bool:
    """Apply the workaround if this interpreter and PySide6 need it; True if applied.

    Safe to call more than once (it acts at most once per process).
    """
    if "done" in _state:
        return _state["done"]
    applied = False
    if sys.version_info < (3, 12) and pyside_drops_singleton_refs():
        applied = all(_add_references(obj, PINNED_REFERENCES) for obj in (None, True, False))
        if applied:
            log.warning("%s", GUARD_NOTE)
        else:
            log.error("could not apply the workaround: %s", GUARD_NOTE)
    _state["done"] = applied
    return applied
