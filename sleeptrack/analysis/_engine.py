"""The analysis engine at run time: chunk features, staging and snoring for a session.

An :class:`Engine` is loaded from a versioned model artifact (``.npz`` arrays + ``.json`` metadata; no
pickle). It is immutable and thread-safe; :func:`load_engine` caches the default one.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from ._constants import Stage, StageScheme
from ._features import ACF_NAMES, DSP_FEATURE_NAMES, ENVELOPE_NAMES, dsp_features
from ._hmm import forward_filter, scaled_log_likelihood, viterbi
from ._hypnogram import Hypnogram
from ._mel import MEL_VERSION, mel_spectrogram, quantize_roundtrip
from ._mlp import MLP
from ._sequence import sequence_features
from ._snore import window_features
from ._trees import TreeEnsemble

__all__ = [
    "DEFAULT_MODEL",
    "MODELS_DIR",
    "SNORE_SUMMARY_NAMES",
    "Engine",
    "ModelError",
    "StagingResult",
    "chunk_feature_names",
    "load_engine",
    "snore_summary",
]

_F32 = npt.NDArray[np.float32]
_I8 = npt.NDArray[np.int8]

MODELS_DIR: Final = Path(__file__).resolve().parent / "models"
#: Name of the model that ships with the package (``models/<name>.npz`` + ``.json``).
DEFAULT_MODEL: Final = "sleeptrack-engine-1"
#: Environment variable naming another model artifact (path to its ``.npz``) for every command.
MODEL_ENV: Final = "SLEEPTRACK_MODEL"

SNORE_SUMMARY_NAMES: Final = ("snore_max", "snore_mean", "snore_frac50", "snore_frac80", "snore_rhythm")

#: Columns of the chunk features that feed the per-epoch snoring decision.
_SNORE_INPUTS: Final = (
    *SNORE_SUMMARY_NAMES,
    "low_ac_peak",
    "low_depth",
    "low_breath_corr",
    "low_minus_high_p90",
    "level_p50",
    "breath_depth",
)


class Classifier(Protocol):
    """What the engine needs of a trained model: class probabilities, and a way to be stored."""

    def predict_proba(self, X: npt.ArrayLike) -> _F32: ...

    def to_arrays(self, prefix: str) -> dict[str, npt.NDArray[Any]]: ...


def _load_classifier(arrays: dict[str, npt.NDArray[Any]], prefix: str) -> Classifier:
    """A tree ensemble or a network, whichever the artifact holds under ``prefix``."""
    if f"{prefix}.shape" in arrays:
        return TreeEnsemble.from_arrays(arrays, prefix)
    return MLP.from_arrays(arrays, prefix)


class ModelError(RuntimeError):
    """A model artifact that cannot be loaded (missing, corrupt, or made for another feature set)."""


def chunk_feature_names() -> tuple[str, ...]:
    """Scalar features, snore summary, then the breath-envelope autocorrelation and the envelope itself."""
    return (*DSP_FEATURE_NAMES, *SNORE_SUMMARY_NAMES, *ACF_NAMES, *ENVELOPE_NAMES)


#: Columns of the chunk features before the autocorrelation block.
N_SCALAR_FEATURES: Final = len(DSP_FEATURE_NAMES) + len(SNORE_SUMMARY_NAMES)


def snore_summary(window_probs: _F32) -> _F32:
    """Epoch summary of the 1-second snore probabilities: max, mean, share > 0.5, share > 0.8, rhythm.

    The rhythm is the autocorrelation peak of the probabilities at 2–8 s: snores repeat with breathing.
    """
    p = np.asarray(window_probs, dtype=np.float64)
    if p.size == 0:
        return np.zeros(len(SNORE_SUMMARY_NAMES), dtype=np.float32)
    centred = p - p.mean()
    denom = float((centred**2).sum())
    rhythm = 0.0
    if denom > 1e-9 and p.size > 8:
        ac = [float((centred[:-lag] * centred[lag:]).sum()) / denom for lag in range(2, 9)]
        rhythm = max(ac)
    return np.array(
        [p.max(), p.mean(), (p > 0.5).mean(), (p > 0.8).mean(), rhythm],
        dtype=np.float32,
    )


@dataclass(frozen=True)
class StagingResult:
    """Stages and snoring of a session's epochs."""

    stages: _I8
    snoring: _I8
    probabilities: _F32
    scheme: StageScheme
    model_version: str

    def hypnogram(self, start_time: datetime, timezone: str = "UTC") -> Hypnogram:
        return Hypnogram(
            self.stages,
            start_time,
            timezone,
            self.scheme,
            self.probabilities,
            self.snoring,
            self.model_version,
        )


