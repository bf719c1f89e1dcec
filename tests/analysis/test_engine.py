"""The engine with the model that ships with the package."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import sleeptrack.analysis as analysis
from sleeptrack.analysis import (
    DEFAULT_MODEL,
    Engine,
    ModelError,
    RealtimeState,
    RealtimeStateError,
    StageScheme,
    chunk_feature_names,
    load_engine,
)
from sleeptrack.analysis._engine import MODELS_DIR
from sleeptrack.sim import NightConfig, NightSimulator


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_engine()


@pytest.fixture(scope="module")
def night_features(engine: Engine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chunk features of a 1.5-hour simulated test-split night, its stages and snoring."""
    sim = NightSimulator(NightConfig(hours=1.5, seed=424242, split="test"))
    feats = np.stack([engine.chunk_features_from_audio(block) for block in sim.iter_epochs()])
    hyp = sim.truth.hypnogram
    assert hyp.snoring is not None
    return feats, hyp.stages, hyp.snoring


def test_public_names_are_complete() -> None:
    public = {name for name in dir(analysis) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in public if isinstance(getattr(analysis, name), type(analysis))}
    assert sorted(analysis.__all__) == sorted(analysis.__all__)  # no duplicates after sorting
    assert set(analysis.__all__) == public - modules


def test_default_model_ships_with_its_metadata(engine: Engine) -> None:
    meta = json.loads((MODELS_DIR / f"{DEFAULT_MODEL}.json").read_text())
    assert engine.version == meta["version"] == DEFAULT_MODEL
    assert meta["features"] == list(chunk_feature_names())
    assert meta["training"]["command"].startswith("sleeptrack train")
    assert "validation_metrics" in meta
    size = (MODELS_DIR / f"{DEFAULT_MODEL}.npz").stat().st_size
    assert size < 5_000_000


def test_chunk_features_are_finite_and_fixed_length(engine: Engine, night_features: tuple[np.ndarray, ...]) -> None:
    feats = night_features[0]
    assert feats.shape == (180, engine.n_features)
    assert np.all(np.isfinite(feats))


def test_realtime_decoding_never_looks_at_future_epochs(engine: Engine, night_features: tuple[np.ndarray, ...]) -> None:
    feats = night_features[0]
    valid = np.ones(len(feats), bool)
    full = engine.realtime(feats, valid)
    for k in (10, 40, 97, 150):
        prefix = engine.realtime(feats[:k], valid[:k])
        assert np.array_equal(prefix.stages, full.stages[:k])
        assert np.array_equal(prefix.snoring, full.snoring[:k])
        assert np.allclose(prefix.probabilities, full.probabilities[:k])
        # Scrambling the future changes nothing before it.
        future = feats.copy()
        future[k:] = np.random.default_rng(k).permutation(future[k:])
        assert np.array_equal(engine.realtime(future, valid).stages[:k], full.stages[:k])


@pytest.mark.parametrize("scheme", [StageScheme.FOUR, StageScheme.TWO])
def test_realtime_continues_from_its_state_exactly(
    engine: Engine, night_features: tuple[np.ndarray, ...], scheme: StageScheme
) -> None:
    """A server's 5-minute updates: each continues the stored (JSON) state with the new epochs and a few of
    context, and together they equal staging the whole night at once, to the last bit."""
    feats = night_features[0]
    valid = np.ones(len(feats), bool)
    valid[[3, 44, 45, 46, 120]] = False
    whole = engine.realtime(feats, valid, scheme)
    state: RealtimeState | None = None
    parts = []
    for n in [*range(10, len(feats) + 1, 10), len(feats)]:
        start = 0 if state is None else state.input_start
        part, state = engine.realtime_continue(state, feats[start:n], valid[start:n], scheme)
        assert n - start <= 10 + 14 or start == 0
        parts.append(part)
        state = RealtimeState.from_json(json.loads(json.dumps(state.to_json())))
        assert state.epochs == n and np.array_equal(state.valid, valid[:n])
    assert np.array_equal(np.concatenate([p.stages for p in parts]), whole.stages)
    assert np.array_equal(np.concatenate([p.snoring for p in parts]), whole.snoring)
    assert np.array_equal(np.concatenate([p.probabilities for p in parts]), whole.probabilities)
    assert state is not None and len(json.dumps(state.to_json())) < 40_000  # however long the night


