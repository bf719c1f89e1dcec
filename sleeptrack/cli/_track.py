"""``sleeptrack track``: track a night through the SDK — the microphone, an audio file or a simulated night —
with a live view, a clean close on Ctrl-C, optional start / stop times, and the report at the end."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ._app import app, console, err_console, fail
from ._sdk_opts import (
    ApiKeyOption,
    ConfigOption,
    ServerOption,
    TimezoneOption,
    UserIdOption,
    describe_error,
    join,
    resolve_settings,
)

if TYPE_CHECKING:
    from sleeptrack.analysis import Hypnogram
    from sleeptrack.sdk import AsleepErrorCode, AudioSource, Session, SleepTrackingManager

__all__ = ["LiveListener", "agreement_table", "parse_clock", "run_tracking"]

_STAGE_NAMES = {-1: "no data", 0: "Wake", 1: "Light", 2: "Deep", 3: "REM"}


class OnUnfinished(StrEnum):
    auto = "auto"  # continue the same source's session, close anything else
    continue_ = "continue"
    close = "close"
    fail = "fail"


class InferenceChoice(StrEnum):
    MELSPECTROGRAM = "MELSPECTROGRAM"
    AUDIO = "AUDIO"


@dataclass
class LiveListener:
    """Collects what the live view shows; in plain mode prints progress lines."""

    plain_console: Console | None = None
    every: int = 10
    events: list[str] = field(default_factory=list)
    last_upload: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _note(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self.lock:
            self.events.append(f"{stamp} {text}")
            del self.events[:-3]
        if self.plain_console is not None:
            self.plain_console.print(f"{stamp} {text}", highlight=False)

    def on_create(self) -> None:
        pass

    def on_start(self, session_id: str) -> None:
        self._note(f"tracking session {session_id}")

    def on_spool(self, sequence: int) -> None:
        pass

    def on_upload(self, sequence: int) -> None:
        self.last_upload = sequence
        if self.plain_console is not None and (sequence + 1) % self.every == 0:
            self._note(f"uploaded chunk {sequence} ({(sequence + 1) / 2:.0f} min of audio)")

    def on_close(self, session_id: str) -> None:
        self._note(f"session {session_id} closed")

    def on_fail(self, error_code: AsleepErrorCode, detail: str) -> None:
        self._note(f"{error_code.name}: {detail}")

    def on_interrupt(self) -> None:
        self._note("audio interrupted; retrying")

    def on_resume(self) -> None:
        self._note("audio back")

    def on_analysis(self, session: Session) -> None:
        pass


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _latest_stage(session: Session | None) -> str:
    if session is None or not session.sleep_stages:
        return "— (the first result comes after 5 minutes of audio)"
    stages = session.sleep_stages
    valid = [i for i, s in enumerate(stages) if s >= 0]
    if not valid:
        return "no data yet"
    i = valid[-1]
    return f"{_STAGE_NAMES.get(stages[i], str(stages[i]))} (epoch {i}, {len(stages)} analysed)"


def live_view(manager: SleepTrackingManager, listener: LiveListener, label: str, started: float, width: int) -> Panel:
    from ._render import hypnogram_text

    status = manager.get_tracking_status()
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("source", label)
    table.add_row("elapsed", f"{_clock(time.monotonic() - started)}  (audio tracked {_clock(status.next_seq * 30)})")
    table.add_row(
        "chunks", f"{status.uploaded} uploaded · {status.spooled} spooled · {status.pending} waiting in the spool"
    )
    state = status.state.value
    if status.last_error is not None and status.pending:
        state += f" — retrying: {status.last_error.detail}"
    table.add_row("state", state)
    table.add_row("real-time stage", _latest_stage(status.latest))
    parts: list[Any] = [table]
    if status.latest is not None and status.latest.sleep_stages:
        hyp: Hypnogram = status.latest.hypnogram(manager.config.timezone)
        parts += [Text(""), hypnogram_text(hyp, width=width)]
    with listener.lock:
        events = list(listener.events)
    if events:
        parts += [Text(""), Text("\n".join(events), style="dim")]
    title = f"sleeptrack · session {status.session_id or '…'}"
    return Panel(Group(*parts), title=title, title_align="left", subtitle="Ctrl-C stops and closes the session")


def run_tracking(
    manager: SleepTrackingManager,
    listener: LiveListener,
    label: str,
    begin: Any,
    *,
    live: bool,
    out: Console,
    stop_at: datetime | None = None,
) -> str:
    """Start (``begin()`` = ``manager.start`` or a continue), show progress until the session is closed.

    Ctrl-C (or SIGTERM, e.g. from systemd) once: stop recording, upload what is left, close. Twice: leave
    the rest in the spool (exit 130). The handlers are installed even if the parent ignored SIGINT (as a
    shell does for background jobs), and restored afterwards.
    """
    from sleeptrack.sdk import AsleepError

    try:
        session_id = str(begin())
    except AsleepError as error:
        fail(describe_error(error))
    except ValueError as exc:
        fail(str(exc))
    timer: threading.Timer | None = None
    if stop_at is not None:
        delay = max(0.0, (stop_at - datetime.now(stop_at.tzinfo)).total_seconds())
        timer = threading.Timer(delay, manager.stop, kwargs={"wait": False})
        timer.daemon = True
        timer.start()
    started = time.monotonic()
    interrupts = 0
    width = max(24, min(96, out.width - 16))
    previous = _install_stop_signals()
    live_ctx = Live(console=out, refresh_per_second=4, transient=False) if live else None
    try:
        if live_ctx is not None:
            live_ctx.start()
        while True:
            try:
                if live_ctx is not None:
                    live_ctx.update(live_view(manager, listener, label, started, width))
                if manager.wait(0.25):
                    break
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts == 1:
                    listener._note("stopping: uploading what is left, then closing (Ctrl-C again to leave it)")
                    manager.stop(wait=False)
                else:
                    manager.abort()
                    if live_ctx is not None:
                        live_ctx.stop()
                    err_console.print(
                        f"left session {session_id} unfinished: its chunks stay in the spool; "
                        "run the same `sleeptrack track` again to continue or close it",
                        highlight=False,
                    )
                    raise typer.Exit(130) from None
        if live_ctx is not None:
            live_ctx.update(live_view(manager, listener, label, started, width))
    finally:
        if live_ctx is not None:
            live_ctx.stop()
        if timer is not None:
            timer.cancel()
        _restore_signals(previous)
    return session_id


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _install_stop_signals() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, _raise_interrupt)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def agreement_table(truth: Hypnogram, measured: Hypnogram) -> Table:
    """Epoch agreement of a tracked night with the simulator's truth."""
    from sleeptrack.analysis import NightPair, agreement

    n = min(truth.n_epochs, measured.n_epochs)
    pair = NightPair(
        "night",
        truth.stages[:n],
        measured.stages[:n],
        None if truth.snoring is None else truth.snoring[:n],
        None if measured.snoring is None else measured.snoring[:n],
    )
    agree = agreement([pair])
    table = Table(title="Agreement with the truth", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("epochs compared", f"{n} of {truth.n_epochs}")
    table.add_row("4-stage epoch accuracy", f"{agree.stages.accuracy:.1%}")
    table.add_row("Cohen's kappa", f"{agree.stages.kappa:.2f}")
    table.add_row("wake/sleep accuracy", f"{agree.two_stage.accuracy:.1%}")
    if agree.snoring is not None:
        (_, called_wrongly), (missed, hits) = agree.snoring.confusion
        if missed + hits == 0:  # F1 is undefined without a true snoring epoch
            plural = "" if called_wrongly == 1 else "s"
            table.add_row("snoring", f"none in the truth, {called_wrongly} epoch{plural} called snoring")
        else:
            table.add_row("snoring F1", f"{agree.snoring.f1[1]:.2f}")
    for key, ba in agree.nights.items():
        table.add_row(f"{key} error", f"{ba.bias:+.1f} {ba.unit}")
    return table


def parse_clock(value: str, tz: tzinfo, after: datetime) -> datetime:
    """``23:00`` → the next 23:00 after ``after`` (in ``tz``); an ISO-8601 time is taken as it is."""
    from sleeptrack.analysis import parse_datetime

    text = value.strip()
    if len(text) <= 5 and ":" in text:
        try:
            hour, minute = (int(p) for p in text.split(":"))
            local = after.astimezone(tz)
            candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        except ValueError as exc:
            raise ValueError(f"not a clock time: {value!r} (expected HH:MM, e.g. 23:00)") from exc
        while candidate <= local:
            candidate += timedelta(days=1)
        return candidate
    return parse_datetime(text, tz)


def _wait_until(when: datetime) -> None:
    with err_console.status(f"waiting until {when:%Y-%m-%d %H:%M} to start tracking (Ctrl-C to give up) …"):
        while True:
            left = (when - datetime.now(when.tzinfo)).total_seconds()
            if left <= 0:
                return
            time.sleep(min(1.0, left))


def _build_source(
    mic: bool, recording: Path | None, simulate: float | None, speed: float, seed: int, device: str | None
) -> tuple[AudioSource, str]:
    from sleeptrack.sdk import AsleepError, FileSource, MicrophoneSource, SimulatedNightSource

    chosen = sum([mic, recording is not None, simulate is not None])
    if chosen != 1:
        fail("choose one audio source: --mic, a FILE, or --simulate HOURS")
    try:
        if mic:
            dev: int | str | None = int(device) if device and device.isdigit() else device
            return MicrophoneSource(device=dev), "microphone" + (f" {device}" if device else "")
        if recording is not None:
            if not recording.is_file():
                fail(f"recording not found: {recording}")
            src = FileSource(recording, speed=speed)
            return src, f"{recording.name} ({src.epochs} epochs, speed ×{speed:g})"
        assert simulate is not None
        from sleeptrack.sim import NightConfig, SimulationError

        try:
            config = NightConfig(hours=simulate, seed=seed, split="test")
            sim = SimulatedNightSource(config, speed=speed)
        except SimulationError as exc:
            fail(str(exc))
        return sim, f"simulated night, {simulate:g} h, seed {seed} ({sim.epochs} epochs, speed ×{speed:g})"
    except AsleepError as error:
        fail(describe_error(error))
    except ValueError as exc:
        fail(str(exc))


def handle_unfinished(manager: SleepTrackingManager, source: AudioSource, policy: OnUnfinished) -> str | None:
    """Deal with sessions a previous run left open; returns the id of one to continue, if any."""
    from sleeptrack.sdk import AsleepError, SleepTrackingManager

    try:
        unfinished = manager.unfinished_sessions()
    except AsleepError as error:
        fail(describe_error(error))
    for u in unfinished:
        described = f"session {u.session_id} ({u.where}, {u.state}, {u.pending_chunks} chunks waiting)"
        if policy is OnUnfinished.fail:
            fail(f"unfinished {described}; use --on-unfinished continue or close")
        same = u.where == "spool" and u.state == "open" and u.source == source.describe()
        if policy is OnUnfinished.continue_ or (policy is OnUnfinished.auto and same):
            err_console.print(f"continuing unfinished {described}", highlight=False)
            return u.session_id
        closer = SleepTrackingManager(manager.config, spool=manager.spool, source=None, realtime_every=0)
        with err_console.status(f"closing unfinished {described} …"):
            try:
                closer.close_unfinished_session(u.session_id)
            except AsleepError as error:
                fail(f"could not close {u.session_id}: {describe_error(error)}")
        err_console.print(f"closed unfinished {described}", highlight=False)
    return None


@app.command("track")
def track_command(
    recording: Annotated[
        Path | None, typer.Argument(help="Track an audio file (any format libsndfile reads).", show_default=False)
    ] = None,
    mic: Annotated[bool, typer.Option("--mic", help="Track the microphone (needs the mic extra).")] = False,
    simulate: Annotated[
        float | None, typer.Option("--simulate", help="Track a simulated night of this many hours.", show_default=False)
    ] = None,
    speed: Annotated[
        float,
        typer.Option(help="Replay speed of a FILE or simulation: 1 = real time, 60 = 1 h/min, 0 = max."),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated night.")] = 900_001,
    device: Annotated[
        str | None, typer.Option(help="Microphone: device index or name (default input).", show_default=False)
    ] = None,
    start_at: Annotated[
        str | None, typer.Option("--start-at", help="Wait until this time (HH:MM or ISO-8601) before tracking.")
    ] = None,
    stop_at: Annotated[
        str | None, typer.Option("--stop-at", help="Stop and close at this time (HH:MM or ISO-8601).")
    ] = None,
    inference_type: Annotated[
        InferenceChoice | None,
        typer.Option(help="MELSPECTROGRAM (computed here; default) or AUDIO uploads.", show_default=False),
    ] = None,
    audio_format: Annotated[str, typer.Option(help="wav or flac, for AUDIO uploads.")] = "wav",
    callback_url: Annotated[
        str | None, typer.Option(help="Webhook URL for this session's results.", show_default=False)
    ] = None,
    service: Annotated[str | None, typer.Option(help="Your app's name.", show_default=False)] = None,
    on_unfinished: Annotated[
        OnUnfinished,
        typer.Option(help="A session a previous run left open: continue it (same source), close it, or fail."),
    ] = OnUnfinished.auto,
    spool_dir: Annotated[
        Path | None, typer.Option(help="Where chunks wait for upload (env SLEEPTRACK_SPOOL_DIR).", show_default=False)
    ] = None,
    report: Annotated[bool, typer.Option(help="Wait for the analysis and print the report at the end.")] = True,
    report_timeout: Annotated[float, typer.Option(help="Seconds to wait for the report.")] = 600.0,
    plot: Annotated[Path | None, typer.Option(help="Also write the report's hypnogram figure.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Progress lines instead of the live view.")] = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    user_id: UserIdOption = None,
    timezone: TimezoneOption = None,
    config: ConfigOption = None,
) -> None:
    """Track a night through the SDK: 30-s chunks, mel spectrogram on this machine, durable upload spool.

    The live view shows the chunks uploaded and the real-time stages.

    Ctrl-C stops and closes the session cleanly; a second Ctrl-C leaves the rest in the spool.

    A run that was killed is continued (same source) or closed by the next one (--on-unfinished).
    """
    from sleeptrack.analysis import parse_timezone
    from sleeptrack.sdk import SleepTrackingManager

    settings = resolve_settings(
        server,
        api_key,
        user_id,
        timezone,
        config,
        callback_url=callback_url,
        service=service,
        spool_dir=spool_dir,
        inference_type=inference_type.value if inference_type is not None else None,
    )
    if audio_format not in ("wav", "flac"):
        fail("--audio-format must be wav or flac")
    local_tz = parse_timezone(timezone) if timezone else datetime.now().astimezone().tzinfo
    assert local_tz is not None
    now = datetime.now(local_tz)
    try:
        start = parse_clock(start_at, local_tz, now) if start_at else None
        stop = parse_clock(stop_at, local_tz, start or now) if stop_at else None
    except ValueError as exc:
        fail(str(exc))
    source, label = _build_source(mic, recording, simulate, speed, seed, device)
    cfg = join(settings)
    if start is not None:
        _wait_until(start)
    live = not plain and console.is_terminal
    listener = LiveListener(plain_console=None if live else err_console)
    manager = SleepTrackingManager(
        cfg, listener, source=source, inference_type=settings.inference_type, audio_format=audio_format
    )
    continue_id = handle_unfinished(manager, source, on_unfinished)

    def begin() -> str:
        return manager.continue_session(continue_id) if continue_id else manager.start()

    session_id = run_tracking(manager, listener, label, begin, live=live, out=console, stop_at=stop)
    status = manager.get_tracking_status()
    if status.last_error is not None and status.state.value == "failed":
        fail(f"tracking of {session_id} ended with an error: {describe_error(status.last_error)}")
    console.print(f"session [bold]{session_id}[/] closed: {status.uploaded} chunks uploaded", highlight=False)
    if not report:
        return
    from ._reports_cli import fetch_report, show_report

    result = fetch_report(cfg, session_id, wait=report_timeout)
    show_report(result, f"Session {session_id} ({result.session.state.value})", plot)
    truth = getattr(source, "truth", None)
    if truth is not None and result.session.sleep_stages:
        console.print(agreement_table(truth.hypnogram, result.hypnogram))