@dataclass(frozen=True)
class _Chain:
    """A Markov chain over classes and the weight of the network's evidence in it.

    ``causal_weight`` is the evidence weight of real-time (forward-filtered) decoding, tuned apart from
    the full night's: without the later epochs to correct it, a strong chain mostly delays every change of
    stage. ``None`` (artifacts made before it existed) means the full night's weight.
    """

    trans: npt.NDArray[np.float64]
    init: npt.NDArray[np.float64]
    prior: npt.NDArray[np.float64]
    weight: float
    causal_weight: float | None = None

    def decode(self, probs: _F32, valid: npt.NDArray[np.bool_], causal: bool) -> tuple[_I8, _F32]:
        weight = self.causal_weight if causal and self.causal_weight is not None else self.weight
        ll = scaled_log_likelihood(probs, self.prior, valid, weight)
        filtered = forward_filter(ll, self.trans, self.init)
        if causal:
            path = np.argmax(filtered, axis=1).astype(np.int8)
        else:
            path = viterbi(ll, np.log(self.trans), np.log(self.init))
        return path, filtered.astype(np.float32)

    def to_arrays(self, prefix: str) -> dict[str, npt.NDArray[Any]]:
        arrays = {
            f"{prefix}.trans": self.trans,
            f"{prefix}.init": self.init,
            f"{prefix}.prior": self.prior,
            f"{prefix}.weight": np.array([self.weight]),
        }
        if self.causal_weight is not None:
            arrays[f"{prefix}.causal_weight"] = np.array([self.causal_weight])
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> _Chain:
        causal = arrays.get(f"{prefix}.causal_weight")
        return cls(
            np.asarray(arrays[f"{prefix}.trans"], dtype=np.float64),
            np.asarray(arrays[f"{prefix}.init"], dtype=np.float64),
            np.asarray(arrays[f"{prefix}.prior"], dtype=np.float64),
            float(np.asarray(arrays[f"{prefix}.weight"])[0]),
            None if causal is None else float(np.asarray(causal)[0]),
        )


