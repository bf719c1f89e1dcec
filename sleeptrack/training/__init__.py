"""Training and evaluating the engine: simulated nights, real clips, a user's own scored nights.

Sits above ``analysis`` and ``sim`` (it uses both); the server and the SDK never import it.
"""

from ._clips import clip_set, load_clips
from ._nights import (
    NightFiles,
    find_night_pairs,
    recording_night,
    simulated_night,
    simulated_nights,
)

__all__ = [
    "NightFiles",
    "clip_set",
    "find_night_pairs",
    "load_clips",
    "recording_night",
    "simulated_night",
    "simulated_nights",
]
