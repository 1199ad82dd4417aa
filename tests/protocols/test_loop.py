"""Chandler loop protocols: the model, and validation of the loop-specific keys and rules."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from protocols import (
    BathSettings,
    ChannelSpec,
    ClotDetection,
    LoopProtocol,
    LoopSettings,
    ProtocolValidationError,
    SamplingPlan,
    ValidationIssue,
    parse_protocol,
)
from tests.protocols.texts import LOOP_VALID

LOOP_MISTAKES = textwrap.dedent(
    """\
    format: 1
    id: loop-typos
    version: 1
    title: Loop mistakes
    assay: chandler-loop
    instruments:
      bath: JULABO
      loop: LOOP-9
    bath:
      setpoint_c: 50
      tolerance_c: 0
    loops:
      volume_ml: 5.0
      tubing: ""
      rpm: 30.5
      heparin_iu_per_ml: 1.0
    duration_min: 30
    sample_rate_hz: 1
    samples:
      donor: VD-HEALTHY-01
    channels:
      - loop: 1
        contents: vehicle
      - loop: 9
        contents: lot
        dose_cells_per_ml: 1.0e4
      - loop: 1
        contents: lot
    sampling:
      times_min: [0, 15, 10, 45]
      tube: edta
      volume_ml: 1.0
      loops: [1, 4]
    clot_detection:
      threshold_permille: 1000
      hold: 30
    """
)


def loop_protocol(text: str = LOOP_VALID) -> LoopProtocol:
    protocol = parse_protocol(text)
    assert isinstance(protocol, LoopProtocol)
    return protocol


def issues_of(text: str) -> list[ValidationIssue]:
    with pytest.raises(ProtocolValidationError) as caught:
        parse_protocol(text, "loop.yaml")
    return caught.value.issues


def positions(text: str) -> list[tuple[int, int, str]]:
    return [(i.line, i.column, i.path) for i in issues_of(text)]


def replace_once(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# -- the model ------------------------------------------------------------------------------


def test_parsed_values_and_defaults() -> None:
    protocol = loop_protocol()
    assert protocol.assay == "chandler-loop"
    assert (protocol.id, protocol.version, protocol.title) == ("test-loop", 2, "Test loop protocol")
    assert protocol.instruments == {"bath": "JULABO", "loop": "LOOP-8"}
    assert protocol.bath == BathSettings(setpoint_c=37.0, tolerance_c=0.5, equilibration_s=0.0)
    assert protocol.loops == LoopSettings(5.0, "PVC, ID 4 mm", 30, 1.0)
    assert protocol.duration_s == 3600.0
    assert protocol.expected_duration_s == 3600.0
    assert protocol.sample_rate_hz == 1
    assert protocol.channels[0] == ChannelSpec(1, "vehicle", 0.0, None, None)
    assert protocol.channels[2] == ChannelSpec(5, "lot", 3.0e4, "VL-BM-01", None)
    assert protocol.sampling == SamplingPlan(
        times_s=(0.0, 900.0, 3600.0),
        tube="EDTA",
        volume_ml=1.0,
        overdue_after_s=120.0,
        loops=(1, 3, 5),
    )
    assert protocol.clot_detection == ClotDetection(threshold_permille=300, hold_s=30.0)
    assert protocol.source == "<string>"
    assert len(protocol.sha256) == 64


def test_every_setting_is_read() -> None:
    text = replace_once(
        LOOP_VALID,
        "  setpoint_c: 37.0\n",
        "  setpoint_c: 36.5\n  tolerance_c: 0.25\n  equilibration_s: 300\n",
    )
    text = replace_once(text, "  volume_ml: 1.0\n", "  volume_ml: 1.0\n  overdue_after_s: 90\n")
    text = replace_once(text, "  tube: EDTA", "  tube: citrate")
    text += "  loops: [5, 1]\nclot_detection:\n  threshold_permille: 250\n  hold_s: 45\n"
    protocol = loop_protocol(text)
    assert protocol.bath == BathSettings(36.5, 0.25, 300.0)
    assert protocol.expected_duration_s == 3900.0
    assert protocol.sampling.tube == "citrate"
    assert protocol.sampling.overdue_after_s == 90.0
    assert protocol.sampling.loops == (1, 5)
    assert protocol.clot_detection == ClotDetection(250, 45.0)


def test_resolved_channels_name_the_loop() -> None:
    protocol = loop_protocol()
    resolved = protocol.resolved_channels(donor="VD-SEPSIS-03")
    assert [(c.channel, c.lot_id, c.donor_id) for c in resolved] == [
        (1, None, "VD-SEPSIS-03"),
        (3, "VL-UC-01", "VD-SEPSIS-03"),
        (5, "VL-BM-01", "VD-SEPSIS-03"),
    ]
    without_lot = loop_protocol(replace_once(LOOP_VALID, "  lot: VL-UC-01\n", ""))
    with pytest.raises(ValueError, match="loop 3 holds the lot"):
        without_lot.resolved_channels()
    assert without_lot.resolved_channels(lot="VL-AT-07")[1].lot_id == "VL-AT-07"


def test_protocol_is_immutable() -> None:
    protocol = loop_protocol()
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.sampling.volume_ml = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        protocol.instruments["loop"] = "LOOP-9"  # type: ignore[index]


# -- validation -----------------------------------------------------------------------------


def test_every_mistake_is_reported_at_its_position() -> None:
    issues = issues_of(LOOP_MISTAKES)
    assert [(i.line, i.column, i.path) for i in issues] == [
        (8, 9, "instruments.loop"),
        (10, 15, "bath.setpoint_c"),
        (11, 16, "bath.tolerance_c"),
        (14, 11, "loops.tubing"),
        (15, 8, "loops.rpm"),
        (24, 11, "channels[1].loop"),
        (27, 5, "channels[2].dose_cells_per_ml"),
        (27, 11, "channels[2].loop"),
        (30, 22, "sampling.times_min[2]"),
        (30, 26, "sampling.times_min[3]"),
        (31, 9, "sampling.tube"),
        (35, 23, "clot_detection.threshold_permille"),
        (36, 3, "clot_detection.hold"),
    ]
    text = {i.path: str(i) for i in issues}
    assert text["instruments.loop"] == (
        "loop.yaml:8:9: instruments.loop: unknown instrument model, did you mean 'LOOP-8'?; "
        'got "LOOP-9"; allowed: one of LOOP-8'
    )
    assert text["channels[1].loop"].endswith(
        "out of range; got 9; allowed: a whole number from 1 to 8"
    )
    assert "a lot loop needs its dose" in text["channels[2].dose_cells_per_ml"]
    assert text["channels[2].loop"].endswith(
        "loop 1 is already used by channels[0]; got 1; allowed: each loop number once"
    )
    assert text["sampling.times_min[3]"].endswith(
        "after the end of the run at 30 min (duration_min); got 45; allowed: a number from 0 to 30"
    )
    assert "did you mean 'EDTA'?" in text["sampling.tube"]
    assert "did you mean 'hold_s'?" in text["clot_detection.hold"]


def test_sampling_must_fit_in_the_loop() -> None:
    text = replace_once(LOOP_VALID, "  volume_ml: 1.0\n", "  volume_ml: 2.0\n")
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (34, 14, "sampling.volume_ml")
    assert issue.message == (
        "3 draws × 2 mL take 6 mL, more than the 5 mL in each loop (loops.volume_ml); draw "
        "less, sample fewer times or fill the loops with more blood; got 2.0; "
        "allowed: a number > 0 and ≤ 1.66667"
    )


def test_sampling_may_take_the_whole_loop_volume() -> None:
    text = replace_once(LOOP_VALID, "  volume_ml: 5.0\n", "  volume_ml: 0.9\n")
    text = replace_once(text, "  volume_ml: 1.0\n", "  volume_ml: 0.3\n")
    assert loop_protocol(text).sampling.volume_ml == 0.3  # 3 × 0.3 mL = 0.9 mL exactly


def test_sampling_volume_counts_draws_even_when_a_time_is_wrong() -> None:
    text = replace_once(LOOP_VALID, "[0, 15, 60]", "[0, 15, 90, 60, 70, 80]")
    assert positions(text) == [
        (32, 22, "sampling.times_min[2]"),  # after the end of the run
        (32, 26, "sampling.times_min[3]"),  # not increasing
        (32, 30, "sampling.times_min[4]"),
        (32, 34, "sampling.times_min[5]"),
        (34, 14, "sampling.volume_ml"),  # 6 draws × 1 mL > 5 mL
    ]


@pytest.mark.parametrize(
    ("loops", "expected"),
    [
        ("[1, 4]", [(35, 14, "sampling.loops[1]", "loop 4 has no entry in channels")]),
        ("[3, 3]", [(35, 14, "sampling.loops[1]", "already listed as sampling.loops[0]")]),
        ("[3, 5]", [(35, 10, "sampling.loops", "no vehicle loop is sampled")]),
        ("[9]", [(35, 11, "sampling.loops[0]", "out of range")]),
        ("[]", [(35, 10, "sampling.loops", "too few entries")]),
        ("All", [(35, 10, "sampling.loops", "unknown value, did you mean 'all'?")]),
        ("3", [(35, 10, "sampling.loops", "wrong type")]),
    ],
)
def test_sampled_loops(loops: str, expected: list[tuple[int, int, str, str]]) -> None:
    issues = issues_of(LOOP_VALID + f"  loops: {loops}\n")
    assert [(i.line, i.column, i.path) for i in issues] == [e[:3] for e in expected]
    for issue, (*_, message) in zip(issues, expected, strict=True):
        assert message in issue.message


def test_sampling_only_the_vehicle_and_one_lot_loop() -> None:
    assert loop_protocol(LOOP_VALID + "  loops: [3, 1]\n").sampling.loops == (1, 3)


def test_lot_loops_need_a_vehicle_loop() -> None:
    text = replace_once(LOOP_VALID, "contents: vehicle", "contents: lot\n    dose_cells_per_ml: 5")
    [issue] = issues_of(text)
    assert (issue.line, issue.column, issue.path) == (22, 3, "channels")
    assert issue.message.startswith("no vehicle loop: the indices compare each lot loop")


def test_channel_entries_use_the_loop_key() -> None:
    text = replace_once(LOOP_VALID, "  - loop: 1\n", "  - channel: 1\n")
    issues = issues_of(text)
    assert [(i.line, i.column, i.path) for i in issues] == [
        (22, 5, "channels[0].channel"),  # unknown key
        (22, 5, "channels[0].loop"),  # and `loop:` is missing
    ]
    assert issues[0].message.endswith("allowed: loop, contents, dose_cells_per_ml, lot, donor")


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        ("  setpoint_c: 37.0", "  setpoint_c: 3", "allowed: a number from 4 to 45"),
        ("  setpoint_c: 37.0", "  setpoint_c: 37\n  equilibration_s: 4000", "from 0 to 3600"),
        ("  volume_ml: 5.0", "  volume_ml: 0.4", "allowed: a number from 0.5 to 20"),
        ("  rpm: 30", "  rpm: 61", "allowed: a whole number from 1 to 60"),
        ("  heparin_iu_per_ml: 1.0", "  heparin_iu_per_ml: -1", "from 0 to 10"),
        ('  tubing: "PVC, ID 4 mm"', "  tubing: 4", "wrong type"),
        ("sample_rate_hz: 1", "sample_rate_hz: 11", "allowed: a whole number from 1 to 10"),
        ("duration_min: 60", "duration_min: 300", "allowed: a number from 1 to 240"),
        ("  volume_ml: 1.0", "  volume_ml: 0", "allowed: a number > 0 and ≤ 20"),
        ("  tube: EDTA", "  tube: heparin", "allowed: one of EDTA, citrate"),
        ("[0, 15, 60]", "[-1, 15, 60]", "allowed: a number from 0 to 240"),
        ("  tube: EDTA", "  tube: EDTA\n  overdue_after_s: 0", "> 0 and ≤ 3600"),
        ("  loop: LOOP-8", "  loop: LOOP-8\n  tem: TEM-4", "unknown key"),
        ("bath:\n  setpoint_c: 37.0\n", "bath: 37\n", "wrong type; got 37; allowed: a mapping"),
        ("loops:\n  volume_ml: 5.0\n", "loops:\n", "required key is missing"),
        ("sampling:\n", "sampling: []\nx:\n", "wrong type; got a list of 0 items"),
    ],
)
def test_single_field_errors(line: str, replacement: str, expected: str) -> None:
    issues = issues_of(replace_once(LOOP_VALID, line, replacement))
    assert any(expected in i.message for i in issues), [str(i) for i in issues]


@pytest.mark.parametrize(
    ("clot", "expected"),
    [
        ("  threshold_permille: 0\n", "allowed: a whole number from 1 to 999"),
        ("  threshold_permille: 300.5\n", "not a whole number"),
        ("  hold_s: 0.5\n", "allowed: a number from 1 to 600"),
    ],
)
def test_clot_detection_ranges(clot: str, expected: str) -> None:
    [issue] = issues_of(LOOP_VALID + "clot_detection:\n" + clot)
    assert expected in issue.message


def test_missing_sections_are_named() -> None:
    text = "format: 1\nid: x\nversion: 1\ntitle: x\nassay: chandler-loop\n"
    missing = [i.path for i in issues_of(text)]
    assert missing == [
        "bath",
        "channels",
        "duration_min",
        "instruments",
        "loops",
        "sample_rate_hz",
        "samples",
        "sampling",
    ]
