"""The sleep-tracking manager: audio → 30-s chunks → on-device mel spectrogram → durable spool → uploads,
with the reference SDK's listener callbacks, real-time results, interruptions and the continue-session flow.

Three threads per tracked session:

* *capture*: reads the source, cuts 30-s chunks, encodes each (mel spectrogram or audio file) and puts it
  in the spool (fsynced) — ``on_spool(seq)``;
* *upload*: sends the oldest spooled chunk until the server answers 2xx, then deletes it —
  ``on_upload(seq)``; transient failures are retried with backoff for as long as it takes (the spool holds
  the chunks, in order); after the source ends or :meth:`SleepTrackingManager.stop`, it uploads what is
  left and closes the session — ``on_close(session_id)``;
* *real-time*: after every ``realtime_every`` uploaded epochs, fetches the real-time result —
  ``on_analysis(session)``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import numpy as np

from sleeptrack.analysis import EPOCH_SECONDS

from ._client import ApiClient
from ._config import AsleepConfig, key_fingerprint
from ._encode import encode_chunk, upload_format
from ._errors import (
    Action,
    ApiStatusError,
    AsleepError,
    AsleepErrorCode,
    AudioSourceError,
    Operation,
)
from ._models import InferenceType, Session
from ._sources import AudioSource, Chunker, MicrophoneSource, SourceInterruptedError
from ._spool import Journal, JournalMeta, Spool, SpoolCorruptError

__all__ = [
    "CallbackListener",
    "SleepTrackingManager",
    "TrackingListener",
    "TrackingState",
    "TrackingStatus",
    "UnfinishedSession",
]

log = logging.getLogger("sleeptrack.sdk")


class TrackingListener:
    """Callbacks of a tracking session (the reference's ``TrackingListener`` / delegate), all optional.

    They are called from the SDK's threads; keep them short (hand work to your own thread or loop).
    An exception in a callback is logged and otherwise ignored.
    """

    def on_create(self) -> None:
        """The session was created on the server."""

    def on_start(self, session_id: str) -> None:
        """Recording started (also after continuing an unfinished session)."""

    def on_spool(self, sequence: int) -> None:
        """Chunk ``sequence`` is safely on disk, waiting for upload."""

    def on_upload(self, sequence: int) -> None:
        """The server has chunk ``sequence`` (0, 1, 2 … one per 30 s)."""

    def on_close(self, session_id: str) -> None:
        """Tracking ended and the session is closed (or cannot be used any more)."""

    def on_fail(self, error_code: AsleepErrorCode, detail: str) -> None:
        """An error; see :class:`AsleepErrorCode`. ``ERR_UPLOAD_FAILED`` and friends do not end tracking."""

    def on_interrupt(self) -> None:
        """The audio input stopped (device lost, stream stalled); the SDK keeps trying to reopen it."""

    def on_resume(self) -> None:
        """The audio input is back."""

    def on_analysis(self, session: Session) -> None:
        """The latest real-time result (stages so far)."""


class CallbackListener(TrackingListener):
    """A listener from plain functions: ``CallbackListener(on_upload=print, on_close=done)``."""

    _NAMES = (
        "on_create",
        "on_start",
        "on_spool",
        "on_upload",
        "on_close",
        "on_fail",
        "on_interrupt",
        "on_resume",
        "on_analysis",
    )

    def __init__(self, **callbacks: Callable[..., Any]) -> None:
        unknown = sorted(set(callbacks) - set(self._NAMES))
        if unknown:
            raise TypeError(f"unknown callback(s): {', '.join(unknown)}")
        for name, fn in callbacks.items():
            setattr(self, name, fn)


class TrackingState(StrEnum):
    IDLE = "idle"
    TRACKING = "tracking"
    INTERRUPTED = "interrupted"
    STOPPING = "stopping"  # recording ended: uploading what is left, then closing
    CLOSED = "closed"
    FAILED = "failed"  # ended by an error; see last_error


@dataclass(frozen=True)
class TrackingStatus:
    """``getTrackingStatus()``: the session being tracked and the counters of this process."""

    session_id: str | None
    state: TrackingState
    spooled: int = 0  # chunks put in the spool by this process
    uploaded: int = 0  # chunks the server acknowledged in this process
    pending: int = 0  # chunks in the spool waiting for upload
    next_seq: int = 0
    last_error: AsleepError | None = None
    session_start_time: datetime | None = None
    latest: Session | None = None  # the latest real-time result


@dataclass(frozen=True)
class UnfinishedSession:
    """A session a previous process left open: in the local spool and/or on the server."""

    session_id: str
    where: str  # "spool" (chunks and state on this machine) or "server" (only the server knows it)
    state: str  # "open" (was tracking) or "closing" (was closing: the end time is known)
    pending_chunks: int
    next_seq: int
    source: dict[str, Any] = field(default_factory=dict)
    inference_type: InferenceType = InferenceType.MELSPECTROGRAM


class SleepTrackingManager:
    """Tracks one night at a time (``Asleep.createSleepTrackingManager``).

    Parameters
    ----------
    config
        From :func:`sleeptrack.sdk.init_config`.
    listener
        Callbacks: a :class:`TrackingListener`, or any object with some of its methods (looked up by name).
    source
        The audio (default: the microphone).
    inference_type
        Upload the on-device mel spectrogram (default, ~25 KB per chunk) or AUDIO files.
    audio_format
        ``"wav"`` or ``"flac"`` for AUDIO uploads.
    realtime_every
        Fetch the real-time result after every this many uploaded epochs (10 = every 5 minutes of
        audio, as the server computes it); 0 = never.
    spool
        Where chunks wait for upload (default: ``config.spool_dir``).
    transport
        An ``httpx`` transport (tests, proxies).
    resume_interval
        Seconds between attempts to reopen an interrupted live source.
    """

    def __init__(
        self,
        config: AsleepConfig,
        listener: TrackingListener | Any = None,
        *,
        source: AudioSource | None = None,
        inference_type: InferenceType | str | None = None,
        audio_format: str = "wav",
        realtime_every: int = 10,
        spool: Spool | None = None,
        transport: httpx.BaseTransport | None = None,
        resume_interval: float = 5.0,
    ) -> None:
        self.config = config
        self.listener = listener or TrackingListener()
        self.source = source
        self.inference_type = InferenceType(inference_type or config.inference_type)
        upload_format(self.inference_type, audio_format)
        self.audio_format = audio_format
        self.realtime_every = max(0, int(realtime_every))
        self.spool = spool or Spool(config.spool_dir)
        self.resume_interval = resume_interval
        self._transport = transport
        self._fingerprint = key_fingerprint(config.api_key)
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._state = TrackingState.IDLE
        self._journal: Journal | None = None
        self._spooled = 0
        self._uploaded = 0
        self._next_seq = 0
        self._last_error: AsleepError | None = None
        self._latest: Session | None = None
        self._capture_thread: threading.Thread | None = None
        self._upload_thread: threading.Thread | None = None
        self._realtime_thread: threading.Thread | None = None
        self._capture_done = threading.Event()
        self._closing = threading.Event()  # no more chunks will come: drain, then close
        self._abort = threading.Event()  # give up now (the journal stays for next time)
        self._finished = threading.Event()
        self._wakeup = threading.Event()
        self._realtime_due = threading.Event()
        self._resume_now = threading.Event()
        self._silenced = False

    # ------------------------------------------------------------------------------ plumbing
    def _api(self) -> ApiClient:
        return self.config.client(transport=self._transport)

    def _call(self, name: str, *args: Any) -> None:
        fn = getattr(self.listener, name, None)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("listener %s raised", name)

    def _fail(self, error: AsleepError) -> None:
        with self._lock:
            self._last_error = error
        self._call("on_fail", error.code, error.detail)

    def _set_state(self, state: TrackingState) -> None:
        with self._lock:
            if self._state not in (TrackingState.CLOSED, TrackingState.FAILED) or state is TrackingState.IDLE:
                self._state = state

    # ------------------------------------------------------------------------------ status
    def get_tracking_status(self) -> TrackingStatus:
        with self._lock:
            journal = self._journal
            return TrackingStatus(
                session_id=journal.session_id if journal and self._state is not TrackingState.IDLE else None,
                state=self._state,
                spooled=self._spooled,
                uploaded=self._uploaded,
                pending=len(journal.pending()) if journal else 0,
                next_seq=self._next_seq,
                last_error=self._last_error,
                session_start_time=journal.meta.session_start_time if journal else None,
                latest=self._latest,
            )

    @property
    def session_id(self) -> str | None:
        return self.get_tracking_status().session_id

    # ------------------------------------------------------------------------------ start
    def _source(self) -> AudioSource:
        if self.source is None:
            self.source = MicrophoneSource()
        return self.source

    def _check_idle(self) -> None:
        with self._lock:
            if self._state in (TrackingState.TRACKING, TrackingState.INTERRUPTED, TrackingState.STOPPING):
                raise RuntimeError("already tracking: stop() first")
            self._reset()

    def start(self) -> str:
        """Create a session and start recording (``startSleepTracking``); returns the session id.

        Raises
        ------
        AsleepError
            The session could not be created: ``ERR_CREATE_CONFLICT`` (a previous session is still open: see
            :meth:`has_unfinished_session`), ``ERR_CREATE_FAILED`` (network, after retries) …; ``on_fail``
            is called too.
        """
        self._check_idle()
        source = self._source()
        try:
            with self._api() as api:
                created = api.create_session(self.config.callback_url, self.config.service, self.inference_type)
        except AsleepError as error:
            self._set_state(TrackingState.FAILED)
            self._fail(error)
            raise
        meta = JournalMeta(
            session_id=created.session_id,
            user_id=self.config.user_id,
            base_url=self.config.base_url,
            key_fingerprint=self._fingerprint,
            inference_type=str(self.inference_type),
            session_start_time=created.session_start_time,
            created_at=datetime.now(UTC),
            source=source.describe(),
            audio_format=self.audio_format,
        )
        journal = self.spool.create(meta)
        self._call("on_create")
        self._launch(journal, source, start_seq=0)
        return created.session_id

    def _launch(self, journal: Journal, source: AudioSource | None, start_seq: int) -> None:
        with self._lock:
            self._journal = journal
            self._next_seq = start_seq
            self._state = TrackingState.TRACKING if source is not None else TrackingState.STOPPING
        self._upload_thread = threading.Thread(target=self._upload_main, name="sleeptrack-upload", daemon=True)
        self._upload_thread.start()
        if self.realtime_every:
            self._realtime_thread = threading.Thread(
                target=self._realtime_main, name="sleeptrack-realtime", daemon=True
            )
            self._realtime_thread.start()
        if source is None:
            self._capture_done.set()
            self._closing.set()
            self._wakeup.set()
            return
        source.reset()
        self._capture_thread = threading.Thread(
            target=self._capture_main, args=(source, start_seq), name="sleeptrack-capture", daemon=True
        )
        self._capture_thread.start()
        self._call("on_start", journal.session_id)

    # ------------------------------------------------------------------------------ capture
    def _capture_main(self, source: AudioSource, start_seq: int) -> None:
        journal = self._journal
        assert journal is not None
        meta = journal.meta
        seq = start_seq
        if source.live and start_seq > 0:  # continuing: the time the process was dead is a gap
            seq = max(seq, self._wall_clock_seq(meta.created_at))
        chunker = Chunker()
        interrupted = False
        try:
            while not self._closing.is_set():
                try:
                    for block in source.blocks(0 if source.live else seq):
                        if interrupted:
                            interrupted = False
                            self._set_state(TrackingState.TRACKING)
                            self._call("on_resume")
                        for chunk in chunker.push(block):
                            self._spool_chunk(journal, seq, chunk)
                            seq += 1
                        if self._closing.is_set():
                            break
                    break  # the source ended (file, simulation, iterator) or was stopped
                except SourceInterruptedError as exc:
                    if self._closing.is_set():
                        break
                    log.warning("audio interrupted: %s", exc)
                except AudioSourceError as error:
                    if not source.live or (not interrupted and seq == start_seq and self._spooled == 0):
                        self._fail(error)  # ERR_AUDIO: tracking cannot go on
                        self._set_state(TrackingState.FAILED)
                        break
                    log.warning("audio still unavailable: %s", error)
                if not interrupted:
                    interrupted = True
                    self._set_state(TrackingState.INTERRUPTED)
                    self._call("on_interrupt")
                chunker.clear()
                self._resume_now.wait(self.resume_interval)
                self._resume_now.clear()
                source.reset()
                seq = max(seq, self._wall_clock_seq(meta.created_at))
        except Exception as exc:  # a bug or an unexpected source failure: report it, close cleanly
            log.exception("capture failed")
            self._fail(AudioSourceError(AsleepErrorCode.ERR_AUDIO, f"audio capture failed: {exc}"))
        finally:
            if chunker.buffered:
                log.info("dropping the last %.1f s (a chunk is 30 s)", chunker.buffered / 16000)
            self._capture_done.set()
            self._begin_closing(journal, source, seq)

    @staticmethod
    def _wall_clock_seq(created_at: datetime) -> int:
        """The epoch a live source is at now, by this machine's clock since the session was created here
        (after an interruption or a restart, so the gap stays a gap instead of shifting the night)."""
        return max(0, int((datetime.now(UTC) - created_at).total_seconds() // EPOCH_SECONDS))

    def _spool_chunk(self, journal: Journal, seq: int, chunk: np.ndarray[Any, Any]) -> None:
        silent = not np.any(chunk)
        if silent != self._silenced:
            self._silenced = silent
            code = AsleepErrorCode.ERR_AUDIO_SILENCED if silent else AsleepErrorCode.ERR_AUDIO_UNSILENCED
            self._fail(AsleepError(code, "the audio input is all zeros" if silent else "the audio input is back"))
        payload = encode_chunk(chunk, self.inference_type, self.audio_format)
        journal.put(seq, payload)
        with self._lock:
            self._spooled += 1
            self._next_seq = seq + 1
        self._wakeup.set()
        self._call("on_spool", seq)

    def _begin_closing(self, journal: Journal, source: AudioSource, seq: int) -> None:
        """Recording is over: record the end time durably, then let the uploader drain and close."""
        if self._abort.is_set():
            return  # aborted: the journal stays as it was, for the next run to continue or close
        with self._lock:
            if self._state is TrackingState.FAILED and not journal.path.exists():
                return
        meta = journal.meta
        if meta.state != "closing":
            if seq == 0:
                end = None  # nothing recorded: the server takes the close time
            elif source.live:
                end = datetime.now(UTC)
            else:
                # Replayed audio (a file or a simulation, maybe faster than real time): its own timeline.
                end = meta.session_start_time + timedelta(seconds=EPOCH_SECONDS * seq)
            with contextlib.suppress(FileNotFoundError):
                journal.update(state="closing", end_time=end, unexpected=False)
        self._set_state(TrackingState.STOPPING)
        self._closing.set()
        self._wakeup.set()

    # ------------------------------------------------------------------------------ upload
    def _upload_main(self) -> None:
        journal = self._journal
        assert journal is not None
        fmt = upload_format(journal.meta.inference_type, journal.meta.audio_format)
        attempt = 0
        outage = False
        api = self._api()
        try:
            while not self._abort.is_set():
                seq = journal.first_pending()
                if seq is None:
                    if self._closing.is_set() and self._capture_done.is_set():
                        self._close_session(api, journal)
                        return
                    self._wakeup.wait(0.5)
                    self._wakeup.clear()
                    continue
                try:
                    payload = journal.read(seq)
                except (SpoolCorruptError, FileNotFoundError) as exc:
                    self._fail(AsleepError(AsleepErrorCode.ERR_UPLOAD_FAILED, f"dropped spooled chunk {seq}: {exc}"))
                    journal.ack(seq)
                    continue
                try:
                    api.upload(
                        journal.session_id,
                        seq,
                        payload,
                        filename=fmt.filename,
                        content_type=fmt.content_type,
                        callback_url=self.config.callback_url,
                        attempts=1,
                    )
                except AsleepError as error:
                    if error.action is Action.RETRY:
                        attempt += 1
                        if not outage:
                            outage = True
                            self._fail(error)  # reported once per outage; tracking goes on
                        else:
                            with self._lock:
                                self._last_error = error
                        wait = self.config.retry.delay(attempt, error.retry_after)
                        log.info("upload of chunk %d failed (%s); retry in %.1f s", seq, error.detail, wait)
                        self._abort.wait(wait)
                        continue
                    if error.action is Action.SKIP:
                        self._fail(error)
                        journal.ack(seq)
                        continue
                    self._fatal(api, journal, error)
                    return
                attempt = 0
                outage = False
                journal.ack(seq)
                with self._lock:
                    self._uploaded += 1
                self._call("on_upload", seq)
                if self.realtime_every and (seq + 1) % self.realtime_every == 0:
                    self._realtime_due.set()
        except Exception as exc:
            log.exception("upload loop failed")
            self._fail(AsleepError(AsleepErrorCode.ERR_UNKNOWN, f"upload loop failed: {exc}"))
            self._set_state(TrackingState.FAILED)
            self._finish(journal, remove=False)
        finally:
            api.close()

    def _fatal(self, api: ApiClient, journal: Journal, error: AsleepError) -> None:
        """An error that ends tracking ("SDK Stop"): stop recording, close if the session still exists."""
        self._fail(error)
        self._set_state(TrackingState.FAILED)
        self._stop_capture()
        if self._capture_thread is not None:
            self._capture_thread.join(timeout=30)
        gone = error.code in (AsleepErrorCode.ERR_UPLOAD_FORBIDDEN, AsleepErrorCode.ERR_UPLOAD_NOT_FOUND)
        keep = error.code in (
            AsleepErrorCode.ERR_COMMON_EXPIRED,
            AsleepErrorCode.ERR_COMMON_UNAUTHORIZED,
            AsleepErrorCode.ERR_UPLOAD_UNAUTHORIZED,
        )
        if not gone:
            meta = journal.meta
            try:
                api.close_session(journal.session_id, meta.end_time, unexpected=meta.end_time is None, attempts=1)
            except AsleepError as close_error:
                log.warning("could not close %s after %s: %s", journal.session_id, error.code.name, close_error)
                keep = True
            else:
                keep = False
        self._finish(journal, remove=not keep)

    def _stop_capture(self) -> None:
        self._closing.set()
        if self.source is not None:
            self.source.stop()
        self._resume_now.set()

    def _close_session(self, api: ApiClient, journal: Journal) -> None:
        attempt = 0
        end_time = journal.meta.end_time
        unexpected = journal.meta.unexpected
        while not self._abort.is_set():
            try:
                api.close_session(journal.session_id, end_time, unexpected, attempts=1)
            except AsleepError as error:
                if isinstance(error, ApiStatusError) and error.code is AsleepErrorCode.ERR_CLOSE_FORBIDDEN:
                    break  # already closed: an earlier attempt went through but its answer was lost
                if error.code is AsleepErrorCode.ERR_CLOSE_BAD_REQUEST and end_time is not None:
                    log.warning("server refused end time %s (%s); closing at its own clock", end_time, error.detail)
                    end_time = None
                    continue
                if error.action is Action.RETRY:
                    attempt += 1
                    with self._lock:
                        self._last_error = error
                    if attempt == 1:
                        self._fail(error)
                    self._abort.wait(self.config.retry.delay(attempt, error.retry_after))
                    continue
                self._fail(error)
                self._set_state(TrackingState.FAILED)
                self._finish(journal, remove=error.code is AsleepErrorCode.ERR_CLOSE_NOT_FOUND)
                return
            break
        if self._abort.is_set():
            return
        self._set_state(TrackingState.CLOSED)
        self._finish(journal, remove=True)

    def _finish(self, journal: Journal, remove: bool) -> None:
        if remove:
            journal.remove()
        self._realtime_due.set()
        self._finished.set()
        self._call("on_close", journal.session_id)

    # ------------------------------------------------------------------------------ real time
    def _realtime_main(self) -> None:
        api = self._api()
        try:
            while not self._finished.is_set() and not self._abort.is_set():
                self._realtime_due.wait()
                self._realtime_due.clear()
                if self._finished.is_set() or self._abort.is_set():
                    return
                with contextlib.suppress(AsleepError):
                    self._poll(api)
        finally:
            api.close()

    def _poll(self, api: ApiClient) -> Session:
        journal = self._journal
        if journal is None:
            raise AsleepError(AsleepErrorCode.ERR_UNINITIALIZED, "not tracking")
        session = api.get_report(journal.session_id, Operation.ANALYSE).session
        with self._lock:
            self._latest = session
        self._call("on_analysis", session)
        return session

    def request_analysis(self) -> Session:
        """The latest real-time result of the tracked session (``requestAnalysis``).

        Raises
        ------
        AsleepError
            ``ERR_ANALYSE_FAILED`` (network), ``ERR_ANALYSE_NOT_FOUND`` …
        """
        with self._api() as api:
            return self._poll(api)

    # ------------------------------------------------------------------------------ stop
    def stop(self, wait: bool = True, timeout: float | None = None) -> str | None:
        """Stop recording, upload what is left and close the session (``stopSleepTracking``).

        With ``wait``, returns the closed session's id, or ``None`` if ``timeout`` (seconds) passed first
        (uploads and close go on in the background; call :meth:`wait` or :meth:`abort`).
        """
        journal = self._journal
        if journal is None or self._state is TrackingState.IDLE:
            return None
        self._stop_capture()
        self._wakeup.set()
        if self._capture_thread is None:
            self._capture_done.set()
        if not wait:
            return None
        return journal.session_id if self.wait(timeout) else None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the session is closed (the source ended, :meth:`stop`, or a fatal error)."""
        return self._finished.wait(timeout)

    def abort(self) -> None:
        """Give up now without closing: everything not uploaded stays in the spool for the next run."""
        self._abort.set()
        self._stop_capture()
        self._wakeup.set()
        self._realtime_due.set()
        for thread in (self._capture_thread, self._upload_thread, self._realtime_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10)
        self._set_state(TrackingState.IDLE)

    def resume_tracking(self) -> None:
        """Try to reopen an interrupted audio input now (``resumeTracking``)."""
        self._resume_now.set()

    # ------------------------------------------------------------------------------ unfinished
    def _local(self) -> list[Journal]:
        return self.spool.journals(self.config.base_url, self.config.user_id, self._fingerprint)

    def unfinished_sessions(self, check_server: bool = True) -> list[UnfinishedSession]:
        """Sessions a previous run left unfinished: in this spool, and (``check_server``) the server's open one."""
        current = self._journal.session_id if self._journal is not None and not self._finished.is_set() else None
        found = [
            UnfinishedSession(
                session_id=j.session_id,
                where="spool",
                state=j.meta.state,
                pending_chunks=len(j.pending()),
                next_seq=j.next_seq(),
                source=j.meta.source,
                inference_type=InferenceType(j.meta.inference_type),
            )
            for j in self._local()
            if j.session_id != current
        ]
        if check_server:
            with self._api() as api:
                open_session = api.open_session()
            known = {u.session_id for u in found} | {current}
            if open_session is not None and open_session.session_id not in known:
                found.append(
                    UnfinishedSession(
                        session_id=open_session.session_id,
                        where="server",
                        state="open",
                        pending_chunks=0,
                        next_seq=open_session.last_seq_num + 1,
                        inference_type=open_session.inference_type,
                    )
                )
        return found

    def has_unfinished_session(self, check_server: bool = True) -> bool:
        """Whether a previous run left a session unfinished (``hasUnfinishedSession``)."""
        return bool(self.unfinished_sessions(check_server))

    def _adopt(self, session_id: str | None) -> tuple[Journal, UnfinishedSession]:
        self._check_idle()
        candidates = self.unfinished_sessions()
        if session_id is not None:
            candidates = [c for c in candidates if c.session_id == session_id]
        if not candidates:
            raise ValueError("no unfinished session" + (f" {session_id}" if session_id else ""))
        target = candidates[0]
        journal = self.spool.open(target.session_id) if target.where == "spool" else None
        if journal is None:
            journal = self._journal_from_server(target)
        return journal, target

    def _journal_from_server(self, target: UnfinishedSession) -> Journal:
        with self._api() as api:
            report = api.get_report(target.session_id)
            start = report.session.start_time
        meta = JournalMeta(
            session_id=target.session_id,
            user_id=self.config.user_id,
            base_url=self.config.base_url,
            key_fingerprint=self._fingerprint,
            inference_type=str(target.inference_type),
            session_start_time=start,
            created_at=start,  # by the server's clock: the best this machine knows of when it began
            acked_through=target.next_seq - 1,
            source=self.source.describe() if self.source is not None else {},
            audio_format=self.audio_format,
        )
        return self.spool.create(meta)

    def continue_session(self, session_id: str | None = None) -> str:
        """Continue tracking an unfinished session (the reference's "continue session" flow).

        Pending chunks are uploaded first, in order; recording goes on with the next sequence number. A
        replayable source (file, simulation) must be the one the session was tracking and continues where
        its spool ends; a live source continues at the current time (the gap stays missing). A session
        that was already closing is finished instead (uploads, then close).
        """
        journal, _ = self._adopt(session_id)
        if journal.meta.state == "closing":
            self._launch(journal, None, journal.next_seq())
            return journal.session_id
        source = self._source()
        if not source.live and journal.meta.source and journal.meta.source != source.describe():
            raise ValueError(
                f"session {journal.session_id} was tracking {journal.meta.source}; continue it with the same source "
                "or close it with close_unfinished_session()"
            )
        self.inference_type = InferenceType(journal.meta.inference_type)
        self.audio_format = journal.meta.audio_format
        self._launch(journal, source, journal.next_seq())
        return journal.session_id

    def close_unfinished_session(
        self, session_id: str | None = None, wait: bool = True, timeout: float | None = None
    ) -> str | None:
        """Upload what an unfinished session has in the spool, then close it.

        A session that was tracking when its process died is closed with ``unexpected=1`` (the server ends
        it after its last chunk); one that was closing keeps its recorded end time.
        """
        journal, _ = self._adopt(session_id)
        if journal.meta.state != "closing":
            journal.update(state="closing", end_time=None, unexpected=True)
        self._launch(journal, None, journal.next_seq())
        if not wait:
            return None
        return journal.session_id if self.wait(timeout) else None

    # ------------------------------------------------------------------------------ misc
    def __enter__(self) -> SleepTrackingManager:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._state in (TrackingState.TRACKING, TrackingState.INTERRUPTED, TrackingState.STOPPING):
            self.stop(wait=True, timeout=None)
