"""The virtual lab's whole-blood loop model: clotting, TAT and platelets (no I/O)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from simulators.physiology import (
    CLOT_MOTION_PERMILLE,
    LoopSample,
    VirtualLab,
    VirtualLabError,
    loop_truth,
)

DATA_FILE = Path(__file__).parents[2] / "simulators" / "data" / "virtual_lab.yaml"
HEALTHY = ("VD-HEALTHY-01", "VD-HEALTHY-02")
RUNS = [(seed, loop) for seed in range(12) for loop in range(1, 9)]
HOUR = 3600.0


def test_vehicle_loops_never_clot_at_1_iu_ml_heparin_in_healthy_blood(lab: VirtualLab) -> None:
    t = np.arange(0.0, HOUR + 1, 10.0)
    for donor, (seed, loop) in itertools.product(HEALTHY, RUNS):
        truth = loop_truth(lab, LoopSample(donor, None, 0.0, 1.0), seed, loop)
        assert truth.clot_time_s is None
        assert truth.crossing_time_s(CLOT_MOTION_PERMILLE) is None
        assert float(np.min(truth.motion_permille(t))) > 990.0
    assert loop_truth(lab, LoopSample("VD-HEALTHY-01", "VL-AT-01", 0.0), 0, 1).clot_time_s is None


def test_high_tf_lot_at_the_top_dose_clots_within_an_hour(lab: VirtualLab) -> None:
    for donor, (seed, loop) in itertools.product(HEALTHY, RUNS):
        truth = loop_truth(lab, LoopSample(donor, "VL-AT-01", 1e5, 1.0), seed, loop)
        assert truth.clot_time_s is not None and truth.clot_time_s < HOUR, (donor, seed, loop)


def test_bone_marrow_lot_rarely_clots(lab: VirtualLab) -> None:
    clotted = sum(
        loop_truth(lab, LoopSample(donor, "VL-BM-01", 1e5, 1.0), seed, loop).clot_time_s is not None
        for donor, (seed, loop) in itertools.product(HEALTHY, RUNS)
    )
    assert clotted == 0
    hyper = [
        loop_truth(lab, LoopSample("VD-HYPER-01", "VL-BM-01", 1e5, 1.0), s, n).clot_time_s
        for s, n in RUNS
    ]
    assert sum(t is not None and t < HOUR for t in hyper) < len(hyper) / 4


def _clot_rank(time_s: float | None) -> float:
    return math.inf if time_s is None else time_s


@pytest.mark.parametrize(("heparin", "dose"), [(1.0, 1e5), (1.0, 3e5), (0.0, 1e4), (0.5, 5e4)])
def test_clot_propensity_follows_tissue_factor_bm_uc_at(
    lab: VirtualLab, heparin: float, dose: float
) -> None:
    for seed, loop in RUNS[:16]:
        truths = [
            loop_truth(lab, LoopSample("VD-HEALTHY-01", lot, dose, heparin), seed, loop)
            for lot in ("VL-BM-01", "VL-UC-01", "VL-AT-01")
        ]
        ratios = [t.load_ratio for t in truths]
        assert ratios == sorted(ratios) and len(set(ratios)) == 3
        times = [_clot_rank(t.clot_time_s) for t in truths]
        assert times[0] >= times[1] > times[2], times


def test_at_1_iu_ml_the_lots_separate(lab: VirtualLab) -> None:
    truths = [
        loop_truth(lab, LoopSample("VD-HEALTHY-01", lot, 1e5), 0, 1)
        for lot in ("VL-BM-01", "VL-UC-01", "VL-AT-01")
    ]
    bm, uc, at = (t.clot_time_s for t in truths)
    assert bm is None and at is not None and (uc is None or uc > at)
    tats = [float(t.tat_ug_per_l(3600.0)) for t in truths]
    assert tats[0] < tats[1] < tats[2], tats


def test_heparin_delays_then_prevents_clotting(lab: VirtualLab) -> None:
    heparins = [0.0, 0.5, 1.0, 2.0, 4.0, 16.0]
    times = [
        loop_truth(lab, LoopSample("VD-HEALTHY-01", "VL-AT-01", 1e5, h), 3, 5).clot_time_s
        for h in heparins
    ]
    finite = [t for t in times if t is not None]
    assert len(finite) >= 3 and finite == sorted(finite)
    assert times[-1] is None
    thresholds = [
        loop_truth(lab, LoopSample("VD-HEALTHY-01", None, 0.0, h), 3, 5).threshold_load_tfu_per_ml
        for h in heparins
    ]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)


def test_unheparinised_blood_clots_by_contact_activation(lab: VirtualLab) -> None:
    for seed, loop in RUNS[:16]:
        truth = loop_truth(lab, LoopSample("VD-HEALTHY-01", heparin_iu_per_ml=0.0), seed, loop)
        assert truth.clot_time_s is not None and 10 * 60 < truth.clot_time_s < 45 * 60
    small = loop_truth(lab, LoopSample("VD-HEALTHY-01", None, 0.0, 0.0, 2.0), 0, 1)
    large = loop_truth(lab, LoopSample("VD-HEALTHY-01", None, 0.0, 0.0, 8.0), 0, 1)
    assert small.contact_load_tfu_per_ml > large.contact_load_tfu_per_ml
    assert small.clot_time_s is not None and large.clot_time_s is not None
    assert small.clot_time_s < large.clot_time_s


def test_clot_time_shortens_with_dose(lab: VirtualLab) -> None:
    doses = [3e4, 5e4, 1e5, 3e5, 1e6]
    times = [
        loop_truth(lab, LoopSample("VD-HEALTHY-02", "VL-PL-01", d), 4, 2).clot_time_s for d in doses
    ]
    assert all(t is not None for t in times)
    assert all(a > b for a, b in itertools.pairwise(times)), times  # type: ignore[operator]


def test_hypercoagulable_blood_clots_sooner_and_at_lower_loads(lab: VirtualLab) -> None:
    sample = LoopSample("VD-HEALTHY-01", "VL-UC-01", 3e5)
    hyper = loop_truth(lab, LoopSample("VD-HYPER-01", "VL-UC-01", 3e5), 0, 1)
    healthy = loop_truth(lab, sample, 0, 1)
    assert hyper.threshold_load_tfu_per_ml < healthy.threshold_load_tfu_per_ml
    assert hyper.clot_time_s is not None and healthy.clot_time_s is not None
    assert hyper.clot_time_s < healthy.clot_time_s


def test_clot_time_is_the_noise_free_crossing_of_300_permille(lab: VirtualLab) -> None:
    checked = 0
    for lot, dose, heparin in [("VL-AT-01", 1e5, 1.0), ("VL-UC-01", 3e5, 1.0), (None, 0, 0.0)]:
        for seed, loop in RUNS[:10]:
            truth = loop_truth(lab, LoopSample("VD-HEALTHY-02", lot, dose, heparin), seed, loop)
            clot = truth.clot_time_s
            assert clot is not None
            assert float(truth.motion_permille(clot)) == pytest.approx(300.0, abs=1e-6)
            assert truth.crossing_time_s(CLOT_MOTION_PERMILLE) == pytest.approx(clot, abs=1e-6)
            checked += 1
    assert checked == 30


def test_motion_is_about_1000_then_falls_to_near_0_within_a_few_minutes(lab: VirtualLab) -> None:
    truth = loop_truth(lab, LoopSample("VD-HEALTHY-01", "VL-AT-01", 1e5), 1, 7)
    clot = truth.clot_time_s
    assert clot is not None
    t = np.arange(0.0, 2 * HOUR, 0.5)
    motion = truth.motion_permille(t)
    assert np.all(np.diff(motion) <= 1e-9)  # never rises: one crossing per level
    assert float(motion[0]) > 999.0
    assert float(truth.motion_permille(clot - 300)) > 970.0  # only a small drift before
    assert float(truth.motion_permille(clot + 180)) < 30.0
    assert float(truth.motion_permille(2 * HOUR)) == pytest.approx(truth.floor_permille, abs=1)
    t90, t10 = truth.crossing_time_s(900.0), truth.crossing_time_s(100.0)
    assert t90 is not None and t10 is not None
    assert 60.0 <= t10 - t90 <= 180.0
    assert t90 < clot < t10
    assert truth.crossing_time_s(5.0) is None  # below the floor
    assert truth.crossing_time_s(1001.0) == 0.0


def test_tat_rises_with_tf_load_and_bursts_around_clotting(lab: VirtualLab) -> None:
    donor = lab.donor("VD-HEALTHY-01")
    vehicle, uc, at = (
        loop_truth(lab, LoopSample(donor.id, lot, 2e4), 2, 3)
        for lot in (None, "VL-UC-01", "VL-AT-01")
    )
    assert float(vehicle.tat_ug_per_l(0.0)) == pytest.approx(donor.tat_ug_per_l, abs=0.01)
    at_30_min = [float(x.tat_ug_per_l(1800.0)) for x in (vehicle, uc, at)]
    assert at_30_min == sorted(at_30_min) and at_30_min[0] < 5.0
    assert float(vehicle.tat_ug_per_l(HOUR)) < 10.0

    top = loop_truth(lab, LoopSample(donor.id, "VL-AT-01", 1e5), 2, 3)
    clot = top.clot_time_s
    assert clot is not None
    before, after = float(top.tat_ug_per_l(clot - 300)), float(top.tat_ug_per_l(clot + 120))
    assert before < 50.0 and after > 300.0 and after > 10 * before
    t = np.arange(0.0, 2 * HOUR, 1.0)
    assert np.all(np.diff(top.tat_ug_per_l(t)) >= -1e-9)


def test_platelets_fall_below_20_percent_once_clotted(lab: VirtualLab) -> None:
    for donor_id in ("VD-HEALTHY-01", "VD-HEALTHY-02", "VD-HYPER-01"):
        donor = lab.donor(donor_id)
        assert 150 <= donor.platelets_e9_per_l <= 400
        truth = loop_truth(lab, LoopSample(donor_id, "VL-AT-01", 1e5), 0, 4)
        clot = truth.clot_time_s
        assert clot is not None
        p0 = donor.platelets_e9_per_l
        assert float(truth.platelets_e9_per_l(0.0)) == pytest.approx(p0)
        assert float(truth.platelets_e9_per_l(clot - 600)) > 0.7 * p0
        assert float(truth.platelets_e9_per_l(clot + 180)) < 0.2 * p0
        vehicle = loop_truth(lab, LoopSample(donor_id), 0, 4)
        assert float(vehicle.platelets_e9_per_l(HOUR)) > 0.9 * p0


def test_truth_is_deterministic_and_varies_by_seed_and_loop(lab: VirtualLab) -> None:
    sample = LoopSample("VD-HEALTHY-01", "VL-UC-01", 3e5)
    assert loop_truth(lab, sample, 42, 3) == loop_truth(lab, sample, 42, 3)
    times = {loop_truth(lab, sample, s, n).clot_time_s for s, n in ((42, 1), (43, 3), (42, 3))}
    assert len(times) == 3
    # the within-run draw depends only on (seed, loop): the samples differ by physiology alone
    a = loop_truth(lab, LoopSample("VD-HEALTHY-01"), 9, 2)
    b = loop_truth(lab, LoopSample("VD-HEALTHY-01", "VL-AT-01", 1e5), 9, 2)
    assert a.threshold_load_tfu_per_ml == b.threshold_load_tfu_per_ml
    assert loop_truth(lab, LoopSample("VD-HEALTHY-01", "VL-AT-01", 0.0), 9, 2) == a


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dose_cells_per_ml": -1.0}, "dose_cells_per_ml"),
        ({"heparin_iu_per_ml": math.nan}, "heparin_iu_per_ml"),
        ({"heparin_iu_per_ml": -0.5}, "heparin_iu_per_ml"),
        ({"volume_ml": 0.0}, "volume_ml"),
        ({"volume_ml": 500.0}, "volume_ml"),
    ],
)
def test_loop_sample_rejects_bad_values(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LoopSample("VD-HEALTHY-01", "VL-UC-01", **kwargs)


def test_unknown_ids_are_reported(lab: VirtualLab) -> None:
    with pytest.raises(KeyError, match="VD-NOBODY"):
        loop_truth(lab, LoopSample("VD-NOBODY"), 0, 1)
    with pytest.raises(KeyError, match="VL-AT-01"):
        loop_truth(lab, LoopSample("VD-HEALTHY-01", "VL-XX-01", 1e5), 0, 1)


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = DATA_FILE.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / "lab.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_file_without_the_loop_model_loads_but_cannot_simulate_loops(tmp_path: Path) -> None:
    text = DATA_FILE.read_text(encoding="utf-8")
    path = tmp_path / "lab.yaml"
    path.write_text(text[: text.index("\nloop:\n")] + "\n", encoding="utf-8")
    lab = VirtualLab.load(path)
    with pytest.raises(VirtualLabError, match=r"lab\.yaml: loop: the whole-blood loop model"):
        loop_truth(lab, LoopSample("VD-HEALTHY-01"), 0, 1)


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ("    clot_time_cv: 0.08", "    clot_time_cv: 0.9", "loop.within_run_variation", "<= 0.3"),
        (
            "    hypercoagulable:\n      illustrative",
            "    sick:\n      illustrative",
            "sick",
            "sick",
        ),
        (
            "    motion_noise_sd_permille: 6",
            "    motion_noise_sd_permille: some",
            "instrument.loop8.motion_noise_sd_permille",
            "expected a number",
        ),
        ("    horizon_s: 7200\n", "", "loop.clotting.horizon_s", "missing"),
    ],
)
def test_a_bad_loop_section_names_key_line_and_problem(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    path = _variant(tmp_path, old, new)
    with pytest.raises(VirtualLabError) as info:
        VirtualLab.load(path)
    assert info.value.line is not None and info.value.line > 1
    assert key in str(info.value) and problem in str(info.value)
