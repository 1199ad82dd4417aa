"""Per-lot reports rendered from a :class:`~instrument.report_model.LotReport`: PDF, XLSX, CSV.

Simulated data are marked in every output: a diagonal SIMULATED watermark and a SIMULATED header
on every PDF page, a banner cell in the workbook and a leading ``simulated`` column in every CSV
file. A report counts as simulated when ``LotReport.simulated`` is set or when any run or
instrument in it is marked simulated.

The lot assessment (``LotReport.assessment``) is read generically: the class, route and
explanation are looked up at the top level and in a nested ``decision`` mapping, per-dose rows come
from a list of mappings (``doses``), and missing keys leave gaps, never errors.

Figures are drawn with matplotlib's object API (``Figure`` and the Agg canvas), never through
pyplot, so rendering changes no global backend and is safe next to a running GUI. This module
imports reportlab, openpyxl and matplotlib: import it where a report is written, not at start-up.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard
from xml.sax.saxutils import escape

import matplotlib
import openpyxl  # type: ignore[import-untyped]
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.styles import Alignment, Font, PatternFill  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.lib.utils import ImageReader  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    BaseDocTemplate,
    Flowable,
    Frame,
    Image,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from instrument.report_model import LotReport, RunSection, Trace

__all__ = [
    "TableData",
    "class_summary",
    "donor_table",
    "index_table",
    "is_simulated",
    "lot_table",
    "parameter_table",
    "run_table",
    "signature_table",
    "summary_table",
    "tat_table",
    "write_csv",
    "write_pdf",
    "write_xlsx",
]

SIMULATED = "SIMULATED"
SIMULATED_NOTICE = (
    "SIMULATED: produced with simulated instruments (the virtual lab). "
    "Not a measurement of real blood or of a real cell lot."
)
NOT_AVAILABLE = "—"

# -- tabular content shared by the renderers ----------------------------------------------------


@dataclass(frozen=True)
class TableData:
    """A header and rows of plain values (str, int, float, bool or None)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def is_simulated(report: LotReport) -> bool:
    """Whether the report must be marked simulated: the report, a run or an instrument says so."""
    if report.simulated:
        return True
    for run in report.runs:
        if run.simulated or any(_truthy(i.get("simulated")) for i in run.instruments):
            return True
    return False


def class_summary(assessment: Mapping[str, Any]) -> dict[str, Any]:
    """The class of the lot from an assessment mapping, each value None when absent.

    Keys: ``class_id``, ``class_name``, ``route``, ``wording``, ``explanation``,
    ``dose_cap_cells_per_kg``, ``dose_cap_cells_per_ml``. Top-level keys (``class``,
    ``class_name``, ``route``, ``explanation``) win over those of a nested ``decision``.
    """
    nested: list[Mapping[str, Any]] = []
    for key in ("decision", "class"):
        value = assessment.get(key)
        if isinstance(value, Mapping):
            nested.append(value)

    def pick(top: Sequence[str], inner: Sequence[str]) -> Any:
        for key in top:
            value = assessment.get(key)
            if _present(value) and not isinstance(value, Mapping):
                return value
        for mapping in nested:
            for key in inner:
                value = mapping.get(key)
                if _present(value) and not isinstance(value, Mapping):
                    return value
        return None

    return {
        "class_id": pick(("class", "class_id"), ("class_id", "id", "class")),
        "class_name": pick(("class_name",), ("name", "class_name")),
        "route": pick(("route",), ("route",)),
        "wording": pick(("wording",), ("wording",)),
        "explanation": pick(("explanation",), ("explanation",)),
        "dose_cap_cells_per_kg": pick(("dose_cap_cells_per_kg",), ("dose_cap_cells_per_kg",)),
        "dose_cap_cells_per_ml": pick(("dose_cap_cells_per_ml",), ("dose_cap_cells_per_ml",)),
    }


def summary_table(report: LotReport) -> TableData:
    """Field/value rows: lot, class, route, explanation, key figures, method and software."""
    klass = class_summary(report.assessment)
    rows: list[tuple[str, Any]] = [
        ("lot_id", _lot_id(report)),
        ("simulated", is_simulated(report)),
        ("class_id", klass["class_id"]),
        ("class_name", klass["class_name"]),
        ("route", klass["route"]),
        ("wording", klass["wording"]),
        ("dose_cap_cells_per_kg", klass["dose_cap_cells_per_kg"]),
        ("dose_cap_cells_per_ml", klass["dose_cap_cells_per_ml"]),
        ("explanation", klass["explanation"]),
    ]
    shown = {name for name, _ in rows}
    rows += [(k, v) for k, v in _key_figures(report.assessment) if k not in shown]
    release = report.assessment.get("release")
    if isinstance(release, Mapping) and "passed" in release:
        rows.append(("release_passed", release.get("passed")))
    rows += [(f"method_{k}", _plain_cell(v)) for k, v in report.method.items()]
    rows += [
        ("software_version", report.software_version),
        ("generated_at", report.generated_at),
        ("disclaimer", report.disclaimer),
    ]
    return TableData(("field", "value"), tuple(rows))


def index_table(report: LotReport) -> TableData:
    """One row per dose: the dose, its status, each index judged and the thresholds it broke.

    Index columns are named after the check keys without a ``_max``, ``_min`` or ``_allowed``
    suffix. With several blood donors at one dose, the value shown is the one that decided the
    dose (a failed check first, then one that could not be made).
    """
    rows = [row.values for row in _dose_rows(report.assessment)]
    columns = _union_keys(rows)
    return TableData(tuple(columns), tuple(tuple(r.get(c) for c in columns) for r in rows))


def run_table(report: LotReport) -> TableData:
    """One row per run with its protocol, instruments, operator, status and QC flags."""
    columns = (
        "run_id",
        "assay",
        "title",
        "protocol_id",
        "protocol_version",
        "protocol_sha256",
        "operator",
        "started_at",
        "status",
        "simulated",
        "donor_id",
        "instruments",
        "qc_flags",
    )
    rows = tuple(
        (
            run.run_id,
            run.assay,
            run.title,
            run.protocol_id,
            run.protocol_version,
            run.protocol_sha256,
            run.operator,
            run.started_at,
            run.status,
            run.simulated,
            run.donor_id,
            "; ".join(_instrument_text(i) for i in run.instruments),
            "; ".join(run.qc_flags),
        )
        for run in report.runs
    )
    return TableData(columns, rows)


def parameter_table(report: LotReport) -> TableData:
    """One row per run × channel × parameter, with the reason for a missing value."""
    rows: list[tuple[Any, ...]] = []
    for run in report.runs:
        for entry in run.parameters:
            values, notes = _channel_parameters(entry)
            for name, value in values.items():
                rows.append(
                    (
                        run.run_id,
                        run.assay,
                        entry.get("channel"),
                        entry.get("label"),
                        name,
                        _plain_cell(value),
                        notes.get(name, ""),
                    )
                )
    columns = ("run_id", "assay", "channel", "label", "parameter", "value", "note")
    return TableData(columns, tuple(rows))


