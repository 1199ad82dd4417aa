"""The ``hemocompat`` command: everything the desktop app can do, from a script."""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from instrument.compliance.access import requires
from instrument.compliance.commands import register as register_compliance_commands
from instrument.compliance.users import METHOD_DEVELOPER, TECHNICIAN
from instrument.errors import HemocompatError
from protocols.model import LoopProtocol, TemProtocol

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    from drivers.tem4 import Tem4Error
    from drivers.transport import TransportError
    from protocols import ProtocolValidationError

    return (HemocompatError, ProtocolValidationError, TransportError, Tem4Error)


def parse_speed(text: str) -> float:
    """``--speed``: a factor > 0, or ``max`` for as fast as the instruments deliver."""
    if text.strip().lower() in ("max", "inf"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a number; use e.g. 300 or max") from None
    if not value > 0 or not math.isfinite(value):
        raise click.BadParameter(f"{text!r} must be a number > 0, or max")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for every exchange).")
def cli(verbose: int) -> None:
    """hemocompat — hemocompatibility testing of cell-therapy products."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- run ------------------------------------------------------------------------------------
@cli.command()
@click.argument("protocol_file", type=click.Path(dir_okay=False))
@click.option("--station", "station_file", type=click.Path(dir_okay=False), help="Station file.")
@click.option("--simulate", is_flag=True, help="Use the built-in simulated instruments.")
@click.option("--speed", default="1", help="Simulation speed factor, or max.  [default: 1]")
@click.option("--seed", default=0, show_default=True, type=int, help="Simulation random seed.")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@click.option("--operator", default=None, help="Who runs the assay.  [default: login name]")
@click.option("--lot", default=None, help="MSC lot under test (overrides the protocol default).")
@click.option("--donor", default=None, help="Blood donor (overrides the protocol default).")
@click.option("--faults", default=None, help="Simulator fault spec, e.g. drop=0.01,corrupt=0.01")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write results here.")
@click.option("--dry-run", is_flag=True, help="List the steps and expected duration only.")
@click.option(
    "--auto-ack",
    is_flag=True,
    help="Simulation: a technician who does every step on time (draws recorded at due time).",
)
@click.option(
    "--bath-excursion",
    default=None,
    metavar="AT_S:DURATION_S:DELTA_C",
    help="Simulated bath fault: offset the bath temperature (loop runs).",
)
@requires(TECHNICIAN)
def run(
    protocol_file: str,
    station_file: str | None,
    simulate: bool,
    speed: str,
    seed: int,
    db: str | None,
    operator: str | None,
    lot: str | None,
    donor: str | None,
    faults: str | None,
    json_file: str | None,
    dry_run: bool,
    auto_ack: bool,
    bath_excursion: str | None,
) -> None:
    """Run PROTOCOL_FILE on the station's instruments (or simulated ones)."""
    from protocols import load_protocol

    protocol = _require_runnable(load_protocol(protocol_file))
    if dry_run:
        try:
            resolved = protocol.resolved_channels(lot=lot, donor=donor)
        except ValueError as exc:
            raise HemocompatError(f"{protocol.source}: {exc}") from None
        _print_dry_run(protocol, resolved)
        return
    outcome = execute_run(
        protocol,
        station_file=station_file,
        simulate=simulate,
        speed=parse_speed(speed),
        seed=seed,
        db=db,
        operator=operator,
        lot=lot,
        donor=donor,
        faults=faults,
        auto_ack=auto_ack,
        bath_excursion=_parse_excursion(bath_excursion, simulate),
    )
    _print_outcome(outcome)
    if json_file:
        Path(json_file).write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
        console.print(f"results written to {json_file}")
    if outcome.status != "completed":
        raise SystemExit(1)


def _require_runnable(protocol: Any) -> TemProtocol | LoopProtocol:
    if not isinstance(protocol, TemProtocol | LoopProtocol):
        raise HemocompatError(
            f"{protocol.source}: assay '{protocol.assay}' is not run with `hemocompat run`; "
            "an ELISA plate is read with `hemocompat elisa run` or `hemocompat elisa import`"
        )
    return protocol


