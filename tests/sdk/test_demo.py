"""``sleeptrack demo``: embedded server, key, simulated night tracked through the SDK, webhooks, report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ._e2e import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sdk-e2e"), pytest.mark.timeout(600)]


def test_demo_runs_the_whole_system(tmp_path: Path) -> None:
    if not (ROOT / "sleeptrack" / "server" / "__init__.py").is_file():
        pytest.skip("the server is not in this tree yet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPTRACK_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="100", TMPDIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "sleeptrack", "demo", "--hours", "0.25", "--plain", "--seed", "900002"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=550,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "The truth (simulator)" in text and "sleeptrack's report of session" in text
    assert "Sleep statistics" in text and "Agreement with the truth" in text
    assert re.search(r"chunks uploaded\s+30 ", text), text
    assert re.search(r"SESSION_COMPLETE webhooks\s+1\b", text), text
    assert re.search(r"INFERENCE_COMPLETE webhooks\s+3\b", text), text  # one per 10 epochs
    assert "bad signature" not in text
    assert list(tmp_path.glob("sleeptrack-demo-*")) == []  # the temporary server data is removed


def test_the_default_demo_finishes_in_under_two_minutes(tmp_path: Path) -> None:
    # `make demo` runs `sleeptrack demo` with its defaults: a 1-hour night, through the server, the SDK and
    # the webhooks, to the final report. The issue gives it 2 minutes (installation apart).
    if not (ROOT / "sleeptrack" / "server" / "__init__.py").is_file():
        pytest.skip("the server is not in this tree yet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPTRACK_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="100", TMPDIR=str(tmp_path))
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "sleeptrack", "demo", "--plain"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=550,
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"chunks uploaded\s+120 ", out.stdout), out.stdout  # the whole hour
    assert "sleeptrack's report of session" in out.stdout
    assert elapsed < 120, f"the default demo took {elapsed:.0f} s"
