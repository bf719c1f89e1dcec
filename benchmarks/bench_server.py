"""Server: MELSPECTROGRAM ingest under 200 concurrent sleepers, and real-time latency under load.

1. Ingest. ``sleeptrack serve --processes 2`` (one API process per core; SQLite, local blobs, analysis
   workers, defaults: every chunk fsynced and its row committed with ``synchronous=FULL`` before the
   answer) and, as the baseline, a bare FastAPI
   endpoint that only writes the request body to a file, both under uvicorn on loopback, are driven by the
   same client: 200 simulated sleepers (one user and one session each) uploading real 30-second mel
   chunks back to back, in ``ROUNDS`` alternating rounds, each after ``os.sync()`` and ``SETTLE`` seconds of
   quiet (``BENCH_SETTLE``, default 30). Target: ingest rate >= 0.5 x the baseline's
   best round, 0 errors. Prints uploads/s and
   p50 / p99 latency of both, and (Linux) where the machine's CPU went during each server's rounds, per
   upload: the API process(es) (the event-loop thread of a single one apart), the analysis workers, the
   client; and how busy the machine's CPUs were. ``BENCH_PROCESSES=N`` runs ``sleeptrack serve
   --processes N``.
2. Real-time latency. The same 200 sleepers then upload at an accelerated pace (every sleeper one chunk
   every ``PACE`` seconds, ``30 / PACE`` x real time); for every 10th chunk, the time from its upload's
   answer to the INFERENCE_COMPLETE webhook's arrival at a receiver. Target: p95 <= 2 s.

The load generator is a minimal asyncio HTTP/1.1 client in this process (keep-alive, one connection per
sleeper); the servers are separate processes. On a 2-core machine the client, the API process and the
analysis worker share the CPUs; the load average is printed, since other work on the machine changes every
figure. ``BENCH_PARTS=ingest`` or ``=realtime`` runs one part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from sleeptrack.analysis import encode_mel_chunk, mel_spectrogram

ROOT = Path(__file__).resolve().parent.parent
SLEEPERS = int(os.environ.get("BENCH_SLEEPERS", "200"))
INGEST_SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", "10"))  # per round and server
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PACE = float(os.environ.get("BENCH_PACE", "15"))  # seconds between a sleeper's chunks in part 2
REALTIME_CHUNKS = int(os.environ.get("BENCH_REALTIME_CHUNKS", "20"))
PARTS = os.environ.get("BENCH_PARTS", "ingest,realtime").split(",")
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "2"))  # sleeptrack serve --processes (one per core here)
SETTLE = float(os.environ.get("BENCH_SETTLE", "30"))  # seconds of quiet before every measured ingest round
MIN_RATIO = 0.5
MAX_REALTIME_P95 = 2.0
PLANS = "[plans.bench]\nstages = 4\nsnoring = true\nrealtime = true\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS"] = "1"  # the webhook receiver is on loopback
    env.update(extra)
    return env


class Process:
    def __init__(self, args: list[str], url: str, log: Path, env: dict[str, str]) -> None:
        self.url = url
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, env=env, start_new_session=True, cwd=ROOT)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _stat(stat: Path) -> tuple[int, float]:
    """(parent pid, CPU seconds: user + system) from a /proc ``stat`` file of a process or a thread."""
    fields = stat.read_text().rpartition(")")[2].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Snapshot:
    """CPU seconds so far (Linux /proc; empty elsewhere) of what shares the machine during a round."""

    threads: dict[int, float]  # each thread of the server process
    api: dict[int, float]  # its other API processes (``--processes N``: the N children of uvicorn's supervisor)
    workers: dict[int, float]  # the analysis workers below them
    client: float  # this process: the load generator
    machine: tuple[float, float]  # (busy, total) of all CPUs

    @classmethod
    def take(cls, pid: int) -> Snapshot:
        threads: dict[int, float] = {}
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):  # the thread ended
                threads[int(task.name)] = _stat(task / "stat")[1]
        parent: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent[int(proc.name)], cpu[int(proc.name)] = _stat(proc / "stat")
        api: dict[int, float] = {}
        workers: dict[int, float] = {}
        for p, used in cpu.items():
            depth, up = 0, p
            while up in parent and up != pid:
                up, depth = parent[up], depth + 1
            if up == pid and depth:
                (api if depth < (2 if PROCESSES > 1 else 1) else workers)[p] = used
        machine = (0.0, 0.0)
        with contextlib.suppress(OSError):
            ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            machine = (float(sum(ticks) - ticks[3] - ticks[4]), float(sum(ticks)))  # idle and iowait apart
        t = os.times()
        return cls(threads, api, workers, t.user + t.system, machine)


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(k, 0.0) for k, v in after.items())


@dataclass
class CpuUse:
    """What a server and the rest of the machine spent during that server's rounds (seconds)."""

    total: float = 0.0  # the API process(es), all threads
    main: float = 0.0  # the event-loop thread of a single API process
    workers: float = 0.0  # the analysis worker processes
    client: float = 0.0
    busy: float = 0.0  # fraction of the machine's CPUs busy, summed over rounds
    rounds: int = 0

    def add(self, pid: int, before: Snapshot, after: Snapshot) -> None:
        self.total += _spent(before.threads, after.threads) + _spent(before.api, after.api)
        self.main += after.threads.get(pid, 0.0) - before.threads.get(pid, 0.0)
        self.workers += _spent(before.workers, after.workers)
        self.client += after.client - before.client
        total = after.machine[1] - before.machine[1]
        self.busy += (after.machine[0] - before.machine[0]) / total if total else 0.0
        self.rounds += 1

    def line(self, n: int) -> str:
        """Per upload (ms), for ``n`` uploads."""
        return (
            f"{1000 * self.total / n:.2f} ms in the API process(es) + {1000 * self.workers / n:.2f} ms in "
            f"analysis workers + {1000 * self.client / n:.2f} ms in the client; machine "
            f"{100 * self.busy / max(self.rounds, 1):.0f} % busy"
        )


