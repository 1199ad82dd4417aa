"""Bad input reaches the user as a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.transport import SerialTransport
from instrument.cli import main
from instrument.storage import Store
from protocols import bundled_protocols
from simulators.physiology import TemSample
from simulators.tem4 import Tem4Simulator

NATEM = next(p for p in bundled_protocols() if p.name == "natem-msc-dose-series.yaml")

BAD_PROTOCOL = """\
format: 1
id: Bad Id
version: 0
title: "x"
assay: thromboelastometry
reagent: NATEMX
style: rotem
instruments: {tem: TEM-4}
temperature_c: 60
duration_min: 60
sample_rate_hz: 10
samples: {donor: VD-HEALTHY-01}
channels:
  - {channel: 1, contents: vehicle}
  - {channel: 1, contents: lot}
"""


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text


def test_protocol_with_several_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_PROTOCOL)
    assert main(["protocol", "check", str(bad), str(NATEM)]) == 1
    out = capsys.readouterr()
    _no_traceback(out.out + out.err)
    lines = [line for line in out.out.splitlines() if line.startswith(str(bad))]
    assert len(lines) >= 5  # id, version, reagent, temperature, duplicate channel, no dose...
    assert any(f"{bad}:6:10: reagent" in line for line in lines), lines
    assert any(f"{bad}:9:16: temperature_c" in line for line in lines), lines
    assert f"{NATEM}: OK" in out.out
    # the run command refuses the same file before touching any instrument
    assert main(["run", str(bad), "--simulate", "--db", str(tmp_path / "x.db")]) == 2
    _no_traceback(capsys.readouterr().err)


def test_station_naming_a_missing_port_lists_the_ports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    station = tmp_path / "station.yaml"
    station.write_text("instruments:\n  tem:\n    driver: tem4\n    resource: /dev/ttyNOPE9\n")
    code = main(["run", str(NATEM), "--station", str(station), "--db", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == 1
    _no_traceback(err)
    run = Store(tmp_path / "s.db").list_runs()[0]
    assert run["status"] == "failed"
    assert "/dev/ttyNOPE9" in run["status_detail"] and "ports" in run["status_detail"]


def test_busy_port_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Tem4Simulator({1: TemSample("VD-HEALTHY-01")}, speed=100, tcp=False) as sim:
        assert sim.pty_path is not None
        holder = SerialTransport(sim.pty_path, name="other-program")
        try:
            station = tmp_path / "station.yaml"
            station.write_text(
                f"instruments:\n  tem:\n    driver: tem4\n    resource: {sim.pty_path}\n"
            )
            code = main(
                ["run", str(NATEM), "--station", str(station), "--db", str(tmp_path / "b.db")]
            )
        finally:
            holder.close()
    out = capsys.readouterr()
    _no_traceback(out.out + out.err)
    assert code == 1
    detail = Store(tmp_path / "b.db").list_runs()[0]["status_detail"]
    assert sim.pty_path in detail and "in use by another program" in detail


def test_corrupted_and_dropped_frames_are_replayed_and_nothing_is_lost(tmp_path: Path) -> None:
    clean, faulty = tmp_path / "clean.json", tmp_path / "faulty.json"
    base = ["run", str(NATEM), "--simulate", "--speed", "max", "--seed", "5"]
    assert main([*base, "--db", str(tmp_path / "c.db"), "--json", str(clean)]) == 0
    assert (
        main(
            [
                *base,
                "--db",
                str(tmp_path / "f.db"),
                "--json",
                str(faulty),
                "--faults",
                "corrupt=0.005,drop=0.003,garbage=0.002",
            ]
        )
        == 0
    )
    a, b = json.loads(clean.read_text()), json.loads(faulty.read_text())
    assert [c["parameters"] for c in a["channels"]] == [c["parameters"] for c in b["channels"]]
    stats = b["link_stats"]
    assert stats["tem.corrupt"] > 0 and stats["tem.replays_requested"] > 0
    assert stats["tem.data_lost"] == 0
    store_c, store_f = Store(tmp_path / "c.db"), Store(tmp_path / "f.db")
    for ch in (1, 2, 3, 4):
        _s, t_c, v_c = store_c.channel_samples(a["run_id"], "tem", ch)
        seq_f, t_f, v_f = store_f.channel_samples(b["run_id"], "tem", ch)
        # every sample of the channel present exactly once, 100 ms apart, same values
        assert t_f == list(range(0, 100 * len(t_f), 100)) and len(t_f) >= 36000
        assert len(set(seq_f)) == len(seq_f)
        n = min(len(t_c), len(t_f))
        assert (t_c[:n], v_c[:n]) == (t_f[:n], v_f[:n])
    kinds = {e["message"].split(":")[0] for e in store_f.events(b["run_id"]) if e["kind"] == "link"}
    assert "corrupt_frame" in kinds


def test_instrument_error_reply_fails_the_run_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "e.db"
    code = main(
        [
            "run",
            str(NATEM),
            "--simulate",
            "--speed",
            "max",
            "--db",
            str(db),
            "--faults",
            "error:CH3:START=5",
        ]
    )
    out = capsys.readouterr()
    _no_traceback(out.out + out.err)
    assert code == 1
    run = Store(db).list_runs()[0]
    assert run["status"] == "failed"
    assert "CH3:START" in run["status_detail"] and "5" in run["status_detail"]
    assert "failed" in out.out


LOOP = next(p for p in bundled_protocols() if p.name == "chandler-loop-60min.yaml")


def test_loop_run_with_unreachable_bath_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    station = tmp_path / "station.yaml"
    station.write_text(
        "instruments:\n  bath:\n    driver: julabo\n    resource: /dev/ttyBATH404\n"
        "  loop:\n    driver: loop8\n    resource: /dev/ttyLOOP404\n"
    )
    code = main(["run", str(LOOP), "--station", str(station), "--db", str(tmp_path / "u.db")])
    out = capsys.readouterr()
    _no_traceback(out.out + out.err)
    assert code == 1
    detail = Store(tmp_path / "u.db").list_runs()[0]["status_detail"]
    assert "/dev/ttyBATH404" in detail


def test_loop_numbers_the_rotator_does_not_have_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "loop9.yaml"
    bad.write_text(LOOP.read_text().replace("  - loop: 8\n", "  - loop: 9\n"))
    assert main(["protocol", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "loop" in out and "9" in out and str(bad) in out
    _no_traceback(out)
