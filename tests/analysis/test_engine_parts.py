"""The engine's building blocks: features, sequence context, HMM decoding, the numpy MLP, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from sklearn.neural_network import MLPClassifier

from sleeptrack.analysis._engine import _Chain, snore_summary
from sleeptrack.analysis._features import ACF_LAGS, DSP_FEATURE_NAMES, dsp_features
from sleeptrack.analysis._hmm import forward_filter, scaled_log_likelihood, transition_matrix, viterbi
from sleeptrack.analysis._mel import mel_spectrogram, quantize_roundtrip
from sleeptrack.analysis._metrics import NightPair, agreement, epoch_agreement
from sleeptrack.analysis._mlp import MLP
from sleeptrack.analysis._sequence import (
    DERIVED_CONTEXT,
    SEQUENCE_CONTEXT,
    causal_sequence_features,
    sequence_feature_count,
    sequence_features,
)
from sleeptrack.analysis._snore import WINDOW_FEATURE_COUNT, window_features


def breathing_like(rate_bpm: float, seconds: float = 30.0, seed: int = 0) -> np.ndarray:
    """Noise whose loudness rises and falls like breaths at ``rate_bpm``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16_000 * seconds)) / 16_000
    envelope = np.maximum(np.sin(2 * np.pi * rate_bpm / 60 * t), 0.0) ** 2
    return (rng.standard_normal(t.size) * (0.002 + 0.05 * envelope)).astype(np.float32)


def test_dsp_features_shape_and_finiteness() -> None:
    for samples in (np.zeros(480_000, np.float32), breathing_like(15)):
        dsp = dsp_features(quantize_roundtrip(mel_spectrogram(samples)))
        assert dsp.scalars.shape == (len(DSP_FEATURE_NAMES),)
        assert dsp.acf.shape == (len(ACF_LAGS),)
        assert dsp.envelope.shape == (300,)
        for block in (dsp.scalars, dsp.acf, dsp.envelope):
            assert np.all(np.isfinite(block))


@pytest.mark.parametrize("rate", [10.0, 15.0, 22.0])
def test_breathing_rate_is_recovered_from_the_envelope(rate: float) -> None:
    feats = dict(
        zip(
            DSP_FEATURE_NAMES,
            dsp_features(quantize_roundtrip(mel_spectrogram(breathing_like(rate)))).scalars,
            strict=True,
        )
    )
    assert feats["breath_rate_psd"] == pytest.approx(rate, abs=1.5)
    assert feats["breath_count"] == pytest.approx(rate / 2, abs=2)
    assert feats["breath_ac_peak"] > 0.5
    assert feats["breath_interval_cv"] < 0.2


def test_window_features_one_row_per_second() -> None:
    mel = mel_spectrogram(breathing_like(15))
    assert window_features(mel).shape == (30, WINDOW_FEATURE_COUNT)
    assert window_features(mel[:50]).shape == (0, WINDOW_FEATURE_COUNT)


def test_snore_summary_sees_rhythm() -> None:
    rhythmic = np.tile([0.9, 0.1, 0.1, 0.1], 8)[:30].astype(np.float32)
    flat = np.full(30, 0.1, np.float32)
    assert snore_summary(rhythmic)[4] > 0.5
    assert snore_summary(flat)[4] == 0.0
    assert snore_summary(rhythmic)[2] == pytest.approx(8 / 30)


def test_causal_sequence_features_never_look_ahead() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 7)).astype(np.float32)
    valid = rng.random(60) > 0.1
    scale = np.ones(7, np.float32)
    base = sequence_features(x, valid, scale, causal=True)
    assert base.shape == (60, sequence_feature_count(7, causal=True))
    changed = x.copy()
    changed[40:] += 100.0
    after = sequence_features(changed, valid, scale, causal=True)
    assert np.array_equal(base[:40], after[:40])
    assert not np.array_equal(base[40:], after[40:])
    full = sequence_features(changed, valid, scale, causal=False)
    assert not np.array_equal(sequence_features(x, valid, scale, causal=False)[:40], full[:40])


@pytest.mark.parametrize("cuts", [[10, 20, 30, 41, 57, 120], [1, 2, 3, 120], [35, 36, 120], [120]])
def test_causal_sequence_features_continue_a_night_bit_for_bit(cuts: list[int]) -> None:
    """Computed in parts from the carry (a few rows of context, not the night so far) or whole: same bits,
    breathing blocks included."""
    rng = np.random.default_rng(7)
    n_scalar = 6
    width = n_scalar + len(ACF_LAGS) + 300
    x = rng.standard_normal((120, width))
    x[:, n_scalar + len(ACF_LAGS) :] = np.sin(np.arange(300) / 4.0 + rng.random((120, 1)) * 6) + rng.random((120, 300))
    valid = rng.random(120) > 0.15
    scale = np.ones(width)
    whole = sequence_features(x, valid, scale, causal=True, n_scalar=n_scalar)
    parts, carry, done = [], None, 0
    for cut in cuts:
        start = 0 if carry is None else carry.input_start
        assert start >= done - DERIVED_CONTEXT  # only a few earlier rows are read again
        rows, carry = causal_sequence_features(x[start:cut], valid[start:cut], scale, n_scalar, carry)
        assert rows.shape[0] == cut - done and carry.end == cut
        assert carry.tail.shape[0] <= SEQUENCE_CONTEXT or carry.summed == 0
        parts.append(rows)
        done = cut
    assert np.array_equal(np.concatenate(parts), whole)
    with pytest.raises(ValueError, match="before the 120 rows"):
        causal_sequence_features(x[100:110], valid[100:110], scale, n_scalar, carry)


