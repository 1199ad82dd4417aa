"""Decision-method files: the bundled one is valid, mistakes are reported at their positions."""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path

import pytest

from protocols import (
    ClassRule,
    MethodValidationError,
    ProtocolValidationError,
    ReleaseCriteria,
    Thresholds,
    ValidationIssue,
    bundled_methods,
    bundled_protocols,
    check_method_files,
    load_method,
    load_protocol,
    parse_method,
    parse_protocol,
)
from tests.indices.example import DOCS, bundled_method_path, bundled_method_text

MISTAKES = textwrap.dedent(
    """\
    format: 1
    kind: methods
    id: Bad_Id
    version: 1
    title: "Several mistakes"
    blood_volume_ml_per_kg: 0
    intended_dose_cells_per_kg: 2.0e6
    thresholds:
      delta_ct_pct_max: 120
      loop_clotting_allowed: no
      tat_fold: 5
    classes:
      - id: iv-acceptable
        name: "IV acceptable"
        when: {safe_dose_ratio_minimum: 1.0, release_passed: true}
        route: intravenous
      - id: iv-acceptable
        name: "again"
        when: {safe_dose_ratio_min: 0.25}
        route: intravenous
        dose_cap: yes
    """
)


def issues_of(text: str) -> list[ValidationIssue]:
    with pytest.raises(MethodValidationError) as caught:
        parse_method(text, "m.yaml")
    return caught.value.issues


def test_bundled_method_is_valid_and_says_what_it_decides() -> None:
    path = bundled_method_path()
    method = load_method(path)
    assert bundled_methods() == [path]
    assert (method.kind, method.id, method.version, method.format) == (
        "method",
        "msc-iv-hemocompatibility",
        1,
        1,
    )
    assert method.blood_volume_ml_per_kg == 70.0
    assert method.intended_dose_cells_per_kg == 2.0e6
    assert method.intended_dose_cells_per_ml == pytest.approx(28571.43, abs=0.01)
    assert method.thresholds == Thresholds(
        delta_ct_pct_max=20.0,
        loop_clotting_allowed=False,
        tat_fold_max=5.0,
        delta_tat_ug_per_l_max=50.0,
        platelet_consumption_pct_max=30.0,
    )
    assert method.release == ReleaseCriteria(cd142_pct_max=60.0, viability_pct_min=70.0)
    assert [c.id for c in method.classes] == ["iv-acceptable", "iv-capped", "iv-not-recommended"]
    assert method.classes[0].when == ClassRule(safe_dose_ratio_min=1.0, release_passed=True)
    assert method.classes[1].dose_cap and not method.classes[0].dose_cap
    assert method.classes[-1].when.is_default
    assert all(c.name and c.route and c.wording for c in method.classes)
    data = path.read_bytes()
    assert method.sha256 == hashlib.sha256(data).hexdigest()
    assert method.text.encode("utf-8") == data
    assert method.source == str(path)


def test_bundled_method_calls_itself_a_research_construct() -> None:
    text = bundled_method_text()
    assert "RESEARCH CONSTRUCT, NOT A CLINICAL RULE" in text
    assert "(research construct)" in load_method(bundled_method_path()).title


def test_method_files_are_not_listed_as_protocols() -> None:
    assert bundled_method_path() not in bundled_protocols()
    assert all(not p.name.endswith("-method.yaml") for p in bundled_protocols())


def test_load_protocol_points_a_method_file_to_load_method() -> None:
    with pytest.raises(ProtocolValidationError) as caught:
        load_protocol(bundled_method_path())
    (issue,) = caught.value.issues
    line = bundled_method_text().splitlines().index("kind: method") + 1
    assert (issue.line, issue.column, issue.path) == (line, 1, "kind")
    assert "decision-method file (kind: method), not a protocol" in issue.message
    assert "load_method" in issue.message


def test_load_method_points_a_protocol_file_to_load_protocol() -> None:
    path = next(p for p in bundled_protocols() if p.name == "natem-msc-dose-series.yaml")
    with pytest.raises(MethodValidationError) as caught:
        load_method(path)
    (issue,) = caught.value.issues
    assert issue.path == "assay"
    assert "this is a protocol file" in issue.message and "load_protocol" in issue.message


def test_every_mistake_is_reported_at_its_position() -> None:
    issues = issues_of(MISTAKES)
    assert [(i.line, i.column, i.path) for i in issues] == [
        (2, 7, "kind"),
        (3, 5, "id"),
        (6, 25, "blood_volume_ml_per_kg"),
        (9, 21, "thresholds.delta_ct_pct_max"),
        (10, 26, "thresholds.loop_clotting_allowed"),
        (11, 3, "thresholds.tat_fold"),
        (15, 12, "classes[0].when.safe_dose_ratio_minimum"),
        (15, 42, "classes[0].when.release_passed"),
        (17, 9, "classes[1].id"),
        (19, 11, "classes[1].when"),
        (21, 15, "classes[1].dose_cap"),
    ]
    messages = [i.message for i in issues]
    assert (
        messages[0]
        == "unknown kind, did you mean 'method'?; got \"methods\"; allowed: one of method"
    )
    assert messages[2] == "out of range; got 0; allowed: a number > 0 and ≤ 200"
    assert messages[4] == 'wrong type; got "no"; allowed: true or false'
    assert "did you mean 'tat_fold_max'?" in messages[5]
    assert "no `release:` criteria" in messages[7]
    assert "already defined by classes[0]" in messages[8]
    assert "the last class must be the default" in messages[9]
    assert str(MethodValidationError(issues)).endswith("11 errors found")


