"""Fixtures: the example lot report, simulated and measured, rendered once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from instrument.report_model import LotReport
from tests.reports.sample import lot_report, standard_curve_png, without_simulated_marks


@pytest.fixture(scope="module")
def figure_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standard_curve_png(tmp_path_factory.mktemp("figure") / "standard-curve.png")


@pytest.fixture(scope="module")
def report(figure_png: Path) -> LotReport:
    return lot_report(figure_png, simulated=True)


@pytest.fixture(scope="module")
def measured_report(report: LotReport) -> LotReport:
    return without_simulated_marks(report)
