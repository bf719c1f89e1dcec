"""The Stat object of the Data API, computed from sleep stages, snoring stages, start and end time.

The rules follow the vendor's own calculator (Asleep's MIT package ``pysleep`` 0.2.0,
``SleepStageCalculator``) wherever it covers a field, and extend it where it does not:

* ``-1`` (error) epochs: excluded from every stage time; the sleep period runs from the first to the last
  sleep epoch, and ``time_in_sleep_period`` is the sum of the wake and sleep time inside it, so the stage
  ratios still sum to 1. Run-based metrics (``waso_count``, ``longest_waso``, ``snoring_count``) see
  through error epochs: a wake run interrupted only by error epochs is one run. For sleep cycles an
  error epoch counts as non-REM. Snoring is counted only on epochs whose stage is known, so
  ``time_in_snoring + time_in_no_snoring == time_in_sleep_period`` when snoring is known everywhere.
* snoring metrics, 2-stage plans, ``sleep_index`` and the documented nulls of NEVER_SLEPT sessions.

All durations are whole seconds; ratios have two decimals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt

from ._constants import EPOCH_SECONDS, Stage, StageScheme
from ._time import format_time

__all__ = [
    "REM_CLUSTER_GAP_EPOCHS",
    "REM_CLUSTER_MIN_EPOCHS",
    "SleepStat",
    "compute_stat",
    "sleep_index",
]

#: REM epochs separated by more than this many non-REM epochs start a new REM cluster (10 minutes).
REM_CLUSTER_GAP_EPOCHS = 20
#: A REM cluster needs at least this many REM epochs (10 minutes) to close a sleep cycle.
REM_CLUSTER_MIN_EPOCHS = 20

_CODES = npt.NDArray[np.int8]


@dataclass
class SleepStat:
    """Every field of the Data API's Stat object, in its documented order.

    Times are timezone-aware datetimes; :meth:`to_dict` renders the JSON of the Data API in a given
    time zone. Breathing-stability fields are always ``None`` (the reference no longer provides them and
    marks every session ``NO_BREATHING_STABILITY``).
    """

    sleep_time: datetime | None
    wake_time: datetime | None
    sleep_index: int | None
    sleep_latency: int | None
    wakeup_latency: int | None
    light_latency: int | None
    deep_latency: int | None
    rem_latency: int | None
    time_in_bed: int
    time_in_sleep_period: int
    time_in_sleep: int
    time_in_wake: int
    time_in_light: int | None
    time_in_deep: int | None
    time_in_rem: int | None
    time_in_snoring: int | None
    time_in_no_snoring: int | None
    sleep_efficiency: float
    sleep_ratio: float | None
    wake_ratio: float | None
    light_ratio: float | None
    deep_ratio: float | None
    rem_ratio: float | None
    snoring_ratio: float | None
    no_snoring_ratio: float | None
    waso_count: int
    longest_waso: int | None
    sleep_cycle_count: int | None
    sleep_cycle: int | None
    sleep_cycle_time: list[datetime] = field(default_factory=list)
    snoring_count: int | None = None

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        """The JSON object of the Data API (field order and nulls as documented)."""
        values = asdict(self)

        def when(value: datetime | None) -> str | None:
            return None if value is None else format_time(value, tz)

        return {
            "sleep_time": when(self.sleep_time),
            "wake_time": when(self.wake_time),
            "sleep_index": values["sleep_index"],
            "sleep_latency": values["sleep_latency"],
            "wakeup_latency": values["wakeup_latency"],
            "light_latency": values["light_latency"],
            "deep_latency": values["deep_latency"],
            "rem_latency": values["rem_latency"],
            "time_in_bed": values["time_in_bed"],
            "time_in_sleep_period": values["time_in_sleep_period"],
            "time_in_sleep": values["time_in_sleep"],
            "time_in_wake": values["time_in_wake"],
            "time_in_light": values["time_in_light"],
            "time_in_deep": values["time_in_deep"],
            "time_in_rem": values["time_in_rem"],
            "time_in_stable_breath": None,
            "time_in_unstable_breath": None,
            "time_in_snoring": values["time_in_snoring"],
            "time_in_no_snoring": values["time_in_no_snoring"],
            "sleep_efficiency": values["sleep_efficiency"],
            "sleep_ratio": values["sleep_ratio"],
            "wake_ratio": values["wake_ratio"],
            "light_ratio": values["light_ratio"],
            "deep_ratio": values["deep_ratio"],
            "rem_ratio": values["rem_ratio"],
            "stable_breath_ratio": None,
            "unstable_breath_ratio": None,
            "snoring_ratio": values["snoring_ratio"],
            "no_snoring_ratio": values["no_snoring_ratio"],
            "breathing_index": None,
            "breathing_pattern": None,
            "waso_count": values["waso_count"],
            "longest_waso": values["longest_waso"],
            "sleep_cycle_count": values["sleep_cycle_count"],
            "sleep_cycle": values["sleep_cycle"],
            "sleep_cycle_time": [when(t) for t in self.sleep_cycle_time],
            "unstable_breath_count": None,
            "snoring_count": values["snoring_count"],
        }

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# ------------------------------------------------------------------------------------------ sleep index
def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at or below ``lo``, 1 at or above ``hi``, linear between."""
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def sleep_index(time_in_sleep: int, sleep_efficiency: float, waso_count: int) -> int:
    """Sleep index, 50 (worst) to 100 (best), from sleep quantity, efficiency and awakenings.

    Three scores in [0, 1]:

    * duration ``d``: total sleep time in hours, 0 at ≤ 2 h rising linearly to 1 at 7 h, 1 up to 9 h, then
      −0.1 per hour (floor 0.7) — the 7–9 h adult recommendation (Hirshkowitz et al., Sleep Health 2015;
      Watson et al., SLEEP 2015);
    * efficiency ``e``: 0 at ≤ 50 %, 1 at ≥ 90 % (≥ 85 % marks good sleep quality, Ohayon et al.,
      Sleep Health 2017);
    * awakenings ``w``: 1 for ≤ 5 wake bouts, falling linearly to 0.3 at ≥ 30 (short bouts go unnoticed,
      many fragment sleep).

    ``sleep_index = round(50 + 50 · d^0.45 · e^0.35 · w^0.20)``. The weighted geometric mean makes a night
    with almost no sleep score 50 whatever its other scores, as in the reference's example report
    (18 minutes of sleep in an hour → 50).
    """
    hours = time_in_sleep / 3600.0
    d = _ramp(hours, 2.0, 7.0) if hours <= 9.0 else max(0.7, 1.0 - 0.1 * (hours - 9.0))
    e = _ramp(sleep_efficiency, 0.5, 0.9)
    w = 1.0 - 0.7 * _ramp(float(waso_count), 5.0, 30.0)
    score: float = 50.0 + 50.0 * (d**0.45) * (e**0.35) * (w**0.20)
    return math.floor(score + 0.5)


