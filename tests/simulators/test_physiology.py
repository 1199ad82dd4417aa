"""The virtual lab: data file checks and the TEM truth model (no I/O)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from simulators.physiology import (
    TemSample,
    UnknownVirtualSample,
    VirtualLab,
    VirtualLabError,
    ground_truth_parameters,
    tem_truth,
)

DATA_FILE = Path(__file__).parents[2] / "simulators" / "data" / "virtual_lab.yaml"
LOTS_BY_TF = ["VL-BM-01", "VL-UC-01", "VL-PL-01", "VL-AT-01"]


def test_packaged_file_loads_with_everything_the_simulators_need(lab: VirtualLab) -> None:
    assert set(lab.assays) == {"NATEM", "EXTEM", "INTEM", "FIBTEM", "HEPTEM", "TEGN", "TEGK"}
    assert {"VD-HEALTHY-01", "VD-HEALTHY-02", "VD-HYPER-01"} <= set(lab.donors)
    assert set(LOTS_BY_TF) <= set(lab.lots)
    assert lab.assays["NATEM"].ct_range_s == (256.0, 767.0)
    assert lab.assays["EXTEM"].ct_range_s == (42.0, 74.0)
    assert lab.donor("VD-HYPER-01").coagulability == "hypercoagulable"
    tf = [lab.lot(lot).tf_per_cell_tfu for lot in LOTS_BY_TF]
    assert tf == sorted(tf) and tf[0] < tf[-1]
    assert lab.lot("VL-UC-01").tf_per_cell_tfu == pytest.approx(0.3 * 1.0)


def test_unknown_ids_raise_a_key_error_that_lists_the_known_ones(lab: VirtualLab) -> None:
    with pytest.raises(KeyError) as info:
        lab.donor("VD-NOBODY")
    assert isinstance(info.value, UnknownVirtualSample)
    assert str(info.value).startswith("unknown virtual donor 'VD-NOBODY'")
    assert "VD-HEALTHY-01" in str(info.value) and "VD-HYPER-01" in str(info.value)
    with pytest.raises(UnknownVirtualSample, match="VL-AT-01"):
        lab.lot("VL-XX-99")
    with pytest.raises(ValueError, match="unknown assay 'ROTEM'"):
        lab.assay("ROTEM")


def _write_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = DATA_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "lab.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        (
            "      ct_s: [256, 767]",
            "      ct_s: [767, 256]",
            "assays.NATEM.reference_ranges.ct_s",
            "low < high",
        ),
        (
            "    cd142_positive_pct: 10",
            "    cd142_positive_pct: 110",
            "lots.VL-BM-01.cd142_positive_pct",
            "<= 100",
        ),
        (
            "    coagulability: healthy\n    platelets_e9_per_l: 245",
            "    coagulability: sick\n    platelets_e9_per_l: 245",
            "donors.VD-HEALTHY-01.coagulability",
            "unknown state 'sick'",
        ),
        (
            "      sources: [tekkesin2011]",
            "      sources: [nobody1999]",
            "assays.NATEM.reference_ranges.sources",
            "unknown reference 'nobody1999'",
        ),
        (
            "      sources: [tekkesin2011]\n",
            "",
            "assays.NATEM.reference_ranges",
            "illustrative: true",
        ),
        (
            "    amplitude_noise_sd_mm: 0.05",
            "    amplitude_noise_sd_mm: lots",
            "instrument.tem4.amplitude_noise_sd_mm",
            "expected a number",
        ),
        ("    tat_ug_per_l: 2.1\n", "", "donors.VD-HEALTHY-01.tat_ug_per_l", "missing"),
    ],
)
def test_a_bad_file_names_file_key_line_and_problem(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    path = _write_variant(tmp_path, old, new)
    with pytest.raises(VirtualLabError) as info:
        VirtualLab.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert info.value.line is not None and info.value.line > 1
    assert key in message and problem in message


def test_yaml_syntax_errors_and_missing_files_are_reported_with_the_file(tmp_path: Path) -> None:
    path = _write_variant(tmp_path, "format: hemocompat-virtual-lab/1", "format: [unclosed")
    with pytest.raises(VirtualLabError, match=r"lab\.yaml:\d+: \(syntax\): not valid YAML"):
        VirtualLab.load(path)
    with pytest.raises(VirtualLabError, match="cannot read the file"):
        VirtualLab.load(tmp_path / "absent.yaml")


def _samples(lab: VirtualLab) -> list[TemSample]:
    out = [TemSample(d) for d in lab.donors]
    out += [TemSample("VD-HEALTHY-01", lot, dose) for lot in LOTS_BY_TF for dose in (1e4, 1e6)]
    out.append(TemSample("VD-HYPER-01", "VL-AT-01", 3e5))
    return out


def test_trace_passes_exactly_through_2_mm_at_ct_and_20_mm_at_ct_plus_cft(
    lab: VirtualLab,
) -> None:
    checked = 0
    for assay in lab.assays:
        for sample in _samples(lab):
            for seed, channel in ((0, 1), (7, 3)):
                truth = tem_truth(lab, assay, sample, seed, channel)
                assert truth.amplitude_mm(truth.ct_s) == pytest.approx(2.0, abs=1e-9)
                assert truth.t0_s >= 0.25 * truth.ct_s - 1e-9
                assert truth.amplitude_mm([0.0, truth.t0_s]).tolist() == [0.0, 0.0]
                if truth.cft_s is None:
                    assert truth.mcf_mm <= 20.0
                    continue
                checked += 1
                a20 = truth.amplitude_mm(truth.ct_s + truth.cft_s)
                assert a20 == pytest.approx(20.0, abs=1e-9)
                assert truth.lysis_onset_s > truth.ct_s + truth.cft_s
    assert checked > 100


def test_fibtem_of_healthy_blood_never_reaches_20_mm(lab: VirtualLab) -> None:
    truth = tem_truth(lab, "FIBTEM", TemSample("VD-HEALTHY-01"), 0, 1)
    assert truth.cft_s is None
    assert float(np.max(truth.amplitude_mm(np.arange(0, 3600.0, 1.0)))) < 20.0
    params = ground_truth_parameters(truth, 3600)
    assert params["CFT_s"] is None and params["CT_s"] == pytest.approx(truth.ct_s)


def test_alpha_follows_the_teg_chart_convention(lab: VirtualLab) -> None:
    truth = tem_truth(lab, "NATEM", TemSample("VD-HEALTHY-02"), 3, 2)
    h = 1e-4
    slope_mm_s = float(
        (truth.amplitude_mm(truth.ct_s + h) - truth.amplitude_mm(truth.ct_s - h)) / (2 * h)
    )
    expected = math.degrees(math.atan(slope_mm_s * 60.0 / 2.0))
    assert truth.alpha_deg == pytest.approx(expected, rel=1e-6)
    assert 30.0 < truth.alpha_deg < 85.0


@pytest.mark.parametrize("lot", LOTS_BY_TF)
def test_natem_ct_shortens_monotonically_with_dose(lab: VirtualLab, lot: str) -> None:
    doses = [0.0, 1e3, 3e3, 1e4, 3e4]
    cts = [tem_truth(lab, "NATEM", TemSample("VD-HEALTHY-01", lot, d), 5, 1).ct_s for d in doses]
    assert all(a > b for a, b in itertools.pairwise(cts)), cts


def test_natem_ct_follows_tissue_factor_bm_slowest_at_fastest(lab: VirtualLab) -> None:
    for dose in (1e4, 3e4):
        cts = [
            tem_truth(lab, "NATEM", TemSample("VD-HEALTHY-02", lot, dose), 11, 4).ct_s
            for lot in LOTS_BY_TF
        ]
        assert cts == sorted(cts, reverse=True) and len(set(cts)) == 4, cts


def test_tissue_factor_barely_moves_extem_but_strongly_moves_natem(lab: VirtualLab) -> None:
    def shortening(assay: str) -> float:
        vehicle = tem_truth(lab, assay, TemSample("VD-HEALTHY-01"), 0, 1).ct_s
        spiked = tem_truth(lab, assay, TemSample("VD-HEALTHY-01", "VL-AT-01", 1e5), 0, 1).ct_s
        return 1.0 - spiked / vehicle

    assert shortening("EXTEM") < 0.15
    assert shortening("NATEM") > 0.5
    assert shortening("TEGN") > 0.5


def test_vehicle_is_the_same_with_no_lot_or_zero_dose(lab: VirtualLab) -> None:
    a = tem_truth(lab, "NATEM", TemSample("VD-HEALTHY-01"), 2, 2)
    b = tem_truth(lab, "NATEM", TemSample("VD-HEALTHY-01", "VL-AT-01", 0.0), 2, 2)
    assert a == b and a.tf_load_tfu_per_ml == 0.0


@pytest.mark.parametrize("assay", ["NATEM", "EXTEM", "INTEM"])
def test_hypercoagulable_donor_clots_faster_and_firmer(lab: VirtualLab, assay: str) -> None:
    hyper = tem_truth(lab, assay, TemSample("VD-HYPER-01"), 0, 1)
    for donor in ("VD-HEALTHY-01", "VD-HEALTHY-02"):
        healthy = tem_truth(lab, assay, TemSample(donor), 0, 1)
        assert hyper.ct_s < healthy.ct_s
        assert hyper.mcf_mm > healthy.mcf_mm
        assert hyper.ml60_fraction < healthy.ml60_fraction


def test_truth_is_deterministic_per_seed_and_channel(lab: VirtualLab) -> None:
    sample = TemSample("VD-HEALTHY-01", "VL-UC-01", 2e4)
    assert tem_truth(lab, "NATEM", sample, 42, 3) == tem_truth(lab, "NATEM", sample, 42, 3)
    others = {tem_truth(lab, "NATEM", sample, s, c).ct_s for s, c in ((42, 1), (43, 3), (0, 0))}
    assert len(others) == 3


def test_lysis_factor_is_1_minus_ml60_one_hour_after_ct(lab: VirtualLab) -> None:
    truth = tem_truth(lab, "EXTEM", TemSample("VD-HEALTHY-01"), 0, 1)
    assert float(truth.lysis_factor(truth.lysis_onset_s)) == 1.0
    assert float(truth.lysis_factor(truth.ct_s + 3600)) == pytest.approx(1.0 - truth.ml60_fraction)
    assert float(truth.lysis_factor(1e9)) > 1.0 - 2.0 * truth.ml60_fraction - 1e-12


def test_ground_truth_parameters_follow_the_analysis_definitions(lab: VirtualLab) -> None:
    truth = tem_truth(lab, "EXTEM", TemSample("VD-HEALTHY-01", "VL-PL-01", 1e5), 1, 2)
    p = ground_truth_parameters(truth, 3600.0)
    assert p["CT_s"] == pytest.approx(truth.ct_s)
    assert p["CFT_s"] == pytest.approx(truth.cft_s)
    assert p["alpha_deg"] == pytest.approx(truth.alpha_deg)
    assert p["MCF_mm"] is not None and p["MCF_mm"] < truth.mcf_mm
    assert p["MCF_mm"] == pytest.approx(truth.mcf_mm, rel=0.02)
    assert p["A10_mm"] == pytest.approx(float(truth.amplitude_mm(truth.ct_s + 600)))
    assert p["A5_mm"] is not None and p["A10_mm"] is not None and p["A20_mm"] is not None
    assert p["A5_mm"] < p["A10_mm"] < p["A20_mm"] <= p["MCF_mm"]
    assert p["LI30_pct"] is not None and 95.0 < p["LI30_pct"] <= 100.0
    assert p["ML_pct"] is not None and 0.0 < p["ML_pct"] < 15.0

    short = ground_truth_parameters(truth, truth.ct_s + 400.0)
    assert short["A5_mm"] is not None and short["A10_mm"] is None and short["LI30_pct"] is None
    assert ground_truth_parameters(truth, truth.ct_s / 2)["CT_s"] is None


def test_dose_must_be_finite_and_not_negative() -> None:
    with pytest.raises(ValueError, match="dose_cells_per_ml"):
        TemSample("VD-HEALTHY-01", "VL-UC-01", -1.0)
    with pytest.raises(ValueError, match="dose_cells_per_ml"):
        TemSample("VD-HEALTHY-01", "VL-UC-01", math.nan)


def test_the_documentation_covers_every_id_and_reference(lab: VirtualLab) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "virtual-lab.md").read_text(encoding="utf-8")
    assert "SIMULATED" in doc
    for name in [*lab.assays, *lab.donors, *lab.lots, *lab.references, *lab.coagulability]:
        assert name in doc, f"docs/virtual-lab.md does not mention {name}"