def tat_table(report: LotReport) -> TableData:
    """One row per run × loop × draw time: TAT in µg/L (empty when not measured)."""
    rows = tuple(
        (run.run_id, loop, time_s, value)
        for run in report.runs
        for loop, course in sorted(run.tat_courses.items())
        for time_s, value in sorted(course.items())
    )
    return TableData(("run_id", "loop", "time_s", "tat_ug_per_l"), rows)


def lot_table(report: LotReport) -> TableData:
    """The lot record as field/value rows."""
    return TableData(
        ("field", "value"), tuple((str(k), _plain_cell(v)) for k, v in report.lot.items())
    )


def donor_table(report: LotReport) -> TableData:
    """One row per blood donor; the columns are every field any donor record has."""
    records = [{str(k): _plain_cell(v) for k, v in d.items()} for d in report.donors]
    columns = _union_keys(records)
    return TableData(tuple(columns), tuple(tuple(r.get(c) for c in columns) for r in records))


def signature_table(report: LotReport) -> TableData:
    """One row per electronic signature of the lot or its runs, VALID or INVALID when built."""
    columns = ("object", "signer", "role", "meaning", "signed_at", "status", "content_sha256")
    rows = tuple(tuple(s.get(c) for c in columns) for s in report.signatures)
    return TableData(columns, rows)


# -- CSV ----------------------------------------------------------------------------------------


def write_csv(report: LotReport, out_dir: Path) -> list[Path]:
    """summary.csv, indices.csv, parameters.csv and tat.csv, each led by a ``simulated`` column.

    UTF-8 without a byte-order mark, comma-separated, one header row; empty cells are missing
    values; numbers are written at full precision.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    flag = "yes" if is_simulated(report) else "no"
    written = []
    for name, table in (
        ("summary.csv", summary_table(report)),
        ("indices.csv", index_table(report)),
        ("parameters.csv", parameter_table(report)),
        ("tat.csv", tat_table(report)),
        *((("signatures.csv", signature_table(report)),) if report.signatures else ()),
    ):
        path = out_dir / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("simulated", *table.columns))
            for row in table.rows:
                writer.writerow((flag, *(_csv_cell(v) for v in row)))
        written.append(path)
    return written


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


# -- XLSX ---------------------------------------------------------------------------------------

_XLSX_MAX_WIDTH = 80
_BANNER_FILL = "FFC00000"


def write_xlsx(report: LotReport, path: Path) -> Path:
    """A workbook with sheets Summary, Indices, Runs, Parameters, TAT, Lot and Donors.

    Every sheet has a bold, frozen header row and fitted column widths. A simulated report
    carries a red SIMULATED banner in the second row of Summary, frozen with the header.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    simulated = is_simulated(report)
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, table in (
        ("Summary", summary_table(report)),
        ("Indices", index_table(report)),
        ("Runs", run_table(report)),
        ("Parameters", parameter_table(report)),
        ("TAT", tat_table(report)),
        ("Lot", lot_table(report)),
        ("Donors", donor_table(report)),
        *((("Signatures", signature_table(report)),) if report.signatures else ()),
    ):
        sheet = book.create_sheet(title)
        banner = simulated and title == "Summary"
        _fill_sheet(sheet, table, banner=banner)
    book.properties.title = f"Hemocompatibility report, lot {_lot_id(report)}"
    book.properties.creator = f"hemocompat {report.software_version}"
    if simulated:
        book.properties.keywords = SIMULATED
    book.save(path)
    return path


def _fill_sheet(sheet: Any, table: TableData, *, banner: bool) -> None:
    bold = Font(bold=True)
    for col, name in enumerate(table.columns, start=1):
        sheet.cell(row=1, column=col, value=name).font = bold
    first = 2
    if banner:
        cell = sheet.cell(row=2, column=1, value=SIMULATED_NOTICE)
        cell.font = Font(bold=True, color="FFFFFFFF", size=14)
        cell.fill = PatternFill("solid", fgColor=_BANNER_FILL)
        if len(table.columns) > 1:
            sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=len(table.columns))
        sheet.row_dimensions[2].height = 24
        first = 3
    wrap = Alignment(wrap_text=True, vertical="top")
    widths = [len(c) for c in table.columns]
    for r, row in enumerate(table.rows, start=first):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value = _xlsx_value(value)
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text that starts with "=" stays text, not a formula
                if len(cell.value) > _XLSX_MAX_WIDTH:
                    cell.alignment = wrap
            widths[c - 1] = max(widths[c - 1], min(len(_fmt_plain(value)), _XLSX_MAX_WIDTH))
    for c, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(c)].width = max(8, width + 2)
    sheet.freeze_panes = sheet.cell(row=first, column=1)


def _xlsx_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value
    text = str(value) if not isinstance(value, Mapping | list | tuple) else _json(value)
    return ILLEGAL_CHARACTERS_RE.sub("", text)[:32767]


# -- PDF ----------------------------------------------------------------------------------------

_PAGE_W, _PAGE_H = A4
_MARGIN_X = 18 * mm
_MARGIN_TOP = 22 * mm
_MARGIN_BOTTOM = 18 * mm
_FRAME_W = _PAGE_W - 2 * _MARGIN_X
_INK = colors.HexColor("#1a1a1a")
_ACCENT = colors.HexColor("#1f4e79")
_ALERT = colors.HexColor("#c00000")
_RULE = colors.HexColor("#9a9a9a")
_HEAD_BG = colors.Color(0.12, 0.31, 0.47, alpha=0.12)
_FIGURE_DPI = 150
_MAX_TABLE_COLUMNS = 11
_MAX_PLOT_POINTS = 4000


