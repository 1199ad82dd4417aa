"""Storage on a real SQLite file: runs, bulk samples, duplicates, events, result versions."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from instrument.errors import StorageError
from instrument.storage import SampleRow, Store


def _run(store: Store, **kw: object) -> int:
    args: dict[str, object] = {
        "assay": "thromboelastometry",
        "protocol_id": "p",
        "protocol_version": 1,
        "protocol_title": "t",
        "protocol_source": "p.yaml",
        "protocol_text": "format: 1\n",
        "protocol_sha256": "0" * 64,
        "style": "rotem",
        "operator": "op",
        "simulated": True,
        "duration_s": 60.0,
    }
    args.update(kw)
    return store.create_run(**args)  # type: ignore[arg-type]


def test_file_is_sqlite_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "lab.db")
    _run(store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "lab.db").exists()
    store.close()


def test_samples_bulk_insert_skips_duplicates(db_url: str) -> None:
    store = Store(db_url)
    run_id = _run(store)
    rows = [SampleRow("tem", seq, 1 + seq % 4, seq * 25, seq / 100) for seq in range(1000)]
    store.append_samples(run_id, rows[:600])
    store.append_samples(run_id, rows[500:])  # 100 duplicates re-sent after a replay
    stored = list(store.iter_samples(run_id))
    assert len(stored) == 1000
    assert [s[1] for s in stored] == list(range(1000))
    seqs, t_ms, values = store.channel_samples(run_id, "tem", 2)
    assert seqs == list(range(1, 1000, 4))
    assert t_ms == [s * 25 for s in seqs]
    assert values == pytest.approx([s / 100 for s in seqs])
    store.close()


def test_results_get_new_versions_and_latest_wins(db_url: str) -> None:
    store = Store(db_url)
    run_id = _run(store)
    v1 = store.add_result(
        run_id, source="tem", channel=1, parameters={"CT_s": 300.0}, notes={}, settings={}
    )
    v2 = store.add_result(
        run_id, source="tem", channel=1, parameters={"CT_s": 301.0}, notes={"x": "y"}, settings={}
    )
    assert (v1, v2) == (1, 2)
    latest = store.latest_results(run_id)
    assert len(latest) == 1 and latest[0]["parameters"] == {"CT_s": 301.0}
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from results")).scalar() == 2
    assert store.engine.dialect.name in ("sqlite", "postgresql")
    store.close()


def test_interrupted_runs_are_found(db_url: str) -> None:
    store = Store(db_url)
    run_id = _run(store)
    store.set_status(run_id, "running")
    done = _run(store)
    store.set_status(done, "running")
    store.set_status(done, "completed")
    other = Store(db_url)  # the next program start
    assert other.mark_interrupted_runs() == [run_id]
    other.close()
    assert store.get_run(run_id)["status"] == "interrupted"
    assert store.get_run(done)["status"] == "completed"
    store.close()


def test_unknown_run_and_bad_status_are_clear(db_url: str) -> None:
    store = Store(db_url)
    run_id = _run(store)
    with pytest.raises(StorageError, match=rf"no run 99 .*known runs: {run_id}"):
        store.get_run(99)
    with pytest.raises(ValueError, match="allowed"):
        store.set_status(run_id, "done")
    store.close()


def test_unwritable_database_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot open the results database"):
        Store(f"sqlite:///{blocker}/sub/lab.db")
