"""Screenshots of every main view during and after a simulated run, for docs/screenshots/.

    QT_QPA_PLATFORM=offscreen python -m gui.screenshots docs/screenshots

Everything runs in a temporary folder (database, station, settings) with the built-in
simulated TEM-4; the window is rendered with ``QWidget.grab()``, so no display is needed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

WINDOW_SIZE = (1600, 1000)
PROTOCOL = "natem-msc-dose-series.yaml"
#: Simulation speed of the pictured run: fast, yet slow enough to catch it mid-run.
SPEED = "300"
#: Fraction of the measuring time at which run.png is taken.
MID_RUN = 0.55


def _wait(app: object, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.005)
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")


@dataclass
class _Shots:
    """The app and its window on a temporary database; ``save(name)`` grabs the window."""

    app: Any
    window: Any
    out_dir: Path
    saved: list[Path] = field(default_factory=list)

    def save(self, name: str) -> None:
        self.app.processEvents()
        path = self.out_dir / name
        self.window.grab().save(str(path))
        self.saved.append(path)


@contextmanager
def _shooting(
    out_dir: Path, prefix: str, prepare: Callable[[Any], None] | None = None
) -> Iterator[_Shots]:
    """A simulated-instruments main window in a temporary folder; ``prepare(store)`` fills the
    database before the window opens."""
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    app.setStyle("Fusion")

    from gui.main_window import MainWindow
    from gui.paths import AppPaths
    from instrument.storage import Store

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        store = Store(Path(tmp) / "runs.db")
        if prepare is not None:
            prepare(store)
        window = MainWindow(
            store=store,
            paths=AppPaths.under(Path(tmp)),
            simulated=True,
            confirm=lambda _title, _text: True,
        )
        window.resize(*WINDOW_SIZE)
        window.show()
        try:
            yield _Shots(app, window, out_dir)
        finally:
            window.close()
            window.shutdown()
            store.close()


def take_screenshots(out_dir: Path) -> list[Path]:
    """Run a simulated NATEM dose series in the real window and save a PNG of every view."""
    with _shooting(out_dir, "hemocompat-shots-") as shots:
        app, window, save = shots.app, shots.window, shots.save
        instruments = window.instruments_view
        window.show_view("Instruments")
        instruments.connect_selected()
        _wait(app, lambda: "tem" in instruments.connections, 30, "the simulated TEM-4")
        _wait(app, lambda: not window.tasks.busy("scan-ports"), 10, "the port scan")
        instruments.find_visa_resources()
        _wait(app, lambda: not window.tasks.busy("scan-visa"), 15, "the VISA discovery")
        save("instruments.png")
        window.instruments_view.disconnect_role("tem")
        _wait(app, lambda: not window.tasks.busy("disconnect-tem"), 10, "disconnecting")

        run = window.run_view
        run.select_protocol(PROTOCOL)
        window.show_view("Protocols")
        save("protocols.png")
        editor = window.protocols_view.editor
        text = editor.toPlainText()
        editor.setPlainText(
            text.replace("reagent: NATEM ", "reagent: NATEN ", 1).replace(
                "dose_cells_per_ml: 3.0e4", "dose_cells_per_ml: -3.0e4", 1
            )
        )
        window.protocols_view.validate_now()
        window.protocols_view.editor.jump_to(20, 10)
        save("protocols-errors.png")
        window.protocols_view.revert()

        window.show_view("Run")
        run.speed_combo.setCurrentText(SPEED)
        if not run.start_run():
            raise RuntimeError(f"the run did not start: {run.reason_label.text()}")
        _wait(
            app,
            lambda: run.progress_bar.value() >= MID_RUN * 1000 or not run.running,
            120,
            "the middle of the run",
        )
        save("run.png")
        _wait(app, lambda: not run.running, 120, "the end of the run")
        save("run-finished.png")
        results = window.results_view
        window.show_view("Results")
        _wait(app, lambda: results.shown is not None, 30, "the stored run")
        save("results.png")
    return shots.saved


#: Virtual-lab lots whose whole panel is run for the Lots screenshots (one per tissue source).
LOTS = ("VL-BM-01", "VL-UC-01", "VL-PL-01", "VL-AT-01")
#: The lot shown in lots.png.
SHOWN_LOT = "VL-UC-01"


def _run_lot_panels(store: Any) -> None:
    import math

    from instrument.panel import run_panel

    for lot_id in LOTS:
        run_panel(lot_id, store, simulate=True, speed=math.inf, say=lambda _text: None)


def take_lots_screenshots(out_dir: Path) -> list[Path]:
    """Run the simulated panel of every virtual-lab lot through the core (as ``hemocompat
    panel LOT --simulate --speed max``), then save the Lots view and its comparison tab."""
    with _shooting(out_dir, "hemocompat-lots-", _run_lot_panels) as shots:
        app, window, save = shots.app, shots.window, shots.save
        view = window.lots_view
        window.show_view("Lots")
        _wait(app, lambda: len(view.entries) == len(LOTS), 30, "the lot registry")
        view.select_lot(SHOWN_LOT)
        _wait(
            app,
            lambda: view.detail is not None and view.detail.lot_id == SHOWN_LOT,
            30,
            "the lot",
        )
        _wait(app, lambda: not window.tasks.busy(), 30, "the workers")
        save("lots.png")
        view.tabs.setCurrentIndex(view.tabs.indexOf(view.comparison_tab))
        save("lots-compare.png")
    return shots.saved


#: The loop run pictured: this lot and donor clot the lot loops within the hour.
LOOP_PROTOCOL = "chandler-loop-60min.yaml"
LOOP_LOT, LOOP_DONOR = "VL-AT-01", "VD-HYPER-01"
LOOP_SPEED = "300"
#: Protocol time (s) of run-loop.png: the 15-min draws are late, two 5-min draws overdue.
LOOP_SHOT_AT_S = 16.5 * 60
#: Draws left unanswered until the picture is taken (loop, time point in min).
LOOP_LEFT_OPEN = {(1, 5.0), (2, 5.0)}


def take_loop_screenshots(out_dir: Path) -> list[Path]:
    """A simulated Chandler loop run in the window: prompts answered with Done (a few left
    open for the picture), mid-run with open prompts, finished, and the stored run."""
    import re

    with _shooting(out_dir, "hemocompat-loop-") as shots:
        app, window, save = shots.app, shots.window, shots.save

        def wanted_open(message: str) -> bool:
            match = re.search(r"loop (\d+) .*\(([0-9.]+) min sample\)", message)
            if match is None:
                return False
            return (int(match.group(1)), float(match.group(2))) in LOOP_LEFT_OPEN

        run = window.run_view
        window.show_view("Run")
        if not run.select_protocol(LOOP_PROTOCOL):
            raise RuntimeError(f"{LOOP_PROTOCOL} is not in the protocol library")
        run.lot_edit.setText(LOOP_LOT)
        run.donor_edit.setText(LOOP_DONOR)
        run.speed_combo.setCurrentText(LOOP_SPEED)
        if not run.start_run():
            raise RuntimeError(f"the run did not start: {run.reason_label.text()}")
        prompts = run.live_panel.prompts
        pictured = False

        def answer(everything: bool) -> None:
            for card in list(prompts.cards.values()):
                if not card.done_button.isEnabled():
                    continue
                message = card.prompt.message
                due_s = float(card.prompt.due_t_s)
                if not everything and (wanted_open(message) or due_s >= 15 * 60):
                    continue
                card.done_button.click()

        def mid_run() -> bool:
            answer(everything=False)
            return prompts.now_s >= LOOP_SHOT_AT_S or not run.running

        _wait(app, mid_run, 120, "the middle of the loop run")
        save("run-loop.png")
        pictured = True

        def finished() -> bool:
            answer(everything=pictured)
            return not run.running

        _wait(app, finished, 180, "the end of the loop run")
        _wait(app, lambda: not window.tasks.busy("run"), 30, "the run's worker")
        save("run-loop-finished.png")
        results = window.results_view
        window.show_view("Results")
        _wait(
            app,
            lambda: results.shown is not None and results.shown.run["assay"] == "chandler-loop",
            30,
            "the stored loop run",
        )
        save("results-loop.png")
    return shots.saved


def take_login_screenshot(out_dir: Path) -> list[Path]:
    """The login dialog on a database with users, after a wrong password."""
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    app.setStyle("Fusion")

    from gui import theme
    from gui.login import LoginDialog
    from instrument.compliance.audit import Actor, acting_as
    from instrument.compliance.users import add_user, init_admin
    from instrument.storage import Store

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "login.png"
    with tempfile.TemporaryDirectory(prefix="hemocompat-login-") as tmp:
        os.environ["HEMOCOMPAT_CONFIG_DIR"] = str(Path(tmp) / "config")
        db = Path(tmp) / "lab.db"
        store = Store(db)
        with acting_as(Actor("setup", "open-bench")):
            init_admin(
                store, "rroot", full_name="Rita Root", password="a-long-secret-1", created_by="s"
            )
        with acting_as(Actor("rroot", "admin")):
            add_user(
                store,
                "tom",
                full_name="Tom Tech",
                roles=["technician"],
                password="blue-ocean-17",
                created_by="rroot",
            )
        store.close()
        dialog = LoginDialog(db)
        theme.apply_theme(dialog)
        dialog.show()
        dialog.username_edit.setText("tom")
        dialog.password_edit.setText("not-my-password")
        dialog.try_login()
        _wait(app, dialog.login_button.isEnabled, 15, "the password check")
        app.processEvents()
        dialog.grab().save(str(path))
        dialog.reject()
        os.environ.pop("HEMOCOMPAT_CONFIG_DIR", None)
    return [path]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="docs/screenshots", type=Path)
    args = parser.parse_args(list(argv) if argv is not None else None)
    for path in take_screenshots(args.out_dir):
        print(f"wrote {path}")
    for path in take_lots_screenshots(args.out_dir):
        print(f"wrote {path}")
    for path in take_loop_screenshots(args.out_dir):
        print(f"wrote {path}")
    for path in take_login_screenshot(args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
