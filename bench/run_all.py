"""Run every benchmark of the project and print one table of figures.

Benchmarks are the modules ``bench/bench_*.py`` plus ``bench/fuzz.py`` and ``bench/soak.py``;
each has ``main()`` returning ``{figure: value}``. The desktop-app benchmark runs offscreen.
``python bench/run_all.py [--full] [NAME ...]`` runs only the named ones (e.g. ``fuzz soak``).

The fuzzer (100 000 inputs per parser) and the soak (8 device hours of 12 channels at 100 Hz)
take tens of minutes at their defaults, so without ``--full`` they run a shorter version here
(see ``QUICK``) and the table marks their rows ``[quick]``; ``python bench/fuzz.py`` and
``python bench/soak.py`` print the full figures.
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
#: Arguments of the shorter runs of the long benchmarks (without --full).
QUICK = {"fuzz": ["--examples", "10000"], "soak": ["--hours", "0.5"]}


def benchmarks() -> list[str]:
    """Module names of every benchmark, quick ones first."""
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return found + [name for name in LAST if (HERE / f"{name}.py").exists()]


def main(argv: list[str] | None = None) -> int:
    wanted = list(argv if argv is not None else sys.argv[1:])
    full = "--full" in wanted
    wanted = [w for w in wanted if w != "--full"]
    names = [n for n in benchmarks() if not wanted or n in wanted]
    rows: list[tuple[str, str, float]] = []
    failed: list[str] = []
    for name in names:
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            quick = None if full else QUICK.get(name)
            figures = module.main(quick) if quick is not None else module.main()
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            print(f"[bench.{name} FAILED after {time.perf_counter() - start:.1f} s: {exc}]")
            failed.append(name)
            continue
        elapsed = time.perf_counter() - start
        print(f"[bench.{name} done in {elapsed:.1f} s]", flush=True)
        label = name if full or name not in QUICK else f"{name} [quick]"
        rows += [(label, key, float(value)) for key, value in figures.items()]
        rows.append((label, "benchmark wall time (s)", elapsed))
    print()
    print(f"{'benchmark':<18} {'figure':<52} {'value':>16}")
    for bench, key, value in rows:
        print(f"{bench:<18} {key:<52} {value:>16,.2f}")
    quick_run = [n for n in names if n in QUICK and not full]
    if quick_run:
        print(
            f"[quick] {', '.join(quick_run)} ran shortened "
            f"({'; '.join(f'{n} ' + ' '.join(QUICK[n]) for n in quick_run)}); "
            "full figures: python bench/fuzz.py, python bench/soak.py, or run_all.py --full"
        )
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
