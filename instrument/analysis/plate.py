"""96-well plate geometry, plate readings and the reader-software CSV grid export.

A reading holds one absorbance per well for each wavelength. Readers with remote control
return 96 values in row-major order (A1, A2, …, A12, B1, …, H12); readers without it export
one 8 × 12 grid per wavelength as CSV, parsed by `read_plate_csv` (format: docs/elisa.md).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from instrument.errors import HemocompatError

ROWS = "ABCDEFGH"
N_COLUMNS = 12
N_WELLS = len(ROWS) * N_COLUMNS
MIN_WAVELENGTH_NM = 200
MAX_WAVELENGTH_NM = 1000

_WELL_RE = re.compile(r"^\s*([A-Ha-h])\s*0*([1-9]\d*)\s*$")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_WAVELENGTH_RE = re.compile(
    r"^(?:(?:wavelength|wave\s+length|lambda|λ)\s*(?:\(nm\)|\[nm\])?\s*[:=]?\s*(\d{2,4})\s*(?:nm)?"
    r"|(\d{2,4})\s*nm)$",
    re.IGNORECASE,
)
_OVERFLOW_MARKS = frozenset(
    {"OVER", "OVRFLW", "OVERFLOW", "OVFL", "OVF", "SAT", "SATURATED", "HI", "HIGH", "RANGE?"}
)
_SEPARATORS = (",", ";", "\t")


def well_names() -> list[str]:
    """All 96 wells in row-major order (A1 … A12, B1 … H12), the order `FETC:PLAT?` returns."""
    return [f"{row}{col}" for row in ROWS for col in range(1, N_COLUMNS + 1)]


def parse_well(text: str) -> str:
    """Canonical well name ("B7") from a spelling such as "B07", "b7" or " B 7 "."""
    match = _WELL_RE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a well of a 96-well plate: expected a row letter A–H followed by "
            f"a column 1–12, such as 'B7' or 'B07'"
        )
    column = int(match.group(2))
    if column > N_COLUMNS:
        raise ValueError(f"{text!r} is not a well of a 96-well plate: column {column} is beyond 12")
    return f"{match.group(1).upper()}{column}"


class PlateFormatError(HemocompatError, ValueError):
    """A plate file cannot be read; the message names the file, line, column and well."""

    def __init__(
        self,
        source: str,
        detail: str,
        *,
        line: int | None = None,
        column: int | None = None,
        well: str | None = None,
    ) -> None:
        self.source = source
        self.detail = detail
        self.line = line
        self.column = column
        self.well = well
        where = source
        if line is not None:
            where += f": line {line}"
            if column is not None:
                where += f", column {column}"
            if well is not None:
                where += f" (well {well})"
        super().__init__(f"{where}: {detail}")


@dataclass(frozen=True)
class PlateReading:
    """Absorbances of one plate: `od[wavelength_nm][well]`, wells named like "B7"."""

    wavelengths_nm: tuple[int, ...]
    od: dict[int, dict[str, float]]
    source: str
    simulated: bool = False

    def __post_init__(self) -> None:
        if len(set(self.wavelengths_nm)) != len(self.wavelengths_nm):
            raise ValueError(f"wavelengths {self.wavelengths_nm} repeat a wavelength")
        if set(self.od) != set(self.wavelengths_nm):
            raise ValueError(
                f"absorbances are given for {sorted(self.od)} nm but wavelengths_nm is "
                f"{list(self.wavelengths_nm)}"
            )
        for nm, values in self.od.items():
            for well in values:
                if parse_well(well) != well:
                    raise ValueError(
                        f"well {well!r} at {nm} nm is not canonical; use {parse_well(well)!r}"
                    )

    @classmethod
    def from_row_major(
        cls,
        values_by_nm: Mapping[int, Sequence[float]],
        source: str,
        *,
        simulated: bool = False,
    ) -> PlateReading:
        """Build a reading from 96 values per wavelength in A1 … H12 order (`FETC:PLAT?`)."""
        wells = well_names()
        od: dict[int, dict[str, float]] = {}
        for nm, values in values_by_nm.items():
            if len(values) != N_WELLS:
                raise ValueError(
                    f"{source}: {len(values)} absorbances at {nm} nm, expected 96 (A1 … H12)"
                )
            od[int(nm)] = {well: float(v) for well, v in zip(wells, values, strict=True)}
        return cls(tuple(od), od, source, simulated)


def read_plate_csv(path: str | Path, wavelengths_nm: Sequence[int] | None = None) -> PlateReading:
    """Read an 8 × 12 grid CSV export with one grid per wavelength (format: docs/elisa.md).

    `wavelengths_nm` names the grids in file order when the file does not label them, and
    otherwise selects (and requires) those wavelengths.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Windows reader software often writes Latin-1 (µ, °) in its metadata lines.
        text = data.decode("latin-1")
    return parse_plate_csv(text, str(path), wavelengths_nm)


