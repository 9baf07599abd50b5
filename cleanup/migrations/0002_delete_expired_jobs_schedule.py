"""Create the hourly beat schedule for the purge, once.

Admins own the row afterwards: if it exists (even edited or disabled) it is left exactly as is.
The values are written out, not imported, so this migration means the same forever; where each
comes from is said next to it. cleanup/services/verdict.py (SCHEDULES) describes the row too,
for `manage.py check`: change them together.
"""

from django.db import migrations

TASK_NAME = "delete-expired-jobs"


def create_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    if PeriodicTask.objects.filter(name=TASK_NAME).exists():
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0",
        hour="*",
        day_of_month="*",
        month_of_year="*",
        day_of_week="*",
        timezone="Asia/Seoul",  # = settings.TIME_ZONE and CELERY_TIMEZONE
    )
    PeriodicTask.objects.create(
        name=TASK_NAME,
        task="delete_expired_jobs",
        crontab=crontab,
        enabled=True,
        # A run that waited past the next one is pointless: the next one does the same work.
        expires=None,
        expire_seconds=3000,  # = cleanup.services.runs.SUBTASK_EXPIRES_SECONDS (50 min)
        description="Deletes jobs past expires_at with all their rows and files (fmr retention).",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("cleanup", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, migrations.RunPython.noop)]
