"""The status page at ``/`` in a real headless browser (Debian's chromium driven by Playwright)
against a real web process, a real worker process and the fake Chatwoot.

Set ``WOOTBRIDGE_SCREENSHOT=docs/status-page.png`` to also save a screenshot of the page.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect, sync_playwright
from starlette.testclient import TestClient

from app.config import Settings
from app.management.accounts import create_account
from app.store.db import database
from tests.browser.live import REPO, LiveService, cloud_text_body, wait_until
from tests.fakes.chatwoot import FakeChatwoot

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MESSAGES_PATH = r"/conversations/\d+/messages$"
WAIT_MS = 20_000


# ---- the shell, without a browser ----


def test_the_shell_renders_without_javascript_under_a_strict_policy(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<h1>Wootbridge status</h1>" in html
    assert "<main" in html and "<noscript>" in html
    policy = response.headers["content-security-policy"]
    [nonce] = set(re.findall(r"'nonce-([^']+)'", policy))
    assert f'<script nonce="{nonce}">' in html
    assert f'<style nonce="{nonce}">' in html
    assert html.count("<script") == 1 and html.count("<style") == 1
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert re.search(r"""(src|href)=["']?(https?:)?//""", html) is None, "external asset"
    assert client.get("/").headers["content-security-policy"] != policy, "nonce reused"


# ---- the page in a browser ----


@pytest.fixture
def service(settings: Settings, tmp_path: Path, chatwoot: FakeChatwoot) -> Iterator[LiveService]:
    dramatiq.get_broker().flush_all()
    running = LiveService(settings.database_url, tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        dramatiq.get_broker().flush_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing (CI installs the chromium package)")
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="en-US")
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            problems.append(f"console: {message.text}")

    opened.on("console", on_console)
    yield opened
    cookies = context.cookies()
    context.close()
    assert cookies == [], "the page must not keep anything in cookies"
    assert problems == [], "script errors or Content-Security-Policy violations"


def field(region: Locator, name: str) -> Locator:
    return region.locator(f'[data-field="{name}"]')


def setup_instances(service: LiveService, chatwoot: FakeChatwoot) -> str:
    """An account with one working instance ("suporte") and one whose Chatwoot token is refused
    ("vendas"); returns the account token."""
    with database.connection_context():
        _, token = create_account("Browser")
    account_id = chatwoot.add_account("Browser")
    admin = chatwoot.add_user("Admin", {account_id: "administrator"})
    chatwoot_fields = {"chatwootBaseUrl": chatwoot.base_url, "chatwootAccountId": account_id}
    good = service.new_cloud_instance(
        token, "suporte", "106540352242922", {**chatwoot_fields, "chatwootApiToken": admin}
    )
    assert good["chatwoot"]["status"] == "active", good
    bad = service.new_cloud_instance(
        token, "vendas", "106540352242923", {**chatwoot_fields, "chatwootApiToken": "revoked"}
    )
    assert bad["chatwoot"]["status"] == "error", bad
    return token


def test_status_page_shows_errors_retries_failed_events_and_pauses(
    service: LiveService, chatwoot: FakeChatwoot, page: Page
) -> None:
    token = setup_instances(service, chatwoot)
    chatwoot.fail_next("POST", MESSAGES_PATH, 422, body={"error": "Content is too long"})
    service.post_whatsapp("suporte", cloud_text_body("106540352242922", "5511987654321",
                                                     "wamid.b1", "refused once"))  # fmt: skip
    wait_until(lambda: service.relay(token, "suporte")["failed"] == 1, what="a failed event")

    page.goto(service.base_url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Wootbridge status")
    page.get_by_label("Account token").fill(token)
    page.get_by_role("button", name="Show status").click()

    broken = page.get_by_role("region", name="vendas")
    expect(field(broken, "status")).to_have_text("error", timeout=WAIT_MS)
    expect(field(broken, "last_error")).to_contain_text("Chatwoot rejected the API token")
    working = page.get_by_role("region", name="suporte")
    expect(field(working, "status")).to_have_text("active")
    expect(field(working, "failed")).to_have_text("1")
    expect(field(working, "delivered")).to_have_text("0")
    expect(field(working, "oldest_pending")).to_have_text("—")
    failed_row = working.get_by_role("row").filter(has_text="Content is too long")
    expect(failed_row).to_contain_text("inbound")
    expect(failed_row).to_contain_text("5511987654321")
    assert token not in page.url
    screenshot = os.environ.get("WOOTBRIDGE_SCREENSHOT")
    if screenshot:
        page.screenshot(path=str(REPO / screenshot), full_page=True)

    failed_row.get_by_role("button", name="Retry", exact=True).click()
    expect(field(working, "failed")).to_have_text("0", timeout=WAIT_MS)
    expect(field(working, "delivered")).to_have_text("1", timeout=WAIT_MS)
    expect(working.get_by_role("button", name="Retry", exact=True)).to_have_count(0)
    relayed = [m["content"] for m in chatwoot.messages.values() if not m.get("private")]
    assert relayed == ["refused once"]

    working.get_by_role("button", name="Pause", exact=True).click()
    expect(field(working, "status")).to_have_text("paused", timeout=WAIT_MS)
    assert service.client().get(
        "/api/chatwoot/list/suporte", headers={"token": token}
    ).json()["status"] == "paused"  # fmt: skip
    working.get_by_role("button", name="Resume", exact=True).click()
    expect(field(working, "status")).to_have_text("active", timeout=WAIT_MS)


def test_status_page_refreshes_itself_and_keeps_the_token_in_the_tab(
    service: LiveService, chatwoot: FakeChatwoot, page: Page
) -> None:
    token = setup_instances(service, chatwoot)
    page.goto(service.base_url + "/")
    page.get_by_label("Account token").fill(token)
    page.get_by_role("button", name="Show status").click()
    working = page.get_by_role("region", name="suporte")
    expect(field(working, "delivered")).to_have_text("0", timeout=WAIT_MS)

    service.post_whatsapp("suporte", cloud_text_body("106540352242922", "5511987654321",
                                                     "wamid.r1", "hello"))  # fmt: skip
    expect(field(working, "delivered")).to_have_text("1", timeout=WAIT_MS)
    service.client().post("/api/chatwoot/pause/suporte", headers={"token": token})
    expect(field(working, "status")).to_have_text("paused", timeout=WAIT_MS)

    assert page.evaluate("() => sessionStorage.getItem('wootbridge.token')") == token
    page.reload()
    expect(field(page.get_by_role("region", name="suporte"), "status")).to_have_text(
        "paused", timeout=WAIT_MS
    )
    assert token not in page.url

    page.get_by_role("button", name="Forget token").click()
    expect(page.get_by_role("region", name="suporte")).to_have_count(0)
    assert page.evaluate("() => sessionStorage.getItem('wootbridge.token')") is None
