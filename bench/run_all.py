"""Run every benchmark of the project and print one table of figures.

Benchmarks are the modules ``bench/bench_*.py`` plus ``bench/fuzz.py`` and ``bench/soak.py``;
each has ``main()`` returning ``{figure: value}``. The desktop-app benchmark runs offscreen.
``python bench/run_all.py [NAME ...]`` runs only the named ones (e.g. ``fuzz soak``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: Run last: the long ones.
LAST = ["fuzz", "soak"]


def benchmarks() -> list[str]:
    """Module names of every benchmark, quick ones first."""
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return found + [name for name in LAST if (HERE / f"{name}.py").exists()]


def main(argv: list[str] | None = None) -> int:
    wanted = argv if argv is not None else sys.argv[1:]
    names = [n for n in benchmarks() if not wanted or n in wanted]
    rows: list[tuple[str, str, float]] = []
    failed: list[str] = []
    for name in names:
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            figures = module.main()
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            print(f"[bench.{name} FAILED after {time.perf_counter() - start:.1f} s: {exc}]")
            failed.append(name)
            continue
        elapsed = time.perf_counter() - start
        print(f"[bench.{name} done in {elapsed:.1f} s]", flush=True)
        rows += [(name, key, float(value)) for key, value in figures.items()]
        rows.append((name, "benchmark wall time (s)", elapsed))
    print()
    print(f"{'benchmark':<18} {'figure':<52} {'value':>16}")
    for bench, key, value in rows:
        print(f"{bench:<18} {key:<52} {value:>16,.2f}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
