"""Analysis engine: accuracy on unseen simulated nights and real clips, speed and memory.

Targets (issue "The analysis engine"):

* >= 10 simulated nights whose seeds and source hypnograms were never used in training (test split of the
  real hypnograms, seeds 900000+), mixed SNR, snorers included: 4-class accuracy >= 0.80, kappa >= 0.70,
  deep recall >= 0.60, snoring F1 >= 0.90, |TST bias| <= 15 min, |sleep-latency bias| <= 10 min;
* real clips: snoring accuracy >= 0.95 on the held-out (test) split of ``snoring_clips``;
* an 8-hour night end to end (decode, mel, features, snoring, staging, statistics) in at most 1.5x the time
  librosa needs for the mel spectrogram of the same audio in 30-s chunks (warm), peak RSS <= 400 MB;
* per 30-s chunk on one core: the SDK's mel spectrogram and the server's features + snoring, each <= 20 ms;
* real time: an 8-hour night staged every 5 minutes as the server does (each update continuing the previous
  one's state) costs at most 2x one causal pass over the whole night; printed beside the cost of re-staging
  the night so far at every update.

Set ``BENCH_ENGINE_NIGHTS`` to evaluate fewer nights (default 12).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from sleeptrack.analysis import SAMPLES_PER_EPOCH, NightPair, StageScheme, agreement, load_engine
from sleeptrack.analysis._mel import MEL, mel_spectrogram, quantize_roundtrip
from sleeptrack.analysis._snore import window_features
from sleeptrack.analysis._threads import one_blas_thread

ROOT = Path(__file__).resolve().parent.parent
TEST_SEED_BASE = 900_000
TARGETS = {"accuracy": 0.80, "kappa": 0.70, "deep_recall": 0.60, "snoring_f1": 0.90}
MAX_TST_BIAS_MIN = 15.0
MAX_LATENCY_BIAS_MIN = 10.0
MIN_CLIP_ACCURACY = 0.95
MAX_SPEED_RATIO = 1.5
MAX_RSS_MB = 400.0
MAX_CHUNK_MS = 20.0


def _night_pair(seed: int) -> tuple[NightPair, NightPair]:
    """Simulate one test-split night and analyse it chunk by chunk, as the server does."""
    from sleeptrack.sim import NightConfig, NightSimulator

    hours = float(6.0 + 3.0 * np.random.default_rng([seed, 77]).random())
    sim = NightSimulator(NightConfig(hours=hours, seed=seed, split="test"))
    engine = load_engine()
    features = np.stack([engine.chunk_features_from_audio(block) for block in sim.iter_epochs()])
    valid = np.ones(features.shape[0], dtype=bool)
    full = engine.full_night(features, valid, StageScheme.FOUR)
    live = engine.realtime(features, valid, StageScheme.FOUR)
    truth = sim.truth.hypnogram
    n = min(truth.n_epochs, full.stages.size)
    snoring = None if truth.snoring is None else truth.snoring[:n]
    name = f"test-{seed}"
    return (
        NightPair(name, truth.stages[:n], full.stages[:n], snoring, full.snoring[:n]),
        NightPair(name, truth.stages[:n], live.stages[:n], snoring, live.snoring[:n]),
    )


def accuracy(n_nights: int) -> bool:
    seeds = [TEST_SEED_BASE + i for i in range(n_nights)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2, initializer=one_blas_thread) as pool:
        results = list(pool.map(_night_pair, seeds))
    full = agreement([r[0] for r in results])
    live = agreement([r[1] for r in results])
    snorers = sum(1 for r in results if r[0].truth_snoring is not None and int(r[0].truth_snoring.sum()) > 0)
    print(f"  {n_nights} test-split nights ({snorers} with snoring), {time.perf_counter() - started:.0f} s")
    s = full.stages
    labels = list(s.labels)
    deep_recall = s.recall[labels.index("deep")]
    figures = {
        "accuracy": s.accuracy,
        "kappa": s.kappa,
        "deep_recall": deep_recall,
        "snoring_f1": full.snoring_f1 or 0.0,
    }
    ok = True
    for key, value in figures.items():
        hit = value >= TARGETS[key]
        ok &= hit
        print(f"  {key:<12} {value:.3f}  (target >= {TARGETS[key]:.2f}) {'ok' if hit else 'MISSED'}")
    print("  recall       " + "  ".join(f"{lab} {r:.2f}" for lab, r in zip(labels, s.recall, strict=True)))
    print("  precision    " + "  ".join(f"{lab} {p:.2f}" for lab, p in zip(labels, s.precision, strict=True)))
    print(f"  2-stage acc  {full.two_stage.accuracy:.3f} kappa {full.two_stage.kappa:.3f}")
    print(f"  real-time (causal) 4-class accuracy {live.stages.accuracy:.3f} kappa {live.stages.kappa:.3f}")
    for metric, limit in (("tst", MAX_TST_BIAS_MIN), ("sleep_latency", MAX_LATENCY_BIAS_MIN)):
        ba = full.nights.get(metric)
        if ba is None:
            continue
        hit = abs(ba.bias) <= limit
        ok &= hit
        lo, hi = ba.limits
        print(
            f"  {metric:<13} bias {ba.bias:+.1f} {ba.unit}, 95% LoA [{lo:+.1f}, {hi:+.1f}] "
            f"(target |bias| <= {limit:.0f}) {'ok' if hit else 'MISSED'}"
        )
    for metric in ("sleep_efficiency", "waso"):
        ba = full.nights.get(metric)
        if ba is not None:
            print(f"  {metric:<13} bias {ba.bias:+.2f} {ba.unit}")
    return ok


def clips() -> bool | None:
    from sleeptrack.training._clips import load_clips

    test = load_clips("test")
    if not test:
        print("  ../shared/data/snoring_clips not found: clip accuracy not measured")
        return None
    engine = load_engine()
    feats = []
    for clip in test:
        x = clip.samples if clip.samples.size >= 16_000 else np.pad(clip.samples, (0, 16_000 - clip.samples.size))
        feats.append(window_features(quantize_roundtrip(mel_spectrogram(x))[:100]))
    probs = engine.snore_window.predict_proba(np.concatenate(feats))[:, 1]
    labels = np.asarray([c.label for c in test])
    acc = float(np.mean((probs >= 0.5) == labels))
    sens = float(np.mean(probs[labels == 1] >= 0.5))
    spec = float(np.mean(probs[labels == 0] < 0.5))
    hit = acc >= MIN_CLIP_ACCURACY
    print(
        f"  held-out clips: {labels.size} ({int(labels.sum())} snoring): accuracy {acc:.3f} "
        f"(sensitivity {sens:.3f}, specificity {spec:.3f}; target >= {MIN_CLIP_ACCURACY}) {'ok' if hit else 'MISSED'}"
    )
    return hit


def _librosa_seconds(path: Path) -> float:
    import librosa

    def run() -> None:
        for block in sf.blocks(str(path), blocksize=SAMPLES_PER_EPOCH, dtype="float32"):
            librosa.feature.melspectrogram(
                y=block,
                sr=MEL.sample_rate,
                n_fft=MEL.n_fft,
                win_length=MEL.win_length,
                hop_length=MEL.hop_length,
                n_mels=MEL.n_mels,
                htk=False,
                norm="slaney",
                power=2.0,
            )

    with sf.SoundFile(str(path)) as f:
        first = f.read(SAMPLES_PER_EPOCH, dtype="float32")
    librosa.feature.melspectrogram(
        y=first, sr=MEL.sample_rate, n_fft=MEL.n_fft, win_length=MEL.win_length, hop_length=MEL.hop_length
    )
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def speed() -> bool:
    from sleeptrack.analysis import analyze_recording

    with tempfile.TemporaryDirectory() as tmp:
        night = Path(tmp) / "night.flac"
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        cmd = [sys.executable, "-m", "sleeptrack", "simulate", "--hours", "8", "--seed", "7", "--out", str(night)]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        engine = load_engine()
        librosa_s = _librosa_seconds(night)
        started = time.perf_counter()
        analysis = analyze_recording(night, engine=engine)
        ours_s = time.perf_counter() - started
        ratio = ours_s / librosa_s
        print(
            f"  8-h night, {analysis.staging.stages.size} epochs: sleeptrack analyse {ours_s:.1f} s, "
            f"librosa mel in 30-s chunks {librosa_s:.1f} s, ratio {ratio:.2f} (target <= {MAX_SPEED_RATIO})"
        )
        # Peak memory of the whole command in a fresh process.
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run(
            [sys.executable, "-m", "sleeptrack", "analyze", str(night), "--json"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        if peak_mb * 1024.0 <= before:
            print("  (peak RSS not above the simulator's; the figure is an upper bound)")
        print(f"  peak RSS of `sleeptrack analyze` on it: {peak_mb:.0f} MB (target <= {MAX_RSS_MB:.0f})")
    return ratio <= MAX_SPEED_RATIO and peak_mb <= MAX_RSS_MB


def per_chunk() -> bool:
    one_blas_thread()
    rng = np.random.default_rng(3)
    t = np.arange(SAMPLES_PER_EPOCH) / MEL.sample_rate
    samples = (0.05 * np.sin(2 * np.pi * 0.25 * t) * rng.standard_normal(t.size)).astype(np.float32)
    engine = load_engine()
    mel = quantize_roundtrip(mel_spectrogram(samples))
    engine.chunk_features(mel)
    mel_ms, feat_ms = [], []
    for _ in range(40):
        started = time.perf_counter()
        mel_spectrogram(samples)
        mel_ms.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        engine.chunk_features(mel)
        feat_ms.append(1000 * (time.perf_counter() - started))
    ok = True
    for name, values in (("SDK mel spectrogram", mel_ms), ("server features + snoring", feat_ms)):
        med, p99 = float(np.median(values)), float(np.percentile(values, 99))
        hit = med <= MAX_CHUNK_MS
        ok &= hit
        verdict = "ok" if hit else "MISSED"
        print(f"  {name:<26} median {med:.1f} ms, p99 {p99:.1f} ms (target <= {MAX_CHUNK_MS:.0f}) {verdict}")
    return ok


def realtime_updates() -> bool:
    """An 8-hour night in 5-minute updates: continued from the stored state versus re-staged each time."""
    from sleeptrack.analysis import RealtimeState
    from sleeptrack.sim import NightConfig, NightSimulator

    one_blas_thread()
    engine = load_engine()
    sim = NightSimulator(NightConfig(hours=1.0, seed=TEST_SEED_BASE + 99, split="test"))
    hour = np.stack([engine.chunk_features_from_audio(block) for block in sim.iter_epochs()])
    features = np.concatenate([hour] * 8)  # 960 epochs: the cost depends on the night's length, not its content
    valid = np.ones(len(features), dtype=bool)
    valid[np.random.default_rng(5).choice(len(features), 20, replace=False)] = False
    marks = range(10, len(features) + 1, 10)

    started = time.process_time()
    whole = engine.realtime(features, valid)
    one_pass = time.process_time() - started

    state: RealtimeState | None = None
    stages = []
    update_ms = []
    for n in marks:
        started = time.process_time()
        first = 0 if state is None else state.input_start
        part, state = engine.realtime_continue(state, features[first:n], valid[first:n])
        state = RealtimeState.from_json(state.to_json())
        update_ms.append(1000 * (time.process_time() - started))
        stages.append(part.stages)
    continued = sum(update_ms) / 1000
    same = bool(np.array_equal(np.concatenate(stages), whole.stages))

    started = time.process_time()
    for n in marks:
        engine.realtime(features[:n], valid[:n])
    restaged = time.process_time() - started

    ratio = continued / one_pass
    ok = same and ratio <= 2.0
    print(
        f"  real time, 8-h night in {len(update_ms)} updates: {continued:.2f} s CPU continued from the state "
        f"({ratio:.2f}x one causal pass of {one_pass:.2f} s, target <= 2x) {'ok' if ok else 'MISSED'}; "
        f"update p50 {np.median(update_ms):.1f} ms, max {max(update_ms):.1f} ms; same stages as one pass: {same}"
    )
    print(f"  re-staging the night so far at every update instead: {restaged:.1f} s ({restaged / continued:.0f}x)")
    return ok


def main() -> bool:
    n_nights = int(os.environ.get("BENCH_ENGINE_NIGHTS", "12"))
    engine = load_engine()
    print(f"  model {engine.version}")
    results = [per_chunk(), realtime_updates(), clips(), speed(), accuracy(n_nights)]
    return all(r is not False for r in results)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
