"""Small shared widgets: the SIMULATED badge, the alarm banner and the parameter table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from gui import theme

#: Parameter name suffix → unit shown in the table.
_UNITS = {"s": "s", "mm": "mm", "deg": "°", "pct": "%", "min": "min"}


class SimulatedBadge(QLabel):
    """ "SIMULATED" on a strong magenta background: shown whenever data is not measured."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("SIMULATED", parent)
        self.setObjectName("simulatedBadge")
        self.setToolTip(
            "Simulated instruments: the data comes from the virtual lab, not from blood. "
            "It is marked SIMULATED in the database and in every export."
        )
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)


class Banner(QLabel):
    """A full-width red message that stays until the situation changes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setWordWrap(True)
        self.setVisible(False)

    def show_message(self, text: str, warning: bool = False) -> None:
        """Red for trouble now; amber (``warning``) for trouble that has passed."""
        self.setText(text)
        self.setProperty("warning", warning)
        self.setStyleSheet(f"background: {theme.WARNING};" if warning else "")
        self.setVisible(True)

    def clear_message(self) -> None:
        self.setText("")
        self.setVisible(False)


def heading(text: str, parent: QWidget | None = None, sub: bool = False) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("subheading" if sub else "heading")
    return label


def format_value(value: Any) -> str:
    """Numbers as the CLI prints them; None is "n.r." (not reached)."""
    if value is None:
        return "n.r."
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def parameter_title(key: str) -> str:
    """``CT_s`` → ``CT (s)``, ``alpha_deg`` → ``alpha (°)``."""
    name, _sep, unit = key.rpartition("_")
    if name and unit in _UNITS:
        return f"{name} ({_UNITS[unit]})"
    return key


def _compact_dose(dose: str) -> str:
    """``1.0e+04 cells/mL`` → ``1.0e4/mL`` (other texts unchanged)."""
    number, _sep, unit = dose.partition(" ")
    try:
        value = float(number)
    except ValueError:
        return dose
    mantissa, _e, exponent = f"{value:.1e}".partition("e")
    short = f"{mantissa}e{int(exponent)}"
    return f"{short}/mL" if unit == "cells/mL" else f"{short} {unit}".strip()


def compact_label(label: str) -> str:
    """For narrow places: ``VL-UC-01 @ 1.0e+04 cells/mL`` → ``VL-UC-01 1.0e4/mL``."""
    lot, sep, dose = label.partition(" @ ")
    return f"{lot} {_compact_dose(dose)}" if sep else label


def column_header(channel: int, label: str) -> str:
    """``Ch 2`` over the lot and the dose, on three lines."""
    lot, sep, dose = label.partition(" @ ")
    if sep:
        return f"Ch {channel}\n{lot}\n{_compact_dose(dose)}"
    return f"Ch {channel}\n{label}"


def format_duration(seconds: float) -> str:
    """h:mm:ss or m:ss."""
    seconds = max(0, round(seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


@dataclass(frozen=True)
class ChannelParameters:
    """One column of the parameter table."""

    channel: int
    label: str
    parameters: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)


class ParameterTable(QTableWidget):
    """One row per parameter, one column per channel (fits four channels side by side)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setAlternatingRowColors(True)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        rows = self.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.horizontalHeader().setMinimumSectionSize(80)
        self.setWordWrap(True)
        self.keys: list[str] = []
        self.channels: list[int] = []

    def show_parameters(self, columns: Sequence[ChannelParameters]) -> None:
        keys: list[str] = []
        for column in columns:
            keys += [k for k in column.parameters if k not in keys]
        self.clear()
        self.keys = keys
        self.channels = [c.channel for c in columns]
        self.setRowCount(len(keys))
        self.setColumnCount(len(columns))
        self.setHorizontalHeaderLabels([column_header(c.channel, c.label) for c in columns])
        self.setVerticalHeaderLabels([parameter_title(k) for k in keys])
        bold = QFont(self.font())
        bold.setBold(True)
        for col, column in enumerate(columns):
            for row, key in enumerate(keys):
                value = column.parameters.get(key)
                item = QTableWidgetItem(format_value(value))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                note = column.notes.get(key)
                if note:
                    item.setToolTip(note)
                if value is None:
                    item.setForeground(QColor(theme.MUTED))
                if key.startswith(("CT", "R_")):
                    item.setFont(bold)
                self.setItem(row, col, item)

    def value_text(self, key: str, channel: int) -> str | None:
        """The text shown for a parameter of a channel (tests, screenshots)."""
        if key not in self.keys or channel not in self.channels:
            return None
        item = self.item(self.keys.index(key), self.channels.index(channel))
        return item.text() if item is not None else None
