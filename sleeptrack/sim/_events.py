"""Body movements, wake activity (sighs, talking, phone, coughs) and room sounds of a night.

Rates are per 30-s epoch and are engineering choices built on what is known qualitatively: body
movements cluster around awakenings and stage changes (especially when REM ends), are rare in N3 and
rarest in REM (muscle atonia); talking and phone use happen awake in bed, mostly before sleep and
after the final awakening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from sleeptrack.analysis import EPOCH_SECONDS

from . import _synth
from ._architecture import Architecture
from ._bank import SoundBank
from ._profile import NightProfile
from ._truth import Scalar, SimEvent

__all__ = ["EventPlan", "Sound", "draw_events"]

Floats = npt.NDArray[np.float64]

#: Chance per epoch of a body movement starting, by stage (wake, light, deep, REM).
MOVE_RATE: Final = np.array([0.12, 0.02, 0.006, 0.004])
#: Chance of a movement at a stage change (from, to); any other change: 0.05.
MOVE_AT_CHANGE: Final = {(1, 0): 0.6, (2, 0): 0.6, (3, 0): 0.6, (0, 1): 0.25, (3, 1): 0.3, (2, 1): 0.15}
#: Sighs per epoch by stage.
SIGH_RATE: Final = np.array([0.06, 0.004, 0.001, 0.01])
#: Wake activity per wake epoch (x4 talking and x5 phone use in bed before sleep and after waking).
TALK_RATE: Final = 0.012
PHONE_RATE: Final = 0.01
COUGH_RATE: Final = np.array([0.008, 0.0015, 0.0, 0.0])
#: Room sound level above the noise bed, dB, and its ceiling, dBFS.
ROOM_LEVEL: Final = (8.0, 28.0)
ROOM_CEILING_DB: Final = -12.0


@dataclass(frozen=True)
class Sound:
    """One sound to render: a bank sound (``source`` = inhale / exhale / snore / voice / room) or a
    synthetic one (rustle, phone, cough, car, thunder, room:<kind>)."""

    start_s: float
    duration_s: float
    level_db: float
    source: str
    index: int = -1
    seed: int = 0
    stretch: bool = False


@dataclass
class EventPlan:
    events: list[SimEvent] = field(default_factory=list)
    sounds: list[Sound] = field(default_factory=list)
    sigh_times: list[float] = field(default_factory=list)
    quiet_spans: list[tuple[float, float]] = field(default_factory=list)
    posture_db: Floats = field(default_factory=lambda: np.zeros(0))
    toggles: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    movement_s: Floats = field(default_factory=lambda: np.zeros(0))
    activity_s: Floats = field(default_factory=lambda: np.zeros(0))


def _r(x: float, digits: int = 3) -> float:
    return round(float(x), digits)


def _add_span(per_epoch: Floats, start: float, duration: float) -> None:
    """Add the seconds of ``[start, start + duration)`` to the epochs they fall in."""
    t, stop = start, min(start + duration, per_epoch.size * EPOCH_SECONDS)
    while t < stop:
        i = int(t // EPOCH_SECONDS)
        edge = min(stop, (i + 1) * EPOCH_SECONDS)
        per_epoch[i] += edge - t
        t = edge


class _Planner:
    def __init__(
        self, stages: npt.NDArray[np.int8], arch: Architecture, profile: NightProfile, bank: SoundBank
    ) -> None:
        self.stages = stages
        self.n = stages.size
        self.total = self.n * EPOCH_SECONDS
        self.profile = profile
        self.bank = bank
        in_bed = np.zeros(self.n, dtype=np.bool_)
        in_bed[: arch.sleep_latency_epochs] = True
        if arch.final_wake_epochs:
            in_bed[self.n - arch.final_wake_epochs :] = True
        self.in_bed_wake = in_bed & (stages == 0)
        self.plan = EventPlan(
            posture_db=np.zeros(self.n),
            toggles=np.zeros(self.n, dtype=np.bool_),
            movement_s=np.zeros(self.n),
            activity_s=np.zeros(self.n),
        )

    def event(self, kind: str, start: float, duration: float, level: float, **attrs: Scalar) -> None:
        self.plan.events.append(SimEvent(kind, _r(start), _r(duration), _r(level, 2), attrs))

    def movements(self, rng: np.random.Generator) -> None:
        p = self.profile
        starts: list[float] = []
        u = rng.random((self.n, 3))
        for i in range(self.n):
            s = int(self.stages[i])
            rate = MOVE_RATE[s] * (1.6 if self.in_bed_wake[i] else 1.0)
            if u[i, 0] < min(0.9, rate * p.movement_propensity):
                starts.append((i + u[i, 1]) * EPOCH_SECONDS)
            if i > 0 and self.stages[i - 1] != s:
                chance = MOVE_AT_CHANGE.get((int(self.stages[i - 1]), s), 0.05)
                if u[i, 2] < min(0.95, chance * np.sqrt(p.movement_propensity)):
                    starts.append(i * EPOCH_SECONDS + rng.normal(4.0, 8.0))
        posture = 0.0
        last = 0
        for start in sorted(starts):
            start = float(np.clip(start, 0.0, self.total - 0.6))
            duration = float(min(np.exp(rng.uniform(np.log(0.5), np.log(5.0))), self.total - start))
            level = p.breath_level_db + rng.uniform(3.0, 18.0)
            seed = int(rng.integers(2**31))
            self.event("movement", start, duration, level)
            self.plan.sounds.append(Sound(start, duration, level, "rustle", seed=seed))
            _add_span(self.plan.movement_s, start, duration)
            i = int(start // EPOCH_SECONDS)
            shift = rng.normal(0.0, 2.5)
            if duration > 1.5 and i + 1 < self.n:
                self.plan.posture_db[last : i + 1] = posture
                posture, last = float(shift), i + 1
                self.plan.toggles[i + 1] = True
        self.plan.posture_db[last:] = posture

    def activity(self, rng: np.random.Generator) -> None:
        p = self.profile
        u = rng.random((self.n, 5))
        for i in range(self.n):
            s = int(self.stages[i])
            if u[i, 0] < SIGH_RATE[s]:  # the sigh event is made with the breath it replaces
                self.plan.sigh_times.append((i + u[i, 1]) * EPOCH_SECONDS)
            if s != 0:
                if u[i, 4] < COUGH_RATE[s]:
                    self.cough(rng, (i + rng.random()) * EPOCH_SECONDS)
                continue
            boost_talk, boost_phone = (4.0, 5.0) if self.in_bed_wake[i] else (1.0, 1.0)
            if u[i, 2] < TALK_RATE * p.talkativeness * boost_talk:
                self.talk(rng, (i + rng.random()) * EPOCH_SECONDS)
            if u[i, 3] < PHONE_RATE * p.phone_use * boost_phone:
                self.phone(rng, (i + rng.random()) * EPOCH_SECONDS)
            if u[i, 4] < COUGH_RATE[0]:
                self.cough(rng, (i + rng.random()) * EPOCH_SECONDS)

    def talk(self, rng: np.random.Generator, start: float) -> None:
        duration = min(rng.uniform(2.0, 12.0), self.total - start)
        level = self.profile.breath_level_db + rng.uniform(12.0, 25.0)
        pos = 0.0
        clips: list[str] = []
        ids = self.bank.ids("voice")
        while pos < duration - 0.2:
            idx = int(rng.integers(len(ids)))
            length = min(self.bank.length_s("voice", idx), duration - pos)
            self.plan.sounds.append(Sound(start + pos, length, level, "voice", index=idx))
            clips.append(ids[idx])
            pos += length + rng.uniform(0.1, 0.6)
        duration = min(pos, duration)
        self.event("talk", start, duration, level, clips=";".join(dict.fromkeys(clips)))
        self.plan.quiet_spans.append((start, start + duration))
        _add_span(self.plan.activity_s, start, duration)

    def phone(self, rng: np.random.Generator, start: float) -> None:
        duration = min(rng.uniform(3.0, 20.0), self.total - start)
        level = self.profile.breath_level_db + rng.uniform(5.0, 15.0)
        ids = self.bank.ids("voice")
        speaker = int(rng.integers(len(ids))) if rng.random() < 0.3 else -1
        seed = int(rng.integers(2**31))
        attrs: dict[str, Scalar] = {"speaker_clip": ids[speaker]} if speaker >= 0 else {}
        self.event("phone", start, duration, level, **attrs)
        self.plan.sounds.append(Sound(start, duration, level, "phone", index=speaker, seed=seed))
        _add_span(self.plan.activity_s, start, duration)

    def cough(self, rng: np.random.Generator, start: float) -> None:
        duration = min(rng.uniform(0.4, 2.0), self.total - start)
        level = self.profile.breath_level_db + rng.uniform(10.0, 22.0)
        seed = int(rng.integers(2**31))
        self.event("cough", start, duration, level)
        self.plan.sounds.append(Sound(start, duration, level, "cough", seed=seed))
        _add_span(self.plan.activity_s, start, duration)

    def room(self, rng: np.random.Generator) -> None:
        p = self.profile
        count = rng.poisson(p.room_events_per_hour * self.total / 3600.0)
        for start in np.sort(rng.uniform(0.0, self.total, count)):
            level = min(p.noise_level_db + rng.uniform(*ROOM_LEVEL), ROOM_CEILING_DB)
            seed = int(rng.integers(2**31))
            if self.bank.count("room") and rng.random() < 0.7:
                idx = int(rng.integers(self.bank.count("room")))
                duration = min(self.bank.length_s("room", idx), self.total - start)
                self.event("room", start, duration, level, clip=self.bank.ids("room")[idx])
                self.plan.sounds.append(Sound(start, duration, level, "room", index=idx))
            else:
                kind = _synth.ROOM_SOUNDS[int(rng.integers(len(_synth.ROOM_SOUNDS)))]
                duration = min(rng.uniform(*_synth.ROOM_DURATIONS[kind]), self.total - start)
                self.event("room", start, duration, level, sound=kind)
                self.plan.sounds.append(Sound(start, duration, level, f"room:{kind}", seed=seed))


def draw_events(
    stages: npt.NDArray[np.int8],
    arch: Architecture,
    profile: NightProfile,
    bank: SoundBank,
    rng: np.random.Generator,
) -> EventPlan:
    """Draw the night's movements, wake activity and room sounds."""
    planner = _Planner(stages, arch, profile, bank)
    planner.movements(rng)
    planner.activity(rng)
    planner.room(rng)
    return planner.plan
