"""ELISA protocols: the plate map model, sample layout, and validation of the ELISA keys."""

from __future__ import annotations

import dataclasses
import datetime
import textwrap

import pytest

from protocols import (
    ControlSpec,
    ElisaProtocol,
    ElisaQc,
    KitInfo,
    ProtocolValidationError,
    SampleLayout,
    SampleWells,
    StandardLevel,
    ValidationIssue,
    parse_protocol,
)
from tests.protocols.texts import ELISA_VALID

ELISA_MISTAKES = textwrap.dedent(
    """\
    format: 1
    id: elisa-typos
    version: 1
    title: ELISA mistakes
    assay: elisa
    instruments:
      reader: ABS-96
    kit:
      name: TAT kit
      expires: "2027-06-30"
    wavelengths_nm:
      signal: 492
      reference: 1200
    model: 5PL
    standards:
      - {conc_ug_per_l: 2, wells: [A1, A2]}
      - {conc_ug_per_l: 4, wells: [A3, A04]}
      - {conc_ug_per_l: 4, wells: [A5, A6]}
      - {conc_ug_per_l: 15, wells: [A7, A8, A9]}
      - {conc_ug_per_l: 30, wells: [A10, I1]}
    blanks: [H11, A2]
    controls:
      - {name: low, range_ug_per_l: [7, 3], wells: [G1, G2]}
    samples:
      - {sample_id: S-1, wells: [C1, C2], dilution: 0.5}
    sample_layout:
      first_well: C1
      last_well: c3
      replicates: 3
      dilution: 10
      order: rows
    """
)


def elisa_protocol(text: str = ELISA_VALID) -> ElisaProtocol:
    protocol = parse_protocol(text)
    assert isinstance(protocol, ElisaProtocol)
    return protocol


def issues_of(text: str) -> list[ValidationIssue]:
    with pytest.raises(ProtocolValidationError) as caught:
        parse_protocol(text, "elisa.yaml")
    return caught.value.issues


def positions(text: str) -> list[tuple[int, int, str]]:
    return [(i.line, i.column, i.path) for i in issues_of(text)]


