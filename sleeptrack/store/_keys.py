"""API keys, their hashes, per-key webhook secrets and the encryption of stored webhook headers.

* An API key is ``st_<environment>_<40 url-safe characters>`` (about 240 random bits). Only its SHA-256
  and its first 12 characters (the public prefix, shown in listings) are stored.
* The webhook signing secret of a key is derived from the server secret and the key's hash, so it is
  never stored and survives restarts: ``whsec_<hex>``.
* Webhooks carry the API key in ``x-api-key`` as the reference documents; the key that set a session's
  callback URL is kept encrypted (AES-256-GCM with a key derived from the server secret) for that.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_PREFIX_LENGTH",
    "decrypt_secret",
    "encrypt_secret",
    "generate_api_key",
    "hash_api_key",
    "key_prefix",
    "keys_equal",
    "webhook_secret",
]

KEY_PREFIX_LENGTH = 12
ENVIRONMENTS = ("live", "test")


def generate_api_key(environment: str) -> str:
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be 'live' or 'test', got {environment!r}")
    return f"st_{environment}_{secrets.token_urlsafe(30)}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:KEY_PREFIX_LENGTH]


def keys_equal(hash_a: str, hash_b: str) -> bool:
    """Constant-time comparison of two key hashes."""
    return hmac.compare_digest(hash_a.encode(), hash_b.encode())


def webhook_secret(server_secret: bytes, key_hash: str) -> str:
    """The secret of ``x-sleeptrack-signature`` for webhooks caused by the key with hash ``key_hash``."""
    digest = hmac.new(server_secret, b"sleeptrack-webhook-secret:" + key_hash.encode(), hashlib.sha256)
    return "whsec_" + digest.hexdigest()


def _aead(server_secret: bytes) -> AESGCM:
    return AESGCM(hmac.new(server_secret, b"sleeptrack-header-encryption", hashlib.sha256).digest())


def encrypt_secret(server_secret: bytes, value: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + _aead(server_secret).encrypt(nonce, value.encode(), b"sleeptrack")


def decrypt_secret(server_secret: bytes, blob: bytes) -> str | None:
    """The decrypted value, or ``None`` if it was encrypted under another server secret or is corrupt."""
    if len(blob) < 13:
        return None
    try:
        return _aead(server_secret).decrypt(blob[:12], blob[12:], b"sleeptrack").decode()
    except (InvalidTag, UnicodeDecodeError):
        return None
