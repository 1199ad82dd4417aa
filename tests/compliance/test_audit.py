"""The audit trail: what is recorded, reasons for changes, and tamper detection."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from instrument.compliance.audit import GENESIS_HASH, Actor, acting_as, entries, verify
from instrument.lots import add_donor, add_lot
from instrument.storage import Store
from tests.compliance.conftest import Cli, Lab, count_rows, counts, make_tem_run


def _sql(db: Path, *statements: str) -> None:
    """Change the SQLite file behind the program's back, as anyone with file access could."""
    with sqlite3.connect(db) as conn:
        for statement in statements:
            conn.execute(statement)


def test_every_change_is_recorded_with_who_what_when(store: Store) -> None:
    with acting_as(Actor("tom", "technician")):
        add_lot(store, {"lot_id": "L-1", "tissue_source": "adipose"})
        add_donor(store, {"donor_id": "D-1"})
        run_id = make_tem_run(store)
        tube = store.register_tube(
            run_id,
            source="loop",
            channel=1,
            time_point_s=0.0,
            tube_type="EDTA",
            volume_ml=1.0,
            simulated=True,
        )
        store.mark_tube(tube, "drawn", drawn_t_s=1.0)
        store.add_sample_value(
            tube,
            analyte="PLT",
            value=200.0,
            unit="10^9/L",
            origin="hand",
            entered_by="tom",
            simulated=False,
        )
        prompt = store.add_prompt(run_id, message="draw", tube_id=tube, due_t_s=0, raised_t_s=0)
        store.update_prompt(prompt, status="acknowledged", answered_by="tom")
    actions = [e["action"] for e in entries(store, limit=None)]
    for action in (
        "lot.create",
        "donor.create",
        "run.create",
        "run.channels",
        "run.status",
        "result.create",
        "tube.register",
        "tube.status",
        "sample_value.add",
        "prompt.raise",
        "prompt.update",
    ):
        assert action in actions
    run_entries = entries(store, run_id=run_id, limit=None)
    assert {e["actor"] for e in run_entries} == {"tom"}
    status = [e for e in run_entries if e["action"] == "run.status"][-1]
    assert status["old_value"] == {"status": "running"}
    assert status["new_value"]["status"] == "completed"
    assert all(e["time"].endswith("+00:00") for e in run_entries)
    assert verify(store).ok


def test_changes_to_existing_records_need_a_reason(cli: Cli, store: Store) -> None:
    assert cli("lots", "add", "L-1", "--tissue-source", "adipose", "--passage", "3")[0] == 0
    before = counts(store, "lots", "audit_trail")
    code, out = cli(
        "lots", "add", "L-1", "--tissue-source", "adipose", "--passage", "4", "--replace"
    )
    assert code == 2 and "needs a reason: add --reason TEXT" in out
    assert counts(store, "lots", "audit_trail") == before
    code, out = cli(
        "lots",
        "add",
        "L-1",
        "--tissue-source",
        "adipose",
        "--passage",
        "4",
        "--replace",
        "--reason",
        "passage misread from the label",
    )
    assert code == 0, out
    change = entries(store, lot_id="L-1", limit=1)[0]
    assert change["action"] == "lot.update" and change["reason"] == "passage misread from the label"
    assert (change["old_value"]["passage"], change["new_value"]["passage"]) == (3, 4)


def test_a_sample_value_correction_needs_a_reason(cli: Cli, store: Store) -> None:
    run_id = make_tem_run(store)
    tube = store.register_tube(
        run_id,
        source="loop",
        channel=1,
        time_point_s=0.0,
        tube_type="EDTA",
        volume_ml=1.0,
        simulated=False,
    )
    assert cli("samples", "set", tube, "--analyte", "PLT", "--value", "182")[0] == 0
    before = counts(store, "sample_values", "audit_trail")
    code, out = cli("samples", "set", tube, "--analyte", "PLT", "--value", "128")
    assert code == 2 and f"{tube} already has PLT = 182" in out and "--reason" in out
    csv_file = Path(str(store.url).removeprefix("sqlite:///")).with_name("values.csv")
    csv_file.write_text(f"tube_id,analyte,value\n{tube},PLT,128\n")
    code, out = cli("samples", "import", str(csv_file))
    assert code == 2 and "nothing imported" in out and "--reason" in out
    assert counts(store, "sample_values", "audit_trail") == before
    code, out = cli(
        "samples", "set", tube, "--analyte", "PLT", "--value", "128", "--reason", "digits swapped"
    )
    assert code == 0, out
    correction = entries(store, run_id=run_id, limit=1)[0]
    assert correction["action"] == "sample_value.correct"
    assert correction["old_value"]["value"] == 182 and correction["new_value"]["value"] == 128
    assert correction["reason"] == "digits swapped"


