"""instrument.fcs_import: FCS files written by flowio with a known CD142+ fraction."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from instrument.errors import StorageError
from instrument.fcs_import import FcsImportError, cd142_gate, import_cd142, read_fcs
from instrument.lots import get_lot
from tests.lab_link.conftest import N_EVENTS, TRUE_FRACTION, LoopRegistry


def test_known_positive_fraction_is_recovered_and_stored_on_the_lot(
    fcs_pair: tuple[Path, Path, float], registry: LoopRegistry, tmp_path: Path
) -> None:
    sample, control, realised = fcs_pair
    result = import_cd142(
        registry.store,
        "L-UC-7",
        sample,
        channel="CD142 PE",
        control_path=control,
        png=tmp_path / "fig" / "cd142.png",
    )
    g = result.gate
    assert g.pct_positive == pytest.approx(100 * TRUE_FRACTION, abs=1.0)
    assert g.pct_positive == pytest.approx(realised, abs=1.0)
    assert g.control_pct_positive == pytest.approx(1.0, abs=0.05)
    assert g.positive_median == pytest.approx(6_000, rel=0.05)
    assert g.n_events == g.n_control == N_EVENTS
    assert result.channel.pnn == "PE-A"
    lot = get_lot(registry.store, "L-UC-7")
    assert lot["cd142_pct"] == pytest.approx(g.pct_positive, abs=0.01)
    assert lot["cd142_mfi"] == pytest.approx(g.mfi, rel=1e-4)
    sha = hashlib.sha256(sample.read_bytes()).hexdigest()
    assert result.sample_sha256 == sha and sha in lot["notes"]
    assert hashlib.sha256(control.read_bytes()).hexdigest() in lot["notes"]
    assert "control p99" in lot["notes"] and "L-UC-7_CD142.fcs" in lot["notes"]
    assert result.png is not None and result.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_channel_by_pnn_and_case_insensitive(fcs_pair: tuple[Path, Path, float]) -> None:
    f = read_fcs(fcs_pair[0])
    assert f.version == "3.1" and f.events.shape == (N_EVENTS, 4)
    assert f.channel("PE-A") == f.channel("cd142 pe") == f.channel("CD142 PE")


def test_missing_channel_lists_the_channels(
    fcs_pair: tuple[Path, Path, float], registry: LoopRegistry
) -> None:
    sample, control, _ = fcs_pair
    with pytest.raises(FcsImportError) as info:
        import_cd142(registry.store, "L-UC-7", sample, channel="APC-A", control_path=control)
    text = str(info.value)
    assert str(sample) in text and "'APC-A'" in text
    assert "FSC-A, SSC-A, FITC-A (CD90 FITC), PE-A (CD142 PE)" in text
    assert get_lot(registry.store, "L-UC-7")["cd142_pct"] == 35.0  # unchanged


def test_truncated_file_is_a_clear_error_naming_it(
    fcs_pair: tuple[Path, Path, float], registry: LoopRegistry, tmp_path: Path
) -> None:
    data = fcs_pair[0].read_bytes()
    cut = tmp_path / "cut.fcs"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FcsImportError, match=r"cut\.fcs is not a readable FCS file.*truncated"):
        import_cd142(registry.store, "L-UC-7", cut, channel="PE-A", control_path=fcs_pair[1])


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "is not an FCS file"), (b"FCS3.1    garbage", "not a readable FCS file")],
)
def test_invalid_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.fcs"
    path.write_bytes(content)
    with pytest.raises(FcsImportError, match=match):
        read_fcs(path)
    with pytest.raises(FcsImportError, match="cannot read"):
        read_fcs(tmp_path / "missing.fcs")


def test_unknown_lot_fails_before_reading(
    fcs_pair: tuple[Path, Path, float], registry: LoopRegistry
) -> None:
    with pytest.raises(StorageError, match="no lot"):
        import_cd142(registry.store, "L-NONE", fcs_pair[0], channel="PE-A", control_path="x")


def test_gate_definition() -> None:
    control = np.arange(1, 101, dtype=np.float64)  # p99 = 99.01
    sample = np.array([1, 50, 99.5, 100, 500], dtype=np.float64)
    g = cd142_gate(sample, control)
    assert g.threshold == pytest.approx(99.01)
    assert g.pct_positive == pytest.approx(60.0)
    assert g.mfi == 99.5 and g.positive_median == 100.0
    assert g.control_pct_positive == pytest.approx(1.0)
    with pytest.raises(ValueError, match="percentile"):
        cd142_gate(sample, control, percentile=100)
