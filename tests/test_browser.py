"""A person in a real browser changes the purge schedule in Django admin."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tests.admin_helpers import ensure_purge_schedule
from tests.conftest import REQUIRE_SERVICES

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SCREENSHOT = ARTIFACTS / "admin-delete-expired-jobs-crontab.png"
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


@pytest.fixture(autouse=True)
def purge_schedule(db):
    ensure_purge_schedule()


@pytest.fixture
def chromium():
    """Opens the browser; use it as a `with` block and touch the ORM only outside it.

    Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls
    while one is running.
    """
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        reason = f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (FMR_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
        pytest.skip(reason)
    return _browser


@contextmanager
def _browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_staff_change_the_purge_crontab_in_a_real_browser(chromium, live_server, staff):
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    nightly = CrontabSchedule.objects.create(minute="30", hour="3", timezone="Asia/Seoul")
    change_url = f"{live_server.url}/admin/django_celery_beat/periodictask/{task.pk}/change/"

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(change_url)  # not logged in: the admin asks for a login first
        page.fill("#id_username", "operator")
        page.fill("#id_password", "operator-pass")
        page.click("input[type=submit]")
        page.wait_for_url(change_url)
        assert page.input_value("#id_name") == "delete-expired-jobs"

        page.select_option("#id_crontab", str(nightly.pk))
        # "Save and continue editing": the page after saving shows the message and the new value.
        page.click("input[name=_continue]")
        page.wait_for_selector(".messagelist .success")
        message = page.inner_text(".messagelist .success")
        shown = page.input_value("#id_crontab")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    assert "delete-expired-jobs" in message and "was changed successfully" in message
    assert shown == str(nightly.pk)
    task.refresh_from_db()
    assert task.crontab_id == nightly.pk
    assert (task.crontab.minute, task.crontab.hour) == ("30", "3")
    assert task.enabled and task.task == "delete_expired_jobs"
