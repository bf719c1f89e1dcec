"""Accounts, environments and API keys: what ``sleeptrack keys`` and the dashboard manage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ._keys import ENVIRONMENTS, generate_api_key, hash_api_key, key_prefix
from ._models import Account, ApiKey, Environment, utcnow
from ._settings import Plan

__all__ = [
    "DEFAULT_ACCOUNT_EMAIL",
    "KeyInfo",
    "NewKey",
    "account_by_email",
    "create_api_key",
    "ensure_account",
    "find_keys",
    "list_keys",
    "normalize_email",
    "revoke_keys",
]

#: The account used when ``sleeptrack keys create`` is not given ``--account``.
DEFAULT_ACCOUNT_EMAIL = "local@localhost"


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: ``key`` is shown once and never stored."""

    id: int
    key: str
    prefix: str
    environment: str
    plan: str
    account_email: str
    expires_at: datetime | None


@dataclass(frozen=True)
class KeyInfo:
    id: int
    prefix: str
    name: str
    account_email: str
    environment: str
    plan: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    calls_total: int


def normalize_email(email: str) -> str:
    """The form e-mail addresses are stored and compared in: ``Ops@Example.com`` and ``ops@example.com`` are one."""
    return email.strip().lower()


def account_by_email(session: Session, email: str) -> Account | None:
    """The account of ``email`` in any case (rows written before addresses were stored lower-cased keep theirs)."""
    return session.scalars(
        select(Account).where(func.lower(Account.email) == normalize_email(email)).order_by(Account.id)
    ).first()


def ensure_account(session: Session, email: str, default_plan: str = "advanced") -> Account:
    """The account with ``email`` (any case), created with its ``live`` and ``test`` environments if new."""
    email = normalize_email(email)
    account = account_by_email(session, email)
    if account is None:
        account = Account(email=email, created_at=utcnow())
        session.add(account)
        session.flush()
    existing = set(session.scalars(select(Environment.name).where(Environment.account_id == account.id)))
    for name in ENVIRONMENTS:
        if name not in existing:
            session.add(Environment(account_id=account.id, name=name, plan=default_plan, created_at=utcnow()))
    session.flush()
    return account


def create_api_key(
    session: Session,
    *,
    environment: str,
    plan: Plan,
    account_email: str = DEFAULT_ACCOUNT_EMAIL,
    name: str = "",
    now: datetime | None = None,
) -> NewKey:
    """Create a key in ``environment`` (``live`` / ``test``) of the account, on ``plan``."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be 'live' or 'test', got {environment!r}")
    now = now or utcnow()
    account = ensure_account(session, account_email, plan.name)
    env = session.scalars(
        select(Environment).where(Environment.account_id == account.id, Environment.name == environment)
    ).one()
    key = generate_api_key(environment)
    expires = now + timedelta(days=plan.valid_days) if plan.valid_days else None
    row = ApiKey(
        account_id=account.id,
        environment_id=env.id,
        name=name,
        prefix=key_prefix(key),
        key_hash=hash_api_key(key),
        plan=plan.name,
        created_at=now,
        expires_at=expires,
        calls_total=0,
        calls_period=0,
        period="",
    )
    session.add(row)
    session.flush()
    return NewKey(row.id, key, row.prefix, environment, plan.name, account.email, expires)


def _info(key: ApiKey, email: str, env: str) -> KeyInfo:
    return KeyInfo(
        key.id,
        key.prefix,
        key.name,
        email,
        env,
        key.plan,
        key.created_at,
        key.revoked_at,
        key.expires_at,
        key.last_used_at,
        key.calls_total,
    )


def list_keys(session: Session, account_email: str | None = None) -> list[KeyInfo]:
    query = (
        select(ApiKey, Account.email, Environment.name)
        .join(Account, ApiKey.account_id == Account.id)
        .join(Environment, ApiKey.environment_id == Environment.id)
        .order_by(ApiKey.id)
    )
    if account_email is not None:
        query = query.where(Account.email == account_email)
    return [_info(k, email, env) for k, email, env in session.execute(query)]


def find_keys(session: Session, ref: str) -> list[ApiKey]:
    """Keys matching ``ref``: a key id, a public prefix, or a whole key."""
    conditions = [ApiKey.prefix == ref[:12], ApiKey.key_hash == hash_api_key(ref)]
    if ref.isdigit():
        conditions.append(ApiKey.id == int(ref))
    keys = list(session.scalars(select(ApiKey).where(or_(*conditions))))
    if len(ref) > 12:
        keys = [k for k in keys if k.key_hash == hash_api_key(ref) or str(k.id) == ref]
    return keys


def revoke_keys(session: Session, keys: list[ApiKey], now: datetime | None = None) -> None:
    now = now or utcnow()
    for key in keys:
        if key.revoked_at is None:
            key.revoked_at = now
    session.flush()
