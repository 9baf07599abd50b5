"""Create the daily beat schedule for the orphan reconciler, once, enabled and deleting.

Why deleting by default: an orphan is a user's photo that no row will ever expire, so a
report-only default would break the 24-hour promise until someone read the report. Only objects
under the upload prefix that nothing names and that are older than the grace period go.
Admins own the row afterwards: if it exists (even edited or disabled) it is left exactly as is.
The values are written out, not imported, so this migration means the same forever; where each
comes from is said next to it. cleanup/services/verdict.py (SCHEDULES) describes the row too,
for `manage.py check`: change them together.
"""

import json

from django.db import migrations

TASK_NAME = "reconcile-storage"


def create_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    if PeriodicTask.objects.filter(name=TASK_NAME).exists():
        return
    # 04:30 in Seoul: the quietest hour, and away from the hourly purge at minute 0.
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30",
        hour="4",
        day_of_month="*",
        month_of_year="*",
        day_of_week="*",
        timezone="Asia/Seoul",  # = settings.TIME_ZONE and CELERY_TIMEZONE
    )
    PeriodicTask.objects.create(
        name=TASK_NAME,
        task="reconcile_storage",
        crontab=crontab,
        # grace_minutes = cleanup.services.reconcile.RECONCILE_GRACE (60 min)
        kwargs=json.dumps({"delete": True, "grace_minutes": 60}),
        enabled=True,
        expire_seconds=6 * 3600,
        description="Deletes stored job files that no row or pending deletion names, older "
        "than the grace period (fmr retention). Set kwargs delete to false to only report.",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("cleanup", "0002_delete_expired_jobs_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, migrations.RunPython.noop)]
