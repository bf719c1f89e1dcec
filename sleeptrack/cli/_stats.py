"""``sleeptrack stats``: AsleepTrack-style statistics for a hypnogram scored elsewhere."""

from __future__ import annotations

import json
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import app, console, err_console, fail


class Plan(StrEnum):
    basic = "basic"
    advanced = "advanced"


def read_codes(path: Path, what: str) -> tuple[list[int], dict[str, Any]]:
    """Read a JSON list of integer codes, or an object holding one (``stages`` / ``sleep_stages``)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        fail(f"{what} file not found: {path}")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {what} file {path}: {exc}")
    except json.JSONDecodeError as exc:
        fail(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})")
    meta: dict[str, Any] = {}
    if isinstance(data, dict):
        meta = data
        key = next((k for k in ("stages", "sleep_stages", "snoring_stages", "snoring") if k in data), None)
        if key is None:
            fail(f"{path}: expected a JSON list of codes or an object with a 'stages' list")
        data = data[key]
    if not isinstance(data, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
        fail(f"{path}: {what} must be a JSON list of integers, e.g. [0, 0, 1, 2, 3, -1]")
    return data, meta


@app.command("stats")
def stats_command(
    hypnogram: Annotated[
        Path,
        typer.Argument(help="JSON list of stage codes per 30-s epoch: -1 error, 0 wake, 1 light, 2 deep, 3 REM."),
    ],
    start: Annotated[
        str | None,
        typer.Option(help="Start of the first epoch, ISO-8601 (e.g. 2025-01-15T23:00:00+09:00)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="End of the recording, ISO-8601 (default: end of the last epoch).")
    ] = None,
    snoring: Annotated[Path | None, typer.Option(help="JSON list of snoring codes per epoch: -1, 0 or 1.")] = None,
    plan: Annotated[
        Plan, typer.Option(help="basic = 2-stage (wake/sleep); advanced = 4-stage with snoring.")
    ] = Plan.advanced,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the printed times.")] = "UTC",
    report: Annotated[
        bool, typer.Option("--report", help="Print the whole Data API result (peculiarities, session, stat).")
    ] = False,
) -> None:
    """Print the Stat object of the Data API for a hypnogram scored elsewhere.

    Researchers with hypnograms from polysomnography or another tracker get AsleepTrack-style
    statistics: latencies, stage times and ratios, WASO, sleep cycles, snoring and the sleep index.
    """
    from sleeptrack.analysis import (
        InvalidTimezoneError,
        StageScheme,
        build_report,
        parse_datetime,
        parse_timezone,
    )

    try:
        tz = parse_timezone(timezone)
    except InvalidTimezoneError as exc:
        fail(str(exc))
    stages, meta = read_codes(hypnogram, "hypnogram")
    if not stages:
        fail(f"{hypnogram}: the hypnogram is empty")
    start_text = start or meta.get("start_time")
    if not start_text:
        fail("--start is required (the hypnogram file does not give a start_time)")
    try:
        start_time = parse_datetime(str(start_text), tz)
        end_time = parse_datetime(end, tz) if end else start_time + timedelta(seconds=30 * len(stages))
    except ValueError as exc:
        fail(str(exc))
    if end_time <= start_time:
        fail("--end must be after --start")
    bad = sorted({s for s in stages if s < -1 or s > 3})
    if bad:
        fail(f"{hypnogram}: stage codes {bad} are outside -1..3")

    scheme = StageScheme.FOUR if plan is Plan.advanced else StageScheme.TWO
    if scheme is StageScheme.TWO:
        stages = [1 if s > 0 else s for s in stages]
    snoring_codes = None
    if snoring is not None:
        if plan is Plan.basic:
            err_console.print("[yellow]note:[/] the basic plan has no snoring analysis; --snoring is ignored")
        else:
            snoring_codes, _ = read_codes(snoring, "snoring")
            if len(snoring_codes) != len(stages):
                fail(f"{snoring} has {len(snoring_codes)} epochs but the hypnogram has {len(stages)}")
            if any(s not in (-1, 0, 1) for s in snoring_codes):
                fail(f"{snoring}: snoring codes must be -1, 0 or 1")

    result = build_report(
        "local",
        stages,
        start_time,
        end_time,
        snoring_stages=snoring_codes,
        scheme=scheme,
        created_timezone=timezone,
    )
    if report:
        console.print_json(data=result.to_dict(tz, timezone))
        return
    if result.stat is None:
        names = ", ".join(p.value for p in result.peculiarities)
        fail(f"no statistics: the recording is not analysable ({names}); see --report", code=1)
    console.print_json(data=result.stat.to_dict(tz))