def replace_once(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# -- the model ------------------------------------------------------------------------------


def test_parsed_values_and_defaults() -> None:
    protocol = elisa_protocol()
    assert protocol.assay == "elisa"
    assert (protocol.id, protocol.version, protocol.title) == (
        "test-elisa",
        1,
        "Test ELISA protocol",
    )
    assert protocol.instruments == {"reader": "ABS-96"}
    assert protocol.kit == KitInfo(name="TAT test kit", lot=None, expires=None)
    assert (protocol.signal_nm, protocol.reference_nm, protocol.model) == (492, 650, "4PL")
    assert protocol.standards[0] == StandardLevel(conc_ug_per_l=2.0, wells=("A1", "A2"))
    assert [s.conc_ug_per_l for s in protocol.standards] == [2, 4, 8, 15, 30, 60]
    assert protocol.blanks == ("H11", "H12")
    assert protocol.controls == (ControlSpec("low", 3.0, 7.0, ("G1", "G2")),)
    assert protocol.samples == (SampleWells("S-000123", ("C1", "C2"), 10.0),)
    assert protocol.sample_layout == SampleLayout("C1", "D12", 2, 10.0, "row")
    assert protocol.qc == ElisaQc(20.0, 25.0, 15.0, 0.98)
    assert protocol.duration_s == protocol.expected_duration_s == 60.0
    assert protocol.source == "<string>"


def test_every_setting_is_read() -> None:
    text = replace_once(
        ELISA_VALID,
        '  name: "TAT test kit"\n',
        '  name: "TAT test kit"\n  lot: "0001"\n  expires: 2027-06-30\n',
    )
    text = replace_once(text, "  reference: 650\n", "")
    text = replace_once(text, "model: 4PL\n", "model: 5PL\nread_time_s: 90\n")
    text += (
        "  order: column\n"
        "qc:\n"
        "  backcalc_tolerance_pct: 15\n"
        "  backcalc_tolerance_edge_pct: 20\n"
        "  max_cv_pct: 10\n"
        "  min_r_squared: 0.99\n"
    )
    protocol = elisa_protocol(text)
    assert protocol.kit == KitInfo("TAT test kit", "0001", datetime.date(2027, 6, 30))
    assert protocol.reference_nm is None
    assert protocol.model == "5PL"
    assert protocol.duration_s == 90.0
    assert protocol.qc == ElisaQc(15.0, 20.0, 10.0, 0.99)
    assert protocol.sample_layout is not None
    assert protocol.sample_layout.order == "column"
    assert protocol.sample_layout.wells[:4] == ("C1", "D1", "C2", "D2")


def test_well_names_are_normalised() -> None:
    text = replace_once(ELISA_VALID, "wells: [A1, A2]", "wells: [A01, A02]")
    text = replace_once(text, "first_well: C1", "first_well: C01")
    protocol = elisa_protocol(text)
    assert protocol.standards[0].wells == ("A1", "A2")
    assert protocol.sample_layout is not None
    assert protocol.sample_layout.first_well == "C1"


def test_protocol_is_immutable() -> None:
    protocol = elisa_protocol()
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.model = "5PL"  # type: ignore[misc]


# -- layout_samples -------------------------------------------------------------------------


def test_layout_samples_fills_free_wells_after_the_explicit_samples() -> None:
    protocol = elisa_protocol()
    assert protocol.free_layout_wells[:3] == ("C3", "C4", "C5")
    assert len(protocol.free_layout_wells) == 22
    placed = protocol.layout_samples(["S-1", "S-2", "S-3", "S-4", "S-5", "S-6"])
    assert placed == (
        SampleWells("S-000123", ("C1", "C2"), 10.0),
        SampleWells("S-1", ("C3", "C4"), 10.0),
        SampleWells("S-2", ("C5", "C6"), 10.0),
        SampleWells("S-3", ("C7", "C8"), 10.0),
        SampleWells("S-4", ("C9", "C10"), 10.0),
        SampleWells("S-5", ("C11", "C12"), 10.0),
        SampleWells("S-6", ("D1", "D2"), 10.0),
    )


def test_layout_samples_in_column_order_skips_used_wells() -> None:
    protocol = elisa_protocol(ELISA_VALID + "  order: column\n")
    placed = protocol.layout_samples(["S-1", "S-2"])
    # C1 and C2 hold S-000123, so column 1 has D1 left, then column 2 D2.
    assert [s.wells for s in placed] == [("C1", "C2"), ("D1", "D2"), ("C3", "D3")]


def test_layout_samples_keeps_explicit_wells_of_a_listed_sample() -> None:
    protocol = elisa_protocol()
    placed = protocol.layout_samples(["S-1", "S-000123"])
    assert [(s.sample_id, s.wells) for s in placed] == [
        ("S-000123", ("C1", "C2")),
        ("S-1", ("C3", "C4")),
    ]
    assert protocol.layout_samples([]) == protocol.samples


def test_layout_samples_when_the_plate_is_full() -> None:
    protocol = elisa_protocol()
    assert len(protocol.layout_samples([f"S-{i}" for i in range(11)])) == 12
    with pytest.raises(ValueError) as caught:
        protocol.layout_samples([f"S-{i}" for i in range(12)])
    assert str(caught.value) == (
        "12 samples × 2 replicates need 24 wells; the layout C1–D12 has 22 free "
        "(protocol 'test-elisa'): run at most 11 samples on this plate"
    )


def test_layout_samples_without_a_layout() -> None:
    text = ELISA_VALID[: ELISA_VALID.index("sample_layout:")]
    protocol = elisa_protocol(text)
    assert protocol.sample_layout is None
    assert protocol.free_layout_wells == ()
    assert protocol.layout_samples(["S-000123"]) == protocol.samples
    with pytest.raises(ValueError, match="has no sample_layout, so samples S-1 have no wells"):
        protocol.layout_samples(["S-1"])


@pytest.mark.parametrize(
    ("ids", "message"), [(["S-1", "S-1"], "S-1 is listed twice"), (["S-1", " "], "empty")]
)
def test_layout_samples_rejects_bad_ids(ids: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        elisa_protocol().layout_samples(ids)


# -- validation -----------------------------------------------------------------------------


def test_every_mistake_is_reported_at_its_position() -> None:
    issues = issues_of(ELISA_MISTAKES)
    assert [(i.line, i.column, i.path) for i in issues] == [
        (10, 12, "kit.expires"),
        (13, 14, "wavelengths_nm.reference"),
        (16, 3, "standards"),  # 5 levels, 5PL needs 6
        (18, 21, "standards[2].conc_ug_per_l"),  # 4 µg/L twice
        (19, 32, "standards[3].wells"),  # 3 replicates where the others have 2
        (20, 38, "standards[4].wells[1]"),  # no row I
        (21, 15, "blanks[1]"),  # A2 is a standard's well
        (23, 37, "controls[0].range_ug_per_l[1]"),  # high below low
        (25, 49, "samples[0].dilution"),
        (28, 14, "sample_layout.last_well"),  # lower case
        (29, 15, "sample_layout.replicates"),  # samples[0] has 2
        (31, 10, "sample_layout.order"),
    ]
    text = {i.path: str(i) for i in issues}
    assert text["blanks[1]"] == (
        "elisa.yaml:21:15: blanks[1]: well A2 is used twice: by standards[0].wells[1] "
        '(line 16, column 36) and by blanks[1]; each well holds one thing; got "A2"; '
        "allowed: a well that nothing else on the plate uses"
    )
    assert text["standards"].endswith(
        "too few standard levels for a 5PL fit; got a list of 5 items; "
        "allowed: at least 5 levels for 4PL, at least 6 levels for 5PL"
    )
    assert "standards[1] has this concentration already" in text["standards[2].conc_ug_per_l"]
    assert "3 replicate wells, but standards[0].wells has 2" in text["standards[3].wells"]
    assert "did you mean 'C3'?" in text["sample_layout.last_well"]
    assert "allowed: a number > 7" in text["controls[0].range_ug_per_l[1]"]
    assert "allowed: a number from 1 to 1e6" in text["samples[0].dilution"]
    assert "without quotes" in text["kit.expires"]


def test_duplicate_well_names_both_uses_in_file_order() -> None:
    # The blanks come first in the file, so the standard's use of the well is the repeat.
    text = replace_once(ELISA_VALID, "blanks: [H11, H12]\n", "")
    text = replace_once(text, "model: 4PL\n", "model: 4PL\nblanks: [H11, A03]\n")
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (17, 32, "standards[1].wells[0]")
    assert issue.message.startswith(
        "well A3 is used twice: by blanks[1] (line 14, column 15) and by standards[1].wells[0]"
    )
    assert 'got "A3"' in issue.message


def test_duplicate_well_within_one_list() -> None:
    text = replace_once(ELISA_VALID, "blanks: [H11, H12]", "blanks: [H11, H11]")
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (21, 15, "blanks[1]")
    assert "by blanks[0] (line 21, column 10) and by blanks[1]" in issue.message


def test_every_repeat_of_a_well_is_reported() -> None:
    text = replace_once(ELISA_VALID, "wells: [G1, G2]", "wells: [A1, A1]")
    assert positions(text) == [(23, 49, "controls[0].wells[0]"), (23, 53, "controls[0].wells[1]")]


def test_samples_share_one_replicate_count() -> None:
    text = replace_once(ELISA_VALID, "wells: [C1, C2]", "wells: [C1, C2, C3]")
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (29, 15, "sample_layout.replicates")
    assert "2 replicate wells, but samples[0].wells has 3" in issue.message


@pytest.mark.parametrize(
    ("model", "levels", "ok"), [("4PL", 5, True), ("4PL", 4, False), ("5PL", 6, True)]
)
def test_levels_needed_by_the_curve_model(model: str, levels: int, ok: bool) -> None:
    lines = ELISA_VALID.splitlines(keepends=True)
    text = "".join([*lines[:12], f"model: {model}\n", "standards:\n", *lines[14 : 14 + levels]])
    text += "".join(lines[20:])
    if ok:
        assert len(elisa_protocol(text).standards) == levels
    else:
        [issue] = issues_of(text)
        assert (issue.line, issue.path) == (15, "standards")
        assert "too few standard levels for a 4PL fit" in issue.message


def test_layout_block_corners() -> None:
    text = replace_once(ELISA_VALID, "last_well: D12", "last_well: B12")
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (28, 14, "sample_layout.last_well")
    assert "cannot be above or left of first_well" in issue.message
    assert issue.message.endswith("allowed: a well in row C to H and column 1 to 12")


def test_layout_needs_room_for_one_sample() -> None:
    text = replace_once(ELISA_VALID, "last_well: D12", "last_well: C3")
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (27, 3, "sample_layout")
    assert issue.message.startswith("the block C1–C3 has 1 free well ")
    assert "too few for one sample in 2 replicates" in issue.message


def test_layout_may_be_exactly_one_sample() -> None:
    text = replace_once(ELISA_VALID, "last_well: D12", "last_well: C4")
    assert elisa_protocol(text).free_layout_wells == ("C3", "C4")


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        ("  reader: ABS-96", "  reader: ABS-69", "did you mean 'ABS-96'?"),
        ('  name: "TAT test kit"', '  name: ""', "text is empty"),
        ('  name: "TAT test kit"', "  name: x\n  lot: 0001", "quote a lot number"),
        ('  name: "TAT test kit"', "  name: x\n  expires: 2027-02-30", "cannot be read"),
        ('  name: "TAT test kit"', "  name: x\n  expires: 2027-06-30 10:00", "wrong type"),
        ("  signal: 492", "  signal: 300", "allowed: a whole number from 340 to 1000"),
        ("  reference: 650", "  reference: 492", "must differ from the signal"),
        ("model: 4PL", "model: 4pl", "did you mean '4PL'?"),
        ("wells: [A1, A2]", "wells: []", "too few entries"),
        ("wells: [A1, A2]", "wells: A1", "wrong type"),
        ("wells: [A1, A2]", "wells: [A1, A13]", "not a well of a 96-well plate"),
        ("wells: [A1, A2]", "wells: [A1, A0]", "not a well"),
        ("{conc_ug_per_l: 2,", "{conc_ug_per_l: 0,", "allowed: a number > 0 and ≤ 100000"),
        ("blanks: [H11, H12]", "blanks: []", "too few entries"),
        ("range_ug_per_l: [3, 7]", "range_ug_per_l: [3]", "allowed: a list of 2 numbers"),
        ("range_ug_per_l: [3, 7]", "range_ug_per_l: [3, 3]", "must be above the lower limit"),
        ("sample_id: S-000123", "sample_id: S 1", "invalid value"),
        ("dilution: 10}", "dilution: 0}", "allowed: a number from 1 to 1e6"),
        ("replicates: 2", "replicates: 0", "allowed: a whole number from 1 to 8"),
        ("  dilution: 10\n", "  dilution: 0.1\n", "allowed: a number from 1 to 1e6"),
        ("model: 4PL", "model: 4PL\nread_time_s: 0", "allowed: a number > 0 and ≤ 3600"),
        ("model: 4PL", "model: 4PL\nqc:\n  min_r_squared: 1.5", "> 0 and ≤ 1"),
        ("model: 4PL", "model: 4PL\nqc:\n  max_cv: 15", "did you mean 'max_cv_pct'?"),
        (
            "  - {name: low,",
            "  - {name: x, range_ug_per_l: [1, 2], wells: [G3]}\n  - {name: x,",
            "has this name already",
        ),
        (
            "  - {sample_id: S-000123,",
            "  - {sample_id: S-000123, wells: [F1, F2], dilution: 2}\n  - {sample_id: S-000123,",
            "samples[0] is this sample already",
        ),
    ],
)
def test_single_field_errors(line: str, replacement: str, expected: str) -> None:
    issues = issues_of(replace_once(ELISA_VALID, line, replacement))
    assert any(expected in i.message for i in issues), [str(i) for i in issues]


def test_missing_sections_are_named() -> None:
    text = "format: 1\nid: x\nversion: 1\ntitle: x\nassay: elisa\n"
    missing = [i.path for i in issues_of(text)]
    assert missing == ["blanks", "instruments", "kit", "model", "standards", "wavelengths_nm"]
