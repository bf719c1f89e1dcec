"""The durable upload spool: chunks are on disk (fsynced) before they are uploaded and leave it only after
the server's 2xx, so a crash, a dead network or a dead server at any moment loses nothing.

Layout: one *journal* folder per tracked session, ``<spool>/<session_id>/``:

* ``journal.json`` — the session (id, user, server, key fingerprint, inference type, start time, audio
  source), its state (``open`` → ``closing``) and ``acked_through`` (highest seq_num the server has);
* ``<seq_num>.chunk`` — one upload body each, behind a 16-byte header (magic, seq_num, length, CRC-32).

Every file is written to a temporary name, fsynced, renamed into place and its folder fsynced: after a
crash a file is either complete or absent. A chunk is deleted only after its upload got a 2xx (and, if it
was the newest, after ``acked_through`` recorded it), so the sequence numbering survives an empty spool.
A chunk uploaded whose deletion was cut short by a crash is uploaded again: the server answers
``duplicate: true`` and stores nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import threading
import zlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

__all__ = ["Journal", "JournalMeta", "Spool", "SpoolCorruptError"]

_MAGIC: Final = b"STSP"
_HEADER: Final = struct.Struct("<4sIQI")  # magic, seq_num, payload length, crc32
_META: Final = "journal.json"
_SUFFIX: Final = ".chunk"
JournalState = Literal["open", "closing"]


class SpoolCorruptError(OSError):
    """A spooled chunk failed its integrity check (disk corruption); it cannot be uploaded."""


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes a rename / unlink durable (POSIX); not available on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


@dataclass(frozen=True)
class JournalMeta:
    """What a journal knows about its session (``journal.json``)."""

    session_id: str
    user_id: str
    base_url: str
    key_fingerprint: str
    inference_type: str
    session_start_time: datetime
    created_at: datetime
    state: JournalState = "open"
    acked_through: int = -1
    end_time: datetime | None = None  # set when closing: the end the session is closed with
    unexpected: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    audio_format: str = "wav"  # AUDIO sessions: the container of the chunks
    format_version: int = 1

    def to_json(self) -> bytes:
        d = asdict(self)
        for key in ("session_start_time", "created_at", "end_time"):
            d[key] = None if d[key] is None else d[key].isoformat()
        return json.dumps(d, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> JournalMeta:
        d = json.loads(data)
        for key in ("session_start_time", "created_at", "end_time"):
            if d.get(key) is not None:
                d[key] = datetime.fromisoformat(d[key])
        return cls(**d)


class Journal:
    """One session's folder in the spool. Thread-safe: a capture thread puts, an upload thread acks."""

    def __init__(self, path: Path, meta: JournalMeta, durable: bool = True) -> None:
        self.path = path
        self._meta = meta
        self._durable = durable
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        for item in path.iterdir():
            if item.name.endswith(".tmp"):
                item.unlink(missing_ok=True)  # a write cut short by a crash: never acknowledged to anyone
            elif item.suffix == _SUFFIX and item.stem.isdigit():
                self._pending.add(int(item.stem))

    @property
    def meta(self) -> JournalMeta:
        with self._lock:
            return self._meta

    @property
    def session_id(self) -> str:
        return self._meta.session_id

    def _chunk_path(self, seq: int) -> Path:
        return self.path / f"{seq:08d}{_SUFFIX}"

    # ------------------------------------------------------------------------------------ chunks
    def put(self, seq: int, payload: bytes) -> None:
        """Store chunk ``seq`` durably (returns once it is on disk)."""
        if seq < 0:
            raise ValueError("seq_num starts from 0")
        header = _HEADER.pack(_MAGIC, seq, len(payload), zlib.crc32(payload))
        _atomic_write(self._chunk_path(seq), header + payload, self._durable)
        with self._lock:
            self._pending.add(seq)

    def pending(self) -> list[int]:
        """Spooled sequence numbers not yet acknowledged by the server, in order."""
        with self._lock:
            return sorted(self._pending)

    def first_pending(self) -> int | None:
        with self._lock:
            return min(self._pending) if self._pending else None

    def read(self, seq: int) -> bytes:
        """The upload body of chunk ``seq`` (its header checked)."""
        data = self._chunk_path(seq).read_bytes()
        if len(data) < _HEADER.size:
            raise SpoolCorruptError(f"spooled chunk {seq} of {self.session_id} is truncated")
        magic, stored_seq, length, crc = _HEADER.unpack_from(data)
        payload = data[_HEADER.size :]
        if magic != _MAGIC or stored_seq != seq or length != len(payload) or zlib.crc32(payload) != crc:
            raise SpoolCorruptError(f"spooled chunk {seq} of {self.session_id} is corrupt")
        return payload

    def ack(self, seq: int) -> None:
        """The server has chunk ``seq`` (2xx) — or refused it for good: forget it."""
        with self._lock:
            newest = not any(s > seq for s in self._pending)
            if newest and seq > self._meta.acked_through:
                self._write_meta(replace(self._meta, acked_through=seq))
            self._pending.discard(seq)
        self._chunk_path(seq).unlink(missing_ok=True)
        if self._durable:
            _fsync_dir(self.path)

    def next_seq(self) -> int:
        """The sequence number the next chunk gets (one past everything spooled or acknowledged)."""
        with self._lock:
            top = max(self._pending, default=-1)
            return max(top, self._meta.acked_through) + 1

    # -------------------------------------------------------------------------------------- meta
    def _write_meta(self, meta: JournalMeta) -> None:
        _atomic_write(self.path / _META, meta.to_json(), self._durable)
        self._meta = meta

    def update(self, **changes: Any) -> JournalMeta:
        with self._lock:
            self._write_meta(replace(self._meta, **changes))
            return self._meta

    def remove(self) -> None:
        """The session is closed on the server: delete the folder."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._durable:
            _fsync_dir(self.path.parent)


class Spool:
    """The spool folder: creates journals and finds the unfinished ones a crashed process left."""

    def __init__(self, root: str | os.PathLike[str], durable: bool = True) -> None:
        self.root = Path(root).expanduser()
        self.durable = durable

    def create(self, meta: JournalMeta) -> Journal:
        """A new journal for a just-created session (its ``journal.json`` durable before returning)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / meta.session_id
        path.mkdir(exist_ok=True)
        _atomic_write(path / _META, meta.to_json(), self.durable)
        if self.durable:
            _fsync_dir(self.root)
        return Journal(path, meta, self.durable)

    def journals(
        self, base_url: str | None = None, user_id: str | None = None, key_fingerprint: str | None = None
    ) -> list[Journal]:
        """Unfinished journals (optionally only those of a server / user / key), oldest first."""
        if not self.root.is_dir():
            return []
        found: list[Journal] = []
        for path in sorted(self.root.iterdir()):
            meta_file = path / _META
            if not path.is_dir() or not meta_file.is_file():
                continue
            try:
                meta = JournalMeta.from_json(meta_file.read_bytes())
            except (OSError, ValueError, TypeError):
                continue  # not ours or unreadable: left alone
            if base_url is not None and meta.base_url != base_url:
                continue
            if user_id is not None and meta.user_id != user_id:
                continue
            if key_fingerprint is not None and meta.key_fingerprint != key_fingerprint:
                continue
            found.append(Journal(path, meta, self.durable))
        found.sort(key=lambda j: j.meta.created_at)
        return found

    def open(self, session_id: str) -> Journal | None:
        path = self.root / session_id
        if not (path / _META).is_file():
            return None
        return Journal(path, JournalMeta.from_json((path / _META).read_bytes()), self.durable)
