"""The inbox of a run's observer callbacks, filled on worker threads and drained by a view.

The run engine calls its observer on the engine, writer and reader threads. This observer
only records what it is told, under a lock; the Run view drains it on its ~30 Hz timer on
the GUI thread, so no Qt object is touched from a worker thread and an event flood (a
noisy link) costs one list per frame rather than one Qt signal per event.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from instrument.engine import RunObserver

#: Events kept until drained; older ones are counted as dropped.
MAX_PENDING_EVENTS = 5000


@dataclass(frozen=True)
class FeedEvent:
    wall_time: float
    kind: str
    message: str
    channel: int | None


@dataclass
class FeedState:
    """What the view shows between events."""

    step_index: int = -1
    step_description: str = ""
    step_kind: str = ""
    fraction: float = 0.0
    elapsed_s: float = 0.0
    events: list[FeedEvent] = field(default_factory=list)
    prompts: list[Any] = field(default_factory=list)
    dropped_events: int = 0


class RunFeed(RunObserver):
    """A RunObserver that records callbacks for the GUI thread to :meth:`drain`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: deque[FeedEvent] = deque()
        self._prompts: deque[Any] = deque()
        self._dropped = 0
        self._step_index = -1
        self._step_description = ""
        self._step_kind = ""
        self._fraction = 0.0
        self._elapsed_s = 0.0

    # -- worker threads -----------------------------------------------------------------------
    def step_started(self, index: int, step: Any) -> None:
        with self._lock:
            self._step_index = index
            self._step_description = str(getattr(step, "description", step))
            self._step_kind = str(getattr(step, "kind", ""))

    def progress(self, fraction: float, elapsed_s: float) -> None:
        with self._lock:
            self._fraction, self._elapsed_s = fraction, elapsed_s

    def event(self, kind: str, message: str, channel: int | None) -> None:
        with self._lock:
            if len(self._events) >= MAX_PENDING_EVENTS:
                self._events.popleft()
                self._dropped += 1
            self._events.append(FeedEvent(time.time(), kind, message, channel))

    def prompt(self, prompt: Any) -> None:
        with self._lock:
            self._prompts.append(prompt)

    # -- GUI thread ---------------------------------------------------------------------------
    def drain(self) -> FeedState:
        """The latest state and every event and prompt since the previous drain."""
        with self._lock:
            state = FeedState(
                step_index=self._step_index,
                step_description=self._step_description,
                step_kind=self._step_kind,
                fraction=self._fraction,
                elapsed_s=self._elapsed_s,
                events=list(self._events),
                prompts=list(self._prompts),
                dropped_events=self._dropped,
            )
            self._events.clear()
            self._prompts.clear()
            self._dropped = 0
        return state
