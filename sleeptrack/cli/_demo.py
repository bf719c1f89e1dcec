"""``sleeptrack demo``: simulate a night, analyse it, and compare the report with the truth."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import app, console, err_console, fail
from ._progress import epoch_progress


@app.command("demo")
def demo_command(
    hours: Annotated[float, typer.Option(help="Length of the simulated night.")] = 7.5,
    seed: Annotated[int, typer.Option(help="Seed of the simulated night.")] = 900_001,
    out: Annotated[Path | None, typer.Option(help="Keep the night's audio, truth and figure in this folder.")] = None,
) -> None:
    """Simulate a night (test split: sounds and hypnograms the model never saw), analyse its audio and
    print the report next to the truth's."""
    from sleeptrack.analysis import agreement, analyze_recording, build_report, load_engine, parse_timezone
    from sleeptrack.analysis._metrics import NightPair
    from sleeptrack.sim import NightConfig, SimulationError, simulate_night

    from ._render import render_report

    folder = out or Path(tempfile.mkdtemp(prefix="sleeptrack-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    audio, truth_path = folder / "night.flac", folder / "night.json"
    try:
        config = NightConfig(hours=hours, seed=seed, split="test")
    except SimulationError as exc:
        fail(str(exc))
    with epoch_progress("Simulating the night", console=err_console) as advance:
        truth = simulate_night(config, audio, truth_path, progress=advance)
    engine = load_engine()
    hyp = truth.hypnogram
    with epoch_progress("Analysing its sound", console=err_console) as advance:
        analysis = analyze_recording(audio, hyp.start_time, hyp.timezone, engine, progress=advance)

    true_report = build_report("truth", hyp.stages, hyp.start_time, analysis.end_time, snoring_stages=hyp.snoring)
    tz = parse_timezone(hyp.timezone)
    render_report(console, true_report.to_dict(tz, hyp.timezone), hyp, "The truth (simulator)")
    render_report(
        console, analysis.result_dict(), analysis.hypnogram, f"sleeptrack's analysis of the sound ({engine.version})"
    )

    pair = NightPair("demo", hyp.stages, analysis.staging.stages, hyp.snoring, analysis.staging.snoring)
    agree = agreement([pair])
    table = Table(title="Agreement with the truth", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("4-stage epoch accuracy", f"{agree.stages.accuracy:.1%}")
    table.add_row("Cohen's kappa", f"{agree.stages.kappa:.2f}")
    table.add_row("wake/sleep accuracy", f"{agree.two_stage.accuracy:.1%}")
    if agree.snoring_f1 is not None:
        table.add_row("snoring F1", f"{agree.snoring_f1:.2f}")
    for key, ba in agree.nights.items():
        table.add_row(f"{key} error", f"{ba.bias:+.1f} {ba.unit}")
    console.print(table)
    if out is not None:
        from sleeptrack.analysis import plot_hypnogram

        try:
            plot_hypnogram(analysis.hypnogram, folder / "night.png", truth=hyp)
            console.print(f"audio, truth and figure in [bold]{folder}[/]")
        except RuntimeError as exc:
            err_console.print(f"[yellow]no figure:[/] {exc}")
