"""Decision-method files: the thresholds, release criteria and ordered class rules of the indices.

A method file says how per-lot hemocompatibility indices turn into a class and a suggested
route (docs/indices.md). It is YAML like a protocol file and is checked the same way, every
problem reported at its file:line:column, but it carries `kind: method` instead of `assay:`.
Nothing of the decision is fixed in code: every number and every word of a class comes from
the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from protocols.assay import PROTOCOL_ID, PROTOCOL_ID_ALLOWED, PROTOCOL_ID_MAX, TITLE_MAX, known
from protocols.checker import (
    Checker,
    Entry,
    Fields,
    child_path,
    compose,
    item_path,
    number_range,
    one_of,
    read_source,
    show,
)
from protocols.errors import ProtocolValidationError, ValidationIssue
from protocols.model import SUPPORTED_FORMATS
from protocols.sections import section, value_of

#: The value of `kind:` that marks a decision-method file.
METHOD_KIND = "method"

#: Bundled method files are named `<id>-method.yaml`; `bundled_protocols()` leaves them out.
METHOD_FILE_SUFFIX = "-method.yaml"

REQUIRED = (
    "format",
    "kind",
    "id",
    "version",
    "title",
    "blood_volume_ml_per_kg",
    "intended_dose_cells_per_kg",
    "thresholds",
    "classes",
)
OPTIONAL = ("description", "release")

BLOOD_VOLUME_RANGE_ML_PER_KG = (0.0, 200.0)
INTENDED_DOSE_MAX_CELLS_PER_KG = 1e10
CLASSES_MAX = 20
CLASS_NAME_MAX = 120
ROUTE_MAX = 300
WORDING_MAX = 4000


@dataclass(frozen=True)
class _Limit:
    """The range a numeric setting of the method accepts; lo is excluded when lo_open."""

    lo: float | None
    hi: float | None
    lo_open: bool = False

    @property
    def allowed(self) -> str:
        return number_range(self.lo, self.hi, lo_open=self.lo_open)


#: Numeric thresholds, each an upper limit on an index of a dose versus its vehicle control.
NUMERIC_THRESHOLDS: Mapping[str, _Limit] = {
    "delta_ct_pct_max": _Limit(0.0, 100.0),
    "tat_fold_max": _Limit(1.0, 1e6),
    "delta_tat_ug_per_l_max": _Limit(0.0, 1e6),
    "platelet_consumption_pct_max": _Limit(0.0, 100.0),
}
#: Every threshold; `loop_clotting_allowed` (true or false): may a safe dose clot a loop?
THRESHOLD_KEYS: tuple[str, ...] = (
    "delta_ct_pct_max",
    "loop_clotting_allowed",
    "tat_fold_max",
    "delta_tat_ug_per_l_max",
    "platelet_consumption_pct_max",
)

#: Lot release criteria: upper limits (`_max`) and lower limits (`_min`) on the lot's own data.
RELEASE_CRITERIA: Mapping[str, _Limit] = {
    "cd142_pct_max": _Limit(0.0, 100.0),
    "cd142_mfi_max": _Limit(0.0, 1e9, lo_open=True),
    "viability_pct_min": _Limit(0.0, 100.0),
}

#: Conditions a class rule (`when:`) can state; all stated conditions must hold.
NUMERIC_CONDITIONS: Mapping[str, _Limit] = {
    "safe_dose_ratio_min": _Limit(0.0, 1e6, lo_open=True),
    "delta_ct_pct_at_intended_dose_max": _Limit(None, 100.0),
    "tat_fold_at_intended_dose_max": _Limit(1.0, 1e6),
}
#: Every condition; `release_passed` (true or false) tests the lot release check.
CONDITION_KEYS: tuple[str, ...] = (
    "safe_dose_ratio_min",
    "release_passed",
    "delta_ct_pct_at_intended_dose_max",
    "tat_fold_at_intended_dose_max",
)

CLASS_REQUIRED = ("id", "name", "when", "route")
CLASS_OPTIONAL = ("wording", "dose_cap")

_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_BOOLEAN_ALLOWED = "true or false"

HINTS: Mapping[str, str] = {
    "format": one_of([str(f) for f in SUPPORTED_FORMATS]),
    "kind": METHOD_KIND,
    "id": PROTOCOL_ID_ALLOWED,
    "version": "a whole number ≥ 1",
    "title": "text",
    "blood_volume_ml_per_kg": number_range(*BLOOD_VOLUME_RANGE_ML_PER_KG, lo_open=True),
    "intended_dose_cells_per_kg": number_range(0.0, INTENDED_DOSE_MAX_CELLS_PER_KG, lo_open=True),
    "thresholds": "a mapping with one or more of " + ", ".join(THRESHOLD_KEYS),
    "classes": f"a list of 1 to {CLASSES_MAX} classes, the last one with `when: {{}}`",
}
CLASS_HINTS: Mapping[str, str] = {
    "id": PROTOCOL_ID_ALLOWED,
    "name": "text",
    "when": "a mapping of conditions (" + ", ".join(CONDITION_KEYS) + "), `{}` for the default",
    "route": "text",
}


@dataclass(frozen=True)
class Thresholds:
    """Upper limits a dose must stay under, each versus the vehicle with the same blood.

    None means the method does not apply that threshold.
    """

    delta_ct_pct_max: float | None = None
    loop_clotting_allowed: bool | None = None
    tat_fold_max: float | None = None
    delta_tat_ug_per_l_max: float | None = None
    platelet_consumption_pct_max: float | None = None


@dataclass(frozen=True)
class ReleaseCriteria:
    """Lot release criteria on the lot's own data; None means not applied."""

    cd142_pct_max: float | None = None
    cd142_mfi_max: float | None = None
    viability_pct_min: float | None = None