def parse_plate_csv(
    text: str,
    source: str = "<text>",
    wavelengths_nm: Sequence[int] | None = None,
    *,
    simulated: bool = False,
) -> PlateReading:
    """Parse the text of a grid CSV export; `source` names it in error messages."""
    return _GridParser(text, source).parse(wavelengths_nm, simulated)


@dataclass
class _Grid:
    header_line: int
    wavelength_nm: int | None
    wavelength_line: int | None
    od: dict[str, float]


class _GridParser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = re.split(r"\r\n|\r|\n", text)
        self.sep = self._detect_separator()

    def error(
        self,
        detail: str,
        line: int | None = None,
        column: int | None = None,
        well: str | None = None,
    ) -> PlateFormatError:
        return PlateFormatError(self.source, detail, line=line, column=column, well=well)

    def _detect_separator(self) -> str:
        for line in self.lines:
            for sep in _SEPARATORS:
                cells = self._split(line, sep)
                if _is_header(cells):
                    return sep
        raise self.error(
            "no plate grid found: expected a header row ',1,2,…,12' (or with ';' or tabs) "
            "followed by 8 rows 'A,…' to 'H,…' of 12 absorbances"
        )

    def _split(self, line: str, sep: str) -> list[str]:
        try:
            cells = next(csv.reader([line], delimiter=sep), [])
        except csv.Error:
            return [line.strip()] if line.strip() else []
        cells = [c.strip() for c in cells]
        while cells and cells[-1] == "":
            cells.pop()
        return cells

    def parse(self, wavelengths_nm: Sequence[int] | None, simulated: bool) -> PlateReading:
        grids: list[_Grid] = []
        pending: tuple[int, int] | None = None  # (wavelength_nm, line)
        n = 0
        while n < len(self.lines):
            line_no = n + 1
            raw = self.lines[n]
            cells = self._split(raw, self.sep)
            if not cells:
                n += 1
                continue
            nm = self._wavelength(raw, line_no)
            if nm is not None:
                if pending is not None:
                    raise self.error(
                        f"a second wavelength line ({nm} nm) before a grid; the one at line "
                        f"{pending[1]} ({pending[0]} nm) has no grid below it",
                        line_no,
                    )
                pending = (nm, line_no)
                n += 1
                continue
            if _is_header(cells):
                self._check_header(cells, line_no)
                grid = self._read_grid(n + 1, line_no, pending)
                grids.append(grid)
                pending = None
                n += 1 + len(ROWS)
                self._check_after_grid(n)
                continue
            if _looks_like_row(cells, self.sep):
                raise self.error(
                    f"row {cells[0]!r} outside a grid: expected a header row (an empty cell, "
                    f"then the columns 1 to 12) before rows A to H",
                    line_no,
                )
            n += 1  # a title, date or other metadata line
        if pending is not None:
            raise self.error(
                f"wavelength line ({pending[0]} nm) is not followed by a plate grid", pending[1]
            )
        if not grids:  # pragma: no cover - _detect_separator found a header
            raise self.error("no plate grid found")
        return self._assemble(grids, wavelengths_nm, simulated)

    def _wavelength(self, raw: str, line_no: int) -> int | None:
        joined = " ".join(c for c in self._split(raw, self.sep) if c)
        match = _WAVELENGTH_RE.match(joined)
        if match is None:
            return None
        nm = int(match.group(1) or match.group(2))
        if not MIN_WAVELENGTH_NM <= nm <= MAX_WAVELENGTH_NM:
            raise self.error(
                f"wavelength {nm} nm is outside {MIN_WAVELENGTH_NM}–{MAX_WAVELENGTH_NM} nm",
                line_no,
            )
        return nm

    def _check_header(self, cells: list[str], line_no: int) -> None:
        expected = [str(c) for c in range(1, N_COLUMNS + 1)]
        if cells[1:] != expected:
            raise self.error(
                f"header row lists columns {','.join(cells[1:])}; expected the 12 columns "
                f"1 to 12 in order",
                line_no,
            )

    def _read_grid(self, start: int, header_line: int, pending: tuple[int, int] | None) -> _Grid:
        od: dict[str, float] = {}
        for k, row in enumerate(ROWS):
            n = start + k
            line_no = n + 1
            if all(not line.strip() for line in self.lines[n:]):
                last = f"row {ROWS[k - 1]}" if k else "the header row"
                raise self.error(
                    f"file ends after {last} of the grid "
                    f"starting at line {header_line}; expected 8 rows A to H",
                    line_no,
                )
            cells = self._split(self.lines[n], self.sep)
            if not cells:
                raise self.error(
                    f"empty line inside the grid starting at line {header_line}: expected "
                    f"row {row} (a grid has 8 rows A to H)",
                    line_no,
                )
            label = cells[0]
            if label.upper() != row:
                raise self.error(
                    f"expected row {row}, found {label!r} (a grid has rows A to H in order)",
                    line_no,
                    1,
                )
            values = cells[1:]
            if len(values) != N_COLUMNS:
                raise self.error(
                    f"row {row} has {len(values)} values, expected {N_COLUMNS}", line_no
                )
            for j, cell in enumerate(values):
                well = f"{row}{j + 1}"
                od[well] = self._absorbance(cell, line_no, j + 2, well)
        nm = pending[0] if pending else None
        wl_line = pending[1] if pending else None
        return _Grid(header_line, nm, wl_line, od)

    def _check_after_grid(self, n: int) -> None:
        if n >= len(self.lines):
            return
        cells = self._split(self.lines[n], self.sep)
        if _looks_like_row(cells, self.sep):
            raise self.error(
                f"row {cells[0]!r} after row H: a 96-well grid has 8 rows A to H", n + 1, 1
            )

    def _absorbance(self, cell: str, line_no: int, column: int, well: str) -> float:
        text = cell.strip()
        if not text:
            raise self.error("empty cell, expected an absorbance", line_no, column, well)
        upper = text.upper()
        if upper in _OVERFLOW_MARKS or text.startswith(">") or set(text) == {"*"}:
            raise self.error(
                f"{text!r} is the reader's overflow mark: the well saturated and has no "
                f"absorbance. Re-assay the sample at a higher dilution (or read sooner after "
                f"the stop solution); the mark is not converted to a number",
                line_no,
                column,
                well,
            )
        if text.startswith("<"):
            raise self.error(
                f"{text!r} is below the reader's range; export raw absorbances without range marks",
                line_no,
                column,
                well,
            )
        number = text
        if self.sep != "," and number.count(",") == 1 and "." not in number:
            number = number.replace(",", ".")
        if not _NUMBER_RE.match(number):
            raise self.error(f"{text!r} is not a number", line_no, column, well)
        value = float(number)
        if not math.isfinite(value):
            raise self.error(f"{text!r} is not a finite number", line_no, column, well)
        if value < 0:
            raise self.error(
                f"absorbance {text} is negative; export raw absorbances, not blank- or "
                f"reference-corrected ones",
                line_no,
                column,
                well,
            )
        return value

    def _assemble(
        self, grids: list[_Grid], wavelengths_nm: Sequence[int] | None, simulated: bool
    ) -> PlateReading:
        requested = _check_requested(wavelengths_nm)
        labelled = [g for g in grids if g.wavelength_nm is not None]
        if labelled and len(labelled) != len(grids):
            bare = next(g for g in grids if g.wavelength_nm is None)
            raise self.error(
                "grid has no wavelength line above it but other grids do; add a line such as "
                "'Wavelength: 650' above its header row",
                bare.header_line,
            )
        if not labelled:
            if requested is None:
                lines = ", ".join(str(g.header_line) for g in grids)
                raise self.error(
                    f"the grid(s) at line(s) {lines} name no wavelength; add a line such as "
                    f"'Wavelength: 492' above each grid, or pass wavelengths_nm in grid order"
                )
            if len(requested) != len(grids):
                raise self.error(
                    f"the file has {len(grids)} unlabelled grid(s) but wavelengths_nm names "
                    f"{len(requested)} ({', '.join(map(str, requested))} nm)"
                )
            for grid, nm in zip(grids, requested, strict=True):
                grid.wavelength_nm = nm
        by_nm: dict[int, _Grid] = {}
        for grid in grids:
            assert grid.wavelength_nm is not None
            if grid.wavelength_nm in by_nm:
                first = by_nm[grid.wavelength_nm]
                raise self.error(
                    f"second grid for {grid.wavelength_nm} nm (the first starts at line "
                    f"{first.header_line})",
                    grid.wavelength_line or grid.header_line,
                )
            by_nm[grid.wavelength_nm] = grid
        order = list(by_nm) if requested is None else list(requested)
        for nm in order:
            if nm not in by_nm:
                found = ", ".join(f"{k} nm (line {g.header_line})" for k, g in by_nm.items())
                raise self.error(
                    f"no grid for {nm} nm; the file has {found}. Export the {nm} nm read too, "
                    f"or analyse without that wavelength"
                )
        od = {nm: by_nm[nm].od for nm in order}
        return PlateReading(tuple(order), od, self.source, simulated)


def _check_requested(wavelengths_nm: Sequence[int] | None) -> tuple[int, ...] | None:
    if wavelengths_nm is None:
        return None
    requested = tuple(int(nm) for nm in wavelengths_nm)
    if not requested or len(set(requested)) != len(requested):
        raise ValueError(f"wavelengths_nm {list(requested)} must be distinct and not empty")
    for nm in requested:
        if not MIN_WAVELENGTH_NM <= nm <= MAX_WAVELENGTH_NM:
            raise ValueError(
                f"wavelength {nm} nm is outside {MIN_WAVELENGTH_NM}–{MAX_WAVELENGTH_NM} nm"
            )
    return requested


def _is_header(cells: list[str]) -> bool:
    return len(cells) >= 2 and cells[0] in ("", "<>") and cells[1] == "1"


def _looks_like_row(cells: list[str], sep: str) -> bool:
    if len(cells) < 2 or len(cells[0]) != 1 or not cells[0].isalpha():
        return False
    for cell in cells[1:]:
        number = cell.replace(",", ".") if sep != "," else cell
        if _NUMBER_RE.match(number):
            return True
    return False
