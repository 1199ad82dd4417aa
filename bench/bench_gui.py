"""Desktop app: live-plot frame time, sample-to-screen latency, cold start to a usable window.

How it is measured (offscreen Qt unless QT_QPA_PLATFORM says otherwise):

* Frame time: 12 LiveTrace buffers, each pre-filled with 1 h of 100 Hz samples (360 000
  appends, so the bounded buffer holds its usual decimated history), shown by the app's own
  TracePlotGrid (12 channel plots, two curves each: +A/2 and −A/2, i.e. 24 PlotDataItems
  with clipToView, peak autoDownsample and fill). A producer thread keeps appending at
  100 Hz per trace in real time while a 30 Hz QTimer refreshes the grid. One frame = the
  grid's refresh (snapshot + one setData per curve, only for changed traces) followed by
  ``processEvents()``, in which Qt repaints what changed (the plot areas, as the app's own
  event loop would; a paint-event counter confirms all 12 plots repaint). Median and p95
  over the frames that had new data (with 1 h of history a trace's buffer keeps one sample
  in 32, so most 33-ms frames have nothing new). For comparison, the same with a forced
  full repaint of the grid (axes, titles and curves) through ``grid.grab()``, and the
  4-channel TEM-4 view (2×2 larger plots, 2-px curves).
* Sample-to-screen latency: the producer records the wall time (perf_counter) of every
  append; a sample counts as on screen when the first refresh whose displayed trace reaches
  its time has finished repainting. Two figures: samples the display buffer keeps (its
  newest point), and every appended sample (this one includes the wait for the buffer's
  decimation to keep a newer point, up to its stride / 100 Hz after 1 h).
* Cold start: ``python -c "import gui.app; gui.app.main(['--smoke', ...])"`` in a fresh
  process with a temporary database and config folder, from spawning the process until it
  prints that the main window is shown and the event loop runs; median of 3.
"""

from __future__ import annotations

import bisect
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

N_TRACES = 12
RATE_HZ = 100
HISTORY_S = 3600
MEASURE_S = 10.0
FRAME_MS = 33
COLD_STARTS = 3
FULL_REPAINTS = 20
TARGETS = {
    "frame median (ms)": 16.0,
    "latency p99, kept samples (ms)": 100.0,
    "cold start to usable window (s)": 2.0,
}


def _amplitude_mm(t_s: np.ndarray, channel: int) -> np.ndarray:
    """A thromboelastometry-like amplitude: flat, then rising to ~60 mm."""
    ct = 180.0 + 60.0 * channel
    rise = np.clip(t_s - ct, 0.0, None)
    return 60.0 * (1.0 - np.exp(-rise / 400.0)) ** 1.6 + 0.05 * np.sin(t_s * 7.0)


def _prefill(traces: list) -> None:  # type: ignore[type-arg]
    t = np.arange(HISTORY_S * RATE_HZ) / RATE_HZ
    for channel, trace in enumerate(traces):
        append = trace.append
        for ts, value in zip(t.tolist(), _amplitude_mm(t, channel).tolist(), strict=True):
            append(ts, value)


class _Producer(threading.Thread):
    """Appends one sample per trace every 10 ms (100 Hz) and remembers when."""

    def __init__(self, traces: list) -> None:  # type: ignore[type-arg]
        super().__init__(name="bench-producer", daemon=True)
        self.traces = traces
        self.stop = threading.Event()
        self.t_s: list[float] = []
        self.wall: list[float] = []

    def run(self) -> None:
        period = 1.0 / RATE_HZ
        k = HISTORY_S * RATE_HZ
        next_due = time.perf_counter()
        while not self.stop.is_set():
            t_s = k / RATE_HZ
            value = 60.0 + 0.05 * math.sin(t_s * 7.0)  # the plateau of _amplitude_mm
            for trace in self.traces:
                trace.append(t_s, value)
            self.t_s.append(t_s)
            self.wall.append(time.perf_counter())
            k += 1
            next_due += period
            delay = next_due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class _PaintCounter:
    """Counts paint events of the plot viewports (proof that a frame really repainted)."""

    def __init__(self) -> None:
        from PySide6.QtCore import QEvent, QObject

        paint = QEvent.Type.Paint

        class _Filter(QObject):
            count = 0

            def eventFilter(self, _obj: QObject, event: QEvent) -> bool:  # noqa: N802
                if event.type() == paint:
                    type(self).count += 1
                return False

        self.filter = _Filter()

    @property
    def count(self) -> int:
        return type(self.filter).count