def _parse_excursion(text: str | None, simulate: bool) -> tuple[float, float, float] | None:
    if text is None:
        return None
    if not simulate:
        raise HemocompatError("--bath-excursion only applies to a simulated bath (--simulate)")
    try:
        at_s, duration_s, delta_c = (float(x) for x in text.split(":"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected AT_S:DURATION_S:DELTA_C, e.g. 900:300:1.5"
        ) from None
    return at_s, duration_s, delta_c


def execute_run(
    protocol: Any,
    *,
    station_file: str | None,
    simulate: bool,
    speed: float,
    seed: int,
    db: str | None,
    operator: str | None,
    lot: str | None = None,
    donor: str | None = None,
    faults: str | None = None,
    auto_ack: bool = False,
    bath_excursion: tuple[float, float, float] | None = None,
) -> Any:
    """Run a protocol with a progress bar; Ctrl-C aborts cleanly (instruments made safe)."""
    import queue

    from instrument.engine import RunEngine, RunObserver, RunOptions
    from instrument.loop_engine import LoopRunEngine
    from instrument.runbase import Prompt
    from instrument.station import load_station, simulated_station
    from instrument.storage import Store

    if station_file and simulate:
        raise HemocompatError("choose either --station FILE or --simulate, not both")
    if station_file:
        station = load_station(station_file)
    elif simulate:
        station = simulated_station(tuple(protocol.instruments))
    else:
        raise HemocompatError(
            "no instruments: give --station FILE (see README, 'Stations') or --simulate"
        )
    if not simulate and speed != 1.0 and not all(s.simulated for s in station.instruments.values()):
        raise HemocompatError("--speed only applies to simulated instruments")
    store = Store(db or station.database)
    stale = store.mark_interrupted_runs()
    if stale:
        err_console.print(
            f"[yellow]note: run(s) {', '.join(map(str, stale))} were left unfinished by a "
            "program that stopped; they are marked interrupted[/]"
        )
    options = RunOptions(
        operator=operator or _login_name(),
        lot=lot,
        donor=donor,
        seed=seed,
        speed=speed,
        faults=faults,
        auto_ack=auto_ack,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[device]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    task = progress.add_task("starting", total=1.0, device="")

    class _Observer(RunObserver):
        def step_started(self, index: int, step: Any) -> None:
            progress.update(task, description=step.description[:60])

        def progress(self, fraction: float, elapsed_s: float) -> None:
            progress.update(task, completed=fraction, device=f"{elapsed_s / 60:5.1f} min")

        def event(self, kind: str, message: str, channel: int | None) -> None:
            shown = ("ct", "clot", "link", "device", "warning", "connected", "interlock")
            if kind in (*shown, "overdue", "missed", "equilibrated", "safe_state"):
                progress.console.print(f"  {kind}: {message}", markup=False)

        def prompt(self, prompt: Prompt) -> None:
            if not auto_ack:
                prompts.put(prompt)

    prompts: queue.Queue[Prompt] = queue.Queue()
    engine: RunEngine | LoopRunEngine
    if isinstance(protocol, LoopProtocol):
        engine = LoopRunEngine(protocol, station, store, options, _Observer(), bath_excursion)
    else:
        engine = RunEngine(protocol, station, store, options, _Observer())
    interactive = sys.stdin is not None and sys.stdin.isatty()
    with progress:
        engine.start()
        try:
            while engine.wait(0.1) is None:
                while not prompts.empty():
                    _answer_prompt(prompts.get(), engine, interactive, progress)
        except KeyboardInterrupt:
            engine.abort("aborted by the operator (Ctrl-C)")
            engine.wait()
    outcome = engine.wait()
    store.close()
    return outcome


def _answer_prompt(prompt: Any, engine: Any, interactive: bool, progress: Progress) -> None:
    """Show a prompt; at a terminal, Enter acknowledges it (the run keeps measuring meanwhile)."""
    progress.console.print(f"[bold yellow]PROMPT {prompt.id}:[/] {prompt.message}")
    if not interactive:
        progress.console.print(
            "  (no terminal to answer it: it stays open and is flagged when overdue; "
            "use --auto-ack for simulated runs)"
        )
        return
    progress.stop()
    try:
        input("  press Enter when done ")
    finally:
        progress.start()
    engine.acknowledge(prompt.id)


def _login_name() -> str:
    """The logged-in user (or, in open bench mode, the OS login)."""
    import getpass

    from instrument.compliance.audit import current_actor

    actor = current_actor()
    if actor is not None:
        return actor.name
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _print_dry_run(protocol: TemProtocol | LoopProtocol, resolved: Sequence[Any]) -> None:
    from instrument.plan import compile_loop_plan, compile_plan, expected_duration_s

    if isinstance(protocol, LoopProtocol):
        steps = compile_loop_plan(protocol, resolved)
    else:
        steps = compile_plan(protocol, resolved)
    table = Table(title=f"{protocol.title} (v{protocol.version}) — dry run")
    table.add_column("#", justify="right")
    table.add_column("role")
    table.add_column("step")
    table.add_column("expected", justify="right")
    for i, step in enumerate(steps, 1):
        table.add_row(str(i), step.role, step.description, _fmt_duration(step.expected_s))
    console.print(table)
    total = expected_duration_s(steps)
    console.print(f"expected duration: {_fmt_duration(total)} (temperature settling estimated)")


def _fmt_duration(seconds: float) -> str:
    if seconds <= 0:
        return "—"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


def _print_outcome(outcome: Any) -> None:
    simulated = " [bold magenta]SIMULATED[/]" if outcome.simulated else ""
    colour = "green" if outcome.status == "completed" else "red"
    console.print(
        f"run {outcome.run_id}: [{colour}]{outcome.status}[/]{simulated} — "
        f"{outcome.protocol['title']} v{outcome.protocol['version']}"
        + (f"\n  {outcome.detail}" if outcome.detail else "")
    )
    if not any(c.parameters for c in outcome.channels):
        return
    _results_table(
        [(c.channel, c.label, c.parameters, c.notes) for c in outcome.channels],
        title="Clot parameters" + (" (SIMULATED)" if outcome.simulated else ""),
    )
    extra = outcome.extra
    if "tubes" in extra:
        drawn = sum(1 for t in extra["tubes"] if t["status"] == "drawn")
        console.print(
            f"samples: {drawn} of {len(extra['tubes'])} tubes drawn; "
            f"{extra['prompts_overdue']} prompt(s) overdue, "
            f"{extra['prompts_never_acknowledged']} never acknowledged"
        )
        for gap in extra["interruptions"]:
            console.print(
                f"interlock: timed steps suspended {gap['duration_s']:.0f} s "
                f"(from {gap['start_t_s']:.0f} s to {gap['end_t_s']:.0f} s device time)"
            )
    problems = ("corrupt", "duplicates", "gaps", "replays_requested", "data_lost")
    bad = {k: v for k, v in outcome.link_stats.items() if v and k.endswith(problems)}
    if bad:
        console.print("link: " + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))


def _results_table(
    rows: Sequence[tuple[int, str, dict[str, Any], dict[str, str]]], title: str
) -> None:
    """One column per channel, one row per parameter: fits a terminal with four channels."""
    keys: list[str] = []
    for _ch, _label, params, _notes in rows:
        keys += [k for k in params if k not in keys]
    table = Table(title=title)
    if len(rows) > 4:  # one row per channel (loops)
        table.add_column("ch", justify="right")
        table.add_column("contents")
        for key in keys:
            table.add_column(key.replace("_", " "), justify="right")
        for ch, label, params, _notes in rows:
            table.add_row(str(ch), label, *[_fmt_value(params.get(k)) for k in keys])
    else:  # one column per channel, one row per parameter
        table.add_column("parameter")
        for ch, label, _params, _notes in rows:
            table.add_column(f"ch{ch}\n{label.replace(' @ ', chr(10))}", justify="right")
        for key in keys:
            table.add_row(key, *[_fmt_value(params.get(key)) for _c, _l, params, _n in rows])
    console.print(table)
    console.print("n.r. = not reached")
    for ch, _label, params, notes in rows:
        for key, note in notes.items():
            if key in params:
                console.print(f"  ch{ch} {key}: {note}")


def _fmt_value(value: Any) -> str:
    if value is None:
        return "n.r."
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 1e4:
            return f"{value:.1e}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


# -- protocols --------------------------------------------------------------------------------
@cli.group()
def protocol() -> None:
    """Check and list protocol files."""


@protocol.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@requires()
def protocol_check(files: tuple[str, ...]) -> None:
    """Validate protocol FILES; list every error as FILE:LINE:COLUMN."""
    from protocols import check_files

    issues = check_files([Path(f) for f in files])
    for issue in issues:
        console.print(str(issue), markup=False)
    bad_files = {i.source for i in issues}
    for f in files:
        if f not in bad_files and str(Path(f)) not in bad_files:
            console.print(f"{f}: OK")
    if issues:
        err_console.print(f"{len(issues)} error(s) in {len(bad_files)} file(s)")
        raise SystemExit(1)


@protocol.command("list")
@requires()
def protocol_list() -> None:
    """List the bundled protocol files."""
    from protocols import bundled_protocols, load_protocol

    table = Table(title="Bundled protocols")
    for col in ("file", "id", "version", "assay", "title"):
        table.add_column(col)
    for path in bundled_protocols():
        p = load_protocol(path)
        detail = f" ({p.reagent})" if isinstance(p, TemProtocol) else ""
        table.add_row(str(path), p.id, str(p.version), p.assay + detail, p.title)
    console.print(table)


# -- stored runs ------------------------------------------------------------------------------
@cli.group()
def runs() -> None:
    """Stored runs."""


@runs.command("list")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@click.option("--limit", default=50, show_default=True)
@requires()
def runs_list(db: str | None, limit: int) -> None:
    """List the most recent runs."""
    from instrument.storage import Store

    store = Store(db)
    table = Table(title=f"Runs in {store.url}")
    for col in ("id", "created (UTC)", "protocol", "operator", "status", "data"):
        table.add_column(col)
    for r in store.list_runs(limit):
        table.add_row(
            str(r["id"]),
            r["created_at"][:19],
            f"{r['protocol_id']} v{r['protocol_version']}",
            r["operator"],
            r["status"],
            "SIMULATED" if r["simulated"] else "measured",
        )
    console.print(table)


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def runs_show(run_id: int, db: str | None) -> None:
    """Show one run: protocol, instruments, channels, results and events."""
    from instrument.storage import Store

    store = Store(db)
    run = store.get_run(run_id)
    sim = " [bold magenta]SIMULATED[/]" if run["simulated"] else ""
    console.print(f"[bold]run {run['id']}[/] ({run['uid']}){sim}")
    for key in ("status", "status_detail", "operator", "created_at", "started_at", "ended_at"):
        if run[key]:
            console.print(f"  {key}: {run[key]}")
    console.print(
        f"  protocol: {run['protocol_id']} v{run['protocol_version']} — {run['protocol_title']}"
        f"\n  protocol sha256: {run['protocol_sha256']}\n  software: {run['software_version']}"
    )
    if run["simulated"]:
        console.print(f"  simulation: seed {run['seed']}, speed {run['speed'] or 'max'}")
    for inst in run["instruments"]:
        console.print(
            f"  instrument {inst['role']}: {inst['manufacturer']} {inst['model']} "
            f"S/N {inst['serial']} fw {inst['firmware']} on {inst['resource']}"
        )
    console.print(f"  raw samples stored: {run['sample_count']}")
    labels = {c["channel"]: c["label"] for c in run["channels"]}
    results = store.latest_results(run_id)
    if results:
        _results_table(
            [
                (r["channel"], labels.get(r["channel"], "?"), r["parameters"], r["notes"])
                for r in results
            ],
            title=f"Clot parameters (result version {max(r['version'] for r in results)})"
            + (" (SIMULATED)" if run["simulated"] else ""),
        )
    events = store.events(run_id)
    if events:
        console.print(f"events ({len(events)}):")
        for e in events[:200]:
            where = f" ch{e['channel']}" if e["channel"] else ""
            console.print(
                f"  {e['wall_time'][11:23]} {e['source']}{where} {e['kind']}: {e['message']}",
                markup=False,
            )


@cli.command()
@click.argument("run_id", type=int)
@click.option("--csv", "csv_dir", required=True, type=click.Path(file_okay=False))
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def export(run_id: int, csv_dir: str, db: str | None) -> None:
    """Export a run's metadata, raw samples, events and results as CSV files."""
    from instrument.storage import Store

    store = Store(db)
    paths = export_csv(store, run_id, Path(csv_dir))
    for p in paths:
        console.print(f"wrote {p}")


def export_csv(store: Any, run_id: int, out_dir: Path) -> list[Path]:
    """Write run.csv, channels.csv, samples.csv, events.csv, results.csv into ``out_dir``."""
    run = store.get_run(run_id)
    sim = "yes" if run["simulated"] else "no"
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"run{run_id}_"
    written: list[Path] = []

    def write(name: str, header: list[str], rows: Any) -> None:
        path = out_dir / f"{prefix}{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["simulated", *header])
            for row in rows:
                w.writerow([sim, *row])
        written.append(path)

    meta_keys = [k for k in run if k not in ("instruments", "channels", "protocol_text")]
    write("run", ["key", "value"], [(k, run[k]) for k in meta_keys])
    write(
        "instruments",
        ["role", "manufacturer", "model", "serial", "firmware", "resource"],
        [
            [i[k] for k in ("role", "manufacturer", "model", "serial", "firmware", "resource")]
            for i in run["instruments"]
        ],
    )
    ch_keys = [
        "source",
        "channel",
        "contents",
        "lot_id",
        "dose_cells_per_ml",
        "donor_id",
        "label",
        "quantity",
        "unit",
    ]
    write("channels", ch_keys, [[c[k] for k in ch_keys] for c in run["channels"]])
    write("samples", ["source", "seq", "channel", "t_ms", "value"], store.iter_samples(run_id))
    write(
        "events",
        ["wall_time", "source", "channel", "t_ms", "kind", "message"],
        [
            [e[k] for k in ("wall_time", "source", "channel", "t_ms", "kind", "message")]
            for e in store.events(run_id)
        ],
    )
    results = store.latest_results(run_id)
    rows = []
    for r in results:
        for key, value in r["parameters"].items():
            rows.append(
                [r["source"], r["channel"], r["version"], key, value, r["notes"].get(key, "")]
            )
    write("results", ["source", "channel", "version", "parameter", "value", "note"], rows)
    return written


# -- sample registry --------------------------------------------------------------------------
ANALYTES = {"PLT": "10^9/L", "TAT": "ug/L"}


@cli.group()
def samples() -> None:
    """Sample tubes drawn during runs, and the values measured on them."""


@samples.command("list")
@click.argument("run_id", type=int)
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def samples_list(run_id: int, db: str | None) -> None:
    """List the tubes of a run with their latest measured values."""
    from instrument.storage import Store

    store = Store(db)
    run = store.get_run(run_id)
    values: dict[str, dict[str, Any]] = {}
    for v in store.sample_values(run_id):
        values.setdefault(v["tube_id"], {})[v["analyte"]] = v
    table = Table(title=f"Tubes of run {run_id}" + (" (SIMULATED)" if run["simulated"] else ""))
    for col in ("tube", "loop", "time point", "type", "status", "drawn at", *ANALYTES):
        table.add_column(col)
    for t in store.tubes(run_id):
        measured = values.get(t["tube_id"], {})
        table.add_row(
            t["tube_id"],
            str(t["channel"]),
            f"{t['time_point_s'] / 60:g} min",
            f"{t['tube_type']} {t['volume_ml']:g} mL",
            t["status"],
            "" if t["drawn_t_s"] is None else f"{t['drawn_t_s']:.0f} s",
            *[
                _fmt_value(measured[a]["value"]) + (" [SIM]" if measured[a]["simulated"] else "")
                if a in measured
                else ""
                for a in ANALYTES
            ],
        )
    console.print(table)


@samples.command("label")
@click.argument("tube_id")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def samples_label(tube_id: str, db: str | None) -> None:
    """Print the label text and barcode value (Code 128) of a tube."""
    from instrument.storage import Store

    t = Store(db).tube(tube_id)
    console.print(tube_label(t), markup=False)


def tube_label(tube: dict[str, Any]) -> str:
    """Label text for a tube; its barcode value is the tube ID itself."""
    sim = "  SIMULATED" if tube["simulated"] else ""
    return (
        f"{tube['tube_id']}{sim}\n"
        f"run {tube['run_id']}  loop {tube['channel']}  t={tube['time_point_s'] / 60:g} min\n"
        f"{tube['tube_type']} {tube['volume_ml']:g} mL\n"
        f"barcode (Code 128): {tube['tube_id']}"
    )


@samples.command("set")
@click.argument("tube_id")
@click.option("--analyte", type=click.Choice(sorted(ANALYTES)), required=True)
@click.option("--value", type=float, required=True)
@click.option("--by", "entered_by", default=None, help="Who entered it.  [default: login]")
@click.option("--reason", default=None, help="Why a value is corrected (required to correct).")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires(TECHNICIAN)
def samples_set(
    tube_id: str,
    analyte: str,
    value: float,
    entered_by: str | None,
    reason: str | None,
    db: str | None,
) -> None:
    """Enter a measured value by hand (e.g. a platelet count in 10^9/L)."""
    from instrument.compliance.audit import require_correction_reason
    from instrument.storage import Store

    if value < 0:
        raise HemocompatError(f"{analyte} value {value} is negative; enter the measured value")
    store = Store(db)
    store.tube(tube_id)
    reason = require_correction_reason(store, tube_id, analyte, reason)
    store.add_sample_value(
        tube_id,
        analyte=analyte,
        value=value,
        unit=ANALYTES[analyte],
        origin="entered by hand",
        entered_by=entered_by or _login_name(),
        simulated=False,
        reason=reason,
    )
    console.print(f"{tube_id}: {analyte} = {value:g} {ANALYTES[analyte]}")


@samples.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--by", "entered_by", default=None, help="Who imports it.  [default: login]")
@click.option("--reason", default=None, help="Why values are corrected (required to correct).")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires(TECHNICIAN)
def samples_import(
    csv_file: str, entered_by: str | None, reason: str | None, db: str | None
) -> None:
    """Import values from a CSV with columns tube_id, analyte, value (all rows checked first)."""
    from instrument.compliance.audit import require_correction_reason
    from instrument.storage import Store

    store = Store(db)
    rows, problems = [], []
    with open(csv_file, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"tube_id", "analyte", "value"} - set(reader.fieldnames or [])
        if missing:
            raise HemocompatError(
                f"{csv_file}: missing column(s) {', '.join(sorted(missing))}; "
                "expected a header tube_id,analyte,value"
            )
        for line, row in enumerate(reader, start=2):
            where = f"{csv_file}:{line}"
            try:
                value = float(row["value"])
            except (TypeError, ValueError):
                problems.append(f"{where}: value {row['value']!r} is not a number")
                continue
            if row["analyte"] not in ANALYTES:
                problems.append(f"{where}: analyte {row['analyte']!r}; allowed: {list(ANALYTES)}")
                continue
            try:
                store.tube(row["tube_id"])
                require_correction_reason(store, row["tube_id"], row["analyte"], reason)
            except HemocompatError as exc:
                problems.append(f"{where}: {exc}")
                continue
            rows.append((row["tube_id"], row["analyte"], value))
    if problems:
        raise HemocompatError("nothing imported:\n" + "\n".join(problems))
    for tube_id, analyte, value in rows:
        store.add_sample_value(
            tube_id,
            analyte=analyte,
            value=value,
            unit=ANALYTES[analyte],
            origin=f"imported from {Path(csv_file).name}",
            entered_by=entered_by or _login_name(),
            simulated=False,
            reason=reason,
        )
    console.print(f"imported {len(rows)} value(s) from {csv_file}")


# -- ELISA ----------------------------------------------------------------------------------
@cli.group()
def elisa() -> None:
    """TAT ELISA plates: read on the plate reader or imported from its CSV export."""


def _elisa_options(f: Any) -> Any:
    f = click.option(
        "--run", "run_ids", multiple=True, type=int, help="Put this run's tubes on the plate."
    )(f)
    f = click.option(
        "--sample", "sample_ids", multiple=True, help="A tube ID to put on the plate."
    )(f)
    f = click.option("--db", default=None, help="Database file or SQLAlchemy URL.")(f)
    f = click.option("--operator", default=None, help="Who reads the plate.")(f)
    f = click.option(
        "--json", "json_file", type=click.Path(dir_okay=False), help="Write results here."
    )(f)
    return click.option(
        "--figure-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Save the standard curve PNG here.",
    )(f)


def _load_elisa_protocol(path: str) -> Any:
    from protocols import load_protocol
    from protocols.model import ElisaProtocol

    protocol = load_protocol(path)
    if not isinstance(protocol, ElisaProtocol):
        raise HemocompatError(f"{path}: assay '{protocol.assay}' is not an ELISA protocol")
    return protocol


@elisa.command("run")
@click.argument("protocol_file", type=click.Path(dir_okay=False))
@click.option("--simulate", is_flag=True, help="Use the built-in simulated plate reader.")
@click.option("--resource", default=None, help="VISA resource, e.g. TCPIP::10.0.0.7::5025::SOCKET")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--speed", default="100", help="Simulation speed.  [default: 100]")
@_elisa_options
@requires(TECHNICIAN)
def elisa_run(
    protocol_file: str,
    simulate: bool,
    resource: str | None,
    seed: int,
    speed: str,
    run_ids: tuple[int, ...],
    sample_ids: tuple[str, ...],
    db: str | None,
    operator: str | None,
    json_file: str | None,
    figure_dir: str | None,
) -> None:
    """Read a plate on the ABS-96 (or a simulated one) and analyse it."""
    from instrument import elisa_run as er
    from instrument.storage import Store

    protocol = _load_elisa_protocol(protocol_file)
    store = Store(db)
    layout = er.plate_layout(protocol, store, run_ids, sample_ids)
    if simulate == bool(resource):
        raise HemocompatError("give either --simulate or --resource VISA_RESOURCE")
    if simulate:
        reading, instrument = er.read_simulated_plate(
            protocol, layout, store, seed=seed, speed=parse_speed(speed)
        )
    else:
        assert resource is not None
        reading, instrument = er.read_plate_on(resource, protocol)
    outcome = er.analyse_and_store(
        protocol,
        reading,
        layout,
        store,
        operator=operator or _login_name(),
        instrument=instrument,
        figure_dir=Path(figure_dir) if figure_dir else None,
    )
    _finish_elisa(outcome, json_file)


@elisa.command("import")
@click.argument("protocol_file", type=click.Path(dir_okay=False))
@click.argument("plate_csv", type=click.Path(dir_okay=False))
@click.option("--simulated-data", is_flag=True, help="The CSV holds simulated absorbances.")
@_elisa_options
@requires(TECHNICIAN)
def elisa_import(
    protocol_file: str,
    plate_csv: str,
    simulated_data: bool,
    run_ids: tuple[int, ...],
    sample_ids: tuple[str, ...],
    db: str | None,
    operator: str | None,
    json_file: str | None,
    figure_dir: str | None,
) -> None:
    """Analyse a plate exported as CSV by reader software without remote control."""
    from dataclasses import replace

    from instrument import elisa_run as er
    from instrument.analysis.plate import read_plate_csv
    from instrument.storage import Store

    protocol = _load_elisa_protocol(protocol_file)
    store = Store(db)
    layout = er.plate_layout(protocol, store, run_ids, sample_ids)
    reading = read_plate_csv(plate_csv)
    if simulated_data:
        reading = replace(reading, simulated=True)
    outcome = er.analyse_and_store(
        protocol,
        reading,
        layout,
        store,
        operator=operator or _login_name(),
        figure_dir=Path(figure_dir) if figure_dir else None,
    )
    _finish_elisa(outcome, json_file)


def _finish_elisa(outcome: Any, json_file: str | None) -> None:
    r = outcome.result
    sim = " [bold magenta]SIMULATED[/]" if outcome.simulated else ""
    verdict = "[green]QC passed[/]" if r.passed else "[red]QC FAILED[/]"
    console.print(f"ELISA run {outcome.run_id}: {verdict}{sim}")
    for f in r.findings:
        console.print(f"  {f.severity}: {f.code} {f.where}: {f.message}", markup=False)
    table = Table(title="TAT" + (" (SIMULATED)" if outcome.simulated else ""))
    for col in ("sample", "wells", "dilution", "TAT µg/L", "CV %", "flag", "valid"):
        table.add_column(col)
    for s in r.samples.values():
        table.add_row(
            s.sample_id,
            " ".join(s.wells),
            f"{s.dilution:g}",
            _fmt_value(s.value_ug_per_l),
            _fmt_value(s.cv_pct),
            (s.flag or "") + (f" — {s.reassay}" if s.reassay else ""),
            "yes" if s.valid else "no",
        )
    console.print(table)
    if outcome.attached:
        console.print(f"TAT attached to {len(outcome.attached)} tube(s) of the sample registry")
    elif not r.passed:
        console.print("no value was attached to any tube: the plate failed QC")
    if outcome.figure:
        console.print(f"standard curve: {outcome.figure}")
    if json_file:
        Path(json_file).write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
        console.print(f"results written to {json_file}")
    if not r.passed:
        raise SystemExit(1)


# -- lots, donors, panel, reports ------------------------------------------------------------
@cli.group()
def lots() -> None:
    """The MSC lot registry."""


@lots.command("add")
@click.argument("lot_id")
@click.option("--tissue-source", required=True, help="bone-marrow, umbilical-cord, adipose, ...")
@click.option("--product", default="MSC")
@click.option("--cell-donor", default=None)
@click.option("--passage", type=int, default=None)
@click.option("--manufactured-on", default=None, help="YYYY-MM-DD")
@click.option("--viability-pct", type=float, default=None)
@click.option("--cd142-pct", type=float, default=None, help="% CD142+ cells")
@click.option("--cd142-mfi", type=float, default=None, help="CD142 median fluorescence")
@click.option("--state", default="fresh", help="fresh or cryopreserved")
@click.option("--notes", default="")
@click.option("--replace", is_flag=True, help="Replace the record of a registered lot.")
@click.option("--reason", default=None, help="Why the record is replaced (required then).")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires(TECHNICIAN)
def lots_add(lot_id: str, replace: bool, reason: str | None, db: str | None, **fields: Any) -> None:
    """Register an MSC lot (or, with --replace and --reason, replace its record)."""
    from instrument.lots import add_lot
    from instrument.storage import Store

    add_lot(Store(db), {"lot_id": lot_id, **fields}, replace=replace, reason=reason)
    console.print(f"lot {lot_id} {'replaced' if replace else 'registered'}")


@lots.command("list")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def lots_list(db: str | None) -> None:
    """List registered lots with their latest class."""
    from instrument.lots import latest_assessment, list_lots
    from instrument.storage import Store

    store = Store(db)
    table = Table(title="MSC lots")
    for col in ("lot", "tissue", "passage", "% CD142+", "MFI", "viability %", "class", "data"):
        table.add_column(col)
    for lot in list_lots(store):
        latest = latest_assessment(store, lot["lot_id"])
        table.add_row(
            lot["lot_id"],
            lot["tissue_source"],
            _fmt_value(lot["passage"]),
            _fmt_value(lot["cd142_pct"]),
            _fmt_value(lot["cd142_mfi"]),
            _fmt_value(lot["viability_pct"]),
            (latest or {}).get("class_id") or "—",
            "SIMULATED" if lot["simulated"] else "",
        )
    console.print(table)


@lots.command("show")
@click.argument("lot_id")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def lots_show(lot_id: str, db: str | None) -> None:
    """Show a lot, its runs and its latest assessment."""
    from instrument.lots import get_lot, latest_assessment, lot_runs
    from instrument.storage import Store

    store = Store(db)
    lot = get_lot(store, lot_id)
    for key, value in lot.items():
        console.print(f"  {key}: {value}", markup=False)
    for run in lot_runs(store, lot_id):
        console.print(f"  run {run['id']}: {run['assay']} {run['protocol_id']} ({run['status']})")
    latest = latest_assessment(store, lot_id)
    if latest:
        a = latest["assessment"]
        console.print(
            f"  class: {latest['class_id']} (method {latest['method_id']} v"
            f"{latest['method_version']})"
        )
        explanation = a.get("explanation")
        if explanation:
            console.print(f"  {explanation}", markup=False)


@lots.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires(TECHNICIAN)
def lots_import(csv_file: str, db: str | None) -> None:
    """Import lots from CSV (header: lot_id,tissue_source,passage,cd142_pct,...)."""
    from instrument.lots import import_lots_csv
    from instrument.storage import Store

    count = import_lots_csv(Store(db), Path(csv_file))
    console.print(f"imported {count} lot(s)")


@lots.command("compare")
@click.option("--product", default=None, help="Only lots of this product.")
@click.option("--png", "png_file", default=None, help="Also plot ΔCT vs dose by tissue source.")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def lots_compare(product: str | None, png_file: str | None, db: str | None) -> None:
    """Compare lots by tissue source; flag lots outside their product's mean ± 3 SD."""
    from instrument.compare import METRICS, compare_lots, comparison_png
    from instrument.storage import Store

    store = Store(db)
    comparison = compare_lots(store, product)
    simulated = any(r.simulated for r in comparison.rows)
    table = Table(title="Lots by tissue source" + (" (SIMULATED)" if simulated else ""))
    for col in ("tissue", "lot", *METRICS.values(), "class"):
        table.add_column(col)
    for r in comparison.rows:
        table.add_row(
            r.tissue_source,
            r.lot_id,
            *[_fmt_value(r.values.get(k)) for k in METRICS],
            r.class_id or "—",
        )
    console.print(table)
    for flag in comparison.flags:
        console.print(f"[bold red]OUT OF TREND[/] {flag.text}")
    for note in comparison.notes:
        console.print(f"note: {note}", markup=False)
    if png_file:
        console.print(f"wrote {comparison_png(store, comparison, Path(png_file))}")


@cli.group()
def donors() -> None:
    """The blood-donor registry (pseudonymised IDs only)."""


@donors.command("add")
@click.argument("donor_id")
@click.option("--draw-time", default=None, help="ISO time of the blood draw")
@click.option("--anticoagulant", default="citrate")
@click.option("--anticoagulant-dose", default="")
@click.option("--coagulability", default="healthy", help="healthy, hypercoagulable or patient")
@click.option("--patient-group", default="", help="e.g. COVID-19, sepsis, trauma")
@click.option("--notes", default="")
@click.option("--replace", is_flag=True, help="Replace the record of a registered donor.")
@click.option("--reason", default=None, help="Why the record is replaced (required then).")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires(TECHNICIAN)
def donors_add(
    donor_id: str, replace: bool, reason: str | None, db: str | None, **fields: Any
) -> None:
    """Register a blood donor (or, with --replace and --reason, replace its record)."""
    from instrument.lots import add_donor
    from instrument.storage import Store

    add_donor(Store(db), {"donor_id": donor_id, **fields}, replace=replace, reason=reason)
    console.print(f"donor {donor_id} {'replaced' if replace else 'registered'}")


@donors.command("list")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def donors_list(db: str | None) -> None:
    """List registered blood donors."""
    from instrument.lots import list_donors
    from instrument.storage import Store

    table = Table(title="Blood donors")
    for col in ("donor", "drawn", "anticoagulant", "coagulability", "group", "data"):
        table.add_column(col)
    for d in list_donors(Store(db)):
        table.add_row(
            d["donor_id"],
            d["draw_time"] or "",
            f"{d['anticoagulant']} {d['anticoagulant_dose']}".strip(),
            d["coagulability"],
            d["patient_group"],
            "SIMULATED" if d["simulated"] else "",
        )
    console.print(table)


@cli.command()
@click.argument("lot_id")
@click.option("--simulate", is_flag=True, help="Use the built-in simulated instruments.")
@click.option("--station", "station_file", type=click.Path(dir_okay=False), help="Station file.")
@click.option("--speed", default="600", help="Simulation speed.  [default: 600]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--donor", default=None, help="Blood donor for every run of the panel.")
@click.option("--method", "method_file", default=None, help="Decision method file.")
@click.option("--out", "out_dir", default="reports", show_default=True, help="Report folder.")
@click.option("--operator", default=None)
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write results here.")
@requires(TECHNICIAN)
def panel(
    lot_id: str,
    simulate: bool,
    station_file: str | None,
    speed: str,
    seed: int,
    donor: str | None,
    method_file: str | None,
    out_dir: str,
    operator: str | None,
    db: str | None,
    json_file: str | None,
) -> None:
    """Run the whole panel for LOT_ID: TEM dose series, loops, ELISA, indices, report."""
    from instrument.panel import run_panel
    from instrument.station import load_station
    from instrument.storage import Store

    if not simulate and not station_file:
        raise HemocompatError("give --simulate or --station FILE")
    station = load_station(station_file) if station_file else None
    store = Store(db or (station.database if station else None))
    outcome = run_panel(
        lot_id,
        store,
        simulate=simulate,
        station=station,
        speed=parse_speed(speed),
        seed=seed,
        donor=donor,
        operator=operator or _login_name(),
        method_path=Path(method_file) if method_file else None,
        out_dir=Path(out_dir),
        say=lambda text: console.print(text, markup=False),
    )
    _print_assessment(outcome.assessment, outcome.simulated)
    for path in outcome.reports:
        console.print(f"wrote {path}")
    if json_file:
        Path(json_file).write_text(json.dumps(outcome.to_json(), indent=2, default=str) + "\n")
        console.print(f"results written to {json_file}")


def _print_assessment(a: dict[str, Any], simulated: bool) -> None:
    sim = " [bold magenta]SIMULATED[/]" if simulated else ""
    decision = a.get("decision") or {}
    name = decision.get("name") or decision.get("class_id") or "not classified"
    console.print(f"[bold]class: {name}[/]{sim}")
    route = decision.get("route")
    if route:
        console.print(f"route: {route}", markup=False)
    if a.get("explanation"):
        console.print(str(a["explanation"]), markup=False)
    console.print(
        "These indices and classes are hemocompat's documented construct for research use "
        "(docs/indices.md), not a clinical rule."
    )


@cli.command()
@click.argument("lot_id")
@click.option("--method", "method_file", default=None, help="Decision method file.")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires(TECHNICIAN, METHOD_DEVELOPER)
def assess(lot_id: str, method_file: str | None, db: str | None) -> None:
    """Recompute a lot's indices and class from its stored runs (a new assessment version)."""
    from instrument.panel import assess_and_store
    from instrument.storage import Store
    from protocols import bundled_methods, load_method

    store = Store(db)
    method = load_method(method_file or bundled_methods()[0])
    _assessment_id, body = assess_and_store(store, lot_id, method)
    _print_assessment(body, False)


@cli.command()
@click.argument("lot_id")
@click.option("--pdf", "pdf_file", default=None, type=click.Path(dir_okay=False))
@click.option("--xlsx", "xlsx_file", default=None, type=click.Path(dir_okay=False))
@click.option("--csv", "csv_dir", default=None, type=click.Path(file_okay=False))
@click.option("--figures", "figure_dir", default=None, help="Folder with ELISA curve PNGs.")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def report(
    lot_id: str,
    pdf_file: str | None,
    xlsx_file: str | None,
    csv_dir: str | None,
    figure_dir: str | None,
    db: str | None,
) -> None:
    """Write a lot's report as PDF, XLSX and/or CSV."""
    from instrument.report_data import build_lot_report
    from instrument.reports import write_csv, write_pdf, write_xlsx
    from instrument.storage import Store

    if not (pdf_file or xlsx_file or csv_dir):
        raise HemocompatError("choose at least one of --pdf FILE, --xlsx FILE, --csv DIR")
    data = build_lot_report(Store(db), lot_id, Path(figure_dir) if figure_dir else None)
    written: list[Path] = []
    if pdf_file:
        written.append(write_pdf(data, Path(pdf_file)))
    if xlsx_file:
        written.append(write_xlsx(data, Path(xlsx_file)))
    if csv_dir:
        written += write_csv(data, Path(csv_dir))
    for path in written:
        console.print(f"wrote {path}")


# -- simulators ------------------------------------------------------------------------------
@cli.group()
def simulate() -> None:
    """Run a simulated instrument standalone (prints where to connect)."""


_FAULTS_HELP = (
    "Fault spec, e.g. drop=0.01,corrupt=0.005,stall@30s=2,disconnect@120s "
    "(docs/virtual-lab.md, 'Fault injection', lists every fault)."
)
_TCP_PORT_HELP = "TCP port to listen on (0: any free port).  [default: 0]"


def _fault_plan(faults: str | None) -> Any:
    from simulators.faults import FaultPlan

    try:
        return FaultPlan.parse(faults) if faults else None
    except ValueError as exc:
        raise HemocompatError(f"--faults: {exc}") from None


def _serve_streaming(
    name: str,
    run_standalone: Any,
    samples: Any,
    seed: int,
    speed: str,
    faults: str | None,
    tcp_port: int,
) -> None:
    """Serve a streaming simulator (TEM-4, LOOP-8) until Ctrl+C."""
    plan = _fault_plan(faults)
    try:
        run_standalone(
            seed=seed,
            speed=parse_speed(speed),
            samples=samples,
            faults=plan,
            out=console.print,
            tcp_port=tcp_port,
        )
    except ValueError as exc:
        raise HemocompatError(f"simulate {name}: {exc}") from None


@simulate.command("tem4")
@click.option("--speed", default="1", help="Speed factor, or max.  [default: 1]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--faults", default=None, help=_FAULTS_HELP)
@click.option("--protocol", "protocol_file", default=None, help="Fill the cups from this protocol.")
@click.option("--tcp-port", default=0, type=int, help=_TCP_PORT_HELP)
def simulate_tem4(
    speed: str, seed: int, faults: str | None, protocol_file: str | None, tcp_port: int
) -> None:
    """A simulated TEM-4 thromboelastometer on a pty and a TCP port."""
    from simulators.physiology import VirtualLab
    from simulators.tem4 import default_samples, run_standalone

    if protocol_file:
        from instrument.simulation import tem_samples
        from protocols import load_protocol

        samples = tem_samples(_require_runnable(load_protocol(protocol_file)).resolved_channels())
    else:
        samples = default_samples(VirtualLab.load())
    _serve_streaming("tem4", run_standalone, samples, seed, speed, faults, tcp_port)


@simulate.command("loop8")
@click.option("--speed", default="1", help="Speed factor, or max.  [default: 1]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--faults", default=None, help=_FAULTS_HELP)
@click.option(
    "--protocol", "protocol_file", default=None, help="Fill the loops from this loop protocol."
)
@click.option("--tcp-port", default=0, type=int, help=_TCP_PORT_HELP)
def simulate_loop8(
    speed: str, seed: int, faults: str | None, protocol_file: str | None, tcp_port: int
) -> None:
    """A simulated LOOP-8 Chandler loop rotator on a pty and a TCP port."""
    from simulators.loop8 import default_samples, run_standalone
    from simulators.physiology import VirtualLab

    if protocol_file:
        from instrument.simulation import loop_samples
        from protocols import load_protocol

        protocol = load_protocol(protocol_file)
        if not isinstance(protocol, LoopProtocol):
            raise HemocompatError(f"{protocol.source}: not a Chandler-loop protocol")
        samples = loop_samples(protocol, protocol.resolved_channels())
    else:
        samples = default_samples(VirtualLab.load())
    _serve_streaming("loop8", run_standalone, samples, seed, speed, faults, tcp_port)


@simulate.command("bath")
@click.option("--speed", default="1", help="Speed factor (a thermal model: no max).  [default: 1]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--faults", default=None, help=_FAULTS_HELP)
@click.option("--setpoint", default=37.0, show_default=True, type=float, help="Setpoint (°C).")
@click.option("--prewarmed", is_flag=True, help="Start circulating at the setpoint.")
@click.option("--tcp-port", default=0, type=int, help=_TCP_PORT_HELP)
def simulate_bath(
    speed: str,
    seed: int,
    faults: str | None,
    setpoint: float,
    prewarmed: bool,
    tcp_port: int,
) -> None:
    """A simulated JULABO water bath on a pty and a TCP port."""
    from simulators.julabo import run_standalone

    factor = parse_speed(speed)
    if not math.isfinite(factor):
        raise HemocompatError("--speed: the bath is a thermal model and needs a number")
    plan = _fault_plan(faults)
    try:
        run_standalone(
            seed=seed,
            speed=factor,
            faults=plan,
            out=console.print,
            setpoint_c=setpoint,
            prewarmed=prewarmed,
            tcp_port=tcp_port,
        )
    except ValueError as exc:
        raise HemocompatError(f"simulate bath: {exc}") from None


@simulate.command("abs96")
@click.option("--speed", default="1", help="Speed factor (no max).  [default: 1]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--faults", default=None, help=_FAULTS_HELP)
@click.option("--tcp-port", default=0, type=int, help=_TCP_PORT_HELP)
def simulate_abs96(speed: str, seed: int, faults: str | None, tcp_port: int) -> None:
    """A simulated ABS-96 plate reader on a TCP port (VISA TCPIP SOCKET)."""
    from simulators.abs96 import run_standalone

    factor = parse_speed(speed)
    if not math.isfinite(factor):
        raise HemocompatError("--speed: the plate reader needs a number")
    plan = _fault_plan(faults)
    try:
        run_standalone(seed=seed, speed=factor, out=console.print, faults=plan, port=tcp_port)
    except ValueError as exc:
        raise HemocompatError(f"simulate abs96: {exc}") from None


# -- laboratory links: hematology analyzer, LIS export, flow cytometry -------------------------
@cli.group()
def analyzer() -> None:
    """The hematology analyzer link (ASTM E1381/E1394): blood counts into the sample registry."""


@analyzer.command("listen")
@click.option("--resource", required=True, help="Serial port, pty path or socket://HOST:PORT.")
@click.option("--baudrate", default=9600, show_default=True, type=int)
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, help="Stop after S s.")
@click.option(
    "--idle",
    "idle_s",
    default=None,
    type=float,
    help="Keep receiving until no transfer starts for S s (default: stop at the first EOT).",
)
@click.option("--by", "entered_by", default="analyzer", show_default=True, help="Entered by.")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires(TECHNICIAN)
def analyzer_listen(
    resource: str,
    baudrate: int,
    timeout_s: float,
    idle_s: float | None,
    entered_by: str,
    db: str | None,
) -> None:
    """Receive results and attach them to sample tubes (PLT, WBC, RBC, HGB, …)."""
    from drivers.astm import AstmLink, AstmLinkError, RawSerialTransport
    from instrument.lab_link import receive_results
    from instrument.storage import Store

    def connect() -> AstmLink:
        transport = RawSerialTransport(resource, baudrate=baudrate, name="analyzer")
        return AstmLink(transport, name="analyzer")

    store = Store(db)
    link = connect()
    console.print(f"listening on {resource} (ASTM E1381); Ctrl+C stops")
    try:
        report = receive_results(
            link,
            store,
            until="idle" if idle_s else "eot",
            timeout_s=timeout_s,
            idle_s=idle_s or 10.0,
            reconnect=connect,
            entered_by=entered_by,
        )
    except AstmLinkError as exc:
        raise HemocompatError(str(exc)) from None
    finally:
        link.close()
        store.close()
    if report.stored:
        table = Table(title="Results stored")
        for col in ("tube", "analyte", "value", "unit", "flag"):
            table.add_column(col)
        for v in report.stored:
            value = "" if v.value is None else f"{v.value:g}"
            table.add_row(v.sample_id, v.analyte, value, v.unit, v.flag)
        console.print(table)
    console.print(
        f"{len(report.stored)} value(s) stored, {len(report.duplicates)} already stored "
        f"(resent), {report.messages} message(s), {report.incomplete_messages} incomplete; "
        f"ended: {report.ended}"
    )
    for sample_id in report.unknown_samples:
        values = ", ".join(
            f"{v.analyte} {'' if v.value is None else f'{v.value:g}'} {v.unit}".strip()
            for v in report.unknown
            if v.sample_id == sample_id
        )
        err_console.print(f"not in the registry, NOT stored: {sample_id}: {values}", markup=False)
    for problem in report.problems:
        err_console.print(f"warning: {problem}", markup=False)
    if report.messages == 0:
        raise HemocompatError(f"no results received from {resource} within {timeout_s:g} s")


