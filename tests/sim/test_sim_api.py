"""Public surface and configuration of the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import ModuleType

import pytest

import sleeptrack.sim as sim_pkg
from sleeptrack.sim import NightConfig, SimulationError


def test_all_is_complete_and_importable() -> None:
    names = set(sim_pkg.__all__)
    public = {n for n in vars(sim_pkg) if not n.startswith("_") and not isinstance(getattr(sim_pkg, n), ModuleType)}
    assert public <= names, f"public names missing from __all__: {sorted(public - names)}"
    assert all(hasattr(sim_pkg, n) for n in names)
    assert {"NightConfig", "NightSimulator", "NightTruth", "simulate_night"} <= names


def test_defaults_are_a_fixed_plausible_bedtime() -> None:
    cfg = NightConfig()
    assert cfg.hours == 8.0
    assert cfg.n_epochs == 960
    assert cfg.start == datetime(2025, 1, 15, 23, 0, tzinfo=UTC)
    seoul = NightConfig(timezone="Asia/Seoul")
    assert seoul.start.hour == 23
    assert seoul.start.utcoffset() == timedelta(hours=9)


def test_start_time_string_without_offset_is_read_in_the_timezone() -> None:
    cfg = NightConfig(start_time="2025-03-01T22:30", timezone="Asia/Seoul")
    assert cfg.start.utcoffset() == timedelta(hours=9)
    assert cfg.start.hour == 22
    aware = NightConfig(start_time=datetime(2025, 3, 1, 22, 30, tzinfo=timezone(timedelta(hours=-5))))
    assert aware.start.utcoffset() == timedelta(hours=-5)
    assert NightConfig(hours=0.25).n_epochs == 30


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hours": 0}, "hours must be between"),
        ({"hours": 25}, "hours must be between"),
        ({"hours": float("nan")}, "hours must be between"),
        ({"seed": -1}, "seed must be"),
        ({"split": "validate"}, "split must be one of"),
        ({"noise": "ocean"}, "noise must be one of"),
        ({"snr_db": 90.0}, "snr_db must be between"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"start_time": "yesterday evening"}, "not an ISO-8601 time"),
        ({"start_time": datetime(2025, 1, 1, 23)}, "must carry a UTC offset"),
        ({"hypnogram_id": "  "}, "must not be empty"),
    ],
)
def test_bad_options_raise_actionable_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        NightConfig(**options)  # type: ignore[arg-type]


def test_config_to_dict_records_every_option() -> None:
    data = NightConfig(hours=1.5, seed=3, snorer=True, noise="rain", snr_db=4.0, split="test").to_dict()
    assert data["start_time"] == "2025-01-15T23:00:00+00:00"
    assert (data["hours"], data["seed"], data["snorer"], data["noise"], data["snr_db"], data["split"]) == (
        1.5,
        3,
        True,
        "rain",
        4.0,
        "test",
    )