def test_the_database_refuses_to_update_or_delete_audit_entries(lab: Lab, db: Path) -> None:
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        _sql(db, "UPDATE audit_trail SET actor = 'eve' WHERE seq = 3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        _sql(db, "DELETE FROM audit_trail WHERE seq = 3")
    assert verify(lab.store).ok


def test_an_edited_entry_is_named(cli: Cli, lab: Lab, db: Path) -> None:
    cli.login("ann")
    code, out = cli("audit", "verify")
    assert code == 0 and "audit trail OK" in out
    _sql(
        db,
        "DROP TRIGGER audit_trail_no_update",
        "UPDATE audit_trail SET new_value = replace(new_value, '1', '2') WHERE seq = 3",
    )
    code, out = cli("audit", "verify")
    assert code == 1
    assert "FAILED" in out and "entry 3 (" in out and "was edited after it was written" in out
    result = verify(lab.store)
    assert not result.ok and result.bad_seq == 3 and result.entries == 2


def test_a_deleted_entry_is_named(lab: Lab, db: Path) -> None:
    _sql(db, "DROP TRIGGER audit_trail_no_delete", "DELETE FROM audit_trail WHERE seq = 5")
    result = verify(lab.store)
    assert not result.ok and result.bad_seq == 5
    assert "entry 5 is missing" in result.problem


def test_swapped_entries_are_named(lab: Lab, db: Path) -> None:
    _sql(
        db,
        "DROP TRIGGER audit_trail_no_update",
        "UPDATE audit_trail SET seq = -1 WHERE seq = 4",
        "UPDATE audit_trail SET seq = 4 WHERE seq = 5",
        "UPDATE audit_trail SET seq = 5 WHERE seq = -1",
    )
    result = verify(lab.store)
    assert not result.ok and result.bad_seq == 4
    assert "does not follow entry 3" in result.problem and "reordered" in result.problem


def test_a_rehashed_edit_breaks_the_link_to_the_next_entry(lab: Lab, db: Path) -> None:
    from instrument.compliance.audit import entry_hash

    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM audit_trail WHERE seq = 2").fetchone())
        row["actor"] = "eve"
        conn.execute("DROP TRIGGER audit_trail_no_update")
        conn.execute(
            "UPDATE audit_trail SET actor = 'eve', hash = ? WHERE seq = 2", (entry_hash(row),)
        )
    result = verify(lab.store)
    assert (
        not result.ok
        and result.bad_seq == 3
        and "entry 2 was altered and re-hashed" in result.problem
    )


def test_a_truncated_trail_is_caught_with_a_recorded_head(cli: Cli, lab: Lab, db: Path) -> None:
    head = verify(lab.store)
    _sql(
        db,
        "DROP TRIGGER audit_trail_no_delete",
        f"DELETE FROM audit_trail WHERE seq = {head.head_seq}",
    )
    assert verify(lab.store).ok  # the chain alone cannot see a cut-off tail...
    cli.login("ann")
    code, out = cli("audit", "verify", "--head", head.head_hash)
    assert code == 1 and "truncated" in out  # ...a head hash noted earlier can


def test_audit_show_filters_by_run_and_lot(cli: Cli, lab: Lab) -> None:
    cli.login("ann")
    code, out = cli("audit", "show", "--run", str(lab.run_id), "--limit", "3")
    assert code == 0 and out.count("#") == 3 and "run.status run" in out
    code, out = cli("audit", "show", "--lot", lab.lot_id)
    assert code == 0 and "lot.create lot L-1" in out and "run.create" not in out


def test_concurrent_writers_keep_one_chain(db_url: str) -> None:
    """Two benches writing at once (threads here; processes behave alike) never fork the chain."""
    store = Store(db_url)
    run_id = make_tem_run(store)

    def bench(index: int) -> None:
        own = Store(db_url)
        for i in range(15):
            own.add_event(run_id, source="tem", kind="note", message=f"{index}.{i}")
            own.add_result(
                run_id, source="tem", channel=10 + index, parameters={"i": i}, notes={}, settings={}
            )
        own.close()

    threads = [threading.Thread(target=bench, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    result = verify(store)
    assert result.ok, result.problem
    assert result.entries == count_rows(store, "audit_trail") and result.entries > 45
    assert entries(store, limit=None)[0]["prev_hash"] == GENESIS_HASH
    store.close()


def test_every_database_refuses_changes_to_the_trail(db_url: str) -> None:
    import sqlalchemy as sa

    from instrument.compliance.audit import record_now

    store = Store(db_url)
    record_now(store, "test.entry", "test", 1, new={"x": 1})
    for statement in ("UPDATE audit_trail SET actor = 'eve'", "DELETE FROM audit_trail"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert verify(store).entries == 1
    store.close()
