import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from cleanup.models import PurgeRun
from cleanup.tasks import delete_expired_jobs
from fmr.celery import app
from jobs.models import Job
from tests.helpers import expired_job, live_job

pytestmark = pytest.mark.django_db


def test_the_task_is_registered_under_its_contract_name():
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert app.tasks["delete_expired_jobs"].__module__ == "cleanup.tasks"
    assert delete_expired_jobs.name == "delete_expired_jobs"


def test_running_the_task_purges_and_returns_the_summary():
    gone = expired_job()
    kept = live_job()
    summary = delete_expired_jobs.apply().get()
    assert summary["jobs_deleted"] == 1 and summary["files_deleted"] == 4
    assert list(Job.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Job.objects.filter(pk=gone.pk).exists()
    assert PurgeRun.objects.get(pk=summary["run_id"]).trigger == PurgeRun.Trigger.BEAT


def test_migrate_creates_the_hourly_schedule_in_seoul_time():
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    assert task.task == "delete_expired_jobs"
    assert task.enabled
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "0",
        "*",
        "*",
        "*",
        "*",
    )
    assert str(cron.timezone) == "Asia/Seoul"


def rerun_schedule_migration():
    call_command("migrate", "cleanup", "0001", verbosity=0)
    call_command("migrate", "cleanup", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_rerunning_the_migration_keeps_an_admins_edit():
    rerun_schedule_migration()
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    task.enabled = False
    task.crontab.minute = "30"
    task.crontab.save()
    task.save()

    rerun_schedule_migration()

    assert PeriodicTask.objects.filter(name="delete-expired-jobs").count() == 1
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    assert task.enabled is False and task.crontab.minute == "30"


def test_celery_uses_the_database_scheduler_and_seoul_time():
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert app.conf.timezone == "Asia/Seoul"
