"""Persistence of the sleeptrack server: database schema and migrations, blobs, settings and plans.

Nothing here imports the web framework or the analysis engine: the server, the job workers and the
``sleeptrack keys`` command all build on it.
"""

from ._accounts import (
    DEFAULT_ACCOUNT_EMAIL,
    KeyInfo,
    NewKey,
    account_by_email,
    create_api_key,
    ensure_account,
    find_keys,
    list_keys,
    normalize_email,
    revoke_keys,
)
from ._blobs import PACK_NAME, SEGMENTS, BlobNotFoundError, BlobStore, LocalBlobStore
from ._db import MIGRATIONS_DIR, Database, DatabaseError, is_sqlite_url
from ._ids import is_session_id, is_user_id, new_session_id, new_user_id
from ._keys import (
    KEY_PREFIX_LENGTH,
    decrypt_secret,
    encrypt_secret,
    generate_api_key,
    hash_api_key,
    key_prefix,
    keys_equal,
    webhook_secret,
)
from ._models import (
    Account,
    ApiKey,
    Base,
    Chunk,
    ChunkFeatures,
    Environment,
    FinalResult,
    Job,
    RealtimeResult,
    SleepSession,
    User,
    Webhook,
    utcnow,
)
from ._settings import DEFAULT_PLANS, MAX_UPLOAD_BYTES, Plan, PlanError, Settings, default_data_dir, load_plans
from ._shared_blobs import Blob, DatabaseBlobStore, S3BlobStore
from ._stores import Stores, open_blob_store, open_stores

__all__ = [
    "DEFAULT_ACCOUNT_EMAIL",
    "DEFAULT_PLANS",
    "KEY_PREFIX_LENGTH",
    "MAX_UPLOAD_BYTES",
    "MIGRATIONS_DIR",
    "PACK_NAME",
    "SEGMENTS",
    "Account",
    "ApiKey",
    "Base",
    "Blob",
    "BlobNotFoundError",
    "BlobStore",
    "Chunk",
    "ChunkFeatures",
    "Database",
    "DatabaseBlobStore",
    "DatabaseError",
    "Environment",
    "FinalResult",
    "Job",
    "KeyInfo",
    "LocalBlobStore",
    "NewKey",
    "Plan",
    "PlanError",
    "RealtimeResult",
    "S3BlobStore",
    "Settings",
    "SleepSession",
    "Stores",
    "User",
    "Webhook",
    "account_by_email",
    "create_api_key",
    "decrypt_secret",
    "default_data_dir",
    "encrypt_secret",
    "ensure_account",
    "find_keys",
    "generate_api_key",
    "hash_api_key",
    "is_session_id",
    "is_sqlite_url",
    "is_user_id",
    "key_prefix",
    "keys_equal",
    "list_keys",
    "load_plans",
    "new_session_id",
    "new_user_id",
    "normalize_email",
    "open_blob_store",
    "open_stores",
    "revoke_keys",
    "utcnow",
    "webhook_secret",
]
