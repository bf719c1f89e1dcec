"""``sleeptrack evaluate``: agreement of the engine with the truth of recorded or simulated nights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sleeptrack.analysis._engine import Engine
from sleeptrack.analysis._metrics import AgreementReport, NightPair, agreement
from sleeptrack.analysis._pipeline import analyze_recording

from ._nights import find_night_pairs, read_labels

__all__ = ["evaluate_nights"]


def evaluate_nights(
    directory: Path, engine: Engine, on_night: Callable[[str, int, int], None] | None = None
) -> AgreementReport:
    """Analyse every ``X.<audio>`` of ``directory`` and compare it with ``X.json`` (``sleeptrack simulate``
    truth, or any JSON with ``sleep_stages`` and optionally ``snoring_stages``, or a plain list)."""
    pairs = find_night_pairs(directory)
    if not pairs:
        raise ValueError(f"no night pairs (X.flac + X.json) in {directory}")
    nights = []
    for i, files in enumerate(pairs):
        stages, snoring, _ = read_labels(files.labels)
        analysis = analyze_recording(files.audio, engine=engine)
        predicted = analysis.staging
        n = min(stages.size, predicted.stages.size)
        nights.append(
            NightPair(
                files.name,
                stages[:n].astype(np.int8),
                predicted.stages[:n],
                None if snoring is None else snoring[:n].astype(np.int8),
                predicted.snoring[:n],
            )
        )
        if on_night:
            on_night(files.name, i + 1, len(pairs))
    return agreement(nights)
