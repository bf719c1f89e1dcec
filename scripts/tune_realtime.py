"""Choose the real-time decoding weights of an already trained model, as `sleeptrack train` now does.

`sleeptrack train` ends by tuning the chains' evidence weights on its validation nights: the full night's
(Viterbi) and, since the causal weight exists, the real-time one (forward filtering) apart. This script runs
that same last step (`sleeptrack.analysis._train.tune_realtime`) on a model trained before it, on the very
validation nights `sleeptrack train` uses (same seeds, same split), and rewrites the artifact with the chosen
weights and the new validation figures. Nothing else of the model changes: the trees and networks are the
same arrays.

    python scripts/tune_realtime.py [MODEL.npz]     # default: the shipped sleeptrack-engine-1
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sleeptrack.analysis._engine import DEFAULT_MODEL, MODELS_DIR, Engine
from sleeptrack.analysis._train import _chunk_matrix, tune_realtime, validation_metrics
from sleeptrack.training import simulated_nights
from sleeptrack.training._run import TrainConfig


def main(path: Path) -> None:
    engine = Engine.load(path)
    meta = dict(engine.metadata)
    training = meta.get("training", {})
    config = TrainConfig(seed=int(training.get("seed", TrainConfig.seed)))
    seeds = config.validation_seeds()
    recorded = training.get("sources", {}).get("simulated", {}).get("validation_seeds")
    if recorded is not None and recorded != seeds:
        sys.exit(f"{path.name} was validated on seeds {recorded}, not {seeds}: retrain it with `sleeptrack train`")
    started = time.perf_counter()
    print(f"simulating {len(seeds)} validation nights (train split, seeds {seeds[0]}..{seeds[-1]})")
    nights = simulated_nights(seeds, "train", config.workers)
    chunks = [_chunk_matrix(n, engine.snore_window) for n in nights]
    tuned, weights = tune_realtime(engine, chunks, nights)
    metrics = validation_metrics(tuned, chunks, nights)
    metrics["chain_weights"] = {
        "stages": engine.stage_chain.weight,
        "snoring": engine.snore_chain.weight,
        **weights,
    }
    before = meta.get("validation_metrics", {}).get("realtime", {})
    meta["validation_metrics"] = metrics
    meta["training"] = {
        **training,
        "realtime_tuning": {
            "command": "python scripts/tune_realtime.py",
            "seconds": round(time.perf_counter() - started),
            "realtime_before": before,
        },
    }
    npz = tuned.save(path.parent, meta)
    print(f"real-time weights: stages {weights['stages_realtime']}, snoring {weights['snoring_realtime']}")
    print(f"real-time on the validation nights: {before} -> {metrics['realtime']}; written to {npz}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else MODELS_DIR / f"{DEFAULT_MODEL}.npz")
