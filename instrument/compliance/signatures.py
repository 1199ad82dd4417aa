"""Electronic signatures bound to the exact content they sign (21 CFR 11.50, 11.70, 11.200).

A signature records the signer (user name and full name), the time, the meaning (review or
approval) and the SHA-256 of a canonical JSON of what was signed:

- a run: its protocol hash, status, the latest result version of every channel, the latest
  value of every tube analyte and a digest of every raw sample and plate reading;
- a lot: its registry record, its latest assessment and the content hashes of the runs
  behind that assessment.

The content is recomputed whenever signatures are shown: a signature stays VALID while the
content is unchanged and turns INVALID when anything it covered changes (a re-analysis adds
a result version, a value is corrected, a new assessment is made).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from instrument.compliance.audit import (
    Actor,
    acting_as,
    canonical_json,
    current_actor,
    record,
    sha256_text,
)
from instrument.compliance.errors import ComplianceError
from instrument.compliance.schema import signatures
from instrument.compliance.users import REVIEWER, authenticate
from instrument.storage import Store, utcnow

MEANINGS = {
    "review": "reviewed: the data and results are complete and correctly derived",
    "approval": "approved: the results are accepted for their intended use",
}
OBJECT_TYPES = ("run", "lot")


def raw_data_sha256(store: Store, run_id: int) -> str:
    """SHA-256 over every raw sample (and plate reading) of a run, in storage order."""
    from instrument.elisa_run import plate_reads

    digest = hashlib.sha256()
    for source, seq, channel, t_ms, value in store.iter_samples(run_id):
        digest.update(f"{source},{seq},{channel},{t_ms},{value!r}\n".encode())
    query = (
        sa.select(plate_reads.c.wavelength_nm, plate_reads.c.well, plate_reads.c.od)
        .where(plate_reads.c.run_id == run_id)
        .order_by(plate_reads.c.wavelength_nm, plate_reads.c.well)
    )
    with store.engine.connect() as conn:
        if sa.inspect(conn).has_table(plate_reads.name):  # no plate was ever read: no table
            for nm, well, od in conn.execute(query):
                digest.update(f"plate,{nm},{well},{od!r}\n".encode())
    return digest.hexdigest()


def run_content(store: Store, run_id: int) -> dict[str, Any]:
    """What a run signature covers."""
    run = store.get_run(run_id)
    results = sorted(store.latest_results(run_id), key=lambda r: (r["source"], r["channel"]))
    values = sorted(store.sample_values(run_id), key=lambda v: (v["tube_id"], v["analyte"]))
    return {
        "object": "run",
        "run_id": run_id,
        "uid": run["uid"],
        "assay": run["assay"],
        "protocol_id": run["protocol_id"],
        "protocol_version": run["protocol_version"],
        "protocol_sha256": run["protocol_sha256"],
        "status": run["status"],
        "simulated": bool(run["simulated"]),
        "results": [
            {
                "source": r["source"],
                "channel": r["channel"],
                "version": r["version"],
                "parameters": r["parameters"],
                "notes": r["notes"],
                "settings": r["settings"],
            }
            for r in results
        ],
        "sample_values": [
            {k: v[k] for k in ("tube_id", "analyte", "value", "unit", "flag", "origin")}
            for v in values
        ],
        "raw_data_sha256": raw_data_sha256(store, run_id),
    }


def lot_content(store: Store, lot_id: str) -> dict[str, Any]:
    """What a lot signature covers: the lot, its latest assessment and the runs behind it."""
    from instrument.lots import get_lot, latest_assessment

    lot = get_lot(store, lot_id)
    latest = latest_assessment(store, lot_id)
    if latest is None:
        raise ComplianceError(
            f"lot {lot_id} has no assessment to sign: run `hemocompat assess {lot_id}` first"
        )
    return {
        "object": "lot",
        "lot": lot,
        "assessment_id": latest["id"],
        "method_id": latest["method_id"],
        "method_version": latest["method_version"],
        "method_sha256": latest["method_sha256"],
        "class_id": latest["class_id"],
        "assessment": latest["assessment"],
        "runs": {
            str(r): sha256_text(canonical_json(run_content(store, int(r))))
            for r in latest["run_ids"]
        },
    }


def content_of(store: Store, object_type: str, object_id: str) -> dict[str, Any]:
    if object_type == "run":
        try:
            run_id = int(object_id)
        except ValueError:
            raise ComplianceError(f"run {object_id!r}: a run is named by its number") from None
        return run_content(store, run_id)
    if object_type == "lot":
        return lot_content(store, object_id)
    raise ComplianceError(f"cannot sign a {object_type!r}; sign a {' or a '.join(OBJECT_TYPES)}")


def check_meaning(meaning: str | None) -> str:
    if meaning is None or not meaning.strip():
        raise ComplianceError(
            "a signature needs a meaning: add --meaning "
            + " or --meaning ".join(MEANINGS)
            + " (nothing was signed)"
        )
    if meaning not in MEANINGS:
        raise ComplianceError(
            f"signature meaning {meaning!r} is not defined; meanings: {', '.join(MEANINGS)}"
        )
    return meaning


def sign(
    store: Store,
    object_type: str,
    object_id: str,
    *,
    meaning: str | None,
    password: str,
    comment: str = "",
) -> int:
    """Sign a run or a lot as the logged-in reviewer, who re-enters their password."""
    meaning = check_meaning(meaning)
    actor = current_actor()
    if actor is None or REVIEWER not in actor.role.split(","):
        raise ComplianceError("electronic signatures are given by a logged-in reviewer")
    content = content_of(store, object_type, object_id)
    if object_type == "run":
        if content["status"] in ("created", "running"):
            raise ComplianceError(
                f"run {object_id} is still {content['status']}; sign it once it has ended"
            )
        if not content["results"]:
            raise ComplianceError(f"run {object_id} has no results to sign")
    user = authenticate(store, actor.name, password, purpose="signature")
    text = canonical_json(content)
    digest = sha256_text(text)
    row = {
        "object_type": object_type,
        "object_id": str(object_id),
        "username": user.username,
        "full_name": user.full_name,
        "role": REVIEWER,
        "meaning": meaning,
        "comment": comment,
        "signed_at": utcnow(),
        "content_sha256": digest,
        "content": text,
    }
    with acting_as(Actor(user.username, REVIEWER)), store.engine.begin() as conn:
        result = conn.execute(signatures.insert().values(**row))
        key = result.inserted_primary_key
        assert key is not None
        signature_id = int(key[0])
        record(
            conn,
            "signature.create",
            object_type,
            object_id,
            new={"signature_id": signature_id, **{k: v for k, v in row.items() if k != "content"}},
            reason=comment or None,
            run_id=int(object_id) if object_type == "run" else None,
            lot_id=str(object_id) if object_type == "lot" else None,
        )
    return signature_id


@dataclass(frozen=True)
class SignatureStatus:
    id: int
    object_type: str
    object_id: str
    username: str
    full_name: str
    role: str
    meaning: str
    comment: str
    signed_at: str
    content_sha256: str
    valid: bool
    changed: tuple[str, ...]  # what differs from the signed content (empty while valid)

    @property
    def status(self) -> str:
        return "VALID" if self.valid else "INVALID"

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "changed": list(self.changed), "status": self.status}


def _changed(signed: dict[str, Any], current: dict[str, Any]) -> tuple[str, ...]:
    keys = sorted(set(signed) | set(current))
    return tuple(k for k in keys if canonical_json(signed.get(k)) != canonical_json(current.get(k)))


def signature_statuses(store: Store, object_type: str, object_id: str) -> list[SignatureStatus]:
    """Every signature of a run or lot, oldest first, checked against the current content."""
    query = (
        sa.select(signatures)
        .where(signatures.c.object_type == object_type, signatures.c.object_id == str(object_id))
        .order_by(signatures.c.id)
    )
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    if not rows:
        return []
    current = content_of(store, object_type, str(object_id))
    current_sha = sha256_text(canonical_json(current))
    out = []
    for row in rows:
        stored_ok = sha256_text(row["content"]) == row["content_sha256"]
        valid = stored_ok and row["content_sha256"] == current_sha
        changed: tuple[str, ...] = ()
        if not valid:
            changed = _changed(json.loads(row["content"]), current) if stored_ok else ("record",)
        out.append(
            SignatureStatus(
                id=row["id"],
                object_type=row["object_type"],
                object_id=row["object_id"],
                username=row["username"],
                full_name=row["full_name"],
                role=row["role"],
                meaning=row["meaning"],
                comment=row["comment"],
                signed_at=row["signed_at"],
                content_sha256=row["content_sha256"],
                valid=valid,
                changed=changed,
            )
        )
    return out


def count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(signatures)).scalar_one())


def report_signatures(store: Store, lot_id: str, run_ids: list[int]) -> tuple[dict[str, Any], ...]:
    """The signatures of a lot and of the runs in its report, checked now, for the report."""
    found = [
        *signature_statuses(store, "lot", lot_id),
        *(s for run_id in run_ids for s in signature_statuses(store, "run", str(run_id))),
    ]
    return tuple(
        {
            "object": f"{s.object_type} {s.object_id}",
            "signer": f"{s.full_name} ({s.username})",
            "role": s.role,
            "meaning": s.meaning,
            "signed_at": s.signed_at,
            "content_sha256": s.content_sha256,
            "status": s.status,
            "changed_since_signing": ", ".join(s.changed),
        }
        for s in found
    )
