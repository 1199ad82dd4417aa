"""`hemocompat analyzer listen`, `simulate hematology`, `lis export` and `lots cd142`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import hl7  # type: ignore[import-untyped]
import pytest

from drivers.astm import AstmLink, AstmTimings, RawSerialTransport
from drivers.wire import astm as wire
from instrument.cli import main
from simulators.hematology import CbcResult, HematologySimulator
from tests.lab_link.conftest import make_loop_registry
from tests.lab_link.mllp_peer import lis_listener

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> str:
    reg = make_loop_registry(tmp_path / "cli.db")
    reg.store.close()
    return str(tmp_path / "cli.db")


def test_analyzer_listen_stores_counts_and_reports_unknown_samples(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    results = [
        CbcResult("S-000001", {"PLT": 250, "WBC": 6.0}),
        CbcResult("S-000002", {"PLT": 120}),
        CbcResult("S-777777", {"PLT": 300}),
    ]
    with HematologySimulator(results, pty=False) as sim:
        code = main(["analyzer", "listen", "--resource", sim.url, "--db", db, "--idle", "0.5"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "3 value(s) stored, 0 already stored" in out.out and "ended: idle" in out.out
    assert re.search(r"S-000001\s+│\s+PLT\s+│\s+250", out.out)
    assert "not in the registry, NOT stored: S-777777: PLT 300 10^9/L" in out.err


def test_analyzer_listen_with_nothing_received_is_an_error(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with HematologySimulator([], pty=False, autosend=False) as sim:
        code = main(["analyzer", "listen", "--resource", sim.url, "--db", db, "--timeout", "0.3"])
    assert code == 2
    assert "no results received" in capsys.readouterr().err


def test_analyzer_listen_on_a_port_that_does_not_exist(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyzer", "listen", "--resource", "/dev/does-not-exist", "--db", db])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_simulate_hematology_standalone(tmp_path: Path) -> None:
    csv_file = tmp_path / "cbc.csv"
    csv_file.write_text("sample_id,PLT,WBC\nS-000005,210,5.5\nS-000006,95,\n", encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "instrument.cli",
            "simulate",
            "hematology",
            "--results",
            str(csv_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        banner = ""
        while "Press Ctrl+C" not in banner:
            line = proc.stdout.readline()
            assert line, f"no banner: {banner}"
            banner += line
        assert "SIMULATED" in banner and "S-000006: PLT 95" in banner
        port = re.search(r"socket://127\.0\.0\.1:(\d+)", banner)
        assert port is not None
        timings = AstmTimings().scaled(0.1)
        with AstmLink(
            RawSerialTransport(f"socket://127.0.0.1:{port.group(1)}"), timings=timings
        ) as link:
            records: list[str] = []
            while len(records) < 2 * 5:
                transfer = link.receive(5.0)
                assert transfer is not None
                records += transfer.records
        decoded = wire.decode_message(records)
        orders = [r.specimen_id for r in decoded if isinstance(r, wire.OrderRecord)]
        assert orders == ["S-000005", "S-000006"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_simulate_hematology_bad_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_file = tmp_path / "cbc.csv"
    csv_file.write_text("sample_id,PLT\nS-1,many\n", encoding="utf-8")
    assert main(["simulate", "hematology", "--results", str(csv_file)]) == 2
    assert f"{csv_file}:2: PLT 'many' is not a number" in capsys.readouterr().err


def test_lis_export_writes_files_and_sends_over_mllp(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    astm_file, hl7_file = tmp_path / "lot.astm", tmp_path / "lot.hl7"
    with lis_listener("AA") as (port, received):
        code = main(
            [
                "lis",
                "export",
                "L-UC-7",
                "--astm",
                str(astm_file),
                "--hl7",
                str(hl7_file),
                "--mllp",
                f"127.0.0.1:{port}",
                "--db",
                db,
            ]
        )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "acknowledged AA" in out.out
    records = wire.decode_message(astm_file.read_bytes().decode("latin-1").split("\r")[:-1])
    assert isinstance(records[1], wire.PatientRecord) and records[1].practice_id == "L-UC-7"
    message = hl7.parse(hl7_file.read_bytes().decode("utf-8"))
    assert str(message.segment("PID")(3)(1)(1)) == "L-UC-7"
    assert received[0][1:-2] == hl7_file.read_bytes()


def test_lis_export_of_a_run_and_its_errors(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["lis", "export", "--run", "1", "--astm", str(tmp_path / "r.astm"), "--db", db]) == 0
    )
    assert (tmp_path / "r.astm").read_bytes().startswith(b"H|\\^&|")
    assert main(["lis", "export", "L-UC-7", "--db", db]) == 2
    assert "choose at least one" in capsys.readouterr().err
    assert main(["lis", "export", "--hl7", str(tmp_path / "x.hl7"), "--db", db]) == 2
    assert "exactly one" in capsys.readouterr().err


def test_lots_cd142(
    db: str,
    fcs_pair: tuple[Path, Path, float],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sample, control, _ = fcs_pair
    png = tmp_path / "cd142.png"
    args = ["lots", "cd142", "L-UC-7", str(sample), "--control", str(control), "--db", db]
    code = main([*args, "--channel", "PE-A", "--png", str(png)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert re.search(r"L-UC-7: 3[67]\.\d\d % CD142\+", out.out)
    assert png.exists()
    code = main([*args, "--channel", "APC-A"])
    assert code == 2
    assert "Channels in this file: FSC-A" in capsys.readouterr().err
