"""Charts drawn on the server as inline SVG (no JavaScript, no CDN, no plotting library).

Every builder is a pure function returning :class:`markupsafe.Markup` ready to drop into a template.
Colours come from CSS classes (``dashboard.css``), so the charts follow the page's theme; every shape has
a ``<title>`` (shown on hover, read by screen readers) and the root ``<svg>`` carries ``data-*``
attributes with what it shows (epochs, bars), which the tests read.

Conventions: the time axis is labelled in the time zone given (the session's own, by default), with
ticks on round clock times (every 5 min … 3 h, whichever gives at most ~10 ticks); DST and half-hour
offsets are handled by checking each candidate tick's local wall-clock time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from html import escape
from itertools import groupby

from markupsafe import Markup

__all__ = [
    "DayUsage",
    "NightBar",
    "NightStages",
    "bar_chart_svg",
    "format_duration",
    "hypnogram_svg",
    "snoring_svg",
    "stage_runs",
    "stage_shares_svg",
    "time_ticks",
    "usage_svg",
]

EPOCH_SECONDS = 30

_FOUR_ROWS = {0: 0, 3: 1, 1: 2, 2: 3}  # wake on top, then REM, light, deep (the clinical layout)
_FOUR_NAMES = {-1: "No data", 0: "Wake", 1: "Light", 2: "Deep", 3: "REM"}
_TWO_ROWS = {0: 0, 1: 1}
_TWO_NAMES = {-1: "No data", 0: "Wake", 1: "Sleep"}
_SNORE_NAMES = {-1: "No data", 0: "No snoring", 1: "Snoring"}
_TICK_STEPS_MIN = (5, 10, 15, 30, 60, 120, 180, 360)


def _f(value: float) -> str:
    """Coordinates with at most 2 decimals and no trailing zeros (keeps the markup small)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_duration(seconds: float | None) -> str:
    """``5h 23m``, ``12m``, ``30s``; an em dash for ``None``."""
    if seconds is None:
        return "—"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m" if not secs else f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class Run:
    """Consecutive epochs with the same code."""

    code: int
    start: int
    length: int


def stage_runs(codes: Sequence[int]) -> list[Run]:
    """The runs of equal consecutive codes (``[0, 0, 1] -> [Run(0, 0, 2), Run(1, 2, 1)]``)."""
    out: list[Run] = []
    position = 0
    for code, group in groupby(codes):
        length = sum(1 for _ in group)
        out.append(Run(int(code), position, length))
        position += length
    return out


