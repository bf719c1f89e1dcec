"""``sleeptrack analyze``: the report of a recorded night, from the audio file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._app import app, console, err_console, fail
from ._progress import epoch_progress


@app.command("analyze")
def analyze_command(
    recording: Annotated[Path, typer.Argument(help="Night recording: WAV, MP3, FLAC or OGG at 16/44.1/48 kHz.")],
    start: Annotated[
        str | None,
        typer.Option(help="When the recording started, ISO-8601 (default: file time minus its length)."),
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the report (e.g. Asia/Seoul).")] = "UTC",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print exactly the Data API result object (no progress bar).")
    ] = False,
    plot: Annotated[Path | None, typer.Option(help="Also write a hypnogram + snoring figure (PNG, SVG, PDF).")] = None,
    two_stage: Annotated[bool, typer.Option("--two-stage", help="Wake / sleep only (basic plans).")] = False,
    model: Annotated[
        Path | None,
        typer.Option(help="Model artifact (.npz) to use instead of the default.", envvar="SLEEPTRACK_MODEL"),
    ] = None,
) -> None:
    """Analyse a night recording: sleep stages, snoring and every statistic of the Data API.

    The file is streamed in 30-second chunks, so memory stays flat for nights of any length.
    """
    from sleeptrack.analysis import (
        AudioFormatError,
        InvalidTimezoneError,
        ModelError,
        StageScheme,
        analyze_recording,
        load_engine,
        parse_datetime,
        parse_timezone,
    )

    try:
        tz = parse_timezone(timezone)
        start_time = parse_datetime(start, tz) if start else None
    except (InvalidTimezoneError, ValueError) as exc:
        fail(str(exc))
    if not recording.is_file():
        fail(f"recording not found: {recording}")
    try:
        engine = load_engine(model)
    except ModelError as exc:
        fail(str(exc))
    scheme = StageScheme.TWO if two_stage else StageScheme.FOUR
    try:
        with epoch_progress(f"Analysing {recording.name}", enabled=not as_json, console=err_console) as advance:
            analysis = analyze_recording(recording, start_time, timezone, engine, scheme, progress=advance)
    except AudioFormatError as exc:
        fail(f"{recording}: {exc}")
    result = analysis.result_dict()
    if plot is not None:
        from sleeptrack.analysis import plot_hypnogram

        try:
            plot_hypnogram(analysis.hypnogram, plot, title=f"{recording.name} — {engine.version}")
        except (RuntimeError, ValueError, OSError) as exc:
            fail(f"could not write the figure: {exc}")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from ._render import render_report

    render_report(console, result, analysis.hypnogram, f"{recording.name}")
    if plot is not None:
        console.print(f"figure written to [bold]{plot}[/]")