# --------------------------------------------------------------------------------------------- helpers
def _round2(value: float) -> float:
    """Two decimals, half-to-even on the float (Python's ``round``, as the vendor's calculator)."""
    return round(value, 2)


def _normalised_ratios(wake: int, light: int, deep: int, rem: int) -> tuple[float, float, float, float]:
    """Stage ratios rounded to hundredths that sum exactly to 1.

    Each ratio is rounded to two decimals; the rounding error is then taken off (or added to) the
    first non-zero ratio in the order light, REM, deep, wake, one hundredth at a time.
    """
    period = wake + light + deep + rem
    hundredths = [round(_round2(t / period) * 100) for t in (wake, light, deep, rem)]
    error = sum(hundredths) - 100
    priority = (1, 3, 2, 0)  # light, rem, deep, wake
    while error != 0:
        step = 1 if error > 0 else -1
        for index in priority:
            if hundredths[index] != 0:
                hundredths[index] -= step
                break
        error -= step
    w, li, d, r = (h / 100 for h in hundredths)
    return w, li, d, r


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in ``mask``."""
    if mask.size == 0:
        return []
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, stops = edges[0::2], edges[1::2]
    return [(int(a), int(b - a)) for a, b in zip(starts, stops, strict=True)]


def _rem_cluster_ends(stages: _CODES) -> list[int]:
    """Index of the last REM epoch of every REM cluster long enough to end a sleep cycle."""
    ends: list[int] = []
    count = 0
    last_rem = -1
    gap = 0
    for index in np.flatnonzero(stages == Stage.REM):
        if last_rem >= 0:
            gap = int(index) - last_rem - 1
        if last_rem >= 0 and gap > REM_CLUSTER_GAP_EPOCHS:
            if count >= REM_CLUSTER_MIN_EPOCHS:
                ends.append(last_rem)
            count = 0
        count += 1
        last_rem = int(index)
    if count >= REM_CLUSTER_MIN_EPOCHS:
        ends.append(last_rem)
    return ends


def _as_codes(values: Sequence[int] | npt.ArrayLike) -> _CODES:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"expected a flat list of stage codes, got shape {arr.shape}")
    return arr.astype(np.int8)


# ----------------------------------------------------------------------------------------------- main
def compute_stat(
    sleep_stages: Sequence[int] | npt.ArrayLike,
    start_time: datetime,
    end_time: datetime,
    snoring_stages: Sequence[int] | npt.ArrayLike | None = None,
    scheme: StageScheme = StageScheme.FOUR,
) -> SleepStat:
    """Compute the Stat object of one session.

    Parameters
    ----------
    sleep_stages
        One code per 30-s epoch from ``start_time``: -1 error, 0 wake, 1 light, 2 deep, 3 REM
        (2-stage: -1, 0 wake, 1 sleep).
    start_time, end_time
        Session start and end (timezone-aware). ``time_in_bed`` is their difference in seconds.
    snoring_stages
        Optional per-epoch snoring codes (-1, 0, 1); ``None`` leaves the snoring fields null
        (plans without snoring analysis).
    scheme
        ``StageScheme.TWO`` for 2-stage plans: light / deep / REM fields and sleep cycles are null.

    Returns
    -------
    SleepStat
        With the documented nulls when no epoch is sleep (``NEVER_SLEPT``).

    Raises
    ------
    ValueError
        For empty stages, codes outside the scheme, naive times, ``end_time <= start_time``, or a
        snoring list of another length.
    """
    stages = _as_codes(sleep_stages)
    scheme = StageScheme(scheme)
    if stages.size == 0:
        raise ValueError("sleep_stages is empty: a session needs at least one 30-second epoch")
    top = scheme.n_classes - 1
    if stages.min() < -1 or stages.max() > top:
        raise ValueError(f"sleep stage codes must be in -1..{top} for {scheme.value} analysis")
    if start_time.tzinfo is None or end_time.tzinfo is None:
        raise ValueError("start_time and end_time must carry a UTC offset")
    if end_time <= start_time:
        raise ValueError("end_time must be after start_time")
    snoring: _CODES | None = None
    if snoring_stages is not None:
        snoring = _as_codes(snoring_stages)
        if snoring.size != stages.size:
            raise ValueError(f"snoring_stages has {snoring.size} epochs, sleep_stages has {stages.size}")
        if snoring.size and (snoring.min() < -1 or snoring.max() > 1):
            raise ValueError("snoring stage codes must be -1, 0 or 1")

    four = scheme is StageScheme.FOUR
    time_in_bed = int((end_time - start_time).total_seconds())
    sleep_idx = np.flatnonzero(stages > 0)

    if sleep_idx.size == 0:
        return _never_slept(time_in_bed, four, snoring is not None)

    first, last = int(sleep_idx[0]), int(sleep_idx[-1])
    period = stages[first : last + 1]
    n_wake = int(np.count_nonzero(period == Stage.WAKE))
    n_light = int(np.count_nonzero(period == Stage.LIGHT))
    n_deep = int(np.count_nonzero(period == Stage.DEEP))
    n_rem = int(np.count_nonzero(period == Stage.REM))
    n_sleep = int(sleep_idx.size)

    sleep_latency = first * EPOCH_SECONDS
    wakeup_latency = (stages.size - 1 - last) * EPOCH_SECONDS
    sleep_time = start_time + timedelta(seconds=sleep_latency)
    wake_time = end_time - timedelta(seconds=wakeup_latency)

    time_in_wake = n_wake * EPOCH_SECONDS
    time_in_sleep = n_sleep * EPOCH_SECONDS
    time_in_sleep_period = time_in_wake + time_in_sleep
    sleep_efficiency = _round2(time_in_sleep / time_in_bed) if time_in_bed > 0 else 0.0

    # Wake bouts inside the sleep period; error epochs are transparent.
    known = period[period != Stage.ERROR]
    wake_runs = _runs(known == Stage.WAKE)
    waso_count = len(wake_runs)
    longest_waso = max((length for _, length in wake_runs), default=0) * EPOCH_SECONDS

    def latency(code: Stage) -> int | None:
        hits = np.flatnonzero(period == code)
        return int(hits[0]) * EPOCH_SECONDS if hits.size else None

    light_r: float | None = None
    deep_r: float | None = None
    rem_r: float | None = None
    if four:
        wake_r, light_r, deep_r, rem_r = _normalised_ratios(n_wake, n_light, n_deep, n_rem)
        sleep_r = _round2(max(1.0 - wake_r, 0.0))
        cluster_ends = _rem_cluster_ends(period)
        cycle_count: int | None = len(cluster_ends)
        cycle_time = [sleep_time] + [sleep_time + timedelta(seconds=e * EPOCH_SECONDS) for e in cluster_ends]
        if cluster_ends:
            # Mean distance between successive cycle ends, the first measured from sleep onset.
            sleep_cycle: int | None = round(cluster_ends[-1] * EPOCH_SECONDS / len(cluster_ends))
        else:
            sleep_cycle, cycle_time = None, []
    else:
        wake_r = _round2(n_wake / (n_wake + n_sleep))
        sleep_r = _round2(max(1.0 - wake_r, 0.0))
        cycle_count, sleep_cycle, cycle_time = None, None, []

    time_in_snoring = time_in_no_snoring = snoring_count = None
    snoring_ratio = no_snoring_ratio = None
    if snoring is not None:
        # Snoring counts only where the sleep stage is known, so snoring + no snoring = sleep period.
        in_period = np.where(period == Stage.ERROR, -1, snoring[first : last + 1])
        n_snore = int(np.count_nonzero(in_period == 1))
        n_quiet = int(np.count_nonzero(in_period == 0))
        time_in_snoring = n_snore * EPOCH_SECONDS
        time_in_no_snoring = n_quiet * EPOCH_SECONDS
        snoring_ratio = _round2(time_in_snoring / time_in_sleep_period)
        no_snoring_ratio = _round2(time_in_no_snoring / time_in_sleep_period)
        snoring_count = len(_runs(in_period[in_period != -1] == 1))

    return SleepStat(
        sleep_time=sleep_time,
        wake_time=wake_time,
        sleep_index=sleep_index(time_in_sleep, sleep_efficiency, waso_count),
        sleep_latency=sleep_latency,
        wakeup_latency=wakeup_latency,
        light_latency=latency(Stage.LIGHT) if four else None,
        deep_latency=latency(Stage.DEEP) if four else None,
        rem_latency=latency(Stage.REM) if four else None,
        time_in_bed=time_in_bed,
        time_in_sleep_period=time_in_sleep_period,
        time_in_sleep=time_in_sleep,
        time_in_wake=time_in_wake,
        time_in_light=n_light * EPOCH_SECONDS if four else None,
        time_in_deep=n_deep * EPOCH_SECONDS if four else None,
        time_in_rem=n_rem * EPOCH_SECONDS if four else None,
        time_in_snoring=time_in_snoring,
        time_in_no_snoring=time_in_no_snoring,
        sleep_efficiency=sleep_efficiency,
        sleep_ratio=sleep_r,
        wake_ratio=wake_r,
        light_ratio=light_r,
        deep_ratio=deep_r,
        rem_ratio=rem_r,
        snoring_ratio=snoring_ratio,
        no_snoring_ratio=no_snoring_ratio,
        waso_count=waso_count,
        longest_waso=longest_waso,
        sleep_cycle_count=cycle_count,
        sleep_cycle=sleep_cycle,
        sleep_cycle_time=cycle_time,
        snoring_count=snoring_count,
    )


def _never_slept(time_in_bed: int, four: bool, with_snoring: bool) -> SleepStat:
    """The documented Stat of a NEVER_SLEPT session: latencies, ratios, times and the index are null."""
    zero_if_four = 0 if four else None
    return SleepStat(
        sleep_time=None,
        wake_time=None,
        sleep_index=None,
        sleep_latency=None,
        wakeup_latency=None,
        light_latency=None,
        deep_latency=None,
        rem_latency=None,
        time_in_bed=time_in_bed,
        time_in_sleep_period=0,
        time_in_sleep=0,
        time_in_wake=0,
        time_in_light=zero_if_four,
        time_in_deep=zero_if_four,
        time_in_rem=zero_if_four,
        time_in_snoring=0 if with_snoring else None,
        time_in_no_snoring=0 if with_snoring else None,
        sleep_efficiency=0.0,
        sleep_ratio=None,
        wake_ratio=None,
        light_ratio=None,
        deep_ratio=None,
        rem_ratio=None,
        snoring_ratio=0.0 if with_snoring else None,
        no_snoring_ratio=0.0 if with_snoring else None,
        waso_count=0,
        longest_waso=None,
        sleep_cycle_count=0 if four else None,
        sleep_cycle=None,
        sleep_cycle_time=[],
        snoring_count=0 if with_snoring else None,
    )
