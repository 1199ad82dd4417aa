"""What every standalone simulator (``hemocompat simulate ...``) does once it is serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def serve_until_stopped(
    sim: Any, name: str, out: Callable[[str], None], until: threading.Event | None
) -> None:
    """Keep serving until Ctrl+C (or ``until`` is set); a failed simulator raises its error."""
    out("Press Ctrl+C to stop.")
    try:
        while not (until is not None and until.is_set()):
            if until is not None:
                until.wait(0.2)
            else:
                time.sleep(0.2)
            if sim.error is not None:
                raise RuntimeError(f"the {name} simulator failed: {sim.error}") from sim.error
    except KeyboardInterrupt:
        out(f"Stopping the {name} simulator.")