@dataclass(frozen=True)
class ClassRule:
    """The conditions of a class; all given conditions must hold. No condition: the default."""

    safe_dose_ratio_min: float | None = None
    release_passed: bool | None = None
    delta_ct_pct_at_intended_dose_max: float | None = None
    tat_fold_at_intended_dose_max: float | None = None

    @property
    def is_default(self) -> bool:
        """True for `when: {}`, the rule that holds for every lot."""
        return all(getattr(self, key) is None for key in CONDITION_KEYS)


@dataclass(frozen=True)
class MethodClass:
    """A class a lot can fall into: its name, its rule, the route it suggests and its wording.

    With `dose_cap`, the class caps the clinical dose at the highest safe tested dose.
    """

    id: str
    name: str
    when: ClassRule
    route: str
    wording: str = ""
    dose_cap: bool = False


@dataclass(frozen=True)
class MethodFile:
    """A validated decision-method file, with the exact file text and its hash."""

    format: int
    kind: Literal["method"]
    id: str
    version: int
    title: str
    description: str
    blood_volume_ml_per_kg: float
    intended_dose_cells_per_kg: float
    thresholds: Thresholds
    release: ReleaseCriteria | None
    classes: tuple[MethodClass, ...]
    text: str
    sha256: str
    source: str

    @property
    def intended_dose_cells_per_ml(self) -> float:
        """The intended clinical IV dose as cells per mL of blood (dose / blood volume)."""
        return self.intended_dose_cells_per_kg / self.blood_volume_ml_per_kg


class MethodValidationError(ProtocolValidationError):
    """A method file cannot be used; `issues` lists every problem found, in file order."""


def load_method(path: str | Path) -> MethodFile:
    """Read and validate a method file; raises MethodValidationError listing every problem."""
    text, sha256 = read_source(path, "method", MethodValidationError)
    return _parse(text, str(path), sha256)


def parse_method(text: str, source: str = "<string>") -> MethodFile:
    """Validate method text; source names it in messages (a path, or "<string>")."""
    return _parse(text, source, None)


def check_method_files(paths: Iterable[str | Path]) -> list[ValidationIssue]:
    """Every issue in the given method files; an empty list means all of them are valid."""
    issues: list[ValidationIssue] = []
    for path in paths:
        try:
            load_method(path)
        except ProtocolValidationError as exc:
            issues.extend(exc.issues)
    return issues


def bundled_methods() -> list[Path]:
    """The method files shipped with the software (`protocols/*-method.yaml`), sorted by name."""
    return sorted(Path(__file__).resolve().parent.glob(f"*{METHOD_FILE_SUFFIX}"))


def is_method_file_name(path: Path) -> bool:
    """Whether a file's name marks it as a bundled method file rather than a protocol."""
    return path.name.endswith(METHOD_FILE_SUFFIX)