def test_realtime_state_refuses_what_it_cannot_continue(engine: Engine, night_features: tuple[np.ndarray, ...]) -> None:
    feats = night_features[0][:40]
    valid = np.ones(40, bool)
    _, state = engine.realtime_continue(None, feats[:30], valid[:30])
    start = state.input_start
    changed = valid.copy()
    changed[25] = False  # a decided epoch whose chunk is now unusable
    with pytest.raises(RealtimeStateError, match="already decided have changed"):
        engine.realtime_continue(state, feats[start:], changed[start:])
    with pytest.raises(RealtimeStateError, match="already decided"):
        engine.realtime_continue(state, feats[start:20], valid[start:20])
    other = dataclasses.replace(state, model_version="another-model")
    with pytest.raises(RealtimeStateError, match="made by model another-model"):
        engine.realtime_continue(other, feats[start:], valid[start:])
    broken = state.to_json()
    broken["stage_carry"]["total"] = "not base64!"
    for bad in (broken, {"epochs": 3}, None, {**state.to_json(), "valid": "zz"}):
        with pytest.raises(RealtimeStateError, match="not a real-time state"):
            RealtimeState.from_json(bad)


def test_full_night_uses_the_whole_night(engine: Engine, night_features: tuple[np.ndarray, ...]) -> None:
    feats = night_features[0]
    valid = np.ones(len(feats), bool)
    result = engine.full_night(feats, valid)
    assert result.stages.shape == (180,)
    assert set(np.unique(result.stages)) <= {0, 1, 2, 3}
    assert np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert result.model_version == engine.version


def test_missing_epochs_are_errors_and_two_stage_mode(engine: Engine, night_features: tuple[np.ndarray, ...]) -> None:
    feats = night_features[0]
    valid = np.ones(len(feats), bool)
    valid[20:30] = False
    feats = feats.copy()
    feats[25] = np.nan  # garbage in a missing row is ignored
    for run in (engine.full_night, engine.realtime):
        result = run(feats, valid, StageScheme.FOUR)
        assert np.all(result.stages[20:30] == -1)
        assert np.all(result.snoring[20:30] == -1)
        assert np.all(result.stages[valid] >= 0)
    two = engine.full_night(feats, valid, StageScheme.TWO)
    four = engine.full_night(feats, valid, StageScheme.FOUR)
    assert set(np.unique(two.stages[valid])) <= {0, 1}
    assert np.array_equal(two.stages[valid], (four.stages[valid] > 0).astype(np.int8))
    assert two.probabilities.shape == (180, 2)


def test_bad_inputs_are_rejected(engine: Engine) -> None:
    with pytest.raises(ValueError, match="features must have shape"):
        engine.full_night(np.zeros((5, 3), np.float32), np.ones(5, bool))
    with pytest.raises(ValueError, match="valid must have shape"):
        engine.full_night(np.zeros((5, engine.n_features), np.float32), np.ones(4, bool))
    empty = engine.full_night(np.zeros((0, engine.n_features), np.float32), np.ones(0, bool))
    assert empty.stages.size == 0


def test_model_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Engine.load(tmp_path / "nope.npz")
    src = MODELS_DIR / f"{DEFAULT_MODEL}.npz"
    shutil.copy(src, tmp_path / "m.npz")
    meta = json.loads(src.with_suffix(".json").read_text())
    meta["features"] = meta["features"][:-1]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="other features"):
        Engine.load(tmp_path / "m.npz")
    (tmp_path / "m.npz").write_bytes(b"garbage")
    (tmp_path / "m.json").write_text(src.with_suffix(".json").read_text())
    with pytest.raises(ModelError, match="cannot read"):
        Engine.load(tmp_path / "m.npz")


def test_save_and_load_round_trip(engine: Engine, tmp_path: Path, night_features: tuple[np.ndarray, ...]) -> None:
    path = engine.save(tmp_path, {"note": "copy"})
    again = Engine.load(path)
    feats = night_features[0]
    valid = np.ones(len(feats), bool)
    assert np.array_equal(again.full_night(feats, valid).stages, engine.full_night(feats, valid).stages)
    assert json.loads(path.with_suffix(".json").read_text())["note"] == "copy"