def write_pdf(report: LotReport, path: Path) -> Path:
    """The report as an A4 PDF: summary, one section per run, method and disclaimer page.

    Every page has a header with the lot ID and "page N of M"; when the report is simulated the
    header says SIMULATED and a large diagonal SIMULATED watermark lies under the page content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fonts = _register_fonts()
    styles = _Styles(fonts)
    simulated = is_simulated(report)
    lot_id = _lot_id(report)
    footer = f"hemocompat {report.software_version} · generated {report.generated_at}"

    def decorate(canvas: Any, _doc: Any) -> None:
        _draw_page_frame(canvas, fonts, lot_id=lot_id, footer=footer, simulated=simulated)

    doc = BaseDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=_MARGIN_X,
        rightMargin=_MARGIN_X,
        topMargin=_MARGIN_TOP,
        bottomMargin=_MARGIN_BOTTOM,
        title=f"Hemocompatibility report, lot {lot_id}" + (f" ({SIMULATED})" if simulated else ""),
        author=f"hemocompat {report.software_version}",
        subject="Hemocompatibility of a cell-therapy lot",
        keywords=[SIMULATED] if simulated else [],
        creator="hemocompat",
    )
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body")
    doc.addPageTemplates([PageTemplate(id="report", frames=[frame], onPage=decorate)])

    story: list[Any] = []
    story += _summary_story(report, styles, simulated=simulated)
    for run in report.runs:
        story.append(PageBreak())
        story += _run_story(run, styles)
    story.append(PageBreak())
    story += _closing_story(report, styles, simulated=simulated)

    def canvas_maker(*args: Any, **kwargs: Any) -> Any:
        return _NumberedCanvas(*args, font=fonts.regular, **kwargs)

    doc.build(story, canvasmaker=canvas_maker)
    return path


@dataclass(frozen=True)
class _Fonts:
    regular: str
    bold: str
    italic: str
    mono: str


def _register_fonts() -> _Fonts:
    """DejaVu (shipped with matplotlib) for µ, Δ, ‰, ≤; Helvetica when it cannot be found."""
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = {
        "HcSans": "DejaVuSans.ttf",
        "HcSans-Bold": "DejaVuSans-Bold.ttf",
        "HcSans-Oblique": "DejaVuSans-Oblique.ttf",
        "HcSans-BoldOblique": "DejaVuSans-BoldOblique.ttf",
        "HcMono": "DejaVuSansMono.ttf",
    }
    if not all((ttf / name).is_file() for name in files.values()):
        return _Fonts("Helvetica", "Helvetica-Bold", "Helvetica-Oblique", "Courier")
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name, filename in files.items():
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, str(ttf / filename)))
    pdfmetrics.registerFontFamily(
        "HcSans",
        normal="HcSans",
        bold="HcSans-Bold",
        italic="HcSans-Oblique",
        boldItalic="HcSans-BoldOblique",
    )
    return _Fonts("HcSans", "HcSans-Bold", "HcSans-Oblique", "HcMono")


class _Styles:
    """The paragraph styles of the report."""

    def __init__(self, fonts: _Fonts) -> None:
        self.fonts = fonts
        base = {"fontName": fonts.regular, "textColor": _INK}
        self.body = ParagraphStyle("body", fontSize=9, leading=12, spaceAfter=4, **base)
        self.small = ParagraphStyle("small", fontSize=7.5, leading=9.5, spaceAfter=2, **base)
        self.cell = ParagraphStyle("cell", fontSize=7.5, leading=9, **base)
        self.cell_mono = ParagraphStyle(
            "cell_mono", parent=self.cell, fontName=fonts.mono, fontSize=7, wordWrap="CJK"
        )
        self.cell_head = ParagraphStyle(
            "cell_head", parent=self.cell, fontName=fonts.bold, textColor=_ACCENT
        )
        self.title = ParagraphStyle(
            "title", fontName=fonts.bold, fontSize=18, leading=22, spaceAfter=6, textColor=_ACCENT
        )
        self.h1 = ParagraphStyle(
            "h1", fontName=fonts.bold, fontSize=14, leading=18, spaceAfter=6, textColor=_ACCENT
        )
        self.h2 = ParagraphStyle(
            "h2",
            fontName=fonts.bold,
            fontSize=10.5,
            leading=13,
            spaceBefore=8,
            spaceAfter=4,
            textColor=_ACCENT,
            keepWithNext=1,
        )
        self.banner = ParagraphStyle(
            "banner",
            fontName=fonts.bold,
            fontSize=10,
            leading=13,
            textColor=colors.white,
            backColor=_ALERT,
            borderPadding=(4, 6, 4, 6),
            spaceBefore=4,
            spaceAfter=10,
        )
        self.class_label = ParagraphStyle(
            "class_label", fontName=fonts.regular, fontSize=8.5, leading=11, textColor=_RULE
        )
        self.class_name = ParagraphStyle(
            "class_name", fontName=fonts.bold, fontSize=22, leading=27, textColor=_ACCENT
        )
        self.route = ParagraphStyle(
            "route", fontName=fonts.bold, fontSize=11.5, leading=15, spaceBefore=4, textColor=_INK
        )


class _NumberedCanvas(Canvas):  # type: ignore[misc]
    """A canvas that holds its pages back until the end to write "page N of M" on each."""

    def __init__(self, *args: Any, font: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page_font = font
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 - reportlab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self.saveState()
            self.setFont(self._page_font, 8)
            self.setFillColor(_INK)
            self.drawRightString(_PAGE_W - _MARGIN_X, 10 * mm, f"page {number} of {total}")
            self.restoreState()
            super().showPage()
        super().save()


def _draw_page_frame(
    canvas: Any, fonts: _Fonts, *, lot_id: str, footer: str, simulated: bool
) -> None:
    """Watermark (under the content), header and footer of one page."""
    canvas.saveState()
    if simulated:
        canvas.saveState()
        canvas.setFillColor(_ALERT)
        canvas.setFillAlpha(0.13)
        canvas.translate(_PAGE_W / 2, _PAGE_H / 2)
        canvas.rotate(math.degrees(math.atan2(_PAGE_H, _PAGE_W)))
        size = 100.0
        width = pdfmetrics.stringWidth(SIMULATED, fonts.bold, size)
        size *= min(1.0, 0.8 * math.hypot(_PAGE_W, _PAGE_H) / width)
        canvas.setFont(fonts.bold, size)
        canvas.drawCentredString(0, -size * 0.35, SIMULATED)
        canvas.restoreState()
    top = _PAGE_H - 12 * mm
    canvas.setFont(fonts.bold, 9)
    canvas.setFillColor(_ACCENT)
    canvas.drawString(_MARGIN_X, top, f"Lot {lot_id}")
    canvas.setFont(fonts.regular, 8)
    canvas.setFillColor(_INK)
    canvas.drawRightString(_PAGE_W - _MARGIN_X, top, "Hemocompatibility report")
    if simulated:
        canvas.setFont(fonts.bold, 10)
        canvas.setFillColor(_ALERT)
        canvas.drawCentredString(_PAGE_W / 2, top, f"{SIMULATED} DATA")
    canvas.setStrokeColor(_RULE)
    canvas.setLineWidth(0.5)
    canvas.line(_MARGIN_X, top - 2.5 * mm, _PAGE_W - _MARGIN_X, top - 2.5 * mm)
    canvas.line(_MARGIN_X, 14 * mm, _PAGE_W - _MARGIN_X, 14 * mm)
    canvas.setFont(fonts.regular, 8)
    canvas.setFillColor(_INK)
    canvas.drawString(_MARGIN_X, 10 * mm, footer)
    canvas.restoreState()


# -- PDF: summary -------------------------------------------------------------------------------


def _summary_story(report: LotReport, st: _Styles, *, simulated: bool) -> list[Any]:
    assessment = report.assessment
    klass = class_summary(assessment)
    lot_id = _lot_id(report)
    out: list[Any] = [Paragraph(f"Hemocompatibility report — lot {_e(lot_id)}", st.title)]
    method = report.method
    if method:
        title = method.get("title") or method.get("id") or ""
        out.append(
            Paragraph(
                f"Method: {_e(title)} ({_e(method.get('id', ''))}, version "
                f"{_e(method.get('version', NOT_AVAILABLE))})",
                st.body,
            )
        )
    if simulated:
        out.append(Paragraph(_e(SIMULATED_NOTICE), st.banner))
    out.append(_class_box(klass, st))
    out.append(Spacer(1, 3))
    out.append(Paragraph(_e(report.disclaimer), st.small))

    out.append(Paragraph("Lot record", st.h2))
    lot_rows = [(_pretty(k), v) for k, v in lot_table(report).rows]
    out += _key_value_table(lot_rows, st) or [_none(st, "no lot record")]
    out.append(Paragraph("Blood donors", st.h2))
    donors = donor_table(report)
    if donors.rows:
        out += _grid([_pretty(c) for c in donors.columns], donors.rows, st)
    else:
        out.append(_none(st, "no donors"))

    out += _decision_story(assessment, st)

    dose_rows = _dose_rows(assessment)
    heading = Paragraph("Per-dose indices", st.h2)
    if dose_rows:
        out.append(KeepTogether([heading, *_dose_grid(dose_rows, st)]))
    else:
        out += [heading, _none(st, "no per-dose indices in the assessment")]

    figures = _key_figures(assessment)
    if figures:
        out.append(Paragraph("Key figures", st.h2))
        out += _key_value_table([(_pretty(k), v) for k, v in figures], st)
    out += _fit_story(assessment, st)
    out += _detail_story(assessment, st)

    if klass["explanation"]:
        out.append(Paragraph("Explanation", st.h2))
        out += [Paragraph(_e(p), st.body) for p in str(klass["explanation"]).split("\n") if p]
    notes = assessment.get("notes")
    if isinstance(notes, Mapping) and notes:
        out.append(Paragraph("Notes", st.h2))
        out += [
            Paragraph(f"<b>{_e(_pretty(str(k)))}</b>: {_e(v)}", st.small) for k, v in notes.items()
        ]
    return out


def _class_box(klass: Mapping[str, Any], st: _Styles) -> Any:
    cells: list[Any] = [Paragraph("Class of the lot", st.class_label)]
    name = klass["class_name"] or klass["class_id"]
    cells.append(Paragraph(_e(name if name else "no class in the assessment"), st.class_name))
    if klass["class_id"] and klass["class_name"]:
        cells.append(Paragraph(f"class id: {_e(klass['class_id'])}", st.class_label))
    route = klass["route"]
    cells.append(
        Paragraph(f"Suggested route: {_e(route if route else 'not given')}", st.route),
    )
    cap_kg, cap_ml = klass["dose_cap_cells_per_kg"], klass["dose_cap_cells_per_ml"]
    if cap_kg is not None or cap_ml is not None:
        parts = []
        if cap_kg is not None:
            parts.append(f"{_fmt(cap_kg)} cells/kg")
        if cap_ml is not None:
            parts.append(f"{_fmt(cap_ml)} cells/mL of blood")
        cells.append(Paragraph(f"Dose cap: {' = '.join(parts)}", st.route))
    if klass["wording"]:
        cells.append(Spacer(1, 3))
        cells.append(Paragraph(_e(klass["wording"]), st.body))
    box = Table([[c] for c in cells], colWidths=[_FRAME_W])
    box.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 1.2, _ACCENT),
                ("BACKGROUND", (0, 0), (-1, -1), colors.Color(0.12, 0.31, 0.47, alpha=0.06)),
                ("LEFTPADDING", (0, 0), (-1, -1), 10),
                ("RIGHTPADDING", (0, 0), (-1, -1), 10),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ("TOPPADDING", (0, 0), (-1, 0), 7),
                ("BOTTOMPADDING", (0, -1), (-1, -1), 8),
            ]
        )
    )
    return box


def _decision_story(assessment: Mapping[str, Any], st: _Styles) -> list[Any]:
    """The rules tried (ending with the one that decided) and the thresholds applied."""
    out: list[Any] = []
    decision = assessment.get("decision")
    rules = decision.get("rules") if isinstance(decision, Mapping) else None
    if _is_dict_list(rules):
        out.append(Paragraph("Rule that decided the class", st.h2))
        rows = []
        last = len(rules) - 1
        for i, rule in enumerate(rules):
            conditions = rule.get("conditions")
            texts = (
                [str(c.get("text") or c.get("key") or "") for c in conditions]
                if _is_dict_list(conditions)
                else []
            )
            holds = rule.get("holds")
            verdict = "holds" if holds else ("does not hold" if holds is not None else "unknown")
            if i == last and holds:
                verdict += " — decided"
            rows.append(
                (
                    rule.get("class_id", NOT_AVAILABLE),
                    verdict,
                    "; ".join(t for t in texts if t) or "always (default class)",
                )
            )
        out += _grid(("class", "rule", "conditions"), rows, st, widths=(0.22, 0.18, 0.60))
    thresholds = _thresholds(assessment)
    if thresholds:
        out.append(Paragraph("Thresholds applied to each dose", st.h2))
        out += _grid(("threshold", "limit"), thresholds, st, widths=(0.5, 0.5))
    release = assessment.get("release")
    if isinstance(release, Mapping) and (release.get("checks") or "passed" in release):
        out.append(Paragraph("Release check", st.h2))
        verdict = {True: "passed", False: "failed", None: "not assessed"}.get(
            release.get("passed"), str(release.get("passed"))
        )
        out.append(Paragraph(f"Release {_e(verdict)}.", st.body))
        checks = release.get("checks")
        if _is_dict_list(checks):
            rows = [
                (_pretty(_index_name(str(c.get("key", "")))), _verdict(c), c.get("text", ""))
                for c in checks
            ]
            out += _grid(("criterion", "result", "detail"), rows, st, widths=(0.3, 0.15, 0.55))
    return out


def _thresholds(assessment: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Threshold name and limit, from the method's thresholds mapping or the dose checks."""
    seen: dict[str, str] = {}
    given = assessment.get("thresholds")
    if isinstance(given, Mapping):
        for key, limit in given.items():
            seen[str(key)] = _limit_text(str(key), limit)
    doses = _dose_entries(assessment)
    for dose in doses:
        checks = dose.get("checks")
        if _is_dict_list(checks):
            for check in checks:
                key = str(check.get("key", ""))
                if key and key not in seen:
                    seen[key] = _limit_text(key, check.get("limit"))
    return [(_pretty(_index_name(k)), v) for k, v in seen.items()]