def method_file_issue(fields: Fields, source: str) -> ValidationIssue | None:
    """For the protocol loader: the issue to report when a method file is read as a protocol."""
    entry = fields.get("kind")
    if entry is None or not _is_text(entry.value, METHOD_KIND):
        return None
    return _issue_at(
        entry,
        source,
        "kind",
        "this is a decision-method file (kind: method), not a protocol; "
        "load it with protocols.load_method",
    )


def _is_text(node: Node, value: str) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _STR_TAG and node.value == value


def _issue_at(entry: Entry, source: str, path: str, what: str) -> ValidationIssue:
    mark = entry.key.start_mark
    return ValidationIssue(source, mark.line + 1, mark.column + 1, path, what)


def _parse(text: str, source: str, sha256: str | None) -> MethodFile:
    node, syntax_issues = compose(text, source)
    if syntax_issues:
        raise MethodValidationError(syntax_issues)
    if node is None:
        what = "the file is empty; a method file is a mapping that starts with `format: 1`"
        raise MethodValidationError([ValidationIssue(source, 1, 1, "", what)])

    ck = Checker(source)
    fields = ck.mapping(node, "", "a mapping of method keys (format, kind, id, version, ...)")
    if not isinstance(node, MappingNode):
        raise MethodValidationError(ck.sorted_issues())
    if "kind" not in fields and "assay" in fields:
        what = (
            "this is a protocol file (it has `assay:`), not a decision-method file; "
            "load it with protocols.load_protocol"
        )
        raise MethodValidationError([_issue_at(fields["assay"], source, "assay", what)])

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
            raise MethodValidationError(ck.sorted_issues())

    ck.keys(node, fields, "", required=REQUIRED, optional=OPTIONAL, hints=HINTS)
    if "kind" in fields:
        ck.choice(fields["kind"].value, "kind", (METHOD_KIND,), "kind")

    method_id = version = title = blood_volume = intended_dose = None
    description = ""
    if "id" in fields:
        method_id = ck.text(
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
    if (value := value_of(fields, "blood_volume_ml_per_kg")) is not None:
        blood_volume = ck.number(
            value, "blood_volume_ml_per_kg", *BLOOD_VOLUME_RANGE_ML_PER_KG, lo_open=True
        )
    if (value := value_of(fields, "intended_dose_cells_per_kg")) is not None:
        intended_dose = ck.number(
            value, "intended_dose_cells_per_kg", 0.0, INTENDED_DOSE_MAX_CELLS_PER_KG, lo_open=True
        )

    thresholds = _check_thresholds(ck, fields)
    release = _check_release(ck, fields)
    classes = _check_classes(ck, fields, has_release="release" in fields)

    if ck.issues or thresholds is None or classes is None:
        raise MethodValidationError(ck.sorted_issues())
    return MethodFile(
        format=known(file_format),
        kind="method",
        id=known(method_id),
        version=known(version),
        title=known(title),
        description=description,
        blood_volume_ml_per_kg=known(blood_volume),
        intended_dose_cells_per_kg=known(intended_dose),
        thresholds=thresholds,
        release=release,
        classes=classes,
        text=text,
        sha256=sha256 if sha256 is not None else hashlib.sha256(text.encode()).hexdigest(),
        source=source,
    )


def _boolean(ck: Checker, node: Node, path: str) -> bool | None:
    """A YAML boolean, `true` or `false` (`yes`, `no`, `on` and quoted text are not booleans)."""
    if isinstance(node, ScalarNode) and node.tag == _BOOL_TAG:
        return str(node.value).lower() == "true"
    what = "value is empty" if isinstance(node, ScalarNode) and node.tag == _NULL_TAG else None
    ck.report(node, path, what or "wrong type", got=show(node), allowed=_BOOLEAN_ALLOWED)
    return None


def _nonempty(ck: Checker, node: Node, path: str, entries: Fields, keys: tuple[str, ...]) -> bool:
    """Report a section that is an empty mapping; a section without entries has no meaning."""
    if entries or not isinstance(node, MappingNode):
        return bool(entries)
    ck.report(
        node,
        path,
        f"the section is empty: give at least one entry or leave `{path}:` out",
        got="an empty mapping",
        allowed="one or more of " + ", ".join(keys),
    )
    return False


def _numbers(
    ck: Checker, entries: Fields, path: str, limits: Mapping[str, _Limit]
) -> tuple[dict[str, float], bool]:
    """The numeric entries of a section that are within their limits, and whether all were."""
    numbers: dict[str, float] = {}
    ok = True
    for key, limit in limits.items():
        if key not in entries:
            continue
        value = ck.number(
            entries[key].value, child_path(path, key), limit.lo, limit.hi, lo_open=limit.lo_open
        )
        if value is None:
            ok = False
        else:
            numbers[key] = value
    return numbers, ok


def _check_thresholds(ck: Checker, fields: Fields) -> Thresholds | None:
    entries = section(
        ck,
        fields,
        "thresholds",
        required=(),
        optional=THRESHOLD_KEYS,
        what="a mapping of thresholds, e.g. `delta_ct_pct_max: 20`",
    )
    if entries is None:
        return None
    node = known(value_of(fields, "thresholds"))
    ok = _nonempty(ck, node, "thresholds", entries, THRESHOLD_KEYS)
    numbers, numbers_ok = _numbers(ck, entries, "thresholds", NUMERIC_THRESHOLDS)
    ok = ok and numbers_ok
    clotting = None
    if "loop_clotting_allowed" in entries:
        path = child_path("thresholds", "loop_clotting_allowed")
        clotting = _boolean(ck, entries["loop_clotting_allowed"].value, path)
        ok = ok and clotting is not None
    if ok and not numbers and clotting:
        ck.report(
            node,
            "thresholds",
            "no threshold applies: `loop_clotting_allowed: true` alone lets every dose pass",
            allowed="at least one of " + ", ".join(NUMERIC_THRESHOLDS),
        )
        ok = False
    if not ok:
        return None
    return Thresholds(
        delta_ct_pct_max=numbers.get("delta_ct_pct_max"),
        loop_clotting_allowed=clotting,
        tat_fold_max=numbers.get("tat_fold_max"),
        delta_tat_ug_per_l_max=numbers.get("delta_tat_ug_per_l_max"),
        platelet_consumption_pct_max=numbers.get("platelet_consumption_pct_max"),
    )


def _check_release(ck: Checker, fields: Fields) -> ReleaseCriteria | None:
    keys = tuple(RELEASE_CRITERIA)
    entries = section(
        ck,
        fields,
        "release",
        required=(),
        optional=keys,
        what="a mapping of release criteria, e.g. `cd142_pct_max: 60`",
    )
    if entries is None:
        return None
    _nonempty(ck, known(value_of(fields, "release")), "release", entries, keys)
    numbers, _ = _numbers(ck, entries, "release", RELEASE_CRITERIA)
    return ReleaseCriteria(
        cd142_pct_max=numbers.get("cd142_pct_max"),
        cd142_mfi_max=numbers.get("cd142_mfi_max"),
        viability_pct_min=numbers.get("viability_pct_min"),
    )


@dataclass(frozen=True)
class _ReadClass:
    """One class entry as far as it could be read; cls is None when anything in it is wrong."""

    node: Node
    when: Node | None
    rule: ClassRule | None
    cls: MethodClass | None


def _check_classes(
    ck: Checker, fields: Fields, *, has_release: bool
) -> tuple[MethodClass, ...] | None:
    list_node = value_of(fields, "classes")
    if list_node is None:
        return None
    items = ck.sequence(list_node, "classes", min_items=1, max_items=CLASSES_MAX, what="classes")
    if items is None:
        return None
    used: dict[str, int] = {}
    read = [
        _check_class(ck, item, index, used, has_release=has_release)
        for index, item in enumerate(items)
    ]
    ok = all(entry.cls is not None for entry in read)
    # Rules are tried in order, so a default rule must come last and must be there.
    for index, entry in enumerate(read[:-1]):
        if entry.rule is not None and entry.rule.is_default:
            later = item_path("classes", index + 1)
            ck.report(
                read[index + 1].node,
                later,
                f"this class can never be chosen: classes[{index}] has `when: {{}}` and "
                "applies to every lot, so the classes after it are never reached",
                allowed="the default class (`when: {}`) last",
            )
            ok = False
            break
    last = read[-1]
    if last.rule is not None and not last.rule.is_default and last.when is not None:
        ck.report(
            last.when,
            child_path(item_path("classes", len(read) - 1), "when"),
            "the last class must be the default, `when: {}`, so that every lot gets a class",
            got="conditions " + ", ".join(_condition_keys(last.rule)),
            allowed="`when: {}` on the last class",
        )
        ok = False
    if not ok:
        return None
    return tuple(known(entry.cls) for entry in read)


def _condition_keys(rule: ClassRule) -> list[str]:
    return [key for key in CONDITION_KEYS if getattr(rule, key) is not None]


def _check_class(
    ck: Checker, node: Node, index: int, used: dict[str, int], *, has_release: bool
) -> _ReadClass:
    path = item_path("classes", index)
    entries = ck.mapping(node, path, "a class mapping (id, name, when, route, ...)")
    ck.keys(
        node, entries, path, required=CLASS_REQUIRED, optional=CLASS_OPTIONAL, hints=CLASS_HINTS
    )
    ok = isinstance(node, MappingNode) and all(key in entries for key in CLASS_REQUIRED)

    class_id = name = route = None
    wording = ""
    dose_cap: bool | None = False
    if "id" in entries:
        id_node = entries["id"].value
        class_id = ck.text(
            id_node,
            child_path(path, "id"),
            pattern=PROTOCOL_ID,
            allowed=PROTOCOL_ID_ALLOWED,
            max_length=PROTOCOL_ID_MAX,
        )
        if class_id is not None and class_id in used:
            ck.report(
                id_node,
                child_path(path, "id"),
                f"class {class_id} is already defined by classes[{used[class_id]}]",
                got=show(id_node),
                allowed="each class id once",
            )
            class_id = None
        elif class_id is not None:
            used[class_id] = index
    if "name" in entries:
        name = ck.text(entries["name"].value, child_path(path, "name"), max_length=CLASS_NAME_MAX)
    if "route" in entries:
        route = ck.text(entries["route"].value, child_path(path, "route"), max_length=ROUTE_MAX)
    if "wording" in entries:
        checked = ck.text(
            entries["wording"].value, child_path(path, "wording"), max_length=WORDING_MAX
        )
        ok = ok and checked is not None
        wording = checked or ""
    if "dose_cap" in entries:
        dose_cap = _boolean(ck, entries["dose_cap"].value, child_path(path, "dose_cap"))
    when_node = value_of(entries, "when")
    rule = None
    if when_node is not None:
        rule = _check_rule(ck, when_node, child_path(path, "when"), has_release=has_release)
    ok = ok and None not in (class_id, name, route, rule, dose_cap)
    cls = None
    if ok:
        cls = MethodClass(
            id=known(class_id),
            name=known(name),
            when=known(rule),
            route=known(route),
            wording=wording,
            dose_cap=bool(dose_cap),
        )
    return _ReadClass(node=node, when=when_node, rule=rule, cls=cls)


def _check_rule(ck: Checker, node: Node, path: str, *, has_release: bool) -> ClassRule | None:
    entries = ck.mapping(node, path, "a mapping of conditions, `{}` for the default class")
    ck.keys(node, entries, path, required=(), optional=CONDITION_KEYS)
    if not isinstance(node, MappingNode):
        return None
    ok = all(key in CONDITION_KEYS for key in entries)
    numbers, numbers_ok = _numbers(ck, entries, path, NUMERIC_CONDITIONS)
    ok = ok and numbers_ok
    release_passed = None
    if "release_passed" in entries:
        entry = entries["release_passed"]
        release_passed = _boolean(ck, entry.value, child_path(path, "release_passed"))
        ok = ok and release_passed is not None
        if not has_release:
            ck.report(
                entry.key,
                child_path(path, "release_passed"),
                "the method has no `release:` criteria, so no lot can pass or fail release; "
                "add a `release:` section or remove this condition",
                got=show(entry.key),
                allowed=", ".join(key for key in CONDITION_KEYS if key != "release_passed"),
            )
            ok = False
    if not ok:
        return None
    return ClassRule(
        safe_dose_ratio_min=numbers.get("safe_dose_ratio_min"),
        release_passed=release_passed,
        delta_ct_pct_at_intended_dose_max=numbers.get("delta_ct_pct_at_intended_dose_max"),
        tat_fold_at_intended_dose_max=numbers.get("tat_fold_at_intended_dose_max"),
    )
