"""The worked example of docs/indices.md as inputs, and builders for synthetic lots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from instrument.analysis.indices import LoopChannelData, LotInfo, TemChannelData
from protocols import MethodFile, bundled_methods, parse_method

DONOR = "VD-HEALTHY-01"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "indices.md"
TAT_TIMES_S = (0.0, 1800.0, 3600.0)
PLATELET_TIMES_S = (0.0, 3600.0)


def bundled_method_path() -> Path:
    (path,) = [p for p in bundled_methods() if p.name == "msc-iv-hemocompatibility-method.yaml"]
    return path


def bundled_method_text() -> str:
    return bundled_method_path().read_text(encoding="utf-8")


def method_with(old: str, new: str) -> MethodFile:
    """The bundled method with one piece of its text replaced (the text must occur once)."""
    text = bundled_method_text()
    assert text.count(old) == 1, old
    return parse_method(text.replace(old, new), "changed.yaml")


def loop(
    dose: float,
    tat: Sequence[float | None],
    platelets: Sequence[float | None],
    *,
    vehicle: bool = False,
    clotted: bool | None = False,
    clot_time_s: float | None = None,
    donor: str = DONOR,
) -> LoopChannelData:
    return LoopChannelData(
        dose_cells_per_ml=dose,
        donor_id=donor,
        is_vehicle=vehicle,
        clotted=clotted,
        clot_time_s=clot_time_s,
        tat_by_time_s=dict(zip(TAT_TIMES_S, tat, strict=True)),
        platelets_by_time_s=dict(zip(PLATELET_TIMES_S, platelets, strict=True)),
    )


def tem(
    dose: float,
    ct_s: float | None,
    cft_s: float | None = None,
    mcf_mm: float | None = None,
    *,
    vehicle: bool = False,
    donor: str = DONOR,
) -> TemChannelData:
    return TemChannelData(dose, donor, ct_s, cft_s, mcf_mm, vehicle)


EXAMPLE_LOT = LotInfo("VL-UC-01", tissue_source="UC", cd142_pct=50, cd142_mfi=2.0, viability_pct=90)

EXAMPLE_TEM = (
    tem(0, 590, 190, 55, vehicle=True),
    tem(0, 610, 210, 57, vehicle=True),
    tem(1e4, 540, 180, 56),
    tem(3e4, 510, 170, 58),
    tem(1e5, 396, 130, 61),
)

EXAMPLE_LOOPS = (
    loop(0, (2, 4, 6), (250, 230), vehicle=True),
    loop(0, (2, 4, 8), (240, 216), vehicle=True),
    loop(1e4, (2, 6, 12), (250, 225)),
    loop(1e4, (2, 6, 14), (240, 211.2)),
    loop(3e4, (2, 10, 24), (250, 200)),
    loop(3e4, (2, 12, 26), (240, 187.2)),
    loop(1e5, (2, 30, 60), (250, 125)),
    loop(1e5, (2, 34, None), (240, None), clotted=True, clot_time_s=2400),
)


def synthetic_lot(
    lot_id: str,
    ct_shortening_pct: Sequence[float],
    tat_60_min: Sequence[float],
    *,
    cd142_pct: float,
    doses: Sequence[float] = (1e4, 3e4, 1e5),
    clotted: Sequence[bool] = (False, False, False),
) -> tuple[LotInfo, list[TemChannelData], list[LoopChannelData]]:
    """A lot with one TEM run and one loop per dose against a vehicle CT of 600 s, TAT 5 µg/L."""
    runs = [tem(0, 600, 200, 56, vehicle=True)]
    loops = [loop(0, (2, 3, 5), (250, 230), vehicle=True)]
    for dose, shortening, tat_60, did_clot in zip(
        doses, ct_shortening_pct, tat_60_min, clotted, strict=True
    ):
        runs.append(tem(dose, 600 * (1 - shortening / 100), 200, 56))
        loops.append(loop(dose, (2, (2 + tat_60) / 2, tat_60), (250, 225), clotted=did_clot))
    return LotInfo(lot_id, cd142_pct=cd142_pct, viability_pct=90), runs, loops
