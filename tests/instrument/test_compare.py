"""Lot comparison: ±3 SD trend flags per product, by tissue source, and the plot."""

from __future__ import annotations

import json
from pathlib import Path

from instrument.compare import compare_lots, comparison_png
from instrument.lots import add_lot, assessments
from instrument.storage import Store, utcnow


def _assessed_lot(store: Store, lot_id: str, cd142: float, delta_ct: float, product: str) -> None:
    add_lot(
        store,
        {
            "lot_id": lot_id,
            "tissue_source": "umbilical-cord",
            "cd142_pct": cd142,
            "product": product,
        },
    )
    body = {
        "delta_ct_pct_at_intended_dose": delta_ct,
        "tem": [{"dose_cells_per_ml": d, "delta_ct_pct": delta_ct * d / 3e4} for d in (1e4, 3e4)],
    }
    with store.engine.begin() as conn:
        conn.execute(
            assessments.insert().values(
                lot_id=lot_id,
                method_id="m",
                method_version=1,
                method_sha256="0" * 64,
                method_text="",
                run_ids="[]",
                class_id="iv-capped",
                assessment=json.dumps(body),
                simulated=False,
                software_version="t",
                created_at=utcnow(),
            )
        )


def test_a_lot_outside_its_products_trend_is_flagged(tmp_path: Path) -> None:
    store = Store(tmp_path / "lots.db")
    for i, (cd142, dct) in enumerate([(30, 15), (32, 16), (29, 14), (31, 15), (30, 15.5)]):
        _assessed_lot(store, f"UC-{i}", cd142, dct, "ProductA")
    _assessed_lot(store, "UC-X", 75, 40, "ProductA")  # a drifted lot
    _assessed_lot(store, "OTHER-1", 90, 60, "ProductB")
    comparison = compare_lots(store)
    flagged = {(f.lot_id, f.metric) for f in comparison.flags}
    assert ("UC-X", "cd142_pct") in flagged
    assert ("UC-X", "delta_ct_pct_at_intended_dose") in flagged
    assert not any(lot.startswith("UC-") and lot != "UC-X" for lot, _ in flagged)
    assert any("ProductB" in n for n in comparison.notes)  # too few lots for limits
    assert "above the product's mean ± 3 SD" in comparison.flags[0].text
    only_b = compare_lots(store, "ProductB")
    assert [r.lot_id for r in only_b.rows] == ["OTHER-1"]
    png = comparison_png(store, comparison, tmp_path / "cmp.png")
    assert png.stat().st_size > 5000


def test_trend_limits_are_the_other_lots_mean_and_sd(tmp_path: Path) -> None:
    from instrument.compare import MIN_REFERENCE_LOTS, trend_limits

    store = Store(tmp_path / "lots.db")
    for i, cd142 in enumerate([30, 32, 29, 75]):
        _assessed_lot(store, f"UC-{i}", cd142, 15, "ProductA")
    rows = compare_lots(store).rows
    limits = trend_limits(rows, "cd142_pct")
    assert MIN_REFERENCE_LOTS == 3
    mean, sd = limits["UC-3"]
    assert mean == 30.333333333333332 and abs(sd - 1.5275252316519465) < 1e-12
    assert set(limits) == {"UC-0", "UC-1", "UC-2", "UC-3"}
    assert trend_limits(rows[:3], "cd142_pct") == {}  # 2 other lots each: too few
