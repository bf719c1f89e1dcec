"""The dashboard in real headless Chromium against a real ``sleeptrack serve`` on a loopback port.

Debian's ``chromium`` (``scripts/system-deps.sh``) is driven by Playwright's Python package with
``executable_path`` (no ``playwright install``). A night is tracked through the SDK. Screenshots of the key
pages are saved under ``test-artifacts/dashboard/`` (gitignored; the path is printed).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from sleeptrack.analysis import encode_mel_chunk
from tests.conftest import skip_or_fail

from .conftest import ARTIFACTS, PASSWORD

# One server per module (per xdist worker); the group keeps the module on one worker where xdist_group works.
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("dashboard-browser")]

CHROMIUM = os.environ.get("SLEEPTRACK_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    base: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``sleeptrack serve`` (this tree's code) with one analysis thread, on a free loopback port."""
    data = tmp_path_factory.mktemp("server")
    port = _free_port()
    log = data / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLEEPTRACK_SQLITE_SYNCHRONOUS": "NORMAL"}
    cmd = [sys.executable, "-m", "sleeptrack", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(data), "--workers", "1", "--worker-mode", "thread", "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    yield Server(base, data, process, log)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (run scripts/system-deps.sh)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def artifacts() -> Path:
    # Not emptied: under pytest-xdist the tests of this module may run at once on two workers (each with its
    # own server), and every screenshot has its own name; the end-of-run summary lists this run's ones.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {ARTIFACTS}")
    return ARTIFACTS


def _sign_up(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/dashboard/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button.primary")
    page.wait_for_url(f"{base}/dashboard/keys")


def _create_key(page: Page, name: str) -> str:
    page.fill("form.inline input[name=name]", name)
    page.click("form.inline button.primary")
    value = page.get_attribute("[data-new-key]", "value")
    assert value and value.startswith("st_")
    return str(value)


def _switch(page: Page, env: str) -> None:
    page.click(f"button[data-env={env}]")
    page.wait_for_selector(f"button[data-env={env}][aria-pressed=true]")


def test_sign_up_key_sdk_night_session_page_environment_and_revocation(
    server: Server, browser: Browser, artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sleeptrack.sdk import Reports, SimulatedNightSource, SleepTrackingManager, Spool, init_config

    base = server.base
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _sign_up(page, base, "browser@example.com")
    key = _create_key(page, "browser test")
    page.screenshot(path=str(artifacts / "01-key-created.png"), full_page=True)
    page.goto(f"{base}/dashboard/keys")
    assert key not in page.content()  # shown once
    prefix = page.get_attribute("tr[data-key-id]", "data-prefix")
    assert prefix and key.startswith(prefix)

    # Track a short simulated night through the SDK: 12 minutes of synthetic sound (no ../shared/data needed),
    # uploaded as fast as it renders.
    monkeypatch.setenv("SLEEPTRACK_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("SLEEPTRACK_SHARED_DATA", "")
    config = init_config(api_key=key, base_url=base)
    manager = SleepTrackingManager(
        config, source=SimulatedNightSource(hours=0.2, seed=3, speed=0), spool=Spool(tmp_path / "spool")
    )
    session_id = manager.start()
    assert manager.wait(timeout=300), "tracking did not finish"
    report = Reports(config).wait_until_complete(session_id, timeout=300, poll_interval=0.5)
    n_epochs = len(report.session.sleep_stages or [])
    assert n_epochs == 24

    page.goto(f"{base}/dashboard/sessions")
    row = page.locator(f"tr[data-session-id='{session_id}']")
    assert row.count() == 1
    row.locator("a").first.click()
    page.wait_for_url(f"**/dashboard/sessions/{session_id}")
    hypnogram = page.locator("svg.hypnogram")
    assert hypnogram.get_attribute("data-epochs") == str(n_epochs)
    drawn = page.eval_on_selector_all(
        "svg.hypnogram rect.run", "rs => rs.reduce((n, r) => n + Number(r.dataset.epochs), 0)"
    )
    assert drawn == n_epochs
    assert page.locator("svg.hypnogram rect.run").count() >= 1
    assert page.locator("[data-model-version]").inner_text() == report.raw["model_version"]
    page.screenshot(path=str(artifacts / "02-session.png"), full_page=True)
    # Hovering a statistic shows its definition.
    if page.locator("[data-key=sleep_efficiency]").count():
        page.hover("[data-key=sleep_efficiency]")
        assert page.locator("[data-key=sleep_efficiency] .def").is_visible()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=context.storage_state())
    phone_page = phone.new_page()
    phone_page.goto(page.url)
    phone_page.screenshot(path=str(artifacts / "03-session-phone.png"), full_page=True)
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no page-wide sideways scroll
    phone.close()

    page.goto(f"{base}/dashboard/overview")
    assert page.locator("[data-stat=sessions]").inner_text() == "1"
    page.screenshot(path=str(artifacts / "04-overview.png"), full_page=True)

    # The Live environment does not show Test data.
    page.goto(f"{base}/dashboard/sessions")
    _switch(page, "live")
    assert page.url.endswith("/dashboard/sessions")
    assert page.locator(f"tr[data-session-id='{session_id}']").count() == 0
    page.screenshot(path=str(artifacts / "05-sessions-live.png"), full_page=True)
    response = page.goto(f"{base}/dashboard/sessions/{session_id}")
    assert response is not None and response.status == 404
    _switch(page, "test")
    page.goto(f"{base}/dashboard/sessions")
    assert page.locator(f"tr[data-session-id='{session_id}']").count() == 1

    # Revoke the key: the API refuses it at once.
    assert httpx.get(f"{base}/ai/v1/users/{config.user_id}", headers={"x-api-key": key}).status_code == 200
    page.goto(f"{base}/dashboard/keys")
    page.click(f"tr[data-prefix='{prefix}'] form.revoke button")
    page.wait_for_selector(f"tr[data-prefix='{prefix}'] .badge.key-revoked")
    page.screenshot(path=str(artifacts / "06-key-revoked.png"), full_page=True)
    refused = httpx.get(f"{base}/ai/v1/users/{config.user_id}", headers={"x-api-key": key})
    assert refused.status_code == 401, refused.text
    context.close()


def _mel(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_mel_chunk(rng.normal(-70.0, 6.0, (3001, 64)).astype(np.float32))


def test_open_session_page_updates_itself(server: Server, browser: Browser, artifacts: Path) -> None:
    base = server.base
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    _sign_up(page, base, "live-refresh@example.com")
    key = _create_key(page, "live")
    api = httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=30)
    user = api.post("/ai/v1/users").json()["result"]["user_id"]
    headers = {"x-user-id": user}
    sid = api.post("/ai/v1/sessions", headers=headers, json={}).json()["result"]["session_id"]

    def upload(seq: int) -> None:
        r = api.post(
            f"/ai/v1/sessions/{sid}/upload",
            headers=headers,
            files={"file": ("m.bin", _mel(seq))},
            data={"seq_num": str(seq)},
        )
        assert r.status_code == 200, r.text

    for seq in range(3):
        upload(seq)
    page.goto(f"{base}/dashboard/sessions/{sid}?poll=1")
    assert page.locator("svg.hypnogram").get_attribute("data-epochs") == "0"
    page.evaluate("window.__noReload = true")
    for seq in range(3, 10):
        upload(seq)
    # The real-time result after the 10th chunk appears without a reload.
    page.wait_for_selector("svg.hypnogram[data-epochs='10']", timeout=60_000)
    assert page.evaluate("window.__noReload === true")
    assert "10 chunks received" in page.inner_text("#live")
    page.screenshot(path=str(artifacts / "07-open-session-live.png"), full_page=True)
    # Closing it: the page reloads by itself and ends up COMPLETE with its statistics.
    assert api.post(f"/ai/v1/sessions/{sid}/close", headers=headers, json={}).status_code == 200
    page.wait_for_selector("h1 .badge.state-complete", timeout=60_000)
    assert page.evaluate("window.__noReload") is None
    api.close()
    context.close()


def test_security_in_the_browser(server: Server, browser: Browser) -> None:
    base = server.base
    owner = browser.new_context()
    owner_page = owner.new_page()
    _sign_up(owner_page, base, "owner@example.com")
    key = _create_key(owner_page, "owner")
    api = httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=30)
    user = api.post("/ai/v1/users").json()["result"]["user_id"]
    sid = api.post("/ai/v1/sessions", headers={"x-user-id": user}, json={}).json()["result"]["session_id"]
    key_id = owner_page.get_attribute("tr[data-key-id]", "data-key-id")
    api.close()

    # Signed out: sent to the sign-in page, and back after signing in.
    anonymous = browser.new_context()
    page = anonymous.new_page()
    page.goto(f"{base}/dashboard/sessions/{sid}")
    assert "/dashboard/signin?next=" in page.url
    page.fill("input[name=email]", "owner@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    page.wait_for_url(f"**/dashboard/sessions/{sid}")
    anonymous.close()

    # Another account reaches nothing of the owner's by id.
    other = browser.new_context()
    page = other.new_page()
    _sign_up(page, base, "intruder@example.com")
    for path in (f"/dashboard/sessions/{sid}", f"/dashboard/users/{user}", f"/dashboard/sessions/{sid}/export.json"):
        response = page.goto(base + path)
        assert response is not None and response.status == 404, path
    # A POST without the CSRF token (as a cross-site form would send it) is refused, with the session cookie.
    forged = page.request.post(f"{base}/dashboard/keys/{key_id}/revoke", form={"x": "1"}, max_redirects=0)
    assert forged.status == 403
    token = page.get_attribute("input[name=csrf_token]", "value")
    assert token
    stolen_id = page.request.post(f"{base}/dashboard/keys/{key_id}/revoke", form={"csrf_token": token}, max_redirects=0)
    assert stolen_id.status == 404  # a valid token, but not this account's key
    other.close()
    owner_page.goto(f"{base}/dashboard/keys")
    assert owner_page.locator("tr[data-key-id] .badge.key-active").count() == 1

    # The owner changes the password from the account page (the e-mail in the header): this browser stays
    # signed in, a second one signed in before is signed out.
    second = browser.new_context()
    second_page = second.new_page()
    second_page.goto(f"{base}/dashboard/signin")
    second_page.fill("input[name=email]", "owner@example.com")
    second_page.fill("input[name=password]", PASSWORD)
    second_page.click("button.primary")
    second_page.wait_for_url(f"{base}/dashboard/overview")
    owner_page.click("header a.who")
    owner_page.wait_for_url(f"{base}/dashboard/account")
    owner_page.fill("input[name=current]", PASSWORD)
    owner_page.fill("input[name=password]", "the owner's new passphrase")
    owner_page.fill("input[name=password2]", "the owner's new passphrase")
    owner_page.click("form.stack button.primary")
    owner_page.wait_for_url(f"{base}/dashboard/account?changed=1")
    assert "Password changed" in owner_page.inner_text("[role=status]")
    owner_page.goto(f"{base}/dashboard/overview")
    assert owner_page.url.endswith("/dashboard/overview")
    second_page.goto(f"{base}/dashboard/overview")
    assert "/dashboard/signin" in second_page.url
    second.close()
    owner.close()
