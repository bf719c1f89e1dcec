from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from sleeptrack.analysis import Hypnogram, StageScheme

START = datetime(2025, 1, 15, 14, 0, tzinfo=UTC)


@given(
    st.lists(st.integers(-1, 3), max_size=300),
    st.sampled_from(["UTC", "Asia/Seoul", "America/New_York"]),
    st.booleans(),
)
def test_json_round_trip(stages: list[int], tz: str, with_extras: bool) -> None:
    n = len(stages)
    probs = snoring = None
    if with_extras and n:
        rng = np.random.default_rng(n)
        raw = rng.random((n, 4)).astype(np.float32)
        probs = raw / raw.sum(axis=1, keepdims=True)
        snoring = rng.integers(-1, 2, n)
    h = Hypnogram(stages, START, tz, StageScheme.FOUR, probs, snoring, "staging-1.0")
    back = Hypnogram.from_json(json.dumps(json.loads(h.to_json())))
    assert back == h
    assert back.start_time == START and back.n_epochs == n


def test_epochs_times_and_missing_data() -> None:
    h = Hypnogram([0, 1, -1, 2, 2, 3], START, "Asia/Seoul")
    assert h.end_time - h.start_time == timedelta(minutes=3)
    assert h.epoch_start(2) == START + timedelta(seconds=60)
    assert h.missing_data_ratio == pytest.approx(1 / 6)
    assert [(r.code, r.start, r.length) for r in h.runs()] == [
        (0, 0, 1),
        (1, 1, 1),
        (-1, 2, 1),
        (2, 3, 2),
        (3, 5, 1),
    ]
    assert h.to_dict()["start_time"] == "2025-01-15T23:00:00+09:00"


def test_two_stage_conversion_keeps_errors_and_sums_probabilities() -> None:
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    two = Hypnogram([0, 3], START, probabilities=probs).to_two_stage()
    assert two.scheme is StageScheme.TWO
    assert two.stages.tolist() == [0, 1]
    assert two.probabilities is not None
    assert np.allclose(two.probabilities, [[0.7, 0.3], [0.1, 0.9]])
    assert Hypnogram([-1, 2], START).to_two_stage().stages.tolist() == [-1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": [0, 5]}, "outside -1..3"),
        ({"stages": [0, 2], "scheme": StageScheme.TWO}, "outside -1..1"),
        ({"stages": [[0, 1]]}, "flat list"),
        ({"stages": [0, 1], "start_time": datetime(2025, 1, 1)}, "UTC offset"),
        ({"stages": [0, 1], "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"stages": [0, 1], "probabilities": np.ones((2, 3))}, "shape"),
        ({"stages": [0, 1], "snoring": [0]}, "snoring has 1 epochs"),
        ({"stages": [0.5, 1]}, "integer"),
    ],
)
def test_invalid_hypnograms_are_rejected(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"start_time": START, **kwargs}
    with pytest.raises(ValueError, match=message):
        Hypnogram(**args)  # type: ignore[arg-type]


def test_stages_are_read_only() -> None:
    h = Hypnogram([0, 1], START)
    with pytest.raises(ValueError):
        h.stages[0] = 2


def test_from_dict_requires_fields_and_30s_epochs() -> None:
    with pytest.raises(ValueError, match="at least"):
        Hypnogram.from_dict({"stages": [0]})
    with pytest.raises(ValueError, match="30-second"):
        Hypnogram.from_dict({"stages": [0], "start_time": "2025-01-01T00:00:00+00:00", "epoch_seconds": 20})
    h = Hypnogram.from_dict({"stages": [0, 1], "start_time": "2025-01-01T00:00:00", "timezone": "Asia/Seoul"})
    assert h.start_time.utcoffset() == timezone(timedelta(hours=9)).utcoffset(None)
