from django.db import models
from django.utils import timezone


class PendingFileDeletionQuerySet(models.QuerySet):
    def record(self, names):
        """Add names in one INSERT; a name already pending keeps its attempt history."""
        # No batch_size: one statement on PostgreSQL whatever the purge's batch size; backends
        # that cap query parameters (SQLite) are split by Django to fit.
        self.bulk_create(
            [PendingFileDeletion(name=name) for name in names], ignore_conflicts=True
        )

    def due(self, now=None):
        return self.filter(next_attempt_at__lte=now or timezone.now())


class PendingFileDeletion(models.Model):
    """A storage object whose row is gone and whose file must go too.

    Written in the same transaction as the row delete, removed once storage confirms the delete,
    so neither a rollback nor a crash nor an outage can leave a file behind unnoticed.
    """

    name = models.CharField(max_length=512, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = PendingFileDeletionQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.name


class PurgeRun(models.Model):
    """One run of the purge: when, why, and what it removed. Counts only, never personal data."""

    class Trigger(models.TextChoices):
        BEAT = "beat", "Celery Beat"
        TASK = "task", "Celery task"
        COMMAND = "command", "Management command"
        ADMIN = "admin", "Django admin"
        SHELL = "shell", "Python call"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FILES_PENDING = "files_pending", "Rows purged, files pending"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SHELL)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True
    )
    dry_run = models.BooleanField(default=False)
    cutoff = models.DateTimeField(help_text="Jobs with expires_at before this were purged.")
    batch_size = models.PositiveIntegerField()
    limit = models.PositiveIntegerField(null=True, blank=True)
    batches = models.PositiveIntegerField(default=0)
    jobs_deleted = models.PositiveIntegerField(default=0)
    rows_deleted = models.JSONField(default=dict, blank=True)
    files_deleted = models.PositiveIntegerField(default=0)
    files_pending = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"Purge run {self.pk} ({self.status})"

    @property
    def duration(self):
        return (self.finished_at - self.started_at) if self.finished_at else None
