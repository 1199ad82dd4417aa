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
from collections.abc import Callable, Sequence
from pathlib import Path

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


def take_screenshots(out_dir: Path) -> list[Path]:
    """Run a simulated NATEM dose series in the real window and save a PNG of every view."""
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    app.setStyle("Fusion")

    from gui.main_window import MainWindow
    from gui.paths import AppPaths
    from instrument.storage import Store

    out_dir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="hemocompat-shots-") as tmp:
        store = Store(Path(tmp) / "runs.db")
        window = MainWindow(
            store=store,
            paths=AppPaths.under(Path(tmp)),
            simulated=True,
            confirm=lambda _title, _text: True,
        )
        window.resize(*WINDOW_SIZE)
        window.show()

        def save(name: str) -> None:
            app.processEvents()
            path = out_dir / name
            window.grab().save(str(path))
            saved.append(path)

        try:
            instruments = window.instruments_view
            window.show_view("Instruments")
            instruments.connect_selected()
            _wait(app, lambda: "tem" in instruments.connections, 30, "the simulated TEM-4")
            _wait(app, lambda: not window.tasks.busy("scan-ports"), 10, "the port scan")
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
        finally:
            window.close()
            window.shutdown()
            store.close()
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="docs/screenshots", type=Path)
    args = parser.parse_args(list(argv) if argv is not None else None)
    for path in take_screenshots(args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