@simulate.command("hematology")
@click.option(
    "--results",
    "results_csv",
    type=click.Path(dir_okay=False, exists=True),
    help="CSV with a sample_id column and one column per analyte (PLT, WBC, RBC, HGB, …).",
)
@click.option("--samples", default=6, show_default=True, help="Made-up CBCs without --results.")
@click.option("--interval", "interval_s", type=float, default=None, help="One sample every S s.")
@click.option("--faults", default=None, help="e.g. corrupt@2,contention@1,noack@3,disconnect@9")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--tcp-port", default=0, type=int, help="TCP port to listen on (0: any free).")
def simulate_hematology(
    results_csv: str | None,
    samples: int,
    interval_s: float | None,
    faults: str | None,
    seed: int,
    tcp_port: int,
) -> None:
    """A simulated hematology analyzer sending CBC results over ASTM (pty and TCP)."""
    from simulators.hematology import default_results, load_results_csv, run_standalone

    try:
        results = (
            load_results_csv(Path(results_csv))
            if results_csv
            else default_results(samples, seed=seed)
        )
        run_standalone(
            results, faults=faults, interval_s=interval_s, tcp_port=tcp_port, out=console.print
        )
    except ValueError as exc:
        raise HemocompatError(f"simulate hematology: {exc}") from None


