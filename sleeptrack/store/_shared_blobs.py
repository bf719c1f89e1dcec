"""Blob stores every process can reach, for scale-out: in the database itself, or S3-compatible storage.

* :class:`DatabaseBlobStore` keeps chunks in the ``blobs`` table (``bytea`` on PostgreSQL). A chunk is a
  few kB (MELSPECTROGRAM) to a few MB (AUDIO); PostgreSQL stores such values out of line (TOAST), and a
  ``put`` is durable when its commit returns, like the rest of the upload.
* :class:`S3BlobStore` keeps them in a bucket through boto3 (AWS S3, MinIO, Ceph, …; tested against moto).

Both implement :class:`~sleeptrack.store.BlobStore`; :func:`~sleeptrack.store.open_blob_store` picks one
from the settings (``blob_store = "database" | "s3"``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from ._blobs import BlobNotFoundError, OneObjectPerBlob, _check_key
from ._db import Database
from ._models import Base, utcnow

__all__ = ["Blob", "DatabaseBlobStore", "S3BlobStore"]


class Blob(Base):
    """One stored chunk of :class:`DatabaseBlobStore` (key as in every blob store)."""

    __tablename__ = "blobs"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _prefix_range(prefix: str) -> tuple[str, str]:
    """Keys under ``prefix/``: ``prefix/ <= key < prefix0`` ('0' follows '/')."""
    base = prefix.rstrip("/")
    return base + "/", base + "0"


class DatabaseBlobStore(OneObjectPerBlob):
    """Blobs as rows of the ``blobs`` table of the sleeptrack database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, key: str, data: bytes) -> None:
        _check_key(key)
        insert: Any = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        stmt = insert(Blob).values(key=key, data=data, created_at=utcnow())
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"data": stmt.excluded.data})
        with self.db.write() as s:
            s.execute(stmt)

    def get(self, key: str) -> bytes:
        _check_key(key)
        with self.db.read() as s:
            data = s.scalar(select(Blob.data).where(Blob.key == key))
        if data is None:
            raise BlobNotFoundError(key)
        return bytes(data)

    def delete(self, key: str) -> None:
        _check_key(key)
        with self.db.write() as s:
            s.execute(delete(Blob).where(Blob.key == key))

    def delete_prefix(self, prefix: str) -> None:
        _check_key(prefix.rstrip("/"))
        low, high = _prefix_range(prefix)
        with self.db.write() as s:
            s.execute(delete(Blob).where(Blob.key >= low, Blob.key < high))

    def exists(self, key: str) -> bool:
        _check_key(key)
        with self.db.read() as s:
            return s.scalar(select(Blob.key).where(Blob.key == key)) is not None


class S3BlobStore(OneObjectPerBlob):
    """Blobs as objects of an S3 bucket (``prefix`` is prepended to every key)."""

    add_concurrency = 16  # a group of uploads is stored with this many PUTs in flight

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _name(self, key: str) -> str:
        _check_key(key)
        return self.prefix + key

    def put(self, key: str, data: bytes) -> None:
        # S3 acknowledges a PUT once the object is durably stored.
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self.client.exceptions.NoSuchKey:
            raise BlobNotFoundError(key) from None
        data: bytes = response["Body"].read()
        return data

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def delete_prefix(self, prefix: str) -> None:
        start = self._name(prefix.rstrip("/")) + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
