"""Validation reports every problem of a file at once, each at its line and column."""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path

import pytest

from protocols import (
    ProtocolValidationError,
    ValidationIssue,
    check_files,
    load_protocol,
    parse_protocol,
)

SIX_MISTAKES = textwrap.dedent(
    """\
    format: 1
    id: natem-typos
    version: "2"
    title: Six mistakes
    assay: thromboelastometry
    reagent: NATEN
    style: rotem
    instruments:
      tem: TEM-4
    temperature_c: 52
    duraton_min: 60
    sample_rate_hz: 10
    samples:
      donor: VD-HEALTHY-01
    channels:
      - channel: 1
        contents: vehicle
      - channel: 2
        contents: lot
      - channel: 2
        contents: lot
        dose_cells_per_ml: 1.0e4
    """
)


def issues_of(text: str) -> list[ValidationIssue]:
    with pytest.raises(ProtocolValidationError) as caught:
        parse_protocol(text, "p.yaml")
    return caught.value.issues


def positions(text: str) -> list[tuple[int, int, str]]:
    return [(i.line, i.column, i.path) for i in issues_of(text)]


def test_every_mistake_is_reported_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text(SIX_MISTAKES, encoding="utf-8")
    with pytest.raises(ProtocolValidationError) as caught:
        load_protocol(path)
    issues = caught.value.issues
    assert [(i.line, i.column, i.path) for i in issues] == [
        (1, 1, "duration_min"),  # missing because of the typo: points at the root mapping
        (3, 10, "version"),  # wrong type
        (6, 10, "reagent"),  # bad reagent
        (10, 16, "temperature_c"),  # out of range
        (11, 1, "duraton_min"),  # unknown key with a typo
        (18, 5, "channels[1].dose_cells_per_ml"),  # lot channel without a dose
        (20, 14, "channels[2].channel"),  # duplicate channel number
    ]
    assert all(i.source == str(path) for i in issues)
    by_path = {i.path: str(i) for i in issues}
    assert by_path["reagent"] == (
        f"{path}:6:10: reagent: unknown reagent, did you mean 'NATEM'?; got \"NATEN\"; "
        "allowed: one of NATEM, EXTEM, INTEM, FIBTEM, HEPTEM, TEGN, TEGK"
    )
    assert by_path["version"].endswith('version: wrong type; got "2"; allowed: a whole number ≥ 1')
    assert (
        "temperature_c: out of range; got 52; allowed: a number from 20 to 45"
        in (by_path["temperature_c"])
    )
    assert "unknown key, did you mean 'duration_min'?" in by_path["duraton_min"]
    assert "required key is missing" in by_path["duration_min"]
    assert "a lot channel needs its dose" in by_path["channels[1].dose_cells_per_ml"]
    assert "channel 2 is already used by channels[1]" in by_path["channels[2].channel"]


def test_error_text_lists_issues_one_per_line_and_counts_them() -> None:
    with pytest.raises(ProtocolValidationError) as caught:
        parse_protocol(SIX_MISTAKES, "p.yaml")
    lines = str(caught.value).splitlines()
    assert lines[-1] == "7 errors found"
    assert lines[:-1] == [str(i) for i in caught.value.issues]
    pattern = re.compile(r"^p\.yaml:\d+:\d+: [\w.\[\]]+: .+; allowed: .+$")
    assert all(pattern.match(line) for line in lines[:-1])


def test_single_error_is_counted_in_the_singular() -> None:
    with pytest.raises(ProtocolValidationError, match=r"\n1 error found$"):
        parse_protocol("format: 2\n")


def test_yaml_syntax_error_is_positioned() -> None:
    text = "format: 1\nid: test\nchannels: [1, 2\ntitle: x\n"
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (4, 6, "")
    assert str(issue).startswith("p.yaml:4:6: YAML syntax error: ")


def test_bad_indentation_is_a_positioned_syntax_error() -> None:
    [issue] = issues_of("format: 1\nid: x\n  title: y\n")
    assert (issue.line, issue.column) == (3, 8)
    assert "check this line's indentation" in issue.message


