"""The sleeptrack client SDK: what the reference's iOS / Android SDKs do, for Python programs.

>>> from sleeptrack.sdk import init_config, SleepTrackingManager, FileSource, Reports  # doctest: +SKIP
>>> config = init_config(api_key="…", base_url="http://127.0.0.1:8000")  # creates a user  # doctest: +SKIP
>>> manager = SleepTrackingManager(config, source=FileSource("night.flac", speed=0))  # doctest: +SKIP
>>> session_id = manager.start(); manager.wait()  # doctest: +SKIP
>>> Reports(config).wait_until_complete(session_id).stat  # doctest: +SKIP

Needs only the base install (numpy, scipy, soundfile, httpx); the microphone needs ``sleeptrack[mic]``.
See ``docs/sdk.md``. Importing the package is cheap: each name loads its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._async import AsyncSleepTrackingManager
    from ._client import USER_AGENT, ApiClient, AsyncApiClient
    from ._config import (
        DEFAULT_BASE_URL,
        AsleepConfig,
        SdkSettings,
        config_file_path,
        delete_user,
        init_config,
        init_config_async,
        load_settings,
        remember_user,
        remembered_user,
    )
    from ._encode import AUDIO_FORMATS, encode_chunk, upload_format
    from ._errors import (
        Action,
        ApiConnectionError,
        ApiStatusError,
        ApiTimeoutError,
        AsleepError,
        AsleepErrorCode,
        AudioSourceError,
        ConfigError,
        ErrorInfo,
        Operation,
        classify,
        parse_retry_after,
    )
    from ._models import (
        AverageReport,
        CreatedSession,
        InferenceType,
        OpenSession,
        Report,
        Session,
        SessionState,
        SleepSession,
        Stat,
        UploadResult,
        UserInfo,
    )
    from ._reports import AsyncReports, Reports, ReportTimeoutError
    from ._retry import DEFAULT_RETRY, DEFAULT_TIMEOUTS, RetryPolicy, Timeouts
    from ._sources import (
        AudioSource,
        Chunker,
        FileSource,
        IteratorSource,
        MicrophoneSource,
        SimulatedNightSource,
        SourceInterruptedError,
        StreamResampler,
    )
    from ._spool import Journal, JournalMeta, Spool, SpoolCorruptError
    from ._tracking import (
        CallbackListener,
        SleepTrackingManager,
        TrackingListener,
        TrackingState,
        TrackingStatus,
        UnfinishedSession,
    )

_LAZY: dict[str, str] = {
    "AUDIO_FORMATS": "._encode",
    "Action": "._errors",
    "ApiClient": "._client",
    "ApiConnectionError": "._errors",
    "ApiStatusError": "._errors",
    "ApiTimeoutError": "._errors",
    "AsleepConfig": "._config",
    "AsleepError": "._errors",
    "AsleepErrorCode": "._errors",
    "AsyncApiClient": "._client",
    "AsyncReports": "._reports",
    "AsyncSleepTrackingManager": "._async",
    "AudioSource": "._sources",
    "AudioSourceError": "._errors",
    "AverageReport": "._models",
    "CallbackListener": "._tracking",
    "Chunker": "._sources",
    "ConfigError": "._errors",
    "CreatedSession": "._models",
    "DEFAULT_BASE_URL": "._config",
    "DEFAULT_RETRY": "._retry",
    "DEFAULT_TIMEOUTS": "._retry",
    "ErrorInfo": "._errors",
    "FileSource": "._sources",
    "InferenceType": "._models",
    "IteratorSource": "._sources",
    "Journal": "._spool",
    "JournalMeta": "._spool",
    "MicrophoneSource": "._sources",
    "OpenSession": "._models",
    "Operation": "._errors",
    "Report": "._models",
    "ReportTimeoutError": "._reports",
    "Reports": "._reports",
    "RetryPolicy": "._retry",
    "SdkSettings": "._config",
    "Session": "._models",
    "SessionState": "._models",
    "SimulatedNightSource": "._sources",
    "SleepSession": "._models",
    "SleepTrackingManager": "._tracking",
    "SourceInterruptedError": "._sources",
    "Spool": "._spool",
    "SpoolCorruptError": "._spool",
    "Stat": "._models",
    "StreamResampler": "._sources",
    "Timeouts": "._retry",
    "TrackingListener": "._tracking",
    "TrackingState": "._tracking",
    "TrackingStatus": "._tracking",
    "USER_AGENT": "._client",
    "UnfinishedSession": "._tracking",
    "UploadResult": "._models",
    "UserInfo": "._models",
    "classify": "._errors",
    "config_file_path": "._config",
    "delete_user": "._config",
    "encode_chunk": "._encode",
    "init_config": "._config",
    "init_config_async": "._config",
    "load_settings": "._config",
    "parse_retry_after": "._errors",
    "remember_user": "._config",
    "remembered_user": "._config",
    "upload_format": "._encode",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AUDIO_FORMATS",
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "USER_AGENT",
    "Action",
    "ApiClient",
    "ApiConnectionError",
    "ApiStatusError",
    "ApiTimeoutError",
    "AsleepConfig",
    "AsleepError",
    "AsleepErrorCode",
    "AsyncApiClient",
    "AsyncReports",
    "AsyncSleepTrackingManager",
    "AudioSource",
    "AudioSourceError",
    "AverageReport",
    "CallbackListener",
    "Chunker",
    "ConfigError",
    "CreatedSession",
    "ErrorInfo",
    "FileSource",
    "InferenceType",
    "IteratorSource",
    "Journal",
    "JournalMeta",
    "MicrophoneSource",
    "OpenSession",
    "Operation",
    "Report",
    "ReportTimeoutError",
    "Reports",
    "RetryPolicy",
    "SdkSettings",
    "Session",
    "SessionState",
    "SimulatedNightSource",
    "SleepSession",
    "SleepTrackingManager",
    "SourceInterruptedError",
    "Spool",
    "SpoolCorruptError",
    "Stat",
    "StreamResampler",
    "Timeouts",
    "TrackingListener",
    "TrackingState",
    "TrackingStatus",
    "UnfinishedSession",
    "UploadResult",
    "UserInfo",
    "classify",
    "config_file_path",
    "delete_user",
    "encode_chunk",
    "init_config",
    "init_config_async",
    "load_settings",
    "parse_retry_after",
    "remember_user",
    "remembered_user",
    "upload_format",
]
