"""`hemocompat simulate tem4|loop8|bath|abs96|hematology` serve a simulated instrument until
Ctrl+C, with fault injection from --faults."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.loop8 import Loop8Driver
from drivers.tem4 import Tem4Driver
from drivers.transport import SerialTransport
from instrument.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {
    "tem4": ["--speed", "10", "--faults", "corrupt=0.01,disconnect@60s"],
    "loop8": ["--speed", "10", "--faults", "drop=0.01,stall@seq100=0.5"],
    "bath": ["--speed", "10", "--prewarmed", "--faults", "garbage=0.1,overtemp@600s"],
    "abs96": ["--speed", "10", "--faults", "short_plate,error:CONF=5x1"],
    "hematology": ["--samples", "2", "--faults", "corrupt@1,contention@1,busy@2,noack@3"],
}


def _start(name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "instrument.cli", "simulate", name, *COMMANDS[name]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _banner(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Press Ctrl+C"):
            return "".join(lines)
    raise AssertionError("no banner: " + "".join(lines))


def test_every_instrument_can_be_simulated_standalone_with_faults() -> None:
    procs = {name: _start(name) for name in COMMANDS}
    try:
        banners = {name: _banner(proc) for name, proc in procs.items()}
        for name, banner in banners.items():
            assert "SIMULATED" in banner
            assert "fault injection" in banner, name
        port = {n: re.search(r"socket://127\.0\.0\.1:(\d+)", b) for n, b in banners.items()}
        assert "TCPIP::127.0.0.1::" in banners["abs96"]
        for name, driver_type in (("tem4", Tem4Driver), ("loop8", Loop8Driver)):
            match = port[name]
            assert match is not None
            with driver_type(SerialTransport(f"socket://127.0.0.1:{match.group(1)}")) as driver:
                assert "SIM" in driver.identify().serial
        assert port["bath"] is not None and "circulating at 37.00" in banners["bath"]
        assert "short_plate=True" in banners["abs96"]
        assert "contention" in banners["hematology"] and port["hematology"] is not None
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        outputs = {}
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=20)
            outputs[name] = (proc.returncode, out)
    for name, (code, out) in outputs.items():
        assert code == 0, (name, out)
        assert "Stopping the" in out


@pytest.mark.parametrize("name", ["loop8", "bath", "abs96", "tem4", "hematology"])
def test_a_bad_fault_spec_is_a_clear_error(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", name, "--faults", "explode@3s"]) == 2
    err = capsys.readouterr().err
    assert "explode@3s" in err and "bad fault spec part" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("tem4", "short_plate"),
        ("loop8", "lamp_failure"),
        ("bath", "corrupt=0.1"),
        ("abs96", "drop=0.1"),
    ],
)
def test_a_fault_the_instrument_cannot_have_is_a_clear_error(
    name: str, spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", name, "--faults", spec, "--speed", "10"]) == 2
    err = capsys.readouterr().err
    assert "simulator cannot inject" in err and "Traceback" not in err