def test_tab_indentation_is_explained() -> None:
    [issue] = issues_of("format: 1\nsamples:\n\tdonor: X\n")
    assert (issue.line, issue.column) == (3, 1)
    assert "indent with spaces, not tabs" in issue.message


def test_second_document_is_an_error() -> None:
    [issue] = issues_of("format: 1\n---\nformat: 1\n")
    assert (issue.line, issue.column) == (2, 1)


def test_control_character_is_positioned() -> None:
    [issue] = issues_of("format: 1\nid: a\x07b\n")
    assert (issue.line, issue.column) == (2, 6)
    assert "U+0007" in issue.message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_file(text: str) -> None:
    [issue] = issues_of(text)
    assert (issue.line, issue.column) == (1, 1)
    assert "the file is empty" in issue.message


def test_root_must_be_a_mapping() -> None:
    [issue] = issues_of("- format: 1\n")
    assert (issue.line, issue.column, issue.path) == (1, 1, "")
    assert "got a list of 1 item" in issue.message


def test_duplicate_keys_point_at_the_repeat(valid_text: str) -> None:
    text = valid_text.replace("  donor: VD-HEALTHY-01\n", "  donor: VD-HEALTHY-01\n  donor: X\n")
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (16, 3, "samples.donor")
    assert "duplicate key, already given at line 15, column 3" in issue.message


def test_missing_nested_key_points_at_its_mapping(valid_text: str) -> None:
    text = valid_text.replace("    contents: vehicle\n", "", 1)
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (17, 5, "channels[0].contents")
    assert issue.message == "required key is missing; allowed: one of vehicle, lot"


def test_unsupported_format_stops_validation() -> None:
    [issue] = issues_of("format: 2\nwhatever: 1\n")
    assert (issue.line, issue.column, issue.path) == (1, 9, "format")
    assert "update hemocompat" in issue.message


def test_unknown_assay_still_catches_typos_in_known_keys(valid_text: str) -> None:
    text = valid_text.replace("assay: thromboelastometry", "assay: thromboelastometri")
    text = text.replace("reagent:", "reagnt:")
    issues = issues_of(text)
    assert [(i.line, i.column, i.path) for i in issues] == [(5, 8, "assay"), (6, 1, "reagnt")]
    assert "did you mean 'thromboelastometry'?" in issues[0].message
    assert "did you mean 'reagent'?" in issues[1].message


def test_lot_channels_need_a_vehicle_control(valid_text: str) -> None:
    text = valid_text.replace("contents: vehicle", "contents: lot\n    dose_cells_per_ml: 5")
    issues = issues_of(text)
    assert [(i.line, i.column, i.path) for i in issues] == [(17, 3, "channels")]
    assert "no vehicle channel" in issues[0].message


def test_lot_donor_without_vehicle_of_same_blood(valid_text: str) -> None:
    text = valid_text.replace("    donor: VD-HEALTHY-02\n", "    donor: VD-HEALTHY-03\n", 1)
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (26, 12, "channels[2].donor")
    assert "no vehicle channel uses donor VD-HEALTHY-03" in issue.message


def test_lot_on_run_donor_without_vehicle_on_run_donor(valid_text: str) -> None:
    text = valid_text.replace(
        "    contents: vehicle\n", "    contents: vehicle\n    donor: VD-HEALTHY-02\n", 1
    )
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (20, 5, "channels[1]")
    assert "uses the run's donor" in issue.message


def test_vehicle_channel_takes_no_dose_or_lot(valid_text: str) -> None:
    text = valid_text.replace(
        "    contents: vehicle\n",
        "    contents: vehicle\n    dose_cells_per_ml: 0\n    lot: X\n",
        1,
    )
    assert positions(text) == [
        (19, 5, "channels[0].dose_cells_per_ml"),
        (20, 5, "channels[0].lot"),
    ]


def test_duration_must_cover_the_analysis_time_points(valid_text: str) -> None:
    text = valid_text.replace("duration_min: 60", "duration_min: 15")
    issues = issues_of(text)
    assert [(i.line, i.column, i.path) for i in issues] == [(11, 15, "duration_min")] * 2
    assert any("allowed: a number ≥ 30" in i.message for i in issues)
    assert any("allowed: a number ≥ 20" in i.message for i in issues)