def measure_frames(n_traces: int = N_TRACES, columns: int = 4) -> dict[str, float]:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    from gui.qt_compat import guard_singleton_refcounts
    from gui.widgets.trace_plots import TracePlotGrid, configure_pyqtgraph
    from instrument.live import LiveTrace

    guard_singleton_refcounts()
    configure_pyqtgraph()
    from gui.gc_control import GuiThreadCollector

    collector = GuiThreadCollector()  # as in the app: no collection on the producer thread
    traces = [LiveTrace() for _ in range(n_traces)]
    started = time.perf_counter()
    _prefill(traces)
    prefill_s = time.perf_counter() - started
    sources = {channel + 1: trace for channel, trace in enumerate(traces)}

    grid = TracePlotGrid(columns=columns)
    grid.configure([(c, f"trace {c}") for c in sources], HISTORY_S + MEASURE_S + 60)
    grid.resize(1600, 1000)
    grid.show()
    grid.refresh(sources)
    grid.grab()
    app.processEvents()
    paints = _PaintCounter()
    for plot in grid.plots.values():
        plot.widget.viewport().installEventFilter(paints.filter)

    producer = _Producer(traces)
    frame_ms: list[float] = []
    busy_frame_ms: list[float] = []
    repaints: list[int] = []
    kept_latency_ms: list[float] = []
    all_latency_ms: list[float] = []
    shown_until = {c: plot.last_t_s for c, plot in grid.plots.items()}
    seen_index = [0]

    def frame() -> None:
        before = paints.count
        start = time.perf_counter()
        updated = grid.refresh(sources)
        app.processEvents()  # Qt repaints what changed, as the app's event loop would
        done = time.perf_counter()
        frame_ms.append((done - start) * 1e3)
        if updated:
            busy_frame_ms.append((done - start) * 1e3)
            repaints.append(paints.count - before)
        # Samples appended so far, in time order (the producer only appends to the lists).
        n = len(producer.t_s)
        times, walls = producer.t_s[:n], producer.wall[:n]
        for channel, plot in grid.plots.items():
            newest = plot.last_t_s
            if newest > shown_until[channel]:
                # The newest displayed point is a sample the buffer kept: its own latency.
                i = bisect.bisect_left(times, newest)
                if i < n and times[i] == newest:
                    kept_latency_ms.append((done - walls[i]) * 1e3)
                shown_until[channel] = newest
        # Every appended sample is "on screen" once every trace's display reaches its time.
        reach = min(shown_until.values())
        j = bisect.bisect_right(times, reach)
        for i in range(seen_index[0], j):
            all_latency_ms.append((done - walls[i]) * 1e3)
        seen_index[0] = max(seen_index[0], j)

    timer = QTimer()
    timer.setInterval(FRAME_MS)
    timer.timeout.connect(frame)
    producer.start()
    timer.start()
    end = time.perf_counter() + MEASURE_S
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    producer.stop.set()
    producer.join()

    # Worst case: every trace changed and the whole grid (axes, titles, curves) repainted.
    full_ms: list[float] = []
    for _ in range(FULL_REPAINTS):
        for trace in traces:
            last = trace.last()
            assert last is not None
            for k in range(1, 40):  # enough samples for every buffer to keep a new point
                trace.append(last[0] + k / RATE_HZ, last[1])
        start = time.perf_counter()
        grid.refresh(sources)
        grid.grab()
        full_ms.append((time.perf_counter() - start) * 1e3)

    points = sum(p.point_count for p in grid.plots.values())
    drawn = sum(len(p.upper.curve.xData) + len(p.lower.curve.xData) for p in grid.plots.values())
    grid.close()
    grid.deleteLater()
    app.processEvents()
    collector.stop()
    return {
        "frame median (ms)": statistics.median(busy_frame_ms),
        "frame p95 (ms)": _percentile(busy_frame_ms, 95),
        "frames with new data / all frames": len(busy_frame_ms) / max(1, len(frame_ms)),
        "plot repaints per frame with new data": statistics.mean(repaints) if repaints else 0.0,
        "full grid repaint via grab() median (ms)": statistics.median(full_ms),
        "full grid repaint via grab() p95 (ms)": _percentile(full_ms, 95),
        "latency p99, kept samples (ms)": _percentile(kept_latency_ms, 99),
        "latency median, kept samples (ms)": _percentile(kept_latency_ms, 50),
        "latency p99, every sample (ms)": _percentile(all_latency_ms, 99),
        "points per trace in the display buffer": float(len(traces[0])),
        f"points held by the {2 * n_traces} curves": float(points),
        f"points drawn by the {2 * n_traces} curves": float(drawn),
        f"prefill {n_traces} x 1 h at 100 Hz (s)": prefill_s,
    }


def measure_cold_start() -> dict[str, float]:
    times: list[float] = []
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    for _ in range(COLD_STARTS):
        with tempfile.TemporaryDirectory(prefix="hemocompat-bench-") as tmp:
            code = (
                "import sys, gui.app; sys.exit(gui.app.main(['--smoke', '--config-dir', "
                f"{str(Path(tmp) / 'cfg')!r}, '--db', {str(Path(tmp) / 'runs.db')!r}]))"
            )
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()
            shown = time.perf_counter() - start
            proc.wait(timeout=60)
            if not line.startswith("window shown"):
                raise SystemExit(f"the app did not start (exit {proc.returncode}): {line!r}")
            times.append(shown)
    return {
        "cold start to usable window (s)": statistics.median(times),
        "cold start, slowest of 3 (s)": max(times),
    }


def main() -> dict[str, float]:
    figures = measure_frames()
    tem_view = measure_frames(n_traces=4, columns=2)
    for key in ("frame median (ms)", "frame p95 (ms)", "latency p99, kept samples (ms)"):
        figures[f"4-channel TEM-4 view: {key}"] = tem_view[key]
    figures.update(measure_cold_start())
    print(
        f"Desktop app plots: {N_TRACES} traces × 2 curves at {RATE_HZ} Hz, "
        f"{HISTORY_S // 3600} h of history, refreshed at {1000 // FRAME_MS} Hz "
        "(frame = refresh + the repaint Qt does; see the module docstring)"
    )
    for key, value in figures.items():
        target = TARGETS.get(key)
        verdict = ""
        if target is not None:
            verdict = f"  (target ≤ {target:g}: {'met' if value <= target else 'MISSED'})"
        print(f"  {key:<54} {value:>10,.2f}{verdict}")
    return figures


if __name__ == "__main__":
    main()
