"""``sleeptrack simulate``: write simulated nights (audio + truth JSON)."""

from __future__ import annotations

import time
from collections import Counter
from enum import StrEnum
from pathlib import Path

import numpy as np
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from sleeptrack._data import shared_data_dir
from sleeptrack.analysis import EPOCH_SECONDS, format_time, parse_timezone
from sleeptrack.sim import (
    NightConfig,
    NightSimulator,
    NightTruth,
    SimulationError,
    fit_hypnogram_model,
    packaged_model_path,
)
from sleeptrack.sim._audio_io import audio_format

from ._app import app, console, fail

__all__ = ["simulate"]

_STAGES = ("wake", "light", "deep", "REM")


class SplitChoice(StrEnum):
    train = "train"
    test = "test"
    any = "any"


class NoiseChoice(StrEnum):
    fan = "fan"
    traffic = "traffic"
    rain = "rain"
    quiet = "quiet"
    mixed = "mixed"


class FormatChoice(StrEnum):
    flac = "flac"
    wav = "wav"
    ogg = "ogg"
    mp3 = "mp3"


def _percentages(truth: NightTruth) -> list[float]:
    stages = truth.sleep_stages
    return [100.0 * float(np.mean(stages == k)) for k in range(4)]


def _snoring_share(truth: NightTruth) -> float:
    asleep = truth.sleep_stages > 0
    return 100.0 * float(truth.snoring_stages[asleep].mean()) if asleep.any() else 0.0


def _source_label(truth: NightTruth, short: bool = False) -> str:
    names = [h.removeprefix("hypnograms/") for h in truth.source["hypnograms"]]
    if short and len(names) > 1:
        return f"{names[0]} +{len(names) - 1}"
    return " + ".join(names)


def _night_summary(truth: NightTruth, audio: Path, truth_path: Path, seconds: float) -> Table:
    p = truth.profile
    tz = parse_timezone(truth.timezone)
    table = Table(title=f"Simulated night (seed {truth.seed})", show_header=False, title_justify="left")
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    end = truth.hypnogram.end_time
    table.add_row("files", f"{audio}  +  {truth_path}")
    span = f"{format_time(truth.start_time, tz)} → {format_time(end, tz)}"
    table.add_row("night", f"{span}  ({truth.n_epochs} epochs, split {truth.split})")
    table.add_row("hypnogram", f"{truth.source['hypnogram_kind']}: {_source_label(truth)}")
    shares = "  ".join(f"{name} {pct:4.1f} %" for name, pct in zip(_STAGES, _percentages(truth), strict=True))
    latency = truth.source["sleep_latency_epochs"] * EPOCH_SECONDS / 60
    table.add_row("stages", f"{shares}   (sleep latency {latency:.0f} min)")
    snore_line = f"{_snoring_share(truth):.1f} % of sleep epochs, {len(truth.snores)} snores"
    table.add_row("snoring", snore_line if p.snorer else "not a snorer")
    table.add_row(
        "sleeper",
        f"{p.sex}, breathing {p.base_rate_bpm:.1f}/min in light sleep, "
        f"{'snorer' if p.snorer else 'non-snorer'}, {p.breath_source} breath sounds",
    )
    table.add_row(
        "room",
        f"{p.noise} noise at {p.noise_level_db:.0f} dBFS, breathing SNR {p.snr_db:.1f} dB, "
        f"microphone {p.mic_distance_m:.1f} m",
    )
    events = Counter(e.type for e in truth.events)
    table.add_row("events", ", ".join(f"{k} {v}" for k, v in sorted(events.items())) or "none")
    table.add_row("time", f"{seconds:.1f} s")
    return table


def _batch_summary(truths: list[NightTruth], out_dir: Path, seconds: float) -> Table:
    table = Table(title=f"{len(truths)} simulated nights in {out_dir} ({seconds:.0f} s)", title_justify="left")
    for name in ("seed", "wake %", "light %", "deep %", "REM %", "snoring %", "noise", "SNR dB", "hypnogram"):
        table.add_column(name, justify="left" if name in ("noise", "hypnogram") else "right")
    shown = truths if len(truths) <= 12 else truths[:10]
    for t in shown:
        pct = _percentages(t)
        table.add_row(
            str(t.seed),
            *(f"{v:.1f}" for v in pct),
            f"{_snoring_share(t):.1f}",
            t.profile.noise,
            f"{t.profile.snr_db:.1f}",
            _source_label(t, short=True),
        )
    if len(shown) < len(truths):
        table.add_row("…", *([""] * 8))
    mean = np.mean([_percentages(t) for t in truths], axis=0)
    table.add_row(
        "mean",
        *(f"{v:.1f}" for v in mean),
        f"{np.mean([_snoring_share(t) for t in truths]):.1f}",
        f"{sum(t.profile.snorer for t in truths)} snorers",
        f"{np.median([t.profile.snr_db for t in truths]):.1f} (median)",
        "",
        style="bold",
    )
    return table


def _fit_model(out: Path | None) -> None:
    data_dir = shared_data_dir()
    if data_dir is None:
        fail("fitting the hypnogram model needs the real data: ../shared/data or $SLEEPTRACK_SHARED_DATA")
    model = fit_hypnogram_model(data_dir, "train")
    target = out or packaged_model_path()
    model.save(target)
    rng = np.random.default_rng(0)
    nights = np.array([[np.mean(model.sample(900, rng) == k) for k in range(4)] for _ in range(50)])
    shares = ", ".join(f"{n} {100 * v:.1f} %" for n, v in zip(_STAGES, nights.mean(axis=0), strict=True))
    collections = ", ".join(f"{k} {v}" for k, v in model.fitted_on["collections"].items())
    console.print(f"fitted on {model.fitted_on['n_nights']} train-side hypnograms ({collections})")
    console.print(f"50 sampled 7.5-h sleep periods: {shares}")
    console.print(f"wrote {target}")


