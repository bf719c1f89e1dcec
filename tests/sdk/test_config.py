"""Settings from arguments, environment and config file; user join; deleting a user."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sleeptrack.sdk import (
    ApiStatusError,
    AsleepConfig,
    AsleepErrorCode,
    ConfigError,
    InferenceType,
    delete_user,
    init_config,
    init_config_async,
    load_settings,
    remember_user,
    remembered_user,
)

from ._fake_api import API_KEY, FakeApi

URL = "http://sleeptrack.test"


def test_precedence_argument_env_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[sdk]\nserver = "http://file.test:9000"\napi_key = "file-key"\nservice = "from file"\n')
    env = {"SLEEPTRACK_API_KEY": "env-key", "SLEEPTRACK_USER_ID": "G-env"}
    s = load_settings(env, cfg)
    assert (s.api_key, s.user_id, s.server, s.service) == ("env-key", "G-env", "http://file.test:9000", "from file")
    assert s.sources == {"api_key": "env", "user_id": "env", "server": "file", "service": "file"}
    s = load_settings(env, cfg, api_key="arg-key", server="http://arg.test/")
    assert (s.api_key, s.server) == ("arg-key", "http://arg.test")
    assert "arg-key" not in repr(s)  # the key is never printed


def test_defaults_without_anything(tmp_path: Path) -> None:
    s = load_settings({}, tmp_path / "missing.toml")
    assert s.api_key is None and s.server == "http://127.0.0.1:8000"
    assert s.inference_type is InferenceType.MELSPECTROGRAM and s.timezone == "UTC"


def test_top_level_keys_and_types(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('inference_type = "audio"\nspool_dir = "~/spool"\ntimezone = "Asia/Seoul"\n')
    s = load_settings({}, cfg)
    assert s.inference_type is InferenceType.AUDIO and s.spool_dir == Path("~/spool").expanduser()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("server = [", "cannot read"),
        ('apikey = "x"', "unknown setting"),
        ('server = "ftp://x"', "invalid server URL"),
        ('timezone = "Mars/Base"', "unknown time zone"),
        ('inference_type = "VIDEO"', "MELSPECTROGRAM or AUDIO"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, cfg)


def test_env_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('service = "env-located"\n')
    monkeypatch.setenv("SLEEPTRACK_CONFIG", str(cfg))
    assert load_settings({}).service == "env-located"


def test_init_config_creates_or_checks_the_user(tmp_path: Path) -> None:
    api = FakeApi()
    settings = load_settings({}, tmp_path / "none.toml", api_key=API_KEY, server=URL, service="pi")
    config = init_config(settings=settings, transport=api.transport())
    assert config.user_id in api.users and config.service == "pi" and config.base_url == URL
    again = init_config(API_KEY, config.user_id, URL, transport=api.transport())
    assert again.user_id == config.user_id
    with pytest.raises(ApiStatusError) as info:
        init_config(API_KEY, "G-unknown", URL, transport=api.transport())
    assert info.value.code is AsleepErrorCode.ERR_COMMON_NOT_FOUND
    with pytest.raises(ApiStatusError) as info:
        init_config("wrong-key", None, URL, transport=api.transport())
    assert info.value.code is AsleepErrorCode.ERR_COMMON_UNAUTHORIZED
    assert delete_user(config, transport=api.transport()) == config.user_id
    assert config.user_id not in api.users


def test_init_config_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLEEPTRACK_API_KEY", raising=False)
    monkeypatch.setenv("SLEEPTRACK_CONFIG", "/nonexistent/config.toml")
    with pytest.raises(ConfigError) as info:
        init_config(base_url=URL)
    assert info.value.code is AsleepErrorCode.ERR_UNINITIALIZED


def test_init_config_async() -> None:
    api = FakeApi()
    config = asyncio.run(init_config_async(API_KEY, None, URL, transport=api.async_transport()))
    assert config.user_id in api.users


def test_config_validation_and_repr() -> None:
    config = AsleepConfig(api_key="secret-key", user_id="G-1", base_url="http://h:1/")
    assert config.base_url == "http://h:1" and "secret-key" not in repr(config)
    with pytest.raises(ConfigError):
        AsleepConfig(api_key="k", user_id="")
    with pytest.raises(ConfigError):
        AsleepConfig(api_key="k", user_id="G", callback_url="not a url")


def test_remembered_users_are_keyed_by_a_fingerprint(tmp_path: Path) -> None:
    file = tmp_path / "users.json"
    assert remembered_user(URL, "key-1", file) is None
    remember_user(URL, "key-1", "G-one", file)
    remember_user(URL, "key-2", "G-two", file)
    assert remembered_user(URL + "/", "key-1", file) == "G-one"
    assert remembered_user(URL, "key-2", file) == "G-two"
    assert "key-1" not in file.read_text()
