"""``sleeptrack demo``: the whole system on this machine — the embedded server in a temporary data folder,
an API key, a simulated night tracked through the SDK at accelerated speed, the webhooks received by a local
receiver, and the final report next to the truth's agreement figures."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._app import app, console, err_console, fail

#: The default night: an hour (120 chunks: sleep onset and most of a first cycle), so that the whole demo
#: (server start, simulation, tracking, final analysis) takes under two minutes on two shared, busy cores.
DEFAULT_HOURS = 1.0


@dataclass
class WebhookReceiver:
    """A local HTTP endpoint collecting the server's webhooks, checking each signature."""

    secret: str
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    complete: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        from sleeptrack.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify_signature

        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    verify_signature(
                        receiver.secret, body, self.headers.get(TIMESTAMP_HEADER), self.headers.get(SIGNATURE_HEADER)
                    )
                    event = json.loads(body)
                except (SignatureError, ValueError):
                    receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.events.append(event)
                if event.get("event") == "SESSION_COMPLETE":
                    receiver.complete.set()
                self.send_response(204)
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/sleeptrack-webhook"

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e.get("event") == event)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class EmbeddedServer:
    """``sleeptrack serve`` in this process (uvicorn in a thread) on a free loopback port."""

    def __init__(self, settings: Any) -> None:
        import uvicorn

        from sleeptrack.server import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sleeptrack-demo-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                fail("the embedded server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def _create_key(settings: Any) -> tuple[str, str]:
    from sleeptrack.store import create_api_key, hash_api_key, open_stores, webhook_secret

    stores = open_stores(settings)
    try:
        with stores.db.write() as db:
            new = create_api_key(db, environment="test", plan=stores.plans["advanced"], name="demo")
        return new.key, webhook_secret(stores.secret, hash_api_key(new.key))
    finally:
        stores.close()


@app.command("demo")
def demo_command(
    hours: Annotated[
        float, typer.Option(help="Length of the simulated night (1 h keeps the demo under 2 minutes).")
    ] = DEFAULT_HOURS,
    seed: Annotated[int, typer.Option(help="Seed of the simulated night (test split).")] = 900_001,
    speed: Annotated[float, typer.Option(help="Replay speed: 0 = as fast as it can be tracked.")] = 0.0,
    out: Annotated[
        Path | None, typer.Option(help="Keep the server's data, the spool and a figure in this folder.")
    ] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Progress lines instead of the live view.")] = False,
) -> None:
    """Run the whole system here: server, API key, a simulated night tracked through the SDK, webhooks, report."""
    try:
        from sleeptrack.store import Settings
    except ImportError:
        fail("the demo runs the server: pip install 'sleeptrack[server]'")
    from sleeptrack.analysis import Hypnogram, build_report, parse_timezone
    from sleeptrack.sdk import Reports, ReportTimeoutError, SimulatedNightSource, SleepTrackingManager, init_config
    from sleeptrack.sim import NightConfig, SimulationError

    from ._render import render_report
    from ._track import LiveListener, agreement_table, run_tracking

    started = time.monotonic()
    folder = out or Path(tempfile.mkdtemp(prefix="sleeptrack-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    # The demo's webhook receiver is on loopback, which a server refuses unless private callbacks are allowed.
    settings = Settings(
        data_dir=folder / "server", workers=1, log_level="WARNING", log_plain=True, allow_private_callbacks=True
    )
    try:
        night_config = NightConfig(hours=hours, seed=seed, split="test")
    except SimulationError as exc:
        fail(str(exc))
    key, secret = _create_key(settings)
    server = EmbeddedServer(settings)
    receiver = WebhookReceiver(secret)
    with err_console.status("starting the server and simulating the night …"):
        server.start()
        night = SimulatedNightSource(night_config, speed=speed)  # while the server starts
        server.wait_ready()
    err_console.print(
        f"server on [bold]{server.url}[/] (data in {settings.data_dir}), test key {key[:12]}…, "
        f"webhooks to {receiver.url}",
        highlight=False,
    )
    try:
        config = init_config(key, None, server.url, callback_url=receiver.url, service="sleeptrack demo")
        config = replace(config, spool_dir=folder / "spool")
        live = not plain and console.is_terminal
        listener = LiveListener(plain_console=None if live else err_console)
        manager = SleepTrackingManager(config, listener, source=night)
        pace = f"×{speed:g}" if speed else "max"
        label = f"simulated night, {hours:g} h, seed {seed} ({night.epochs} epochs, speed {pace})"
        track_started = time.monotonic()
        session_id = run_tracking(manager, listener, label, manager.start, live=live, out=console)
        tracked = time.monotonic() - track_started
        with err_console.status("final analysis …"):
            try:
                with Reports(config) as reports:
                    report = reports.wait_until_complete(session_id, timeout=180, poll_interval=0.5)
            except ReportTimeoutError as exc:
                fail(f"the server did not finish the analysis: {exc.detail} (see its log above)")
            receiver.complete.wait(30)  # SESSION_COMPLETE is sent right after the report is COMPLETE
        # the truth on the session's clock, so both hypnograms line up
        sim_truth = night.truth.hypnogram
        truth = Hypnogram(sim_truth.stages, report.session.start_time, config.timezone, snoring=sim_truth.snoring)
        tz = parse_timezone(truth.timezone)
        from sleeptrack.analysis import build_report

        true_report = build_report(
            "truth", truth.stages, truth.start_time, truth.end_time, snoring_stages=truth.snoring
        )
        render_report(console, true_report.to_dict(tz, truth.timezone), truth, "The truth (simulator)")
        render_report(console, report.to_dict(), report.hypnogram, f"sleeptrack's report of session {session_id}")
        console.print(agreement_table(truth, report.hypnogram))
        status = manager.get_tracking_status()
        facts = Table(title="The run", title_justify="left", show_header=False, box=None)
        facts.add_column(style="bold")
        facts.add_column(justify="right")
        facts.add_row("chunks uploaded", f"{status.uploaded} ({night.epochs * 30 / max(tracked, 1e-9):.0f}× real time)")
        facts.add_row("INFERENCE_COMPLETE webhooks", str(receiver.count("INFERENCE_COMPLETE")))
        facts.add_row("SESSION_COMPLETE webhooks", str(receiver.count("SESSION_COMPLETE")))
        if receiver.bad_signatures:
            facts.add_row("webhooks with a bad signature", str(receiver.bad_signatures))
        facts.add_row("demo time", f"{time.monotonic() - started:.0f} s")
        console.print(facts)
        if out is not None:
            from sleeptrack.analysis import plot_hypnogram

            try:
                plot_hypnogram(report.hypnogram, folder / "night.png", truth=truth)
                console.print(f"server data, spool and figure in [bold]{folder}[/]")
            except RuntimeError as exc:
                err_console.print(f"[yellow]no figure:[/] {exc}")
    finally:
        server.stop()
        receiver.close()
        if out is None:
            shutil.rmtree(folder, ignore_errors=True)
