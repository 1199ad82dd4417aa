"""Soak: an 8-hour acquisition of 12 channels at 100 Hz, run at free-running speed.

Three standalone TEM-4 simulators (``hemocompat simulate tem4 --speed max``, each in its own
process) measure four channels at 100 Hz; three run engines (each in its own process, as
three benches would run them) record them through the real path — socket transport, driver
sequencing, the run's buffers and writer, SQLite — for 8 hours of device time, then analyse.
Real time would be 12 × 100 = 1 200 samples/s; the target is at least 10× that.

Printed: wall time, samples stored per wall second (and × real time), and each engine
process's resident memory (VmRSS from /proc/self/status) after the first 10 % of the
acquisition, at its end, the growth in between, and the peak during the final analysis.
``python bench/soak.py [--hours H] [--instruments N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RATE_HZ = 100
CHANNELS = 4
REALTIME_PER_INSTRUMENT = RATE_HZ * CHANNELS
TARGET_X = 10.0
RSS_EVERY_S = 0.5

PROTOCOL = """\
format: 1
id: soak-tem
version: 1
title: "Soak: four channels at 100 Hz"
assay: thromboelastometry
reagent: NATEM
style: rotem
instruments:
  tem: TEM-4
temperature_c: 37.0
temperature_tolerance_c: 0.5
equilibration_s: 0
duration_min: 240
sample_rate_hz: 100
samples:
  lot: VL-UC-01
  donor: VD-HEALTHY-01
channels:
  - {channel: 1, contents: vehicle}
  - {channel: 2, contents: lot, dose_cells_per_ml: 1.0e4}
  - {channel: 3, contents: lot, dose_cells_per_ml: 3.0e4}
  - {channel: 4, contents: lot, dose_cells_per_ml: 1.0e5}
