"""Fonts and colours: large, high-contrast, readable at arm's length from the bench."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QWidget

BASE_POINT_SIZE = 13
HEADING_POINT_SIZE = 18
PLOT_TICK_POINT_SIZE = 11
PLOT_LABEL_POINT_SIZE = "12pt"

SIMULATED_BG = "#b0007a"  # strong magenta: never mistaken for a measurement
DANGER = "#c62828"
WARNING = "#e08a00"
OK = "#2e7d32"
MUTED = "#5f6b76"
ACCENT = "#1e5aa8"

#: One colour per channel (vehicle first), distinguishable for common colour blindness.
CHANNEL_COLOURS = (
    "#3b3b98",
    "#009e73",
    "#e69f00",
    "#d55e00",
    "#56b4e9",
    "#cc79a7",
    "#0072b2",
    "#999933",
    "#882255",
    "#44aa99",
    "#117733",
    "#aa4499",
)

EVENT_COLOURS = {
    "ct": OK,
    "link": WARNING,
    "warning": WARNING,
    "device": MUTED,
    "connected": ACCENT,
    "status": ACCENT,
    "prompt": ACCENT,
    "error": DANGER,
}

STYLE_SHEET = f"""
QWidget {{ font-size: {BASE_POINT_SIZE}pt; }}
QLabel#heading {{ font-size: {HEADING_POINT_SIZE}pt; font-weight: 600; }}
QLabel#subheading {{ font-size: {BASE_POINT_SIZE + 1}pt; font-weight: 600; color: #222; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#simulatedBadge {{
    background: {SIMULATED_BG}; color: white; font-weight: 700;
    padding: 3px 12px; border-radius: 4px; letter-spacing: 1px;
}}
QLabel#banner {{
    background: {DANGER}; color: white; font-weight: 600; padding: 8px 12px;
    border-radius: 4px;
}}
QLabel#reason {{ color: {DANGER}; }}
QListWidget#sidebar {{
    background: #20303f; color: #f0f0f0; border: none; font-size: {BASE_POINT_SIZE + 2}pt;
    outline: none;
}}
QListWidget#sidebar::item {{ padding: 14px 16px; }}
QListWidget#sidebar::item:selected {{ background: {ACCENT}; color: white; }}
QPushButton {{ padding: 6px 14px; }}
QCheckBox::indicator {{ width: 22px; height: 22px; }}
QPushButton#startButton {{
    background: {OK}; color: white; font-weight: 700; padding: 8px 24px;
    font-size: {BASE_POINT_SIZE + 2}pt;
}}
QPushButton#startButton:disabled {{ background: #9fb7a0; color: #eef2ee; }}
QPushButton#abortButton {{
    background: {DANGER}; color: white; font-weight: 700; padding: 8px 24px;
    font-size: {BASE_POINT_SIZE + 2}pt;
}}
QPushButton#abortButton:disabled {{ background: #d8a7a7; color: #f6eeee; }}
QTableWidget, QTreeWidget, QListWidget {{ gridline-color: #d0d0d0; }}
QHeaderView::section {{ padding: 4px 6px; font-weight: 600; }}
QStatusBar QLabel {{ padding: 0 8px; }}
"""


def apply_theme(window: QWidget) -> None:
    """Large fonts and the app's style sheet, for a window and everything inside it."""
    font = QFont(window.font())
    font.setPointSize(BASE_POINT_SIZE)
    window.setFont(font)
    window.setStyleSheet(STYLE_SHEET)


def monospace_font(point_size: int = BASE_POINT_SIZE) -> QFont:
    font = QFont("DejaVu Sans Mono")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setFixedPitch(True)
    font.setPointSize(point_size)
    return font


def channel_colour(index: int) -> QColor:
    return QColor(CHANNEL_COLOURS[index % len(CHANNEL_COLOURS)])
