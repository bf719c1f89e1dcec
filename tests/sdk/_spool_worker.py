"""A process that spools and "uploads" chunks until it is killed (see test_spool.py).

Usage: python -m tests.sdk._spool_worker SPOOL_DIR SERVER_LOG N SEED
The "server" is an append-only log of received seq_nums, fsynced before the "2xx" (as the real server stores a
chunk durably before answering); the worker acks a chunk after that, exactly like the upload thread.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sleeptrack.sdk._spool import JournalMeta, Spool


def payload(seq: int) -> bytes:
    return bytes([seq % 251]) * (2000 + 37 * seq)


def main(root: str, log_path: str, n: int, seed: int) -> None:
    spool = Spool(root)
    found = spool.journals()
    if found:
        journal = found[0]
    else:
        now = datetime.now(UTC)
        journal = spool.create(JournalMeta("20250101000000_spool", "G-u", "http://x", "f", "MELSPECTROGRAM", now, now))
    rng = random.Random(seed)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    print("ready", flush=True)
    while True:
        time.sleep(0.003)  # a device's pace: the test's kills land mid-run, however fast this machine is
        pending = journal.first_pending()
        nxt = journal.next_seq()
        if pending is not None and (nxt >= n or rng.random() < 0.5):
            data = journal.read(pending)
            if data != payload(pending):
                raise SystemExit(f"chunk {pending} read back wrong")
            os.write(fd, f"{pending}\n".encode())
            os.fsync(fd)
            journal.ack(pending)
        elif nxt < n:
            journal.put(nxt, payload(nxt))
        else:
            break
    journal.remove()
    Path(log_path + ".done").touch()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
