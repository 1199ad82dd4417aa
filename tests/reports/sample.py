"""A hand-built LotReport: synthetic traces from simple formulas, three doses, loops, ELISA."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from instrument.report_model import LotReport, RunSection, Trace

LOT_ID = "VL-UC-07"
DOSES = (1e4, 3e4, 1e5)
TEM_SHA = "a3f1" * 16
LOOP_SHA = "b7c2" * 16
ELISA_SHA = "c9d4" * 16
METHOD_SHA = "3b96cca020a078cc0109d02dfeb16e883721d5b9f9bb8f060aa99132b6d1c6c1"
TAT_TIMES_S = (0.0, 900.0, 1800.0, 3600.0)
#: channel → (label, CT s, CFT s, MCF mm)
TEM_CHANNELS = {
    1: ("vehicle", 600.0, 200.0, 56.0),
    2: ("1e4 cells/mL", 540.0, 180.0, 56.5),
    3: ("3e4 cells/mL", 510.0, 170.0, 58.0),
    4: ("1e5 cells/mL", 396.0, 130.0, 61.0),
}
#: loop → (label, clot time s or None, TAT at each of TAT_TIMES_S)
LOOPS: dict[int, tuple[str, float | None, tuple[float | None, ...]]] = {
    1: ("vehicle", None, (2.0, 3.0, 4.0, 7.0)),
    2: ("1e4 cells/mL", None, (2.0, 4.5, 6.0, 13.0)),
    3: ("3e4 cells/mL", None, (2.0, 6.0, 11.0, 25.0)),
    4: ("1e5 cells/mL", 2400.0, (2.0, 14.0, 32.0, None)),
}


def tem_amplitude(t_s: float, ct_s: float, cft_s: float, mcf_mm: float) -> float:
    """A(t) = MCF·[1 − exp(−k(t − t0))]², with k chosen so that A(CT + CFT) ≈ 20 mm."""
    n = 2.0
    t0 = ct_s - cft_s * 0.35
    if t_s <= t0:
        return 0.0
    k = -math.log(1 - (20.0 / mcf_mm) ** (1 / n)) / (ct_s + cft_s - t0)
    return mcf_mm * (1 - math.exp(-k * (t_s - t0))) ** n


def loop_motion(t_s: float, clot_s: float | None) -> float:
    """1000 ‰ while the blood moves, a logistic fall to ≈ 0 around the clotting time."""
    if clot_s is None:
        return 1000.0 - 40.0 * math.sin(t_s / 300.0) ** 2
    return 1000.0 / (1 + math.exp((t_s - (clot_s - 120.0)) / 40.0))


def tem_run(*, simulated: bool) -> RunSection:
    times = tuple(float(t) for t in range(0, 3601, 10))
    traces = []
    parameters = []
    for channel, (label, ct, cft, mcf) in TEM_CHANNELS.items():
        values = tuple(round(tem_amplitude(t, ct, cft, mcf), 2) for t in times)
        traces.append(Trace(channel, label, times, values, "mm", marker_s=ct))
        parameters.append(
            {
                "channel": channel,
                "label": label,
                "parameters": {
                    "CT_s": ct,
                    "CFT_s": cft,
                    "alpha_deg": 68.5,
                    "MCF_mm": mcf,
                    "A5_mm": round(mcf * 0.55, 2),
                    "A10_mm": round(mcf * 0.8, 2),
                    "A20_mm": round(mcf * 0.95, 2),
                    "LI30_pct": None,
                    "ML_pct": 2.1,
                },
                "notes": {"LI30_pct": "the run ended before CT + 30 min"},
            }
        )
    return RunSection(
        run_id=11,
        assay="thromboelastometry",
        title="TEM dose series, NATEM",
        protocol_id="natem-msc-dose-series",
        protocol_version=3,
        protocol_sha256=TEM_SHA,
        operator="A. Technician",
        started_at="2025-03-04T09:12:00+00:00",
        status="completed",
        simulated=simulated,
        instruments=(
            {
                "role": "tem",
                "manufacturer": "Virtual Lab",
                "model": "TEM-4",
                "serial": "TEM4-000123",
                "firmware": "2.1.0",
                "resource": "socket://127.0.0.1:40111",
                "simulated": simulated,
            },
        ),
        donor_id="VD-HEALTHY-01",
        parameters=tuple(parameters),
        traces=tuple(traces),
    )


def loop_run(*, simulated: bool) -> RunSection:
    times = tuple(float(t) for t in range(0, 3601, 15))
    traces = []
    parameters = []
    for loop, (label, clot, _tat) in LOOPS.items():
        values = tuple(round(loop_motion(t, clot), 1) for t in times)
        traces.append(Trace(loop, label, times, values, "‰", marker_s=clot))
        parameters.append(
            {
                "channel": loop,
                "label": label,
                "parameters": {
                    "clotted": clot is not None,
                    "clot_time_s": clot,
                    "PLT_baseline_e9_per_l": 250.0,
                    "PLT_end_e9_per_l": 120.0 if clot else 225.0,
                    "PLT_consumption_pct": 52.0 if clot else 10.0,
                },
                "notes": {} if clot else {"clot_time_s": "no clot within 60 min"},
            }
        )
    courses = {
        loop: dict(zip(TAT_TIMES_S, tat, strict=True)) for loop, (_l, _c, tat) in LOOPS.items()
    }
    return RunSection(
        run_id=12,
        assay="chandler-loop",
        title="Chandler loops, 60 min, heparin 1 IU/mL",
        protocol_id="chandler-loop-60min",
        protocol_version=2,
        protocol_sha256=LOOP_SHA,
        operator="A. Technician",
        started_at="2025-03-04T10:30:00+00:00",
        status="completed",
        simulated=simulated,
        instruments=(
            {
                "role": "loop",
                "manufacturer": "Virtual Lab",
                "model": "LOOP-8",
                "serial": "L8-0042",
                "firmware": "1.4",
                "resource": "/dev/pts/7",
                "simulated": simulated,
            },
            {
                "role": "bath",
                "manufacturer": "JULABO",
                "model": "CORIO CD",
                "serial": "10234567",
                "firmware": "V1.3",
                "resource": "/dev/pts/8",
                "simulated": simulated,
            },
        ),
        donor_id="VD-HEALTHY-01",
        parameters=tuple(parameters),
        traces=tuple(traces),
        tat_courses=courses,
        qc_flags=("loop 4: no TAT at 60 min (clotted before the draw)",),
    )


def standard_curve_png(path: Path) -> Path:
    """A small 4PL standard curve, drawn like the ELISA figure."""
    a, b, c, d = 0.05, 1.2, 25.0, 2.6
    conc = [2 * 1.12**i for i in range(31)]
    od = [d + (a - d) / (1 + (x / c) ** b) for x in conc]
    fig = Figure(figsize=(5.0, 3.4), dpi=110, layout="constrained")
    ax = fig.subplots()
    ax.plot(conc, od, color="#1f4e79")
    ax.scatter([2, 6, 20, 60], [d + (a - d) / (1 + (x / c) ** b) for x in (2, 6, 20, 60)])
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("TAT (µg/L)")
    ax.set_ylabel("net OD")
    ax.set_title("TAT standard curve — QC passed")
    fig.savefig(path)
    return path


def elisa_run(figure: Path, *, simulated: bool) -> RunSection:
    return RunSection(
        run_id=13,
        assay="elisa",
        title="TAT ELISA, plate P-0007",
        protocol_id="tat-elisa",
        protocol_version=1,
        protocol_sha256=ELISA_SHA,
        operator="B. Analyst",
        started_at="2025-03-05T08:00:00+00:00",
        status="completed",
        simulated=simulated,
        instruments=(
            {
                "role": "reader",
                "manufacturer": "Virtual Lab",
                "model": "ABS-96",
                "serial": "ABS-7781",
                "firmware": "3.0.2",
                "resource": "TCPIP::127.0.0.1::5025::SOCKET",
                "simulated": simulated,
            },
        ),
        donor_id=None,
        parameters=(
            {
                "channel": 0,
                "label": "4PL fit",
                "parameters": {"r_squared": 0.998, "LLOQ_ug_per_l": 2.0},
            },
        ),
        figure_png=str(figure),
        qc_flags=("standard 60 µg/L back-calculated at 123 % (limit ±25 %)",),
    )


def _check(key: str, value: Any, limit: Any, passed: bool | None, text: str) -> dict[str, Any]:
    return {
        "key": key,
        "value": value,
        "limit": limit,
        "passed": passed,
        "text": text,
        "donor_id": "VD-HEALTHY-01",
    }


def assessment() -> dict[str, Any]:
    """Shaped like LotAssessment.to_dict(): three doses, the highest one unsafe."""
    per_dose = [
        (1e4, "safe", 10.0, False, 1.86, 6.0, 2.0),
        (3e4, "safe", 15.0, False, 3.57, 18.0, 12.0),
        (1e5, "unsafe", 34.0, True, 8.57, 53.0, 41.0),
    ]
    doses = []
    for dose, status, dct, clotted, fold, dtat, plt in per_dose:
        ok = status == "safe"
        doses.append(
            {
                "dose_cells_per_ml": dose,
                "dose_cells_per_kg": dose * 70,
                "status": status,
                "checks": [
                    _check("delta_ct_pct_max", dct, 20.0, dct <= 20, f"ΔCT {dct} % vs 20 %"),
                    _check("loop_clotting_allowed", clotted, False, not clotted, "loop clotting"),
                    _check("tat_fold_max", fold, 5.0, fold <= 5, f"TAT fold {fold} vs 5"),
                    _check("delta_tat_ug_per_l_max", dtat, 50.0, ok, f"ΔTAT {dtat} µg/L"),
                    _check("platelet_consumption_pct_max", plt, 30.0, ok, f"PLT {plt} points"),
                ],
            }
        )
    return {
        "lot": {"lot_id": LOT_ID, "tissue_source": "UC", "cd142_pct": 42.0},
        "method_id": "msc-iv-hemocompatibility",
        "method_version": 1,
        "method_sha256": METHOD_SHA,
        "blood_volume_ml_per_kg": 70.0,
        "intended_dose_cells_per_kg": 2.0e6,
        "doses": doses,
        "tem": [
            {
                "donor_id": "VD-HEALTHY-01",
                "dose_cells_per_ml": dose,
                "ct_s": {"mean": ct, "sd": None, "n": 1},
                "vehicle_ct_s": {"mean": 600.0, "sd": None, "n": 1},
                "delta_ct_pct": dct,
                "notes": {},
            }
            for dose, ct, dct in ((1e4, 540.0, 10.0), (3e4, 510.0, 15.0), (1e5, 396.0, 34.0))
        ],
        "delta_ct_fit": {
            "quantity": "delta_ct_pct",
            "intercept": -89.03,
            "slope_per_decade": 24.2,
            "r_squared": 0.914,
            "doses_cells_per_ml": list(DOSES),
            "values": [10.0, 15.0, 34.0],
            "note": "",
        },
        "highest_safe_dose_cells_per_ml": 3e4,
        "highest_safe_dose_cells_per_kg": 2.1e6,
        "safe_dose_ratio": 1.05,
        "release": {
            "passed": True,
            "checks": [
                {
                    "key": "cd142_pct_max",
                    "value": 42.0,
                    "limit": 60.0,
                    "passed": True,
                    "text": "CD142+ 42 % ≤ 60 %",
                    "donor_id": None,
                }
            ],
            "note": "",
        },
        "decision": {
            "class_id": "iv-acceptable",
            "name": "IV acceptable",
            "route": "intravenous",
            "wording": "Every tested dose up to the intended exposure stayed under each threshold.",
            "rule_index": 0,
            "dose_cap_cells_per_kg": None,
            "dose_cap_cells_per_ml": None,
            "rules": [
                {
                    "class_id": "iv-acceptable",
                    "holds": True,
                    "conditions": [
                        {
                            "key": "safe_dose_ratio_min",
                            "value": 1.05,
                            "limit": 1.0,
                            "passed": True,
                            "text": "safe-dose ratio 1.05 ≥ 1",
                        },
                        {
                            "key": "release_passed",
                            "value": True,
                            "limit": True,
                            "passed": True,
                            "text": "release passed",
                        },
                    ],
                }
            ],
        },
        "explanation": (
            "Class iv-acceptable (IV acceptable) because its rule holds: safe-dose ratio "
            "1.05 ≥ 1; release passed. Highest safe dose 3.0e4 cells/mL = 2.1e6 cells/kg."
        ),
        "notes": {"tat_fold_at_intended_dose": "no loop data at the intended dose"},
    }


def lot_report(figure: Path, *, simulated: bool = True) -> LotReport:
    """The full example report; with ``simulated=False`` nothing in it is marked simulated."""
    return LotReport(
        lot={
            "lot_id": LOT_ID,
            "tissue_source": "UC",
            "passage": 4,
            "cd142_pct": 42.0,
            "cd142_mfi": 1.8,
            "viability_pct": 91.5,
            "manufactured": "2025-02-20",
        },
        donors=(
            {"donor_id": "VD-HEALTHY-01", "sex": "F", "age": 34, "state": "healthy"},
            {"donor_id": "VD-HYPER-02", "sex": "M", "age": 58, "state": "hypercoagulable"},
        ),
        runs=(
            tem_run(simulated=simulated),
            loop_run(simulated=simulated),
            elisa_run(figure, simulated=simulated),
        ),
        assessment=assessment(),
        method={
            "id": "msc-iv-hemocompatibility",
            "version": 1,
            "title": "MSC hemocompatibility for intravenous use (research construct)",
            "sha256": METHOD_SHA,
        },
        software_version="0.1.0",
        generated_at="2025-03-06T12:00:00+00:00",
        simulated=simulated,
    )


def without_simulated_marks(report: LotReport) -> LotReport:
    """The report with every simulated flag cleared, as if measured."""
    runs = tuple(
        dataclasses.replace(
            run,
            simulated=False,
            instruments=tuple({**i, "simulated": False} for i in run.instruments),
        )
        for run in report.runs
    )
    return dataclasses.replace(report, runs=runs, simulated=False)