def _limit_text(key: str, limit: Any) -> str:
    if isinstance(limit, bool):
        return "allowed" if limit else "not allowed"
    if key.endswith("_max"):
        return f"≤ {_fmt(limit)}"
    if key.endswith("_min"):
        return f"≥ {_fmt(limit)}"
    return _fmt(limit)


def _dose_grid(rows: Sequence[_DoseRow], st: _Styles) -> list[Any]:
    columns = _union_keys([r.values for r in rows])
    listed = {"exceeded", "not_assessed"}
    body = [
        [
            ", ".join(_pretty(n) for n in str(r.values[c]).split(", ") if n)
            if c in listed and r.values.get(c)
            else r.values.get(c)
            for c in columns
        ]
        for r in rows
    ]
    alerts: list[tuple[int, int]] = []
    unknown: list[tuple[int, int]] = []
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            if column in row.failed or (column == "status" and row.values.get(column) == "unsafe"):
                alerts.append((i, j))
            elif column in row.unknown:
                unknown.append((i, j))
    return _grid([_pretty(c) for c in columns], body, st, alerts=alerts, muted=unknown)


def _fit_story(assessment: Mapping[str, Any], st: _Styles) -> list[Any]:
    fits = [
        (str(k), v)
        for k, v in assessment.items()
        if isinstance(v, Mapping) and ("slope_per_decade" in v or str(k).endswith("_fit"))
    ]
    if not fits:
        return []
    rows = []
    for key, fit in fits:
        rows.append(
            (
                _pretty(str(fit.get("quantity") or key)),
                fit.get("intercept"),
                fit.get("slope_per_decade"),
                fit.get("r_squared"),
                fit.get("note") or "",
            )
        )
    columns = ("quantity", "intercept", "slope per tenfold dose", "R²", "note")
    return [
        Paragraph("Dose–response fits (y = a + b·log10 dose)", st.h2),
        *_grid(columns, rows, st, widths=(0.22, 0.13, 0.17, 0.1, 0.38)),
    ]


