"""``hemocompat gui``: start the desktop app (returns non-zero when there is no display)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: Qt platforms that need no display server (rendering into memory or a framebuffer).
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "minimalegl")

EXIT_NO_DISPLAY = 3
EXIT_NO_QT = 4


def display_problem(
    environ: dict[str, str] | None = None, platform: str | None = None
) -> str | None:
    """Why a window cannot be shown here, or None when it can (checked before Qt starts)."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    qpa = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if qpa in HEADLESS_PLATFORMS:
        return None
    needs_server = platform.startswith("linux") or "bsd" in platform
    if needs_server and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return (
            "no display available: neither DISPLAY nor WAYLAND_DISPLAY is set (a server, "
            "an SSH session without X forwarding, or a CI job). Run `hemocompat demo` for "
            "the headless demo, or start the app from a desktop session."
        )
    return None


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hemocompat gui", description="The desktop app.")
    parser.add_argument("--db", default=None, help="Database file or SQLAlchemy URL.")
    parser.add_argument(
        "--simulate", action="store_true", help="Start with the built-in simulated instruments."
    )
    parser.add_argument(
        "--config-dir", default=None, help="Keep station, settings and protocols here instead."
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="Open the window, print 'window shown <seconds>' and quit (start-up check).",
    )
    return parser.parse_args(list(argv) if argv is not None else None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app until its window closes; non-zero without a display or without PySide6."""
    args = _parse(argv)
    problem = display_problem()
    if problem:
        print(f"hemocompat gui: {problem}", file=sys.stderr)
        return EXIT_NO_DISPLAY
    try:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
    except ImportError as exc:
        print(
            f"hemocompat gui: the desktop app needs PySide6 ({exc}); install it with "
            "`pip install 'hemocompat[gui]'`, or run `hemocompat demo` instead.",
            file=sys.stderr,
        )
        return EXIT_NO_QT

    started = time.perf_counter()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    from gui.qt_compat import guard_singleton_refcounts

    guard_singleton_refcounts()
    app.setApplicationName("hemocompat")
    app.setStyle("Fusion")
    if app.primaryScreen() is None:
        print("hemocompat gui: no screen is available to show the window.", file=sys.stderr)
        return EXIT_NO_DISPLAY

    from gui.main_window import MainWindow
    from gui.models.session import AppUser, log_out, login_required
    from gui.paths import AppPaths
    from instrument.errors import HemocompatError

    try:
        needs_login = login_required(args.db)
    except HemocompatError as exc:
        print(f"hemocompat gui: {exc}", file=sys.stderr)
        return 2
    user: AppUser | None = None
    if needs_login:
        from gui.login import LoginDialog

        dialog = LoginDialog(args.db)
        if not dialog.exec() or dialog.user is None:
            return 1
        user = dialog.user

    paths = AppPaths.under(Path(args.config_dir)) if args.config_dir else None
    window = MainWindow(
        db=args.db, paths=paths, simulated=True if args.simulate else None, user=user
    )
    window.show()
    if args.smoke:

        def shown() -> None:
            print(f"window shown {time.perf_counter() - started:.3f}", flush=True)
            window.close()

        QTimer.singleShot(0, shown)
    code = app.exec()
    window.shutdown()
    if user is not None:
        log_out(args.db)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
