"""Named, independent random streams derived from one night seed.

Every part of the simulator (hypnogram, profile, breaths, noise, ...) draws from its own stream, so
changing how one part consumes random numbers never shifts the others, and the same seed gives the
same night on every machine (PCG64 is platform independent).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["MAX_SEED", "stream"]

#: Seeds are non-negative integers below 2**63.
MAX_SEED = 2**63 - 1


def _key(name: str | int) -> int:
    if isinstance(name, int):
        return name & 0xFFFFFFFF
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def stream(seed: int, *names: str | int) -> np.random.Generator:
    """The random stream called ``names`` of night ``seed``.

    Examples
    --------
    >>> a = stream(7, "breaths").random()
    >>> a == stream(7, "breaths").random() and a != stream(7, "noise").random()
    True
    """
    sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(_key(n) for n in names))
    return np.random.Generator(np.random.PCG64(sequence))