@cli.group()
def lis() -> None:
    """Results to a laboratory information system: ASTM E1394 and HL7 v2.5.1 ORU^R01."""


@lis.command("export")
@click.argument("lot_id", required=False)
@click.option("--run", "run_id", type=int, default=None, help="Export one run instead of a lot.")
@click.option("--astm", "astm_file", type=click.Path(dir_okay=False), help="Write ASTM E1394.")
@click.option("--hl7", "hl7_file", type=click.Path(dir_okay=False), help="Write HL7 ORU^R01.")
@click.option("--mllp", "mllp_peer", default=None, help="Send the HL7 message to HOST:PORT.")
@click.option("--astm-link", "astm_resource", default=None, help="Send over ASTM to a port/URL.")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires()
def lis_export(
    lot_id: str | None,
    run_id: int | None,
    astm_file: str | None,
    hl7_file: str | None,
    mllp_peer: str | None,
    astm_resource: str | None,
    db: str | None,
) -> None:
    """Export LOT_ID's results (or --run RUN's) as ASTM and/or HL7, to files or a LIS."""
    from drivers.astm import AstmLink, AstmLinkError, RawSerialTransport
    from instrument import lab_link
    from instrument.storage import Store

    if not (astm_file or hl7_file or mllp_peer or astm_resource):
        raise HemocompatError("choose at least one of --astm FILE, --hl7 FILE, --mllp, --astm-link")
    store = Store(db)
    try:
        export = lab_link.collect_export(store, lot_id=lot_id, run_id=run_id)
    finally:
        store.close()
    hl7_text = str(lab_link.hl7_message(export))
    if astm_file:
        records = lab_link.astm_records(export)
        data = b"".join(r.encode("latin-1") + b"\r" for r in records)
        console.print(f"wrote {lab_link.write_export_file(Path(astm_file), data)}")
    if hl7_file:
        console.print(f"wrote {lab_link.write_export_file(Path(hl7_file), hl7_text)}")
    if mllp_peer:
        host, port = lab_link.parse_host_port(mllp_peer)
        ack = lab_link.send_mllp(hl7_text, host, port)
        console.print(f"sent to {host}:{port}: acknowledged {ack.code} ({ack.control_id})")
    if astm_resource:
        try:
            with AstmLink(RawSerialTransport(astm_resource, name="lis"), name="lis") as link:
                lab_link.send_astm(link, export)
        except AstmLinkError as exc:
            raise HemocompatError(str(exc)) from None
        console.print(f"sent over ASTM to {astm_resource}")
    if export.simulated:
        console.print("[bold magenta]SIMULATED[/] data: the export says so (processing ID D)")


