"""A person in a real browser changes the purge schedule in Django admin."""

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tests.admin_helpers import ensure_purge_schedule
from tests.browser import ARTIFACTS, log_in

SCREENSHOT = ARTIFACTS / "admin-delete-expired-jobs-crontab.png"


@pytest.fixture(autouse=True)
def purge_schedule(db):
    ensure_purge_schedule()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_staff_change_the_purge_crontab_in_a_real_browser(chromium, live_server, staff):
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    nightly = CrontabSchedule.objects.create(minute="30", hour="3", timezone="Asia/Seoul")
    change_url = f"{live_server.url}/admin/django_celery_beat/periodictask/{task.pk}/change/"

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        log_in(page, change_url)  # not logged in: the admin asks for a login first
        assert page.input_value("#id_name") == "delete-expired-jobs"

        page.select_option("#id_crontab", str(nightly.pk))
        # "Save and continue editing": the page after saving shows the message and the new value.
        page.click("input[name=_continue]")
        page.wait_for_selector(".messagelist .success")
        message = page.inner_text(".messagelist .success")
        shown = page.input_value("#id_crontab")
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    assert "delete-expired-jobs" in message and "was changed successfully" in message
    assert shown == str(nightly.pk)
    task.refresh_from_db()
    assert task.crontab_id == nightly.pk
    assert (task.crontab.minute, task.crontab.hour) == ("30", "3")
    assert task.enabled and task.task == "delete_expired_jobs"
