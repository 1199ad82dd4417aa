"""The protocol files shipped with the software are valid and say what they claim."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from protocols import bundled_protocols, check_files, load_protocol

EXPECTED = {
    "natem-msc-dose-series.yaml": ("NATEM", "rotem", [0.0, 1.0e4, 3.0e4, 1.0e5]),
    "extem-msc-dose-series.yaml": ("EXTEM", "rotem", [0.0, 1.0e4, 3.0e4, 1.0e5]),
    "teg-native-msc.yaml": ("TEGN", "teg", [0.0, 3.0e4]),
}


def test_bundled_files_are_the_expected_ones() -> None:
    paths = bundled_protocols()
    assert sorted(p.name for p in paths) == sorted(EXPECTED)
    assert all(p.is_absolute() and p.parent.name == "protocols" for p in paths)


@pytest.mark.parametrize("path", bundled_protocols(), ids=lambda p: p.name)
def test_bundled_file_is_valid(path: Path) -> None:
    protocol = load_protocol(path)
    reagent, style, doses = EXPECTED[path.name]
    assert protocol.id == path.stem
    assert (protocol.reagent, protocol.style) == (reagent, style)
    assert [c.dose_cells_per_ml for c in protocol.channels] == doses
    assert protocol.channels[0].contents == "vehicle"
    assert protocol.duration_s == 3600.0
    assert protocol.sample_rate_hz == 10
    assert protocol.samples.donor_id == "VD-HEALTHY-01"
    assert protocol.samples.lot_id == "VL-UC-01"


@pytest.mark.parametrize("path", bundled_protocols(), ids=lambda p: p.name)
def test_text_and_hash_are_those_of_the_file(path: Path) -> None:
    protocol = load_protocol(path)
    data = path.read_bytes()
    assert protocol.sha256 == hashlib.sha256(data).hexdigest()
    assert protocol.text.encode("utf-8") == data
    assert protocol.source == str(path)


def test_check_files_finds_no_issue_in_bundled_files() -> None:
    assert check_files(bundled_protocols()) == []
