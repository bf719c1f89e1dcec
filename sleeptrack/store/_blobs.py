"""Blob storage for uploaded chunks: a small interface and the local-folder backend.

Another backend (S3-compatible, for scale-out) implements :class:`BlobStore` and is chosen by
:func:`open_blob_store` from the settings.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["BlobNotFoundError", "BlobStore", "LocalBlobStore"]

# Temporary names only need to be unique; os.urandom (uuid4) is slow on some virtual machines.
_RNG = random.Random()


class BlobNotFoundError(KeyError):
    """No blob under that key."""


@runtime_checkable
class BlobStore(Protocol):
    """Keys are ``/``-separated relative paths such as ``12/G-…/20250115025029_fvivn/00042-ab12.mel``."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` durably (on stable storage when this returns); replaces an existing blob."""

    def get(self, key: str) -> bytes:
        """The blob's bytes; :class:`BlobNotFoundError` if absent."""

    def delete(self, key: str) -> None:
        """Remove one blob (no error if absent)."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob whose key starts with ``prefix`` followed by ``/``."""

    def exists(self, key: str) -> bool: ...


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid blob key {key!r}")


class LocalBlobStore:
    """Blobs as files under ``root``; writes go to a temporary file, are fsynced, then renamed."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)
        self._dirs: set[Path] = set()

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            if len(self._dirs) > 100_000:
                self._dirs.clear()
            self._dirs.add(path.parent)
        tmp = path.with_name(f".{path.name}.{_RNG.getrandbits(64):016x}.tmp")
        try:
            with tmp.open("wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self.fsync:
            # The rename itself must reach the disk too.
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        self._dirs = {d for d in self._dirs if d != path and path not in d.parents}
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
