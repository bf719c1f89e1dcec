"""Agreement between predicted and true hypnograms, the way consumer sleep trackers are validated.

Epoch by epoch: accuracy, Cohen's kappa, per-stage precision / recall / F1 and the confusion matrix. Night
by night: the bias and 95 % limits of agreement (Bland–Altman) of total sleep time, sleep efficiency,
WASO and sleep latency (Menghini et al., "A standardized framework for testing the performance of sleep-
tracking technology", SLEEP 2021).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from ._stats import compute_stat

__all__ = [
    "AgreementReport",
    "BlandAltman",
    "EpochAgreement",
    "NightPair",
    "agreement",
    "bland_altman",
    "epoch_agreement",
]

_I8 = npt.NDArray[np.int8]
_EPOCH_START = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class EpochAgreement:
    """Epoch-by-epoch agreement over all nights (epochs where either side is -1 are left out)."""

    labels: tuple[str, ...]
    confusion: list[list[int]]  # rows: truth, columns: prediction
    accuracy: float
    kappa: float
    precision: list[float]
    recall: list[float]
    f1: list[float]
    n_epochs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "n_epochs": self.n_epochs,
            "accuracy": round(self.accuracy, 4),
            "kappa": round(self.kappa, 4),
            "per_stage": {
                label: {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
                for label, p, r, f in zip(self.labels, self.precision, self.recall, self.f1, strict=True)
            },
            "confusion": self.confusion,
        }


def epoch_agreement(truth: Sequence[_I8], predicted: Sequence[_I8], labels: Sequence[str]) -> EpochAgreement:
    """Accuracy, Cohen's kappa and per-class scores, pooled over nights."""
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        t = np.asarray(t)
        p = np.asarray(p)
        if t.shape != p.shape:
            raise ValueError(f"truth has {t.size} epochs but the prediction has {p.size}")
        ok = (t >= 0) & (p >= 0) & (t < k) & (p < k)
        np.add.at(confusion, (t[ok].astype(np.intp), p[ok].astype(np.intp)), 1)
    n = int(confusion.sum())
    diag = np.diag(confusion).astype(np.float64)
    accuracy = float(diag.sum() / n) if n else 0.0
    expected = float((confusion.sum(axis=0) * confusion.sum(axis=1)).sum()) / n**2 if n else 0.0
    kappa = (accuracy - expected) / (1.0 - expected) if n and expected < 1.0 else 0.0
    col = confusion.sum(axis=0).astype(np.float64)
    row = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(diag, col, out=np.zeros(k), where=col > 0)
    recall = np.divide(diag, row, out=np.zeros(k), where=row > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    return EpochAgreement(
        tuple(labels),
        confusion.tolist(),
        accuracy,
        float(kappa),
        precision.tolist(),
        recall.tolist(),
        f1.tolist(),
        n,
    )


@dataclass
class BlandAltman:
    """Per-night differences (prediction − truth) of one metric."""

    metric: str
    unit: str
    differences: list[float] = field(default_factory=list)
    truths: list[float] = field(default_factory=list)

    @property
    def truth_mean(self) -> float:
        return float(np.mean(self.truths)) if self.truths else 0.0

    @property
    def means(self) -> list[float]:
        """Per night, the mean of prediction and truth (the x axis of a Bland–Altman plot)."""
        return [t + d / 2 for t, d in zip(self.truths, self.differences, strict=True)]

    @property
    def bias(self) -> float:
        return float(np.mean(self.differences)) if self.differences else 0.0

    @property
    def sd(self) -> float:
        return float(np.std(self.differences, ddof=1)) if len(self.differences) > 1 else 0.0

    @property
    def limits(self) -> tuple[float, float]:
        return self.bias - 1.96 * self.sd, self.bias + 1.96 * self.sd

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.limits
        return {
            "unit": self.unit,
            "bias": round(self.bias, 3),
            "sd": round(self.sd, 3),
            "loa_low": round(lo, 3),
            "loa_high": round(hi, 3),
            "truth_mean": round(self.truth_mean, 3),
            "n_nights": len(self.differences),
        }


@dataclass
class NightPair:
    name: str
    truth: _I8
    predicted: _I8
    truth_snoring: _I8 | None = None
    predicted_snoring: _I8 | None = None


_NIGHT_METRICS = {
    "tst": ("total sleep time", "min"),
    "sleep_efficiency": ("sleep efficiency", "%"),
    "waso": ("wake after sleep onset", "min"),
    "sleep_latency": ("sleep latency", "min"),
}


def _night_values(stages: _I8) -> dict[str, float]:
    stat = compute_stat(stages, _EPOCH_START, _EPOCH_START + timedelta(seconds=30 * len(stages)))
    return {
        "tst": stat.time_in_sleep / 60.0,
        "sleep_efficiency": 100.0 * stat.time_in_sleep / max(stat.time_in_bed, 1),
        "waso": stat.time_in_wake / 60.0,
        # A night without sleep has no latency; count the whole night so it still enters the bias.
        "sleep_latency": (stat.sleep_latency if stat.sleep_latency is not None else stat.time_in_bed) / 60.0,
    }


def bland_altman(pairs: Sequence[NightPair]) -> dict[str, BlandAltman]:
    out = {key: BlandAltman(key, unit) for key, (_, unit) in _NIGHT_METRICS.items()}
    for pair in pairs:
        t = _night_values(pair.truth)
        p = _night_values(pair.predicted)
        for key in _NIGHT_METRICS:
            out[key].differences.append(p[key] - t[key])
            out[key].truths.append(t[key])
    return out


@dataclass
class AgreementReport:
    stages: EpochAgreement
    two_stage: EpochAgreement
    snoring: EpochAgreement | None
    nights: dict[str, BlandAltman]
    per_night: list[dict[str, Any]] = field(default_factory=list)

    @property
    def snoring_f1(self) -> float | None:
        return None if self.snoring is None else self.snoring.f1[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": self.stages.to_dict(),
            "two_stage": self.two_stage.to_dict(),
            "snoring": None if self.snoring is None else self.snoring.to_dict(),
            "snoring_f1": None if self.snoring_f1 is None else round(self.snoring_f1, 4),
            "nights": {key: value.to_dict() for key, value in self.nights.items()},
            "per_night": self.per_night,
        }


def agreement(pairs: Sequence[NightPair]) -> AgreementReport:
    """Everything ``sleeptrack evaluate`` reports, for nights of 4-stage truth and prediction."""
    stages = epoch_agreement([p.truth for p in pairs], [p.predicted for p in pairs], ("wake", "light", "deep", "rem"))

    def two(x: _I8) -> _I8:
        return np.where(x > 0, 1, x).astype(np.int8)

    two_stage = epoch_agreement([two(p.truth) for p in pairs], [two(p.predicted) for p in pairs], ("wake", "sleep"))
    snore_pairs = [p for p in pairs if p.truth_snoring is not None and p.predicted_snoring is not None]
    snoring = None
    if snore_pairs:
        snoring = epoch_agreement(
            [p.truth_snoring for p in snore_pairs],  # type: ignore[misc]
            [p.predicted_snoring for p in snore_pairs],  # type: ignore[misc]
            ("no_snoring", "snoring"),
        )
    per_night = []
    for p in pairs:
        ok = (p.truth >= 0) & (p.predicted >= 0)
        per_night.append(
            {
                "name": p.name,
                "epochs": int(p.truth.size),
                "accuracy": round(float((p.truth[ok] == p.predicted[ok]).mean()) if ok.any() else 0.0, 4),
            }
        )
    return AgreementReport(stages, two_stage, snoring, bland_altman(pairs), per_night)