def test_the_error_listing_in_the_docs_is_what_the_checker_says() -> None:
    documented = [
        line for line in DOCS.read_text(encoding="utf-8").splitlines() if line.startswith("m.yaml:")
    ]
    assert len(documented) == 5
    rendered = {str(issue) for issue in issues_of(MISTAKES)}
    assert set(documented) <= rendered


def test_unknown_rule_key_lists_the_rule_vocabulary() -> None:
    text = bundled_method_text().replace(
        "when: {safe_dose_ratio_min: 0.25, release_passed: true}",
        "when: {safe_dose_ratio_min: 0.25, release_passed: true, cd142_pct_below: 40}",
    )
    (issue,) = issues_of(text)
    line = next(n for n, s in enumerate(text.splitlines(), 1) if "cd142_pct_below" in s)
    column = text.splitlines()[line - 1].index("cd142_pct_below") + 1
    assert (issue.line, issue.column, issue.path) == (
        line,
        column,
        "classes[1].when.cd142_pct_below",
    )
    assert issue.message == (
        'unknown key; got "cd142_pct_below"; allowed: safe_dose_ratio_min, release_passed, '
        "delta_ct_pct_at_intended_dose_max, tat_fold_at_intended_dose_max"
    )


def test_a_default_class_before_the_last_makes_the_rest_unreachable() -> None:
    text = bundled_method_text().replace(
        "when: {safe_dose_ratio_min: 0.25, release_passed: true}", "when: {}"
    )
    (issue,) = issues_of(text)
    assert issue.path == "classes[2]"
    assert "can never be chosen: classes[1] has `when: {}`" in issue.message


def test_wrong_values_in_rules_and_release() -> None:
    text = bundled_method_text()
    text = text.replace("safe_dose_ratio_min: 1.0,", "safe_dose_ratio_min: 0,")
    text = text.replace(
        'release_passed: true}\n    route: "intravenous"\n',
        'release_passed: "yes"}\n    route: "intravenous"\n',
    )
    text = text.replace("viability_pct_min: 70 ", "viability_pct_min: 170 ")
    assert [(i.path, i.message.split(";")[0]) for i in issues_of(text)] == [
        ("release.viability_pct_min", "out of range"),
        ("classes[0].when.safe_dose_ratio_min", "out of range"),
        ("classes[0].when.release_passed", "wrong type"),
    ]


def test_empty_sections_and_thresholds_that_check_nothing() -> None:
    base = bundled_method_text()
    start = base.index("thresholds:")
    end = base.index("release:")
    empty = base[:start] + "thresholds: {}\n\n" + base[end:]
    (issue,) = issues_of(empty)
    assert issue.path == "thresholds" and "the section is empty" in issue.message
    nothing = base[:start] + "thresholds:\n  loop_clotting_allowed: true\n\n" + base[end:]
    (issue,) = issues_of(nothing)
    assert issue.path == "thresholds" and "no threshold applies" in issue.message


def test_missing_keys_are_named_with_what_they_take() -> None:
    issues = issues_of("format: 1\nkind: method\n")
    missing = [i.path for i in issues if i.message.startswith("required key is missing")]
    assert missing == [
        "blood_volume_ml_per_kg",
        "classes",
        "id",
        "intended_dose_cells_per_kg",
        "thresholds",
        "title",
        "version",
    ]
    assert all((i.line, i.column) == (1, 1) for i in issues)


def test_unsupported_format_stops_the_check() -> None:
    (issue,) = issues_of("format: 2\nkind: method\nbogus: 1\n")
    assert issue.path == "format" and "update hemocompat" in issue.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("format: 1\nkind: [method\n", "YAML syntax error"),
        ("- a list\n", "wrong type"),
    ],
)
def test_files_that_are_not_method_mappings(text: str, expected: str) -> None:
    (issue,) = issues_of(text)
    assert expected in issue.message


def test_check_method_files_collects_issues_of_every_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MISTAKES, encoding="utf-8")
    issues = check_method_files([bundled_method_path(), bad, tmp_path / "absent.yaml"])
    assert len(issues) == 12
    assert (
        str(issues[-1]) == f"{tmp_path / 'absent.yaml'}: cannot read the method file: no such file"
    )


def test_parse_protocol_also_recognises_method_text() -> None:
    with pytest.raises(ProtocolValidationError, match=r"<string>:\d+:1: kind: this is a decision"):
        parse_protocol(bundled_method_text())


def test_the_example_in_the_docs_is_the_bundled_method_without_comments() -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    documented = parse_method(example, str(DOCS))
    bundled = load_method(bundled_method_path())
    assert documented.thresholds == bundled.thresholds
    assert documented.release == bundled.release
    assert [(c.id, c.when, c.dose_cap, c.route) for c in documented.classes] == [
        (c.id, c.when, c.dose_cap, c.route) for c in bundled.classes
    ]
    assert (documented.blood_volume_ml_per_kg, documented.intended_dose_cells_per_kg) == (
        bundled.blood_volume_ml_per_kg,
        bundled.intended_dose_cells_per_kg,
    )
