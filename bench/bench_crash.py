"""Crash safety: the data lost when a run is killed with SIGKILL, and recovery afterwards.

Each cycle starts a standalone simulated TEM-4 (4 channels at 100 Hz, 20× real time, in
this process so it can report every frame it generated and keeps measuring), runs
``hemocompat run`` against it in a subprocess through a station file, kills that process
with SIGKILL at a random moment of the acquisition, and measures the *loss window*: device
time between the last stored sample and the last sample the instrument had generated, per
channel (the worst is reported). Then ``hemocompat recover RUN`` reattaches, replays and
finishes the run; the cycle checks that every generated frame is then stored exactly once.
``python bench/bench_crash.py [--cycles N] [--speed X]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CYCLES = 5
SPEED = 20.0
TARGET_LOSS_MS = 1000

PROTOCOL = """\
format: 1
id: crash-tem
version: 1
title: "Crash safety: four channels at 100 Hz"
assay: thromboelastometry
reagent: NATEM
style: rotem
instruments:
  tem: TEM-4
temperature_c: 37.0
equilibration_s: 0
duration_min: 2
sample_rate_hz: 100
samples:
  lot: VL-UC-01
  donor: VD-HEALTHY-01
channels:
  - {channel: 1, contents: vehicle}
  - {channel: 2, contents: lot, dose_cells_per_ml: 1.0e4}
  - {channel: 3, contents: lot, dose_cells_per_ml: 3.0e4}
  - {channel: 4, contents: lot, dose_cells_per_ml: 1.0e5}
analysis:
  amplitude_times_min: [1]
  lysis_index_time_min: 1
"""


def _emitted(sim: object) -> list[tuple[int, int, int, float]]:
    from drivers.wire.tem4 import DataFrame, parse_line

    frames = (parse_line(f) for f in sim.emitted_frames())  # type: ignore[attr-defined]
    return sorted((m.seq, m.channel, m.t_ms, m.amp_mm) for m in frames if isinstance(m, DataFrame))


def _max_t_ms(db: Path) -> int:
    if not db.exists():
        return -1
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            row = conn.execute("SELECT max(t_ms) FROM samples").fetchone()
    except sqlite3.OperationalError:
        return -1
    return -1 if row[0] is None else int(row[0])


def cycle(tmp: Path, index: int, speed: float, rng: random.Random) -> dict[str, float]:
    from instrument.cli import main as cli
    from instrument.simulation import tem_samples
    from instrument.storage import Store
    from protocols import load_protocol
    from simulators.tem4 import Tem4Simulator

    protocol_file = tmp / f"crash-{index}.yaml"
    protocol_file.write_text(PROTOCOL)
    protocol = load_protocol(protocol_file)
    db = tmp / f"crash-{index}.db"
    kill_at_ms = rng.randrange(5_000, 60_000)
    sim = Tem4Simulator(
        tem_samples(protocol.resolved_channels()), seed=index, speed=speed, pty=False, tcp=True
    )
    sim.record_frames()
    with sim:
        station = tmp / f"station-{index}.yaml"
        station.write_text(f"instruments:\n  tem:\n    driver: tem4\n    resource: {sim.url}\n")
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "instrument.cli", "run", str(protocol_file)),
                *("--station", str(station), "--db", str(db), "--operator", "bench"),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while _max_t_ms(db) < kill_at_ms:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the run ended or stalled before it could be killed")
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        generated = _emitted(sim)
        proc.wait(10)
        store = Store(db)
        (run,) = store.list_runs()
        stored = sorted((q, c, t, v) for _s, q, c, t, v in store.iter_samples(run["id"]))
        store.close()
        last_gen: dict[int, int] = {}
        last_stored: dict[int, int] = {}
        for _q, ch, t_ms, _v in generated:
            last_gen[ch] = max(t_ms, last_gen.get(ch, -1))
        for _q, ch, t_ms, _v in stored:
            last_stored[ch] = max(t_ms, last_stored.get(ch, -1))
        loss_ms = max(last_gen[ch] - last_stored.get(ch, 0) for ch in last_gen)
        if stored != generated[: len(stored)]:
            raise SystemExit("the stored data is not the instrument's frames without gaps")
        started = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            saved, sys.stdout = sys.stdout, quiet
            try:
                code = cli(["recover", str(run["id"]), "--db", str(db)])
            finally:
                sys.stdout = saved
        recover_s = time.perf_counter() - started
        store = Store(db)
        final = sorted((q, c, t, v) for _s, q, c, t, v in store.iter_samples(run["id"]))
        status = store.get_run(run["id"])["status"]
        store.close()
        missing = len(set(_emitted(sim)) - set(final))
    if code != 0 or status != "completed":
        raise SystemExit(f"recovery of cycle {index} ended {status}")
    return {
        "loss_ms": float(loss_ms),
        "lost_frames": float(len(generated) - len(stored)),
        "recover_s": recover_s,
        "missing_after_recovery": float(missing),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=CYCLES)
    parser.add_argument("--speed", type=float, default=SPEED)
    args = parser.parse_args(argv if argv is not None else [])
    rng = random.Random(7)
    results = []
    with tempfile.TemporaryDirectory(prefix="hemocompat-crash-") as tmp:
        for index in range(args.cycles):
            results.append(cycle(Path(tmp), index, args.speed, rng))
    losses = [r["loss_ms"] for r in results]
    figures = {
        "kill -9 cycles": float(len(results)),
        "loss window, worst (ms of device time)": max(losses),
        "loss window, median (ms of device time)": statistics.median(losses),
        "frames not stored at the kill, worst": max(r["lost_frames"] for r in results),
        "recover (reattach, replay, finish) median (s)": statistics.median(
            r["recover_s"] for r in results
        ),
        "frames missing after recovery (all cycles)": sum(
            r["missing_after_recovery"] for r in results
        ),
    }
    print(
        f"Crash safety: SIGKILL during acquisition, 4 channels at 100 Hz, {args.speed:g}x "
        f"(target: loss window <= {TARGET_LOSS_MS} ms)"
    )
    for key, value in figures.items():
        print(f"  {key:<48} {value:>10,.1f}")
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
