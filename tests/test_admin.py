"""What staff see and do in Django admin, and what nobody else can."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from cleanup.models import PendingFileDeletion, PurgeRun
from jobs.models import Job
from tests.admin_helpers import (
    ensure_purge_schedule,
    form_data,
    save_schedule,
)
from tests.helpers import bind_test_storage, expired_job, live_job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def purge_schedule(db):
    ensure_purge_schedule()


def schedule_url():
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    return f"/admin/django_celery_beat/periodictask/{task.pk}/change/"


PAGES = [
    "/admin/",
    "/admin/jobs/job/",
    "/admin/jobs/job/?expiry=expired",
    "/admin/cleanup/purgerun/",
    "/admin/cleanup/purgerun/?status__exact=failed",
    "/admin/cleanup/pendingfiledeletion/",
    "/admin/django_celery_beat/periodictask/",
    "/admin/django_celery_beat/crontabschedule/",
    schedule_url,
]


def resolve(page):
    return page() if callable(page) else page


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def customer_client(client, django_user_model):
    # Logged in, active, even holding every permission, but not staff: still refused.
    user = django_user_model.objects.create_user("customer", password="x", is_superuser=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize("page", PAGES)
def test_staff_can_open_every_operator_page(staff_client, page):
    expired_job(with_files=False)
    PurgeRun.objects.create(cutoff=timezone.now(), batch_size=10, status="failed", error="boom")
    PendingFileDeletion.objects.record(["jobs/x/original-1.png"])
    assert staff_client.get(resolve(page)).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, page):
    response = client.get(resolve(page))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("page", PAGES)
def test_users_who_are_not_staff_are_sent_to_the_login_page(customer_client, page):
    response = customer_client.get(resolve(page))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


PURGE_NOW = "/admin/cleanup/purgerun/purge-now/"


def test_non_staff_cannot_run_admin_actions(customer_client):
    job = expired_job(with_files=False)
    response = customer_client.post(PURGE_NOW)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    pending = PendingFileDeletion.objects.create(name="jobs/x/original-1.png")
    response = customer_client.post(
        "/admin/cleanup/pendingfiledeletion/",
        {"action": "retry_now", "_selected_action": [pending.pk]},
    )
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert Job.objects.filter(pk=job.pk).exists()
    assert PendingFileDeletion.objects.filter(pk=pending.pk).exists()


@pytest.fixture
def viewer_client(django_user_model):
    """Staff who may look at the purge's pages but hold neither action's permission."""
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client = Client()
    client.force_login(user)
    return client


def test_purging_now_and_retrying_need_their_own_permissions(viewer_client, staff_client):
    page = viewer_client.get("/admin/cleanup/purgerun/")
    assert page.status_code == 200 and PURGE_NOW not in page.content.decode()
    assert viewer_client.post(PURGE_NOW).status_code == 403
    pending = PendingFileDeletion.objects.create(name="jobs/x/original-1.png")
    page = viewer_client.get("/admin/cleanup/pendingfiledeletion/")
    assert page.status_code == 200 and "retry_now" not in page.content.decode()
    # Superusers hold both.
    assert PURGE_NOW in staff_client.get("/admin/cleanup/purgerun/").content.decode()
    assert "retry_now" in staff_client.get("/admin/cleanup/pendingfiledeletion/").content.decode()
    assert PendingFileDeletion.objects.filter(pk=pending.pk).exists()


def listed(response):
    return list(response.context["cl"].result_list)


def test_the_jobs_list_filters_expired_and_live(staff_client):
    gone, kept = expired_job(with_files=False), live_job(with_files=False)
    assert listed(staff_client.get("/admin/jobs/job/?expiry=expired")) == [gone]
    assert listed(staff_client.get("/admin/jobs/job/?expiry=live")) == [kept]
    assert set(listed(staff_client.get("/admin/jobs/job/"))) == {gone, kept}


def test_purge_runs_are_listed_newest_first_and_filter_by_status(staff_client):
    now = timezone.now()
    old = PurgeRun.objects.create(
        cutoff=now,
        batch_size=1,
        started_at=now - timedelta(hours=2),
        status="succeeded",
        rows_deleted={"jobs.Job": 3, "jobs.SmsLog": 9},
        jobs_deleted=3,
    )
    new = PurgeRun.objects.create(cutoff=now, batch_size=1, started_at=now, status="failed")
    assert listed(staff_client.get("/admin/cleanup/purgerun/")) == [new, old]
    assert listed(staff_client.get("/admin/cleanup/purgerun/?status__exact=failed")) == [new]
    page = staff_client.get("/admin/cleanup/purgerun/").content.decode()
    # One line per run: the rows' total here, the table per model on the run's page.
    assert '<td class="field-rows_total">12</td>' in page and "SmsLog 9" not in page
    # The status in its severity's colour; only the dry runs are labelled as such.
    assert re.search(r'<strong style="color:#b3261e">failed</strong>', page)
    assert re.search(r'<strong style="color:#1b7a3a">succeeded</strong>', page)
    assert 'alt="False"' not in page and "(dry run)" not in page


def test_purge_runs_cannot_be_added_changed_or_deleted_from_admin(staff_client):
    run = PurgeRun.objects.create(cutoff=timezone.now(), batch_size=1, status="succeeded")
    assert staff_client.get("/admin/cleanup/purgerun/add/").status_code == 403
    assert (
        staff_client.post(
            f"/admin/cleanup/purgerun/{run.pk}/change/", {"status": "failed"}
        ).status_code
        == 403
    )
    assert staff_client.post(f"/admin/cleanup/purgerun/{run.pk}/delete/").status_code == 403
    run.refresh_from_db()
    assert run.status == "succeeded"
    # Viewing is allowed.
    assert staff_client.get(f"/admin/cleanup/purgerun/{run.pk}/change/").status_code == 200


def test_retry_now_deletes_a_pending_file_whatever_its_backoff(staff_client):
    name = default_storage.save("jobs/orphan/original-x.png", ContentFile(b"png"))
    bind_test_storage()  # written outside the ORM: nothing bound this storage
    PendingFileDeletion.objects.record([name])
    PendingFileDeletion.objects.update(
        attempts=4, last_error="timeout", next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    pending = PendingFileDeletion.objects.get()
    response = staff_client.post(
        "/admin/cleanup/pendingfiledeletion/",
        {"action": "retry_now", "_selected_action": [pending.pk]},
        follow=True,
    )
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Deleted 1 file(s) from storage." in said
    assert not default_storage.exists(name)
    assert not PendingFileDeletion.objects.exists()


def test_retry_now_leaves_other_pending_files_alone(staff_client):
    names = [default_storage.save(f"jobs/o/{i}.png", ContentFile(b"png")) for i in range(2)]
    bind_test_storage()  # written outside the ORM: nothing bound this storage
    PendingFileDeletion.objects.record(names)
    chosen = PendingFileDeletion.objects.get(name=names[0])
    staff_client.post(
        "/admin/cleanup/pendingfiledeletion/",
        {"action": "retry_now", "_selected_action": [chosen.pk]},
    )
    assert [default_storage.exists(n) for n in names] == [False, True]
    assert list(PendingFileDeletion.objects.values_list("name", flat=True)) == [names[1]]


def test_an_admin_can_change_the_schedules_crontab(staff_client):
    nightly = CrontabSchedule.objects.create(minute="30", hour="3", timezone="Asia/Seoul")
    task = save_schedule(staff_client, crontab=str(nightly.pk))
    assert task.crontab == nightly and task.task == "delete_expired_jobs" and task.enabled


def test_an_admin_can_disable_the_schedule_and_make_it_one_off(staff_client):
    task = save_schedule(staff_client, enabled=None, one_off="on")
    assert task.enabled is False and task.one_off is True
    task = save_schedule(staff_client, enabled="on", one_off=None)
    assert task.enabled is True and task.one_off is False


def test_an_admin_can_edit_the_crontab_itself(staff_client):
    cron = PeriodicTask.objects.get(name="delete-expired-jobs").crontab
    url = f"/admin/django_celery_beat/crontabschedule/{cron.pk}/change/"
    data = form_data(staff_client.get(url).content.decode(), "crontabschedule_form")
    data["minute"] = "15"
    assert staff_client.post(url, data).status_code == 302
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == (
        "15",
        "*",
        "Asia/Seoul",
    )


def test_the_admin_is_titled_for_fmr_retention_and_view_site_opens_the_retention_page(
    staff_client,
):
    page = staff_client.get("/admin/").content.decode()
    assert "<title>" in page and "fmr retention" in page and "Django administration" not in page
    assert 'href="/admin/cleanup/retention/">View site</a>' in page
    assert staff_client.get("/admin/cleanup/retention/").status_code == 200


def test_the_schedule_row_shows_its_registered_task(staff_client):
    from django_celery_beat.models import PeriodicTask

    from tests.admin_helpers import ensure_purge_schedule

    ensure_purge_schedule()
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    page = staff_client.get(
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/"
    ).content.decode()
    select = page.split('name="regtask"', 1)[1].split("</select>", 1)[0]
    assert re.search(r'<option value="delete_expired_jobs" selected>', select), select


def test_the_pending_list_shows_no_next_attempt_in_the_past(staff_client):
    names = [default_storage.save(f"jobs/n/{i}.png", ContentFile(b"png")) for i in range(2)]
    PendingFileDeletion.objects.record(names)
    later = timezone.now() + timedelta(hours=1)
    PendingFileDeletion.objects.filter(name=names[0]).update(
        next_attempt_at=timezone.now() - timedelta(hours=1)
    )
    PendingFileDeletion.objects.filter(name=names[1]).update(next_attempt_at=later)

    page = staff_client.get("/admin/cleanup/pendingfiledeletion/").content.decode()

    assert "with the next purge" in page  # due: no time that reads as missed
    assert timezone.localtime(later).strftime("%Y-%m-%d %H:%M:%S") in page
