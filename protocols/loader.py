"""Load protocol files: read, parse, check the common header, dispatch on `assay`, build."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from ruamel.yaml.nodes import MappingNode

from protocols import elisa, loop, tem
from protocols.assay import (
    COMMON_HINTS,
    COMMON_OPTIONAL,
    COMMON_REQUIRED,
    PROTOCOL_ID,
    PROTOCOL_ID_ALLOWED,
    PROTOCOL_ID_MAX,
    TITLE_MAX,
    AssaySchema,
    Header,
    known,
)
from protocols.checker import Checker, compose, one_of, read_source
from protocols.errors import ProtocolValidationError, ValidationIssue
from protocols.method import is_method_file_name, method_file_issue
from protocols.model import ASSAYS, SUPPORTED_FORMATS, Protocol

#: The section checker of each assay; a new assay adds its schema here and its name to ASSAYS.
ASSAY_SCHEMAS: dict[str, AssaySchema] = {
    "thromboelastometry": tem.SCHEMA,
    "chandler-loop": loop.SCHEMA,
    "elisa": elisa.SCHEMA,
}

_PACKAGE_DIR = Path(__file__).resolve().parent


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol file; raises ProtocolValidationError listing every problem."""
    text, sha256 = read_source(path, "protocol", ProtocolValidationError)
    return _parse(text, str(path), sha256)


def parse_protocol(text: str, source: str = "<string>") -> Protocol:
    """Validate protocol text; source names it in messages (a path, or "<string>")."""
    return _parse(text, source, None)


def check_files(paths: Iterable[str | Path]) -> list[ValidationIssue]:
    """Every issue in the given protocol files; an empty list means all of them are valid."""
    issues: list[ValidationIssue] = []
    for path in paths:
        try:
            load_protocol(path)
        except ProtocolValidationError as exc:
            issues.extend(exc.issues)
    return issues


def bundled_protocols() -> list[Path]:
    """The protocol files shipped with the software, sorted by name (method files left out)."""
    return sorted(p for p in _PACKAGE_DIR.glob("*.yaml") if not is_method_file_name(p))


def _parse(text: str, source: str, sha256: str | None) -> Protocol:
    node, syntax_issues = compose(text, source)
    if syntax_issues:
        raise ProtocolValidationError(syntax_issues)
    if node is None:
        what = "the file is empty; a protocol file is a mapping that starts with `format: 1`"
        raise ProtocolValidationError([ValidationIssue(source, 1, 1, "", what)])

    ck = Checker(source)
    fields = ck.mapping(node, "", "a mapping of protocol keys (format, id, version, ...)")
    if not isinstance(node, MappingNode):
        raise ProtocolValidationError(ck.sorted_issues())
    if (method_issue := method_file_issue(fields, source)) is not None:
        raise ProtocolValidationError([method_issue])

    file_format = None
    if "format" in fields:
        value_node = fields["format"].value
        formats = one_of([str(f) for f in SUPPORTED_FORMATS])
        file_format = ck.integer(value_node, "format", 1, None, allowed=formats)
        if file_format is not None and file_format not in SUPPORTED_FORMATS:
            ck.report(
                value_node,
                "format",
                "unsupported format: this version of the software cannot read it; "
                "update hemocompat",
                got=str(file_format),
                allowed=formats,
            )
            # The keys of a format this software does not know cannot be judged.
            raise ProtocolValidationError(ck.sorted_issues())

    assay = None
    if "assay" in fields:
        assay = ck.choice(fields["assay"].value, "assay", ASSAYS, "assay")
    schema = ASSAY_SCHEMAS.get(assay) if assay is not None else None
    if schema is not None:
        ck.keys(
            node,
            fields,
            "",
            required=(*COMMON_REQUIRED, *schema.required),
            optional=(*COMMON_OPTIONAL, *schema.optional),
            hints={**COMMON_HINTS, **schema.hints},
        )
    else:
        # Without a known assay, only the common keys can be required; every assay's keys count
        # as known so that typos are still caught.
        every_key = {
            key: None for s in ASSAY_SCHEMAS.values() for key in (*s.required, *s.optional)
        }
        ck.keys(
            node,
            fields,
            "",
            required=COMMON_REQUIRED,
            optional=(*COMMON_OPTIONAL, *every_key),
            hints=COMMON_HINTS,
        )

    protocol_id = version = title = None
    description = ""
    if "id" in fields:
        protocol_id = ck.text(
            fields["id"].value,
            "id",
            pattern=PROTOCOL_ID,
            allowed=PROTOCOL_ID_ALLOWED,
            max_length=PROTOCOL_ID_MAX,
        )
    if "version" in fields:
        version = ck.integer(fields["version"].value, "version", 1, None)
    if "title" in fields:
        title = ck.text(fields["title"].value, "title", allowed="text", max_length=TITLE_MAX)
    if "description" in fields:
        description = ck.text(fields["description"].value, "description") or ""

    finish = schema.check(ck, fields) if schema is not None else None
    if ck.issues or finish is None:
        raise ProtocolValidationError(ck.sorted_issues())

    header = Header(
        format=known(file_format),
        id=known(protocol_id),
        version=known(version),
        title=known(title),
        description=description,
        text=text,
        sha256=sha256 if sha256 is not None else hashlib.sha256(text.encode()).hexdigest(),
        source=source,
    )
    return finish(header)