"""


def rss_mib() -> float:
    """Resident memory of this process (VmRSS), MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _start_simulator(protocol_file: Path, seed: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "instrument.cli", "simulate", "tem4", "--speed", "max"),
            *("--seed", str(seed), "--protocol", str(protocol_file)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:
        found = re.search(r"socket://127\.0\.0\.1:\d+", line)
        if found:
            url = found.group(0)
        if line.startswith("Press Ctrl+C"):
            break
    if not url:
        proc.kill()
        raise SystemExit("the TEM-4 simulator did not start")
    return proc, url


def _engine_worker(index: int, url: str, db: str, hours: float, results: Any) -> None:
    """One run engine on one TEM-4 (a process of its own): acquire, analyse, report."""
    try:
        _engine_run(index, url, db, hours, results)
    except BaseException as exc:
        results.put({"index": index, "status": "error", "detail": repr(exc)})
        raise


def _engine_run(index: int, url: str, db: str, hours: float, results: Any) -> None:
    from instrument.engine import RunEngine
    from instrument.runbase import RunObserver, RunOptions
    from instrument.station import InstrumentSpec, Station
    from instrument.storage import Store
    from protocols import parse_protocol

    protocol = dataclasses.replace(parse_protocol(PROTOCOL, "soak.yaml"), duration_s=hours * 3600)
    station = Station("soak", {"tem": InstrumentSpec("tem", "tem4", url)}, "soak")
    expected = hours * 3600 * REALTIME_PER_INSTRUMENT
    marks: dict[str, float] = {}

    class Observer(RunObserver):
        def step_started(self, index: int, step: Any) -> None:
            if step.kind == "acquire":
                marks["acquire"] = time.time()
            elif step.kind == "stop_channel" and "stopped" not in marks:
                marks["stopped"] = time.time()
            elif step.kind == "analyse":
                marks["analyse"] = time.time()

    store = Store(db)
    engine = RunEngine(protocol, station, store, RunOptions(operator="soak"), Observer())
    series: list[tuple[float, float, int]] = []
    done = threading.Event()

    def monitor() -> None:
        next_report = time.time() + 30
        while not done.wait(RSS_EVERY_S):
            series.append((time.time(), rss_mib(), engine.samples_stored))
            if time.time() >= next_report:
                next_report += 30
                print(
                    f"  engine {index}: {engine.samples_stored:,} samples stored, "
                    f"RSS {series[-1][1]:.0f} MiB",
                    flush=True,
                )

    watcher = threading.Thread(target=monitor, name="soak-rss", daemon=True)
    watcher.start()
    rss_start = rss_mib()
    outcome = engine.run()
    finished = time.time()
    done.set()
    watcher.join()
    stored = store.get_run(outcome.run_id)["sample_count"]
    store.close()
    final = engine.samples_stored
    stored_at = next((s[0] for s in series if s[2] >= final), finished)
    acquiring = [s for s in series if marks.get("acquire", 0) <= s[0] <= stored_at]
    warm = next(
        (s for s in acquiring if s[2] >= 0.1 * expected), acquiring[0] if acquiring else None
    )
    end = acquiring[-1] if acquiring else None
    results.put(
        {
            "index": index,
            "status": outcome.status,
            "detail": outcome.detail,
            "stored": stored,
            "acquire_at": marks.get("acquire", float("nan")),
            "stopped_at": marks.get("stopped", float("nan")),
            "analyse_at": marks.get("analyse", float("nan")),
            "stored_at": stored_at,
            "finished_at": finished,
            "rss_start": rss_start,
            "rss_warm": warm[1] if warm else float("nan"),
            "rss_end_acquisition": end[1] if end else float("nan"),
            "rss_peak": max((s[1] for s in series), default=float("nan")),
            "link_problems": sum(
                v for k, v in outcome.link_stats.items() if k.endswith(("gaps", "data_lost"))
            ),
        }
    )


def soak(hours: float, instruments: int) -> dict[str, float]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hemocompat-soak-") as tmp:
        protocol_file = Path(tmp) / "soak.yaml"
        protocol_file.write_text(PROTOCOL)
        db = str(Path(tmp) / "soak.db")
        from instrument.storage import Store

        Store(db).close()  # the schema exists before the engines start: they time acquisition
        sims = [_start_simulator(protocol_file, seed) for seed in range(instruments)]
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        workers = [
            ctx.Process(
                target=_engine_worker,
                args=(i, url, db, hours, results),
                name=f"soak-engine-{i}",
            )
            for i, (_proc, url) in enumerate(sims)
        ]
        try:
            for w in workers:
                w.start()
            reports = [results.get(timeout=3 * 3600) for _ in workers]
            for w in workers:
                w.join(60)
        finally:
            for w in workers:
                if w.is_alive():
                    w.terminate()
            for proc, _url in sims:
                proc.send_signal(signal.SIGINT)
            for proc, _url in sims:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        wall = time.perf_counter() - started
    bad = [r for r in reports if r["status"] != "completed"]
    if bad:
        raise SystemExit(f"soak run(s) did not complete: {[r['detail'] for r in bad]}")
    stored = sum(r["stored"] for r in reports)
    t0 = min(r["acquire_at"] for r in reports)
    t1 = max(r["stored_at"] for r in reports)
    rate = stored / (t1 - t0)
    realtime = REALTIME_PER_INSTRUMENT * instruments
    growth = max(r["rss_end_acquisition"] - r["rss_warm"] for r in reports)
    figures = {
        "device hours recorded": hours,
        "channels at 100 Hz": float(CHANNELS * instruments),
        "samples stored": float(stored),
        "acquisition + storage wall time (s)": t1 - t0,
        "stored samples per wall second": rate,
        "x real time (1 200 samples/s)": rate / realtime,
        "analysis wall time, slowest run (s)": max(
            r["finished_at"] - r["analyse_at"] for r in reports
        ),
        "total wall time (s)": wall,
        "RSS after 10 % of acquisition, max (MiB)": max(r["rss_warm"] for r in reports),
        "RSS at end of acquisition, max (MiB)": max(r["rss_end_acquisition"] for r in reports),
        "RSS growth during acquisition, max (MiB)": growth,
        "RSS peak incl. analysis, max (MiB)": max(r["rss_peak"] for r in reports),
        "gaps + frames lost (all links)": float(sum(r["link_problems"] for r in reports)),
    }
    print(
        f"Soak: {hours:g} h of {CHANNELS * instruments} channels at {RATE_HZ} Hz "
        f"({instruments} TEM-4 simulators at max speed, one engine process each, one database)"
    )
    for key, value in figures.items():
        print(f"  {key:<44} {value:>14,.1f}")
    verdict = "met" if rate >= TARGET_X * realtime else "MISSED"
    print(f"  storage throughput target ≥ {TARGET_X:g}× real time: {verdict}")
    return figures


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0, help="Device hours to record.")
    parser.add_argument("--instruments", type=int, default=3, help="TEM-4s of 4 channels.")
    args = parser.parse_args(argv if argv is not None else [])
    return soak(args.hours, args.instruments)


if __name__ == "__main__":
    main(sys.argv[1:])