@lots.command("cd142")
@click.argument("lot_id")
@click.argument("fcs_file", type=click.Path(dir_okay=False))
@click.option("--channel", required=True, help="CD142 channel by $PnN or $PnS, e.g. PE-A.")
@click.option("--control", "control_file", required=True, help="Isotype/unstained control FCS.")
@click.option("--percentile", default=99.0, show_default=True, help="Control percentile gate.")
@click.option("--png", "png_file", default=None, help="Write the histogram overlay here.")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@requires(TECHNICIAN)
def lots_cd142(
    lot_id: str,
    fcs_file: str,
    channel: str,
    control_file: str,
    percentile: float,
    png_file: str | None,
    db: str | None,
) -> None:
    """Set LOT_ID's % CD142+ and MFI from a stained sample and its control (FCS 3.0/3.1)."""
    from instrument.fcs_import import import_cd142
    from instrument.storage import Store

    store = Store(db)
    try:
        result = import_cd142(
            store,
            lot_id,
            Path(fcs_file),
            channel=channel,
            control_path=Path(control_file),
            percentile=percentile,
            png=Path(png_file) if png_file else None,
        )
    finally:
        store.close()
    g = result.gate
    console.print(
        f"{lot_id}: {g.pct_positive:.2f} % CD142+ (gate > {g.threshold:.6g}, control "
        f"p{g.percentile:g}), MFI {g.mfi:.6g}, positive median "
        f"{'none' if g.positive_median is None else f'{g.positive_median:.6g}'}; "
        f"channel {result.channel.describe()}, {g.n_events} events",
        markup=False,
    )
    console.print(f"sample sha256 {result.sample_sha256}")
    console.print(f"control sha256 {result.control_sha256}")
    if result.png is not None:
        console.print(f"wrote {result.png}")


