"""Run every benchmark of the project and print one table of figures."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BENCHES = ["bench.bench_tem4_parse", "bench.bench_tem_run"]


def main() -> int:
    rows: list[tuple[str, str, float]] = []
    for name in BENCHES:
        module = importlib.import_module(name)
        start = time.perf_counter()
        figures = module.main()
        print(f"[{name} done in {time.perf_counter() - start:.1f} s]")
        rows += [(name.split(".")[-1], key, value) for key, value in figures.items()]
    print()
    print(f"{'benchmark':<22} {'figure':<44} {'value':>14}")
    for bench, key, value in rows:
        print(f"{bench:<22} {key:<44} {value:>14,.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
