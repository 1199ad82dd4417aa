"""Live plots feed from LiveTrace without re-plotting; the app starts and stops cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed (hemocompat[gui])")

from gui.tasks import TaskRunner
from gui.views.assays import clotting_time_s, ct_from_event
from gui.views.run import link_state, parse_speed
from gui.widgets.trace_plots import TracePlotGrid, configure_pyqtgraph
from instrument.live import LiveTrace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def grid(qtbot: Any) -> TracePlotGrid:
    configure_pyqtgraph()
    widget = TracePlotGrid(columns=2)
    qtbot.addWidget(widget)
    widget.configure([(1, "vehicle"), (2, "VL-UC-01 @ 1.0e+04 cells/mL")], 3600.0)
    widget.resize(900, 600)
    widget.show()
    return widget


def test_curves_keep_clip_to_view_and_peak_downsampling(grid: TracePlotGrid) -> None:
    # PlotItem.addItem() would switch both off if the plot were not set up for them.
    for plot in grid.plots.values():
        for curve in (plot.upper, plot.lower):
            assert curve.opts["clipToView"] and curve.opts["autoDownsample"]
            assert curve.opts["downsampleMethod"] == "peak"


def test_refresh_sets_data_once_per_curve_and_only_for_new_data(
    grid: TracePlotGrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = {1: LiveTrace(), 2: LiveTrace()}
    for k in range(2000):
        traces[1].append(k / 10, 30.0 * (1 - np.exp(-k / 500)))
    curves = {ch: (p.upper, p.lower) for ch, p in grid.plots.items()}
    calls: list[str] = []
    for ch, (upper, lower) in curves.items():
        for name, curve in (("upper", upper), ("lower", lower)):
            original = curve.setData

            def spy(*args: Any, _o: Any = original, _n: str = f"{ch}{name}", **kw: Any) -> None:
                calls.append(_n)
                _o(*args, **kw)

            monkeypatch.setattr(curve, "setData", spy)
            monkeypatch.setattr(curve, "clear", lambda: pytest.fail("curves are never cleared"))

    assert grid.refresh(traces) == 1  # channel 2 has no data yet (version 0 = initial)
    assert sorted(calls) == ["1lower", "1upper"]
    calls.clear()
    assert grid.refresh(traces) == 0 and calls == []  # nothing new: nothing drawn
    traces[2].append(0.0, 1.0)
    assert grid.refresh(traces) == 1 and sorted(calls) == ["2lower", "2upper"]
    plot = grid.plots[1]
    assert (plot.upper, plot.lower) == curves[1]  # the same curve objects, never re-created
    assert plot.upper.yData.max() == pytest.approx(-plot.lower.yData.min())
    assert plot.upper.xData[-1] == pytest.approx(199.9 / 60.0)  # minutes


def test_ct_marker_and_range_grow_with_the_trace(grid: TracePlotGrid) -> None:
    grid.mark_ct(2, 267.4)
    plot = grid.plots[2]
    assert plot.ct_line.isVisible() and plot.ct_line.value() == pytest.approx(267.4 / 60)
    assert "CT 267 s" in plot.widget.getPlotItem().titleLabel.text
    grid.set_trace(1, np.array([0.0, 60.0]), np.array([0.0, 96.0]))
    assert grid.plots[1].half_range_mm >= 50
    grid.reset()
    assert not plot.ct_line.isVisible() and grid.plots[1].point_count == 0


def test_helpers_read_speeds_ct_events_and_link_states() -> None:
    assert parse_speed("max") == float("inf") and parse_speed("300×") == 300.0
    assert parse_speed("10x") == 10.0 and parse_speed("0") is None and parse_speed("x") is None
    assert ct_from_event("CT reached on channel 3: 267.4 s") == 267.4
    assert clotting_time_s({"CT_s": None, "R_min": 4.5}) == 270.0
    assert link_state("link_lost: cable pulled") == "lost"
    assert link_state("link lost at 90.0 s device time (x); reconnecting") == "lost"
    assert link_state("link restored after 0.4 s (1 attempt(s)) on /dev/pts/3") == "restored"
    assert link_state("reconnection given up: lost the link ...") == "failed"
    assert link_state("corrupt_frame: bad checksum") is None


def test_task_results_and_errors_arrive_on_the_gui_thread(qtbot: Any) -> None:
    import threading

    runner = TaskRunner()
    got: list[tuple[str, Any, bool]] = []
    main_thread = threading.current_thread()

    def on_gui_thread() -> bool:
        return threading.current_thread() is main_thread

    runner.submit("ok", lambda: 41 + 1, lambda r: got.append(("ok", r, on_gui_thread())))
    runner.submit(
        "bad",
        lambda: 1 / 0,
        on_error=lambda e: got.append(("bad", type(e), on_gui_thread())),
    )
    qtbot.waitUntil(lambda: len(got) == 2, timeout=5000)
    assert sorted(got, key=str) == sorted(
        [("ok", 42, True), ("bad", ZeroDivisionError, True)], key=str
    )
    assert runner.shutdown(5.0) and not runner.busy()


def test_app_smoke_start_in_a_fresh_process(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    code = (
        "import sys, gui.app; sys.exit(gui.app.main(['--smoke', '--simulate', '--config-dir', "
        f"{str(tmp_path / 'cfg')!r}, '--db', {str(tmp_path / 'runs.db')!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("window shown")
    assert (tmp_path / "cfg" / "config" / "station.yaml").exists()


def test_garbage_is_collected_on_the_gui_thread_only(qtbot: Any) -> None:
    import gc

    from gui.gc_control import GuiThreadCollector

    collector = GuiThreadCollector()
    try:
        assert not gc.isenabled()
        collector.thresholds = (10, 10, 10)
        for _ in range(100):
            cycle: list[Any] = []
            cycle.append(cycle)
        qtbot.waitUntil(lambda: collector.collections > 0, timeout=5000)
    finally:
        collector.stop()
        collector.deleteLater()
