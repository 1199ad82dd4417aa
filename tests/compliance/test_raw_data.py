"""Raw data stays raw: no update path for samples; re-analysis adds linked result versions."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from instrument import storage
from instrument.compliance.audit import Actor, acting_as, entries
from instrument.compliance.errors import ComplianceError, ReasonRequiredError
from instrument.compliance.reanalysis import reanalyse
from instrument.compliance.signatures import raw_data_sha256
from instrument.storage import Store
from tests.compliance.conftest import NATEM, Lab, counts, make_tem_run


def test_store_has_no_path_that_updates_or_deletes_raw_data() -> None:
    source = inspect.getsource(storage)
    for table in ("samples", "events"):
        assert not re.search(rf"\b{table}\.(update|delete)\(", source)
    assert not re.search(r"\bresults\.(update|delete)\(", source)
    assert "UPDATE samples" not in source.upper().replace("UPDATE SAMPLE_VALUES", "")


@pytest.fixture
def statements(store: Store) -> list[str]:
    seen: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", remember)
    return seen


def test_a_run_and_its_reanalysis_never_touch_stored_samples(
    store: Store, statements: list[str]
) -> None:
    run_id = make_tem_run(store)
    digest = raw_data_sha256(store, run_id)
    with acting_as(Actor("tom", "technician")):
        reanalyse(store, run_id, reason="check")
    touching = [s for s in statements if re.match(r"\s*(UPDATE|DELETE)", s, re.I)]
    assert touching and not any(re.search(r"\b(samples|results)\b", s) for s in touching)
    assert raw_data_sha256(store, run_id) == digest


def test_reanalysis_with_other_thresholds_adds_a_linked_version(lab: Lab, tmp_path: Path) -> None:
    alternative = tmp_path / "natem-ct3.yaml"
    text = NATEM.read_text().replace("ct_threshold_mm: 2.0", "ct_threshold_mm: 3.0")
    alternative.write_text(text.replace("\nversion: 1\n", "\nversion: 7\n"))
    before = {r["channel"]: r for r in lab.store.latest_results(lab.run_id)}
    samples_before = counts(lab.store, "samples")
    with acting_as(Actor("meg", "method-developer")):
        done = reanalyse(lab.store, lab.run_id, reason="CT at 3 mm", protocol_file=alternative)
    assert done.versions == {1: (1, 2), 2: (1, 2)}
    after = {r["channel"]: r for r in lab.store.latest_results(lab.run_id)}
    for ch in (1, 2):
        assert after[ch]["version"] == 2
        assert after[ch]["parameters"]["CT_s"] > before[ch]["parameters"]["CT_s"]
        link = after[ch]["settings"]["reanalysis"]
        assert link["previous_version"] == 1 and link["reason"] == "CT at 3 mm"
        assert link["protocol"]["version"] == 7
        assert after[ch]["settings"]["ct_threshold_mm"] == 3.0
    with lab.store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM reanalyses")).one()._mapping
        versions = conn.execute(sa.text("SELECT count(*) FROM results")).scalar_one()
    assert row["protocol_text"] == alternative.read_text()
    assert row["protocol_sha256"] == hashlib.sha256(alternative.read_bytes()).hexdigest()
    assert json.loads(row["versions"]) == {"1": [1, 2], "2": [1, 2]}
    assert versions == 4  # version 1 stays stored next to version 2
    assert counts(lab.store, "samples") == samples_before
    audit = entries(lab.store, run_id=lab.run_id, limit=3)
    assert [e["action"] for e in audit] == ["result.create", "result.create", "reanalysis.create"]
    assert {(e["actor"], e["reason"]) for e in audit} == {("meg", "CT at 3 mm")}


def test_the_run_keeps_its_exact_protocol_text_and_hash(lab: Lab) -> None:
    run = lab.store.get_run(lab.run_id)
    assert run["protocol_text"] == NATEM.read_text()
    assert run["protocol_sha256"] == hashlib.sha256(run["protocol_text"].encode()).hexdigest()
    with acting_as(Actor("tom", "technician")):
        done = reanalyse(lab.store, lab.run_id, reason="same thresholds")
    assert done.protocol["sha256"] == run["protocol_sha256"]
    assert done.protocol["source"] == "stored with the run"


def test_reanalysis_refusals_write_nothing(lab: Lab, tmp_path: Path) -> None:
    loop = next(p for p in NATEM.parent.glob("chandler-loop-*.yaml"))
    before = counts(lab.store, "results", "reanalyses", "audit_trail")
    with pytest.raises(ReasonRequiredError, match="needs a reason"):
        reanalyse(lab.store, lab.run_id, reason=" ")
    with pytest.raises(ComplianceError, match="cannot re-analyse run"):
        reanalyse(lab.store, lab.run_id, reason="x", protocol_file=loop)
    assert counts(lab.store, "results", "reanalyses", "audit_trail") == before
