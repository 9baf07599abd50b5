from django.conf import settings
from django.db import connections, models
from django.utils import timezone


class PendingFileDeletionQuerySet(models.QuerySet):
    def record(self, names):
        """Add names in one INSERT; a name already pending keeps its attempt history.

        A name a person marked resolved that is recorded again (the same object deleted again) is
        pending again, from scratch.
        """
        if not names:
            return
        connection = connections[self.db]
        if connection.vendor == "postgresql":
            # A purge batch records thousands of names: one array parameter, instead of a model
            # instance and five placeholders per name (measured: that bulk_create was a quarter
            # of the purge's time). Same columns and defaults as the model's.
            now = timezone.now()
            meta, quote = self.model._meta, connection.ops.quote_name
            column = {
                f: quote(meta.get_field(f).column)
                for f in (
                    "name",
                    "created_at",
                    "attempts",
                    "last_error",
                    "next_attempt_at",
                    "resolved_at",
                    "resolved_by",
                )
            }
            columns = ", ".join(column.values())
            # Only a conflict with a resolved row updates (and so locks) it; an unresolved one is
            # left as it is, as with DO NOTHING.
            reopen = ", ".join(
                f"{column[f]} = EXCLUDED.{column[f]}"
                for f in ("created_at", "attempts", "last_error", "next_attempt_at")
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {quote(meta.db_table)} AS pending ({columns}) "
                    "SELECT unnest(%s::text[]), %s, 0, '', %s, NULL, '' "
                    f"ON CONFLICT ({column['name']}) DO UPDATE SET {reopen}, "
                    f"{column['resolved_at']} = NULL, {column['resolved_by']} = '' "
                    f"WHERE pending.{column['resolved_at']} IS NOT NULL",
                    [list(names), now, now],
                )
            return
        # Elsewhere Django splits the INSERT to fit the backend's parameter limit (SQLite).
        self.bulk_create([PendingFileDeletion(name=name) for name in names], ignore_conflicts=True)
        now = timezone.now()
        for start in range(0, len(names), 500):
            self.filter(name__in=names[start : start + 500], resolved_at__isnull=False).update(
                created_at=now,
                attempts=0,
                last_error="",
                next_attempt_at=now,
                resolved_at=None,
                resolved_by="",
            )

    def unresolved(self):
        return self.filter(resolved_at__isnull=True)

    def due(self, now=None):
        return self.unresolved().filter(next_attempt_at__lte=now or timezone.now())

    def stuck(self):
        """Names storage has refused CLEANUP_STUCK_AFTER_ATTEMPTS times: a person must look."""
        return self.unresolved().filter(attempts__gte=settings.CLEANUP_STUCK_AFTER_ATTEMPTS)

    def not_stuck(self):
        return self.unresolved().filter(attempts__lt=settings.CLEANUP_STUCK_AFTER_ATTEMPTS)


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
    # A person dealt with a stuck name (deleted it by hand, or found it must stay): it no longer
    # counts as pending or stuck, and is no longer tried, but stays here as the record of that.
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)

    objects = PendingFileDeletionQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        permissions = [("retry_pending", "Can retry pending file deletions now")]

    def __str__(self):
        return self.name

    @property
    def stuck(self) -> bool:
        return self.resolved_at is None and self.attempts >= settings.CLEANUP_STUCK_AFTER_ATTEMPTS


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
        # A fan-out subtask that used its time budget and handed the rest to a successor: routine,
        # not a failure, so monitors that alert on failed or interrupted runs stay quiet.
        HANDED_OVER = "handed_over", "Time budget used, handed over"
        # Its process died mid-run (nothing can record a SIGKILL); a later purge noticed.
        ABANDONED = "abandoned", "Abandoned (process died)"
        # A fan-out parent while its subtasks purge; it takes their outcome once they are done.
        FANNED_OUT = "fanned_out", "Fanned out, subtasks running"
        # A dry run that completed: it counted, deleted nothing, and is never a successful purge.
        DRY_RUN = "dry_run", "Dry run (nothing deleted)"

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Bumped, with the counts so far, after every batch: a dead run shows how far it got. A
    # fan-out parent's is bumped whenever one of its subtasks starts or finishes.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SHELL)
    # Who asked, for runs started from the admin (the staff user's username); blank otherwise.
    requested_by = models.CharField(max_length=150, blank=True)
    # The Celery task that ran it, to find it in Flower or a result backend; blank otherwise.
    task_id = models.CharField(max_length=255, blank=True)
    # A fan-out subtask's run points at the fan-out's own run, whose totals are its subtasks'.
    # Runs are a ledger and never deleted: PROTECT keeps a parent from vanishing under them.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="subtask_runs",
    )
    # A fan-out parent: subtasks it started, and those (successors included) not finished yet.
    subtasks_started = models.PositiveIntegerField(default=0)
    subtasks_outstanding = models.PositiveIntegerField(default=0)
    # How data was destroyed (database and storage), for the destruction ledger.
    method = models.CharField(max_length=300, blank=True)
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
    # A dry run's prediction; the *_deleted counts of a dry run stay 0, as nothing was deleted.
    would_delete_jobs = models.PositiveIntegerField(default=0)
    would_delete_rows = models.JSONField(default=dict, blank=True)
    would_delete_files = models.PositiveIntegerField(default=0)
    # The Retention page's history, which cannot be recomputed later: the expired backlog when
    # the run started, and every pending file deletion when it ended (None: not measured).
    expired_at_start = models.PositiveIntegerField(null=True, blank=True)
    oldest_expired_seconds_at_start = models.FloatField(null=True, blank=True)
    pending_files_at_end = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        permissions = [("run_purge", "Can start a purge of expired jobs now")]

    def __str__(self):
        return f"Purge run {self.pk} ({self.status})"

    @property
    def is_fan_out(self) -> bool:
        return self.subtasks_started > 0

    @property
    def duration(self):
        return (self.finished_at - self.started_at) if self.finished_at else None


class Retention(PurgeRun):
    """The admin's Retention page (status and seven days of plots); no data of its own."""

    class Meta:
        proxy = True
        verbose_name = "retention"
        verbose_name_plural = "retention"
        # Any staff member may look (cleanup/admin.py); nothing to add, change or delete.
        default_permissions = ()
