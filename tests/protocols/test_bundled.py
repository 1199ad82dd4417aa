"""The protocol files shipped with the software are valid and say what they claim."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from protocols import (
    ElisaProtocol,
    LoopProtocol,
    TemProtocol,
    bundled_protocols,
    check_files,
    load_protocol,
)

TEM_EXPECTED = {
    "natem-msc-dose-series.yaml": ("NATEM", "rotem", [0.0, 1.0e4, 3.0e4, 1.0e5]),
    "extem-msc-dose-series.yaml": ("EXTEM", "rotem", [0.0, 1.0e4, 3.0e4, 1.0e5]),
    "teg-native-msc.yaml": ("TEGN", "teg", [0.0, 3.0e4]),
}
OTHER_FILES = {"chandler-loop-60min.yaml": "chandler-loop", "tat-elisa.yaml": "elisa"}
PROTOCOLS_DIR = Path(__file__).resolve().parents[2] / "protocols"
TEM_FILES = [PROTOCOLS_DIR / name for name in TEM_EXPECTED]


def test_bundled_files_are_the_expected_ones() -> None:
    paths = bundled_protocols()
    assert sorted(p.name for p in paths) == sorted([*TEM_EXPECTED, *OTHER_FILES])
    assert all(p.is_absolute() and p.parent.name == "protocols" for p in paths)


@pytest.mark.parametrize("path", bundled_protocols(), ids=lambda p: p.name)
def test_bundled_file_names_its_assay_and_id(path: Path) -> None:
    protocol = load_protocol(path)
    assert protocol.id == path.stem
    assert protocol.assay == OTHER_FILES.get(path.name, "thromboelastometry")
    assert protocol.version == 1


@pytest.mark.parametrize("path", TEM_FILES, ids=lambda p: p.name)
def test_bundled_tem_file_is_valid(path: Path) -> None:
    protocol = load_protocol(path)
    assert isinstance(protocol, TemProtocol)
    reagent, style, doses = TEM_EXPECTED[path.name]
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


def test_bundled_chandler_loop_file() -> None:
    protocol = load_protocol(PROTOCOLS_DIR / "chandler-loop-60min.yaml")
    assert isinstance(protocol, LoopProtocol)
    assert dict(protocol.instruments) == {"bath": "JULABO", "loop": "LOOP-8"}
    assert [c.channel for c in protocol.channels] == list(range(1, 9))
    doses = [0.0, 0.0, 1.0e4, 1.0e4, 3.0e4, 3.0e4, 1.0e5, 1.0e5]
    assert [c.dose_cells_per_ml for c in protocol.channels] == doses
    assert [c.contents for c in protocol.channels[:2]] == ["vehicle", "vehicle"]
    assert protocol.duration_s == 3600.0
    assert protocol.bath.setpoint_c == 37.0
    assert protocol.loops.heparin_iu_per_ml == 1.0
    assert protocol.loops.rpm == 30
    assert protocol.sampling.times_s == (0.0, 300.0, 900.0, 1800.0, 3600.0)
    assert protocol.sampling.tube == "EDTA"
    assert len(protocol.sampling.times_s) * protocol.sampling.volume_ml <= protocol.loops.volume_ml
    assert protocol.sampling.loops == tuple(range(1, 9))
    assert (protocol.clot_detection.threshold_permille, protocol.clot_detection.hold_s) == (
        300,
        30.0,
    )
    assert protocol.samples.donor_id == "VD-HEALTHY-01"
    assert protocol.samples.lot_id == "VL-UC-01"


def test_bundled_tat_elisa_file() -> None:
    protocol = load_protocol(PROTOCOLS_DIR / "tat-elisa.yaml")
    assert isinstance(protocol, ElisaProtocol)
    assert dict(protocol.instruments) == {"reader": "ABS-96"}
    assert (protocol.signal_nm, protocol.reference_nm, protocol.model) == (492, 650, "4PL")
    assert [s.conc_ug_per_l for s in protocol.standards] == [2.0, 4.0, 8.0, 15.0, 30.0, 60.0]
    assert all(len(s.wells) == 2 for s in protocol.standards)
    assert protocol.blanks
    assert [c.name for c in protocol.controls] == ["low", "high"]
    assert protocol.sample_layout is not None
    assert protocol.sample_layout.dilution == 2.0
    assert protocol.sample_layout.replicates == 2
    placed = protocol.layout_samples(["S-000001", "S-000002"])
    assert [s.wells for s in placed] == [("B7", "B8"), ("B9", "B10")]
    assert protocol.duration_s == 60.0
