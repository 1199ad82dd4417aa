"""A YAML editor for protocol files: highlighting, line numbers, marked error lines."""

from __future__ import annotations

import re

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

from gui import theme

ERROR_LINE_BG = QColor("#fde2e2")
ERROR_GUTTER_BG = QColor(theme.DANGER)
_KEY = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][\w.-]*)\s*(?=:(?:\s|$))")


def _format(colour: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(colour))
    if bold:
        fmt.setFontWeight(QFont.Weight.Bold)
    fmt.setFontItalic(italic)
    return fmt


class YamlHighlighter(QSyntaxHighlighter):
    """Keys, scalars, numbers, booleans, anchors and comments of YAML, line by line."""

    _RULES: tuple[tuple[re.Pattern[str], QTextCharFormat, int], ...] = (
        (_KEY, _format("#1e5aa8", True), 1),
        (
            re.compile(r"(?<=:\s)\s*([-+]?(?:\d[\d_]*\.?\d*(?:[eE][-+]?\d+)?|\.\d+))\s*(?=#|$)"),
            _format("#8b4a00"),
            1,
        ),
        (re.compile(r"^\s*-\s+([-+]?\d[\d.eE+-]*)\s*(?=#|$)"), _format("#8b4a00"), 1),
        (
            re.compile(r"(?<![\w-])(true|false|yes|no|null|~)(?![\w-])", re.IGNORECASE),
            _format("#7b1fa2", True),
            1,
        ),
        (re.compile(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*')"), _format("#2e7d32"), 1),
        (re.compile(r"([&*][\w-]+)"), _format("#7b1fa2"), 1),
        (re.compile(r"^\s*(-)(?=\s)"), _format("#555", True), 1),
        (re.compile(r"^(---|\.\.\.)\s*$"), _format("#555", True), 1),
        (re.compile(r"(?:^|\s)(#.*)$"), _format("#6a737d", italic=True), 1),
    )

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt override)
        for pattern, fmt, group in self._RULES:
            for match in pattern.finditer(text):
                start, end = match.span(group)
                if end > start:
                    self.setFormat(start, end - start, fmt)


class _Gutter(QWidget):
    def __init__(self, editor: CodeEditor) -> None:
        super().__init__(editor)
        self._editor = editor

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(self._editor.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        self._editor.paint_gutter(event)


class CodeEditor(QPlainTextEdit):
    """A plain-text editor with line numbers; lines with issues get a red gutter and tint."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFont(theme.monospace_font())
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabChangesFocus(False)
        self.highlighter = YamlHighlighter(self.document())
        self._issue_lines: dict[int, str] = {}
        self._gutter = _Gutter(self)
        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._update_gutter)
        self._update_gutter_width()

    # -- issues --------------------------------------------------------------------------------
    @property
    def issue_lines(self) -> dict[int, str]:
        return dict(self._issue_lines)

    def set_issue_lines(self, lines: dict[int, str]) -> None:
        """Mark these 1-based lines (line → message); an empty dict clears the marks."""
        self._issue_lines = dict(lines)
        selections = []
        for line in sorted(lines):
            block = self.document().findBlockByNumber(line - 1)
            if not block.isValid():
                continue
            sel = QTextEdit.ExtraSelection()
            sel.format.setBackground(ERROR_LINE_BG)
            sel.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            sel.format.setToolTip(lines[line])
            sel.cursor = QTextCursor(block)
            selections.append(sel)
        self.setExtraSelections(selections)
        self._gutter.update()

    def jump_to(self, line: int, column: int) -> None:
        """Put the cursor at a 1-based line and column and show it."""
        block = self.document().findBlockByNumber(max(line, 1) - 1)
        if not block.isValid():
            block = self.document().lastBlock()
        cursor = QTextCursor(block)
        offset = min(max(column, 1) - 1, max(block.length() - 1, 0))
        cursor.movePosition(QTextCursor.MoveOperation.Right, n=offset)
        self.setTextCursor(cursor)
        self.centerCursor()
        self.setFocus(Qt.FocusReason.OtherFocusReason)

    # -- gutter --------------------------------------------------------------------------------
    def gutter_width(self) -> int:
        digits = max(3, len(str(max(1, self.blockCount()))))
        return 14 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_gutter_width(self, _count: int = 0) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_gutter_width()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        cr = self.contentsRect()
        self._gutter.setGeometry(QRect(cr.left(), cr.top(), self.gutter_width(), cr.height()))

    def paint_gutter(self, event: QPaintEvent) -> None:
        painter = QPainter(self._gutter)
        painter.fillRect(event.rect(), QColor("#eef1f4"))
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        width = self._gutter.width()
        height = self.fontMetrics().height()
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                line = number + 1
                if line in self._issue_lines:
                    painter.fillRect(0, top, width, bottom - top, ERROR_GUTTER_BG)
                    painter.setPen(QColor("white"))
                else:
                    painter.setPen(QColor(theme.MUTED))
                painter.drawText(0, top, width - 6, height, Qt.AlignmentFlag.AlignRight, str(line))
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()
