"""Blob storage for uploaded chunks: a small interface and the local-folder backend.

Another backend (S3-compatible, for scale-out) implements :class:`BlobStore` and is chosen by
:func:`open_blob_store` from the settings.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import random
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

_flock: Callable[[int, int], None] | None
try:
    import fcntl

    _flock, _LOCK_EX, _LOCK_NB = fcntl.flock, fcntl.LOCK_EX, fcntl.LOCK_NB
except ImportError:  # Windows: segments are then not locked against reclaiming
    _flock, _LOCK_EX, _LOCK_NB = None, 0, 0

__all__ = [
    "PACK_NAME",
    "SEGMENTS",
    "BlobNotFoundError",
    "BlobStore",
    "LocalBlobStore",
    "OneObjectPerBlob",
    "try_lock",
]

# Temporary names only need to be unique; os.urandom (uuid4) is slow on some virtual machines.
_RNG = random.Random()

#: The file each session's blobs were appended to before segments (still read and deleted).
PACK_NAME = "chunks.pack"
#: The folder of :class:`LocalBlobStore`'s segments.
SEGMENTS = "segments"
#: A segment's size past which its store starts a new one.
SEGMENT_BYTES = 256 * 1024 * 1024
#: Beside a segment no store appends to any more, an empty file of its name plus this.
_SEALED = ".sealed"
#: Blobs in a segment start on a multiple of this (a file system block), so each frees its own blocks.
_BLOCK = 4096
_ZEROS = memoryview(bytes(_BLOCK))


class BlobNotFoundError(KeyError):
    """No blob under that key."""


@runtime_checkable
class BlobStore(Protocol):
    """Keys are ``/``-separated relative paths such as ``12/G-…/20250115025029_fvivn/00042-ab12.mel``."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` durably (on stable storage when this returns); replaces an existing blob."""

    def add(self, prefix: str, name: str, data: bytes) -> str:
        """Store ``data`` durably as a new blob under ``prefix``; its key (``prefix/…``).

        ``name`` is unique under ``prefix``; a store keeping one object per blob names it so, another may
        append blobs to a shared file and name the byte range instead.
        """

    def add_many(self, items: Sequence[tuple[str, str, bytes]]) -> list[str]:
        """:meth:`add` for each ``(prefix, name, data)``, all durable when this returns; their keys, in order.

        On an error none of them is stored.
        """

    def get(self, key: str) -> bytes:
        """The blob's bytes; :class:`BlobNotFoundError` if absent."""

    def delete(self, key: str) -> None:
        """Remove one blob (no error if absent). A blob in a shared file has its bytes zeroed, their disk
        space freed where the file system can."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """:meth:`delete` for each key."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob whose key starts with ``prefix`` followed by ``/`` (blobs :meth:`add` put in a
        shared file are deleted by key)."""

    def exists(self, key: str) -> bool: ...


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid blob key {key!r}")


class OneObjectPerBlob:
    """:meth:`BlobStore.add` for stores keeping each blob as its own object, under ``prefix/name``."""

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    #: How many puts :meth:`add_many` makes at once (a remote store's latency is mostly waiting).
    add_concurrency = 1

    def add(self, prefix: str, name: str, data: bytes) -> str:
        key = f"{prefix.rstrip('/')}/{name}"
        self.put(key, data)
        return key

    def add_many(self, items: Sequence[tuple[str, str, bytes]]) -> list[str]:
        keys = [f"{prefix.rstrip('/')}/{name}" for prefix, name, _ in items]
        try:
            if self.add_concurrency > 1 and len(items) > 1:
                with ThreadPoolExecutor(min(self.add_concurrency, len(items))) as pool:
                    list(pool.map(self.put, keys, [data for _, _, data in items]))
            else:
                for key, (_, _, data) in zip(keys, items, strict=True):
                    self.put(key, data)
        except BaseException:
            self.delete_many(keys)
            raise
        return keys

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)


def _pack_range(key: str) -> tuple[str, int, int] | None:
    """``(file key, offset, size)`` of a blob in a shared file (``segments/<name>.seg@<offset>+<size>``, or
    ``…/chunks.pack@…`` before segments), else None."""
    pack, at, span = key.rpartition("@")
    if not at or not (pack.endswith("/" + PACK_NAME) or (pack.startswith(SEGMENTS + "/") and pack.endswith(".seg"))):
        return None
    offset, plus, size = span.partition("+")
    if not (plus and offset.isdigit() and size.isdigit()):
        raise ValueError(f"invalid blob key {key!r}")
    return pack, int(offset), int(size)


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc_name = ctypes.util.find_library("c")
_fallocate = getattr(ctypes.CDLL(_libc_name, use_errno=True), "fallocate", None) if _libc_name else None
if _fallocate is not None:
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


_fadvise = getattr(os, "posix_fadvise", None)
_fdatasync = getattr(os, "fdatasync", os.fsync)


def _punch_hole(fd: int, offset: int, size: int) -> bool:
    """Zero ``size`` bytes at ``offset`` and free their blocks (Linux); False where it cannot."""
    if _fallocate is None:
        return False
    result: int = _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, size)
    return result == 0


def _uncache(fd: int, offset: int, size: int) -> None:
    """Drop a packed chunk's pages from the page cache (where the system can): each is read once.

    A chunk is written once and read once, by its features job; kept cached, a night of uploads would
    grow the page cache by gigabytes, pushing out the database, and on virtual machines whose free memory
    goes back to the host, every new page-cache page costs the writer a fault in the host: on this machine
    appending 40 000 chunks of 128 KB cost 0.255 ms of system CPU each, against 0.095 ms with the pages
    dropped once durable and reused.
    """
    if _fadvise is not None:
        _fadvise(fd, offset, size, os.POSIX_FADV_DONTNEED)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def try_lock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting: False if another descriptor holds it. The kernel
    releases it when the descriptor closes or its process dies (where there is no ``flock``, True)."""
    if _flock is None:
        return True
    try:
        _flock(fd, _LOCK_EX | _LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlocked(path: Path) -> bool:
    """True if no store holds ``path`` (a segment) to append to it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return try_lock(fd)
    finally:
        os.close(fd)


class _Segment:
    """The segment a :class:`LocalBlobStore` appends to: its descriptor holds the segment's ``flock``."""

    def __init__(self, fd: int, path: Path, key: str) -> None:
        self.fd = fd
        self.path = path
        self.key = key
        self.size = os.lseek(fd, 0, os.SEEK_END)

    def seal(self) -> None:
        """No blob will be appended any more: mark it so, and let it go."""
        _seal(self.path)
        os.close(self.fd)


def _seal(segment: Path) -> None:
    segment.with_name(segment.name + _SEALED).touch()


class LocalBlobStore:
    """Blobs as files under ``root``.

    :meth:`add_many` appends blobs to a *segment*, ``segments/<name>.seg``, shared by every session: the
    writer appends a whole group of uploads and makes them durable with one fdatasync, where a file per
    session needs one fdatasync (and one journal commit) per upload. Measured on this project's machine
    (3 000 chunks of 130 KB): 36 µs of CPU per chunk, against 290 µs for 16 threads appending each chunk
    to its session's file with its own fdatasync. A key names its byte range, ``segments/<name>.seg@<offset>+<size>``.
    Each store appends to its own segment (held with an exclusive ``flock`` while it may grow, so no other
    process reclaims it) and starts a new one past :attr:`segment_bytes`. :meth:`delete` frees a blob's
    bytes (a hole punched in the segment); a segment left with no data is removed.

    Keys of the layout before segments (``<prefix>/chunks.pack@<offset>+<size>``, one pack per session)
    stay readable and deletable. :meth:`put` writes a whole file: to a temporary file, fsynced, renamed.
    """

    def __init__(self, root: Path, fsync: bool = True, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._append_lock = threading.Lock()  # one append (and rotation) at a time
        self._segment: _Segment | None = None
        self._dirs: set[Path] = set()  # directories known to exist

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    def _remember(self, known: set[Path], path: Path) -> None:
        """Add ``path`` to one of the bounded sets of paths known to exist."""
        with self._lock:
            if len(known) > 100_000:
                known.clear()
            known.add(path)

    def put(self, key: str, data: bytes) -> None:
        if _pack_range(key) is not None:
            raise ValueError(f"a packed blob is written by add, not put: {key!r}")
        path = self._path(key)
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._remember(self._dirs, path.parent)
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
            _fsync_directory(path.parent)  # the rename itself must reach the disk too

    def add(self, prefix: str, name: str, data: bytes) -> str:
        return self.add_many([(prefix, name, data)])[0]

    def add_many(self, items: Sequence[tuple[str, str, bytes]]) -> list[str]:
        """Append the blobs to this store's segment, one fdatasync for all (``prefix`` and ``name`` are only
        checked: the segment holds every session's blobs)."""
        for prefix, name, _ in items:
            _check_key(f"{prefix.rstrip('/')}/{name}")
        if not items:
            return []
        with self._append_lock:
            segment = self._segment
            if segment is None or segment.size >= self.segment_bytes:
                segment = self._new_segment()
            start = offset = segment.size
            keys: list[str] = []
            try:
                for _, _, data in items:
                    # Every blob starts on a block: deleting it frees all of its blocks, none shared.
                    pad = -len(data) % _BLOCK
                    written = os.writev(segment.fd, [data, _ZEROS[:pad]]) if pad else os.write(segment.fd, data)
                    if written != len(data) + pad:
                        raise OSError(errno.ENOSPC, "short write to a blob segment", str(segment.path))
                    keys.append(f"{segment.key}@{offset}+{len(data)}")
                    offset += written
                if self.fsync:
                    _fdatasync(segment.fd)
            except BaseException:
                # Nothing of this group may stay (a disk full halfway, say): cut the segment back.
                with contextlib.suppress(OSError):
                    os.ftruncate(segment.fd, start)
                raise
            finally:
                segment.size = os.lseek(segment.fd, 0, os.SEEK_END)
            if self.fsync:
                _uncache(segment.fd, start, offset - start)  # durable, hence clean: its pages can go at once
        return keys

    def _new_segment(self) -> _Segment:
        """Start appending to a new segment (the caller holds ``_append_lock``); the previous one is sealed."""
        directory = self.root / SEGMENTS
        directory.mkdir(exist_ok=True)
        name = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{os.getpid()}-{_RNG.getrandbits(32):08x}.seg"
        # Locked before it appears under its name: no one may take it for a dead store's segment.
        tmp = directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        try_lock(fd)  # a file just created: nobody else holds it
        os.replace(tmp, directory / name)
        if self.fsync:
            _fsync_directory(directory)  # the segment's directory entry
        previous, self._segment = self._segment, _Segment(fd, directory / name, f"{SEGMENTS}/{name}")
        if previous is not None:
            previous.seal()
            self._reclaim(previous.path)
        return self._segment

    def close(self) -> None:
        """Seal this store's segment: every blob in it was answered for (call once nothing is appending)."""
        with self._append_lock:
            if self._segment is not None:
                self._segment.seal()
                self._reclaim(self._segment.path)
                self._segment = None

    def unsealed_segments(self) -> list[str]:
        """Segments no store appends to any more but never sealed: their writer died. Only their tail can
        hold blobs nobody recorded (the group being appended when it died), which :meth:`seal_segment`
        cuts off; the caller knows which blobs were recorded."""
        directory = self.root / SEGMENTS
        if not directory.is_dir():
            return []
        found = []
        for path in sorted(directory.glob("*.seg")):
            if path.with_name(path.name + _SEALED).exists():
                continue
            if self._segment is not None and path == self._segment.path:
                continue
            if _unlocked(path):
                found.append(f"{SEGMENTS}/{path.name}")
        return found

    def seal_segment(self, key: str, recorded: Iterable[str]) -> None:
        """Seal an unsealed segment (``segments/<name>.seg``), cut back to the end of the last of its blobs
        in ``recorded`` (keys, e.g. all those the database names in that segment)."""
        end = 0
        for blob in recorded:
            packed = _pack_range(blob)
            if packed is not None and packed[0] == key:
                end = max(end, packed[1] + packed[2])
        path = self._path(key)
        fd = os.open(path, os.O_WRONLY)
        try:
            if not try_lock(fd):
                return  # a store appends to it after all
            if os.fstat(fd).st_size > end:
                os.ftruncate(fd, end)
                if self.fsync:
                    os.fsync(fd)
            _seal(path)
        finally:
            os.close(fd)
        self._reclaim(path)

    def _reclaim(self, path: Path) -> None:
        """Remove a sealed segment whose every blob was deleted (no data block left)."""
        with contextlib.suppress(OSError):
            if path.with_name(path.name + _SEALED).exists() and path.stat().st_blocks == 0 and _unlocked(path):
                path.unlink()
                path.with_name(path.name + _SEALED).unlink()

    def get(self, key: str) -> bytes:
        packed = _pack_range(key)
        try:
            if packed is None:
                return self._path(key).read_bytes()
            pack, offset, size = packed
            fd = os.open(self._path(pack), os.O_RDONLY)
            try:
                data = os.pread(fd, size, offset)
                _uncache(fd, offset, size)
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None
        if len(data) != size:
            raise BlobNotFoundError(key)
        return data

    def delete(self, key: str) -> None:
        self.delete_many([key])

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove the blobs: a file, or a blob's bytes in a shared file (a hole punched: zeroed, their disk
        space freed where the file system can). A sealed segment left without data goes."""
        ranges: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
        for key in keys:
            packed = _pack_range(key)
            if packed is None:
                self._path(key).unlink(missing_ok=True)
            else:
                ranges[packed[0]].append(packed[1:])
        for pack, spans in ranges.items():
            path = self._path(pack)
            try:
                fd = os.open(path, os.O_WRONLY)
            except FileNotFoundError:
                continue
            segment = path.name.endswith(".seg")
            try:
                for offset, size in spans:
                    # A blob in a segment owns the padding up to the next block (see add_many).
                    if not _punch_hole(fd, offset, size + (-size % _BLOCK if segment else 0)):
                        os.pwrite(fd, bytes(size), offset)  # at least the bytes go
            finally:
                os.close(fd)
            if segment:
                self._reclaim(path)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        if path.parts[len(self.root.parts)] == SEGMENTS:
            raise ValueError(f"segments are deleted blob by blob, not by prefix: {prefix!r}")
        with self._lock:
            self._dirs -= {d for d in self._dirs if d == path or path in d.parents}
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)

    def exists(self, key: str) -> bool:
        """True for a stored blob; a deleted blob in a shared file is zeros there, so an all-zero one there
        counts as deleted (no chunk is: every format starts with a header)."""
        packed = _pack_range(key)
        if packed is None:
            return self._path(key).is_file()
        pack, offset, size = packed
        try:
            fd = os.open(self._path(pack), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            data = os.pread(fd, size, offset)
        finally:
            os.close(fd)
        return len(data) == size and (size == 0 or bool(data.strip(b"\0")))
