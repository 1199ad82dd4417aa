"""Run storage through SQLAlchemy Core: SQLite (WAL) by default, any SQLAlchemy URL later.

Raw samples are appended with bulk inserts in small transactions; raw data is never
updated, and re-analysis adds a new result version.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from platformdirs import user_data_dir
from sqlalchemy.engine import Engine

from instrument import migrations
from instrument.errors import StorageError

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(36), nullable=False, unique=True),
    sa.Column("assay", sa.String(40), nullable=False),
    sa.Column("protocol_id", sa.String(120), nullable=False),
    sa.Column("protocol_version", sa.Integer, nullable=False),
    sa.Column("protocol_title", sa.Text, nullable=False),
    sa.Column("protocol_source", sa.Text, nullable=False),
    sa.Column("protocol_text", sa.Text, nullable=False),
    sa.Column("protocol_sha256", sa.String(64), nullable=False),
    sa.Column("style", sa.String(16), nullable=False),
    sa.Column("operator", sa.String(120), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("status_detail", sa.Text, nullable=False, default=""),
    sa.Column("simulated", sa.Boolean, nullable=False),
    sa.Column("seed", sa.Integer, nullable=True),
    sa.Column("speed", sa.Float, nullable=True),
    sa.Column("software_version", sa.String(40), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("started_at", sa.String(32), nullable=True),
    sa.Column("ended_at", sa.String(32), nullable=True),
    sa.Column("duration_s", sa.Float, nullable=False),
)

run_instruments = sa.Table(
    "run_instruments",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("role", sa.String(40), primary_key=True),
    sa.Column("manufacturer", sa.String(120), nullable=False),
    sa.Column("model", sa.String(120), nullable=False),
    sa.Column("serial", sa.String(120), nullable=False),
    sa.Column("firmware", sa.String(120), nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("simulated", sa.Boolean, nullable=False),
)

run_channels = sa.Table(
    "run_channels",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("channel", sa.Integer, primary_key=True),
    sa.Column("contents", sa.String(20), nullable=False),
    sa.Column("lot_id", sa.String(120), nullable=True),
    sa.Column("dose_cells_per_ml", sa.Float, nullable=False),
    sa.Column("donor_id", sa.String(120), nullable=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("quantity", sa.String(40), nullable=False),
    sa.Column("unit", sa.String(20), nullable=False),
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("channel", sa.Integer, nullable=False),
    sa.Column("t_ms", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "source", "seq"),
)
sa.Index("ix_samples_channel_time", samples.c.run_id, samples.c.channel, samples.c.t_ms)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("wall_time", sa.String(32), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("channel", sa.Integer, nullable=True),
    sa.Column("t_ms", sa.Integer, nullable=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False, default="{}"),
)

results = sa.Table(
    "results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("channel", sa.Integer, nullable=False),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("notes", sa.Text, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("software_version", sa.String(40), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

tubes = sa.Table(
    "tubes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tube_id", sa.String(20), nullable=False, unique=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("channel", sa.Integer, nullable=False),
    sa.Column("time_point_s", sa.Float, nullable=False),
    sa.Column("tube_type", sa.String(20), nullable=False),
    sa.Column("volume_ml", sa.Float, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("drawn_t_s", sa.Float, nullable=True),
    sa.Column("drawn_at", sa.String(32), nullable=True),
    sa.Column("simulated", sa.Boolean, nullable=False),
)

sample_values = sa.Table(
    "sample_values",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tube_id", sa.String(20), sa.ForeignKey("tubes.tube_id"), nullable=False),
    sa.Column("analyte", sa.String(40), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("unit", sa.String(20), nullable=False),
    sa.Column("flag", sa.String(40), nullable=False, default=""),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("entered_by", sa.String(120), nullable=False),
    sa.Column("entered_at", sa.String(32), nullable=False),
    sa.Column("simulated", sa.Boolean, nullable=False),
)
sa.Index("ix_sample_values_tube", sample_values.c.tube_id, sample_values.c.analyte)

prompts = sa.Table(
    "prompts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("tube_id", sa.String(20), nullable=True),
    sa.Column("due_t_s", sa.Float, nullable=False),
    sa.Column("raised_at", sa.String(32), nullable=False),
    sa.Column("raised_t_s", sa.Float, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("overdue", sa.Boolean, nullable=False, default=False),
    sa.Column("answered_at", sa.String(32), nullable=True),
    sa.Column("answered_t_s", sa.Float, nullable=True),
    sa.Column("answered_by", sa.String(120), nullable=True),
)

RUN_STATUSES = ("created", "running", "completed", "aborted", "failed", "interrupted")


def all_tables_metadata() -> sa.MetaData:
    """``metadata`` with every table of the results database registered on it.

    The lot, ELISA and compliance modules add their tables when imported; this imports
    them, for schema creation and migrations.
    """
    import instrument.elisa_run
    import instrument.lots  # noqa: F401

    return metadata


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hemocompat")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def default_db_path() -> Path:
    """The default database file under the platform's user data directory."""
    override = os.environ.get("HEMOCOMPAT_DB")
    if override:
        return Path(override)
    return Path(user_data_dir("hemocompat", appauthor=False)) / "hemocompat.db"