def _detail_story(assessment: Mapping[str, Any], st: _Styles) -> list[Any]:
    """Other per-dose lists of the assessment (e.g. TEM and loop indices by donor), flattened."""
    skip = {id(e) for e in _dose_entries(assessment)}
    out: list[Any] = []
    for key, value in assessment.items():
        if not _is_dict_list(value) or any(id(e) in skip for e in value):
            continue
        rows = [_flatten(entry) for entry in value]
        columns = [c for c in _union_keys(rows) if c != "notes"]
        if not columns:
            continue
        out.append(Paragraph(f"Index details: {_e(_pretty(str(key)))}", st.h2))
        out += _grid([_pretty(c) for c in columns], [[r.get(c) for c in columns] for r in rows], st)
        doses_by_note: dict[tuple[str, str], list[str]] = {}
        for entry in value:
            notes = entry.get("notes")
            if isinstance(notes, Mapping):
                for k, v in notes.items():
                    doses = doses_by_note.setdefault((_pretty(str(k)), str(v)), [])
                    doses.append(_fmt(entry.get("dose_cells_per_ml")))
        out += [
            Paragraph(f"<b>{_e(name)}</b> ({_e(', '.join(doses))} cells/mL): {_e(text)}", st.small)
            for (name, text), doses in doses_by_note.items()
        ]
    return out


# -- PDF: runs ----------------------------------------------------------------------------------


def _run_story(run: RunSection, st: _Styles) -> list[Any]:
    out: list[Any] = [Paragraph(f"Run {run.run_id} — {_e(run.title)}", st.h1)]
    status = _e(run.status)
    if run.status.lower() not in {"completed", "complete", "ok"}:
        status = f'<font color="#c00000"><b>{status}</b></font>'
    origin = (
        f'<font color="#c00000"><b>{SIMULATED}</b></font> (virtual lab)'
        if run.simulated
        else "measured"
    )
    meta: list[tuple[str, Any]] = [
        ("Assay", run.assay),
        ("Protocol", f"{run.protocol_id}, version {run.protocol_version}"),
        ("Protocol SHA-256", _Mono(run.protocol_sha256)),
        ("Operator", run.operator),
        ("Started", run.started_at),
        ("Status", _Markup(status)),
        ("Blood donor", run.donor_id),
        ("Data", _Markup(origin)),
    ]
    out += _key_value_table(meta, st)

    out.append(Paragraph("Instruments", st.h2))
    if run.instruments:
        rows = []
        for inst in run.instruments:
            name = " ".join(
                str(inst[k]) for k in ("manufacturer", "model") if _present(inst.get(k))
            )
            model: Any = name
            if _truthy(inst.get("simulated")):
                model = _Markup(f'{_e(name)} <font color="#c00000"><b>{SIMULATED}</b></font>')
            rows.append(
                (
                    inst.get("role", NOT_AVAILABLE),
                    model,
                    inst.get("serial"),
                    inst.get("firmware"),
                    inst.get("resource"),
                )
            )
        out += _grid(("role", "instrument", "serial", "firmware", "connection"), rows, st)
    else:
        out.append(_none(st, "no instruments recorded"))

    out.append(Paragraph("Results per channel", st.h2))
    out += _parameter_story(run, st)

    if run.traces:
        kind = "Thromboelastometry traces" if _is_tem(run) else "Signals"
        if run.assay == "chandler-loop" or all(_is_motion(t) for t in run.traces):
            kind = "Loop motion signals"
        png, aspect = _trace_figure(run)
        out.append(KeepTogether([Paragraph(kind, st.h2), _png_image(png, aspect)]))
    if run.tat_courses:
        figure = _tat_figure(run)
        shown = (
            _png_image(*figure)
            if figure is not None
            else _none(st, "no TAT value above zero to plot")
        )
        out.append(KeepTogether([Paragraph("TAT time courses", st.h2), shown]))
        out += _tat_grid(run, st)
    if run.figure_png:
        out += _file_figure(run.figure_png, st)

    out.append(Paragraph("QC flags", st.h2))
    if run.qc_flags:
        style = st.body if len(run.qc_flags) <= 8 else st.small
        out += [Paragraph(f"• {_e(flag)}", style) for flag in run.qc_flags]
    else:
        out.append(Paragraph("none", st.body))
    return out


def _parameter_story(run: RunSection, st: _Styles) -> list[Any]:
    if not run.parameters:
        return [_none(st, "no results")]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    notes: list[str] = []
    for entry in run.parameters:
        values, entry_notes = _channel_parameters(entry)
        groups.setdefault(tuple(values), []).append(
            {"channel": entry.get("channel"), "label": entry.get("label"), **values}
        )
        for name, note in entry_notes.items():
            notes.append(f"channel {_fmt(entry.get('channel'))}, {_pretty(name)}: {note}")
    out: list[Any] = []
    for rows in groups.values():  # channels holding the same parameters share a table
        columns = _union_keys(rows)
        out += _grid(
            [_pretty(c) for c in columns],
            [[r.get(c) for c in columns] for r in rows],
            st,
            first_wide=True,
        )
    out += [Paragraph(_e(n), st.small) for n in notes]
    return out


def _tat_grid(run: RunSection, st: _Styles) -> list[Any]:
    times = sorted({t for course in run.tat_courses.values() for t in course})
    labels = _channel_labels(run)
    rows = []
    for loop, course in sorted(run.tat_courses.items()):
        rows.append(
            [f"{loop} · {labels.get(loop, '')}".rstrip(" ·"), *(course.get(t) for t in times)]
        )
    columns = ["loop", *(f"{_fmt(t / 60)} min" for t in times)]
    return [
        *_grid(columns, rows, st, first_wide=True),
        Paragraph("TAT in µg/L; — = not measured.", st.small),
    ]


def _file_figure(path_text: str, st: _Styles) -> list[Any]:
    path = Path(path_text)
    title = Paragraph(f"Figure: {_e(path.name)}", st.h2)
    try:
        width_px, height_px = ImageReader(str(path)).getSize()
    except (OSError, ValueError) as exc:
        return [title, _none(st, f"figure {path} could not be read: {exc}")]
    aspect = height_px / width_px if width_px else 0.7
    width = min(0.75 * _FRAME_W, 0.75 * width_px)  # not enlarged below 96 dpi
    return [KeepTogether([title, _png_image(str(path), aspect, width=width)])]


# -- PDF: closing page --------------------------------------------------------------------------


