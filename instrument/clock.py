"""Protocol time: real, or scaled by a speed factor for simulation.

The run engine waits on a Clock; measured timestamps always come from the instrument
(device time), so the analysis does not depend on the clock's speed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class Clock:
    """Protocol seconds mapped onto wall seconds by ``speed`` (``math.inf`` = no waiting)."""

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (got {speed}); use 1 for real time")
        self.speed = speed
        self._t0 = time.monotonic()

    @property
    def realtime(self) -> bool:
        return self.speed == 1.0

    def now(self) -> float:
        """Protocol seconds since the clock was created (wall time × speed)."""
        elapsed = time.monotonic() - self._t0
        return elapsed * self.speed if math.isfinite(self.speed) else elapsed

    def wall_seconds(self, protocol_s: float) -> float:
        """Wall seconds that ``protocol_s`` protocol seconds take at this speed."""
        return protocol_s / self.speed if math.isfinite(self.speed) else 0.0

    def sleep(self, protocol_s: float, cancel: threading.Event | None = None) -> bool:
        """Wait ``protocol_s`` protocol seconds; return False if ``cancel`` was set first."""
        wall = self.wall_seconds(protocol_s)
        if cancel is None:
            time.sleep(wall)
            return True
        return not cancel.wait(wall)

    def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout_protocol_s: float,
        cancel: threading.Event | None = None,
        poll_wall_s: float = 0.01,
    ) -> bool:
        """Poll ``predicate`` until true, the protocol timeout passes, or ``cancel`` is set."""
        deadline = time.monotonic() + max(self.wall_seconds(timeout_protocol_s), 0.5)
        while True:
            if predicate():
                return True
            if cancel is not None and cancel.is_set():
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_wall_s)
