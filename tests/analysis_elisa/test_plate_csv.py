"""Plate geometry and the grid CSV import."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instrument.analysis.elisa import analyse_plate
from instrument.analysis.plate import (
    PlateFormatError,
    PlateReading,
    parse_plate_csv,
    parse_well,
    read_plate_csv,
    well_names,
)
from tests.analysis_elisa.synthetic import default_design, simulate_reading

ROWS = "ABCDEFGH"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "elisa.md"


def grid_csv(reading: PlateReading, sep: str = ",", decimal: str = ".") -> str:
    """Render a reading as reader software does: a wavelength line and a grid per wavelength."""
    lines = ["Plate ID,TAT-0001", "Read,2024-05-14 10:32:00"]
    for nm in reading.wavelengths_nm:
        lines += ["", f"Wavelength: {nm}", sep.join(["", *map(str, range(1, 13))])]
        for row in ROWS:
            cells = [
                f"{reading.od[nm][f'{row}{c}']:.4f}".replace(".", decimal) for c in range(1, 13)
            ]
            lines.append(sep.join([row, *cells]))
    return "\n".join(lines) + "\n"


def simple_grid(
    values: dict[str, str] | None = None, sep: str = ",", label: str = "Wavelength: 492"
) -> list[str]:
    """A labelled grid (line 1 label, line 2 header, lines 3–10 rows A–H); wells overridable."""
    values = values or {}
    lines = [label, sep.join(["", *map(str, range(1, 13))])]
    for r, row in enumerate(ROWS):
        cells = [values.get(f"{row}{c}", f"{0.1 + 0.1 * r + 0.01 * c:.3f}") for c in range(1, 13)]
        lines.append(sep.join([row, *cells]))
    return lines


def parse_lines(lines: list[str], **kwargs: object) -> PlateReading:
    return parse_plate_csv("\n".join(lines) + "\n", "plate.csv", **kwargs)  # type: ignore[arg-type]


# --- geometry --------------------------------------------------------------------------------


def test_well_names_are_row_major_A1_to_H12() -> None:
    names = well_names()
    assert len(names) == 96 and len(set(names)) == 96
    assert names[:13] == [*(f"A{c}" for c in range(1, 13)), "B1"]
    assert names[-1] == "H12"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("B07", "B7"), ("b7", "B7"), (" h12 ", "H12"), ("A1", "A1"), ("C010", "C10")],
)
def test_parse_well_accepts_common_spellings(text: str, expected: str) -> None:
    assert parse_well(text) == expected


@pytest.mark.parametrize("text", ["I1", "A0", "A13", "", "7B", "AA1", "A1.5"])
def test_parse_well_rejects_non_wells_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="96-well plate"):
        parse_well(text)


def test_reading_from_row_major_matches_well_order() -> None:
    values = [float(i) for i in range(96)]
    reading = PlateReading.from_row_major({450: values}, "reader", simulated=True)
    assert reading.od[450]["A1"] == 0 and reading.od[450]["A12"] == 11
    assert reading.od[450]["B1"] == 12 and reading.od[450]["H12"] == 95
    with pytest.raises(ValueError, match="95 absorbances at 450 nm, expected 96"):
        PlateReading.from_row_major({450: values[:95]}, "reader")


# --- import ----------------------------------------------------------------------------------


def test_round_trip_of_a_two_wavelength_export(tmp_path: Path) -> None:
    design = default_design()
    original = simulate_reading(design, seed=7)
    path = tmp_path / "tat_plate.csv"
    path.write_text(grid_csv(original), encoding="utf-8")

    reading = read_plate_csv(path)

    assert reading.wavelengths_nm == (492, 650)
    assert reading.source == str(path)
    assert reading.simulated is False
    for nm in (492, 650):
        assert set(reading.od[nm]) == set(well_names())
        for well in well_names():
            assert reading.od[nm][well] == pytest.approx(original.od[nm][well], abs=5e-5)


def test_semicolons_and_decimal_commas(tmp_path: Path) -> None:
    text = (
        "Messung;Platte 1\r\n"
        "492 nm\r\n"
        ";1;2;3;4;5;6;7;8;9;10;11;12\r\n"
        "A;0,112;0,118;1,402;1,377;0,091;0,088;0,5;0,51;0,77;0,79;0,06;0,061\r\n"
        "B;0,274;0,281;1,905;1,880;0,352;0,348;0,6;0,61;0,87;0,89;1,99;2,01\r\n"
        "C;0,583;0,590;2,101;2,090;0,452;0,448;0,7;0,71;0,97;0,99;0,06;0,061\r\n"
        "D;1,085;1,079;0,120;0,130;0,552;0,548;0,8;0,81;1,07;1,09;0,06;0,061\r\n"
        "E;1,712;1,705;0,220;0,230;0,652;0,648;0,9;0,91;1,17;1,19;0,06;0,061\r\n"
        "F;2,397;2,410;0,320;0,330;0,752;0,748;1,0;1,01;1,27;1,29;0,06;0,061\r\n"
        "G;0,093;0,089;0,420;0,430;0,852;0,848;1,1;1,11;1,37;1,39;0,09;0,092\r\n"
        "H;0,090;0,091;0,520;0,530;0,952;0,948;1,2;1,21;1,47;1,49;0,09;0,088\r\n"
        "\r\n"
        "650 nm\r\n"
        ";1;2;3;4;5;6;7;8;9;10;11;12\r\n"
        + "".join(f"{row};" + ";".join(["0,040"] * 12) + "\r\n" for row in ROWS)
    )
    path = tmp_path / "export_de.csv"
    path.write_bytes(text.encode("latin-1"))

    reading = read_plate_csv(path)

    assert reading.wavelengths_nm == (492, 650)
    assert reading.od[492]["A1"] == pytest.approx(0.112)
    assert reading.od[492]["B12"] == pytest.approx(2.01)
    assert reading.od[492]["F8"] == pytest.approx(1.01)
    assert reading.od[492]["H12"] == pytest.approx(0.088)
    assert all(v == pytest.approx(0.04) for v in reading.od[650].values())


def test_tab_separated_export_and_quoted_cells() -> None:
    lines = simple_grid(sep="\t")
    lines[2] = lines[2].replace("A\t", '"A"\t', 1)
    reading = parse_lines(lines)
    assert reading.od[492]["A1"] == pytest.approx(0.11)


def test_trailing_separators_from_spreadsheets_are_ignored() -> None:
    lines = [line + ",," for line in simple_grid()]
    assert parse_lines(lines).od[492]["H12"] == pytest.approx(0.92)


def test_unlabelled_grids_take_wavelengths_in_order() -> None:
    first = simple_grid()[1:]
    second = simple_grid({"A1": "0.040"})[1:]
    reading = parse_lines([*first, "", *second], wavelengths_nm=(492, 650))
    assert reading.wavelengths_nm == (492, 650)
    assert reading.od[650]["A1"] == pytest.approx(0.04)


def test_requested_wavelengths_select_labelled_grids() -> None:
    lines = [*simple_grid(label="Wavelength: 450"), *simple_grid({"A1": "0.5"}, label="492 nm")]
    reading = parse_lines(lines, wavelengths_nm=[492])
    assert reading.wavelengths_nm == (492,)
    assert reading.od[492]["A1"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "label",
    ["Wavelength: 492", "Wavelength,492", "wavelength (nm): 492", "492 nm", "492nm", "λ = 492"],
)
def test_wavelength_line_spellings(label: str) -> None:
    assert parse_lines(simple_grid(label=label)).wavelengths_nm == (492,)


def docs_example() -> str:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"<!-- example-csv -->\s*```text\n(.*?)```", text, re.S)
    assert match, "docs/elisa.md lost its example CSV block"
    return match.group(1)


def test_docs_example_parses_and_analyses() -> None:
    reading = parse_plate_csv(docs_example(), "docs/elisa.md")
    assert reading.wavelengths_nm == (492, 650)
    assert len(reading.od[492]) == 96
    design = default_design()  # the layout the example was read from
    result = analyse_plate(reading, design.plate_map())
    assert result.passed, result.findings
    for sid, (true, _, _) in design.samples.items():
        assert result.samples[sid].value_ug_per_l == pytest.approx(true, rel=0.15)


@pytest.mark.parametrize(
    ("line", "cell", "value", "message"),
    [
        (8, 12, None, "line 8: row C has 11 values, expected 12"),
        (7, 6, "abc", "line 7, column 7 (well B6): 'abc' is not a number"),
        (9, 3, "OVER", "line 9, column 4 (well D3): 'OVER' is the reader's overflow mark"),
        (13, 12, "-0.004", "line 13, column 13 (well H12): absorbance -0.004 is negative"),
    ],
)
def test_docs_error_examples(line: int, cell: int, value: str | None, message: str) -> None:
    lines = docs_example().split("\n")
    cells = lines[line - 1].split(",")
    if value is None:
        del cells[cell]
    else:
        cells[cell] = value
    lines[line - 1] = ",".join(cells)
    with pytest.raises(PlateFormatError) as info:
        parse_plate_csv("\n".join(lines), "tat_plate.csv")
    assert str(info.value).startswith(f"tat_plate.csv: {message}")
    assert f"tat_plate.csv: {message}" in DOCS.read_text(encoding="utf-8")


# --- errors ----------------------------------------------------------------------------------


def expect_error(lines: list[str], pattern: str, **kwargs: object) -> PlateFormatError:
    with pytest.raises(PlateFormatError) as info:
        parse_lines(lines, **kwargs)
    message = str(info.value)
    assert message.startswith("plate.csv"), message
    assert re.search(pattern, message), message
    return info.value


def test_row_with_too_few_values() -> None:
    lines = simple_grid()
    lines[4] = lines[4].rsplit(",", 1)[0]
    err = expect_error(lines, r"plate\.csv: line 5: row C has 11 values, expected 12")
    assert err.line == 5


def test_row_with_too_many_values() -> None:
    lines = simple_grid()
    lines[4] += ",0.5"
    expect_error(lines, r"line 5: row C has 13 values, expected 12")


def test_non_numeric_cell_names_line_column_and_well() -> None:
    err = expect_error(
        simple_grid({"B6": "abc"}), r"line 4, column 7 \(well B6\): 'abc' is not a number"
    )
    assert (err.line, err.column, err.well) == (4, 7, "B6")


@pytest.mark.parametrize("mark", ["OVER", "over", ">4.0", "OVRFLW", "****", "Sat"])
def test_overflow_marks_say_the_well_saturated(mark: str) -> None:
    expect_error(
        simple_grid({"D3": mark}),
        r"line 6, column 4 \(well D3\): .*saturated.*higher dilution.*not converted",
    )


def test_below_range_mark() -> None:
    expect_error(
        simple_grid({"A1": "<0.000"}), r"line 3, column 2 \(well A1\): .*below the reader's range"
    )


def test_negative_absorbance() -> None:
    expect_error(
        simple_grid({"H12": "-0.004"}),
        r"line 10, column 13 \(well H12\): absorbance -0.004 is negative",
    )


@pytest.mark.parametrize("value", ["nan", "inf", "1e999", "1_0", "0.1.2"])
def test_non_finite_or_malformed_numbers(value: str) -> None:
    expect_error(
        simple_grid({"C5": value}), r"line 5, column 6 \(well C5\): .*not a (finite )?number"
    )


def test_empty_cell() -> None:
    expect_error(simple_grid({"E2": ""}), r"line 7, column 3 \(well E2\): empty cell")


def test_decimal_comma_is_not_accepted_with_comma_separator() -> None:
    lines = simple_grid()
    lines[2] = 'A,"0,11",' + ",".join(["0.1"] * 11)
    expect_error(lines, r"line 3, column 2 \(well A1\): '0,11' is not a number")


def test_wrong_row_letter() -> None:
    lines = simple_grid()
    lines[4] = "D" + lines[4][1:]
    expect_error(lines, r"line 5, column 1: expected row C, found 'D'")


def test_row_after_H() -> None:
    lines = [*simple_grid(), "I," + ",".join(["0.1"] * 12)]
    expect_error(lines, r"line 11, column 1: row 'I' after row H")


def test_rows_without_a_header() -> None:
    lines = ["Wavelength: 492", *simple_grid()[2:], *simple_grid(label="650 nm")]
    expect_error(
        lines, r"line 2: row 'A' outside a grid: expected a header row \(an empty cell, then the "
    )


def test_header_with_wrong_columns() -> None:
    lines = simple_grid()
    lines[1] = ",1,2,3,4,5,6,7,8,9,10,12,11"
    expect_error(lines, r"line 2: header row lists columns .*expected the 12 columns 1 to 12")


def test_blank_line_inside_a_grid() -> None:
    lines = simple_grid()
    lines.insert(5, "")
    expect_error(lines, r"line 6: empty line inside the grid starting at line 2: expected row D")


def test_grid_cut_short_by_end_of_file() -> None:
    lines = simple_grid()[:6]
    expect_error(lines, r"line 7: file ends after row D of the grid starting at line 2")


def test_missing_wavelength_grid() -> None:
    expect_error(
        simple_grid(),
        r"no grid for 650 nm; the file has 492 nm \(line 2\)",
        wavelengths_nm=(492, 650),
    )


def test_unlabelled_grid_without_wavelengths() -> None:
    expect_error(simple_grid()[1:], r"grid\(s\) at line\(s\) 1 name no wavelength.*wavelengths_nm")


def test_unlabelled_grid_count_mismatch() -> None:
    lines = [*simple_grid()[1:], *simple_grid()[1:]]
    expect_error(lines, r"2 unlabelled grid\(s\) but wavelengths_nm names 1", wavelengths_nm=(492,))


def test_some_grids_labelled_some_not() -> None:
    lines = [*simple_grid(), "", *simple_grid()[1:]]
    expect_error(lines, r"line 12: grid has no wavelength line above it but other grids do")


def test_two_grids_for_one_wavelength() -> None:
    lines = [*simple_grid(), *simple_grid()]
    expect_error(lines, r"line 11: second grid for 492 nm \(the first starts at line 2\)")


def test_wavelength_line_without_grid() -> None:
    lines = [*simple_grid(), "", "Wavelength: 650"]
    expect_error(lines, r"line 12: wavelength line \(650 nm\) is not followed by a plate grid")


def test_two_wavelength_lines_before_one_grid() -> None:
    lines = ["Wavelength: 450", *simple_grid()]
    expect_error(lines, r"line 2: a second wavelength line \(492 nm\) before a grid")


def test_implausible_wavelength() -> None:
    expect_error(
        simple_grid(label="Wavelength: 49"), r"line 1: wavelength 49 nm is outside 200–1000 nm"
    )


def test_file_without_grid() -> None:
    with pytest.raises(
        PlateFormatError, match=r"plate\.csv: no plate grid found: expected a header row"
    ):
        parse_plate_csv("Plate 1\nno data\n", "plate.csv")


# --- robustness ------------------------------------------------------------------------------

_VALID = "\n".join([*simple_grid(), "", *simple_grid(label="650 nm")]) + "\n"


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.text(max_size=400))
def test_arbitrary_text_raises_only_plate_format_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "any.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            reading = read_plate_csv(path)
        except PlateFormatError as exc:
            assert str(exc).startswith(str(path))
        else:
            assert reading.wavelengths_nm


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_VALID)),
            st.integers(0, 6),
            st.text(alphabet=",;\n\t .-0123456789ABHIOVER<>nm:", max_size=4),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_exports_raise_only_plate_format_errors(edits: list[tuple[int, int, str]]) -> None:
    text = _VALID
    for pos, cut, insert in edits:
        text = text[:pos] + insert + text[pos + cut :]
    try:
        reading = parse_plate_csv(text, "mutated.csv")
    except PlateFormatError as exc:
        assert str(exc).startswith("mutated.csv")
    else:
        for nm in reading.wavelengths_nm:
            assert len(reading.od[nm]) == 96
            assert all(v >= 0 for v in reading.od[nm].values())