def _closing_story(report: LotReport, st: _Styles, *, simulated: bool) -> list[Any]:
    out: list[Any] = [Paragraph("Method, software and disclaimer", st.h1)]
    method_rows: list[tuple[str, Any]] = []
    for key, value in report.method.items():
        shown = _Mono(str(value)) if "sha" in str(key).lower() else value
        method_rows.append((_pretty(str(key)), shown))
    out.append(Paragraph("Decision method", st.h2))
    out += _key_value_table(method_rows, st) or [_none(st, "no method recorded")]

    protocols: dict[tuple[str, int, str], list[int]] = {}
    for run in report.runs:
        protocol = (run.protocol_id, run.protocol_version, run.protocol_sha256)
        protocols.setdefault(protocol, []).append(run.run_id)
    if protocols:
        out.append(Paragraph("Protocol files", st.h2))
        rows = [
            (pid, version, _Mono(sha), ", ".join(str(r) for r in runs))
            for (pid, version, sha), runs in protocols.items()
        ]
        out += _grid(
            ("protocol", "version", "SHA-256", "runs"), rows, st, widths=(0.24, 0.08, 0.6, 0.08)
        )

    if report.signatures:
        signed = signature_table(report)
        status = signed.columns.index("status")
        invalid = [(i, status) for i, row in enumerate(signed.rows) if row[status] != "VALID"]
        out.append(Paragraph("Electronic signatures", st.h2))
        out += _grid(signed.columns[:-1], [r[:-1] for r in signed.rows], st, alerts=invalid)

    out.append(Paragraph("Software", st.h2))
    origin = (
        _Markup(f'<font color="#c00000"><b>{SIMULATED}</b></font>: simulated instruments')
        if simulated
        else "measured with laboratory instruments"
    )
    out += _key_value_table(
        [
            ("Software", f"hemocompat {report.software_version}"),
            ("Report generated", report.generated_at),
            ("Data", origin),
        ],
        st,
    )
    out.append(Paragraph("Disclaimer", st.h2))
    out.append(Paragraph(_e(report.disclaimer), st.body))
    if simulated:
        out.append(Paragraph(_e(SIMULATED_NOTICE), st.banner))
    return out


# -- PDF: tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Markup:
    """Paragraph markup already escaped, put into a table cell as is."""

    text: str


@dataclass(frozen=True)
class _Mono:
    """A value (a hash) set in the monospaced font, breakable anywhere."""

    text: str


def _cell(value: Any, st: _Styles, style: ParagraphStyle | None = None) -> Any:
    if isinstance(value, Flowable):
        return value
    if isinstance(value, _Markup):
        return Paragraph(value.text, style or st.cell)
    if isinstance(value, _Mono):
        return Paragraph(_e(value.text), st.cell_mono)
    return Paragraph(_e(_fmt(value)), style or st.cell)


def _key_value_table(rows: Iterable[tuple[Any, Any]], st: _Styles) -> list[Any]:
    data = [[_cell(k, st, st.cell_head), _cell(v, st)] for k, v in rows]
    if not data:
        return []
    table = Table(data, colWidths=[0.28 * _FRAME_W, 0.72 * _FRAME_W], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return [table]


def _grid(
    columns: Sequence[Any],
    rows: Sequence[Sequence[Any]],
    st: _Styles,
    *,
    widths: Sequence[float] | None = None,
    first_wide: bool = False,
    alerts: Sequence[tuple[int, int]] = (),
    muted: Sequence[tuple[int, int]] = (),
) -> list[Any]:
    """A table with a header row, split into several tables when it has too many columns.

    Each split repeats the first column; ``alerts`` and ``muted`` are (row, column) cells of the
    body drawn in red bold or grey.
    """
    columns = list(columns)
    least, want = _column_needs(columns, rows, st)
    chunks = [list(range(len(columns)))] if widths is not None else _column_chunks(least)
    out: list[Any] = []
    alert_set, muted_set = set(alerts), set(muted)
    alert_style = ParagraphStyle("alert", parent=st.cell, fontName=st.fonts.bold, textColor=_ALERT)
    muted_style = ParagraphStyle("muted", parent=st.cell, textColor=_RULE)

    def body_cell(i: int, j: int) -> Any:
        value = rows[i][j] if j < len(rows[i]) else None
        if (i, j) in alert_set:
            return _cell(value, st, alert_style)
        if (i, j) in muted_set:
            return _cell(value, st, muted_style)
        return _cell(value, st)

    for chunk in chunks:
        head = [_cell(_Markup(_e(str(columns[j]))), st, st.cell_head) for j in chunk]
        body = [[body_cell(i, j) for j in chunk] for i in range(len(rows))]
        if widths is not None:
            col_widths = [w * _FRAME_W for w in widths]
        else:
            col_widths = _fit_widths(
                [least[j] for j in chunk], [want[j] for j in chunk], first_wide=first_wide
            )
        table = Table([head, *body], colWidths=col_widths, repeatRows=1, hAlign="LEFT")
        commands: list[tuple[Any, ...]] = [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("BACKGROUND", (0, 0), (-1, 0), _HEAD_BG),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, _ACCENT),
            ("LINEBELOW", (0, 1), (-1, -1), 0.25, _RULE),
            ("LEFTPADDING", (0, 0), (-1, -1), 3),
            ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ]
        table.setStyle(TableStyle(commands))
        out += [table, Spacer(1, 4)]
    return out


def _column_needs(
    columns: Sequence[Any], rows: Sequence[Sequence[Any]], st: _Styles
) -> tuple[list[float], list[float]]:
    """Per column, the width of its longest word (least) and of its longest cell (wanted).

    Headers are wanted on about two lines; every width includes the cell padding.
    """
    size = st.cell.fontSize
    pad = 8.0
    cap = 0.45 * _FRAME_W

    def width(text: str, font: str) -> float:
        return float(pdfmetrics.stringWidth(text, font, size))

    least: list[float] = []
    want: list[float] = []
    for j, column in enumerate(columns):
        header = str(column)
        cells = [_fmt(r[j]) for r in rows if j < len(r) and not isinstance(r[j], Flowable)]
        words = [w for text in cells for w in text.split()]
        low = max(
            [width(w, st.fonts.bold) for w in header.split()]
            + [width(w, st.fonts.bold) for w in words],  # bold: cells may be set in bold
            default=0.0,
        )
        high = max(
            [width(header, st.fonts.bold) * 0.6] + [width(c, st.fonts.regular) for c in cells]
        )
        least.append(min(low, cap) + pad)
        want.append(min(max(high, low), cap) + pad)
    return least, want


def _column_chunks(least: Sequence[float]) -> list[list[int]]:
    """Column indexes split so that each part fits the frame unbroken; the first one repeats."""
    n = len(least)
    if n <= 1 or (sum(least) <= _FRAME_W and n <= _MAX_TABLE_COLUMNS):
        return [list(range(n))]
    chunks: list[list[int]] = []
    current = [0]
    used = least[0]
    for j in range(1, n):
        full = used + least[j] > _FRAME_W or len(current) >= _MAX_TABLE_COLUMNS
        if len(current) > 1 and full:
            chunks.append(current)
            current, used = [0], least[0]
        current.append(j)
        used += least[j]
    chunks.append(current)
    # as many parts, with the columns shared out evenly when that fits too
    rest = list(range(1, n))
    size = math.ceil(len(rest) / len(chunks))
    even = [[0, *rest[i : i + size]] for i in range(0, len(rest), size)]
    if len(even) == len(chunks) and all(
        sum(least[j] for j in part) <= _FRAME_W and len(part) <= _MAX_TABLE_COLUMNS for part in even
    ):
        return even
    return chunks


