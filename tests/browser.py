"""The real browser for admin pages: Debian's chromium driven by Playwright (never a download).

The `chromium` fixture (tests/conftest.py) hands tests `open_browser`; use it as a `with` block
and touch the ORM only outside it: Playwright's sync API runs an event loop in this thread, and
Django refuses ORM calls while one is running.
"""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Screenshots are kept as CI artifacts.
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
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


def chromium_missing() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    if os.path.exists(CHROMIUM) and shutil.which(CHROMIUM):
        return ""
    return f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)"


@contextmanager
def open_browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page, then, username="operator", password="operator-pass"):
    """Open `then`; the admin asks for a login first, and comes back to it."""
    page.goto(then)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(then)
