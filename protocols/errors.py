"""Validation issues with file:line:column positions, and the error that carries all of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class ValidationIssue:
    """One thing wrong in a protocol file, at a 1-based line and column (0 for the whole file)."""

    source: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        # Line 0 marks an issue with the file as a whole (missing, unreadable).
        where = f"{self.source}:{self.line}:{self.column}" if self.line > 0 else self.source
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class ProtocolValidationError(Exception):
    """A protocol file cannot be used; `issues` lists every problem found, in file order."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [str(issue) for issue in self.issues]
        count = len(self.issues)
        lines.append(f"{count} error{'s' if count != 1 else ''} found")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()