def test_forward_filter_is_causal_and_viterbi_decodes_a_known_chain() -> None:
    trans = np.array([[0.9, 0.1], [0.1, 0.9]])
    init = np.array([0.5, 0.5])
    probs = np.array([[0.8, 0.2]] * 5 + [[0.45, 0.55]] + [[0.8, 0.2]] * 4 + [[0.1, 0.9]] * 6)
    valid = np.ones(len(probs), bool)
    ll = scaled_log_likelihood(probs, [0.5, 0.5], valid)
    path = viterbi(ll, np.log(trans), np.log(init))
    # The lone weak vote for state 1 is smoothed away; the long run of strong votes is kept.
    assert path.tolist() == [0] * 10 + [1] * 6
    filtered = forward_filter(ll, trans, init)
    prefix = forward_filter(ll[:8], trans, init)
    assert np.allclose(filtered[:8], prefix)
    assert np.allclose(filtered.sum(axis=1), 1.0)
    gap = valid.copy()
    gap[10:13] = False
    assert np.all(scaled_log_likelihood(probs, [0.5, 0.5], gap)[10:13] == 0.0)


def test_real_time_decoding_has_its_own_evidence_weight() -> None:
    """A sticky chain holds real-time decoding back; the causal weight sets how much, the full night keeps its own."""
    trans = np.array([[0.95, 0.05], [0.05, 0.95]])
    probs = np.array([[0.9, 0.1]] * 6 + [[0.3, 0.7]] * 3 + [[0.9, 0.1]] * 3, dtype=np.float32)
    valid = np.ones(len(probs), bool)
    weak = _Chain(trans, np.array([0.5, 0.5]), np.array([0.5, 0.5]), 0.5)
    strong_causal = _Chain(trans, weak.init, weak.prior, 0.5, causal_weight=5.0)

    def causal(chain: _Chain) -> np.ndarray:
        return np.asarray(np.argmax(chain.filter(probs, valid, None), axis=1))

    held_back = causal(weak)
    assert held_back.tolist() == [0] * 12  # three votes for state 1 are not enough under weight 0.5
    followed = causal(strong_causal)
    assert followed[6:9].tolist() == [1, 1, 1] and followed[:6].tolist() == [0] * 6
    assert np.array_equal(strong_causal.decode(probs, valid)[0], weak.decode(probs, valid)[0])
    # persisted with the model; an artifact from before the causal weight decodes as it always did
    assert _Chain.from_arrays(strong_causal.to_arrays("c"), "c").causal_weight == 5.0
    old = _Chain.from_arrays(weak.to_arrays("c"), "c")
    assert old.causal_weight is None and "c.causal_weight" not in weak.to_arrays("c")
    assert np.array_equal(causal(old), held_back)


def test_transition_matrix_counts_transitions_and_skips_errors() -> None:
    trans = transition_matrix([np.array([0, 0, 1, 1, -1, 1, 0], np.int8)], 2, pseudo=0.0)
    assert trans.tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_numpy_mlp_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 6))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 1).astype(int)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    model = MLPClassifier((16, 8), max_iter=400, random_state=0).fit((X - mean) / scale, y)
    mlp = MLP.from_sklearn(model, mean, scale)
    assert np.allclose(mlp.predict_proba(X), model.predict_proba((X - mean) / scale), atol=1e-5)
    back = MLP.from_arrays(mlp.to_arrays("m"), "m")
    assert np.array_equal(back.predict_proba(X), mlp.predict_proba(X))
    binary = MLPClassifier((4,), max_iter=300, random_state=0).fit((X - mean) / scale, y > 0)
    assert np.allclose(
        MLP.from_sklearn(binary, mean, scale).predict_proba(X), binary.predict_proba((X - mean) / scale), atol=1e-5
    )


def test_epoch_agreement_matches_sklearn_kappa() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, 500).astype(np.int8)
    pred = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 4, 500)).astype(np.int8)
    result = epoch_agreement([truth[:200], truth[200:]], [pred[:200], pred[200:]], ("w", "l", "d", "r"))
    assert result.kappa == pytest.approx(cohen_kappa_score(truth, pred))
    assert result.accuracy == pytest.approx(float((truth == pred).mean()))
    assert sum(map(sum, result.confusion)) == 500


def test_agreement_reports_night_biases() -> None:
    truth = np.array([0] * 20 + [1] * 100 + [0] * 10, np.int8)
    late = np.array([0] * 30 + [1] * 90 + [0] * 10, np.int8)
    report = agreement([NightPair("a", truth, late, np.zeros(130, np.int8), np.zeros(130, np.int8))])
    assert report.nights["sleep_latency"].bias == pytest.approx(5.0)
    assert report.nights["tst"].bias == pytest.approx(-5.0)
    assert report.stages.accuracy == pytest.approx(120 / 130)