def time_ticks(start: datetime, end: datetime, tz: tzinfo, max_ticks: int = 10) -> list[tuple[datetime, str]]:
    """Round clock times between ``start`` and ``end`` (inclusive) in ``tz``, labelled ``HH:MM``.

    The step is the smallest of 5, 10, 15, 30 minutes, 1, 2, 3, 6 hours that gives at most ``max_ticks``.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("tick bounds must be timezone-aware")
    # Absolute time: arithmetic on datetimes of one ZoneInfo is wall-clock arithmetic (wrong across DST).
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    span_min = max((end - start).total_seconds() / 60.0, 1.0)
    step = next((s for s in _TICK_STEPS_MIN if span_min / s <= max_ticks), _TICK_STEPS_MIN[-1])
    # Candidates every 5 minutes of absolute time, kept when their local wall clock is on the step: right
    # for every UTC offset (also +05:30 / +05:45) and across DST changes.
    first = start.replace(second=0, microsecond=0)
    first += timedelta(minutes=(-first.minute) % 5)
    if first < start:
        first += timedelta(minutes=5)
    ticks: list[tuple[datetime, str]] = []
    t = first
    while t <= end:
        local = t.astimezone(tz)
        if (local.hour * 60 + local.minute) % step == 0:
            ticks.append((t, local.strftime("%H:%M")))
        t += timedelta(minutes=5)
    return ticks


def _svg_open(css_class: str, width: float, height: float, label: str, data: dict[str, object]) -> str:
    attrs = "".join(f' data-{k}="{escape(str(v))}"' for k, v in data.items())
    return (
        f'<svg class="chart {css_class}" viewBox="0 0 {_f(width)} {_f(height)}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{escape(label)}"'
        f' xmlns="http://www.w3.org/2000/svg"{attrs}>'
    )


def _empty(css_class: str, width: float, height: float, message: str, data: dict[str, object]) -> Markup:
    return Markup(
        _svg_open(css_class, width, height, message, data)
        + f'<text class="empty" x="{_f(width / 2)}" y="{_f(height / 2)}" text-anchor="middle">{escape(message)}</text>'
        + "</svg>"
    )


def _clock(value: datetime, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%H:%M")


def _time_axis(
    parts: list[str], start: datetime, n_epochs: int, tz: tzinfo, x0: float, plot_w: float, y_top: float, y_axis: float
) -> None:
    start = start.astimezone(UTC)
    end = start + timedelta(seconds=EPOCH_SECONDS * n_epochs)
    total = (end - start).total_seconds()
    for tick, label in time_ticks(start, end, tz):
        x = x0 + (tick - start).total_seconds() / total * plot_w
        parts.append(
            f'<line class="grid" x1="{_f(x)}" y1="{_f(y_top)}" x2="{_f(x)}" y2="{_f(y_axis)}"/>'
            f'<text class="tick" x="{_f(x)}" y="{_f(y_axis + 14)}" text-anchor="middle">{label}</text>'
        )


def hypnogram_svg(
    stages: Sequence[int],
    start_time: datetime,
    tz: tzinfo,
    *,
    two_stage: bool = False,
    width: float = 960.0,
    height: float = 210.0,
) -> Markup:
    """Sleep stages over clock time: one ``<rect class="run s{code}">`` per run of equal epochs.

    Each run's rectangle carries ``data-stage``, ``data-start`` (first epoch) and ``data-epochs`` (its
    length); missing epochs (-1) are grey bands over the full height. The root has ``data-epochs`` (total).
    """
    data: dict[str, object] = {"epochs": len(stages), "scheme": "2-stage" if two_stage else "4-stage"}
    if not stages:
        return _empty("hypnogram", width, height, "No sleep stages yet", data)
    rows, names = (_TWO_ROWS, _TWO_NAMES) if two_stage else (_FOUR_ROWS, _FOUR_NAMES)
    start_time = start_time.astimezone(UTC)
    x0, right, top, bottom = 52.0, 8.0, 6.0, 24.0
    plot_w, plot_h = width - x0 - right, height - top - bottom
    row_h = plot_h / len(rows)
    n = len(stages)
    label = f"Hypnogram, {n} epochs from {_clock(start_time, tz)}"
    parts = [_svg_open("hypnogram", width, height, label, data)]
    for code, row in rows.items():
        y = top + row * row_h
        parts.append(
            f'<rect class="lane" x="{_f(x0)}" y="{_f(y)}" width="{_f(plot_w)}" height="{_f(row_h)}"/>'
            f'<text class="axis-label" x="{_f(x0 - 6)}" y="{_f(y + row_h / 2 + 4)}" text-anchor="end">'
            f"{names[code]}</text>"
        )
    _time_axis(parts, start_time, n, tz, x0, plot_w, top, top + plot_h)
    for run in stage_runs(stages):
        x = x0 + run.start / n * plot_w
        w = run.length / n * plot_w
        if run.code in rows:
            y, h = top + rows[run.code] * row_h, row_h
        else:  # -1 (or a code outside the scheme): a grey band over every row
            y, h = top, plot_h
        begin = start_time + timedelta(seconds=EPOCH_SECONDS * run.start)
        finish = begin + timedelta(seconds=EPOCH_SECONDS * run.length)
        name = names.get(run.code, f"Stage {run.code}")
        title = (
            f"{name} {_clock(begin, tz)}–{_clock(finish, tz)} · {format_duration(EPOCH_SECONDS * run.length)}"
            f" ({run.length} epoch{'s' if run.length != 1 else ''})"
        )
        parts.append(
            f'<rect class="run s{run.code}" x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}"'
            f' data-stage="{run.code}" data-start="{run.start}" data-epochs="{run.length}">'
            f"<title>{escape(title)}</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def snoring_svg(
    snoring: Sequence[int], start_time: datetime, tz: tzinfo, *, width: float = 960.0, height: float = 64.0
) -> Markup:
    """Snoring over clock time: a bar per snoring run (``rect.run.snore``), grey bands where data is missing."""
    n_snore = sum(1 for run in stage_runs(snoring) if run.code == 1)
    data: dict[str, object] = {"epochs": len(snoring), "snoring-runs": n_snore}
    if not snoring:
        return _empty("snoring", width, height, "No snoring data", data)
    x0, right, top, bottom = 52.0, 8.0, 6.0, 24.0
    plot_w, plot_h = width - x0 - right, height - top - bottom
    start_time = start_time.astimezone(UTC)
    n = len(snoring)
    label = f"Snoring timeline, {n_snore} snoring episode{'s' if n_snore != 1 else ''}"
    parts = [
        _svg_open("snoring", width, height, label, data),
        f'<rect class="lane" x="{_f(x0)}" y="{_f(top)}" width="{_f(plot_w)}" height="{_f(plot_h)}"/>',
        f'<text class="axis-label" x="{_f(x0 - 6)}" y="{_f(top + plot_h / 2 + 4)}" text-anchor="end">Snore</text>',
    ]
    _time_axis(parts, start_time, n, tz, x0, plot_w, top, top + plot_h)
    for run in stage_runs(snoring):
        if run.code == 0:
            continue
        x = x0 + run.start / n * plot_w
        w = max(run.length / n * plot_w, 0.8)  # a single epoch stays visible on an 8-hour axis
        begin = start_time + timedelta(seconds=EPOCH_SECONDS * run.start)
        finish = begin + timedelta(seconds=EPOCH_SECONDS * run.length)
        css = "snore" if run.code == 1 else "s-1"
        title = f"{_SNORE_NAMES.get(run.code, str(run.code))} {_clock(begin, tz)}–{_clock(finish, tz)} · " + (
            format_duration(EPOCH_SECONDS * run.length)
        )
        parts.append(
            f'<rect class="run {css}" x="{_f(x)}" y="{_f(top)}" width="{_f(w)}" height="{_f(plot_h)}"'
            f' data-start="{run.start}" data-epochs="{run.length}"><title>{escape(title)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


# ----------------------------------------------------------------------------------------- bar charts
def _nice_max(value: float, integer: bool = False) -> float:
    """Top of a 4-division axis at or above ``value``: 4 × a 1 / 2 / 2.5 / 5 × 10^k step (whole steps for counts)."""
    need = max(value, 1e-9) / 4
    magnitude = 10 ** math.floor(math.log10(need))
    for m in (1, 2, 2.5, 5, 10):
        step = m * magnitude
        if integer and (step < 1 or step != int(step)):
            continue
        if step >= need:
            return float(4 * step)
    return float(4 * 10 * magnitude)


@dataclass(frozen=True)
class DayUsage:
    """One day of the usage chart: sessions started that day (valid / invalid / not analysed yet), hours tracked."""

    day: date
    valid: int
    invalid: int
    hours: float
    pending: int = 0

    @property
    def total(self) -> int:
        return self.valid + self.invalid + self.pending


def usage_svg(days: Sequence[DayUsage], *, width: float = 960.0, height: float = 200.0) -> Markup:
    """Sessions per day as stacked bars (valid, invalid, in progress), one ``g.day`` per day."""
    data: dict[str, object] = {"days": len(days), "sessions": sum(d.total for d in days)}
    if not days:
        return _empty("usage", width, height, "No days", data)
    x0, right, top, bottom = 36.0, 8.0, 8.0, 24.0
    plot_w, plot_h = width - x0 - right, height - top - bottom
    y_max = _nice_max(max(max(d.total for d in days), 1), integer=True)
    label = f"Sessions per day over {len(days)} days: {data['sessions']} sessions"
    parts = [_svg_open("usage", width, height, label, data)]
    _y_grid(parts, y_max, x0, plot_w, top, plot_h, lambda v: _f(v))
    slot = plot_w / len(days)
    bar_w = max(slot * 0.7, 1.0)
    base = top + plot_h
    label_every = max(1, round(len(days) / 8))
    for i, d in enumerate(days):
        x = x0 + i * slot + (slot - bar_w) / 2
        title = (
            f"{d.day:%a %d %b %Y}: {d.total} session{'s' if d.total != 1 else ''}"
            f" ({d.valid} valid, {d.invalid} invalid, {d.pending} in progress), {d.hours:.1f} h tracked"
        )
        parts.append(
            f'<g class="day" data-date="{d.day.isoformat()}" data-valid="{d.valid}" data-invalid="{d.invalid}"'
            f' data-pending="{d.pending}"><title>{escape(title)}</title>'
            f'<rect class="hit" x="{_f(x0 + i * slot)}" y="{_f(top)}" width="{_f(slot)}" height="{_f(plot_h)}"/>'
        )
        y = base
        for css, count in (("valid", d.valid), ("invalid", d.invalid), ("pending", d.pending)):
            if not count:
                continue
            h = count / y_max * plot_h
            y -= h
            parts.append(f'<rect class="bar {css}" x="{_f(x)}" y="{_f(y)}" width="{_f(bar_w)}" height="{_f(h)}"/>')
        parts.append("</g>")
        if i % label_every == 0 or i == len(days) - 1:
            parts.append(
                f'<text class="tick" x="{_f(x0 + (i + 0.5) * slot)}" y="{_f(base + 14)}" text-anchor="middle">'
                f"{d.day:%d %b}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _y_grid(
    parts: list[str], y_max: float, x0: float, plot_w: float, top: float, plot_h: float, fmt: Callable[[float], str]
) -> None:
    for k in range(5):
        value = y_max * k / 4
        y = top + plot_h - value / y_max * plot_h
        parts.append(
            f'<line class="grid" x1="{_f(x0)}" y1="{_f(y)}" x2="{_f(x0 + plot_w)}" y2="{_f(y)}"/>'
            f'<text class="tick" x="{_f(x0 - 4)}" y="{_f(y + 4)}" text-anchor="end">{escape(fmt(value))}</text>'
        )


@dataclass(frozen=True)
class NightBar:
    """One night of a per-night chart; ``value`` None draws no bar (e.g. an invalid night)."""

    label: str
    value: float | None
    title: str


def bar_chart_svg(
    nights: Sequence[NightBar],
    *,
    y_max: float | None = None,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    css_class: str = "nights",
    average: float | None = None,
    width: float = 960.0,
    height: float = 200.0,
) -> Markup:
    """One bar per night (``rect.bar``) with the period's average as a dashed line (``line.average``)."""
    drawn = [n for n in nights if n.value is not None]
    data: dict[str, object] = {"nights": len(nights), "bars": len(drawn)}
    if not nights:
        return _empty(css_class, width, height, "No nights in this period", data)
    x0, right, top, bottom = 44.0, 8.0, 8.0, 24.0
    plot_w, plot_h = width - x0 - right, height - top - bottom
    top_value = y_max if y_max is not None else _nice_max(max((n.value or 0.0) for n in nights) * 1.05)
    parts = [_svg_open(css_class, width, height, f"{len(drawn)} nights", data)]
    _y_grid(parts, top_value, x0, plot_w, top, plot_h, fmt)
    slot = plot_w / len(nights)
    bar_w = max(min(slot * 0.7, 48.0), 1.0)
    base = top + plot_h
    label_every = max(1, round(len(nights) / 10))
    for i, night in enumerate(nights):
        cx = x0 + (i + 0.5) * slot
        if night.value is not None:
            h = max(0.0, min(night.value, top_value)) / top_value * plot_h
            parts.append(
                f'<rect class="bar" x="{_f(cx - bar_w / 2)}" y="{_f(base - h)}" width="{_f(bar_w)}" height="{_f(h)}">'
                f"<title>{escape(night.title)}</title></rect>"
            )
        if i % label_every == 0 or i == len(nights) - 1:
            parts.append(
                f'<text class="tick" x="{_f(cx)}" y="{_f(base + 14)}" text-anchor="middle">{escape(night.label)}</text>'
            )
    if average is not None:
        y = base - max(0.0, min(average, top_value)) / top_value * plot_h
        parts.append(
            f'<line class="average" x1="{_f(x0)}" y1="{_f(y)}" x2="{_f(x0 + plot_w)}" y2="{_f(y)}">'
            f"<title>Average {escape(fmt(average))}</title></line>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class NightStages:
    """Stage shares of one night's sleep period (ratios 0..1); 2-stage nights give only wake and sleep."""

    label: str
    wake: float
    light: float | None
    deep: float | None
    rem: float | None
    sleep: float | None = None
    title: str = ""


def stage_shares_svg(nights: Sequence[NightStages], *, width: float = 960.0, height: float = 200.0) -> Markup:
    """A 100 % stacked bar per night: wake, REM, light, deep (or wake and sleep for 2-stage nights)."""
    data: dict[str, object] = {"nights": len(nights)}
    if not nights:
        return _empty("stages", width, height, "No nights in this period", data)
    x0, right, top, bottom = 44.0, 8.0, 8.0, 24.0
    plot_w, plot_h = width - x0 - right, height - top - bottom
    parts = [_svg_open("stages", width, height, f"Stage shares of {len(nights)} nights", data)]
    _y_grid(parts, 1.0, x0, plot_w, top, plot_h, lambda v: f"{v * 100:.0f}%")
    slot = plot_w / len(nights)
    bar_w = max(min(slot * 0.7, 48.0), 1.0)
    base = top + plot_h
    label_every = max(1, round(len(nights) / 10))
    for i, night in enumerate(nights):
        cx = x0 + (i + 0.5) * slot
        if night.light is None or night.deep is None or night.rem is None:
            segments = [("s0", "Wake", night.wake), ("s1", "Sleep", night.sleep or max(0.0, 1.0 - night.wake))]
        else:
            segments = [("s2", "Deep", night.deep), ("s1", "Light", night.light), ("s3", "REM", night.rem)]
            segments.append(("s0", "Wake", night.wake))
        parts.append(f'<g class="night"><title>{escape(night.title or night.label)}</title>')
        y = base
        for css, name, share in segments:
            h = max(0.0, share) * plot_h
            y -= h
            parts.append(
                f'<rect class="seg {css}" x="{_f(cx - bar_w / 2)}" y="{_f(y)}" width="{_f(bar_w)}" height="{_f(h)}"'
                f' data-share="{share:.3f}"><title>{escape(f"{night.label} {name} {share * 100:.0f}%")}</title></rect>'
            )
        parts.append("</g>")
        if i % label_every == 0 or i == len(nights) - 1:
            parts.append(
                f'<text class="tick" x="{_f(cx)}" y="{_f(base + 14)}" text-anchor="middle">{escape(night.label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