@app.command("simulate")
def simulate(
    hours: float = typer.Option(8.0, "--hours", help="Length of the recording in hours (whole 30-s epochs)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed and options give the same night, bit for bit."),
    out: Path | None = typer.Option(
        None, "--out", help="Audio file to write; its suffix picks the format: .flac, .wav, .ogg or .mp3."
    ),
    truth: Path | None = typer.Option(None, "--truth", help="Truth JSON to write [default: --out with .json]."),
    start: str | None = typer.Option(
        None,
        "--start",
        help="Start of the recording, ISO 8601 (2025-01-15T23:00:00+09:00); without an offset it is read "
        "in --timezone. [default: 23:00 local time on 2025-01-15]",
    ),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA time zone of the sleeper (Asia/Seoul ...)."),
    split: SplitChoice = typer.Option(
        SplitChoice.any,
        "--split",
        help="Which real hypnograms and recordings may be used: the train or test side of the data split, or any.",
    ),
    hypnogram: str | None = typer.Option(
        None,
        "--hypnogram",
        help="Drive the night with this real hypnogram (its path in the data folder, e.g. "
        "'hypnograms/mass/01-03-0001 PSG.json') or 'model' (the packaged model). [default: drawn]",
    ),
    snorer: bool | None = typer.Option(
        None,
        "--snorer/--no-snorer",
        help="Whether the sleeper snores. [default: drawn, 44 % of men, 28 % of women]",
    ),
    noise: NoiseChoice | None = typer.Option(
        None, "--noise", help="Background noise of the room. [default: drawn]", case_sensitive=False
    ),
    snr: float | None = typer.Option(
        None,
        "--snr",
        help="Breathing signal-to-noise ratio in dB (light-sleep exhalation RMS over noise RMS). "
        "[default: drawn, median about 10 dB]",
    ),
    count: int = typer.Option(
        1, "--count", help="Write this many nights, seeds seed … seed+N-1, into --out-dir.", min=1
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", help="Folder for --count nights: night-<seed>.flac + night-<seed>.json each."
    ),
    file_format: FormatChoice = typer.Option(
        FormatChoice.flac, "--format", help="Audio format of the --out-dir nights.", case_sensitive=False
    ),
    fit_hypnogram_model_: bool = typer.Option(
        False,
        "--fit-hypnogram-model",
        help="Instead of simulating, refit the packaged hypnogram model to the train-side real hypnograms "
        "(written to --out if given).",
    ),
) -> None:
    """Simulate nights of bedroom sound with their ground truth (stages, snoring, events)."""
    if fit_hypnogram_model_:
        try:
            _fit_model(out)
        except (SimulationError, OSError) as exc:
            fail(str(exc))
        return
    if out_dir is None and out is None:
        fail("say where to write: --out night.flac (one night) or --count N --out-dir DIR")
    if out_dir is not None and (out is not None or truth is not None):
        fail("--out-dir writes night-<seed>.flac/.json pairs; do not combine it with --out or --truth")
    if out_dir is None and count > 1:
        fail("--count needs --out-dir (the folder for the nights)")
    try:
        configs = [
            NightConfig(
                hours=hours,
                seed=seed + k,
                start_time=start,
                timezone=timezone,
                split=split.value,
                hypnogram_id=hypnogram,
                snorer=snorer,
                noise=None if noise is None else noise.value,
                snr_db=snr,
            )
            for k in range(count)
        ]
        if out_dir is not None:
            if out_dir.exists() and not out_dir.is_dir():
                fail(f"{out_dir} exists and is not a folder")
            out_dir.mkdir(parents=True, exist_ok=True)
            targets = [
                (out_dir / f"night-{c.seed}.{file_format.value}", out_dir / f"night-{c.seed}.json") for c in configs
            ]
        else:
            assert out is not None
            audio_format(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            truth_path = truth or out.with_suffix(".json")
            truth_path.parent.mkdir(parents=True, exist_ok=True)
            targets = [(out, truth_path)]
        _run(configs, targets)
    except (SimulationError, OSError) as exc:
        fail(str(exc))


def _run(configs: list[NightConfig], targets: list[tuple[Path, Path]]) -> None:
    started = time.perf_counter()
    truths: list[NightTruth] = []
    total = sum(c.n_epochs for c in configs)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("preparing", total=total)
        done = 0
        for config, (audio, truth_path) in zip(configs, targets, strict=True):
            progress.update(task, description=f"night {config.seed}: preparing")
            sim = NightSimulator(config)
            progress.update(task, description=f"night {config.seed}: writing {audio.name}")

            def advance(epochs: int, _total: int, offset: int = done) -> None:
                progress.update(task, completed=offset + epochs)

            truths.append(sim.write(audio, truth_path, progress=advance))
            done += config.n_epochs
    seconds = time.perf_counter() - started
    if len(truths) == 1:
        console.print(_night_summary(truths[0], targets[0][0], targets[0][1], seconds))
    else:
        console.print(_batch_summary(truths, targets[0][0].parent, seconds))
