"""Terminal rendering of reports: the statistics table and a hypnogram drawn with rich."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sleeptrack.analysis import EPOCH_SECONDS, Hypnogram, StageScheme, parse_timezone

__all__ = ["hypnogram_text", "render_report", "stat_table"]

_STAGE_ROWS_FOUR = [(0, "Wake ", "yellow"), (3, "REM  ", "red"), (1, "Light", "cyan"), (2, "Deep ", "blue")]
_STAGE_ROWS_TWO = [(0, "Wake ", "yellow"), (1, "Sleep", "cyan")]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def _clock(value: str | None) -> str:
    return "—" if value is None else datetime.fromisoformat(value).strftime("%H:%M")


def stat_table(stat: Mapping[str, Any], title: str = "Sleep statistics") -> Table:
    """The main statistics of a Stat object (as returned by the Data API)."""
    table = Table(title=title, show_header=False, title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("Sleep index", str(stat.get("sleep_index") or "—"), "Time in bed", _duration(stat.get("time_in_bed"))),
        ("Fell asleep", _clock(stat.get("sleep_time")), "Woke up", _clock(stat.get("wake_time"))),
        ("Sleep latency", _duration(stat.get("sleep_latency")), "Wake latency", _duration(stat.get("wakeup_latency"))),
        ("Total sleep", _duration(stat.get("time_in_sleep")), "Sleep efficiency", _pct(stat.get("sleep_efficiency"))),
        ("Awake in the night", _duration(stat.get("time_in_wake")), "Awakenings", str(stat.get("waso_count", "—"))),
        ("Light", f"{_duration(stat.get('time_in_light'))} ({_pct(stat.get('light_ratio'))})",
         "Deep", f"{_duration(stat.get('time_in_deep'))} ({_pct(stat.get('deep_ratio'))})"),
        ("REM", f"{_duration(stat.get('time_in_rem'))} ({_pct(stat.get('rem_ratio'))})",
         "Sleep cycles", str(stat.get("sleep_cycle_count") if stat.get("sleep_cycle_count") is not None else "—")),
        ("Snoring", f"{_duration(stat.get('time_in_snoring'))} ({_pct(stat.get('snoring_ratio'))})",
         "Snoring bouts", str(stat.get("snoring_count") if stat.get("snoring_count") is not None else "—")),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    return table


def hypnogram_text(hypnogram: Hypnogram, width: int = 72) -> Text:
    """The hypnogram as coloured blocks: one row per stage, one column per time bin, then snoring."""
    n = hypnogram.n_epochs
    text = Text()
    if n == 0:
        text.append("(no epochs)")
        return text
    bins = min(width, n)
    edges = np.linspace(0, n, bins + 1).astype(int)
    stages = hypnogram.stages
    modes = []
    for a, b in itertools.pairwise(edges):
        chunk = stages[a : max(b, a + 1)]
        values, counts = np.unique(chunk, return_counts=True)
        modes.append(int(values[np.argmax(counts)]))
    rows = _STAGE_ROWS_FOUR if hypnogram.scheme is StageScheme.FOUR else _STAGE_ROWS_TWO
    for code, label, colour in rows:
        text.append(f"{label} ", style="bold")
        for mode in modes:
            text.append("█" if mode == code else ("░" if mode < 0 else " "), style=colour if mode == code else "dim")
        text.append("\n")
    if hypnogram.snoring is not None:
        text.append("Snore ", style="bold")
        for a, b in itertools.pairwise(edges):
            snoring = hypnogram.snoring[a : max(b, a + 1)]
            text.append("▮" if np.any(snoring == 1) else " ", style="magenta")
        text.append("\n")
    tz = parse_timezone(hypnogram.timezone)
    axis = [" "] * bins
    start = hypnogram.start_time.astimezone(tz)
    first_hour = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    t = first_hour
    while t < hypnogram.end_time:
        col = int((t - start).total_seconds() / EPOCH_SECONDS / n * bins)
        label = t.strftime("%H:%M")
        if col + len(label) <= bins and all(c == " " for c in axis[max(col - 1, 0) : col + len(label)]):
            axis[col : col + len(label)] = list(label)
        t += timedelta(hours=1)
    text.append("      " + "".join(axis), style="dim")
    return text


def render_report(console: Console, result: Mapping[str, Any], hypnogram: Hypnogram, title: str) -> None:
    """Print a Data API result: statistics, hypnogram, peculiarities and the model that produced it."""
    parts: list[Any] = []
    stat = result.get("stat")
    if stat:
        parts.append(stat_table(stat))
    else:
        parts.append(Text("No statistics: the session is not analysable.", style="yellow"))
    parts.append(Text(""))
    parts.append(hypnogram_text(hypnogram, width=max(24, min(96, console.width - 12))))
    peculiarities = [p for p in result.get("peculiarities", []) if p != "NO_BREATHING_STABILITY"]
    footer = f"missing data {100 * float(result.get('missing_data_ratio', 0.0)):.0f} %"
    if peculiarities:
        footer += " · " + ", ".join(peculiarities)
    footer += f" · model {result.get('model_version') or hypnogram.model_version or '—'}"
    parts.append(Text(footer, style="dim"))
    console.print(Panel(Group(*parts), title=title, title_align="left", expand=False))
