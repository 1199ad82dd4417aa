"""The app's plain-Python models and helpers (no window needed)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gui.app import EXIT_NO_DISPLAY, display_problem, main
from gui.models.protocols import ProtocolDocument, ProtocolLibrary, bump_version
from gui.models.run_feed import RunFeed
from gui.models.station import StationModel
from instrument.station import load_station
from protocols import bundled_protocols

NATEM = next(p for p in bundled_protocols() if p.name == "natem-msc-dose-series.yaml")


def test_bump_version_changes_only_the_top_level_version_line() -> None:
    text = "format: 1\nid: x\nversion: 7   # keep this comment\nnested:\n  version: 3\n"
    bumped = bump_version(text, 8)
    assert bumped == text.replace("version: 7", "version: 8", 1)
    with pytest.raises(ValueError):
        bump_version("format: 1\n", 2)


def test_document_says_why_it_cannot_run() -> None:
    doc = ProtocolDocument()
    doc.open(NATEM, bundled=True)
    assert doc.valid and doc.run_blocker() is None
    assert doc.protocol.source == str(NATEM)  # the file itself: its path and hash are stored
    doc.set_text(doc.text.replace("sample_rate_hz: 10", "sample_rate_hz: 1000"))
    assert doc.run_blocker() == "checking the protocol…"
    doc.validate()
    blocker = doc.run_blocker()
    assert blocker is not None and "1 error" in blocker and "sample_rate_hz" in doc.text


def test_library_lists_bundled_and_user_protocols(tmp_path: Path) -> None:
    user = tmp_path / "protocols"
    user.mkdir()
    (user / "broken.yaml").write_text("format: 1\nid: [\n", encoding="utf-8")
    library = ProtocolLibrary(user)
    library.refresh()
    names = {e.path.name: e for e in library.entries}
    assert names["natem-msc-dose-series.yaml"].bundled
    assert names["natem-msc-dose-series.yaml"].short_name == "natem-msc-dose-series v1 · NATEM"
    assert names["broken.yaml"].error and not names["broken.yaml"].bundled
    assert library.highest_version("natem-msc-dose-series") == 1


def test_station_model_round_trips_through_the_core_station_format(tmp_path: Path) -> None:
    model = StationModel("bench-3")
    assert model.problems(["tem"])  # no port, not simulated
    model.set_resource("tem", " socket://127.0.0.1:4001 ")
    model.set_baudrate("tem", 57600)
    assert model.problems(["tem"]) == []
    path = tmp_path / "station.yaml"
    model.save(path)
    station = load_station(path)
    assert station.name == "bench-3"
    assert station.instruments["tem"].resource == "socket://127.0.0.1:4001"
    assert station.instruments["tem"].baudrate == 57600
    model.set_simulated(True)
    assert model.to_station(["tem"]).instruments["tem"].simulated
    assert model.to_station(["tem"]).name != "bench-3"


def test_station_model_reports_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text("instruments: 3\n", encoding="utf-8")
    problem = StationModel().restore(path)
    assert problem is not None and "station" in problem


def test_run_feed_collects_callbacks_from_worker_threads() -> None:
    feed = RunFeed()

    def work(n: int) -> None:
        for i in range(200):
            feed.event("device", f"{n}:{i}", n)
            feed.progress(i / 200, float(i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = feed.drain()
    assert len(state.events) == 800 and state.dropped_events == 0
    assert [e.message for e in state.events if e.channel == 2][:3] == ["2:0", "2:1", "2:2"]
    assert feed.drain().events == []


@pytest.mark.parametrize(
    ("env", "platform", "ok"),
    [
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", True),
        ({}, "win32", True),
        ({}, "darwin", True),
    ],
)
def test_display_detection(env: dict[str, str], platform: str, ok: bool) -> None:
    problem = display_problem(env, platform)
    assert (problem is None) is ok
    if problem:
        assert "hemocompat demo" in problem


def test_main_without_a_display_says_so_and_returns_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main([]) == EXIT_NO_DISPLAY
    assert "no display available" in capsys.readouterr().err
