"""Electronic signatures: meaning, password re-entry, binding to content, shown in reports."""

from __future__ import annotations

from pathlib import Path

from instrument.compliance.audit import Actor, acting_as, entries
from instrument.compliance.signatures import signature_statuses
from instrument.report_data import build_lot_report
from instrument.reports import write_csv
from tests.compliance.conftest import PASSWORDS, Cli, Lab, add_assessment, counts

SIGNED = ("signatures", "audit_trail")


def _sign(cli: Cli, *args: str, password: str = PASSWORDS["ann"]) -> tuple[int, str]:
    return cli("sign", *args, password=password)


def test_a_signature_without_meaning_is_refused(cli: Cli, lab: Lab) -> None:
    cli.login("ann")
    before = counts(lab.store, *SIGNED)
    code, out = _sign(cli, "run", str(lab.run_id))
    assert code == 2 and "a signature needs a meaning" in out and "nothing was signed" in out
    code, out = _sign(cli, "run", str(lab.run_id), "--meaning", "looks fine")
    assert code == 2 and "meaning 'looks fine' is not defined" in out
    assert counts(lab.store, *SIGNED) == before


def test_signing_needs_the_password_again(cli: Cli, lab: Lab) -> None:
    cli.login("ann")
    before = counts(lab.store, "signatures")
    code, out = _sign(cli, "run", str(lab.run_id), "--meaning", "approval", password="not-it")
    assert code == 2 and "wrong" in out and "password" in out
    assert counts(lab.store, "signatures") == before
    assert entries(lab.store, limit=1)[0]["action"] == "signature.failed"


def test_a_signed_run_turns_invalid_after_reanalysis(cli: Cli, lab: Lab) -> None:
    cli.login("ann")
    code, out = _sign(cli, "run", str(lab.run_id), "--meaning", "review")
    assert code == 0, out
    code, out = cli("signatures", "show", "run", str(lab.run_id))
    assert code == 0 and "Ann Example (ann, reviewer)" in out and "VALID" in out
    assert "INVALID" not in out
    cli.login("tom")
    code, out = cli("reanalyse", str(lab.run_id), "--reason", "second look at CT")
    assert code == 0, out
    code, out = cli("signatures", "show", "run", str(lab.run_id))
    assert code == 0 and "INVALID" in out and "changed since signing: results" in out
    [status] = signature_statuses(lab.store, "run", str(lab.run_id))
    assert not status.valid and status.meaning == "review" and status.username == "ann"
    signed = [
        e
        for e in entries(lab.store, run_id=lab.run_id, limit=None)
        if e["action"] == "signature.create"
    ]
    assert signed[0]["new_value"]["content_sha256"] == status.content_sha256


def test_a_run_signature_covers_sample_values(cli: Cli, lab: Lab) -> None:
    tube = lab.store.register_tube(
        lab.run_id,
        source="loop",
        channel=1,
        time_point_s=0.0,
        tube_type="EDTA",
        volume_ml=1.0,
        simulated=True,
    )
    lab.store.add_sample_value(
        tube,
        analyte="PLT",
        value=210.0,
        unit="10^9/L",
        origin="hand",
        entered_by="tom",
        simulated=True,
    )
    cli.login("ann")
    assert _sign(cli, "run", str(lab.run_id), "--meaning", "approval")[0] == 0
    with acting_as(Actor("tom", "technician")):
        lab.store.add_sample_value(
            tube,
            analyte="PLT",
            value=120.0,
            unit="10^9/L",
            origin="hand",
            entered_by="tom",
            simulated=True,
            reason="transcription error",
        )
    [status] = signature_statuses(lab.store, "run", str(lab.run_id))
    assert not status.valid and status.changed == ("sample_values",)


def test_lot_signature_follows_the_latest_assessment(cli: Cli, lab: Lab, tmp_path: Path) -> None:
    add_assessment(lab.store, lab.lot_id, [lab.run_id], "iv-acceptable")
    cli.login("ann")
    code, out = _sign(cli, "lot", lab.lot_id, "--meaning", "approval", "--comment", "QA release")
    assert code == 0, out
    report = build_lot_report(lab.store, lab.lot_id)
    assert [(s["object"], s["meaning"], s["status"]) for s in report.signatures] == [
        ("lot L-1", "approval", "VALID")
    ]
    paths = write_csv(report, tmp_path / "csv")
    signatures_csv = tmp_path / "csv" / "signatures.csv"
    assert signatures_csv in paths
    assert "Ann Example (ann),reviewer,approval" in signatures_csv.read_text()
    add_assessment(lab.store, lab.lot_id, [lab.run_id], "iv-with-dose-cap")
    code, out = cli("signatures", "show", "lot", lab.lot_id)
    assert code == 0 and "INVALID" in out and "assessment" in out and "QA release" in out
    assert build_lot_report(lab.store, lab.lot_id).signatures[0]["status"] == "INVALID"


def test_a_lot_without_assessment_cannot_be_signed(cli: Cli, lab: Lab) -> None:
    cli.login("ann")
    before = counts(lab.store, *SIGNED)
    code, out = _sign(cli, "lot", lab.lot_id, "--meaning", "approval")
    assert code == 2 and "no assessment to sign" in out
    assert counts(lab.store, *SIGNED) == before


def test_signatures_cannot_be_edited_in_the_database(lab: Lab, cli: Cli, db: Path) -> None:
    import sqlite3

    import pytest

    cli.login("ann")
    assert _sign(cli, "run", str(lab.run_id), "--meaning", "review")[0] == 0
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), sqlite3.connect(db) as conn:
        conn.execute("UPDATE signatures SET meaning = 'approval'")


def test_pdf_and_workbook_list_the_signatures_with_their_validity(tmp_path: Path) -> None:
    from dataclasses import replace

    import openpyxl
    from pypdf import PdfReader

    from instrument.reports import write_pdf, write_xlsx
    from tests.reports.sample import lot_report, standard_curve_png

    signed = {
        "signer": "Ann Example (ann)",
        "role": "reviewer",
        "signed_at": "2026-01-05T10:00:00.000+00:00",
        "changed_since_signing": "",
    }
    report = replace(
        lot_report(standard_curve_png(tmp_path / "curve.png"), simulated=False),
        signatures=(
            {
                **signed,
                "object": "lot L-1",
                "meaning": "approval",
                "status": "VALID",
                "content_sha256": "a" * 64,
            },
            {
                **signed,
                "object": "run 3",
                "meaning": "review",
                "status": "INVALID",
                "content_sha256": "b" * 64,
                "changed_since_signing": "results",
            },
        ),
    )
    text = " ".join(
        p.extract_text() for p in PdfReader(write_pdf(report, tmp_path / "r.pdf")).pages
    )
    assert "Electronic signatures" in text and "INVALID" in text and "approval" in text
    book = openpyxl.load_workbook(write_xlsx(report, tmp_path / "r.xlsx"))
    rows = list(book["Signatures"].iter_rows(values_only=True))
    assert rows[0][:6] == ("object", "signer", "role", "meaning", "signed_at", "status")
    assert [r[5] for r in rows[1:]] == ["VALID", "INVALID"]
