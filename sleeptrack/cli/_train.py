"""``sleeptrack train`` and ``sleeptrack evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sleeptrack.training._run import TrainConfig

from ._app import app, console, err_console, fail

#: The options' defaults are the configuration that rebuilds the shipped model.
_DEFAULT = TrainConfig()


@app.command("train")
def train_command(
    nights: Annotated[
        Path | None,
        typer.Option(help="Folder of your own scored nights: X.wav/.flac/.mp3/.ogg + X.json (stage codes per epoch)."),
    ] = None,
    simulated: Annotated[
        int, typer.Option(help="Simulated training nights (0 = only your own nights).")
    ] = _DEFAULT.simulated_nights,
    validation: Annotated[
        int, typer.Option(help="Simulated nights used to tune and report the model.")
    ] = _DEFAULT.validation_nights,
    seed: Annotated[
        int, typer.Option(help="Seed of the whole run: same seed and library versions, same model.")
    ] = _DEFAULT.seed,
    version: Annotated[str | None, typer.Option(help="Model name (default: the shipped model's name).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for <version>.npz + .json (default: the package's models).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Processes simulating nights in parallel.")] = _DEFAULT.workers,
) -> None:
    """Train the analysis engine.

    Without options this rebuilds the default model that ships with sleeptrack, from simulated nights
    (train split of the real hypnograms and sounds) and the real snoring clips. With --nights DIR it also
    learns from your own scored recordings; with --simulated 0 only from them.
    """
    from sleeptrack.analysis import DEFAULT_MODEL, ModelError
    from sleeptrack.training._run import train_model

    if simulated < 0 or validation < 0 or workers < 1:
        fail("--simulated and --validation must be ≥ 0 and --workers ≥ 1")
    if nights is None and simulated == 0:
        fail("nothing to train on: give --nights DIR or simulated nights")
    if nights is not None and not nights.is_dir():
        fail(f"not a folder: {nights}")
    if version is None and (nights is not None or out is not None):
        version = "sleeptrack-engine-custom"
    config = TrainConfig(
        simulated_nights=simulated,
        validation_nights=validation if simulated else 0,
        seed=seed,
        version=version or DEFAULT_MODEL,
        user_nights=nights,
        workers=workers,
    )
    if out is not None:
        config.out_dir = out
    total = simulated + config.validation_nights
    done = 0

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("preparing nights", total=total or None)

        def on_night(name: str) -> None:
            nonlocal done
            done += 1
            progress.update(task, completed=done, description=f"prepared {name}")

        def say(message: str) -> None:
            progress.console.print(f"[dim]·[/] {message}")
            progress.update(task, description=message)

        try:
            engine, path, metadata = train_model(config, say, on_night)
        except (ValueError, ModelError, FileNotFoundError) as exc:
            fail(str(exc))
    metrics = metadata.get("validation_metrics") or {}
    console.print(f"model [bold]{engine.version}[/] written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if metrics:
        full = metrics["full_night"]
        console.print(
            f"validation ({metrics['nights']} nights): accuracy {full['accuracy']:.3f}, kappa {full['kappa']:.3f}, "
            f"snoring F1 {full['snoring_f1']}, real-time accuracy {metrics['realtime']['accuracy']:.3f}"
        )
    console.print(f"training took {metadata['training']['seconds']} s")


@app.command("evaluate")
def evaluate_command(
    nights: Annotated[
        Path, typer.Option(help="Folder of X.flac + X.json pairs (as written by `sleeptrack simulate`).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a confusion-matrix + Bland-Altman figure.")] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model artifact (.npz) to evaluate.", envvar="SLEEPTRACK_MODEL")
    ] = None,
) -> None:
    """Agreement with the truth: epoch accuracy, Cohen's kappa, per-stage F1, confusion matrix, snoring F1,
    and the bias and 95 % limits of agreement of TST, sleep efficiency, WASO and sleep latency."""
    from sleeptrack.analysis import AudioFormatError, ModelError, load_engine, plot_agreement
    from sleeptrack.training._evaluate import evaluate_nights

    if not nights.is_dir():
        fail(f"not a folder: {nights}")
    try:
        engine = load_engine(model)
    except ModelError as exc:
        fail(str(exc))
    from rich.progress import Progress

    with Progress(console=err_console, transient=True, disable=as_json) as progress:
        task = progress.add_task("evaluating", total=None)

        def on_night(name: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description=f"analysed {name}")

        try:
            report = evaluate_nights(nights, engine, on_night)
        except (ValueError, AudioFormatError) as exc:
            fail(str(exc))
    if plot is not None:
        try:
            plot_agreement(report, plot)
        except (RuntimeError, OSError) as exc:
            fail(f"could not write the figure: {exc}")
    data = report.to_dict()
    data["model_version"] = engine.version
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    _print_report(data)
    if plot is not None:
        console.print(f"figure written to [bold]{plot}[/]")


def _print_report(data: dict[str, object]) -> None:
    stages = data["stages"]
    assert isinstance(stages, dict)
    console.print(
        f"[bold]{len(data['per_night'])} nights[/] ({stages['n_epochs']} epochs), model {data['model_version']}: "  # type: ignore[arg-type]
        f"accuracy [bold]{stages['accuracy']:.3f}[/], Cohen's kappa [bold]{stages['kappa']:.3f}[/], "
        f"snoring F1 {data['snoring_f1']}"
    )
    per_stage = Table(title="Per stage", title_justify="left")
    for col in ("stage", "precision", "recall", "F1"):
        per_stage.add_column(col, justify="right" if col != "stage" else "left")
    for label, scores in stages["per_stage"].items():
        per_stage.add_row(label, f"{scores['precision']:.3f}", f"{scores['recall']:.3f}", f"{scores['f1']:.3f}")
    console.print(per_stage)
    confusion = Table(title="Confusion (rows: truth, columns: prediction)", title_justify="left")
    confusion.add_column("")
    labels = stages["labels"]
    for label in labels:
        confusion.add_column(label, justify="right")
    for label, row in zip(labels, stages["confusion"], strict=True):
        confusion.add_row(label, *(str(v) for v in row))
    console.print(confusion)
    nights = data["nights"]
    assert isinstance(nights, dict)
    table = Table(title="Night metrics: prediction − truth (Bland–Altman)", title_justify="left")
    for col in ("metric", "bias", "95 % limits of agreement", "truth mean"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for key, ba in nights.items():
        table.add_row(
            f"{key} ({ba['unit']})",
            f"{ba['bias']:+.1f}",
            f"[{ba['loa_low']:+.1f}, {ba['loa_high']:+.1f}]",
            f"{ba['truth_mean']:.1f}",
        )
    console.print(table)