class Engine:
    """Chunk features, then stages and snoring for a whole session.

    Parameters are the trained networks and chains; use :func:`load_engine` or :meth:`load`.
    """

    def __init__(
        self,
        version: str,
        snore_window: Classifier,
        snore_full: Classifier,
        snore_causal: Classifier,
        stage_full: Classifier,
        stage_causal: Classifier,
        stage_chain: _Chain,
        snore_chain: _Chain,
        feature_scale: _F32,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.version = version
        self.snore_window = snore_window
        self.snore_full = snore_full
        self.snore_causal = snore_causal
        self.stage_full = stage_full
        self.stage_causal = stage_causal
        self.stage_chain = stage_chain
        self.snore_chain = snore_chain
        self.feature_scale = np.asarray(feature_scale, dtype=np.float32)
        self.metadata = metadata or {}
        names = chunk_feature_names()
        self._snore_columns = [names.index(n) for n in _SNORE_INPUTS]
        if self.feature_scale.size != len(names):
            raise ModelError(
                f"model {version} was made for {self.feature_scale.size} features; this engine computes "
                f"{len(names)}: retrain it with `sleeptrack train`"
            )

    # ------------------------------------------------------------------------------------ per chunk
    @property
    def n_features(self) -> int:
        return len(chunk_feature_names())

    @property
    def feature_names(self) -> tuple[str, ...]:
        return chunk_feature_names()

    def window_snore_probabilities(self, mel: _F32) -> _F32:
        """Probability of a snore in each 1-second window of ``mel``."""
        feats = window_features(mel)
        if feats.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        return self.snore_window.predict_proba(feats)[:, 1]

    def chunk_features(self, mel: _F32) -> _F32:
        """Features of one 30-second chunk from its (quantised) mel spectrogram."""
        mel = np.asarray(mel, dtype=np.float32)
        probs = self.window_snore_probabilities(mel[:3000])
        dsp = dsp_features(mel)
        return np.concatenate([dsp.scalars, snore_summary(probs), dsp.acf, dsp.envelope]).astype(np.float32)

    def chunk_features_from_audio(self, samples: npt.ArrayLike) -> _F32:
        """Features of one 30-second chunk of 16 kHz samples (mel computed and quantised as the SDK does)."""
        return self.chunk_features(quantize_roundtrip(mel_spectrogram(samples)))

    # ---------------------------------------------------------------------------------- per session
    def _run(self, features: npt.ArrayLike, valid: npt.ArrayLike, scheme: StageScheme, causal: bool) -> StagingResult:
        x = np.asarray(features, dtype=np.float32)
        ok = np.asarray(valid, dtype=bool)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"features must have shape (n_epochs, {self.n_features}), got {x.shape}")
        if ok.shape != (x.shape[0],):
            raise ValueError(f"valid must have shape ({x.shape[0]},), got {ok.shape}")
        ok = ok & np.all(np.isfinite(x), axis=1)
        n = x.shape[0]
        scheme = StageScheme(scheme)
        if n == 0:
            empty = np.zeros(0, dtype=np.int8)
            return StagingResult(empty, empty, np.zeros((0, scheme.n_classes), np.float32), scheme, self.version)
        x = np.where(ok[:, None], x, 0.0).astype(np.float32)

        network = self.stage_causal if causal else self.stage_full
        seq = sequence_features(x, ok, self.feature_scale, causal, N_SCALAR_FEATURES)
        probs = network.predict_proba(seq)
        path, posterior = self.stage_chain.decode(probs, ok, causal)

        snore_x = sequence_features(x[:, self._snore_columns], ok, self.feature_scale[self._snore_columns], causal)
        snore_network = self.snore_causal if causal else self.snore_full
        snore_probs = snore_network.predict_proba(snore_x)
        snore_path, _ = self.snore_chain.decode(snore_probs, ok, causal)

        stages = path.astype(np.int8)
        if scheme is StageScheme.TWO:
            stages = (stages > 0).astype(np.int8)
            posterior = np.stack([posterior[:, 0], posterior[:, 1:].sum(axis=1)], axis=1)
        stages[~ok] = Stage.ERROR
        snoring = snore_path.astype(np.int8)
        snoring[~ok] = -1
        return StagingResult(stages, snoring, posterior.astype(np.float32), scheme, self.version)

    def realtime(
        self, features: npt.ArrayLike, valid: npt.ArrayLike, scheme: StageScheme = StageScheme.FOUR
    ) -> StagingResult:
        """Causal staging: epoch ``t`` is decided from epochs ``0..t`` only (forward filtering)."""
        return self._run(features, valid, scheme, causal=True)

    def full_night(
        self, features: npt.ArrayLike, valid: npt.ArrayLike, scheme: StageScheme = StageScheme.FOUR
    ) -> StagingResult:
        """Whole-night staging with Viterbi decoding, for the final report."""
        return self._run(features, valid, scheme, causal=False)

    def with_causal_weights(self, stages: float, snoring: float) -> Engine:
        """A copy whose real-time decoding weighs the networks' evidence by ``stages`` / ``snoring``."""
        twin = copy.copy(self)  # the networks are shared, read-only
        twin.stage_chain = dataclasses.replace(self.stage_chain, causal_weight=stages)
        twin.snore_chain = dataclasses.replace(self.snore_chain, causal_weight=snoring)
        return twin

    # --------------------------------------------------------------------------------- persistence
    def save(self, directory: Path, metadata: dict[str, Any]) -> Path:
        """Write ``<version>.npz`` and ``<version>.json`` into ``directory``; returns the ``.npz`` path."""
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, npt.NDArray[Any]] = {"feature_scale": self.feature_scale}
        arrays.update(self.snore_window.to_arrays("snore_window"))
        arrays.update(self.snore_full.to_arrays("snore_full"))
        arrays.update(self.snore_causal.to_arrays("snore_causal"))
        arrays.update(self.stage_full.to_arrays("stage_full"))
        arrays.update(self.stage_causal.to_arrays("stage_causal"))
        arrays.update(self.stage_chain.to_arrays("stage_chain"))
        arrays.update(self.snore_chain.to_arrays("snore_chain"))
        npz = directory / f"{self.version}.npz"
        # Compressed: the trees' node indices shrink to a fraction (6.0 MB -> 2.7 MB for the default model).
        with npz.open("wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in sorted(arrays.items())})  # type: ignore[arg-type]
        meta = dict(metadata)
        meta.update(
            version=self.version,
            mel_version=MEL_VERSION,
            features=list(chunk_feature_names()),
            sha256=hashlib.sha256(npz.read_bytes()).hexdigest(),
        )
        (directory / f"{self.version}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return npz

    @classmethod
    def load(cls, path: Path) -> Engine:
        """Load a model artifact (``.npz``; its ``.json`` metadata must sit beside it)."""
        npz = path if path.suffix == ".npz" else path.with_suffix(".npz")
        meta_path = npz.with_suffix(".json")
        if not npz.is_file() or not meta_path.is_file():
            raise ModelError(f"model artifact not found: {npz} (and its .json metadata)")
        try:
            meta = json.loads(meta_path.read_text())
            with np.load(npz, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read model artifact {npz}: {exc}") from exc
        if meta.get("mel_version") != MEL_VERSION:
            raise ModelError(f"model {npz.name} expects mel version {meta.get('mel_version')}, not {MEL_VERSION}")
        if tuple(meta.get("features", ())) != chunk_feature_names():
            raise ModelError(f"model {npz.name} was trained on other features: retrain it with `sleeptrack train`")
        try:
            return cls(
                version=str(meta["version"]),
                snore_window=_load_classifier(arrays, "snore_window"),
                snore_full=_load_classifier(arrays, "snore_full"),
                snore_causal=_load_classifier(arrays, "snore_causal"),
                stage_full=_load_classifier(arrays, "stage_full"),
                stage_causal=_load_classifier(arrays, "stage_causal"),
                stage_chain=_Chain.from_arrays(arrays, "stage_chain"),
                snore_chain=_Chain.from_arrays(arrays, "snore_chain"),
                feature_scale=arrays["feature_scale"],
                metadata=meta,
            )
        except (KeyError, ValueError) as exc:
            raise ModelError(f"model artifact {npz.name} is incomplete or corrupt: {exc}") from exc


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> Engine:
    return Engine.load(Path(path))


def load_engine(path: str | Path | None = None) -> Engine:
    """The engine of the model at ``path``, of ``$SLEEPTRACK_MODEL``, or the default shipped one (cached)."""
    if path is None:
        path = os.environ.get(MODEL_ENV) or MODELS_DIR / f"{DEFAULT_MODEL}.npz"
    return _load_cached(str(Path(path).expanduser().resolve()))
