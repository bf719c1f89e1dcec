"""``sleeptrack report | sessions | average``: reports from a server, through the SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ._app import app, console, err_console, fail
from ._sdk_opts import (
    ApiKeyOption,
    ConfigOption,
    ServerOption,
    TimezoneOption,
    UserIdOption,
    describe_error,
    join,
    resolve_settings,
)

if TYPE_CHECKING:
    from sleeptrack.sdk import AsleepConfig, Report


def show_report(report: Report, title: str, plot: Path | None = None) -> None:
    """Statistics table and terminal hypnogram of a report (and a figure with ``plot``)."""
    from ._render import render_report

    render_report(console, report.to_dict(), report.hypnogram, title)
    if plot is not None:
        write_plot(report, plot, title)


def write_plot(report: Report, plot: Path, title: str) -> None:
    from sleeptrack.analysis import plot_hypnogram

    try:
        plot_hypnogram(report.hypnogram, plot, title=title)
    except (RuntimeError, ValueError, OSError) as exc:
        fail(f"could not write the figure: {exc}")
    err_console.print(f"figure written to [bold]{plot}[/]", highlight=False)


def fetch_report(config: AsleepConfig, session_id: str, wait: float = 0.0) -> Report:
    from sleeptrack.sdk import AsleepError, Reports, ReportTimeoutError

    with Reports(config) as reports:
        try:
            if wait > 0:
                with err_console.status(f"waiting for the analysis of {session_id} …"):
                    return reports.wait_until_complete(session_id, timeout=wait)
            return reports.get_report(session_id)
        except ReportTimeoutError as exc:
            err_console.print(f"[yellow]note:[/] {exc.detail}")
            if exc.last is None:
                fail(exc.detail)
            return exc.last
        except AsleepError as error:
            fail(describe_error(error))


@app.command("report")
def report_command(
    session_id: Annotated[str, typer.Argument(help="Session id (e.g. 20250115025029_fvivn).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the Data API result object.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Also write a hypnogram figure (PNG, SVG, PDF).")] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the analysis to be COMPLETE (0 = show it as it is).")
    ] = 0.0,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    user_id: UserIdOption = None,
    timezone: TimezoneOption = None,
    config: ConfigOption = None,
) -> None:
    """One session's sleep report: statistics, hypnogram and snoring."""
    cfg = join(resolve_settings(server, api_key, user_id, timezone, config), create=False)
    report = fetch_report(cfg, session_id, wait)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        if plot is not None:
            write_plot(report, plot, session_id)
        return
    show_report(report, f"Session {session_id} ({report.session.state.value})", plot)


@app.command("sessions")
def sessions_command(
    date_from: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD.")] = None,
    order: Annotated[str, typer.Option(help="DESC (newest first) or ASC.")] = "DESC",
    offset: Annotated[int, typer.Option(help="Sessions to skip.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (0-100).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    user_id: UserIdOption = None,
    timezone: TimezoneOption = None,
    config: ConfigOption = None,
) -> None:
    """The user's sleep sessions between two days (in the time zone's calendar)."""
    from sleeptrack.sdk import AsleepError, Reports

    cfg = join(resolve_settings(server, api_key, user_id, timezone, config), create=False)
    try:
        with Reports(cfg) as reports:
            items = reports.get_reports(date_from, date_to, order, offset, limit)
    except AsleepError as error:
        fail(describe_error(error))
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps([s.raw for s in items], indent=2))
        return
    table = Table(title=f"Sessions of {cfg.user_id}", title_justify="left")
    for col in ("session", "state", "start", "end", "in bed", "chunks"):
        table.add_column(col)
    tz = _tz(cfg.timezone)
    for s in items:
        tib = "—" if s.time_in_bed is None else f"{s.time_in_bed // 3600}h {s.time_in_bed % 3600 // 60:02d}m"
        chunks = "—" if s.last_received_seq_num is None else str(s.last_received_seq_num + 1)
        end = s.session_end_time.astimezone(tz).strftime("%Y-%m-%d %H:%M") if s.session_end_time else "—"
        table.add_row(
            s.session_id,
            s.state.value + (" (unexpected end)" if s.unexpected_end_time else ""),
            s.session_start_time.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            end,
            tib,
            chunks,
        )
    console.print(table if items else "no sessions in that period")


def _tz(name: str) -> Any:
    from sleeptrack.analysis import parse_timezone

    return parse_timezone(name)


_AVERAGE_ROWS = [
    ("Bedtime", "start_time", "clock"),
    ("Fell asleep", "sleep_time", "clock"),
    ("Woke up", "wake_time", "clock"),
    ("Out of bed", "end_time", "clock"),
    ("Time in bed", "time_in_bed", "duration"),
    ("Total sleep", "time_in_sleep", "duration"),
    ("Sleep latency", "sleep_latency", "duration"),
    ("Awake in the night", "time_in_wake", "duration"),
    ("Light", "time_in_light", "duration"),
    ("Deep", "time_in_deep", "duration"),
    ("REM", "time_in_rem", "duration"),
    ("Sleep efficiency", "sleep_efficiency", "pct"),
    ("Awakenings", "waso_count", "count"),
    ("Sleep cycles", "sleep_cycle_count", "count"),
    ("Snoring", "time_in_snoring", "duration"),
]


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "duration":
        minutes = round(float(value) / 60)
        return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"
    if kind == "pct":
        return f"{100 * float(value):.0f} %"
    if kind == "clock":
        return str(value)[:5]
    return str(value)


@app.command("average")
def average_command(
    date_from: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    date_to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (at most 100 days later).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the Data API result object.")] = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    user_id: UserIdOption = None,
    timezone: TimezoneOption = None,
    config: ConfigOption = None,
) -> None:
    """Average sleep statistics over a period (clock times averaged on the circle)."""
    from sleeptrack.sdk import AsleepError, Reports

    cfg = join(resolve_settings(server, api_key, user_id, timezone, config), create=False)
    try:
        with Reports(cfg) as reports:
            avg = reports.get_average_report(date_from, date_to)
    except AsleepError as error:
        fail(describe_error(error))
    if as_json:
        typer.echo(json.dumps(avg.to_dict(), indent=2))
        return
    title = f"Average of {len(avg.slept_sessions)} night(s), {avg.start_date} – {avg.end_date} ({avg.timezone})"
    if not avg.average_stats:
        console.print(f"{title}: no analysed night in that period")
        return
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, key, kind in _AVERAGE_ROWS:
        table.add_row(label, _fmt(avg.average_stats.get(key), kind))
    console.print(table)
    if avg.never_slept_sessions:
        console.print(f"{len(avg.never_slept_sessions)} session(s) without sleep left out", style="dim")
