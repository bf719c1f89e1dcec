"""Open everything the settings describe: the database (migrated) and the blob store."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ._blobs import BlobStore, LocalBlobStore
from ._db import Database
from ._models import Chunk
from ._settings import Plan, Settings

__all__ = ["Stores", "open_blob_store", "open_stores"]


def open_blob_store(settings: Settings, db: Database | None = None) -> BlobStore:
    """The blob store of the settings: the local folder, the database's ``blobs`` table, or S3."""
    kind = settings.resolved_blob_store
    if kind == "database":
        from ._shared_blobs import DatabaseBlobStore

        if db is None:
            db = Database(settings.resolved_database_url, pool_size=2)
        return DatabaseBlobStore(db)
    if kind == "s3":
        from ._shared_blobs import S3BlobStore

        if not settings.s3_bucket:
            raise ValueError("blob_store = 's3' needs SLEEPTRACK_S3_BUCKET")
        return S3BlobStore(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    return LocalBlobStore(settings.resolved_blob_dir, fsync=settings.fsync_blobs)


@dataclass
class Stores:
    settings: Settings
    db: Database
    blobs: BlobStore
    plans: dict[str, Plan]
    secret: bytes

    def close(self) -> None:
        if isinstance(self.blobs, LocalBlobStore):
            self.blobs.close()
        self.db.dispose()

    def seal_abandoned_segments(self) -> int:
        """Seal the local store's segments whose writer died, cut back to their last recorded chunk (the
        group being stored when it died was never recorded, nor answered); how many."""
        if not isinstance(self.blobs, LocalBlobStore):
            return 0
        abandoned = self.blobs.unsealed_segments()
        for segment in abandoned:
            recorded = select(Chunk.blob_key).where(Chunk.blob_key.startswith(f"{segment}@", autoescape=True))
            with self.db.read() as db:
                self.blobs.seal_segment(segment, db.scalars(recorded))
        return len(abandoned)


def open_stores(settings: Settings, migrate: bool = True, pool_size: int = 10) -> Stores:
    """Open (and by default migrate) the database, the blob store and the plans of ``settings``."""
    settings.ensure_data_dir()
    plans = settings.plans()
    db = Database(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous, pool_size=pool_size)
    if migrate:
        db.migrate()
    return Stores(settings, db, open_blob_store(settings, db), plans, settings.secret())