def _mel_chunks(n: int) -> list[bytes]:
    """Real chunks: the mel spectrogram of room noise with breathing-like modulation."""
    rng = np.random.default_rng(5)
    t = np.arange(480_000) / 16_000
    chunks = []
    for i in range(n):
        breath = 1.0 + 0.6 * np.sin(2 * np.pi * t * (0.23 + 0.01 * i))
        samples = (rng.normal(0, 0.003, t.size) * breath).astype(np.float32)
        chunks.append(encode_mel_chunk(mel_spectrogram(samples)))
    return chunks


def _multipart(seq: int, body: bytes) -> tuple[bytes, str]:
    boundary = "sleeptrackbench7d1f"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="seq_num"\r\n\r\n{seq}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="chunk.mel"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + body + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass
class Sleeper:
    user: str
    session: str
    next_seq: int = 0
    answered: dict[int, float] = field(default_factory=dict)


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


class _Connection:
    """A minimal keep-alive HTTP/1.1 client: the load generator must cost far less CPU than the servers.

    (httpx's async client spends 9-16 ms of CPU per 130 KB upload here, several times what a bare server
    spends; it would measure itself.)
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            self.writer = None
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.writer.close()
            self.writer = None
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _drive(
    url: str,
    path_of: Any,
    headers_of: Any,
    sleepers: list[Sleeper],
    chunks: list[bytes],
    seconds: float | None,
    per_sleeper: int | None,
    pace: float | None,
) -> Run:
    run = Run()
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    deadline = started + seconds if seconds else None

    async def sleeper_loop(sl: Sleeper, offset: float) -> None:
        conn = _Connection(host, int(port))
        if pace:
            await asyncio.sleep(offset)
        count = 0
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                if per_sleeper is not None and count >= per_sleeper:
                    return
                seq = sl.next_seq
                body, ctype = _multipart(seq, chunks[seq % len(chunks)])
                t0 = time.monotonic()
                try:
                    status, answer = await conn.post(path_of(sl), {**headers_of(sl), "content-type": ctype}, body)
                    ok = status == 200
                    if not ok and len(run.error_samples) < 5:
                        run.error_samples.append(f"{status} {answer[:200]!r}")
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    ok = False
                    conn.writer = None
                    if len(run.error_samples) < 5:
                        run.error_samples.append(repr(exc))
                t1 = time.monotonic()
                if ok:
                    run.latencies.append(t1 - t0)
                    sl.answered[seq] = t1
                else:
                    run.errors += 1
                sl.next_seq += 1
                count += 1
                if pace:
                    await asyncio.sleep(max(0.0, pace - (time.monotonic() - t0)))
        finally:
            conn.close()

    await asyncio.gather(*(sleeper_loop(sl, random.Random(i).uniform(0, pace or 0)) for i, sl in enumerate(sleepers)))
    run.seconds = time.monotonic() - started
    return run


class _Receiver:
    """Arrival times of INFERENCE_COMPLETE webhooks by (session, seq_num)."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, int], float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.monotonic()
                data = json.loads(body)
                if data.get("event") == "INFERENCE_COMPLETE":
                    d = data["data"]
                    receiver.arrivals[(d["session_id"], d["seq_num"])] = now
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()


