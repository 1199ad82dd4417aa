"""The PDF report: pages, header and footer, watermark, content of every section."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from instrument.report_model import LotReport, RunSection
from instrument.reports import write_pdf
from tests.reports.sample import ELISA_SHA, LOOP_SHA, LOT_ID, METHOD_SHA, TEM_SHA

#: summary (2 pages), TEM run, loop run (2 pages: the TAT courses), ELISA run, closing page
EXPECTED_PAGES = 7


@pytest.fixture(scope="module")
def pdf(report: LotReport, tmp_path_factory: pytest.TempPathFactory) -> PdfReader:
    path = write_pdf(report, tmp_path_factory.mktemp("pdf") / "nested" / "report.pdf")
    return PdfReader(path)


@pytest.fixture(scope="module")
def measured_pdf(measured_report: LotReport, tmp_path_factory: pytest.TempPathFactory) -> PdfReader:
    return PdfReader(write_pdf(measured_report, tmp_path_factory.mktemp("pdf") / "measured.pdf"))


@pytest.fixture(scope="module")
def texts(pdf: PdfReader) -> list[str]:
    """The text of each page with every run of white space (line breaks too) as one space."""
    return [" ".join(page.extract_text().split()) for page in pdf.pages]


def _rotated_texts(page: Any) -> list[tuple[str, float]]:
    """Text drawn at an angle on a page, with the angle in degrees."""
    found: list[tuple[str, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], _font: Any, _size: Any) -> None:
        a, b = cm[0] * tm[0] + cm[2] * tm[1], cm[1] * tm[0] + cm[3] * tm[1]
        angle = math.degrees(math.atan2(b, a))
        if text.strip() and abs(angle) > 1:
            found.append((text.strip(), angle))

    page.extract_text(visitor_text=visit)
    return found


def test_the_pdf_has_a_summary_a_page_per_run_and_a_closing_page(texts: list[str]) -> None:
    assert len(texts) == EXPECTED_PAGES
    assert "Hemocompatibility report — lot VL-UC-07" in texts[0]
    assert "Run 11 — TEM dose series, NATEM" in texts[2]
    assert "Run 12 — Chandler loops, 60 min, heparin 1 IU/mL" in texts[3]
    assert "TAT time courses" in texts[4]
    assert "Run 13 — TAT ELISA, plate P-0007" in texts[5]
    assert "Method, software and disclaimer" in texts[-1]


def test_every_page_has_the_lot_in_its_header_and_page_n_of_m(texts: list[str]) -> None:
    for number, text in enumerate(texts, start=1):
        assert f"Lot {LOT_ID}" in text
        assert f"page {number} of {EXPECTED_PAGES}" in text
        assert "hemocompat 0.1.0" in text


def test_every_page_of_a_simulated_report_says_simulated(texts: list[str]) -> None:
    for text in texts:
        assert "SIMULATED DATA" in text  # the header


def test_every_page_of_a_simulated_report_carries_a_diagonal_watermark(pdf: PdfReader) -> None:
    for page in pdf.pages:
        rotated = _rotated_texts(page)
        assert ("SIMULATED", pytest.approx(54.7, abs=0.5)) in [
            (text, angle) for text, angle in rotated
        ]


def test_a_measured_report_never_mentions_simulation(measured_pdf: PdfReader) -> None:
    assert len(measured_pdf.pages) == EXPECTED_PAGES
    for page in measured_pdf.pages:
        assert "simulated" not in page.extract_text().lower()
        assert _rotated_texts(page) == []


def test_one_simulated_instrument_marks_the_whole_report(
    measured_report: LotReport, tmp_path: Path
) -> None:
    tem = measured_report.runs[0]
    instruments = ({**tem.instruments[0], "simulated": True},)
    runs = (dataclasses.replace(tem, instruments=instruments), *measured_report.runs[1:])
    reader = PdfReader(
        write_pdf(dataclasses.replace(measured_report, runs=runs), tmp_path / "r.pdf")
    )
    for page in reader.pages:
        assert "SIMULATED" in page.extract_text()


def test_the_summary_shows_the_class_route_rule_thresholds_and_doses(texts: list[str]) -> None:
    summary = texts[0] + texts[1]
    for expected in (
        "IV acceptable",
        "Suggested route: intravenous",
        "class id: iv-acceptable",
        "safe-dose ratio 1.05 ≥ 1; release passed",  # the rule that decided
        "holds — decided",
        "ΔCT (%)",
        "≤ 20",
        "Loop clotting",
        "not allowed",
        "Per-dose indices",
        "1e4",
        "3e4",
        "1e5",
        "unsafe",
        "Highest safe dose (cells/kg)",
        "2.1e6",
        "VD-HEALTHY-01",
        "VD-HYPER-02",
        "hypercoagulable",
        "Tissue source",
        "Release passed.",
        "Explanation",
        "not a clinical rule",
    ):
        assert expected in summary, expected


def test_run_pages_show_protocol_instruments_and_results(texts: list[str]) -> None:
    tem, loop, elisa = texts[2], texts[3], texts[5]
    assert "natem-msc-dose-series, version 3" in tem
    assert TEM_SHA in tem
    assert "TEM4-000123" in tem
    assert "Virtual Lab TEM-4 SIMULATED" in tem
    assert "A. Technician" in tem
    assert "CT (s)" in tem and "MCF (mm)" in tem
    assert "LI30 (%): the run ended before CT + 30 min" in tem
    assert "Thromboelastometry traces" in tem
    assert LOOP_SHA in loop
    assert "L8-0042" in loop and "10234567" in loop
    assert "Loop motion signals" in loop
    assert "loop 4: no TAT at 60 min" in texts[4]
    assert ELISA_SHA in elisa
    assert "standard-curve.png" in elisa
    assert "back-calculated at 123 %" in elisa


def test_run_pages_carry_the_figures(pdf: PdfReader) -> None:
    images = [len(page.images) for page in pdf.pages]
    assert images[0] == images[1] == images[-1] == 0
    assert images[2] == 1  # TEM traces
    assert images[3] == 1  # loop motion
    assert images[4] == 1  # TAT courses
    assert images[5] == 1  # the ELISA standard curve


def test_the_closing_page_has_method_software_and_disclaimer(texts: list[str]) -> None:
    last = texts[-1]
    assert "msc-iv-hemocompatibility" in last
    assert METHOD_SHA in last
    assert "hemocompat 0.1.0" in last
    assert "2025-03-06T12:00:00+00:00" in last
    assert "documented construct for research use" in last
    for sha in (TEM_SHA, LOOP_SHA, ELISA_SHA):
        assert sha in last.replace(" ", "")


def test_the_document_information_names_the_lot(pdf: PdfReader) -> None:
    assert pdf.metadata is not None
    assert pdf.metadata.title == f"Hemocompatibility report, lot {LOT_ID} (SIMULATED)"


def test_a_report_with_almost_nothing_renders(tmp_path: Path) -> None:
    bare = LotReport(
        lot={},
        donors=(),
        runs=(),
        assessment={},
        method={},
        software_version="0.1.0",
        generated_at="now",
        simulated=False,
    )
    reader = PdfReader(write_pdf(bare, tmp_path / "bare.pdf"))
    text = "".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) == 2
    assert "no class in the assessment" in text
    assert "Lot unknown lot" in text
    assert "no per-dose indices in the assessment" in text


def test_top_level_class_keys_and_odd_runs_render(report: LotReport, tmp_path: Path) -> None:
    odd_run = RunSection(
        run_id=99,
        assay="custom",
        title="A run with gaps",
        protocol_id="p",
        protocol_version=1,
        protocol_sha256="0" * 64,
        operator='=HYPERLINK("x")',
        started_at=None,
        status="aborted",
        simulated=False,
        instruments=({"role": "x"},),
        donor_id=None,
        parameters=({"channel": 1, "label": "<b>not markup</b>", "value": float("nan")},),
        tat_courses={1: {0.0: None, 600.0: 0.0}},
        figure_png="/does/not/exist.png",
    )
    odd = dataclasses.replace(
        report,
        runs=(odd_run,),
        assessment={
            "class": "iv-capped",
            "class_name": "IV with dose cap",
            "route": "intravenous, capped",
            "explanation": "line one\nline two",
            "doses": [{"dose_cells_per_ml": 1e4, "delta_ct_pct": 12.5}, {"status": "?"}],
        },
    )
    reader = PdfReader(write_pdf(odd, tmp_path / "odd.pdf"))
    text = "".join(page.extract_text() for page in reader.pages)
    assert "IV with dose cap" in text
    assert "Suggested route: intravenous, capped" in text
    assert "line one" in text and "line two" in text
    assert "12.5" in text
    assert "<b>not markup</b>" in text
    assert "no TAT value above zero to plot" in text
    assert "could not be read" in text
    assert "aborted" in text


def test_a_real_lot_assessment_renders(report: LotReport, tmp_path: Path) -> None:
    from instrument.analysis.indices import LoopChannelData, LotInfo, TemChannelData, assess_lot
    from protocols import bundled_methods, load_method

    (method_path,) = [p for p in bundled_methods() if p.name.startswith("msc-iv-hemo")]
    times = (0.0, 1800.0, 3600.0)
    tem = [TemChannelData(0, "D1", 600, 200, 56, True)]
    loops = [LoopChannelData(0, "D1", True, False, None, dict(zip(times, (2, 3, 5), strict=True)))]
    for dose, ct, tat in ((1e4, 560, 8.0), (3e4, 520, 20.0), (1e5, 380, 90.0)):
        tem.append(TemChannelData(dose, "D1", ct, 190, 57, False))
        course = dict(zip(times, (2, tat / 2, tat), strict=True))
        loops.append(LoopChannelData(dose, "D1", False, dose > 5e4, None, course))
    assessment = assess_lot(
        load_method(method_path), LotInfo("VL-REAL", cd142_pct=30, viability_pct=90), tem, loops
    ).to_dict()
    real = dataclasses.replace(report, assessment=assessment)
    reader = PdfReader(write_pdf(real, tmp_path / "real.pdf"))
    text = "".join(page.extract_text() for page in reader.pages)
    decision = assessment["decision"]
    assert decision["name"] in text
    assert f"Suggested route: {decision['route']}" in text
    assert "Index details: Loops" in text
    assert "Dose–response fits" in text
