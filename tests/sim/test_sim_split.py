"""--split train / test: a night only ever uses real hypnograms and recordings of its own side."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleeptrack._data import data_split
from sleeptrack.sim import NightTruth
from sleeptrack.sim._library import library

from ._nights import truths


def _real_items(truth: NightTruth) -> set[str]:
    """Every real hypnogram and recording the night names (segments map to their recording)."""
    items = set(truth.source["hypnograms"]) if truth.source["hypnogram_kind"] == "real" else set()
    for ids in truth.source["clips"].values():
        items |= {i.split("#", 1)[0] for i in ids if not i.startswith("synthetic:")}
    for event in truth.events:
        for key in ("clip", "clips", "speaker_clip"):
            value = event.attrs.get(key)
            if isinstance(value, str):
                items |= {v.split("#", 1)[0] for v in value.split(";") if not v.startswith("synthetic:")}
    return items


@pytest.mark.parametrize("side", ["train", "test"])
def test_nights_use_only_their_side(shared_data: Path, side: str) -> None:
    nights = truths(range(500, 512), hours=1.0, split=side, snorer=True)
    used: set[str] = set()
    for t in nights:
        assert t.split == side
        assert t.source["split"] == side
        assert t.source["hypnogram_splits"] == [side] * len(t.source["hypnograms"])
        items = _real_items(t)
        assert all(data_split(i) == side for i in items), sorted(i for i in items if data_split(i) != side)
        used |= items
    kinds = {i.split("/")[0] for i in used}
    assert {"hypnograms", "breathing", "snoring_clips"} <= kinds, "real data is actually mixed in"


def test_the_two_sides_share_nothing(shared_data: Path) -> None:
    train, test = library(shared_data, "train"), library(shared_data, "test")
    for kind in ("inhale", "exhale", "snore", "voice", "room"):
        a = {r.recording for r in getattr(train, kind)}
        b = {r.recording for r in getattr(test, kind)}
        assert a, kind
        assert b, kind
        assert not a & b, kind
    assert len(library(shared_data, "any").snore) == len(train.snore) + len(test.snore)


def test_any_split_may_use_both_sides(shared_data: Path) -> None:
    sides = {data_split(h) for t in truths(range(40), hours=0.05) for h in t.source["hypnograms"]}
    assert sides == {"train", "test"}