# -- recovery -----------------------------------------------------------------------------
@cli.command()
@click.argument("run_id", type=int, required=False)
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@click.option(
    "--station",
    "station_file",
    type=click.Path(dir_okay=False),
    help="Reach the instrument through this station file instead of the stored resource.",
)
@click.option("--no-reattach", is_flag=True, help="Analyse the stored data; do not connect.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write results here.")
def recover(
    run_id: int | None,
    db: str | None,
    station_file: str | None,
    no_reattach: bool,
    json_file: str | None,
) -> None:
    """Finish RUN_ID, left unfinished by a program that stopped (without RUN_ID: list them).

    If the instrument still answers on its resource, the run reattaches: the instrument
    resends every frame after the last stored one, the run records to its end and is
    analysed. Otherwise the stored data is analysed. Either way the run ends "completed"
    with a detail starting "recovered:".
    """
    from instrument.recovery import interrupted_runs, recover_run
    from instrument.station import load_station
    from instrument.storage import Store

    store = Store(db)
    try:
        if run_id is None:
            found = interrupted_runs(store)
            if not found:
                console.print("no interrupted runs")
                return
            table = Table(title="Interrupted runs (finish one with: hemocompat recover RUN)")
            for col in ("run", "protocol", "started", "stored", "instrument", "resource"):
                table.add_column(col)
            for r in found:
                where = "built-in simulator (ended)" if r.builtin_simulator else r.resource
                table.add_row(
                    str(r.run_id),
                    r.title,
                    r.started_at or "",
                    f"{r.extent.samples} samples, {r.extent.reached_s:.1f} of {r.duration_s:.0f} s",
                    r.instrument,
                    where or "",
                )
            console.print(table)
            return
        station = load_station(station_file) if station_file else None
        outcome = recover_run(store, run_id, station=station, reattach=not no_reattach)
    finally:
        store.close()
    _print_outcome(outcome)
    if json_file:
        Path(json_file).write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
        console.print(f"results written to {json_file}")
    if outcome.status != "completed":
        raise SystemExit(1)


