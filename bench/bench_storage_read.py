"""Reading one stored 8-hour channel back (100 Hz, 2.88 M samples), as the analysis does.

The channel is written with ``Store.append_samples`` into a temporary SQLite file, then read
with ``Store.channel_samples`` in a fresh process, which reports its wall time and how much
its peak resident memory grew during the read (Linux ``VmHWM``, reset just before it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from instrument.storage import SampleRow, Store

RATE_HZ = 100
HOURS = 8.0
BATCH = 100_000

READER = """
import json, sys, time
from instrument.storage import Store

def hwm_kib():
    # the peak resident set of this process (Linux; ru_maxrss would include the parent's
    # peak, which survives exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

store = Store(sys.argv[1])
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # reset the peak to the current resident set
before = hwm_kib()
start = time.perf_counter()
seq, t_ms, values = store.channel_samples(int(sys.argv[2]), "tem", 1)
wall = time.perf_counter() - start
print(json.dumps({"n": len(seq), "wall": wall, "grow_kib": hwm_kib() - before}))
"""


def main() -> dict[str, float]:
    count = int(RATE_HZ * HOURS * 3600)
    period_ms = 1000 // RATE_HZ
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "read.db"
        store = Store(db)
        run_id = store.create_run(
            assay="thromboelastometry",
            protocol_id="bench",
            protocol_version=1,
            protocol_title="storage read benchmark",
            protocol_source="bench",
            protocol_text="",
            protocol_sha256="0" * 64,
            style="rotem",
            operator="bench",
            simulated=True,
            duration_s=HOURS * 3600,
        )
        start = time.perf_counter()
        for first in range(0, count, BATCH):
            store.append_samples(
                run_id,
                [
                    SampleRow("tem", i, 1, i * period_ms, (i % 7000) / 100.0)
                    for i in range(first, min(count, first + BATCH))
                ],
            )
        write_s = time.perf_counter() - start
        store.close()
        out = subprocess.run(
            [sys.executable, "-c", READER, str(db), str(run_id)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    read = json.loads(out.strip().splitlines()[-1])
    if read["n"] != count:
        raise SystemExit(f"read {read['n']} samples, wrote {count}")
    figures = {
        "samples in the channel": float(count),
        "write, samples per second": count / write_s,
        "read channel_samples wall time (s)": read["wall"],
        "read, resident memory growth (MiB)": read["grow_kib"] / 1024,
    }
    print(f"One stored {HOURS:g}-hour channel at {RATE_HZ} Hz read back (SQLite)")
    for key, value in figures.items():
        print(f"  {key:<40} {value:>12,.1f}")
    return figures


if __name__ == "__main__":
    main()
