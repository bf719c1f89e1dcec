"""The analysis engine at run time: chunk features, staging and snoring for a session.

An :class:`Engine` is loaded from a versioned model artifact (``.npz`` arrays + ``.json`` metadata; no
pickle). It is immutable and thread-safe; :func:`load_engine` caches the default one.
"""

from __future__ import annotations

import base64
import binascii
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
from ._sequence import CausalCarry, causal_sequence_features, sequence_features
from ._snore import window_features
from ._trees import TreeEnsemble

__all__ = [
    "DEFAULT_MODEL",
    "MODELS_DIR",
    "SNORE_SUMMARY_NAMES",
    "Engine",
    "ModelError",
    "RealtimeState",
    "RealtimeStateError",
    "StagingResult",
    "chunk_feature_names",
    "load_engine",
    "snore_summary",
]

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]
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

    def decode(self, probs: _F32, valid: npt.NDArray[np.bool_]) -> tuple[_I8, _F32]:
        """Whole-night decoding: the Viterbi path, and the filtered posteriors."""
        ll = scaled_log_likelihood(probs, self.prior, valid, self.weight)
        filtered = forward_filter(ll, self.trans, self.init)
        return viterbi(ll, np.log(self.trans), np.log(self.init)), filtered.astype(np.float32)

    def filter(self, probs: _F32, valid: npt.NDArray[np.bool_], previous: _F64 | None) -> _F64:
        """Real-time decoding: posteriors filtered forward from ``previous`` (the epoch before; ``None``:
        the night's start)."""
        weight = self.weight if self.causal_weight is None else self.causal_weight
        return forward_filter(scaled_log_likelihood(probs, self.prior, valid, weight), self.trans, self.init, previous)

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


class RealtimeStateError(ValueError):
    """A real-time state that cannot continue this night: another model, or its decided epochs changed."""


def _pack(a: npt.NDArray[Any]) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode()


def _unpack(text: str, shape: tuple[int, ...]) -> _F64:
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f8").reshape(shape).astype(np.float64)


def _bits(flags: npt.NDArray[np.bool_]) -> str:
    return np.packbits(flags).tobytes().hex()


def _unbits(text: str, n: int) -> npt.NDArray[np.bool_]:
    flags = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n].astype(bool)
    if flags.size != n:
        raise ValueError(f"{flags.size} flags for {n} epochs")
    return flags


def _carry_json(c: CausalCarry) -> dict[str, Any]:
    return {
        "summed": c.summed,
        "count": c.count,
        "width": int(c.total.size),
        "total": _pack(c.total),
        "total_sq": _pack(c.total_sq),
        "tail": _pack(c.tail),
        "tail_valid": _bits(c.tail_valid),
    }


def _carry_from_json(d: dict[str, Any], tail_rows: int) -> CausalCarry:
    width = int(d["width"])
    return CausalCarry(
        int(d["summed"]),
        float(d["count"]),
        _unpack(d["total"], (width,)),
        _unpack(d["total_sq"], (width,)),
        _unpack(d["tail"], (tail_rows, width)),
        _unbits(d["tail_valid"], tail_rows),
    )


