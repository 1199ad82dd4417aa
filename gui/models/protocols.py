"""The protocol library (bundled + the user's folder) and the document open in the editor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gui.events import Emitter
from protocols import (
    ProtocolValidationError,
    TemProtocol,
    ValidationIssue,
    bundled_protocols,
    load_protocol,
    parse_protocol,
)

#: The top-level ``version:`` line of a protocol file (comments after it are kept).
_VERSION_LINE = re.compile(r"^(version[ \t]*:[ \t]*)(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class ProtocolEntry:
    """One protocol file of the library, as far as it could be read."""

    path: Path
    bundled: bool
    protocol_id: str | None = None
    version: int | None = None
    assay: str | None = None
    title: str = ""
    detail: str = ""
    error: str | None = None

    @property
    def name(self) -> str:
        if self.protocol_id is None:
            return self.path.name
        return f"{self.protocol_id} v{self.version}"

    @property
    def short_name(self) -> str:
        """For narrow lists: ``natem-msc-dose-series v1 · NATEM``."""
        if self.error:
            return f"{self.path.name} (not valid)"
        return f"{self.name} · {self.detail or self.assay}"

    @property
    def summary(self) -> str:
        if self.error:
            return f"{self.path.name} — not valid"
        what = self.assay or "?"
        return f"{self.name} — {what}{f' ({self.detail})' if self.detail else ''}"


def read_entry(path: Path, bundled: bool) -> ProtocolEntry:
    try:
        p = load_protocol(path)
    except ProtocolValidationError as exc:
        first = exc.issues[0] if exc.issues else None
        return ProtocolEntry(path, bundled, error=str(first) if first else str(exc))
    detail = p.reagent if isinstance(p, TemProtocol) else ""
    return ProtocolEntry(path, bundled, p.id, p.version, p.assay, p.title, detail)


class ProtocolLibrary:
    """Bundled protocols and the user's folder; ``changed`` fires after :meth:`refresh`."""

    def __init__(self, user_dir: Path) -> None:
        self.user_dir = user_dir
        self.entries: list[ProtocolEntry] = []
        self.changed = Emitter()

    def refresh(self) -> None:
        entries = [read_entry(p, bundled=True) for p in bundled_protocols()]
        if self.user_dir.is_dir():
            entries += [read_entry(p, bundled=False) for p in sorted(self.user_dir.glob("*.yaml"))]
        self.entries = entries
        self.changed.emit()

    def entry(self, path: Path) -> ProtocolEntry | None:
        resolved = path.resolve()
        return next((e for e in self.entries if e.path.resolve() == resolved), None)

    def find(self, file_name: str) -> ProtocolEntry | None:
        return next((e for e in self.entries if e.path.name == file_name), None)

    def highest_version(self, protocol_id: str) -> int:
        return max(
            (e.version or 0 for e in self.entries if e.protocol_id == protocol_id), default=0
        )


def bump_version(text: str, new_version: int) -> str:
    """The text with its top-level ``version:`` set to ``new_version`` (all else unchanged)."""
    bumped, count = _VERSION_LINE.subn(lambda m: f"{m.group(1)}{new_version}", text, count=1)
    if count != 1:
        raise ValueError("the protocol has no top-level `version:` line to bump")
    return bumped


class ProtocolDocument:
    """The protocol text being edited and what validating it found.

    ``changed`` fires after :meth:`open`, :meth:`validate` and a save.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self.bundled = False
        self.saved_text = ""
        self.text = ""
        self.protocol: Any = None
        self.issues: list[ValidationIssue] = []
        self.validated_text: str | None = None
        self.changed = Emitter()

    @property
    def source(self) -> str:
        return self.path.name if self.path is not None else "<new protocol>"

    @property
    def modified(self) -> bool:
        return self.text != self.saved_text

    @property
    def valid(self) -> bool:
        return self.protocol is not None and self.validated_text == self.text

    def open(self, path: Path, bundled: bool) -> None:
        self.path, self.bundled = path, bundled
        self.saved_text = self.text = path.read_text(encoding="utf-8")
        self.validate()

    def set_text(self, text: str) -> None:
        """Record an edit; validation follows (the editor debounces it)."""
        self.text = text

    def validate(self) -> None:
        """Parse the current text; keep the protocol or the issues found."""
        text = self.text
        try:
            if self.path is not None and not self.modified:
                # The file itself, so the run stores its real path and hash.
                protocol: Any = load_protocol(self.path)
            else:
                protocol = parse_protocol(text, self.source)
        except ProtocolValidationError as exc:
            self.protocol, self.issues = None, list(exc.issues)
        else:
            self.protocol, self.issues = protocol, []
        self.validated_text = text
        self.changed.emit()

    def run_blocker(self) -> str | None:
        """Why this document cannot be run now; None when it can."""
        if self.path is None and not self.text:
            return "choose a protocol"
        if self.validated_text != self.text:
            return "checking the protocol…"
        if self.protocol is None:
            count = len(self.issues)
            first = self.issues[0] if self.issues else None
            where = (
                f" (first at line {first.line}:{first.column}: {first.message})" if first else ""
            )
            return f"the protocol has {count} error{'s' if count != 1 else ''}{where}"
        if self.modified:
            return (
                "the protocol has unsaved changes: save it as a new version first, so the "
                "run refers to a versioned file"
            )
        return None

    def save_new_version(self, library: ProtocolLibrary) -> Path:
        """Write the text with the next free version as ``<id>-v<N>.yaml`` (never overwrites)."""
        if not self.valid:
            raise ValueError("only a valid protocol can be saved as a new version")
        protocol_id = self.protocol.id
        version = max(self.protocol.version, library.highest_version(protocol_id)) + 1
        library.user_dir.mkdir(parents=True, exist_ok=True)
        while True:
            path = library.user_dir / f"{protocol_id}-v{version}.yaml"
            text = bump_version(self.text, version)
            try:
                with path.open("x", encoding="utf-8", newline="") as fh:
                    fh.write(text)
            except FileExistsError:
                version += 1
                continue
            break
        self.path, self.bundled = path, False
        self.saved_text = self.text = text
        self.validate()
        library.refresh()
        return path
