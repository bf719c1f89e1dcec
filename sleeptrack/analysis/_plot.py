"""Figures: a night's hypnogram and snoring, and the agreement figures of an evaluation (matplotlib)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ._constants import EPOCH_SECONDS, StageScheme
from ._hypnogram import Hypnogram
from ._metrics import AgreementReport
from ._time import parse_timezone

__all__ = ["plot_agreement", "plot_hypnogram"]

# Drawing order from top to bottom, as hypnograms are usually drawn.
_ROWS_FOUR = {0: 3, 3: 2, 1: 1, 2: 0}  # wake, REM, light, deep
_LABELS_FOUR = ["Deep", "Light", "REM", "Wake"]
_ROWS_TWO = {0: 1, 1: 0}
_LABELS_TWO = ["Sleep", "Wake"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("figures need matplotlib: pip install 'sleeptrack[plot]'") from exc
    return plt


def _rows(hyp: Hypnogram) -> tuple[np.ndarray, list[str]]:
    mapping, labels = (_ROWS_FOUR, _LABELS_FOUR) if hyp.scheme is StageScheme.FOUR else (_ROWS_TWO, _LABELS_TWO)
    rows = np.array([mapping.get(int(s), np.nan) for s in hyp.stages], dtype=float)
    return rows, labels


def plot_hypnogram(hypnogram: Hypnogram, path: Path, title: str | None = None, truth: Hypnogram | None = None) -> Path:
    """Write a PNG (or any matplotlib format, by suffix) of the hypnogram over clock time and its snoring."""
    plt = _pyplot()
    import matplotlib.dates as mdates

    tz = parse_timezone(hypnogram.timezone)
    n = hypnogram.n_epochs
    times = [hypnogram.start_time.astimezone(tz) + timedelta(seconds=EPOCH_SECONDS * i) for i in range(n + 1)]
    rows, labels = _rows(hypnogram)
    fig, (ax, ax_snore) = plt.subplots(
        2, 1, figsize=(11, 4.2), sharex=True, gridspec_kw={"height_ratios": [4, 1]}, constrained_layout=True
    )
    if n:
        ax.step(times, np.append(rows, rows[-1]), where="post", color="#3b5b92", linewidth=1.4, label="sleeptrack")
        if hypnogram.scheme is StageScheme.FOUR:
            rem = np.where(hypnogram.stages == 3, rows, np.nan)
            ax.step(times, np.append(rem, rem[-1]), where="post", color="#c0392b", linewidth=3)
        if truth is not None and truth.n_epochs == n:
            truth_rows, _ = _rows(truth)
            ax.step(
                times, np.append(truth_rows, truth_rows[-1]) + 0.08, where="post", color="#7f8c8d",
                linewidth=0.9, alpha=0.8, label="truth",
            )  # fmt: skip
            ax.legend(loc="upper right", fontsize=8)
        missing = hypnogram.stages < 0
        for i in np.flatnonzero(missing):
            ax.axvspan(times[i], times[i + 1], color="#f1c40f", alpha=0.3, linewidth=0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.5, len(labels) - 0.5)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"Hypnogram ({hypnogram.model_version or 'unknown model'})", fontsize=10)
    snoring = hypnogram.snoring
    if snoring is not None and n:
        ax_snore.bar(
            times[:-1],
            (snoring == 1).astype(float),
            width=EPOCH_SECONDS / 86400,
            align="edge",
            color="#8e44ad",
        )
    ax_snore.set_yticks([])
    ax_snore.set_ylabel("snoring", fontsize=8)
    ax_snore.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))  # type: ignore[no-untyped-call]
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_agreement(report: AgreementReport, path: Path) -> Path:
    """Confusion matrix and Bland–Altman plots of TST, sleep efficiency, WASO and sleep latency."""
    plt = _pyplot()
    fig = plt.figure(figsize=(12, 7), constrained_layout=True)
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[:, 0])
    confusion = np.asarray(report.stages.confusion, dtype=float)
    share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    labels = list(report.stages.labels)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=9)
    ax.set_title(f"accuracy {report.stages.accuracy:.3f}, kappa {report.stages.kappa:.3f}", fontsize=10)
    for k, (key, ba) in enumerate(report.nights.items()):
        ax = fig.add_subplot(grid[k // 2, 1 + k % 2])
        ax.scatter(ba.means, ba.differences, s=14, alpha=0.7)
        ax.set_xlabel(f"mean of prediction and truth ({ba.unit})", fontsize=8)
        lo, hi = ba.limits
        for y, style in ((ba.bias, "-"), (lo, "--"), (hi, "--")):
            ax.axhline(y, color="#c0392b", linestyle=style, linewidth=1)
        ax.set_title(f"{key}: bias {ba.bias:+.1f} {ba.unit}, LoA [{lo:+.1f}, {hi:+.1f}]", fontsize=9)
        ax.set_ylabel(f"prediction − truth ({ba.unit})", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