# -- database schema ------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """The results database: schema revision and migrations (SQLite or PostgreSQL)."""


def _schema_revision(url: str) -> str | None:
    """The schema revision of the database at ``url`` (None: no schema yet)."""
    import sqlalchemy as sa

    from instrument import migrations

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None  # not created here by looking
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return migrations.current(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise HemocompatError(
            f"cannot read the database {url}: {exc.__class__.__name__}: "
            f"{str(exc).strip().splitlines()[0]}. Check the path or URL and that the server "
            "is running."
        ) from exc
    finally:
        engine.dispose()


@db.command("status")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
def db_status(db: str | None) -> None:
    """Show the database's schema revision and whether it is the newest."""
    from instrument import migrations
    from instrument.storage import db_url

    url = db_url(db)
    revision = _schema_revision(url)
    head = migrations.head()
    state = "up to date" if revision == head else f"needs `hemocompat db upgrade` (to {head})"
    console.print(f"{url}: schema revision {revision or 'none'} — {state}", markup=False)


@db.command("upgrade")
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
def db_upgrade(db: str | None) -> None:
    """Migrate the database to the newest schema (opening it from the program does the same)."""
    from instrument import migrations
    from instrument.storage import Store, db_url

    url = db_url(db)
    before = _schema_revision(url)
    Store(url).close()
    console.print(f"{url}: schema revision {before or 'none'} → {migrations.head()}", markup=False)


@cli.command()
def ports() -> None:
    """List serial ports and VISA resources on this machine."""
    from drivers.transport import available_serial_ports, available_visa_resources

    found = available_serial_ports()
    console.print("serial ports: " + (", ".join(found) if found else "none found"))
    visa = available_visa_resources()
    console.print("VISA resources: " + (", ".join(visa) if visa else "none found"))
    console.print(
        "(a plate reader on a raw socket is not announced: use TCPIP::HOST::PORT::SOCKET)"
    )


@cli.command()
@click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
@click.option("--speed", default="max", help="Simulation speed.  [default: max]")
@requires(TECHNICIAN)
def demo(db: str | None, speed: str) -> None:
    """Run the bundled NATEM dose-series protocol on simulated instruments."""
    from protocols import bundled_protocols, load_protocol

    path = next(p for p in bundled_protocols() if p.name == "natem-msc-dose-series.yaml")
    console.print(f"[bold]hemocompat demo[/]: {path.name} on a simulated TEM-4 (SIMULATED data)")
    outcome = execute_run(
        load_protocol(path),
        station_file=None,
        simulate=True,
        speed=parse_speed(speed),
        seed=0,
        db=db,
        operator="demo",
    )
    _print_outcome(outcome)
    console.print("see it again with: hemocompat runs show " + str(outcome.run_id))


register_compliance_commands(cli, protocol)


def _register_plugin_commands() -> None:
    """Add commands that other installed packages (the desktop app) register."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="hemocompat.commands"):
        try:
            command = entry.load()
        except ImportError as exc:  # an optional part that is not installed
            logging.getLogger(__name__).debug("command %s not available: %s", entry.name, exc)
            continue
        cli.add_command(command, entry.name)


_register_plugin_commands()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors are printed plainly (no traceback) with exit status 2."""
    errors = _user_errors()
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="hemocompat",
            standalone_mode=False,
        )
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except errors as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
