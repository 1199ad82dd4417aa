"""One command per lot: three virtual lots rank and classify as the method file predicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instrument.cli import main
from instrument.panel import assess_and_store
from instrument.storage import Store
from protocols import bundled_methods, load_method, parse_method

pytestmark = pytest.mark.slow

LOTS = ("VL-BM-01", "VL-UC-01", "VL-AT-01")


@pytest.fixture(scope="module")
def panels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("panel")
    db = tmp / "lab.db"
    out: dict[str, dict] = {}
    for lot in LOTS:
        result = tmp / f"{lot}.json"
        args = ["panel", lot, "--simulate", "--speed", "max", "--db", str(db)]
        assert main([*args, "--out", str(tmp / "reports"), "--json", str(result)]) == 0
        out[lot] = json.loads(result.read_text())
    return db, out


def _delta_ct(assessment: dict, dose: float) -> float:
    return next(t["delta_ct_pct"] for t in assessment["tem"] if t["dose_cells_per_ml"] == dose)


def test_lots_rank_by_tissue_factor_and_get_the_predicted_classes(
    panels: tuple[Path, dict[str, dict]],
) -> None:
    _db, out = panels
    a = {lot: out[lot]["assessment"] for lot in LOTS}
    for dose in (1.0e4, 3.0e4, 1.0e5):
        bm, uc, at = (_delta_ct(a[lot], dose) for lot in LOTS)
        assert bm < uc < at, (dose, bm, uc, at)
    classes = [a[lot]["decision"]["class_id"] for lot in LOTS]
    assert classes == ["iv-acceptable", "iv-capped", "iv-not-recommended"]
    assert all(out[lot]["simulated"] for lot in LOTS)
    for lot in LOTS:
        assert any(p.endswith(".pdf") for p in out[lot]["reports"])


def test_tat_ranks_with_tissue_factor(panels: tuple[Path, dict[str, dict]]) -> None:
    _db, out = panels

    def top_dose_tat_fold(lot: str) -> float:
        loops = out[lot]["assessment"]["loops"]
        top = max(loops, key=lambda loop: loop["dose_cells_per_ml"])
        return max(p["fold"] for p in top["tat"] if p["fold"] is not None)

    folds = [top_dose_tat_fold(lot) for lot in LOTS]
    assert folds[0] < folds[1] < folds[2], folds


def test_one_threshold_in_the_method_file_changes_the_class(
    panels: tuple[Path, dict[str, dict]],
) -> None:
    db, _out = panels
    store = Store(db)
    text = bundled_methods()[0].read_text()
    assert "delta_ct_pct_max: 20" in text
    stricter = parse_method(
        text.replace("delta_ct_pct_max: 20", "delta_ct_pct_max: 5"), "strict.yaml"
    )
    _id, body = assess_and_store(store, "VL-UC-01", stricter)
    assert body["decision"]["class_id"] == "iv-not-recommended"
    _id, body = assess_and_store(store, "VL-UC-01", load_method(bundled_methods()[0]))
    assert body["decision"]["class_id"] == "iv-capped"
