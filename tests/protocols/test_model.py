"""The protocol model: run-time lot and donor overrides, labels and durations."""

from __future__ import annotations

import dataclasses

import pytest

from protocols import ChannelSpec, SampleDefaults, TemAnalysisSettings, parse_protocol


def test_resolved_channels_uses_protocol_defaults(valid_text: str) -> None:
    protocol = parse_protocol(valid_text)
    resolved = protocol.resolved_channels()
    assert [(c.channel, c.lot_id, c.donor_id) for c in resolved] == [
        (1, None, "VD-HEALTHY-01"),
        (2, "VL-UC-01", "VD-HEALTHY-01"),
        (3, "VL-BM-01", "VD-HEALTHY-02"),
        (4, None, "VD-HEALTHY-02"),
    ]


def test_run_time_overrides_replace_only_the_defaults(valid_text: str) -> None:
    protocol = parse_protocol(valid_text)
    resolved = protocol.resolved_channels(lot="VL-AT-07", donor="VD-SEPSIS-03")
    assert [(c.channel, c.lot_id, c.donor_id) for c in resolved] == [
        (1, None, "VD-SEPSIS-03"),
        (2, "VL-AT-07", "VD-SEPSIS-03"),
        (3, "VL-BM-01", "VD-HEALTHY-02"),
        (4, None, "VD-HEALTHY-02"),
    ]
    # The protocol itself is unchanged: it still says "the default" for unset channels.
    assert protocol.channels[1].lot_id is None
    assert protocol.channels[1].donor_id is None


def test_resolved_channels_without_any_lot_id_is_an_error(valid_text: str) -> None:
    protocol = parse_protocol(valid_text.replace("  lot: VL-UC-01\n", ""))
    assert protocol.samples == SampleDefaults(lot_id=None, donor_id="VD-HEALTHY-01")
    with pytest.raises(ValueError, match="channel 2 holds the lot"):
        protocol.resolved_channels()
    assert protocol.resolved_channels(lot="VL-PL-02")[1].lot_id == "VL-PL-02"


def test_parsed_values_and_defaults(valid_text: str) -> None:
    protocol = parse_protocol(valid_text)
    assert protocol.format == 1
    assert protocol.id == "test-protocol"
    assert protocol.version == 3
    assert protocol.description == ""
    assert protocol.instruments == {"tem": "TEM-4"}
    assert protocol.temperature_tolerance_c == 0.5
    assert protocol.equilibration_s == 0.0
    assert protocol.duration_s == 3600.0
    assert protocol.expected_duration_s == 3600.0
    assert protocol.analysis == TemAnalysisSettings()
    assert protocol.channels[0] == ChannelSpec(1, "vehicle", 0.0, None, None)
    assert protocol.channels[2] == ChannelSpec(3, "lot", 3.0e4, "VL-BM-01", "VD-HEALTHY-02")
    assert protocol.source == "<string>"


def test_expected_duration_includes_equilibration(valid_text: str) -> None:
    text = valid_text.replace("duration_min: 60\n", "duration_min: 45\nequilibration_s: 90\n")
    protocol = parse_protocol(text)
    assert protocol.duration_s == 2700.0
    assert protocol.expected_duration_s == 2790.0


def test_analysis_settings_are_read(valid_text: str) -> None:
    text = valid_text + (
        "analysis:\n"
        "  ct_threshold_mm: 1.5\n"
        "  cft_threshold_mm: 15\n"
        "  amplitude_times_min: [5, 15]\n"
        "  lysis_index_time_min: 45\n"
        "  alpha_chart_mm_per_min: 4\n"
    )
    assert parse_protocol(text).analysis == TemAnalysisSettings(1.5, 15.0, (5.0, 15.0), 45.0, 4.0)


def test_labels() -> None:
    assert ChannelSpec(1, "vehicle", 0.0, None, None).label == "vehicle"
    lot = ChannelSpec(2, "lot", 1.0e4, "VL-UC-01", None)
    assert lot.label == "VL-UC-01 @ 1.0e+04 cells/mL"
    assert dataclasses.replace(lot, lot_id=None).label == "lot @ 1.0e+04 cells/mL"


def test_protocol_is_immutable(valid_text: str) -> None:
    protocol = parse_protocol(valid_text)
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.version = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        protocol.instruments["tem"] = "TEM-5"  # type: ignore[index]
