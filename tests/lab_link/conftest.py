"""Fixtures of the laboratory-link tests: a registry with a loop run and its tubes; no test
may leave a thread, a pty or a socket open."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import flowio  # type: ignore[import-untyped]
import numpy as np
import pytest
from numpy.typing import NDArray

from instrument.storage import Store

_FD_DIR = Path("/proc/self/fd")


def _open_endpoints() -> set[tuple[str, str]]:
    """Open file descriptors that are sockets or pseudo-terminals (Linux only, else empty)."""
    if not _FD_DIR.is_dir():
        return set()
    found = set()
    for fd in os.listdir(_FD_DIR):
        try:
            target = os.readlink(_FD_DIR / fd)
        except OSError:
            continue
        if target.startswith(("socket:", "/dev/pts/", "/dev/ptmx")):
            found.add((fd, target))
    return found


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves behind a thread, pty or socket it opened."""
    threads_before = set(threading.enumerate())
    fds_before = _open_endpoints()
    yield
    deadline = time.monotonic() + 2.0
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        fds = _open_endpoints() - fds_before
        if not (threads or fds) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not threads, f"threads left running: {[t.name for t in threads]}"
    assert not fds, f"ptys or sockets left open: {sorted(fds)}"


@dataclass(frozen=True)
class LoopRegistry:
    """A store holding lot L-UC-7, a completed Chandler-loop run (loop 1: the lot, loop 2:
    vehicle) and four tubes: loop 1 at 0 and 60 min, loop 2 at 0 and 60 min."""

    store: Store
    run_id: int
    tubes: tuple[str, ...]


def make_loop_registry(path: Path, *, simulated: bool = False) -> LoopRegistry:
    from instrument.lots import add_lot

    store = Store(path)
    add_lot(
        store,
        {
            "lot_id": "L-UC-7",
            "tissue_source": "umbilical-cord",
            "passage": 4,
            "viability_pct": 93.0,
            "cd142_pct": 35.0,
            "simulated": simulated,
        },
    )
    run_id = store.create_run(
        assay="chandler-loop",
        protocol_id="loop-test",
        protocol_version=1,
        protocol_title="loop test",
        protocol_source="test",
        protocol_text="",
        protocol_sha256="0" * 64,
        style="loop",
        operator="tester",
        simulated=simulated,
        duration_s=3600.0,
    )
    store.add_channels(
        run_id,
        [
            {
                "source": "loop",
                "channel": 1,
                "contents": "lot",
                "lot_id": "L-UC-7",
                "dose_cells_per_ml": 1e5,
                "donor_id": "D-1",
                "label": "L-UC-7 1e5/mL",
                "quantity": "motion",
                "unit": "permille",
            },
            {
                "source": "loop",
                "channel": 2,
                "contents": "vehicle",
                "lot_id": None,
                "dose_cells_per_ml": 0.0,
                "donor_id": "D-1",
                "label": "vehicle",
                "quantity": "motion",
                "unit": "permille",
            },
        ],
    )
    tubes = []
    for channel in (1, 2):
        for t_s in (0.0, 3600.0):
            tube = store.register_tube(
                run_id,
                source="loop",
                channel=channel,
                time_point_s=t_s,
                tube_type="EDTA",
                volume_ml=1.0,
                simulated=simulated,
            )
            store.mark_tube(tube, "drawn", drawn_t_s=t_s)
            tubes.append(tube)
    store.add_result(
        run_id,
        source="loop",
        channel=1,
        parameters={"clotted": True, "clot_time_s": 1800.0},
        notes={},
        settings={},
    )
    store.set_status(run_id, "running")
    store.set_status(run_id, "completed")
    return LoopRegistry(store, run_id, tuple(tubes))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LoopRegistry]:
    reg = make_loop_registry(tmp_path / "lab.db")
    yield reg
    reg.store.close()


N_EVENTS = 20_000
TRUE_FRACTION = 0.37


def _write_fcs(path: Path, pe: NDArray[np.float64], rng: np.random.Generator) -> Path:
    """FSC-A, SSC-A, FITC-A (CD90), PE-A (CD142) as float32 list-mode data (FCS 3.1)."""
    n = pe.size
    events = np.column_stack(
        [
            rng.normal(60_000, 8_000, n),
            rng.normal(30_000, 5_000, n),
            rng.lognormal(np.log(8_000), 0.4, n),
            pe,
        ]
    ).astype(np.float32)
    with path.open("wb") as fh:
        flowio.create_fcs(
            fh,
            events.flatten().tolist(),
            ["FSC-A", "SSC-A", "FITC-A", "PE-A"],
            opt_channel_names=["", "", "CD90 FITC", "CD142 PE"],
        )
    return path


def _background(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    return rng.lognormal(np.log(120), 0.45, n)


@pytest.fixture
def fcs_pair(tmp_path: Path) -> tuple[Path, Path, float]:
    """A stained sample with 37 % events from a CD142-bright population, its isotype control,
    and the realised positive fraction."""
    rng = np.random.default_rng(142)
    positive = rng.random(N_EVENTS) < TRUE_FRACTION
    stained = np.where(
        positive, rng.lognormal(np.log(6_000), 0.5, N_EVENTS), _background(rng, N_EVENTS)
    )
    sample = _write_fcs(tmp_path / "L-UC-7_CD142.fcs", stained, rng)
    control = _write_fcs(tmp_path / "L-UC-7_isotype.fcs", _background(rng, N_EVENTS), rng)
    return sample, control, 100.0 * positive.mean()
