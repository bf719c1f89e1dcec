"""SDK configuration: ``AsleepConfig``, the user join (``init_config``), deleting a user, and settings read
from arguments, environment variables and a config file (in that order of precedence).

Environment variables: ``SLEEPTRACK_API_KEY``, ``SLEEPTRACK_USER_ID``, ``SLEEPTRACK_SERVER``,
``SLEEPTRACK_CALLBACK_URL``, ``SLEEPTRACK_SERVICE``, ``SLEEPTRACK_TIMEZONE``, ``SLEEPTRACK_SPOOL_DIR``,
``SLEEPTRACK_INFERENCE_TYPE``; ``SLEEPTRACK_CONFIG`` names the config file (default
``<user config dir>/sleeptrack/config.toml``), a TOML file with the same keys in lower case without the
prefix (``server = "http://…"``, ``api_key = "…"``), at the top level or under ``[sdk]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import platformdirs

from sleeptrack.analysis import InvalidTimezoneError, parse_timezone

from ._client import ApiClient, AsyncApiClient, _validate_base_url
from ._errors import AsleepErrorCode, ConfigError
from ._models import InferenceType
from ._retry import DEFAULT_RETRY, DEFAULT_TIMEOUTS, RetryPolicy, Timeouts

__all__ = [
    "DEFAULT_BASE_URL",
    "AsleepConfig",
    "SdkSettings",
    "config_file_path",
    "delete_user",
    "init_config",
    "init_config_async",
    "key_fingerprint",
    "load_settings",
    "remember_user",
    "remembered_user",
]

#: Where ``sleeptrack serve`` listens by default.
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
_ENV_PREFIX: Final = "SLEEPTRACK_"
_KEYS: Final = (
    "api_key",
    "user_id",
    "server",
    "callback_url",
    "service",
    "timezone",
    "spool_dir",
    "inference_type",
)


def config_file_path() -> Path:
    """The config file: ``$SLEEPTRACK_CONFIG`` or ``<user config dir>/sleeptrack/config.toml``."""
    env = os.environ.get("SLEEPTRACK_CONFIG")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_config_path("sleeptrack") / "config.toml"


def default_spool_dir() -> Path:
    return platformdirs.user_data_path("sleeptrack") / "spool"


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(AsleepErrorCode.ERR_UNINITIALIZED, f"cannot read the config file {path}: {exc}") from exc
    section = data.get("sdk", data)
    if not isinstance(section, dict):
        raise ConfigError(AsleepErrorCode.ERR_UNINITIALIZED, f"{path}: [sdk] must be a table")
    unknown = sorted(set(section) - set(_KEYS) - {"sdk"})
    if unknown:
        raise ConfigError(
            AsleepErrorCode.ERR_UNINITIALIZED,
            f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}",
        )
    return {k: str(v) for k, v in section.items() if k in _KEYS and v is not None}


@dataclass(frozen=True)
class SdkSettings:
    """Settings as resolved from arguments, environment and config file, before any network call."""

    api_key: str | None = field(default=None, repr=False)
    user_id: str | None = None
    server: str = DEFAULT_BASE_URL
    callback_url: str | None = None
    service: str | None = None
    timezone: str = "UTC"
    spool_dir: Path = field(default_factory=default_spool_dir)
    inference_type: InferenceType = InferenceType.MELSPECTROGRAM
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)  # key -> "argument"/"env"/"file"


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None, **overrides: Any
) -> SdkSettings:
    """Resolve every setting: explicit ``overrides`` (non-``None``) > ``SLEEPTRACK_*`` env > config file > default."""
    env = os.environ if environ is None else environ
    file_values = _read_config_file(config_file if config_file is not None else config_file_path())
    unknown = sorted(set(overrides) - set(_KEYS))
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in _KEYS:
        env_value = env.get(_ENV_PREFIX + key.upper())
        if overrides.get(key) is not None:
            values[key], sources[key] = overrides[key], "argument"
        elif env_value:
            values[key], sources[key] = env_value, "env"
        elif key in file_values:
            values[key], sources[key] = file_values[key], "file"
    if "server" in values:
        values["server"] = _validate_base_url(str(values["server"]))
    if "timezone" in values:
        try:
            parse_timezone(str(values["timezone"]))
        except InvalidTimezoneError as exc:
            raise ConfigError(AsleepErrorCode.ERR_UNINITIALIZED, str(exc)) from exc
    if "spool_dir" in values:
        values["spool_dir"] = Path(str(values["spool_dir"])).expanduser()
    if "inference_type" in values:
        try:
            values["inference_type"] = InferenceType(str(values["inference_type"]).upper())
        except ValueError as exc:
            raise ConfigError(
                AsleepErrorCode.ERR_UNINITIALIZED, "inference_type must be MELSPECTROGRAM or AUDIO"
            ) from exc
    return SdkSettings(**values, sources=sources)


@dataclass(frozen=True)
class AsleepConfig:
    """What the SDK needs to track and to read reports: the counterpart of the reference's ``AsleepConfig``.

    Get one from :func:`init_config` (which joins the user); build it directly only with a known user id.
    """

    api_key: str = field(repr=False)
    user_id: str
    base_url: str = DEFAULT_BASE_URL
    callback_url: str | None = None
    service: str | None = None
    timezone: str = "UTC"
    inference_type: InferenceType = InferenceType.MELSPECTROGRAM
    spool_dir: Path = field(default_factory=default_spool_dir)
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    retry: RetryPolicy = DEFAULT_RETRY

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ConfigError(AsleepErrorCode.ERR_UNINITIALIZED, "no API key: pass api_key or set SLEEPTRACK_API_KEY")
        if not self.user_id:
            raise ConfigError(AsleepErrorCode.ERR_UNINITIALIZED, "no user id: use init_config() to join a user")
        object.__setattr__(self, "base_url", _validate_base_url(self.base_url))
        if self.callback_url is not None:
            _validate_base_url(self.callback_url)

    def client(self, **kwargs: Any) -> ApiClient:
        """A synchronous API client for this user (close it when done)."""
        return ApiClient(
            self.base_url,
            self.api_key,
            self.user_id,
            timezone=self.timezone,
            timeouts=self.timeouts,
            retry=self.retry,
            **kwargs,
        )

    def async_client(self, **kwargs: Any) -> AsyncApiClient:
        return AsyncApiClient(
            self.base_url,
            self.api_key,
            self.user_id,
            timezone=self.timezone,
            timeouts=self.timeouts,
            retry=self.retry,
            **kwargs,
        )

    def with_user(self, user_id: str) -> AsleepConfig:
        return replace(self, user_id=user_id)


def _config_from(settings: SdkSettings, user_id: str, timeouts: Timeouts, retry: RetryPolicy) -> AsleepConfig:
    assert settings.api_key is not None
    return AsleepConfig(
        api_key=settings.api_key,
        user_id=user_id,
        base_url=settings.server,
        callback_url=settings.callback_url,
        service=settings.service,
        timezone=settings.timezone,
        inference_type=settings.inference_type,
        spool_dir=settings.spool_dir,
        timeouts=timeouts,
        retry=retry,
    )


def _settings(
    api_key: str | None,
    user_id: str | None,
    base_url: str | None,
    callback_url: str | None,
    service: str | None,
    settings: SdkSettings | None,
) -> SdkSettings:
    if settings is None:
        settings = load_settings(
            api_key=api_key, user_id=user_id, server=base_url, callback_url=callback_url, service=service
        )
    if not settings.api_key:
        raise ConfigError(AsleepErrorCode.ERR_UNINITIALIZED, "no API key: pass api_key or set SLEEPTRACK_API_KEY")
    return settings


def init_config(
    api_key: str | None = None,
    user_id: str | None = None,
    base_url: str | None = None,
    callback_url: str | None = None,
    service: str | None = None,
    *,
    settings: SdkSettings | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    retry: RetryPolicy = DEFAULT_RETRY,
    transport: Any = None,
) -> AsleepConfig:
    """Join a user and return the config to track with (``initAsleepConfig``).

    Without a user id (argument, ``SLEEPTRACK_USER_ID`` or config file) a new user is created: keep
    ``config.user_id`` for the next nights. A given user id is checked with the server.

    Raises
    ------
    ConfigError
        No API key (``ERR_UNINITIALIZED``) or a bad URL (``ERR_INVALID_URL``).
    AsleepError
        The server refused: ``ERR_COMMON_UNAUTHORIZED`` (bad key), ``ERR_COMMON_NOT_FOUND`` (unknown user),
        ``ERR_COMMON_EXPIRED``, ``ERR_INIT_FAILED`` (network), ``ERR_INIT_SERVER_ERROR``.
    """
    s = _settings(api_key, user_id, base_url, callback_url, service, settings)
    assert s.api_key is not None
    with ApiClient(s.server, s.api_key, timeouts=timeouts, retry=retry, transport=transport) as api:
        joined = api.get_user(s.user_id).user_id if s.user_id else api.create_user()
    return _config_from(s, joined, timeouts, retry)


async def init_config_async(
    api_key: str | None = None,
    user_id: str | None = None,
    base_url: str | None = None,
    callback_url: str | None = None,
    service: str | None = None,
    *,
    settings: SdkSettings | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    retry: RetryPolicy = DEFAULT_RETRY,
    transport: Any = None,
) -> AsleepConfig:
    """:func:`init_config`, awaited."""
    s = _settings(api_key, user_id, base_url, callback_url, service, settings)
    assert s.api_key is not None
    async with AsyncApiClient(s.server, s.api_key, timeouts=timeouts, retry=retry, transport=transport) as api:
        joined = (await api.get_user(s.user_id)).user_id if s.user_id else await api.create_user()
    return _config_from(s, joined, timeouts, retry)


def delete_user(config: AsleepConfig, transport: Any = None) -> str:
    """Delete the user and all their data (``deleteUser``); returns the deleted user id."""
    with config.client(transport=transport) as api:
        api.delete_user(config.user_id)
    return config.user_id


# ------------------------------------------------------------------------------ remembered user ids
def key_fingerprint(api_key: str) -> str:
    """A short one-way fingerprint of an API key (the key itself is never written by the SDK)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _users_file() -> Path:
    return platformdirs.user_state_path("sleeptrack") / "sdk-users.json"


def remembered_user(base_url: str, api_key: str, path: Path | None = None) -> str | None:
    """The user id :func:`remember_user` stored for this server and key, if any."""
    file = path or _users_file()
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    value = data.get(f"{_validate_base_url(base_url)}#{key_fingerprint(api_key)}") if isinstance(data, dict) else None
    return str(value) if value else None


def remember_user(base_url: str, api_key: str, user_id: str, path: Path | None = None) -> Path:
    """Store the user id created for this server and key (keyed by a fingerprint of the key)."""
    file = path or _users_file()
    try:
        data = json.loads(file.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[f"{_validate_base_url(base_url)}#{key_fingerprint(api_key)}"] = user_id
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, file)
    return file
