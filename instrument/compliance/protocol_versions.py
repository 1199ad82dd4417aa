"""Save a protocol or method file as a new version: a new file with ``version`` + 1, recorded.

The record keeps the new file's exact text and SHA-256 and the SHA-256 of the file it came
from, so every version a method developer released can be told apart and traced. A version
number once recorded for a protocol ID cannot be recorded again with other content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from instrument.compliance.audit import current_actor, os_login, record, sha256_text
from instrument.compliance.errors import ComplianceError
from instrument.compliance.schema import protocol_versions
from instrument.storage import Store, utcnow

_VERSION_LINE = re.compile(r"^(version:[ \t]*)(\d+)([ \t]*(?:#.*)?)$", re.MULTILINE)
_SUFFIX = re.compile(r"-v\d+$")


@dataclass(frozen=True)
class NewVersion:
    kind: str  # protocol | method
    protocol_id: str
    version: int
    path: Path
    sha256: str
    derived_from_sha256: str


def _load(text: str, source: str) -> tuple[str, str, int]:
    """(kind, id, version) of valid protocol or method text; validation errors propagate."""
    from protocols import parse_method, parse_protocol

    if re.search(r"^kind:[ \t]*method\b", text, re.MULTILINE):
        method = parse_method(text, source)
        return "method", method.id, method.version
    protocol = parse_protocol(text, source)
    return "protocol", protocol.id, protocol.version


def default_path(path: Path, version: int) -> Path:
    return path.with_name(f"{_SUFFIX.sub('', path.stem)}-v{version}{path.suffix}")


def new_version(
    store: Store, path: Path, *, out: Path | None = None, reason: str = ""
) -> NewVersion:
    """Write ``path`` with its version raised by one to a new file and record it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ComplianceError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    text = data.decode("utf-8")
    kind, protocol_id, version = _load(text, str(path))
    matches = list(_VERSION_LINE.finditer(text))
    if len(matches) != 1:
        raise ComplianceError(
            f"{path}: expected exactly one top-level `version: N` line, found {len(matches)}"
        )
    new_number = version + 1
    m = matches[0]
    new_text = text[: m.start(2)] + str(new_number) + text[m.end(2) :]
    _load(new_text, str(out or path))  # still valid with the new number
    target = out if out is not None else default_path(path, new_number)
    if target.exists():
        raise ComplianceError(
            f"{target} already exists; a new version goes into a new file (choose --out PATH)"
        )
    with store.engine.begin() as conn:
        digest = _insert(conn, kind, protocol_id, new_number, target, new_text, text, path, reason)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8", newline="") as fh:
            fh.write(new_text)
    return NewVersion(kind, protocol_id, new_number, target, digest, sha256_text(text))


def record_saved_version(
    store: Store, target: Path, *, previous_text: str, previous_path: str, reason: str = ""
) -> NewVersion:
    """Record a new version that an editor has already written to ``target`` (the app)."""
    try:
        new_text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ComplianceError(f"{target}: cannot read it ({exc.strerror or exc})") from None
    kind, protocol_id, number = _load(new_text, str(target))
    with store.engine.begin() as conn:
        digest = _insert(
            conn, kind, protocol_id, number, target, new_text, previous_text, previous_path, reason
        )
    return NewVersion(kind, protocol_id, number, target, digest, sha256_text(previous_text))


def _insert(
    conn: sa.Connection,
    kind: str,
    protocol_id: str,
    number: int,
    target: Path,
    new_text: str,
    old_text: str,
    old_path: Path | str,
    reason: str,
) -> str:
    """Record version ``number`` (refused if already recorded) and audit it; its SHA-256."""
    taken = conn.execute(
        sa.select(protocol_versions.c.sha256, protocol_versions.c.path).where(
            protocol_versions.c.kind == kind,
            protocol_versions.c.protocol_id == protocol_id,
            protocol_versions.c.version == number,
        )
    ).first()
    if taken is not None:
        raise ComplianceError(
            f"{kind} {protocol_id} version {number} is already recorded ({taken[1]}, "
            f"sha256 {taken[0][:12]}…); start from the latest version"
        )
    digest = sha256_text(new_text)
    actor = current_actor()
    conn.execute(
        protocol_versions.insert().values(
            kind=kind,
            protocol_id=protocol_id,
            version=number,
            path=str(target),
            sha256=digest,
            text=new_text,
            derived_from_sha256=sha256_text(old_text),
            reason=reason,
            created_by=actor.name if actor else os_login(),
            created_at=utcnow(),
        )
    )
    old_version = _version_of(old_text, str(old_path))
    record(
        conn,
        f"{kind}.new-version",
        kind,
        protocol_id,
        old={"version": old_version, "path": str(old_path), "sha256": sha256_text(old_text)},
        new={"version": number, "path": str(target), "sha256": digest},
        reason=reason or None,
    )
    return digest


def _version_of(text: str, source: str) -> int | None:
    """The version of earlier text, or None if it was not a valid file (fixed in the editor)."""
    from protocols import ProtocolValidationError

    try:
        return _load(text, source)[2]
    except ProtocolValidationError:
        return None


def recorded_versions(store: Store, protocol_id: str | None = None) -> list[dict[str, object]]:
    query = sa.select(
        protocol_versions.c.kind,
        protocol_versions.c.protocol_id,
        protocol_versions.c.version,
        protocol_versions.c.sha256,
        protocol_versions.c.path,
        protocol_versions.c.created_by,
        protocol_versions.c.created_at,
        protocol_versions.c.reason,
    ).order_by(protocol_versions.c.protocol_id, protocol_versions.c.version)
    if protocol_id is not None:
        query = query.where(protocol_versions.c.protocol_id == protocol_id)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
