"""Server settings (``SLEEPTRACK_*`` environment variables, command-line options) and the plans file."""

from __future__ import annotations

import os
import secrets
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_PLANS",
    "Plan",
    "PlanError",
    "Settings",
    "default_data_dir",
    "load_plans",
]

#: Largest upload body (the reference's limit: "HTTP content length exceeded 10485760 bytes.").
MAX_UPLOAD_BYTES = 10 * 1024 * 1024


def default_data_dir() -> Path:
    """Per-user data folder (``~/.local/share/sleeptrack`` on Linux)."""
    return Path(platformdirs.user_data_dir("sleeptrack", appauthor=False))


class PlanError(ValueError):
    """A plans file that cannot be read, or a plan name that is not defined."""


class Plan(BaseModel):
    """What a plan allows: analysis features, rate limit, quota and expiry.

    ``rate_limit``: API calls per minute per key; ``quota``: API calls per calendar month (UTC) per key;
    ``valid_days``: a key of this plan expires that many days after its creation; ``expires_on``: the
    plan itself ends on that date (UTC) for every key. ``None`` means unlimited / never.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    stages: Literal[2, 4] = 4
    snoring: bool = True
    realtime: bool = True
    rate_limit: int | None = Field(default=None, ge=1)
    quota: int | None = Field(default=None, ge=1)
    valid_days: int | None = Field(default=None, ge=1)
    expires_on: date | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("plan names use letters, digits, '-' and '_'")
        return value


#: Plans available without a plans file; a plans file may redefine them or add others.
DEFAULT_PLANS: dict[str, Plan] = {
    "basic": Plan(
        name="basic",
        stages=2,
        snoring=False,
        realtime=False,
        rate_limit=1200,
        quota=1_000_000,
        description="2-stage (wake / sleep) final reports; no snoring, no real-time results",
    ),
    "advanced": Plan(
        name="advanced",
        stages=4,
        snoring=True,
        realtime=True,
        rate_limit=6000,
        quota=10_000_000,
        description="4-stage reports with snoring and real-time results every 5 minutes",
    ),
    "trial": Plan(
        name="trial",
        stages=4,
        snoring=True,
        realtime=True,
        rate_limit=600,
        quota=20_000,
        valid_days=30,
        description="advanced features for 30 days",
    ),
}


def load_plans(path: Path | None) -> dict[str, Plan]:
    """The default plans, updated with those of the TOML file at ``path`` (if given and present).

    The file has one table per plan::

        [plans.advanced]
        stages = 4
        snoring = true
        realtime = true
        rate_limit = 6000      # calls per minute per key (omit for unlimited)
        quota = 10000000       # calls per calendar month per key (omit for unlimited)
        valid_days = 365       # keys expire this many days after creation (omit: never)
    """
    plans = dict(DEFAULT_PLANS)
    if path is None or not path.exists():
        return plans
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"cannot read plans file {path}: {exc}") from exc
    table = data.get("plans")
    if not isinstance(table, dict):
        raise PlanError(f"plans file {path} needs a [plans.<name>] table per plan")
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise PlanError(f"plans file {path}: [plans.{name}] must be a table")
        try:
            plans[name] = Plan(name=name, **spec)
        except ValidationError as exc:
            errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise PlanError(f"plans file {path}: plan {name!r}: {errors}") from exc
    return plans


class Settings(BaseSettings):
    """Everything the server, its workers and the ``keys`` command need to find their data.

    Every field can be set by an environment variable ``SLEEPTRACK_<FIELD>`` (e.g.
    ``SLEEPTRACK_DATA_DIR``, ``SLEEPTRACK_DATABASE_URL``); command-line options win over them.
    """

    model_config = SettingsConfigDict(env_prefix="SLEEPTRACK_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    #: SQLAlchemy URL; default: the SQLite file ``<data_dir>/sleeptrack.db``.
    database_url: str | None = None
    #: Where uploaded chunks go (``local`` folder backend); default ``<data_dir>/blobs``.
    blob_dir: Path | None = None
    #: TOML file of plans; default ``<data_dir>/plans.toml`` when it exists.
    plans_file: Path | None = None
    #: Secret for webhook signing secrets and the encryption of stored webhook headers; default: a
    #: random secret kept in ``<data_dir>/secret.key`` (set it explicitly when several servers share data).
    secret_key: str | None = None
    #: Analysis workers: ``process`` (default; the engine holds the GIL) or ``thread``.
    worker_mode: Literal["process", "thread"] = "process"
    #: Number of analysis workers; default: one less than the CPUs, at least one.
    workers: int | None = Field(default=None, ge=1)
    #: Analysis workers run at this niceness so uploads keep their CPU (process mode, POSIX).
    worker_nice: int = Field(default=10, ge=0, le=19)
    #: API processes of ``sleeptrack serve`` on one port; on the embedded default one of them leads (runs
    #: the analysis workers, the webhook sender and the housekeeping), see ``sleeptrack.server._processes``.
    api_processes: int = Field(default=1, ge=1)
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    #: OPEN sessions older than this are closed by the server (as unexpected ends).
    stale_session_hours: float = 24.0
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = Field(default=12, ge=1)
    #: First retry delay in seconds; doubled at every attempt up to ``webhook_backoff_max``.
    webhook_backoff: float = 2.0
    webhook_backoff_max: float = 3600.0
    webhook_concurrency: int = Field(default=8, ge=1)
    #: At most this much of a webhook receiver's answer is read.
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=0)
    #: Let callback URLs target private, loopback and link-local addresses (``SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS=1``);
    #: off by default: the server calls only public addresses (see ``sleeptrack.webhooks._targets``).
    allow_private_callbacks: bool = False
    #: SQLite durability: ``FULL`` syncs every commit to disk (uploads survive a power cut once answered).
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: fsync every uploaded chunk before answering.
    fsync_blobs: bool = True
    # -------------------------------------------------------------------------------- scale-out
    #: Celery broker (``redis://host:6379/0``): analysis jobs go to ``sleeptrack worker`` processes
    #: instead of in-process workers, and rate limits / quotas are counted in that Redis.
    broker_url: str | None = None
    #: Redis for the shared rate-limit and quota counters; default: the broker when it is Redis.
    redis_url: str | None = None
    #: Where chunks go: ``local`` folder, ``database`` (the ``blobs`` table) or ``s3``; default: ``s3`` when a
    #: bucket is set, ``database`` with a broker (every process must reach the chunks), else ``local``.
    blob_store: Literal["local", "database", "s3"] | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    #: A job a worker took and did not finish in this time runs again elsewhere (jobs are idempotent).
    job_lease_seconds: float = Field(default=900.0, gt=0)
    log_level: str = "INFO"
    #: Plain text logs instead of JSON lines.
    log_plain: bool = False

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'sleeptrack.db'}"

    @property
    def resolved_blob_store(self) -> str:
        if self.blob_store is not None:
            return self.blob_store
        if self.s3_bucket:
            return "s3"
        return "database" if self.broker_url else "local"

    @property
    def resolved_redis_url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def resolved_plans_file(self) -> Path:
        return self.plans_file if self.plans_file is not None else self.data_dir / "plans.toml"

    @property
    def resolved_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        return max(1, (os.cpu_count() or 2) - 1)

    def plans(self) -> dict[str, Plan]:
        return load_plans(self.resolved_plans_file)

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def secret(self) -> bytes:
        """The server secret (created in the data folder on first use, readable by the owner only)."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.ensure_data_dir()
            value = secrets.token_hex(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(value + "\n")
        return path.read_text().strip().encode()

    def for_worker(self) -> dict[str, Any]:
        """The settings as plain values, to rebuild them in a worker process."""
        return self.model_dump()
