"""``hemocompat gui``: the desktop app, or the headless panel where no display exists.

Registered as a ``hemocompat.commands`` entry point, so the core command line finds it
without importing the GUI package itself. Importing this module does not import Qt.
"""

from __future__ import annotations

import sys

import click

#: The virtual-lab lot the headless panel runs when no window can be shown.
HEADLESS_LOT = "VL-UC-01"


@click.command("gui")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@click.option("--simulate", is_flag=True, help="Start with the built-in simulated instruments.")
@click.option(
    "--config-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Keep station, settings and protocols here instead.",
)
@click.option("--smoke", is_flag=True, help="Open the window, report the start-up time, quit.")
@click.option(
    "--headless-lot",
    default=HEADLESS_LOT,
    show_default=True,
    help="Lot of the simulated panel run instead when no display is available.",
)
def gui_command(
    db: str | None, simulate: bool, config_dir: str | None, smoke: bool, headless_lot: str
) -> None:
    """Open the desktop app (with no display: say so and run the headless panel)."""
    from gui.app import display_problem, main

    problem = display_problem()
    if problem is None:
        argv = ["--db", db] if db else []
        argv += ["--config-dir", config_dir] if config_dir else []
        argv += ["--simulate"] if simulate else []
        argv += ["--smoke"] if smoke else []
        code = main(argv)
        if code:
            sys.exit(code)
        return
    click.echo(f"hemocompat gui: {problem}", err=True)
    click.echo(
        f"hemocompat gui: running the headless simulated panel for {headless_lot} instead.",
        err=True,
    )
    from instrument.cli import main as cli_main

    args = ["panel", headless_lot, "--simulate", "--speed", "max"]
    args += ["--db", db] if db else []
    code = cli_main(args)
    if code:
        sys.exit(code)