def _fit_widths(
    least: Sequence[float], want: Sequence[float], *, first_wide: bool = False
) -> list[float]:
    """Column widths that fill the frame: no word broken if possible, long texts wrapped first."""
    want = list(want)
    if first_wide and want:
        want[0] = max(want[0], 0.14 * _FRAME_W)
    total_want, total_least = sum(want), sum(least)
    if total_want <= _FRAME_W:
        return [w + (_FRAME_W - total_want) * w / total_want for w in want]
    if total_least <= _FRAME_W:
        share = (_FRAME_W - total_least) / (total_want - total_least)
        return [lo + (w - lo) * share for lo, w in zip(least, want, strict=True)]
    return [lo * _FRAME_W / total_least for lo in least]


def _none(st: _Styles, text: str) -> Any:
    return Paragraph(f"<i>{_e(text)}</i>", st.body)


# -- PDF: figures -------------------------------------------------------------------------------


def _png_image(source: bytes | str, aspect: float, width: float = _FRAME_W) -> Any:
    """A platypus image of a PNG (bytes or a path) at a width, keeping its aspect ratio."""
    src: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    image = Image(src, width=width, height=width * aspect)
    image.hAlign = "CENTER"
    return image


def _new_figure(width_in: float, height_in: float) -> Figure:
    return Figure(figsize=(width_in, height_in), dpi=_FIGURE_DPI, layout="constrained")


def _png(fig: Figure) -> tuple[bytes, float]:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_FIGURE_DPI, transparent=True)
    width, height = fig.get_size_inches()
    return buffer.getvalue(), float(height / width)


def _trace_figure(run: RunSection) -> tuple[bytes, float]:
    """One small panel per channel: TEM in the symmetric ±A/2 form, other signals as lines."""
    traces = sorted(run.traces, key=lambda t: t.channel)
    ncols = 2 if len(traces) <= 4 else 4
    nrows = math.ceil(len(traces) / ncols)
    width_in = _FRAME_W / 72
    fig = _new_figure(width_in, nrows * (1.85 if ncols == 2 else 1.55) + 0.15)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    tem = _is_tem(run)
    peak = max((max(t.values, default=0.0) for t in traces), default=0.0)
    for index, ax in enumerate(axes.flat):
        if index >= len(traces):
            ax.set_visible(False)
            continue
        trace = traces[index]
        t_min, values = _plot_points(trace)
        title = f"{'Ch' if tem else 'Loop'} {trace.channel}"
        if trace.label and ncols == 2:
            title += f" · {_shorten(trace.label, 60)}"
        elif trace.label:
            title += f"\n{_shorten(trace.label, 30)}"
        ax.set_title(title, fontsize=7 if ncols == 2 else 6, loc="left")
        if tem and _is_amplitude(trace):
            half = [v / 2 for v in values]
            ax.fill_between(t_min, [-h for h in half], half, color="#1f4e79", alpha=0.55, lw=0)
            ax.plot(t_min, half, color="#1f4e79", lw=0.6)
            ax.plot(t_min, [-h for h in half], color="#1f4e79", lw=0.6)
            ax.axhline(0, color="#7f7f7f", lw=0.4)
            limit = max(peak / 2 * 1.15, 1.0)
            ax.set_ylim(-limit, limit)
            marker_name = "CT"
        else:
            ax.plot(t_min, values, color="#1f4e79", lw=0.8)
            if _is_motion(trace):
                ax.set_ylim(-30, 1080)
            marker_name = "clot" if _is_motion(trace) else "marker"
        if trace.marker_s is not None:
            ax.axvline(trace.marker_s / 60, color="#c00000", lw=0.9, ls="--")
            ax.text(
                trace.marker_s / 60,
                1.0,
                f" {marker_name} {_fmt(trace.marker_s)} s",
                transform=ax.get_xaxis_transform(),
                fontsize=6,
                color="#c00000",
                va="top",
                ha="left",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.6},
            )
        elif _is_motion(trace):
            ax.text(0.98, 0.06, "no clot", transform=ax.transAxes, fontsize=6, ha="right")
        ax.tick_params(labelsize=6, length=2)
        ax.grid(alpha=0.25, lw=0.4)
        if index % ncols == 0:
            ax.set_ylabel(_axis_unit(trace), fontsize=6.5)
        if index >= len(traces) - ncols:
            ax.set_xlabel("time (min)", fontsize=6.5)
            ax.xaxis.set_tick_params(labelbottom=True)
    if run.simulated:
        fig.suptitle(SIMULATED, fontsize=7, color="#c00000", x=0.99, ha="right")
    return _png(fig)


def _tat_figure(run: RunSection) -> tuple[bytes, float] | None:
    """TAT against time per loop on a log axis; None when no value is above zero."""
    labels = _channel_labels(run)
    fig = _new_figure(_FRAME_W / 72, 2.6)
    ax = fig.subplots()
    plotted = 0
    for loop, course in sorted(run.tat_courses.items()):
        points = sorted((t, v) for t, v in course.items() if v is not None and v > 0)
        if not points:
            continue
        label = f"loop {loop}" + (f" · {labels[loop]}" if labels.get(loop) else "")
        style: dict[str, Any] = (
            {"color": "#404040", "ls": "--"} if "vehicle" in labels.get(loop, "").lower() else {}
        )
        ax.plot(
            [t / 60 for t, _ in points],
            [v for _, v in points],
            marker="o",
            ms=3,
            lw=1,
            label=label,
            **style,
        )
        plotted += 1
    if not plotted:
        return None
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(_log_minor_label))
    ax.tick_params(which="both", labelsize=6.5)
    ax.set_xlabel("time (min)", fontsize=7)
    ax.set_ylabel("TAT (µg/L)", fontsize=7)
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if run.simulated:
        ax.set_title(SIMULATED, fontsize=7, color="#c00000", loc="right")
    return _png(fig)


def _log_minor_label(value: float, _pos: int | None) -> str:
    """Label the minor ticks 2 and 5 of each decade on a log axis; the rest stay unlabelled."""
    if value <= 0:
        return ""
    leading = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if leading in (2, 5) else ""


