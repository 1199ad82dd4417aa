"""What every protocol file has in common, and what each assay's section checker provides."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from protocols.checker import Checker, Fields, one_of
from protocols.model import ASSAYS, SUPPORTED_FORMATS, Protocol

T = TypeVar("T")

#: Keys every protocol file has, whatever its assay.
COMMON_REQUIRED: tuple[str, ...] = ("format", "id", "version", "title", "assay")
COMMON_OPTIONAL: tuple[str, ...] = ("description",)

#: Protocol IDs: lower-case letters, digits and hyphens.
PROTOCOL_ID = re.compile(r"[a-z0-9-]+")
PROTOCOL_ID_ALLOWED = "lower-case letters, digits and '-' (e.g. natem-msc-dose-series)"
PROTOCOL_ID_MAX = 64
TITLE_MAX = 200

#: What each common key takes, for "required key is missing" messages.
COMMON_HINTS: Mapping[str, str] = {
    "format": one_of([str(f) for f in SUPPORTED_FORMATS]),
    "id": PROTOCOL_ID_ALLOWED,
    "version": "a whole number ≥ 1",
    "title": "text",
    "assay": one_of(ASSAYS),
}


@dataclass(frozen=True)
class Header:
    """The validated common keys of a protocol file, with the file's text, hash and origin."""

    format: int
    id: str
    version: int
    title: str
    description: str
    text: str
    sha256: str
    source: str


#: Builds the protocol once the whole file is known to be valid.
Finish = Callable[[Header], Protocol]


@dataclass(frozen=True)
class AssaySchema:
    """The top-level keys an assay adds, and the checker for them.

    `check` reports every problem through the Checker and returns a `Finish` that is called
    only when the file has no issues at all.
    """

    required: tuple[str, ...]
    optional: tuple[str, ...]
    hints: Mapping[str, str]
    check: Callable[[Checker, Fields], Finish]


def known(value: T | None) -> T:
    """A value that validation has guaranteed; called only after a file checked clean."""
    if value is None:
        raise RuntimeError("protocol value used before it was validated")
    return value
