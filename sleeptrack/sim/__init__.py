"""Night simulator: a realistic hypnogram and the matching night of bedroom sound, with its truth.

>>> from sleeptrack.sim import NightConfig, NightSimulator
>>> sim = NightSimulator(NightConfig(hours=0.1, seed=7))
>>> sim.truth.hypnogram.n_epochs
12

See ``docs/simulator.md`` for what is modelled and the sources of every parameter.
"""

from ._audio_io import AUDIO_SUFFIXES
from ._config import NOISE_KINDS, SPLITS, NightConfig, NoiseKind, SimulationError, SplitChoice
from ._hypnogram_model import HypnogramModel, fit_hypnogram_model, packaged_model, packaged_model_path
from ._profile import NightProfile
from ._simulator import NightSimulator, ProgressCallback, simulate_night
from ._truth import BreathTable, EpochLatent, NightTruth, SimEvent, SnoreTable

__all__ = [
    "AUDIO_SUFFIXES",
    "NOISE_KINDS",
    "SPLITS",
    "BreathTable",
    "EpochLatent",
    "HypnogramModel",
    "NightConfig",
    "NightProfile",
    "NightSimulator",
    "NightTruth",
    "NoiseKind",
    "ProgressCallback",
    "SimEvent",
    "SimulationError",
    "SnoreTable",
    "SplitChoice",
    "fit_hypnogram_model",
    "packaged_model",
    "packaged_model_path",
    "simulate_night",
]
