"""96-well plate geometry for ELISA protocols: well names and rectangular blocks of wells."""

from __future__ import annotations

import re
from typing import Literal, TypeAlias

#: Plate rows, top to bottom, and the number of columns, left to right.
PLATE_ROWS = "ABCDEFGH"
PLATE_COLUMNS = 12

#: Fill orders of a block of wells: along each row first, or down each column first.
LAYOUT_ORDERS: tuple[str, ...] = ("row", "column")
LayoutOrder: TypeAlias = Literal["row", "column"]

_WELL = re.compile(r"([A-H])(0?[1-9]|1[0-2])")


def normalise_well(text: str) -> str | None:
    """The canonical name of a well ("A01" → "A1"), or None if text names no well of the plate."""
    match = _WELL.fullmatch(text)
    if match is None:
        return None
    return f"{match.group(1)}{int(match.group(2))}"


def well_position(well: str) -> tuple[int, int]:
    """0-based (row, column) of a canonical well name."""
    return PLATE_ROWS.index(well[0]), int(well[1:]) - 1


def well_name(row: int, column: int) -> str:
    """Canonical well name of a 0-based (row, column)."""
    return f"{PLATE_ROWS[row]}{column + 1}"


def block_wells(first: str, last: str, order: LayoutOrder) -> tuple[str, ...]:
    """Wells of the rectangle with corners first (top left) and last (bottom right), in order.

    "row" fills left to right along each row, then the next row down; "column" fills top to
    bottom down each column, then the next column to the right.
    """
    row0, col0 = well_position(first)
    row1, col1 = well_position(last)
    rows = range(row0, row1 + 1)
    columns = range(col0, col1 + 1)
    if order == "row":
        return tuple(well_name(r, c) for r in rows for c in columns)
    return tuple(well_name(r, c) for c in columns for r in rows)