def test_amplitude_times_must_increase(valid_text: str) -> None:
    text = valid_text + "analysis:\n  amplitude_times_min: [5, 20, 10, 0]\n"
    issues = issues_of(text)
    assert [(i.line, i.column, i.path) for i in issues] == [
        (31, 32, "analysis.amplitude_times_min[2]"),
        (31, 36, "analysis.amplitude_times_min[3]"),
    ]
    assert "times must increase" in issues[0].message
    assert "out of range; got 0; allowed: a number > 0 and ≤ 240" in issues[1].message


def test_cft_threshold_above_ct_threshold(valid_text: str) -> None:
    text = valid_text + "analysis:\n  ct_threshold_mm: 4\n  cft_threshold_mm: 3\n"
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (32, 21, "analysis.cft_threshold_mm")


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        ("sample_rate_hz: 10", "sample_rate_hz: 10.5", "not a whole number"),
        ("sample_rate_hz: 10", "sample_rate_hz: 101", "out of range"),
        ("temperature_c: 37.0", "temperature_c: .nan", "not a finite number"),
        ("temperature_c: 37.0", "temperature_c: true", "wrong type; got true"),
        ("temperature_c: 37.0", "temperature_c:", "value is empty"),
        ("temperature_c: 37.0", "temperature_c: !!binary 37", "value cannot be read"),
        ("id: test-protocol", "id: Test_Protocol", "invalid value"),
        ("style: rotem", "style: [rotem]", "wrong type; got a list of 1 item"),
        ('title: "Test protocol"', "title: ''", "text is empty"),
        ("  lot: VL-UC-01", "  lot: VL UC 01", "invalid value"),
        ("  tem: TEM-4", "  tem: TEM-4\n  bath: JULABO", "unknown key"),
        ("samples:", "samples: !!omap", "YAML tag tag:yaml.org,2002:omap is not supported"),
        ("samples:", "samples:\n  <<: {a: 1}", "merge keys"),
    ],
)
def test_single_field_errors(valid_text: str, line: str, replacement: str, expected: str) -> None:
    text = valid_text.replace(line, replacement, 1)
    assert text != valid_text
    issues = issues_of(text)
    assert any(expected in i.message for i in issues), [str(i) for i in issues]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ProtocolValidationError) as caught:
        load_protocol(path)
    [issue] = caught.value.issues
    assert str(issue) == f"{path}: cannot read the protocol file: no such file"


def test_directory_is_not_a_protocol_file(tmp_path: Path) -> None:
    with pytest.raises(ProtocolValidationError, match="it is a directory"):
        load_protocol(tmp_path)


def test_non_utf8_file_is_positioned(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("format: 1\ntitle: Caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ProtocolValidationError) as caught:
        load_protocol(path)
    [issue] = caught.value.issues
    assert (issue.line, issue.column) == (2, 11)
    assert "not UTF-8" in issue.message


def test_hash_and_text_keep_bom_and_crlf(tmp_path: Path, valid_text: str) -> None:
    path = tmp_path / "windows.yaml"
    data = b"\xef\xbb\xbf" + valid_text.replace("\n", "\r\n").encode("utf-8")
    path.write_bytes(data)
    protocol = load_protocol(path)
    assert protocol.text.encode("utf-8") == data
    assert protocol.sha256 == hashlib.sha256(data).hexdigest()
    assert parse_protocol(protocol.text).sha256 == protocol.sha256


def test_check_files_collects_issues_of_every_file(tmp_path: Path, valid_text: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(valid_text, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIX_MISTAKES, encoding="utf-8")
    issues = check_files([good, bad, tmp_path / "absent.yaml"])
    assert {i.source for i in issues} == {str(bad), str(tmp_path / "absent.yaml")}
    assert len(issues) == 8


def test_deep_nesting_is_reported_not_raised() -> None:
    [issue] = issues_of("[" * 800 + "]" * 800)
    assert "nested too deeply" in issue.message