def _setup_sleepers(url: str, key: str, n: int, callback: str | None) -> list[Sleeper]:
    sleepers = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(n):
            h = {"x-api-key": key}
            user = client.post("/ai/v1/users", headers=h).json()["result"]["user_id"]
            body = {"callback_url": callback} if callback else {}
            r = client.post("/ai/v1/sessions", headers={**h, "x-user-id": user}, json=body)
            sleepers.append(Sleeper(user, r.json()["result"]["session_id"]))
    return sleepers


def _wait_idle(url: str, timeout: float) -> float:
    """Wait until the server's job queue is empty; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        queued = httpx.get(f"{url}/healthz", timeout=10).json()["result"]["jobs_queued"]
        if queued == 0:
            break
        time.sleep(1.0)
    return time.monotonic() - started


def _merge(runs: list[Run]) -> Run:
    out = Run()
    for r in runs:
        out.latencies += r.latencies
        out.errors += r.errors
        out.error_samples += r.error_samples
        out.seconds += r.seconds
    return out


@dataclass
class _Bench:
    bare: Process
    server: Process
    receiver: _Receiver
    key: str
    chunks: list[bytes]

    def path(self, s: Sleeper) -> str:
        return f"/ai/v1/sessions/{s.session}/upload"

    def headers(self, s: Sleeper) -> dict[str, str]:
        return {"x-api-key": self.key, "x-user-id": s.user}


def _ingest_part(b: _Bench) -> bool:
    sleepers = _setup_sleepers(b.server.url, b.key, SLEEPERS, b.receiver.url)
    fake = [Sleeper(f"u{i}", f"s{i}") for i in range(SLEEPERS)]
    base_runs: list[Run] = []
    ingest_runs: list[Run] = []
    drains: list[float] = []
    base_cpu, ingest_cpu = CpuUse(), CpuUse()

    def measured(process: Process, cpu: CpuUse, drive: Any) -> Run:
        # Each round starts with nothing left to write back: a baseline round leaves gigabytes of dirty
        # pages (it writes a 128 KB file per upload and never syncs), whose writeback would otherwise run
        # during the next round and be charged to the other server. Then the disk is given time to settle:
        # on this virtual machine a round run right after the baseline's gigabytes, even synced, cost
        # sleeptrack 1.45 instead of 1.10 ms of CPU per upload (30 s later: 1.10).
        os.sync()
        time.sleep(SETTLE)
        pid = process.proc.pid
        before = Snapshot.take(pid)
        run: Run = asyncio.run(drive)
        cpu.add(pid, before, Snapshot.take(pid))
        return run

    for _ in range(ROUNDS):
        base_runs.append(
            measured(
                b.bare,
                base_cpu,
                _drive(b.bare.url, lambda s: "/upload", lambda s: {}, fake, b.chunks, INGEST_SECONDS, None, None),
            )
        )
        ingest_runs.append(
            measured(
                b.server,
                ingest_cpu,
                _drive(b.server.url, b.path, b.headers, sleepers, b.chunks, INGEST_SECONDS, None, None),
            )
        )
        # the burst's analysis goes on after it; the next baseline round must not compete with it
        drains.append(_wait_idle(b.server.url, 1800))
    baseline, ingest = _merge(base_runs), _merge(ingest_runs)
    # Against the baseline's best round: a slow baseline round (each upload of the bare endpoint creates a
    # file, and file creation slows down for minutes after many deletions on a journal-less ext4) must not
    # flatter the ratio.
    best = max(r.rate for r in base_runs)
    ratio = ingest.rate / best if best else 0.0
    print(f"  baseline (bare FastAPI, body to a file): {baseline.rate:7.1f} uploads/s  "
          f"p50 {baseline.pct(50):6.0f} ms  p99 {baseline.pct(99):6.0f} ms  errors {baseline.errors}")  # fmt: skip
    print(f"  sleeptrack serve                        : {ingest.rate:7.1f} uploads/s  "
          f"p50 {ingest.pct(50):6.0f} ms  p99 {ingest.pct(99):6.0f} ms  errors {ingest.errors}")  # fmt: skip
    per_round = ", ".join(
        f"{i.rate / r.rate:.2f} ({i.rate:.0f} / {r.rate:.0f})" for r, i in zip(base_runs, ingest_runs, strict=True)
    )
    print(f"  ratio {ratio:.2f}: sleeptrack's rate over the baseline's best round, {best:.0f} uploads/s (target >= "
          f"{MIN_RATIO}); per round {per_round}; each burst's analysis backlog drained in "
          f"{', '.join(f'{d:.0f}' for d in drains)} s")  # fmt: skip
    if base_cpu.total and ingest_cpu.total:
        n_base, n_ingest = len(baseline.latencies), len(ingest.latencies)
        print(f"  CPU per upload, bare endpoint: {base_cpu.line(n_base)}")
        loop = ingest_cpu.main
        print(f"  CPU per upload, sleeptrack serve: {ingest_cpu.line(n_ingest)}" + (
            f"; its event loop {1000 * loop / n_ingest:.2f} ms ({100 * loop / ingest.seconds:.0f} % of a core)"
            if PROCESSES == 1 else ""))  # fmt: skip
    for sample in ingest.error_samples + baseline.error_samples:
        print(f"    error: {sample}")
    with httpx.Client(base_url=b.server.url, timeout=60) as client:
        for s in sleepers:
            client.post(f"/ai/v1/sessions/{s.session}/close", headers=b.headers(s), json={})
    _wait_idle(b.server.url, 1800)
    print(f"  load average after the ingest part: {os.getloadavg()[0]:.1f}")
    return ratio >= MIN_RATIO and ingest.errors == 0 and baseline.errors == 0


def _realtime_part(b: _Bench) -> bool:
    paced = _setup_sleepers(b.server.url, b.key, SLEEPERS, b.receiver.url)
    load = asyncio.run(_drive(b.server.url, b.path, b.headers, paced, b.chunks, None, REALTIME_CHUNKS, PACE))
    deadline = time.monotonic() + 120
    expected = [(s.session, seq) for s in paced for seq in s.answered if (seq + 1) % 10 == 0]
    while time.monotonic() < deadline and any(k not in b.receiver.arrivals for k in expected):
        time.sleep(0.2)
    lat = []
    missing = 0
    for s in paced:
        for seq, answered in s.answered.items():
            if (seq + 1) % 10:
                continue
            arrived = b.receiver.arrivals.get((s.session, seq))
            if arrived is None:
                missing += 1
            else:
                lat.append(arrived - answered)
    p50, p95 = (float(np.percentile(lat, q)) if lat else float("nan") for q in (50, 95))
    print(f"  real-time: {SLEEPERS} sleepers x {REALTIME_CHUNKS} chunks, one every {PACE:g} s each "
          f"({SLEEPERS / PACE:.0f} uploads/s, {30 / PACE:g}x real time): upload p50 {load.pct(50):.0f} ms, "
          f"p99 {load.pct(99):.0f} ms, errors {load.errors}")  # fmt: skip
    print(f"  INFERENCE_COMPLETE latency over {len(lat)} webhooks: p50 {p50:.2f} s  p95 {p95:.2f} s "
          f"(target <= {MAX_REALTIME_P95} s); missing after 120 s: {missing}")  # fmt: skip
    print(f"  load average after the real-time part: {os.getloadavg()[0]:.1f}")
    return p95 <= MAX_REALTIME_P95 and missing == 0 and load.errors == 0


def main() -> bool:
    random.seed(0)
    chunks = _mel_chunks(20)
    print(
        f"  {SLEEPERS} sleepers, {len(chunks[0]) / 1024:.0f} KB MELSPECTROGRAM chunks, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; ingest: {ROUNDS} rounds of {INGEST_SECONDS:g} s per server"
    )
    work = Path(tempfile.mkdtemp(prefix="sleeptrack-bench-server-"))
    data_dir = work / "data"
    data_dir.mkdir()
    (data_dir / "plans.toml").write_text(PLANS)
    out = subprocess.run(
        [sys.executable, "-m", "sleeptrack", "keys", "create", "--environment", "test", "--plan", "bench",
         "--data-dir", str(data_dir), "--json"],
        check=True, capture_output=True, text=True, env=_env(), cwd=ROOT,
    )  # fmt: skip
    key = json.loads(out.stdout)["key"]
    port = _free_port()
    bare = Process(
        [sys.executable, "-m", "uvicorn", "benchmarks._bare_upload_app:app", "--port", str(port), "--no-access-log",
         "--log-level", "warning", "--timeout-keep-alive", "30"],
        f"http://127.0.0.1:{port}", work / "bare.log", _env(BARE_UPLOAD_DIR=str(work / "bare")),
    )  # fmt: skip
    port = _free_port()
    server = Process(
        [sys.executable, "-m", "sleeptrack", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--no-access-log", "--log-level", "warning", "--processes", str(PROCESSES)],
        f"http://127.0.0.1:{port}", work / "server.log", _env(),
    )  # fmt: skip
    receiver = _Receiver()
    ok = True
    try:
        bare.wait_ready()
        server.wait_ready()
        bench = _Bench(bare, server, receiver, key, chunks)
        if "ingest" in PARTS:
            ok &= _ingest_part(bench)
        if "realtime" in PARTS:
            ok &= _realtime_part(bench)
    finally:
        server.stop()
        bare.stop()
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)  # thousands of uploaded chunks: leave nothing behind
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
