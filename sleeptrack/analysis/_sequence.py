"""From per-chunk features to the staging network's input: night-relative values, context, time of night.

People and bedrooms differ far more than stages do (a loud breather in a quiet room versus a quiet one next
to a fan), so each feature is also given relative to the night: its deviation from the night's mean in
units of the night's spread. Stages last minutes, so each epoch also sees moving averages over 5, 11 and
21 epochs, and how much each relative feature varies over the same windows (its moving standard
deviation): breathing rate and loudness wander from epoch to epoch far more in wake and REM than in deep
sleep (on unseen simulated nights this lifted kappa from 0.68 to 0.71). Full-night features use centred
windows and the whole night's statistics; causal (real-time) features use only the epochs up to the current
one, so a real-time stage never depends on the future.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ._breathing import BREATH_WINDOW_HALVES, breath_window_stat_count, breath_window_stats
from ._features import ACF_LAGS

__all__ = [
    "ACF_WINDOWS",
    "CONTEXT_WINDOWS",
    "DERIVED_CONTEXT",
    "SEQUENCE_CONTEXT",
    "CausalCarry",
    "causal_sequence_features",
    "sequence_feature_count",
    "sequence_features",
]

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]

CONTEXT_WINDOWS: Final = (5, 11, 21)
#: Epoch windows over which the breath-envelope autocorrelation is averaged before taking its peak.
ACF_WINDOWS: Final = (1, 3, 5, 9, 15)
#: The peak is searched from 2.5 s (24 breaths per minute) so that the inhale–exhale half period is skipped.
_ACF_FIRST_LAG: Final = 25
_ACF_LAG0: Final = 15  # lag of the first autocorrelation column (0.1 s units)
_ACF_SCALE: Final = (0.15, 3.0)  # typical spread of (peak height, breaths per minute)
_BREATH_SCALE: Final = (0.15, 3.0, 0.1, 0.1, 0.1)  # ACF peak, rate, three interval CVs
#: Earlier rows of chunk features that a causal derived row reads (autocorrelation averaged over up to 15
#: epochs, breath timing over up to 5).
DERIVED_CONTEXT: Final = max(max(ACF_WINDOWS), 2 * max(BREATH_WINDOW_HALVES) + 1) - 1
#: Earlier derived rows that a causal sequence row reads (its context windows).
SEQUENCE_CONTEXT: Final = max(CONTEXT_WINDOWS) - 1


def sequence_feature_count(n_scalar: int, causal: bool, with_breath_blocks: bool = False) -> int:
    n = n_scalar + (2 * len(ACF_WINDOWS) + breath_window_stat_count() if with_breath_blocks else 0)
    return n * (2 + 2 * len(CONTEXT_WINDOWS)) + (1 if causal else 2)


def _acf_summaries(acf: _F64, valid: npt.NDArray[np.bool_], causal: bool) -> _F64:
    """Peak height and breathing rate of the autocorrelation averaged over each of :data:`ACF_WINDOWS`."""
    start = _ACF_FIRST_LAG - _ACF_LAG0
    cols = []
    for averaged in _window_means(acf, valid, ACF_WINDOWS, causal):
        mean = averaged[:, start:]
        k = np.argmax(mean, axis=1)
        cols.append(mean[np.arange(mean.shape[0]), k])
        cols.append(600.0 / (k + _ACF_FIRST_LAG))
    return np.stack(cols, axis=1)


@dataclass(frozen=True)
class CausalCarry:
    """What the causal sequence features of a night's later rows need from its rows ``[0, end)``.

    The count, sum and sum of squares of the valid derived rows ``[0, summed)`` (the night-so-far mean and
    spread), and the derived rows ``[summed, end)`` themselves, which the context windows of later rows
    read (:data:`SEQUENCE_CONTEXT` of them once the night is long enough). Its size does not grow with the
    night.
    """

    summed: int
    count: float
    total: _F64
    total_sq: _F64
    tail: _F64
    tail_valid: npt.NDArray[np.bool_]

    @property
    def end(self) -> int:
        return self.summed + int(self.tail.shape[0])

    @property
    def input_start(self) -> int:
        """The first row of chunk features that a continuation needs."""
        return max(0, self.end - DERIVED_CONTEXT)

    @classmethod
    def empty(cls, width: int) -> CausalCarry:
        return cls(0, 0.0, np.zeros(width), np.zeros(width), np.zeros((0, width)), np.zeros(0, dtype=bool))


def _expanding_stats(
    x: _F64, valid: npt.NDArray[np.bool_], carry: CausalCarry
) -> tuple[_F64, _F64, tuple[_F64, _F64, _F64]]:
    """Mean and standard deviation over the valid rows up to and including each row of ``x``, whose first
    row follows those summed in ``carry``; and the running count, sum and sum of squares after each row.

    The sums continue ``carry``'s by sequential accumulation, so a night computed in parts gets the very
    same bits as one computed whole.
    """
    xs = np.where(valid[:, None], x, 0.0)
    count = np.cumsum(np.concatenate([[carry.count], valid.astype(np.float64)]))[1:]
    total = np.cumsum(np.vstack([carry.total[None, :], xs]), axis=0)[1:]
    total_sq = np.cumsum(np.vstack([carry.total_sq[None, :], xs * xs]), axis=0)[1:]
    c = np.maximum(count, 1.0)[:, None]
    mean = total / c
    var = total_sq / c - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0)), (count, total, total_sq)


def _centred_means(x: _F64, valid: npt.NDArray[np.bool_], sizes: Sequence[int]) -> list[_F64]:
    """NaN-free moving means over valid rows, one per centred window of ``sizes`` rows, all from one
    cumulative sum."""
    n = x.shape[0]
    xs = np.where(valid[:, None], x, 0.0)
    csum = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(xs, axis=0)])
    ccount = np.concatenate([[0.0], np.cumsum(valid.astype(np.float64))])
    idx = np.arange(n)
    out: list[_F64] = []
    for size in sizes:
        half = size // 2
        lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, n)
        total = csum[hi] - csum[lo]
        count = (ccount[hi] - ccount[lo])[:, None]
        out.append(np.where(count > 0, total / np.maximum(count, 1.0), 0.0))
    return out


def _trailing_means(x: _F64, valid: npt.NDArray[np.bool_], sizes: Sequence[int]) -> list[_F64]:
    """NaN-free moving means over valid rows, one per trailing window of ``sizes`` rows.

    Each row is summed from its own window only, nearest row first, so that its value does not depend on
    where the computed stretch of the night begins: real-time increments equal the whole night's rows.
    """
    xs = np.where(valid[:, None], x, 0.0)
    v = valid.astype(np.float64)
    total = xs.copy()
    count = v.copy()
    by_size: dict[int, _F64] = {}
    for size in range(1, max(sizes) + 1):
        if size > 1:
            lag = size - 1
            total[lag:] += xs[:-lag]
            count[lag:] += v[:-lag]
        if size in sizes:
            c = count[:, None]
            by_size[size] = np.where(c > 0, total / np.maximum(c, 1.0), 0.0)
    return [by_size[size] for size in sizes]


def _window_means(x: _F64, valid: npt.NDArray[np.bool_], sizes: Sequence[int], causal: bool) -> list[_F64]:
    return _trailing_means(x, valid, sizes) if causal else _centred_means(x, valid, sizes)


def _moving_means_and_stds(
    x: _F64, valid: npt.NDArray[np.bool_], sizes: Sequence[int], causal: bool
) -> tuple[list[_F64], list[_F64]]:
    """Moving means and standard deviations over each window of ``sizes`` (one pass over ``x`` and ``x²``)."""
    c = x.shape[1]
    both = _window_means(np.concatenate([x, x * x], axis=1), valid, sizes, causal)
    means = [m[:, :c] for m in both]
    stds = [np.sqrt(np.maximum(m[:, c:] - mean * mean, 0.0)) for m, mean in zip(both, means, strict=True)]
    return means, stds


def _derived(
    x: _F64, valid: npt.NDArray[np.bool_], scale: _F64, causal: bool, n_scalar: int | None, start: int = 0
) -> tuple[_F64, _F64]:
    """The scalar columns, then the summaries of the breathing blocks (see :func:`sequence_features`);
    the rows before ``start`` are only context (their breath timing is left out)."""
    if n_scalar is None or n_scalar >= x.shape[1]:
        return x, scale
    acf_end = n_scalar + len(ACF_LAGS)
    derived = [_acf_summaries(x[:, n_scalar:acf_end], valid, causal)]
    scales = [scale[:n_scalar], np.tile(_ACF_SCALE, len(ACF_WINDOWS))]
    if x.shape[1] > acf_end:
        derived.append(breath_window_stats(x[:, acf_end:], valid, causal, start))
        scales.append(np.tile(_BREATH_SCALE, breath_window_stat_count() // len(_BREATH_SCALE)))
    return np.concatenate([x[:, :n_scalar], *derived], axis=1), np.concatenate(scales)


def _assemble(raw: _F64, rel: _F64, valid: npt.NDArray[np.bool_], causal: bool, first_row: int) -> _F32:
    means, stds = _moving_means_and_stds(rel, valid, CONTEXT_WINDOWS, causal)
    n = raw.shape[0]
    hours = np.arange(first_row, first_row + n, dtype=np.float64)[:, None] * 30.0 / 3600.0
    parts = [raw, rel, *means, *stds, hours]
    if not causal:
        parts.append(hours[::-1])
    out: _F32 = np.concatenate(parts, axis=1).astype(np.float32)
    return out


def causal_sequence_features(
    chunk_features: npt.ArrayLike,
    valid: npt.NDArray[np.bool_],
    feature_scale: npt.ArrayLike,
    n_scalar: int | None = None,
    carry: CausalCarry | None = None,
) -> tuple[_F32, CausalCarry]:
    """Causal (real-time) sequence features, of a whole night or continuing one.

    ``carry`` (``None``: the night's start) is what the previous call returned; ``chunk_features`` and
    ``valid`` then hold the rows from ``carry.input_start`` on. Returns the rows from ``carry.end`` on,
    equal bit for bit to those of the whole night computed at once (a night's real-time cost grows with its
    length, not with its square), and the carry to go on from.
    """
    x = np.asarray(chunk_features, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (x.shape[0],):
        raise ValueError(f"valid must have shape ({x.shape[0]},), got {valid.shape}")
    offset = 0 if carry is None else carry.input_start
    end = 0 if carry is None else carry.end
    stop = offset + x.shape[0]
    if stop < end:
        raise ValueError(f"the rows given end at {stop}, before the {end} rows already computed")
    scale = np.asarray(feature_scale, dtype=np.float64)
    new, scale = _derived(x, valid, scale, True, n_scalar, end - offset)
    if carry is None:
        carry = CausalCarry.empty(new.shape[1])
    d = np.vstack([carry.tail, new[end - offset :]])  # derived rows [summed, stop)
    ok = np.concatenate([carry.tail_valid, valid[end - offset :]])
    mean, std, (count, total, total_sq) = _expanding_stats(d, ok, carry)
    raw = np.where(ok[:, None], d, mean)
    rel = (raw - mean) / (std + 0.1 * scale)
    rel[~ok] = 0.0
    rows = _assemble(raw, rel, ok, True, carry.summed)[end - carry.summed :]
    summed = max(carry.summed, stop - SEQUENCE_CONTEXT)
    i = summed - carry.summed
    if i:
        carry = CausalCarry(summed, float(count[i - 1]), total[i - 1].copy(), total_sq[i - 1].copy(), d[i:], ok[i:])
    else:
        carry = dataclasses.replace(carry, tail=d, tail_valid=ok)
    return rows, carry


def sequence_features(
    chunk_features: npt.ArrayLike,
    valid: npt.NDArray[np.bool_],
    feature_scale: npt.ArrayLike,
    causal: bool,
    n_scalar: int | None = None,
) -> _F32:
    """Staging input for every epoch, shape ``(n, sequence_feature_count(C, causal))``.

    Parameters
    ----------
    chunk_features
        ``(n, C)`` per-chunk features (rows of invalid epochs are ignored).
    valid
        ``(n,)`` False where the chunk is missing or unusable.
    feature_scale
        ``(C,)`` typical spread of each feature over many nights; floors the per-night spread so that a
        feature that hardly varies in one night is not blown up.
    causal
        Real-time mode: every row depends only on rows at or before it.
    n_scalar
        Columns before the breathing blocks (``None``: no such blocks): the breath-envelope
        autocorrelation (:data:`~sleeptrack.analysis._features.ACF_LAGS`), then optionally the breath
        envelope itself (300 values). Neither is fed as is: the autocorrelation averaged over
        :data:`ACF_WINDOWS` gives a peak height and a rate each, and the envelope gives the breath
        regularity over 1.5 and 2.5 minutes (:func:`~sleeptrack.analysis._breathing.breath_window_stats`).
    """
    if causal:
        return causal_sequence_features(chunk_features, valid, feature_scale, n_scalar)[0]
    x = np.asarray(chunk_features, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (x.shape[0],):
        raise ValueError(f"valid must have shape ({x.shape[0]},), got {valid.shape}")
    x, scale = _derived(x, valid, np.asarray(feature_scale, dtype=np.float64), False, n_scalar)
    n, c = x.shape
    if valid.any():
        mean_row = x[valid].mean(axis=0)
        std_row = x[valid].std(axis=0)
    else:
        mean_row = np.zeros(c)
        std_row = np.zeros(c)
    mean = np.broadcast_to(mean_row, (n, c))
    std = np.broadcast_to(std_row, (n, c))
    raw = np.where(valid[:, None], x, mean)
    rel = (raw - mean) / (std + 0.1 * scale)
    rel[~valid] = 0.0
    return _assemble(raw, rel, valid, False, 0)
