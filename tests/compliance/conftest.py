"""Fixtures: a lab database with users of every role and a thromboelastometry run with results.

The run is built from a synthetic trace (no instruments), so the tests stay fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from instrument.analysis.tem import compute_tem_parameters
from instrument.cli import main
from instrument.compliance import users as users_module
from instrument.compliance.audit import Actor, acting_as
from instrument.compliance.users import add_user, init_admin
from instrument.lots import LotData, add_lot, store_assessment
from instrument.storage import SampleRow, Store
from protocols import bundled_protocols, load_protocol
from protocols.model import TemProtocol

NATEM = next(p for p in bundled_protocols() if p.name == "natem-msc-dose-series.yaml")
PASSWORDS = {
    "root": "hunter-42-admin",
    "tom": "blue-ocean-17",
    "ann": "green-field-29",
    "meg": "red-mountain-38",
}
ROLES = {"tom": "technician", "ann": "reviewer", "meg": "method-developer"}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Session files in a temporary folder; no password or database from the environment.

    Password hashes use argon2id with the smallest cost, so the tests stay fast; the program
    uses argon2-cffi's default (RFC 9106) parameters.
    """
    monkeypatch.setattr(
        users_module, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    monkeypatch.setenv("HEMOCOMPAT_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("HEMOCOMPAT_PASSWORD", "HEMOCOMPAT_NEW_PASSWORD", "HEMOCOMPAT_DB"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Cli:
    """Runs ``hemocompat`` in-process against one database; returns (exit code, output)."""

    db: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(
        self,
        *args: str,
        password: str | None = None,
        new_password: str | None = None,
        with_db: bool = True,
    ) -> tuple[int, str]:
        for name, value in (
            ("HEMOCOMPAT_PASSWORD", password),
            ("HEMOCOMPAT_NEW_PASSWORD", new_password),
        ):
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        self.capsys.readouterr()
        code = main([*args, "--db", str(self.db)] if with_db else list(args))
        captured = self.capsys.readouterr()
        return code, " ".join((captured.out + captured.err).split())

    def login(self, user: str) -> None:
        code, out = self("login", user, password=PASSWORDS[user])
        assert code == 0, out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "lab.db"


@pytest.fixture
def cli(db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(db, capsys, monkeypatch)


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


RATE_HZ = 2.0


def synthetic_trace(ct_s: float, duration_s: float, rate_hz: float = RATE_HZ) -> list[float]:
    """A clot curve reaching 2 mm at ``ct_s`` and about 60 mm in the end."""
    t = np.arange(0.0, duration_s + 1e-9, 1.0 / rate_hz)
    mcf, k, n = 60.0, 1.0 / 240.0, 1.0
    t0 = ct_s + math.log1p(-2.0 / mcf) / k
    amp = np.where(t > t0, mcf * (1.0 - np.exp(-k * np.clip(t - t0, 0.0, None))) ** n, 0.0)
    return [round(float(a), 2) for a in amp]


def make_tem_run(store: Store, lot_id: str = "L-1") -> int:
    """A completed NATEM run (vehicle + one dose of ``lot_id``) with version-1 results."""
    protocol = load_protocol(NATEM)
    assert isinstance(protocol, TemProtocol)
    run_id = store.create_run(
        assay=protocol.assay,
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        protocol_title=protocol.title,
        protocol_source=protocol.source,
        protocol_text=protocol.text,
        protocol_sha256=protocol.sha256,
        style=protocol.style,
        operator="tom",
        simulated=True,
        duration_s=protocol.duration_s,
    )
    store.add_channels(
        run_id,
        [
            {
                "source": "tem",
                "channel": ch,
                "contents": "vehicle" if ch == 1 else "lot",
                "lot_id": None if ch == 1 else lot_id,
                "dose_cells_per_ml": 0.0 if ch == 1 else 1e5,
                "donor_id": "D-1",
                "label": "vehicle" if ch == 1 else f"{lot_id} @ 1e5/mL",
                "quantity": "amplitude",
                "unit": "mm",
            }
            for ch in (1, 2)
        ],
    )
    store.set_status(run_id, "running")
    seq = 0
    for ch, ct_s in ((1, 420.0), (2, 300.0)):
        values = synthetic_trace(ct_s, protocol.duration_s)
        step_ms = round(1000 / RATE_HZ)
        rows = [SampleRow("tem", seq + i, ch, i * step_ms, v) for i, v in enumerate(values)]
        seq += len(rows)
        store.append_samples(run_id, rows)
        params = compute_tem_parameters(
            np.arange(len(values)) / RATE_HZ, np.asarray(values), protocol.analysis, protocol.style
        )
        parameters = dict(params.to_dict(protocol.style))
        store.add_result(
            run_id,
            source="tem",
            channel=ch,
            parameters=parameters,
            notes={},
            settings={"ct_threshold_mm": protocol.analysis.ct_threshold_mm},
        )
    store.set_status(run_id, "completed")
    return run_id


def add_assessment(store: Store, lot_id: str, run_ids: list[int], class_id: str) -> int:
    """A lot assessment as the panel would store it (the indices themselves are not tested here)."""
    method = SimpleNamespace(id="msc-iv", version=1, sha256="a" * 64, text="kind: method\n")
    body: dict[str, Any] = {"decision": {"class_id": class_id}, "explanation": "test"}
    assessment = SimpleNamespace(class_id=class_id, to_dict=lambda: body)
    data = LotData(lot={}, run_ids=tuple(run_ids), tem=(), loops=(), simulated=True)
    return store_assessment(store, lot_id, method, data, assessment)


@dataclass
class Lab:
    store: Store
    run_id: int
    lot_id: str


@pytest.fixture
def lab(store: Store) -> Lab:
    """Data recorded in open bench mode, then the users: root (admin), tom, ann, meg."""
    add_lot(store, {"lot_id": "L-1", "tissue_source": "umbilical-cord", "simulated": True})
    run_id = make_tem_run(store)
    setup = Actor("setup", "open-bench")
    with acting_as(setup):
        init_admin(
            store, "root", full_name="Rita Root", password=PASSWORDS["root"], created_by="setup"
        )
    with acting_as(Actor("root", "admin")):
        for user, role in ROLES.items():
            add_user(
                store,
                user,
                full_name=f"{user.title()} Example",
                roles=[role],
                password=PASSWORDS[user],
                created_by="root",
            )
    return Lab(store, run_id, "L-1")


def count_rows(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def counts(store: Store, *tables: str) -> dict[str, int]:
    return {t: count_rows(store, t) for t in tables}
