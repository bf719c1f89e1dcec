"""Options shared by the commands that talk to a server through the SDK (track, report, sessions, average),
and the user join they all do first.

Every setting may come from the option, a ``SLEEPTRACK_*`` environment variable or the config file
(``SLEEPTRACK_CONFIG``, default ``~/.config/sleeptrack/config.toml``), in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import err_console, fail

if TYPE_CHECKING:
    from sleeptrack.sdk import AsleepConfig, AsleepError, SdkSettings

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Server URL (env SLEEPTRACK_SERVER, config 'server'; default http://127.0.0.1:8000).",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", help="API key (env SLEEPTRACK_API_KEY, config 'api_key').", show_default=False),
]
UserIdOption = Annotated[
    str | None,
    typer.Option(
        "--user-id",
        help="User id (env SLEEPTRACK_USER_ID, config 'user_id'; default: the one created earlier for this key).",
        show_default=False,
    ),
]
TimezoneOption = Annotated[
    str | None,
    typer.Option("--timezone", help="IANA time zone of the times shown (env SLEEPTRACK_TIMEZONE).", show_default=False),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (TOML) (env SLEEPTRACK_CONFIG).", show_default=False),
]


def describe_error(error: AsleepError) -> str:
    """One line for an SDK error: what happened and, for the usual ones, what to do."""
    from sleeptrack.sdk import AsleepErrorCode as E

    hints = {
        E.ERR_COMMON_UNAUTHORIZED: "check the API key (sleeptrack keys create …)",
        E.ERR_COMMON_NOT_FOUND: "unknown user id for this key/server; drop --user-id to create a user",
        E.ERR_COMMON_EXPIRED: "the key's plan is expired, over quota or rate-limited",
        E.ERR_CREATE_CONFLICT: "a previous session is still open; see --on-unfinished",
    }
    hint = hints.get(error.code)
    text = f"{error.detail} [{error.code.name} {int(error.code)}]"
    if error.code.name.endswith("_FAILED") and error.status is None:
        text += " — is the server running and reachable?"
    return text + (f" — {hint}" if hint else "")


def resolve_settings(
    server: str | None,
    api_key: str | None,
    user_id: str | None,
    timezone: str | None,
    config_file: Path | None,
    **extra: Any,
) -> SdkSettings:
    from sleeptrack.sdk import ConfigError, load_settings

    try:
        settings = load_settings(
            config_file=config_file,
            server=server,
            api_key=api_key,
            user_id=user_id,
            timezone=timezone,
            **extra,
        )
    except ConfigError as exc:
        fail(exc.detail)
    if not settings.api_key:
        fail("no API key: pass --api-key, set SLEEPTRACK_API_KEY or put api_key in the config file")
    return settings


def join(settings: SdkSettings, create: bool = True, quiet: bool = False) -> AsleepConfig:
    """The SDK config for these settings; without a user id, the one remembered for this key or a new one."""
    from dataclasses import replace

    from sleeptrack.sdk import AsleepError, init_config, remember_user, remembered_user

    key = settings.api_key
    assert key is not None
    created = False
    if not settings.user_id:
        remembered = remembered_user(settings.server, key)
        if remembered:
            settings = replace(settings, user_id=remembered)
        elif not create:
            fail("no user id: pass --user-id or set SLEEPTRACK_USER_ID")
        else:
            created = True
    try:
        config = init_config(settings=settings)
    except AsleepError as error:
        fail(describe_error(error))
    if created:
        path = remember_user(settings.server, key, config.user_id)
        if not quiet:
            err_console.print(
                f"created user [bold]{config.user_id}[/] (remembered in {path}; "
                "or pass --user-id / set SLEEPTRACK_USER_ID)",
                highlight=False,
            )
    return config
