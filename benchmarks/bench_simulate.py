"""Night simulator: speed and memory of an 8-hour night, and how hard its nights are.

Targets: ``sleeptrack simulate --hours 8`` in under 60 s with peak memory under 300 MB (run as a
subprocess, peak RSS from ``getrusage(RUSAGE_CHILDREN)``); one epoch of true breathing parameters must
not separate the stages (Gaussian naive Bayes accuracy < 0.75 on test-split nights).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import typer
from scipy.ndimage import uniform_filter1d

from sleeptrack._data import shared_data_dir
from sleeptrack.cli import app
from sleeptrack.sim import NightConfig, NightSimulator, NightTruth

MAX_SECONDS = 60.0
MAX_RSS_MB = 300.0
MAX_ONE_EPOCH_ACCURACY = 0.75
ROOT = Path(__file__).resolve().parent.parent


def _run_cli(hours: float, out: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # a Typer app with a single command takes no sub-command name
    group = isinstance(typer.main.get_command(app), typer.core.TyperGroup)
    cmd = [sys.executable, "-m", "sleeptrack", *(["simulate"] if group else [])]
    cmd += ["--hours", str(hours), "--seed", "7", "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("  (peak RSS of this child not above earlier children; figure is an upper bound)")
    return seconds, peak / 1024.0


def _features(t: NightTruth, normalise: bool = False, context: int = 0) -> np.ndarray:
    lat = t.latent
    x = np.stack([lat.breath_rate_bpm, np.log(lat.breath_interval_cv), lat.breath_level_db], axis=1)
    if normalise:
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    if context:
        x = uniform_filter1d(x, 2 * context + 1, axis=0, mode="nearest")
    return x


def _naive_bayes(
    train: list[NightTruth], test: list[NightTruth], normalise: bool = False, context: int = 0
) -> tuple[float, float]:
    """(accuracy, balanced accuracy) of a Gaussian naive Bayes on the breathing latents."""
    x = np.concatenate([_features(t, normalise, context) for t in train])
    y = np.concatenate([t.sleep_stages for t in train])
    mean = np.array([x[y == k].mean(axis=0) for k in range(4)])
    var = np.array([x[y == k].var(axis=0) + 1e-9 for k in range(4)])
    prior = np.log([np.mean(y == k) for k in range(4)])
    xt = np.concatenate([_features(t, normalise, context) for t in test])
    yt = np.concatenate([t.sleep_stages for t in test])
    ll = -0.5 * (((xt[:, None, :] - mean) ** 2) / var + np.log(2 * np.pi * var)).sum(axis=2) + prior
    pred = ll.argmax(axis=1)
    return float(np.mean(pred == yt)), float(np.mean([np.mean(pred[yt == k] == k) for k in range(4)]))


def _architecture(nights: list[NightTruth]) -> str:
    shares = np.mean([[np.mean(t.sleep_stages == k) for k in range(4)] for t in nights], axis=0)
    rem_latency = []
    for t in nights:
        asleep = np.flatnonzero(t.sleep_stages > 0)
        rem = np.flatnonzero(t.sleep_stages[asleep[0] :] == 3)
        if rem.size:
            rem_latency.append(rem[0] / 2)
    return (
        f"wake {100 * shares[0]:.1f} %, light {100 * shares[1]:.1f} %, deep {100 * shares[2]:.1f} %, "
        f"REM {100 * shares[3]:.1f} % of time in bed; median REM latency {np.median(rem_latency):.0f} min"
    )


def main() -> bool:
    ok = True
    data = shared_data_dir()
    print(f"data folder: {data if data else 'absent (model hypnograms, synthetic sounds)'}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "night.flac"
        seconds, peak_mb = _run_cli(8.0, out)
        size_mb = out.stat().st_size / 2**20
    print(f"8-hour night (seed 7, FLAC): {seconds:.1f} s wall, peak RSS {peak_mb:.0f} MB, {size_mb:.0f} MB file")
    print(f"  targets: < {MAX_SECONDS:.0f} s, < {MAX_RSS_MB:.0f} MB")
    if seconds >= MAX_SECONDS or peak_mb >= MAX_RSS_MB:
        ok = False

    started = time.perf_counter()
    train = [NightSimulator(NightConfig(hours=8.0, seed=s, split="train")).truth for s in range(1000, 1024)]
    test = [NightSimulator(NightConfig(hours=8.0, seed=s, split="test")).truth for s in range(2000, 2016)]
    print(f"truth of 40 eight-hour nights: {time.perf_counter() - started:.1f} s")
    raw = _naive_bayes(train, test)
    night_z = _naive_bayes(train, test, normalise=True)
    context = _naive_bayes(train, test, normalise=True, context=4)
    majority = max(np.mean(np.concatenate([t.sleep_stages for t in test]) == k) for k in range(4))
    print("per-epoch separability of the true breathing parameters (rate, interval CV, level), test nights:")
    print(f"  one epoch, raw:                 accuracy {raw[0]:.3f}, balanced {raw[1]:.3f}")
    print(f"  one epoch, night-normalised:    accuracy {night_z[0]:.3f}, balanced {night_z[1]:.3f}")
    print(f"  ±2 min context, normalised:     accuracy {context[0]:.3f}, balanced {context[1]:.3f}")
    print(f"  majority class (light):         accuracy {majority:.3f}")
    if max(raw[0], night_z[0]) >= MAX_ONE_EPOCH_ACCURACY:
        ok = False
    print(f"architecture of the test nights: {_architecture(test)}")
    profiles = [t.profile for t in train + test]
    snr = np.array([p.snr_db for p in profiles])
    print(
        f"profiles: {np.mean([p.snorer for p in profiles]) * 100:.0f} % snorers; breathing SNR dB "
        f"p10 {np.percentile(snr, 10):.1f}, median {np.median(snr):.1f}, p90 {np.percentile(snr, 90):.1f}; "
        f"{np.mean(snr < 0) * 100:.0f} % of nights below 0 dB"
    )
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
