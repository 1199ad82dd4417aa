"""Short protocols for the robustness tests (fast at high simulation speed)."""

from __future__ import annotations

from pathlib import Path

TEM_TEXT = """\
format: 1
id: robustness-tem
version: 1
title: "Robustness: four TEM-4 channels"
assay: thromboelastometry
reagent: NATEM
style: rotem
instruments:
  tem: TEM-4
temperature_c: 37.0
temperature_tolerance_c: 0.5
equilibration_s: 0
duration_min: {duration_min}
sample_rate_hz: {rate_hz}
samples:
  lot: VL-UC-01
  donor: VD-HEALTHY-01
channels:
  - channel: 1
    contents: vehicle
  - channel: 2
    contents: lot
    dose_cells_per_ml: 1.0e4
  - channel: 3
    contents: lot
    dose_cells_per_ml: 3.0e4
  - channel: 4
    contents: lot
    dose_cells_per_ml: 1.0e5
analysis:
  amplitude_times_min: [1]
  lysis_index_time_min: 1
"""

LOOP_TEXT = """\
format: 1
id: robustness-loop
version: 1
title: "Robustness: eight LOOP-8 loops"
assay: chandler-loop
instruments:
  bath: JULABO
  loop: LOOP-8
bath:
  setpoint_c: 37.0
  tolerance_c: 0.5
  equilibration_s: 0
loops:
  volume_ml: 7.0
  tubing: "PVC, heparin-coated, ID 4 mm, 40 cm"
  rpm: 30
  heparin_iu_per_ml: 1.0
duration_min: {duration_min}
sample_rate_hz: {rate_hz}
samples:
  lot: VL-AT-01
  donor: VD-HEALTHY-01
channels:
  - {{loop: 1, contents: vehicle}}
  - {{loop: 2, contents: lot, dose_cells_per_ml: 1.0e4}}
  - {{loop: 3, contents: lot, dose_cells_per_ml: 3.0e4}}
  - {{loop: 4, contents: lot, dose_cells_per_ml: 1.0e5}}
  - {{loop: 5, contents: vehicle}}
  - {{loop: 6, contents: lot, dose_cells_per_ml: 1.0e4}}
  - {{loop: 7, contents: lot, dose_cells_per_ml: 3.0e4}}
  - {{loop: 8, contents: lot, dose_cells_per_ml: 1.0e5}}
sampling:
  times_min: [0, 5]
  tube: EDTA
  volume_ml: 1.0
  overdue_after_s: 120
  loops: all
clot_detection:
  threshold_permille: 300
  hold_s: 30
"""


def write_tem(directory: Path, duration_min: float = 2, rate_hz: int = 100) -> Path:
    path = directory / "robustness-tem.yaml"
    path.write_text(TEM_TEXT.format(duration_min=duration_min, rate_hz=rate_hz))
    return path


def write_loop(directory: Path, duration_min: float = 10, rate_hz: int = 10) -> Path:
    path = directory / "robustness-loop.yaml"
    path.write_text(LOOP_TEXT.format(duration_min=duration_min, rate_hz=rate_hz))
    return path