@dataclass(frozen=True)
class RealtimeState:
    """Where real-time staging of a night stopped, to go on with :meth:`Engine.realtime_continue`.

    It holds the night-so-far sums of the staging inputs, their last minutes and the last filtered
    posteriors: about 15 kB however long the night. A server keeps it (:meth:`to_json`) with each
    real-time result, so that every 5 minutes only the new epochs are computed.
    """

    model_version: str
    #: Epochs decided: ``0 .. epochs - 1``.
    epochs: int
    #: The ``valid`` flags those epochs were decided with.
    valid: npt.NDArray[np.bool_]
    stage_carry: CausalCarry
    snore_carry: CausalCarry
    #: Filtered posteriors of the last decided epoch (``None`` before the first).
    stage_last: _F64 | None
    snore_last: _F64 | None

    @property
    def input_start(self) -> int:
        """The first epoch whose features a continuation needs."""
        return self.stage_carry.input_start

    def to_json(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "epochs": self.epochs,
            "valid": _bits(self.valid),
            "stage_carry": _carry_json(self.stage_carry),
            "snore_carry": _carry_json(self.snore_carry),
            "stage_last": None if self.stage_last is None else self.stage_last.tolist(),
            "snore_last": None if self.snore_last is None else self.snore_last.tolist(),
        }

    @classmethod
    def from_json(cls, data: Any) -> RealtimeState:
        """The state :meth:`to_json` wrote; :class:`RealtimeStateError` if ``data`` is not one."""

        def last(v: Any) -> _F64 | None:
            return None if v is None else np.asarray(v, dtype=np.float64)

        try:
            epochs = int(data["epochs"])
            stage = data["stage_carry"]
            tail = epochs - int(stage["summed"])
            return cls(
                str(data["model_version"]),
                epochs,
                _unbits(data["valid"], epochs),
                _carry_from_json(stage, tail),
                _carry_from_json(data["snore_carry"], tail),
                last(data["stage_last"]),
                last(data["snore_last"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise RealtimeStateError(f"not a real-time state: {exc}") from exc


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
    def _checked(self, features: npt.ArrayLike, valid: npt.ArrayLike) -> tuple[_F32, npt.NDArray[np.bool_]]:
        x = np.asarray(features, dtype=np.float32)
        ok = np.asarray(valid, dtype=bool)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"features must have shape (n_epochs, {self.n_features}), got {x.shape}")
        if ok.shape != (x.shape[0],):
            raise ValueError(f"valid must have shape ({x.shape[0]},), got {ok.shape}")
        return x, ok

    @staticmethod
    def _usable(x: _F32, valid: npt.NDArray[np.bool_]) -> tuple[_F32, npt.NDArray[np.bool_]]:
        """Rows with non-finite features count as invalid; invalid rows are zeroed."""
        ok = valid & np.all(np.isfinite(x), axis=1)
        return np.where(ok[:, None], x, 0.0).astype(np.float32), ok

    def _result(
        self, path: _I8, posterior: npt.ArrayLike, snore_path: _I8, ok: npt.NDArray[np.bool_], scheme: StageScheme
    ) -> StagingResult:
        stages = path.astype(np.int8)
        post = np.asarray(posterior, dtype=np.float32)
        if scheme is StageScheme.TWO:
            stages = (stages > 0).astype(np.int8)
            post = np.stack([post[:, 0], post[:, 1:].sum(axis=1)], axis=1)
        stages[~ok] = Stage.ERROR
        snoring = snore_path.astype(np.int8)
        snoring[~ok] = -1
        return StagingResult(stages, snoring, post, scheme, self.version)

    def realtime(
        self, features: npt.ArrayLike, valid: npt.ArrayLike, scheme: StageScheme = StageScheme.FOUR
    ) -> StagingResult:
        """Causal staging: epoch ``t`` is decided from epochs ``0..t`` only (forward filtering)."""
        return self.realtime_continue(None, features, valid, scheme)[0]

    def realtime_continue(
        self,
        state: RealtimeState | None,
        features: npt.ArrayLike,
        valid: npt.ArrayLike,
        scheme: StageScheme = StageScheme.FOUR,
    ) -> tuple[StagingResult, RealtimeState]:
        """Causal staging of the epochs after ``state`` (``None``: from the night's start).

        ``features`` and ``valid`` hold epochs ``state.input_start .. n - 1`` (``0 .. n - 1`` without a
        state). Returns the staging of epochs ``state.epochs .. n - 1``, equal to those rows of
        :meth:`realtime` on the whole night, and the state to continue from. Raises
        :class:`RealtimeStateError` when ``state`` was made by another model or with other ``valid`` flags.
        """
        x, given = self._checked(features, valid)
        scheme = StageScheme(scheme)
        offset = 0 if state is None else state.input_start
        done = 0 if state is None else state.epochs
        if state is not None:
            if state.model_version != self.version:
                raise RealtimeStateError(f"the state was made by model {state.model_version}, not {self.version}")
            if offset + x.shape[0] < done:
                raise RealtimeStateError(f"{offset + x.shape[0]} epochs given; {done} are already decided")
            if not np.array_equal(given[: done - offset], state.valid[offset:]):
                raise RealtimeStateError("epochs already decided have changed")
        x, ok = self._usable(x, given)
        stage = causal_sequence_features(
            x, ok, self.feature_scale, N_SCALAR_FEATURES, None if state is None else state.stage_carry
        )
        snore = causal_sequence_features(
            x[:, self._snore_columns],
            ok,
            self.feature_scale[self._snore_columns],
            None,
            None if state is None else state.snore_carry,
        )
        stage_rows, stage_carry = stage
        snore_rows, snore_carry = snore
        new = ok[done - offset :]
        stage_last = None if state is None else state.stage_last
        snore_last = None if state is None else state.snore_last
        posterior = np.zeros((0, self.stage_chain.init.size))
        snore_post = np.zeros((0, self.snore_chain.init.size))
        if new.size:
            probs = self.stage_causal.predict_proba(stage_rows)
            posterior = self.stage_chain.filter(probs, new, stage_last)
            snore_probs = self.snore_causal.predict_proba(snore_rows)
            snore_post = self.snore_chain.filter(snore_probs, new, snore_last)
            stage_last, snore_last = posterior[-1], snore_post[-1]
        result = self._result(
            np.argmax(posterior, axis=1).astype(np.int8),
            posterior,
            np.argmax(snore_post, axis=1).astype(np.int8),
            new,
            scheme,
        )
        previous = np.zeros(0, dtype=bool) if state is None else state.valid
        after = RealtimeState(
            self.version,
            offset + x.shape[0],
            np.concatenate([previous, given[done - offset :]]),
            stage_carry,
            snore_carry,
            stage_last,
            snore_last,
        )
        return result, after

    def full_night(
        self, features: npt.ArrayLike, valid: npt.ArrayLike, scheme: StageScheme = StageScheme.FOUR
    ) -> StagingResult:
        """Whole-night staging with Viterbi decoding, for the final report."""
        x, ok = self._usable(*self._checked(features, valid))
        scheme = StageScheme(scheme)
        if x.shape[0] == 0:
            empty = np.zeros(0, dtype=np.int8)
            return StagingResult(empty, empty, np.zeros((0, scheme.n_classes), np.float32), scheme, self.version)
        seq = sequence_features(x, ok, self.feature_scale, False, N_SCALAR_FEATURES)
        path, posterior = self.stage_chain.decode(self.stage_full.predict_proba(seq), ok)
        snore_x = sequence_features(x[:, self._snore_columns], ok, self.feature_scale[self._snore_columns], False)
        snore_path, _ = self.snore_chain.decode(self.snore_full.predict_proba(snore_x), ok)
        return self._result(path, posterior, snore_path, ok, scheme)

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