def db_url(db: str | Path | None) -> str:
    """Turn a ``--db`` argument (file path or SQLAlchemy URL) into a URL."""
    if db is None:
        db = default_db_path()
    text = str(db)
    if "://" in text:
        return text
    path = Path(text).expanduser()
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class SampleRow:
    """One raw sample as stored: instrument ``source`` role, device ``seq``, channel, time."""

    source: str
    seq: int
    channel: int
    t_ms: int
    value: float


class Store:
    """A results database. Thread-safe: each call uses its own connection/transaction."""

    def __init__(self, db: str | Path | None = None) -> None:
        self.url = db_url(db)
        try:
            self.engine: Engine = sa.create_engine(self.url, future=True)
            # pooled connections are closed when the Store goes away, even if nobody calls close()
            weakref.finalize(self, self.engine.dispose)
            if self.engine.dialect.name == "sqlite":
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self._migrate()
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(
                f"cannot open the results database {self.url}: {exc.__class__.__name__}: "
                f"{_first_line(exc)}. Check the path/URL and that you may write there "
                "(choose another with --db PATH)."
            ) from exc

    def _migrate(self) -> None:
        """Bring the schema up to date, one process at a time: several may open a new
        database at once (benches, a run and the app). PostgreSQL serialises them with an
        advisory lock; SQLite with its write lock, taken before anything is read (``BEGIN
        IMMEDIATE``, since the driver would otherwise run the DDL outside any transaction)."""
        with self.engine.connect() as conn:
            if migrations.current(conn) == migrations.head():
                return  # the usual case: no lock needed
        if self.engine.dialect.name != "sqlite":
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7249113)"))
                migrations.upgrade(conn, url=self.url)
            return
        with self.engine.connect() as conn:
            dbapi = conn.connection.driver_connection
            assert dbapi is not None
            level = dbapi.isolation_level
            dbapi.isolation_level = None  # no implicit BEGIN/COMMIT: the one below holds
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    migrations.upgrade(conn, url=self.url)
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            finally:
                conn.rollback()  # ends the connection's own bookkeeping; nothing is open
                dbapi.isolation_level = level

    def close(self) -> None:
        self.engine.dispose()

    # -- runs -------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        assay: str,
        protocol_id: str,
        protocol_version: int,
        protocol_title: str,
        protocol_source: str,
        protocol_text: str,
        protocol_sha256: str,
        style: str,
        operator: str,
        simulated: bool,
        duration_s: float,
        seed: int | None = None,
        speed: float | None = None,
    ) -> int:
        values = {
            "uid": str(uuid.uuid4()),
            "assay": assay,
            "protocol_id": protocol_id,
            "protocol_version": protocol_version,
            "protocol_title": protocol_title,
            "protocol_source": protocol_source,
            "protocol_text": protocol_text,
            "protocol_sha256": protocol_sha256,
            "style": style,
            "operator": operator,
            "status": "created",
            "status_detail": "",
            "simulated": simulated,
            "seed": seed,
            "speed": speed if speed is None or speed < 1e300 else None,
            "software_version": software_version(),
            "host": socket.gethostname(),
            "created_at": utcnow(),
            "duration_s": duration_s,
        }
        with self.engine.begin() as conn:
            result = conn.execute(runs.insert().values(**values))
            key = result.inserted_primary_key
            assert key is not None
            shown = {k: v for k, v in values.items() if k != "protocol_text"}
            _audit(conn, "run.create", "run", key[0], new=shown, run_id=int(key[0]))
            return int(key[0])

    def set_status(self, run_id: int, status: str, detail: str = "") -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; allowed: {', '.join(RUN_STATUSES)}")
        values: dict[str, Any] = {"status": status, "status_detail": detail}
        if status == "running":
            values["started_at"] = utcnow()
        elif status != "created":
            values["ended_at"] = utcnow()
        with self.engine.begin() as conn:
            old = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
            conn.execute(runs.update().where(runs.c.id == run_id).values(**values))
            _audit(
                conn, "run.status", "run", run_id, old={"status": old}, new=values, run_id=run_id
            )

    def add_instrument(
        self,
        run_id: int,
        role: str,
        *,
        manufacturer: str,
        model: str,
        serial: str,
        firmware: str,
        resource: str,
        simulated: bool,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                run_instruments.insert().values(
                    run_id=run_id,
                    role=role,
                    manufacturer=manufacturer,
                    model=model,
                    serial=serial,
                    firmware=firmware,
                    resource=resource,
                    simulated=simulated,
                )
            )
            identity = {"role": role, "model": model, "serial": serial, "firmware": firmware}
            _audit(conn, "run.instrument", "run", run_id, new=identity, run_id=run_id)

    def add_channels(self, run_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(run_channels.insert(), [{"run_id": run_id, **row} for row in rows])
            lot_ids = sorted({str(r["lot_id"]) for r in rows if r.get("lot_id")})
            _audit(
                conn,
                "run.channels",
                "run",
                run_id,
                new=[dict(r) for r in rows],
                run_id=run_id,
                lot_id=lot_ids[0] if len(lot_ids) == 1 else None,
            )

    def mark_interrupted_runs(self) -> list[int]:
        """Mark runs left 'running' by a process that died as 'interrupted'; return their ids."""
        with self.engine.begin() as conn:
            ids = [
                int(r[0])
                for r in conn.execute(sa.select(runs.c.id).where(runs.c.status == "running"))
            ]
            if ids:
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(ids))
                    .values(
                        status="interrupted",
                        status_detail="the program stopped while the run was acquiring",
                    )
                )
                for run_id in ids:
                    _audit(
                        conn,
                        "run.status",
                        "run",
                        run_id,
                        old={"status": "running"},
                        new={"status": "interrupted"},
                        run_id=run_id,
                    )
        return ids

    # -- raw data -------------------------------------------------------------------------
    def append_samples(self, run_id: int, rows: Sequence[SampleRow]) -> int:
        """Bulk-insert raw samples in one transaction; a sample already stored is skipped."""
        if not rows:
            return 0
        payload = [
            {
                "run_id": run_id,
                "source": r.source,
                "seq": r.seq,
                "channel": r.channel,
                "t_ms": r.t_ms,
                "value": r.value,
            }
            for r in rows
        ]
        with self.engine.begin() as conn:
            conn.execute(_insert_ignoring_duplicates(self.engine, samples), payload)
        return len(payload)

    def add_event(
        self,
        run_id: int,
        *,
        source: str,
        kind: str,
        message: str,
        channel: int | None = None,
        t_ms: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                events.insert().values(
                    run_id=run_id,
                    wall_time=utcnow(),
                    source=source,
                    channel=channel,
                    t_ms=t_ms,
                    kind=kind,
                    message=message,
                    data=json.dumps(dict(data or {}), sort_keys=True),
                )
            )

    def add_result(
        self,
        run_id: int,
        *,
        source: str,
        channel: int,
        parameters: Mapping[str, Any],
        notes: Mapping[str, str],
        settings: Mapping[str, Any],
        reason: str | None = None,
    ) -> int:
        """Store a result; each analysis of the same channel adds a new version."""
        with self.engine.begin() as conn:
            latest = conn.execute(
                sa.select(sa.func.max(results.c.version)).where(
                    results.c.run_id == run_id,
                    results.c.source == source,
                    results.c.channel == channel,
                )
            ).scalar()
            version = int(latest or 0) + 1
            conn.execute(
                results.insert().values(
                    run_id=run_id,
                    version=version,
                    source=source,
                    channel=channel,
                    parameters=json.dumps(dict(parameters)),
                    notes=json.dumps(dict(notes), sort_keys=True),
                    settings=json.dumps(dict(settings), sort_keys=True),
                    software_version=software_version(),
                    created_at=utcnow(),
                )
            )
            new = {"version": version, "parameters": dict(parameters)}
            _audit(
                conn,
                "result.create",
                "result",
                f"{run_id}/{source}/{channel}/v{version}",
                new=new,
                reason=reason,
                run_id=run_id,
            )
        return version

    # -- sample registry and prompts ---------------------------------------------------------
    def register_tube(
        self,
        run_id: int,
        *,
        source: str,
        channel: int,
        time_point_s: float,
        tube_type: str,
        volume_ml: float,
        simulated: bool,
    ) -> str:
        """Give a new tube its unique ID (``S-000123``, also its barcode value)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                tubes.insert().values(
                    tube_id=f"pending-{uuid.uuid4().hex[:12]}",
                    run_id=run_id,
                    source=source,
                    channel=channel,
                    time_point_s=time_point_s,
                    tube_type=tube_type,
                    volume_ml=volume_ml,
                    status="planned",
                    simulated=simulated,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            tube_id = f"S-{int(key[0]):06d}"
            conn.execute(tubes.update().where(tubes.c.id == key[0]).values(tube_id=tube_id))
            new = {"channel": channel, "time_point_s": time_point_s, "tube_type": tube_type}
            _audit(conn, "tube.register", "tube", tube_id, new=new, run_id=run_id)
        return tube_id

    def mark_tube(self, tube_id: str, status: str, drawn_t_s: float | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        if status == "drawn":
            values.update(drawn_t_s=drawn_t_s, drawn_at=utcnow())
        with self.engine.begin() as conn:
            old = conn.execute(sa.select(tubes).where(tubes.c.tube_id == tube_id)).first()
            conn.execute(tubes.update().where(tubes.c.tube_id == tube_id).values(**values))
            _audit(
                conn,
                "tube.status",
                "tube",
                tube_id,
                new=values,
                old=None if old is None else {"status": old.status},
                run_id=None if old is None else old.run_id,
            )

    def tubes(self, run_id: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(tubes).order_by(tubes.c.id)
        if run_id is not None:
            query = query.where(tubes.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def tube(self, tube_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tubes).where(tubes.c.tube_id == tube_id)).first()
        if row is None:
            raise StorageError(f"no sample tube {tube_id!r} in {self.url}")
        return dict(row._mapping)

    def add_sample_value(
        self,
        tube_id: str,
        *,
        analyte: str,
        value: float | None,
        unit: str,
        origin: str,
        entered_by: str,
        simulated: bool,
        flag: str = "",
        reason: str | None = None,
    ) -> None:
        """Attach a measured value to a tube; a later value for the same analyte supersedes it.

        The audit trail records a superseded value with ``reason`` (hand corrections must give
        one: see ``instrument.compliance.audit.require_correction_reason``), or else the origin
        of the new value.
        """
        tube = self.tube(tube_id)
        old = self.latest_sample_value(tube_id, analyte)
        if old is not None and not reason:
            reason = f"superseded by a new value ({origin})"
        with self.engine.begin() as conn:
            conn.execute(
                sample_values.insert().values(
                    tube_id=tube_id,
                    analyte=analyte,
                    value=value,
                    unit=unit,
                    flag=flag,
                    origin=origin,
                    entered_by=entered_by,
                    entered_at=utcnow(),
                    simulated=simulated,
                )
            )
            new = {
                "analyte": analyte,
                "value": value,
                "unit": unit,
                "flag": flag,
                "origin": origin,
                "entered_by": entered_by,
            }
            shown = None if old is None else {k: old[k] for k in ("value", "unit", "origin")}
            _audit(
                conn,
                "sample_value.add" if old is None else "sample_value.correct",
                "tube",
                tube_id,
                old=shown,
                new=new,
                reason=reason,
                run_id=tube["run_id"],
            )

    def latest_sample_value(self, tube_id: str, analyte: str) -> dict[str, Any] | None:
        """The value that counts now for one analyte of one tube, or None."""
        query = (
            sa.select(sample_values)
            .where(sample_values.c.tube_id == tube_id, sample_values.c.analyte == analyte)
            .order_by(sample_values.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else dict(row._mapping)

    def sample_values(self, run_id: int, analyte: str | None = None) -> list[dict[str, Any]]:
        """The latest value of each analyte of each tube of a run, with the tube's fields."""
        query = (
            sa.select(sample_values, tubes.c.channel, tubes.c.time_point_s, tubes.c.drawn_t_s)
            .join(tubes, tubes.c.tube_id == sample_values.c.tube_id)
            .where(tubes.c.run_id == run_id)
            .order_by(sample_values.c.id)
        )
        if analyte is not None:
            query = query.where(sample_values.c.analyte == analyte)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            latest[(row["tube_id"], row["analyte"])] = row
        return list(latest.values())

    def add_prompt(
        self, run_id: int, *, message: str, tube_id: str | None, due_t_s: float, raised_t_s: float
    ) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                prompts.insert().values(
                    run_id=run_id,
                    message=message,
                    tube_id=tube_id,
                    due_t_s=due_t_s,
                    raised_at=utcnow(),
                    raised_t_s=raised_t_s,
                    status="open",
                    overdue=False,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            new = {"message": message, "tube_id": tube_id, "due_t_s": due_t_s}
            _audit(conn, "prompt.raise", "prompt", key[0], new=new, run_id=run_id)
            return int(key[0])

    def update_prompt(self, prompt_id: int, **values: Any) -> None:
        if values.get("status") == "acknowledged":
            values.setdefault("answered_at", utcnow())
        with self.engine.begin() as conn:
            old = conn.execute(sa.select(prompts).where(prompts.c.id == prompt_id)).first()
            conn.execute(prompts.update().where(prompts.c.id == prompt_id).values(**values))
            _audit(
                conn,
                "prompt.update",
                "prompt",
                prompt_id,
                new=values,
                old=None if old is None else {k: old._mapping[k] for k in values},
                run_id=None if old is None else old.run_id,
            )

    def prompts(self, run_id: int) -> list[dict[str, Any]]:
        query = sa.select(prompts).where(prompts.c.run_id == run_id).order_by(prompts.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- reading ----------------------------------------------------------------------------
    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def get_run(self, run_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
            if row is None:
                known = [r[0] for r in conn.execute(sa.select(runs.c.id).order_by(runs.c.id))]
                hint = f"known runs: {_id_ranges(known)}" if known else "the database is empty"
                raise StorageError(f"no run {run_id} in {self.url} ({hint})")
            run = dict(row._mapping)
            run["instruments"] = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(run_instruments).where(run_instruments.c.run_id == run_id)
                )
            ]
            run["channels"] = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(run_channels)
                    .where(run_channels.c.run_id == run_id)
                    .order_by(run_channels.c.source, run_channels.c.channel)
                )
            ]
            run["sample_count"] = conn.execute(
                sa.select(sa.func.count()).select_from(samples).where(samples.c.run_id == run_id)
            ).scalar_one()
        return run

    def events(self, run_id: int) -> list[dict[str, Any]]:
        query = sa.select(events).where(events.c.run_id == run_id).order_by(events.c.id)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["data"] = json.loads(row["data"])
        return rows

    def latest_results(self, run_id: int) -> list[dict[str, Any]]:
        """The newest result version of every channel of a run."""
        with self.engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(results)
                    .where(results.c.run_id == run_id)
                    .order_by(results.c.source, results.c.channel, results.c.version)
                )
            ]
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for row in rows:
            row["parameters"] = json.loads(row["parameters"])
            row["notes"] = json.loads(row["notes"])
            row["settings"] = json.loads(row["settings"])
            latest[(row["source"], row["channel"])] = row
        return list(latest.values())

    def channel_samples(
        self, run_id: int, source: str, channel: int
    ) -> tuple[list[int], list[int], list[float]]:
        """(seq, t_ms, value) of one channel in time order."""
        query = (
            sa.select(samples.c.seq, samples.c.t_ms, samples.c.value)
            .where(
                samples.c.run_id == run_id,
                samples.c.source == source,
                samples.c.channel == channel,
            )
            .order_by(samples.c.t_ms, samples.c.seq)
        )
        seqs: list[int] = []
        times: list[int] = []
        values: list[float] = []
        # An 8-hour channel is ~3 M rows: fetched in parts (as Row objects all at once they
        # would need twice the memory), with the cyclic garbage collector paused meanwhile
        # (millions of new objects would make it rescan the growing lists again and again).
        with self.engine.connect() as conn, _collector_paused():
            result = conn.execute(query)
            while part := result.fetchmany(50_000):
                seqs.extend([r[0] for r in part])
                times.extend([r[1] for r in part])
                values.extend([r[2] for r in part])
        return seqs, times, values

    def iter_samples(self, run_id: int) -> Iterable[tuple[str, int, int, int, float]]:
        """Every raw sample of a run as (source, seq, channel, t_ms, value), in seq order."""
        query = (
            sa.select(
                samples.c.source, samples.c.seq, samples.c.channel, samples.c.t_ms, samples.c.value
            )
            .where(samples.c.run_id == run_id)
            .order_by(samples.c.source, samples.c.seq)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                yield (row[0], row[1], row[2], row[3], row[4])


def _audit(conn: sa.Connection, action: str, object_type: str, object_id: Any, **kw: Any) -> None:
    """Append to the audit trail in the caller's transaction (instrument.compliance.audit)."""
    _compliance_audit.record(conn, action, object_type, object_id, **kw)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _insert_ignoring_duplicates(engine: Engine, table: sa.Table) -> Any:
    name = engine.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    return table.insert()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk load (restored as it was, so a
    program that keeps it off, like the desktop app, stays in control)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _id_ranges(ids: list[int]) -> str:
    if len(ids) <= 6:
        return ", ".join(map(str, ids))
    return f"{ids[0]}…{ids[-1]} ({len(ids)} runs)"


# Every results database also holds the users, the audit trail and the signatures; importing
# here (after everything above exists) registers their tables on ``metadata``.
from instrument.compliance import audit as _compliance_audit  # noqa: E402