def _shorten(text: str, limit: int) -> str:
    """The text cut to its last ``limit`` characters (where a label names the dose)."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :].lstrip()


def _plot_points(trace: Trace) -> tuple[list[float], list[float]]:
    n = min(len(trace.t_s), len(trace.values))
    step = max(1, math.ceil(n / _MAX_PLOT_POINTS))
    return [t / 60 for t in trace.t_s[:n:step]], list(trace.values[:n:step])


def _is_tem(run: RunSection) -> bool:
    if run.assay == "thromboelastometry":
        return True
    return bool(run.traces) and all(_is_amplitude(t) for t in run.traces)


def _is_amplitude(trace: Trace) -> bool:
    return trace.unit.strip().lower() == "mm"


def _is_motion(trace: Trace) -> bool:
    return trace.unit.strip().lower() in {"‰", "permille", "per mille", "‰ motion"}


def _axis_unit(trace: Trace) -> str:
    if _is_amplitude(trace):
        return "amplitude (mm)"
    if _is_motion(trace):
        return "motion (‰)"
    return trace.unit


def _channel_labels(run: RunSection) -> dict[int, str]:
    labels = {t.channel: t.label for t in run.traces if t.label}
    for entry in run.parameters:
        channel, label = entry.get("channel"), entry.get("label")
        if isinstance(channel, int) and label and channel not in labels:
            labels[channel] = str(label)
    return labels


# -- shared helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _DoseRow:
    values: dict[str, Any]
    failed: frozenset[str]
    unknown: frozenset[str]


_DOSE_LIST_KEYS = ("doses", "per_dose", "dose_indices", "indices")
_THRESHOLD_SUFFIXES = ("_max", "_min", "_allowed")


def _dose_entries(assessment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for key in _DOSE_LIST_KEYS:
        value = assessment.get(key)
        if _is_dict_list(value):
            return list(value)
    return []


def _dose_rows(assessment: Mapping[str, Any]) -> list[_DoseRow]:
    rows = []
    for entry in _dose_entries(assessment):
        values = _flatten(entry)
        values.pop("notes", None)
        failed: set[str] = set()
        unknown: set[str] = set()
        checks = entry.get("checks")
        if _is_dict_list(checks):
            decisive: dict[str, Mapping[str, Any]] = {}
            rank = {False: 0, None: 1, True: 2}
            for check in checks:
                name = _index_name(str(check.get("key", "")))
                held = decisive.get(name)
                if held is None or rank.get(check.get("passed"), 1) < rank.get(
                    held.get("passed"), 1
                ):
                    decisive[name] = check
            for name, check in decisive.items():
                values.setdefault(name, _plain_cell(check.get("value")))
                if check.get("passed") is False:
                    failed.add(name)
                elif check.get("passed") is None:
                    unknown.add(name)
            values["exceeded"] = ", ".join(n for n in decisive if n in failed)
            values["not_assessed"] = ", ".join(n for n in decisive if n in unknown)
        rows.append(_DoseRow(values, frozenset(failed), frozenset(unknown)))
    return rows


def _index_name(check_key: str) -> str:
    for suffix in _THRESHOLD_SUFFIXES:
        if check_key.endswith(suffix) and len(check_key) > len(suffix):
            return check_key[: -len(suffix)]
    return check_key


def _flatten(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars as they are, mean ± sd statistics as their mean, one level of mappings dotted."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        name = str(key)
        if _is_scalar(value):
            out[name] = value
        elif isinstance(value, Mapping):
            if name == "notes":
                out[name] = value
            elif "mean" in value and _is_scalar(value["mean"]):
                out[name] = value["mean"]
            else:
                for sub, subvalue in value.items():
                    if _is_scalar(subvalue):
                        out[f"{name}.{sub}"] = subvalue
    return out


def _key_figures(assessment: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The assessment's top-level scalars other than those the class box shows."""
    skip = {"class", "class_id", "class_name", "route", "wording", "explanation"}
    return [(str(k), v) for k, v in assessment.items() if _is_scalar(v) and str(k) not in skip]


def _channel_parameters(entry: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A parameter row's values and notes: its ``parameters`` mapping, or its other keys."""
    given = entry.get("parameters")
    if isinstance(given, Mapping):
        values = {str(k): v for k, v in given.items()}
    else:
        skip = {"channel", "label", "notes", "parameters"}
        values = {str(k): v for k, v in entry.items() if str(k) not in skip}
    notes_value = entry.get("notes")
    notes = (
        {str(k): str(v) for k, v in notes_value.items()} if isinstance(notes_value, Mapping) else {}
    )
    return values, notes


def _instrument_text(inst: Mapping[str, Any]) -> str:
    parts = [str(inst[k]) for k in ("role", "manufacturer", "model") if _present(inst.get(k))]
    if _present(inst.get("serial")):
        parts.append(f"SN {inst['serial']}")
    if _present(inst.get("firmware")):
        parts.append(f"FW {inst['firmware']}")
    if _truthy(inst.get("simulated")):
        parts.append(f"({SIMULATED})")
    return " ".join(parts)


def _lot_id(report: LotReport) -> str:
    for source in (report.lot, report.assessment.get("lot")):
        if isinstance(source, Mapping):
            for key in ("lot_id", "id", "lot"):
                value = source.get(key)
                if _present(value) and not isinstance(value, Mapping):
                    return str(value)
    return "unknown lot"


_SUFFIX_UNITS = (
    ("_cells_per_ml", "cells/mL"),
    ("_cells_per_kg", "cells/kg"),
    ("_ml_per_kg", "mL/kg"),
    ("_ug_per_l_min", "µg/L·min"),
    ("_ug_per_l", "µg/L"),
    ("_e9_per_l", "10⁹/L"),
    ("_dyn_cm2", "dyn/cm²"),
    ("_permille", "‰"),
    ("_pct", "%"),
    ("_mm", "mm"),
    ("_deg", "°"),
    ("_min", "min"),
    ("_s", "s"),
)
_UPPER_WORDS = {
    "ct",
    "cft",
    "mcf",
    "tat",
    "auc",
    "plt",
    "iv",
    "id",
    "cd142",
    "mfi",
    "r",
    "tem",
    "qc",
    "cv",
    "od",
    "lloq",
    "uloq",
}


def _pretty(key: str) -> str:
    """A readable column title for a unit-suffixed key: ``delta_ct_pct`` → ``ΔCT (%)``."""
    base, unit = key, ""
    for suffix, name in _SUFFIX_UNITS:
        if key.endswith(suffix) and len(key) > len(suffix):
            base, unit = key[: -len(suffix)], name
            break
    words = [w.upper() if w.lower() in _UPPER_WORDS else w for w in re.split(r"[_.]", base) if w]
    text = " ".join(words)
    text = re.sub(r"^delta ", "Δ", text)
    text = text.replace("sha256", "SHA-256")
    if text:
        text = text[0].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def _fmt(value: Any) -> str:
    """A value for reading: 3–4 significant digits, doses as 1e5, yes/no, — for missing."""
    if value is None or value == "":
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**6 else _sci(float(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1e4 or abs(value) < 1e-3:
            return _sci(value)
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        if "mean" in value:
            text = _fmt(value.get("mean"))
            if value.get("sd") is not None:
                text += f" ± {_fmt(value.get('sd'))}"
            if value.get("n") is not None:
                text += f" (n={value.get('n')})"
            return text
        return _json(value)
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _sci(value: float) -> str:
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _fmt_plain(value: Any) -> str:
    return "" if value is None else str(value)


def _plain_cell(value: Any) -> Any:
    """A value fit for one spreadsheet cell: scalars as they are, the rest as JSON."""
    if _is_scalar(value):
        return value
    return _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=False)


def _verdict(check: Mapping[str, Any]) -> Any:
    passed = check.get("passed")
    if passed is None:
        return "not assessed"
    return _Markup("passed") if passed else _Markup('<font color="#c00000"><b>failed</b></font>')


def _union_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        for key in row:
            columns.setdefault(str(key), None)
    return list(columns)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_dict_list(value: Any) -> TypeGuard[Sequence[Mapping[str, Any]]]:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "simulated"}
    return bool(value)


def _e(value: Any) -> str:
    return escape(str(value))
