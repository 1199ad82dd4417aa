"""Wall time of the bundled 60-min 4-channel NATEM protocol on a simulated TEM-4 at max speed."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from instrument.engine import RunEngine, RunOptions
from instrument.station import simulated_station
from instrument.storage import Store
from protocols import bundled_protocols, load_protocol


def main() -> dict[str, float]:
    path = next(p for p in bundled_protocols() if p.name == "natem-msc-dose-series.yaml")
    protocol = load_protocol(path)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        engine = RunEngine(
            protocol, simulated_station(), store, RunOptions(operator="bench", speed=math.inf)
        )
        start = time.perf_counter()
        outcome = engine.run()
        wall = time.perf_counter() - start
        samples = engine.samples_stored
        store.close()
    if outcome.status != "completed":
        raise SystemExit(f"benchmark run did not complete: {outcome.detail}")
    figures = {
        "60-min 4-ch protocol wall time (s)": wall,
        "speed-up over real time (x)": protocol.duration_s / wall,
        "samples stored": float(samples),
        "samples stored per wall second": samples / wall,
    }
    print("TEM-4 end-to-end run at max speed (target: <= 15 s)")
    for key, value in figures.items():
        print(f"  {key:<40} {value:>12,.1f}")
    return figures


if __name__ == "__main__":
    main()
