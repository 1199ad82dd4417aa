"""Operator prompts of a run: each open one with its due time and a big Done button.

A prompt (``instrument.runbase.Prompt``) is due at a protocol time; it is *late* once that
time has passed (amber) and *overdue* once ``overdue_after_s`` more have passed (red, as the
run engine flags it). Prompts without a sample tube (fill and mount the loops) hold the run
until they are done. Done asks, through :attr:`PromptPanel.acknowledge_requested`, whoever
owns the run to acknowledge the prompt (on a worker thread); :meth:`PromptPanel.mark_done`
then moves it to the done list with the time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.widgets.common import format_duration


@dataclass(frozen=True)
class Urgency:
    """How pressing a prompt is at a protocol time: state and the words for it."""

    state: str  # "waiting" (holds the run), "due_in", "due", "late", "overdue"
    text: str


def prompt_urgency(prompt: Any, now_s: float) -> Urgency:
    """The state of ``prompt`` at protocol time ``now_s`` (seconds since rotation started)."""
    if getattr(prompt, "tube_id", None) is None:
        return Urgency("waiting", "The run waits for this step")
    due = float(prompt.due_t_s)
    late = now_s - due
    limit = float(prompt.overdue_after_s)
    if late < -0.5:
        return Urgency("due_in", f"Due in {format_duration(-late)} (at {format_duration(due)})")
    if late < 1.0:
        return Urgency("due", f"Due now (at {format_duration(due)})")
    if late <= limit:
        return Urgency(
            "late",
            f"Late by {format_duration(late)} · overdue in {format_duration(limit - late)}",
        )
    return Urgency("overdue", f"OVERDUE by {format_duration(late)}")


_CARD_STYLES = {
    "waiting": ("#e8f0fb", "#111111", theme.ACCENT),
    "due_in": ("#f4f6f8", "#111111", theme.MUTED),
    "due": ("#e8f0fb", "#111111", theme.ACCENT),
    "late": ("#fde7bd", "#3a2600", theme.WARNING),
    "overdue": (theme.DANGER, "#ffffff", "#7a1010"),
}


class PromptCard(QFrame):
    """One open prompt: what to do, when, and Done."""

    def __init__(self, prompt: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt = prompt
        self.state = ""
        self.setObjectName("promptCard")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 8, 8, 8)
        layout.setSpacing(10)
        text = QVBoxLayout()
        text.setSpacing(2)
        self.message_label = QLabel(str(prompt.message))
        self.message_label.setWordWrap(True)
        self.message_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        # Wrapped text: never wider than the column (the Done button must stay in view).
        self.message_label.setMinimumWidth(120)
        text.addWidget(self.message_label)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setMinimumWidth(120)
        font = self.status_label.font()
        font.setBold(True)
        self.status_label.setFont(font)
        text.addWidget(self.status_label)
        layout.addLayout(text, 1)
        self.done_button = QPushButton("Done")
        self.done_button.setObjectName("doneButton")
        self.done_button.setMinimumSize(104, 56)
        self.done_button.setToolTip("Confirm that this step is done (recorded with the time)")
        layout.addWidget(self.done_button, 0, Qt.AlignmentFlag.AlignVCenter)

    def show_time(self, now_s: float) -> None:
        urgency = prompt_urgency(self.prompt, now_s)
        self.status_label.setText(urgency.text)
        if urgency.state != self.state:
            self.state = urgency.state
            background, colour, border = _CARD_STYLES[urgency.state]
            self.setStyleSheet(
                f"QFrame#promptCard {{ background: {background}; border: 2px solid {border};"
                f" border-radius: 6px; }}"
                f" QFrame#promptCard QLabel {{ color: {colour}; background: transparent; }}"
                f" QPushButton#doneButton {{ background: {theme.OK}; color: white;"
                f" font-weight: 700; font-size: {theme.BASE_POINT_SIZE + 3}pt;"
                f" border-radius: 4px; }}"
                f" QPushButton#doneButton:disabled {{ background: #9fb7a0; }}"
            )

    def set_saving(self) -> None:
        self.done_button.setEnabled(False)
        self.done_button.setText("Saving…")


class PromptPanel(QWidget):
    """Open prompts (newest last) above the list of prompts done; all on the GUI thread."""

    #: The operator clicked Done on the prompt with this id.
    acknowledge_requested = Signal(int)
    #: The number of open prompts changed (to this).
    open_count_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cards: dict[int, PromptCard] = {}
        #: Prompt id → (its state when it closed, the done-list text) of closed prompts.
        self.closed: dict[int, tuple[str, str]] = {}
        self._now_s = 0.0
        self._open_count = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        # Hosted in a tab that names the count ("Prompts (3 open)"); no heading of its own.
        splitter = QSplitter(Qt.Orientation.Vertical)
        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        holder = QWidget()
        self._cards_layout = QVBoxLayout(holder)
        self._cards_layout.setContentsMargins(2, 2, 2, 2)
        self._cards_layout.setSpacing(6)
        self.empty_label = QLabel("No open prompts.")
        self.empty_label.setObjectName("muted")
        self._cards_layout.addWidget(self.empty_label)
        self._cards_layout.addStretch(1)
        self._scroll.setWidget(holder)
        splitter.addWidget(self._scroll)
        done_box = QWidget()
        done_layout = QVBoxLayout(done_box)
        done_layout.setContentsMargins(0, 0, 0, 0)
        done_layout.setSpacing(2)
        self.done_title = QLabel("Done")
        self.done_title.setObjectName("subheading")
        done_layout.addWidget(self.done_title)
        self.done_list = QListWidget()
        self.done_list.setWordWrap(True)
        done_layout.addWidget(self.done_list)
        splitter.addWidget(done_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([440, 130])
        self._scroll.setMinimumHeight(120)
        self.done_list.setMinimumHeight(70)
        layout.addWidget(splitter, 1)
        self._update_titles()

    # -- run -------------------------------------------------------------------------------------
    def reset(self) -> None:
        for card in self.cards.values():
            self._cards_layout.removeWidget(card)
            card.setParent(None)
            card.deleteLater()
        self.cards.clear()
        self.closed.clear()
        self.done_list.clear()
        self._now_s = 0.0
        self._update_titles()

    def add_prompt(self, prompt: Any) -> None:
        if prompt.id in self.cards or prompt.id in self.closed:
            return
        card = PromptCard(prompt)
        card.done_button.clicked.connect(lambda _=False, pid=prompt.id: self._done_clicked(pid))
        card.show_time(self._now_s)
        self.cards[prompt.id] = card
        self._cards_layout.insertWidget(self._cards_layout.count() - 1, card)
        self._update_titles()

    @property
    def now_s(self) -> float:
        """The protocol time the countdowns show (s)."""
        return self._now_s

    def show_time(self, now_s: float) -> None:
        """Protocol time now: countdowns and colours of the open prompts."""
        self._now_s = now_s
        for card in self.cards.values():
            card.show_time(now_s)

    def _done_clicked(self, prompt_id: int) -> None:
        card = self.cards.get(prompt_id)
        if card is None or not card.done_button.isEnabled():
            return
        card.set_saving()
        self.acknowledge_requested.emit(prompt_id)

    def mark_done(self, prompt_id: int, run_t_s: float | None, by: str) -> None:
        """The run recorded the prompt as done: move it to the done list."""
        card = self.cards.pop(prompt_id, None)
        if card is None:
            return
        prompt = card.prompt
        stamp = time.strftime("%H:%M:%S")
        when = ""
        if run_t_s is not None and prompt.tube_id is not None:
            late = run_t_s - float(prompt.due_t_s)
            lateness = "on time" if late < 1.0 else f"{format_duration(late)} late"
            when = f" at {format_duration(run_t_s)} ({lateness})"
        text = f"✓ {stamp}{when}: {prompt.message} — {by}"
        self._close(card, text, theme.OK if card.state != "overdue" else theme.WARNING)

    def mark_failed(self, prompt_id: int, reason: str) -> None:
        """The prompt could not be recorded as done (the run had ended or closed it)."""
        card = self.cards.pop(prompt_id, None)
        if card is None:
            return
        self._close(card, f"✗ not recorded: {card.prompt.message} ({reason})", theme.DANGER)

    def close_open(self, reason: str) -> None:
        """The run ended: prompts still open were never acknowledged (those being recorded
        wait for their answer)."""
        for prompt_id, card in list(self.cards.items()):
            if not card.done_button.isEnabled():
                continue
            del self.cards[prompt_id]
            self._close(card, f"✗ {reason}: {card.prompt.message}", theme.DANGER)

    def _close(self, card: PromptCard, text: str, colour: str) -> None:
        self.closed[card.prompt.id] = (card.state, text)
        item = QListWidgetItem(text)
        item.setForeground(QColor(colour))
        self.done_list.addItem(item)
        self.done_list.scrollToBottom()
        self._cards_layout.removeWidget(card)
        card.setParent(None)
        card.deleteLater()
        self._update_titles()

    def _update_titles(self) -> None:
        open_count = len(self.cards)
        self.empty_label.setVisible(open_count == 0)
        self.done_title.setText(f"Done ({self.done_list.count()})")
        if open_count != self._open_count:
            self._open_count = open_count
            self.open_count_changed.emit(open_count)

    # -- tests, screenshots ----------------------------------------------------------------------
    def open_ids(self) -> list[int]:
        return list(self.cards)

    def done_texts(self) -> list[str]:
        return [self.done_list.item(i).text() for i in range(self.done_list.count())]
